"""Image files in and out: decoding to uint8 arrays, indexed output, atomic writes.

Reading goes through imageio (Pillow underneath).  Writing produces indexed (palette)
files where the format has them, and every file is written to a temporary name in the
target folder and renamed into place, so an interrupted write never leaves a partial
file behind.  This module imports nothing else of fastkm.
"""

import os
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

# Formats written as palette images (PNG: colour type 3, with the smallest bit depth).
INDEXED_SUFFIXES = {".png": "PNG", ".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
# Formats written as full-colour images rebuilt from the palette.
RGB_SUFFIXES = {".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}
MAX_INDEXED_COLORS = 256
# Images above this many pixels are refused before decoding (decompression bombs: a
# small file whose header claims a huge size).  200 MP decode to 600 MB of RGB; raise
# the limit (max_pixels=, or --max-pixels on the command line) for larger trusted files.
DEFAULT_MAX_PIXELS = 200_000_000
# Pillow modes read as they are, converted to RGB, or to grey.
_GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class ImageReadError(ValueError):
    """An input file could not be read as an image; the message says why."""


class _TooLarge(Exception):
    """Raised inside read_image when the header's size is over the limit."""


class ImageWriteError(OSError):
    """An output file could not be written; the message says why."""


def _to_uint8(array, path):
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype in (np.uint16, np.int32, np.uint32) and array.size and 0 <= array.min() and array.max() <= 65535:
        # 16-bit samples: the nearest 8-bit value, 65535 -> 255.
        wide = array.astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    raise ImageReadError(f"{path}: pixel type {array.dtype} is not supported; save it as 8- or 16-bit")


def read_image(path, *, max_pixels=DEFAULT_MAX_PIXELS):
    """Read an image file as (H, W, 3) RGB or (H, W) grey uint8, with alpha as a last
    channel ((H, W, 4) RGBA, (H, W, 2) grey + alpha) when some pixel is not opaque.

    The first frame of a multi-frame file is used (``frame_count`` tells how many there
    are); the EXIF orientation is applied; palette images (their tRNS transparency
    included), CMYK and other colour modes become RGB or RGBA; 16-bit samples are
    rounded to 8 bits.
    A file whose header gives more than ``max_pixels`` pixels is refused before any
    pixel is decoded.  Raises ImageReadError with a one-line reason when the file is
    missing, too large, or not an image this function can decode.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty")
    previous_limit = Image.MAX_IMAGE_PIXELS
    try:
        # Our own limit replaces Pillow's (whose warning and error thresholds differ).
        Image.MAX_IMAGE_PIXELS = None
        with iio.imopen(path, "r", plugin="pillow") as file:
            shape = file.properties(index=0).shape
            if len(shape) >= 2 and shape[0] * shape[1] > max_pixels:
                raise _TooLarge(shape[1], shape[0])
            mode = file.metadata(index=0, exclude_applied=False).get("mode")
            if mode in _ALPHA_MODES or (mode == "P" and "transparency" in file.metadata(index=0)):
                convert = "RGBA" if mode not in ("LA", "La") else "LA"
            elif mode in _GREY_MODES or mode == "RGB":
                convert = None
            else:
                convert = "RGB"
            array = file.read(index=0, mode=convert, rotate=True)
    except _TooLarge as error:
        width, height = error.args
        raise ImageReadError(
            f"{path}: {width}x{height} = {width * height / 1e6:.0f} megapixels exceeds the limit of "
            f"{max_pixels / 1e6:.0f} megapixels; raise it with --max-pixels if you trust the file"
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageReadError(f"{path}: cannot decode as an image ({reason})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    array = _to_uint8(np.asarray(array), path)
    if array.ndim == 3 and array.shape[2] in (2, 4) and np.all(array[..., -1] == 255):
        array = array[..., :-1]  # an alpha channel that is opaque everywhere says nothing
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageReadError(f"{path}: unexpected image shape {array.shape}")
    return np.ascontiguousarray(array)


def frame_count(path):
    """How many frames (pages, animation frames) an image file holds; 1 when unknown."""
    try:
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # only a hint for a message: read_image reports real problems
        return 1


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


def _atomic_save(path, save):
    """Call save(temporary_path) in the target folder, then rename onto ``path``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
        os.close(handle)
    except OSError as error:
        raise ImageWriteError(f"{path}: cannot write to folder {folder} ({error.strerror or error})") from None
    try:
        save(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        # mkstemp creates the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(error, Exception):  # not KeyboardInterrupt / SystemExit
            raise ImageWriteError(f"{path}: cannot write ({error or type(error).__name__})") from None
        raise


def _palette_image(palette, labels):
    """A Pillow 'P' image from palette (m, C) uint8, C in 1..4 (alpha last for 2 and 4),
    and labels (H, W) uint8; a palette with alpha becomes an RGBA palette (PNG: tRNS)."""
    height, width = labels.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    colour = palette[:, :3] if palette.shape[1] >= 3 else np.repeat(palette[:, :1], 3, axis=1)
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


def write_quantized(path, palette, labels, *, optimize=False):
    """Write a quantized image: palette (m, C) uint8 with C in 1..4 (alpha last for 2 and
    4, straight), labels (H, W).

    Indexed formats (PNG, GIF, BMP, TIFF) store the palette and one index per pixel
    (PNG at 1, 2, 4 or 8 bits per pixel, transparency in its tRNS chunk; GIF with one
    transparent index); WebP (lossless) and JPEG store palette[labels], and so does TIFF
    for a palette with alpha.  ``optimize`` spends more time on PNG compression for a
    smaller file.  Transparency that the format cannot hold raises ImageWriteError.
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
        image = _palette_image(palette, labels)
        file_format = INDEXED_SUFFIXES[suffix]
        options = {}
        if file_format == "PNG":
            # Pillow picks the bit depth (1, 2, 4 or 8) from the palette length.
            # Level 3: measured on a 12 MP photo, half the time of zlib's default level 6 for
            # files 4-10 % larger; --optimize (level 9 and Pillow's optimizer) for the smallest.
            options = {"optimize": True} if optimize else {"compress_level": 3}
        elif file_format == "GIF" and has_alpha(palette):
            options = {"transparency": int(np.flatnonzero(palette[:, -1] == 0)[0])}
        _atomic_save(path, lambda temporary: image.save(temporary, format=file_format, **options))
    else:
        if palette.shape[1] == 2:  # grey + alpha: written as RGBA, which every format here takes
            palette = np.concatenate([np.repeat(palette[:, :1], 3, axis=1), palette[:, 1:]], axis=1)
        quantized = palette[labels]
        if quantized.shape[2] == 1:
            quantized = quantized[:, :, 0]
        file_format = RGB_SUFFIXES.get(suffix, INDEXED_SUFFIXES.get(suffix))
        options = {"lossless": True} if file_format == "WEBP" else {"quality": 95} if file_format == "JPEG" else {}
        _atomic_save(
            path, lambda temporary: iio.imwrite(temporary, quantized, extension=suffix, plugin="pillow", **options)
        )


def write_image(path, image):
    """Write an (H, W) or (H, W, 3) uint8 image atomically; the format follows the suffix."""
    suffix = Path(path).suffix.lower()
    _atomic_save(path, lambda temporary: iio.imwrite(temporary, image, extension=suffix, plugin="pillow"))


PALETTE_SUFFIXES = (".gpl", ".json")


def read_palette(path):
    """A palette (m, 3) uint8 from a GIMP .gpl file, a .json list of [r, g, b] rows (or
    {"palette": [...]}), or an image: an indexed image's palette entries in use, or the
    distinct colours of a full-colour image with at most 256 of them."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such palette file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".gpl":
            rows = []
            lines = path.read_text().splitlines()
            if not lines or not lines[0].strip().startswith("GIMP Palette"):
                raise ValueError("the first line is not 'GIMP Palette'")
            for line in lines[1:]:
                fields = line.split()
                if not fields or line.lstrip().startswith("#") or ":" in fields[0] or not fields[0].isdigit():
                    continue  # comments, Name:/Columns: headers
                rows.append([int(v) for v in fields[:3]])
            palette = np.array(rows)
        elif suffix == ".json":
            data = json.loads(path.read_text())
            palette = np.array(data["palette"] if isinstance(data, dict) else data)
        else:
            with Image.open(path) as image:
                if image.mode == "P":
                    used = np.unique(np.asarray(image))
                    entries = np.array(image.getpalette() or [], dtype=np.int64).reshape(-1, 3)
                    palette = entries[used]
                else:
                    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
                    palette = np.unique(pixels, axis=0)
                    if len(palette) > 256:
                        raise ValueError(f"it has {len(palette)} colours; a palette image has at most 256")
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise ImageReadError(f"{path}: cannot read a palette ({error})") from None
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ImageReadError(f"{path}: cannot read a palette (expected rows of 3 values, got shape {palette.shape})")
    if palette.min() < 0 or palette.max() > 255:
        raise ImageReadError(f"{path}: palette values must be between 0 and 255")
    return palette.astype(np.uint8)


def write_palette(path, palette):
    """Write a palette (m, C) uint8 as GIMP .gpl or .json (by suffix), atomically."""
    import json

    suffix = Path(path).suffix.lower()
    rgb = palette if palette.shape[1] == 3 else np.repeat(palette[:, :1], 3, axis=1)
    if suffix == ".gpl":
        lines = ["GIMP Palette", f"Name: {Path(path).stem}", "Columns: 16", "#"]
        lines += [f"{r:3d} {g:3d} {b:3d}\t#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]
        text = "\n".join(lines) + "\n"
    elif suffix == ".json":
        text = json.dumps({"palette": rgb.tolist()}) + "\n"
    else:
        raise ImageWriteError(f"{path}: unknown palette format {suffix or '(no suffix)'}; use .gpl or .json")

    def save(temporary):
        with open(temporary, "w") as file:
            file.write(text)

    _atomic_save(path, save)
