"""Writing quantized images: indexed (palette) files where the format has them."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from .atomic import ImageWriteError, _atomic_save
from .png import OPTIMIZE_LEVEL, indexed_png
from .profiles import PROFILE_FORMATS


# Formats written as palette images (PNG: colour type 3, with the smallest bit depth).
INDEXED_SUFFIXES = {".png": "PNG", ".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
# Formats written as full-colour images rebuilt from the palette.
RGB_SUFFIXES = {".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}
MAX_INDEXED_COLORS = 256
# The suffix fastkm gives each format it writes, by Pillow's name of the format.
FORMAT_SUFFIXES = {"PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp", "JPEG": ".jpg"}


def indexed_capacity_error(path, n_colors):
    """The reason n_colors cannot go into an indexed file at ``path``, or None if they can."""
    if output_kind(path) == "indexed" and n_colors > MAX_INDEXED_COLORS:
        return (
            f"{n_colors} colours do not fit an indexed {Path(path).suffix.lower()} file "
            f"(at most {MAX_INDEXED_COLORS}); use fewer colours or a .webp output"
        )
    return None


def output_kind(path):
    """'indexed' or 'rgb' for a supported output suffix; raises ImageWriteError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in INDEXED_SUFFIXES:
        return "indexed"
    if suffix in RGB_SUFFIXES:
        return "rgb"
    known = ", ".join(sorted(INDEXED_SUFFIXES) + sorted(RGB_SUFFIXES))
    raise ImageWriteError(f"{path}: unknown output format {suffix or '(no suffix)'}; use one of {known}")



# The PNG "Software" text every indexed PNG fastkm writes carries: how a later run over
# the folder recognises its own earlier outputs (paths.earlier_output_of).
SOFTWARE = "fastkm"
# Quality of JPEG outputs (written without chroma subsampling; see encode_quantized).
JPEG_QUALITY = 97


def palette_image(palette: np.ndarray, labels: np.ndarray) -> Image.Image:
    """A Pillow 'P' image from palette (m, C) uint8, C in 1..4 (alpha last for 2 and 4),
    and labels (H, W) uint8; a palette with alpha becomes an RGBA palette (PNG: tRNS)."""
    height, width = labels.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    colour = _palette_colours(palette)
    if palette.shape[1] in (2, 4):
        rgba = np.concatenate([colour, palette[:, -1:]], axis=1)
        image.putpalette(np.ascontiguousarray(rgba, dtype=np.uint8).tobytes(), rawmode="RGBA")
    else:
        image.putpalette(np.ascontiguousarray(colour, dtype=np.uint8).tobytes(), rawmode="RGB")
    return image


def checked_palette(palette, what="palette"):
    """palette as an (m, C) uint8 array, m >= 1, C in 1..4; integers in 0..255 are taken
    as uint8.  Anything else raises ImageWriteError saying what was expected: Pillow
    would write garbage (floats as zeros, a fifth channel dropped) without a word."""
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[0] == 0 or not 1 <= palette.shape[1] <= 4:
        raise ImageWriteError(
            f"{what} has shape {palette.shape}; expected (m, C): m >= 1 colours of C = 1 to 4 channels"
        )
    if palette.dtype != np.uint8:
        integers = np.issubdtype(palette.dtype, np.integer)
        if not (integers and 0 <= palette.min() and palette.max() <= 255):
            raise ImageWriteError(f"{what} has dtype {palette.dtype}; expected uint8 values (0..255)")
        palette = palette.astype(np.uint8)
    return palette


def checked_labels(labels, n_colors, ndim=2, what="labels"):
    """labels as an integer array of ``ndim`` dimensions ((H, W), or (n, H, W) for
    frames), none of them empty, each value a palette index below n_colors; anything
    else raises ImageWriteError (an index past the palette would be written as is, and
    shown as whatever colour a viewer makes of it)."""
    labels = np.asarray(labels)
    shape = "(n, H, W)" if ndim == 3 else "(H, W)"
    if labels.ndim != ndim or 0 in labels.shape or not np.issubdtype(labels.dtype, np.integer):
        raise ImageWriteError(
            f"{what} have shape {labels.shape} and dtype {labels.dtype}; expected {shape} integer palette indices"
        )
    high = int(labels.max())
    if high >= n_colors or (labels.dtype.kind != "u" and labels.min() < 0):
        low = int(labels.min())
        raise ImageWriteError(
            f"{what} range from {low} to {high}; a palette of {n_colors} colours takes indices 0 to {n_colors - 1}"
        )
    return labels


def has_alpha(palette):
    """True when a palette (m, C) has an alpha channel with some entry not opaque."""
    return palette.shape[1] in (2, 4) and bool(np.any(palette[:, -1] < 255))


def alpha_capacity_error(path, palette):
    """The reason a palette's transparency cannot go into the file at ``path``, or None."""
    suffix = Path(path).suffix.lower()
    if not has_alpha(palette):
        return None
    if suffix in (".bmp", ".jpg", ".jpeg"):
        return f"{suffix} files cannot hold transparency; write a .png, .webp or .tif"
    if suffix == ".gif" and np.any((palette[:, -1] > 0) & (palette[:, -1] < 255)):
        return "GIF holds only fully transparent or opaque pixels, and this image has translucent ones; write a .png"
    return None


def output_format(path):
    """Pillow's format name ('PNG', 'JPEG', ...) for an output path's suffix; raises
    ImageWriteError for a suffix fastkm does not write."""
    output_kind(path)
    suffix = Path(path).suffix.lower()
    return INDEXED_SUFFIXES.get(suffix) or RGB_SUFFIXES[suffix]


def _metadata_options(file_format, metadata):
    """Pillow save options that carry ``metadata`` (a read.Metadata) into ``file_format``."""
    if metadata is None:
        return {}
    options = {}
    if metadata.exif and file_format in ("PNG", "JPEG", "WEBP", "TIFF"):
        options["exif"] = metadata.exif
    if metadata.xmp and file_format in ("JPEG", "WEBP"):
        options["xmp"] = metadata.xmp
    if metadata.dpi and file_format in ("PNG", "JPEG", "TIFF", "BMP"):
        options["dpi"] = metadata.dpi
    return options


def _png_text_items(metadata):
    """{keyword: text} of a PNG: the input's text and XMP (``metadata``, or None), and Software."""
    items = {}
    if metadata is not None:
        items.update((key, value) for key, value in metadata.text.items() if key != "Software")
        if metadata.xmp:
            items["XML:com.adobe.xmp"] = metadata.xmp.decode("utf-8", "replace")
    items["Software"] = SOFTWARE
    return items


def _png_text(metadata):
    """The text chunks of ``_png_text_items`` for PNGs Pillow writes (animated ones)."""
    text = PngImagePlugin.PngInfo()
    for key, value in _png_text_items(metadata).items():
        text.add_itxt(key, value) if not value.isascii() else text.add_text(key, value)
    return text


def _palette_colours(palette):
    """(m, 3) RGB of a palette (m, C), C in 1..4 (alpha last for 2 and 4); grey repeated."""
    return palette[:, :3] if palette.shape[1] >= 3 else np.repeat(palette[:, :1], 3, axis=1)


def encode_quantized(palette, labels, file_format, *, optimize=False, icc_profile=None, metadata=None):
    """The bytes of a quantized image file: palette (m, C) uint8 with C in 1..4 (alpha
    last for 2 and 4, straight), labels (H, W), ``file_format`` one of 'PNG', 'GIF',
    'BMP', 'TIFF' (indexed), 'WEBP' (lossless), 'JPEG' (quality 97, no chroma subsampling).

    ``icc_profile`` (bytes; None = sRGB, written untagged) is embedded in PNG, TIFF, WebP
    and JPEG files; ``metadata`` (a read.Metadata, None = none) goes where the format
    has room: EXIF into PNG, JPEG, WebP and TIFF; XMP into PNG, JPEG and WebP;
    resolution into PNG, JPEG, TIFF and BMP; text chunks into PNG.  The same arguments
    always give the same bytes.  See ``write_quantized`` for the layouts and errors.
    """
    palette = checked_palette(palette)
    labels = checked_labels(labels, palette.shape[0])
    name = "image" + FORMAT_SUFFIXES[file_format]
    reason = alpha_capacity_error(name, palette)
    if reason:
        raise ImageWriteError(reason)
    if not has_alpha(palette) and palette.shape[1] in (2, 4):
        palette = palette[:, :-1]  # opaque everywhere: no alpha channel to store
    options = _metadata_options(file_format, metadata)
    if icc_profile is not None and file_format in PROFILE_FORMATS:
        options["icc_profile"] = icc_profile
    if output_kind(name) == "indexed" and not (file_format == "TIFF" and has_alpha(palette)):
        reason = indexed_capacity_error(name, palette.shape[0])
        if reason:
            raise ImageWriteError(reason)
        if file_format == "PNG":
            # Our own encoder (png.py): the smallest bit depth, no row filter, a short tRNS,
            # libdeflate (by size, or level 11 with optimize): smaller and faster than Pillow's.
            return indexed_png(
                _palette_colours(palette), labels, palette[:, -1] if has_alpha(palette) else None,
                level=OPTIMIZE_LEVEL if optimize else None, text=_png_text_items(metadata),
                icc_profile=options.get("icc_profile"), exif=options.get("exif"), dpi=options.get("dpi"),
            )
        image = palette_image(palette, labels)
        if file_format == "GIF" and has_alpha(palette):
            options["transparency"] = int(np.flatnonzero(palette[:, -1] == 0)[0])
    else:
        if palette.shape[1] == 2:  # grey + alpha: written as RGBA, which every format here takes
            palette = np.concatenate([np.repeat(palette[:, :1], 3, axis=1), palette[:, 1:]], axis=1)
        quantized = palette[labels]
        image = Image.fromarray(quantized[:, :, 0] if quantized.shape[2] == 1 else quantized)
        # JPEG: quality 97 without chroma subsampling, so that the palette's colours (and the
        # colours a viewer shows, through a profile) survive compression.  At quality 95 with
        # 4:2:0, compression alone shifted a smooth photo's colours (kodim02) by 2.1-2.5x the
        # error of 256 colours; at 97 and 4:4:4, by at most 1.92x (bench/colour.py).
        jpeg = {"quality": JPEG_QUALITY, "subsampling": 0}
        options.update({"lossless": True} if file_format == "WEBP" else jpeg if file_format == "JPEG" else {})
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=file_format, **options)
    except (OSError, ValueError) as error:
        raise ImageWriteError(f"cannot encode a {file_format} file ({error})") from None
    return buffer.getvalue()


def write_bytes(path, data, *, replace=True, outputs=None):
    """Write ``data`` to ``path`` atomically (a temporary name in its folder, renamed);
    ``replace`` and ``outputs`` as for ``write_quantized``."""

    def save(temporary):
        with open(temporary, "wb") as file:
            file.write(data)

    _atomic_save(path, save, replace=replace, outputs=outputs)


def write_quantized(path, palette, labels, *, optimize=False, icc_profile=None, metadata=None, replace=True,
                    outputs=None):
    """Write a quantized image: palette (m, C) uint8 with C in 1..4 (alpha last for 2 and
    4, straight), labels (H, W); returns the number of bytes written.

    Indexed formats (PNG, GIF, BMP, TIFF) store the palette and one index per pixel
    (PNG at 1, 2, 4 or 8 bits per pixel, transparency in its tRNS chunk; GIF with one
    transparent index); WebP (lossless) and JPEG store palette[labels], and so does TIFF
    for a palette with alpha.  ``optimize`` spends more time on PNG compression for a
    smaller file.  ``icc_profile`` (bytes, the colour space of the palette's values;
    None = sRGB) and ``metadata`` are written as ``encode_quantized`` says.
    Transparency that the format cannot hold raises ImageWriteError.

    The file is written atomically; an existing file is replaced only with ``replace``
    (else OutputExistsError).  With ``outputs`` (an ``Outputs``) the file is only
    staged, and appears when ``outputs.publish()`` publishes it with the others.
    """
    try:
        data = encode_quantized(
            palette, labels, output_format(path), optimize=optimize, icc_profile=icc_profile, metadata=metadata
        )
    except ImageWriteError as error:
        if str(error).startswith(f"{path}:"):
            raise
        raise ImageWriteError(f"{path}: {error}") from None
    write_bytes(path, data, replace=replace, outputs=outputs)
    return len(data)


def write_image(path, image, *, replace=True):
    """Write an (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA
    uint8 image atomically; the format follows the suffix (one that ``write_quantized``
    takes).  An existing file is replaced only with ``replace`` (else OutputExistsError);
    any other image, or suffix, raises ImageWriteError saying what was expected."""
    import imageio.v3 as iio  # here: imageio's import costs a quantize's start-up 0.1 s

    output_kind(path)
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (2, 3, 4)) or 0 in image.shape:
        raise ImageWriteError(f"{path}: image has shape {image.shape}; expected (H, W) or (H, W, 2, 3 or 4) pixels")
    if image.dtype != np.uint8:
        raise ImageWriteError(f"{path}: image has dtype {image.dtype}; expected uint8 (0..255)")
    suffix = Path(path).suffix.lower()
    _atomic_save(
        path, lambda temporary: iio.imwrite(temporary, image, extension=suffix, plugin="pillow"), replace=replace
    )
