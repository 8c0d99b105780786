"""Reading image files into uint8 arrays (imageio with Pillow underneath)."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image


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
