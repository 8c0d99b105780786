"""Colour spaces that k-means can run in: sRGB as stored, OKLab, premultiplied alpha.

k-means runs on uint8 points.  For OKLab, colours are coded into uint8 points, chroma
scaled a little more than lightness (Euclidean distance between codes is an OKLab ΔE
that weighs chroma error OKLAB_CHROMA_WEIGHT times); for images with alpha, colours are premultiplied by their
alpha, so a nearly transparent pixel's invisible colour costs next to nothing.  Palettes
are decoded back to uint8 sRGB (straight alpha), and re-encoded exactly as float32 to
assign every colour to its nearest entry in the space the fit ran in.

Plain NumPy on palettes and distinct colours; the per-pixel work lives in ``_kernels``.
"""

import numpy as np

SPACES = ("rgb", "oklab")

# Björn Ottosson's OKLab (2020): linear sRGB -> LMS, cube root, -> Lab; and back.
RGB_TO_LMS = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
LMS_TO_LAB = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)
LAB_TO_LMS = np.array(
    [
        [1.0, 0.3963377774, 0.2158037573],
        [1.0, -0.1055613458, -0.0638541728],
        [1.0, -0.0894841775, -1.2914855480],
    ]
)
LMS_TO_RGB = np.array(
    [
        [4.0767416621, -3.3077115913, 0.2309699292],
        [-1.2684380046, 2.6097574011, -0.3413193965],
        [-0.0041960863, -0.7034186147, 1.7076147010],
    ]
)
# OKLab of sRGB colours: L in [0, 1], a in [-0.234, 0.277], b in [-0.312, 0.199].  A
# scale of 255 per unit of L, with a and b offset to the middle, codes every colour
# within 0..255 at a step of 0.0039 ΔE, well under the ~0.02 of a just-noticeable
# difference.  Chroma (a, b) is scaled OKLAB_CHROMA_WEIGHT times as much, so k-means
# weighs chroma error that much more against lightness error: on 6 Kodak photos at
# k = 32-256 (bench/results/oklab_chroma.md) 1.15 lowered FLIP by 2-3 % and bytes by
# 1-2 % at equal SSIMULACRA2 (1.25 and 1.5 lowered both further but cost SSIMULACRA2).
# Codes stay within 0..255: a 59..209, b 36..187.
OKLAB_CHROMA_WEIGHT = 1.15
# With few colours, lightness steps are most of what shows: up to 8 colours chroma weighs
# SMALL_PALETTE_CHROMA_WEIGHT, rising (linearly in log2 k) to OKLAB_CHROMA_WEIGHT at 32.
# On the bundled and Kodak photos at k = 8, plain, SSIMULACRA2 was 0.5 points above
# pngquant's at 1.15 and 2.0 at 1.0 (seed 1: 1.2 and 1.6), at 0.904 of its bytes instead
# of 0.885; on six 1024x768 crops of a 12 MP phone photo 3.4 and 6.6, at 0.976 of its
# bytes instead of 0.942 (bench/results/oklab_chroma.md).  Lower weights scored higher
# still but reached pngquant's bytes on the crops (0.9: 1.001).
SMALL_PALETTE_CHROMA_WEIGHT = 1.0
OKLAB_OFFSET = np.array([0.0, 128.0, 128.0])


def chroma_weight(n_colors):
    """How much chroma weighs against lightness in the OKLab codes of a fit of n_colors."""
    ramp = min(max((np.log2(max(n_colors, 1)) - 3.0) / 2.0, 0.0), 1.0)  # 0 up to 8 colours, 1 from 32
    return SMALL_PALETTE_CHROMA_WEIGHT + ramp * (OKLAB_CHROMA_WEIGHT - SMALL_PALETTE_CHROMA_WEIGHT)


def _scale(chroma):
    """Code units per unit of OKLab L, a and b."""
    return np.array([255.0, 255.0 * chroma, 255.0 * chroma])


def srgb_to_linear(values):
    """sRGB values 0..255 (any shape) to linear light 0..1, float64."""
    c = np.asarray(values, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear):
    """Linear light (any shape, clipped to 0..1) to sRGB 0..255 float64."""
    c = np.clip(linear, 0.0, 1.0)
    return 255.0 * np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


# Linear light of every 8-bit sRGB value, for the per-pixel kernels.
SRGB_TO_LINEAR = srgb_to_linear(np.arange(256))


def oklab(colours):
    """OKLab (n, 3) float64 of colours (n, 3) RGB or (n, 1) grey, uint8 sRGB."""
    rgb = np.broadcast_to(colours, (colours.shape[0], 3)) if colours.shape[1] == 1 else colours
    # einsum, not @: a (n, 3) x (3, 3) product through BLAS starts its thread pool, which
    # cost 30 ms against 1.6 on 93k colours on a busy 2-core machine (the ΔE of every summary).
    lms = np.einsum("ij,kj->ik", SRGB_TO_LINEAR[rgb], RGB_TO_LMS)
    return np.einsum("ij,kj->ik", np.cbrt(lms), LMS_TO_LAB)


def oklab_to_srgb(lab):
    """sRGB (n, 3) float64 in 0..255 of OKLab (n, 3); out-of-gamut colours are clipped."""
    lms = (np.asarray(lab, dtype=np.float64) @ LAB_TO_LMS.T) ** 3
    return linear_to_srgb(lms @ LMS_TO_RGB.T)


def encode_oklab(colours, lab=None, chroma=OKLAB_CHROMA_WEIGHT):
    """uint8 OKLab codes (n, C) of colours (n, C) uint8 sRGB, C = 3 (RGB) or 1 (grey:
    only L, as a and b are 0); ``lab``, their oklab() when the caller has it already;
    ``chroma``, the weight of a and b against L (chroma_weight)."""
    codes = (oklab(colours) if lab is None else lab) * _scale(chroma) + OKLAB_OFFSET
    codes = codes[:, :1] if colours.shape[1] == 1 else codes
    return np.clip(np.rint(codes), 0, 255).astype(np.uint8)


def oklab_codes(palette, chroma=OKLAB_CHROMA_WEIGHT):
    """Exact float32 OKLab codes (m, C) of a uint8 sRGB palette (m, C), C = 1 or 3."""
    codes = oklab(palette) * _scale(chroma) + OKLAB_OFFSET
    return (codes[:, :1] if palette.shape[1] == 1 else codes).astype(np.float32)


def decode_oklab(centres, chroma=OKLAB_CHROMA_WEIGHT):
    """uint8 sRGB palette (m, C) of k-means centres (m, C) in OKLab code units."""
    n_channels = centres.shape[1]
    lab = np.zeros((centres.shape[0], 3))
    lab[:, :n_channels] = centres
    lab = (lab - OKLAB_OFFSET) / _scale(chroma)
    if n_channels == 1:
        lab[:, 1:] = 0.0
    rgb = oklab_to_srgb(lab)
    rgb = rgb.mean(axis=1, keepdims=True) if n_channels == 1 else rgb
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


# Pixels premultiplied at a time: the working copies then take a few MB, not ten times
# the image (a 196 MP canvas: 7 GB), and stay in cache.
PREMULTIPLY_BLOCK = 1 << 16


def premultiply(pixels):
    """Colours (n, C) uint8 with alpha last, premultiplied and rounded to uint8.

    Each colour channel becomes round(c * alpha / 255); alpha stays.  Fully transparent
    pixels all become 0.
    """
    out = np.empty_like(pixels)
    for start in range(0, pixels.shape[0], PREMULTIPLY_BLOCK):
        block = pixels[start:start + PREMULTIPLY_BLOCK]
        colour = block[:, :-1] * block[:, -1:].astype(np.uint32)
        colour += 127
        colour //= 255
        out[start:start + PREMULTIPLY_BLOCK, :-1] = colour
        out[start:start + PREMULTIPLY_BLOCK, -1] = block[:, -1]
    return out


def unpremultiply(centres):
    """Straight-alpha uint8 palette (m, C) of premultiplied centres (m, C) float64."""
    alpha = np.clip(np.rint(centres[:, -1:]), 0, 255)
    colour = np.where(alpha > 0, centres[:, :-1] * 255.0 / np.maximum(alpha, 1.0), 0.0)
    palette = np.empty(centres.shape, dtype=np.uint8)
    palette[:, :-1] = np.clip(np.rint(colour), 0, 255)
    palette[:, -1:] = alpha
    return palette
