"""Writing quantized images: indexed (palette) files where the format has them."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

from .atomic import ImageWriteError, _atomic_save
from .png import DEFAULT_LEVEL, OPTIMIZE_LEVEL, indexed_png


# Formats written as palette images (PNG: colour type 3, with the smallest bit depth).
INDEXED_SUFFIXES = {".png": "PNG", ".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
# Formats written as full-colour images rebuilt from the palette.
RGB_SUFFIXES = {".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}
MAX_INDEXED_COLORS = 256


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


def _software_note():
    """The Software text for PNGs Pillow writes (animated ones; still ones go through png.py)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", SOFTWARE)
    return info


def _palette_colours(palette):
    """(m, 3) RGB of a palette (m, C), C in 1..4 (alpha last for 2 and 4); grey repeated."""
    return palette[:, :3] if palette.shape[1] >= 3 else np.repeat(palette[:, :1], 3, axis=1)


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


def write_quantized(path, palette, labels, *, optimize=False, replace=True, outputs=None):
    """Write a quantized image: palette (m, C) uint8 with C in 1..4 (alpha last for 2 and
    4, straight), labels (H, W).

    Indexed formats (PNG, GIF, BMP, TIFF) store the palette and one index per pixel
    (PNG at 1, 2, 4 or 8 bits per pixel, transparency in its tRNS chunk; GIF with one
    transparent index); WebP (lossless) and JPEG store palette[labels], and so does TIFF
    for a palette with alpha.  Palette order and indices are kept as given.  ``optimize``
    spends more time on PNG compression for a smaller file (the same pixels).
    Transparency that the format cannot hold raises ImageWriteError.

    The file is written atomically; an existing file is replaced only with ``replace``
    (else OutputExistsError).  With ``outputs`` (an ``Outputs``) the file is only
    staged, and appears when ``outputs.publish()`` publishes it with the others.
    """
    kind = output_kind(path)
    suffix = Path(path).suffix.lower()
    reason = alpha_capacity_error(path, palette)
    if reason:
        raise ImageWriteError(f"{path}: {reason}")
    if not has_alpha(palette) and palette.shape[1] in (2, 4):
        palette = palette[:, :-1]  # opaque everywhere: no alpha channel to store
    if kind == "indexed" and not (suffix in (".tif", ".tiff") and has_alpha(palette)):
        reason = indexed_capacity_error(path, palette.shape[0])
        if reason:
            raise ImageWriteError(f"{path}: {reason}")
        file_format = INDEXED_SUFFIXES[suffix]
        if file_format == "PNG":
            data = indexed_png(
                _palette_colours(palette), labels, palette[:, -1] if has_alpha(palette) else None,
                level=OPTIMIZE_LEVEL if optimize else DEFAULT_LEVEL, text={"Software": SOFTWARE},
            )

            def save(temporary):
                Path(temporary).write_bytes(data)
        else:
            image = palette_image(palette, labels)
            options = {}
            if file_format == "GIF" and has_alpha(palette):
                options = {"transparency": int(np.flatnonzero(palette[:, -1] == 0)[0])}

            def save(temporary):
                image.save(temporary, format=file_format, **options)
    else:
        if palette.shape[1] == 2:  # grey + alpha: written as RGBA, which every format here takes
            palette = np.concatenate([np.repeat(palette[:, :1], 3, axis=1), palette[:, 1:]], axis=1)
        quantized = palette[labels]
        if quantized.shape[2] == 1:
            quantized = quantized[:, :, 0]
        file_format = RGB_SUFFIXES.get(suffix, INDEXED_SUFFIXES.get(suffix))
        options = {"lossless": True} if file_format == "WEBP" else {"quality": 95} if file_format == "JPEG" else {}

        def save(temporary):
            iio.imwrite(temporary, quantized, extension=suffix, plugin="pillow", **options)
    _atomic_save(path, save, replace=replace, outputs=outputs)


def write_image(path, image, *, replace=True):
    """Write an (H, W) or (H, W, 3) uint8 image atomically; the format follows the suffix.
    An existing file is replaced only with ``replace`` (else OutputExistsError)."""
    suffix = Path(path).suffix.lower()
    _atomic_save(
        path, lambda temporary: iio.imwrite(temporary, image, extension=suffix, plugin="pillow"), replace=replace
    )
