"""Reading image files into uint8 arrays (imageio with Pillow underneath)."""

import stat
import threading
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

from .atomic import PathLike


# Images above this many pixels are refused before decoding (decompression bombs: a
# small file whose header claims a huge size).  200 MP decode to 600 MB of RGB; raise
# the limit (max_pixels=, or --max-pixels on the command line) for larger trusted files.
DEFAULT_MAX_PIXELS = 200_000_000
# Pillow modes read as they are, converted to RGB, or to grey.
_GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class ImageReadError(ValueError):
    """An input file could not be read as an image; the message says why."""


class ImageReadWarning(UserWarning):
    """Something a decoder noticed in a file it could still read (a corrupt EXIF block)."""


class _TooLarge(Exception):
    """Raised inside read_image when the header's size is over the limit."""


_decode_lock = threading.Lock()


def float_to_uint8(array: np.ndarray, source: object, *, pillow_scale: bool = False) -> np.ndarray:
    """Floats in [0, 1] (scikit-image's convention) to the nearest 8-bit value.

    With ``pillow_scale`` (Pillow's mode F, whose convert('L') reads 0..255), floats
    in [0, 255] are rounded as they are when some value is above 1.  Any other range
    is refused with the conversion that keeps its data.
    """
    if not np.isfinite(array).all():
        raise ImageReadError(f"{source}: float pixels include NaN or infinity; replace them first")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if 0.0 <= low and high <= 1.0:
        return np.rint(array * 255.0).astype(np.uint8)
    if 0.0 <= low and high <= 255.0:
        if pillow_scale:
            return np.rint(array).astype(np.uint8)
        advice = "for values on the 0..255 scale convert with np.clip(np.rint(x), 0, 255).astype(np.uint8)"
    else:
        advice = "scale them to [0, 1] first, e.g. (x - x.min()) / (x.max() - x.min())"
    scales = "[0, 1] or 0..255" if pillow_scale else "[0, 1] (1 = full intensity)"
    raise ImageReadError(f"{source}: float pixels range from {low:g} to {high:g}; floats must lie in {scales}: {advice}")


def _to_uint8(array, source):
    """8-bit samples from what Pillow decodes: bool (mode 1), 16- or 32-bit integers holding
    16-bit samples (modes I;16, I), floats in [0, 1] or 0..255 (mode F)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype in (np.uint16, np.int32, np.uint32) and array.size and 0 <= array.min() and array.max() <= 65535:
        # 16-bit samples: the nearest 8-bit value, 65535 -> 255.
        wide = array.astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return float_to_uint8(array, source, pillow_scale=True)
    raise ImageReadError(f"{source}: pixel type {array.dtype} is not supported; save it as 8- or 16-bit")


def _pillow_target_mode(mode, info):
    """The Pillow mode to convert an image of ``mode`` to before taking its pixels
    (None: as it is): alpha modes, palettes with transparency and RGB with a colour key
    to RGBA (LA stays LA, keyed grey becomes LA), grey modes as they are, every other
    colour mode (P, CMYK, YCbCr...) to RGB."""
    keyed = "transparency" in info  # P: tRNS alpha per entry; RGB, L: a colour key
    if mode in _ALPHA_MODES or (keyed and mode in ("P", "RGB")):
        return "RGBA" if mode not in ("LA", "La") else "LA"
    if keyed and mode == "L":
        return "LA"
    if mode in _GREY_MODES or mode == "RGB":
        return None
    return "RGB"


def _tidy_channels(array, source):
    """(H, W) grey or (H, W, 2/3/4) uint8: a one-channel axis dropped, the shape checked."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageReadError(f"{source}: unexpected image shape {array.shape}")
    return np.ascontiguousarray(array)


def from_pillow(image: Image.Image) -> np.ndarray:
    """The pixels of a Pillow image as read_image gives them for a file: (H, W) grey,
    (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA uint8.

    Palette images become their colours (RGBA when they have transparency), CMYK and
    other colour modes RGB, modes 1, I;16 and I (16-bit samples) grey on 0..255, mode F
    floats in [0, 1] or 0..255 (other ranges refused).  The alpha channel of an RGBA or LA image is kept even where
    every pixel is opaque; the EXIF orientation is not applied (the pixels stay where the
    Pillow image holds them; ``PIL.ImageOps.exif_transpose`` turns them).
    """
    source = f"Pillow image in mode {image.mode}"
    target = _pillow_target_mode(image.mode, image.info)
    try:
        converted = image.convert(target) if target else image
    except (ValueError, OSError) as error:
        raise ImageReadError(f"{source}: cannot convert it to RGB ({error}); convert it with image.convert('RGB')") from None
    return _tidy_channels(_to_uint8(np.asarray(converted), source), source)


def read_image(path: PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as (H, W, 3) RGB or (H, W) grey uint8, with alpha as a last
    channel ((H, W, 4) RGBA, (H, W, 2) grey + alpha) when some pixel is not opaque.

    The first frame of a multi-frame file is used (``frame_count`` tells how many there
    are); the EXIF orientation is applied; palette images, CMYK and other colour modes
    become RGB or RGBA; transparency in a PNG's tRNS chunk (alpha per palette entry, or
    the colour key of an RGB or grey image) becomes alpha; 16-bit samples are rounded
    to 8 bits, floats (mode F) in [0, 1] scaled, in 0..255 rounded (other ranges
    refused).  What the decoder warns about (a corrupt EXIF block) is warned again
    in one ImageReadWarning naming the file.
    A file whose header gives more than ``max_pixels`` pixels is refused before any
    pixel is decoded.  Raises ImageReadError with a one-line reason when the file is
    missing, too large, or not an image this function can decode.
    """
    path = Path(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read ({error.strerror or error})") from None
    if stat.S_ISDIR(status.st_mode):
        raise ImageReadError(f"{path}: is a folder, expected an image file")
    if status.st_size == 0:
        raise ImageReadError(f"{path}: file is empty")
    # One decode at a time: Pillow's limit and the warning filters are process-wide, and
    # two threads swapping them (a batch reads files in threads) would leave Pillow
    # without its limit, or the warnings recorded into a finished read's list.
    _decode_lock.acquire()
    previous_limit = Image.MAX_IMAGE_PIXELS
    try:
        # Our own limit replaces Pillow's (whose warning and error thresholds differ).
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings(record=True) as noticed:
            warnings.simplefilter("always")
            array = _decode(path, max_pixels)
    except _TooLarge as error:
        width, height = error.args
        raise ImageReadError(
            f"{path}: {width}x{height} = {_pixels(width * height)} exceeds the limit of {_pixels(max_pixels)}; "
            "raise it with --max-pixels if you trust the file"
        ) from None
    except MemoryError:
        raise
    except OSError as error:
        if error.errno is not None and error.strerror:  # the file system's, not a decoder's
            raise ImageReadError(f"{path}: cannot read ({error.strerror})") from None
        raise ImageReadError(f"{path}: cannot decode as an image ({_first_line(error)})") from None
    except Exception as error:  # decoders raise anything (RuntimeError, struct.error...) on bad data
        raise ImageReadError(f"{path}: cannot decode as an image ({_first_line(error)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
        _decode_lock.release()
    check_gif_trailer(path)
    if noticed:  # one warning per file, however many the decoder gave
        messages = dict.fromkeys(_first_line(warning.message).strip().rstrip(".") for warning in noticed)
        warnings.warn(f"{path}: {'; '.join(messages)}", ImageReadWarning, stacklevel=2)
    array = _to_uint8(np.asarray(array), path)
    if array.ndim == 3 and array.shape[2] in (2, 4) and np.all(array[..., -1] == 255):
        array = array[..., :-1]  # an alpha channel that is opaque everywhere says nothing
    return _tidy_channels(array, path)


def _pixels(n_pixels):
    """'200 megapixels', '1.5 megapixels', '768 pixels': exact, never '0 megapixels'."""
    return f"{n_pixels / 1e6:g} megapixels" if n_pixels >= 1_000_000 else f"{n_pixels:,} pixels"


def _first_line(error):
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__


def _decode(path, max_pixels):
    """The first frame of path as an array, converted as read_image describes."""
    with iio.imopen(path, "r", plugin="pillow") as file:
        shape = file.properties(index=0).shape
        if len(shape) >= 2 and shape[0] * shape[1] > max_pixels:
            raise _TooLarge(shape[1], shape[0])
        metadata = file.metadata(index=0, exclude_applied=False)
        mode = metadata.get("mode")
        convert = _pillow_target_mode(mode, metadata)
        if mode == "P":
            return _palette_pixels(path, convert)
        return file.read(index=0, mode=convert, rotate=True)


ORIENTATION_TAG = 0x0112


def _palette_pixels(path, convert):
    """A palette image's first frame in mode convert (RGB or RGBA), looked up from its
    indices: half the memory of converting the whole image (a 196 MP GIF canvas is
    196 MB of indices and 784 MB of RGBA), and the pixels of Pillow's own conversion
    (its tRNS alpha included), which converts every index once."""
    from PIL import ImageOps

    with Image.open(path) as image:
        image.load()
        if image.mode != "P":  # some decoders change mode on load
            return np.asarray(ImageOps.exif_transpose(image).convert(convert))
        if image.getexif().get(ORIENTATION_TAG, 1) != 1:
            image = ImageOps.exif_transpose(image)
        every_index = Image.new("P", (256, 1))
        every_index.putdata(range(256))
        every_index.putpalette(image.getpalette(rawmode=image.palette.mode), rawmode=image.palette.mode)
        if "transparency" in image.info:
            every_index.info["transparency"] = image.info["transparency"]
        table = np.asarray(every_index.convert(convert))[0]
        return table[np.asarray(image)]


def check_gif_trailer(path: PathLike) -> None:
    """Raise ImageReadError for a GIF file cut short: Pillow reads the frames it finds and
    stops quietly where the data ends, so a GIF must end with its trailer byte ';' (NUL
    padding after it allowed)."""
    path = Path(path)
    with open(path, "rb") as file:
        if file.read(4) != b"GIF8":
            return
        file.seek(max(0, path.stat().st_size - 4096))
        if not file.read().rstrip(b"\0").endswith(b";"):
            raise ImageReadError(f"{path}: ends without the GIF trailer; the file is truncated")


def frame_count(path: PathLike) -> int:
    """How many frames (pages, animation frames) an image file holds; 1 when unknown."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # read_image has told them
            with Image.open(path) as image:
                return int(getattr(image, "n_frames", 1))
    except Exception:  # only a hint for a message: read_image reports real problems
        return 1
