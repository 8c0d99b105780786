"""Reading image files into uint8 arrays, with their colour profile and metadata (Pillow)."""

import io
import os
import re
import stat
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

from .atomic import PathLike
from .profiles import ProfileError, convert_image_to_srgb, png_chunk_profile, profile_space


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


@dataclass(frozen=True)
class Metadata:
    """What an image file says besides its pixels and colours, as fastkm passes it on.

    exif  the EXIF block (bytes, b"Exif\\0\\0" + TIFF structure as Pillow stores it) with
          its orientation tag removed once the rotation is applied to the pixels; or None
    xmp   the XMP packet (bytes), orientation likewise removed; or None
    dpi   (x, y) pixels per inch, or None
    text  PNG text chunks {keyword: text} (tEXt, zTXt, iTXt), empty for other formats
    """

    exif: Optional[bytes] = None
    xmp: Optional[bytes] = None
    dpi: Optional[Tuple[float, float]] = None
    text: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageFile:
    """An image file as read: its pixels, the colour space they are in, its metadata.

    pixels       (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA
                 uint8, as ``read_image`` returns them (values in the file's colour space)
    icc_profile  the ICC profile (bytes) of an RGB colour space, or None for sRGB: the
                 file's own profile, or one built from PNG gAMA/cHRM chunks.  CMYK and
                 grey profiles are applied on reading: their pixels come out sRGB.
    metadata     Metadata (EXIF, XMP, resolution, PNG text)
    format       Pillow's name of the file format: 'PNG', 'JPEG', 'WEBP', 'TIFF', ...
    n_bytes      size of the encoded file
    n_frames     frames (pages, animation frames) in the file; the first one is read
    """

    pixels: np.ndarray
    icc_profile: Optional[bytes]
    metadata: Metadata
    format: str
    n_bytes: int
    n_frames: int = 1


def _metadata(image):
    """The Metadata of an opened, loaded, orientation-applied Pillow image."""
    info = image.info
    exif = info.get("exif") or None
    if exif is not None and not exif.startswith(b"Exif"):
        exif = b"Exif\0\0" + exif
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    dpi = info.get("dpi")
    text = {}
    if image.format == "PNG":
        text = {key: str(value) for key, value in getattr(image, "text", {}).items() if key != "XML:com.adobe.xmp"}
    return Metadata(exif=exif, xmp=xmp, dpi=tuple(float(v) for v in dpi) if dpi else None, text=text)


def _colour_profile(image):
    """The ICC profile of an opened Pillow image (None = sRGB), PNG chunks included."""
    if image.format == "PNG":
        return png_chunk_profile(image.info)
    return image.info.get("icc_profile") or None


def checked_max_pixels(max_pixels):
    """max_pixels as an int (a float such as 1e9 taken), or None for no limit; anything
    else, or a limit below one pixel, raises ValueError."""
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, float, np.integer, np.floating)) or not (
        1 <= max_pixels < float("inf")
    ):
        raise ValueError(f"max_pixels={max_pixels!r} must be a number of pixels >= 1, or None for no limit")
    return int(max_pixels)


def _source(path, name=None):
    """(what Pillow opens, size in bytes, name for messages) of a path or encoded bytes
    (named ``name``, default "image data")."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        data = bytes(path)
        name = name or "image data"
        if not data:
            raise ImageReadError(f"{name}: no data (0 bytes)")
        return io.BytesIO(data), len(data), name
    path = Path(path)
    n_bytes = regular_file_size(path)
    if n_bytes == 0:
        raise ImageReadError(f"{path}: file is empty")
    return path, n_bytes, str(path)


def regular_file_size(path: PathLike) -> int:
    """The size in bytes of the regular file at path; ImageReadError when there is none,
    or when it is a folder, a pipe or a device (a pipe with no writer would block the
    read forever, a device can be endless)."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read ({error.strerror or error})") from None
    if stat.S_ISDIR(status.st_mode):
        raise ImageReadError(f"{path}: is a folder, expected an image file")
    if not stat.S_ISREG(status.st_mode):
        raise ImageReadError(
            f"{path}: is not a regular file (a pipe or a device); save the image to a file, or pipe it to standard input"
        )
    return status.st_size


def read_image_file(path, *, max_pixels=DEFAULT_MAX_PIXELS, name=None):
    """Read an image file (a path, or its encoded bytes, e.g. from standard input) with
    its colour profile and metadata; returns an ImageFile.

    The first frame is read; the EXIF orientation is applied to the pixels (and removed
    from the metadata); palette images and other colour modes become RGB or RGBA;
    transparency in a PNG's tRNS chunk (alpha per palette entry, or the colour key of
    an RGB or grey image) becomes alpha; 16-bit samples are rounded to 8 bits; an alpha
    channel opaque everywhere is dropped.  Pixels stay in the file's RGB colour space
    (``icc_profile`` says which); CMYK and grey images with an ICC profile are converted
    to sRGB through it.  What the decoder warns about (a corrupt EXIF block) is warned
    again in one ImageReadWarning naming the file.  A file whose header gives more than
    ``max_pixels`` pixels (None: no limit) is refused before any pixel is decoded.
    Raises ImageReadError with a one-line reason when the file is missing, too large,
    or not an image this function can decode; messages name bytes ``name`` (default
    "image data").
    """
    max_pixels = checked_max_pixels(max_pixels)
    source, n_bytes, name = _source(path, name)
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
            array, icc_profile, metadata, file_format, n_frames = _decode(source, max_pixels)
    except _TooLarge as error:
        width, height = error.args
        raise ImageReadError(
            f"{name}: {width}x{height} = {_pixels(width * height)} exceeds the limit of {_pixels(max_pixels)}; "
            "raise it with --max-pixels if you trust the file"
        ) from None
    except MemoryError:
        raise
    except ProfileError as error:
        raise ImageReadError(f"{name}: {error}") from None
    except Exception as error:
        raise decode_failure(name, error, "an image") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
        _decode_lock.release()
    check_not_truncated(path, name)
    if noticed:  # one warning per file, however many the decoder gave
        messages = dict.fromkeys(_first_line(warning.message).strip().rstrip(".") for warning in noticed)
        warnings.warn(f"{name}: {'; '.join(messages)}", ImageReadWarning, stacklevel=2)
    array = _to_uint8(np.asarray(array), name)
    if array.ndim == 3 and array.shape[2] in (2, 4) and np.all(array[..., -1] == 255):
        array = array[..., :-1]  # an alpha channel that is opaque everywhere says nothing
    return ImageFile(_tidy_channels(array, name), icc_profile, metadata, file_format, n_bytes, n_frames)


def read_colour_profile(path):
    """The ``icc_profile`` that ``read_image_file(path)`` would give, from the file's
    header alone (no pixel decoded); None for sRGB and for a file that cannot be read."""
    if not os.path.isfile(path):
        return None  # a pipe is not opened here (it could block): read_image says what it is
    previous_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # read_image_file tells them
            with Image.open(path) as image:
                profile = _colour_profile(image)
                grey = image.mode in _GREY_MODES or image.mode in ("LA", "La")
                if profile is None or grey or profile_space(profile) != "RGB":
                    return None  # sRGB, or converted to sRGB on reading
                return profile
    except (OSError, ValueError, SyntaxError, ProfileError):
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit


def read_image(path: Union[PathLike, bytes], *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as (H, W, 3) RGB or (H, W) grey uint8, with alpha as a last
    channel ((H, W, 4) RGBA, (H, W, 2) grey + alpha) when some pixel is not opaque.

    The pixels of ``read_image_file(path)``, which says how they are converted, and
    also returns their colour profile and the file's metadata: values in the file's
    colour space (``profiles.to_srgb`` converts).  ``frame_count`` tells how many frames
    a multi-frame file has; the first is read.  Floats (mode F) in [0, 1] are scaled,
    in 0..255 rounded (other ranges refused).
    """
    return read_image_file(path, max_pixels=max_pixels).pixels


def _pixels(n_pixels):
    """'200 megapixels', '1.5 megapixels', '768 pixels', '1 pixel': exact, never '0 megapixels'."""
    return f"{n_pixels / 1e6:g} megapixels" if n_pixels >= 1_000_000 else f"{n_pixels:,} pixel{'s' * (n_pixels != 1)}"


def _first_line(error):
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__


def _decode(source, max_pixels):
    """(pixels, icc_profile, Metadata, format, n_frames) of the first frame of source,
    converted as read_image_file describes."""
    with Image.open(source) as image:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise _TooLarge(width, height)
        n_frames = int(getattr(image, "n_frames", 1))
        file_format = image.format or ""
        icc_profile = _colour_profile(image)
        image.load()
        if image.getexif().get(ORIENTATION_TAG, 1) != 1:
            ImageOps.exif_transpose(image, in_place=True)
        metadata = _metadata(image)
        mode = image.mode
        convert = _pillow_target_mode(mode, image.info)
        if mode == "CMYK" and icc_profile is not None and profile_space(icc_profile) == "CMYK":
            convert = None  # converted through its profile below
        if mode == "P" and (icc_profile is None or profile_space(icc_profile) == "RGB"):
            return _palette_pixels(image, convert), icc_profile, metadata, file_format, n_frames
        if convert is not None:
            image = image.convert(convert)
        grey = image.mode in _GREY_MODES or image.mode == "LA"
        if icc_profile is not None and (profile_space(icc_profile) != "RGB" or grey):
            # Pixels whose profile cannot travel with them (CMYK, grey; an RGB profile
            # from a grey PNG's gAMA): applied now, to sRGB.
            image = convert_image_to_srgb(_as_8bit(image), icc_profile)
            if grey:
                image = image.convert("LA" if image.mode == "RGBA" else "L")
            icc_profile = None
        if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema() == (255, 255):
            # An alpha channel opaque everywhere says nothing: dropped here by Pillow, not
            # copied out with the colours and then dropped (0.07 s less on a 12 MP photo).
            image = image.convert("RGB" if image.mode == "RGBA" else "L")
        return np.asarray(image), icc_profile, metadata, file_format, n_frames


def _as_8bit(image):
    """16- and 32-bit grey Pillow images as 8-bit 'L' (LittleCMS here takes 8-bit only)."""
    if image.mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return image
    return Image.fromarray(_to_uint8(np.asarray(image), "image"))


ORIENTATION_TAG = 0x0112


def _palette_pixels(image, convert):
    """A loaded palette image in mode convert (RGB or RGBA), looked up from its indices:
    half the memory of converting the whole image (a 196 MP GIF canvas is 196 MB of
    indices and 784 MB of RGBA), and the pixels of Pillow's own conversion (its tRNS
    alpha included), which converts every index once."""
    every_index = Image.new("P", (256, 1))
    every_index.putdata(range(256))
    every_index.putpalette(image.getpalette(rawmode=image.palette.mode), rawmode=image.palette.mode)
    if "transparency" in image.info:
        every_index.info["transparency"] = image.info["transparency"]
    table = np.asarray(every_index.convert(convert))[0]
    return table[np.asarray(image)]



def decode_failure(name, error, what):
    """The ImageReadError for ``error`` met while decoding ``name`` as ``what`` ("an
    image", "an animation"): the file system's errors say so, and anything else
    (decoders raise OSError, RuntimeError, struct.error... on bad data) is bad data."""
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        return ImageReadError(f"{name}: cannot read ({error.strerror})")
    # Pillow names a file it was given open as its object ("<_io.BytesIO object at 0x...>").
    reason = re.sub(r" ?<_io\.\w+ object at 0x[0-9a-fA-F]+>", "", _first_line(error))
    return ImageReadError(f"{name}: cannot decode as {what} ({reason})")

# The ends of files whose decoders stop quietly where the data ends: a GIF's trailer
# byte, a PNG's IEND chunk (length 0, type, and the CRC every IEND has).
_GIF_SIGNATURE, _GIF_END = b"GIF8", b";"
_PNG_SIGNATURE, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
# How far from the end the end marker is looked for.
_TAIL_BYTES = 65536


def check_not_truncated(path: Union[PathLike, bytes], name: Optional[str] = None) -> None:
    """Raise ImageReadError for a GIF or PNG file (a path, or its bytes) cut short.

    Pillow reads the frames it finds and stops quietly where the data ends: a GIF must
    end with its trailer byte ';' (NUL padding after it allowed), and a PNG must hold its
    IEND chunk near the end (data after it, which some tools append, allowed): without
    it, the pixels of a cut PNG may still decode, from a file that is not whole."""
    if isinstance(path, bytes):
        head, tail, where = path[:8], path[-_TAIL_BYTES:], name or "the image"
    else:
        path = Path(path)
        where = name or str(path)
        with open(path, "rb") as file:
            head = file.read(8)
            file.seek(max(0, path.stat().st_size - _TAIL_BYTES))
            tail = file.read()
    if head.startswith(_GIF_SIGNATURE) and not tail.rstrip(b"\0").endswith(_GIF_END):
        raise ImageReadError(f"{where}: ends without the GIF trailer; the file is truncated")
    if head == _PNG_SIGNATURE and _PNG_END not in tail:
        raise ImageReadError(f"{where}: ends without the PNG end chunk (IEND); the file is truncated")


def frame_count(path: PathLike) -> int:
    """How many frames (pages, animation frames) an image file holds; 1 when unknown."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # read_image has told them
            with Image.open(path) as image:
                return int(getattr(image, "n_frames", 1))
    except Exception:  # only a hint for a message: read_image reports real problems
        return 1
