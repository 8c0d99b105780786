"""The quantize pipeline over every image layout: grey or RGB, with or without alpha, fitted
in sRGB or OKLab, mapped plainly or with dithering.

``prepare`` histograms an image once, in the space k-means runs in, and draws the
sampled stages; ``fit`` then fits a palette of any size up to the prepared one (a
target-quality search fits several sizes on one preparation); ``pixel_labels`` maps
every pixel.  Validation is the caller's (the public API).
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _kernels, _kmeans, _spaces

# Transparent pixels all take palette entry 0, fully transparent black.
TRANSPARENT = np.zeros(1, dtype=np.uint8)


@dataclass
class Prepared:
    """An image's colours in the space k-means runs in.

    pixels      (n, C) uint8 as given (C counts alpha, last, when ``alpha``)
    colours     (u, C) uint8 distinct colours of the fitted pixels (premultiplied when
                ``alpha``), counts (u,) int64 their pixels
    points      (u, d) uint8 the colours in the fit's space (``colours`` itself, or
                OKLab codes), zero-padded to 3 channels when they have fewer
    fit_channels the channels of points before padding
    stages      _kmeans.Stages over points
    visible     (n,) bool, pixels that are not fully transparent, when a transparent
                entry is reserved; else None
    inverse     (u_pixels,) colour index of each fitted pixel when colours came from
                np.unique (4 channels), else None (colours are looked up by table)
    fitted      the pixels that were histogrammed: ``pixels`` itself, or premultiplied
                (and without the fully transparent ones when an entry is reserved)
    error_pixels every pixel (n, C) in the space errors are measured in: ``pixels``, or
                all of them premultiplied
    """

    pixels: Optional[np.ndarray]  # None for a palette fitted over several images
    alpha: bool
    space: str
    colours: np.ndarray
    counts: np.ndarray
    points: np.ndarray
    stages: object
    visible: Optional[np.ndarray]
    inverse: Optional[np.ndarray]
    fitted: Optional[np.ndarray] = None
    error_pixels: Optional[np.ndarray] = None
    fit_channels: Optional[int] = None

    def __post_init__(self):
        if self.fit_channels is None:
            self.fit_channels = self.points.shape[1]

    @property
    def reserves_transparent(self):
        return self.visible is not None

    def decode(self, centres):
        """uint8 palette (k, C) in the image's channels (straight alpha) of fitted centres."""
        centres = centres[:, : self.fit_channels]
        if self.space == "oklab":
            return _spaces.decode_oklab(centres)
        if self.alpha:
            return _spaces.unpremultiply(centres)
        return _kmeans.round_palette(centres)

    def encode(self, palette):
        """palette (k, C) uint8 as float32 points of the fit's space, exactly (unpadded)."""
        if self.space == "oklab":
            return _spaces.oklab_codes(palette)
        if self.alpha:
            return _spaces.premultiply(palette).astype(np.float32)
        return palette.astype(np.float32)

    def error_palette(self, palette):
        """palette (k, C) uint8 in the space errors are measured in (premultiplied for alpha)."""
        return _spaces.premultiply(palette) if self.alpha else palette


def _packed_unique(points):
    """Distinct rows of points (n, 4) uint8: colours (u, 4), inverse (n,), counts (u,) int64."""
    keys = np.ascontiguousarray(points).view(np.uint32).ravel()
    unique_keys, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    colours = unique_keys.view(np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(colours), inverse.ravel(), counts.astype(np.int64)


def prepare(pixels, *, alpha, space, n_colors, rng, sample_size, reserve_transparent=True):
    """Histogram and stages of pixels (n, C) uint8 for fits of up to n_colors entries.

    alpha: the last channel is alpha; colours are premultiplied, and with
    ``reserve_transparent`` fully transparent pixels are left out of the fit (they take
    a reserved entry).  space: "rgb" (as stored) or "oklab" (without alpha only).
    """
    visible = inverse = None
    fitted = premultiplied = pixels
    if alpha:
        premultiplied = _spaces.premultiply(pixels)
        fitted = premultiplied
        if reserve_transparent:
            visible = pixels[:, -1] > 0
            if visible.all():
                visible = None  # nothing transparent: no entry reserved
            else:
                fitted = premultiplied[visible]
    if fitted.shape[1] <= _kmeans.MAX_PACKED_CHANNELS:
        colours, counts = _kmeans.distinct_colours(fitted)
        stages = _kmeans.pixel_stages(fitted, colours, counts, n_colors, rng, sample_size)
    else:
        colours, inverse, counts = _packed_unique(fitted)
        stages = _kmeans.weighted_stages(colours, counts, n_colors, rng, sample_size)
    points = colours
    if space == "oklab":
        points = _spaces.encode_oklab(colours)
        encoded = {}

        def encode(stage):
            # Stages may share point sets; keep them shared (fit_stages skips repeats).
            if id(stage) not in encoded:
                encoded[id(stage)] = (points if stage[0] is colours else _spaces.encode_oklab(stage[0]), stage[1])
            return encoded[id(stage)]

        stages = _kmeans.Stages(
            encode(stages.seed), encode(stages.sample), encode(stages.full),
            encode(stages.seeding) if stages.seeding is not None else None,
        )
    fit_channels = points.shape[1]
    if fit_channels < FIT_CHANNELS:
        points, stages = _padded(points, stages)
    return Prepared(
        pixels, alpha, space, colours, counts, points, stages, visible, inverse, fitted, premultiplied, fit_channels
    )


# Grey and grey + alpha images are fitted as 3-channel points whose other channels are
# 0: the same distances, so the same k-means, on the kernels (and compiled code) RGB
# photos use.  A grey photo's first use compiled 21 s of CPU time of kernels of its own
# (the 2-core machine, bench/first_run.py).
FIT_CHANNELS = 3


def _padded(points, stages):
    """points (u, d) and every stage's points, zero-padded to FIT_CHANNELS channels."""
    padded = {}

    def pad(stage_points):
        if id(stage_points) not in padded:
            wide = np.zeros((stage_points.shape[0], FIT_CHANNELS), dtype=np.uint8)
            wide[:, : stage_points.shape[1]] = stage_points
            padded[id(stage_points)] = wide
        return padded[id(stage_points)]

    def pad_stage(stage):
        # Stages may share point sets; keep them shared (fit_stages skips repeats).
        if id(stage) not in padded:
            padded[id(stage)] = (pad(stage[0]), stage[1])
        return padded[id(stage)]

    stages = _kmeans.Stages(
        pad_stage(stages.seed), pad_stage(stages.sample), pad_stage(stages.full),
        pad_stage(stages.seeding) if stages.seeding is not None else None,
    )
    return pad(points), stages


def _fit_points(prepared, palette):
    """palette (k, C) uint8 as float32 points of the fit, padded as prepared.points."""
    points = prepared.encode(palette)
    if points.shape[1] == prepared.points.shape[1]:
        return points
    wide = np.zeros((points.shape[0], prepared.points.shape[1]), dtype=np.float32)
    wide[:, : points.shape[1]] = points
    return wide


@dataclass
class Fit:
    palette: np.ndarray  # (m, C) uint8, straight alpha; entry 0 transparent if reserved
    colour_labels: np.ndarray  # (u,) int32 palette index of each prepared colour
    squared_error: float  # summed over pixels and channels, in the error space
    n_iter: int


def _with_transparent(prepared, palette, colour_labels):
    """Put the reserved transparent entry first and the other entries by rising alpha
    (PNG's tRNS chunk then ends at the last translucent entry)."""
    order = np.argsort(palette[:, -1], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    palette = np.concatenate([np.zeros((1, palette.shape[1]), dtype=np.uint8), palette[order]])
    return palette, (rank[colour_labels] + 1).astype(np.int32)


def fit(prepared, n_colors, rng, *, n_init, max_iter, tol, n_swaps=None):
    """Fit a palette of at most n_colors entries to a prepared image."""
    n_fitted = n_colors - (1 if prepared.reserves_transparent else 0)
    colours, counts = prepared.colours, prepared.counts
    n_iter = 0
    if colours.shape[0] == 0:
        palette = np.zeros((0, colours.shape[1]), dtype=np.uint8)
    elif colours.shape[0] <= n_fitted:
        # The image itself is the best palette: zero error.
        palette = prepared.decode(colours.astype(np.float64)) if prepared.alpha else colours.copy()
    else:
        tol_abs = _kmeans.tolerance(np.ascontiguousarray(prepared.points[:, : prepared.fit_channels]), counts, tol)
        centres, n_iter, point_set = _kmeans.fit_stages(
            prepared.stages, n_fitted, rng, n_init=n_init, max_iter=max_iter, tol_abs=tol_abs, n_swaps=n_swaps
        )
        palette = prepared.decode(centres)
        # The full stage is prepared.points (with its weights): its cells find the nearest entries.
        return map_onto(prepared, palette, n_iter=n_iter, point_set=point_set)
    return map_onto(prepared, palette, n_iter=n_iter)


def map_onto(prepared, palette, *, n_iter=0, point_set=None):
    """Map a prepared image's colours onto palette (m, C) uint8 (straight alpha);
    point_set, a PointSet of prepared.points, searches over its cells."""
    colours, counts = prepared.colours, prepared.counts
    if palette.shape[0] == 0:
        colour_labels = np.zeros(0, dtype=np.int32)
        error = 0
    else:
        if point_set is not None:
            colour_labels = point_set.nearest(_fit_points(prepared, palette))
        else:
            colour_labels = _kmeans.nearest_entries(prepared.points, _fit_points(prepared, palette))
        error = int(_kernels.squared_error(colours, counts, prepared.error_palette(palette), colour_labels))
    if prepared.reserves_transparent:
        palette, colour_labels = _with_transparent(prepared, palette, colour_labels)
    return Fit(palette, colour_labels, error, n_iter)


def palette_counts(prepared, result):
    """Pixels (m,) int64 that each palette entry of an undithered fit stands for: the
    histogram's counts summed per colour label (no pass over the pixels); the fully
    transparent pixels go to entry 0."""
    n_entries = result.palette.shape[0]
    counts = np.zeros(n_entries, dtype=np.int64)
    if result.colour_labels.shape[0]:
        # float64 sums of integer counts are exact below 2**53 pixels.
        counts += np.rint(np.bincount(result.colour_labels, weights=prepared.counts, minlength=n_entries)).astype(np.int64)
    if prepared.reserves_transparent:
        counts[0] += prepared.pixels.shape[0] - int(np.count_nonzero(prepared.visible))
    return counts


def pixel_labels(prepared, result, labels_dtype):
    """Label (n,) of every pixel: its colour's label, through a table or np.unique's inverse."""
    n_pixels = prepared.pixels.shape[0]
    colour_labels = result.colour_labels.astype(labels_dtype)
    if prepared.inverse is not None:
        fitted = colour_labels[prepared.inverse]
    elif prepared.colours.shape[0] == 0:
        fitted = np.zeros(0, dtype=labels_dtype)
    else:
        fitted = np.empty(prepared.visible.sum() if prepared.reserves_transparent else n_pixels, dtype=labels_dtype)
        table = _kmeans.label_table(prepared.colours, colour_labels)
        _kernels.remap_through_table(prepared.fitted, table, fitted)
    if not prepared.reserves_transparent:
        return fitted
    labels = np.zeros(n_pixels, dtype=labels_dtype)  # transparent pixels: entry 0
    labels[prepared.visible] = fitted
    return labels


def _pixel_points(prepared):
    """Every pixel (n, d) uint8 in the fit's space."""
    if prepared.alpha:
        return prepared.error_pixels
    if prepared.space == "oklab":
        # Each distinct colour's code, looked up per pixel through packed-key tables.
        codes = prepared.points[:, : prepared.fit_channels]
        packed = np.zeros(codes.shape[0], dtype=np.uint32)
        for j in range(codes.shape[1]):
            packed = (packed << np.uint32(8)) | codes[:, j].astype(np.uint32)
        per_pixel = np.empty(prepared.pixels.shape[0], dtype=np.uint32)
        _kernels.remap_through_table(prepared.pixels, _kmeans.label_table(prepared.colours, packed), per_pixel)
        shifts = np.uint32(8) * np.arange(codes.shape[1] - 1, -1, -1, dtype=np.uint32)
        return ((per_pixel[:, None] >> shifts) & np.uint32(255)).astype(np.uint8)
    return prepared.pixels


def dithered_labels(prepared, result, width, strength, labels_dtype):
    """Labels (n,) of every pixel by Floyd-Steinberg error diffusion in the fit's space."""
    points = np.ascontiguousarray(_pixel_points(prepared))
    palette_points = prepared.encode(result.palette)
    labels = np.zeros(points.shape[0], dtype=labels_dtype)
    skip = np.zeros(0, dtype=np.bool_)
    if prepared.reserves_transparent:
        skip = ~prepared.visible
        palette_points[0] = np.float32(1e6)  # the reserved entry is for transparent pixels only
    n_channels = points.shape[1]
    # A lookup table pays for large palettes only: for a few entries, searching them all
    # costs less than the cache miss of a 64 MB table.
    use_table = n_channels <= _kmeans.MAX_PACKED_CHANNELS and palette_points.shape[0] > DITHER_TABLE_ABOVE
    table = np.full(256**n_channels, -1, dtype=np.int32) if use_table else np.zeros(0, np.int32)
    radius = guess_radius(palette_points)
    if prepared.reserves_transparent:
        radius[0] = 0.0  # never guessed
    _kernels.floyd_steinberg(points, width, palette_points, float(strength), skip, table, radius, labels)
    return labels


# Palette sizes above which dithering caches nearest entries in a table.  Measured on
# the 12 MP bus photo (one thread, busy machine): k=16 takes 0.8 s without the table and
# 2.7 s with it (3.9 M entries filled, each a cache miss); k=256 takes 3.3 s with it
# and 8.6 s without.
DITHER_TABLE_ABOVE = 32


def guess_radius(palette_points):
    """(m,) float32: a squared distance within which each entry is surely the nearest.

    Within half the distance to its nearest other entry, an entry is strictly nearer
    than any other (triangle inequality); squared, a quarter, shrunk by 2 % so float32
    rounding of the distances can never turn the test wrong.
    """
    m = palette_points.shape[0]
    if m < 2:
        return np.full(m, np.inf, dtype=np.float32)
    gap = _kmeans.nearest_other_centre(palette_points.astype(np.float64))[1]
    return (0.98 * 0.25 * gap).astype(np.float32)


def pixel_squared_error(prepared, palette, labels):
    """Summed squared error of every pixel against palette[labels], in the error space."""
    return int(
        _kernels.squared_error(prepared.error_pixels, np.zeros(0, np.int64), prepared.error_palette(palette), labels)
    )


def mean_delta_e(prepared, palette, result=None, labels=None):
    """Mean OKLab ΔE between every pixel and its palette colour; None with alpha.

    From the histogram when each colour has one label (``result``), else per pixel.
    """
    if prepared.alpha:
        return None
    palette_lab = _spaces.oklab(palette)
    if labels is None:
        distances = np.sqrt(((_spaces.oklab(prepared.colours) - palette_lab[result.colour_labels]) ** 2).sum(axis=1))
        return float(distances @ prepared.counts / prepared.counts.sum())
    total = _kernels.oklab_distance_sum(
        prepared.pixels, labels, _spaces.SRGB_TO_LINEAR, _spaces.RGB_TO_LMS, _spaces.LMS_TO_LAB, palette_lab
    )
    return float(total / prepared.pixels.shape[0])
