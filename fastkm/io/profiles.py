"""Colour profiles: what colour space an image's numbers are in, and conversion to sRGB.

An image's pixel values mean colours only through its colour space: an ICC profile
(iCCP in PNG, APP2 in JPEG, ICCP in WebP, tag 34675 in TIFF), or for PNG the sRGB,
gAMA and cHRM chunks; a file without any of them is sRGB by convention.  Here a colour
space is carried as the ICC profile's bytes, with None for sRGB.

PNG, WebP, TIFF and JPEG files can carry a profile: the quantized image keeps its
palette in the source's space and embeds the same profile.  GIF and BMP (as Pillow
writes them) cannot: pixels are converted to sRGB through LittleCMS (Pillow's
``ImageCms``) before quantizing, so the palette is fitted to the colours shown.

``rgb_profile`` builds a small ICC matrix/TRC profile from primaries, a white point and
a tone curve: PNG gAMA/cHRM chunks become one, and so do the Display P3 and Adobe RGB
(1998) profiles the tests tag their images with (no binary profile in the repository).
"""

import io
import struct
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

# Formats whose files fastkm writes with an embedded ICC profile.
PROFILE_FORMATS = {"PNG", "WEBP", "TIFF", "JPEG"}
# Perceptual intent, as colour-managed viewers use: for the matrix/TRC profiles of
# photos it is relative colorimetric (out-of-gamut colours clipped channel by channel).
INTENT = ImageCms.Intent.PERCEPTUAL

# CIE xy chromaticities (red, green, blue) and white points.
D65 = (0.3127, 0.3290)
D50_XYZ = np.array([0.9642, 1.0, 0.8249])
PRIMARIES = {
    "srgb": ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060)),
    "display-p3": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)),
    "adobe-rgb": ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060)),
}
# Tone curves: "srgb" (IEC 61966-2-1, also Display P3's) or a pure gamma.
ADOBE_RGB_GAMMA = 563 / 256  # 2.19921875, as Adobe RGB (1998) specifies
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
# A PNG gAMA within this of 1/2.2 without cHRM (or with sRGB's) is sRGB, as browsers take it.
_SRGB_GAMMA_TOLERANCE = 0.01


class ProfileError(ValueError):
    """An ICC profile that LittleCMS cannot use; the message says why."""


def _xy_to_xyz(x, y):
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_d50(primaries, white=D65):
    """The 3x3 matrix from linear RGB to CIE XYZ (D50, as ICC profiles store it) of an
    RGB space given by its primaries ((xr, yr), (xg, yg), (xb, yb)) and white (x, y)."""
    columns = np.stack([_xy_to_xyz(*xy) for xy in primaries], axis=1)
    white_xyz = _xy_to_xyz(*white)
    matrix = columns * np.linalg.solve(columns, white_xyz)
    # Bradford chromatic adaptation from the space's white to the D50 of the ICC PCS.
    cone_source, cone_d50 = _BRADFORD @ white_xyz, _BRADFORD @ D50_XYZ
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_d50 / cone_source) @ _BRADFORD
    return adapt @ matrix


def _s15(value):
    return struct.pack(">i", int(round(value * 65536)))


def _xyz_tag(xyz):
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _text_description(text):
    ascii_text = text.encode("ascii") + b"\0"
    # ICC v2 textDescriptionType: ASCII, then empty Unicode and ScriptCode parts.
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)


def _curve(gamma):
    if gamma == "srgb":
        # parametricCurveType 3: Y = (aX + b)^g for X >= d, else cX.
        params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
        return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in params)
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, int(round(gamma * 256)))  # u8Fixed8 gamma


def rgb_profile(primaries, white=D65, gamma="srgb", description="RGB"):
    """An ICC v2 display profile (bytes) for an RGB space: primaries as CIE xy pairs
    (red, green, blue), white point (x, y), tone curve "srgb" or a gamma (2.2, 563/256).

    >>> display_p3 = rgb_profile(PRIMARIES["display-p3"], description="Display P3")
    """
    matrix = rgb_to_xyz_d50(primaries, white)
    trc = _curve(gamma)
    tags = [
        (b"desc", _text_description(description)),
        (b"cprt", b"text\0\0\0\0No copyright, use freely\0"),
        (b"wtpt", _xyz_tag(D50_XYZ)),  # v2 display profiles: the PCS white (what LittleCMS uses)
        (b"rXYZ", _xyz_tag(matrix[:, 0])),
        (b"gXYZ", _xyz_tag(matrix[:, 1])),
        (b"bXYZ", _xyz_tag(matrix[:, 2])),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, data = [struct.pack(">I", len(tags))], []
    shared = {}
    for signature, body in tags:
        if body not in shared:  # the three curves share one copy
            shared[body] = offset
            padded = body + bytes(-len(body) % 4)
            data.append(padded)
            offset += len(padded)
        table.append(signature + struct.pack(">II", shared[body], len(body)))
    size = offset
    header = (
        struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
        + struct.pack(">6H", 2000, 1, 1, 0, 0, 0) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8)
        + struct.pack(">I", 0) + b"".join(_s15(v) for v in D50_XYZ) + b"lcms" + bytes(16 + 28)
    )
    return header + b"".join(table) + b"".join(data)


@lru_cache(maxsize=1)
def srgb_profile():
    """LittleCMS's built-in sRGB profile (an ImageCmsProfile)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=16)
def _open(icc_profile):
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError) as error:
        raise ProfileError(f"its ICC profile cannot be read ({error})") from None


def profile_space(icc_profile):
    """The colour space an ICC profile's pixels are in: 'RGB', 'GRAY', 'CMYK', ..."""
    return _open(icc_profile).profile.xcolor_space.strip()


def describe(icc_profile):
    """A short name of a colour space for messages: the profile's description, or 'sRGB'."""
    if icc_profile is None:
        return "sRGB"
    try:
        return ImageCms.getProfileDescription(_open(icc_profile)).strip() or "an unnamed ICC profile"
    except (ProfileError, ImageCms.PyCMSError):
        return "an unreadable ICC profile"


@lru_cache(maxsize=16)
def is_srgb(icc_profile):
    """True for None and for RGB profiles that map every colour of a 17-step grid to
    sRGB within one step of 255 (an sRGB profile under another name)."""
    if icc_profile is None:
        return True
    if profile_space(icc_profile) != "RGB":
        return False
    steps = np.linspace(0, 255, 17).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(17 * 17, 17, 3)
    converted = to_srgb(grid, icc_profile)
    return int(np.abs(converted.astype(np.int16) - grid).max()) <= 1


def same_space(a, b):
    """True when two profiles (None = sRGB) describe the same colours."""
    return a == b or (is_srgb(a) and is_srgb(b))


def png_chunk_profile(info):
    """The colour space of PNG chunks as Pillow reports them in ``Image.info``: the iCCP
    profile; None for an sRGB chunk, for no colour chunk, and for a gAMA of 1/2.2 with
    sRGB's cHRM or none; otherwise a profile built from gAMA and cHRM."""
    if info.get("icc_profile"):
        return info["icc_profile"]
    if "srgb" in info or "gamma" not in info:
        return None
    file_gamma = float(info["gamma"])
    if file_gamma <= 0:
        return None  # an invalid chunk: PNG decoders ignore it
    chromaticity = info.get("chromaticity")
    if chromaticity is None:
        white, primaries = D65, PRIMARIES["srgb"]
    else:
        wx, wy, rx, ry, gx, gy, bx, by = chromaticity
        white, primaries = (wx, wy), ((rx, ry), (gx, gy), (bx, by))
    srgb_chromaticity = np.allclose([*white, *np.ravel(primaries)], [*D65, *np.ravel(PRIMARIES["srgb"])], atol=0.002)
    if srgb_chromaticity and abs(file_gamma - 1 / 2.2) < _SRGB_GAMMA_TOLERANCE:
        return None
    return rgb_profile(primaries, white, gamma=1 / file_gamma, description=f"PNG gAMA {file_gamma:.5f} and cHRM")


def convert_image_to_srgb(image, icc_profile):
    """A Pillow image in the space of ``icc_profile`` (RGB, RGBA, L, LA, CMYK...) as an
    sRGB Pillow image: RGB, or RGBA when the input has alpha (kept as it is)."""
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA") else None
    space = profile_space(icc_profile)
    mode = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}.get(space)
    if mode is None:
        raise ProfileError(f"its ICC profile is for {space} pixels, which fastkm cannot convert")
    if image.mode != mode:
        image = image.convert(mode)
    try:
        converted = ImageCms.profileToProfile(
            image, _open(icc_profile), srgb_profile(), renderingIntent=INTENT, outputMode="RGB"
        )
    except ImageCms.PyCMSError as error:
        raise ProfileError(f"cannot convert its colours to sRGB ({error})") from None
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def to_srgb(pixels, icc_profile):
    """Pixels (H, W, 3) RGB or (H, W, 4) RGBA uint8 in the space of ``icc_profile``
    (bytes; None = already sRGB) converted to sRGB, same shape and dtype; alpha kept.
    Grey images, (H, W) and (H, W, 2), are returned as they are: grey is neutral in
    every RGB space, and grey profiles are converted when the file is read."""
    if icc_profile is None or pixels.ndim == 2 or pixels.shape[2] in (1, 2):
        return pixels
    mode = "RGBA" if pixels.shape[2] == 4 else "RGB"
    image = Image.fromarray(np.ascontiguousarray(pixels), mode)
    return np.asarray(convert_image_to_srgb(image, icc_profile))


def carries_profile(file_format):
    """True when fastkm writes ``file_format`` ('PNG', 'GIF', ...) with an ICC profile."""
    return file_format in PROFILE_FORMATS
