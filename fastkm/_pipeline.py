"""The quantize pipeline over every image layout: grey or RGB, with or without alpha, fitted
in sRGB or OKLab, mapped plainly or with dithering.

``prepare`` histograms an image once, in the space k-means runs in, and draws the
sampled stages; ``fit`` then fits a palette of any size up to the prepared one (a
target-quality search fits several sizes on one preparation); ``pixel_labels`` maps
every pixel.  Validation is the caller's (the public API).
"""

from dataclasses import dataclass, replace
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
    importance  (n,) uint8 importance map of the pixels (importance_map) when the fit
                is perceptually weighted, else None; the fit's colours then weigh the
                (capped) sums of their pixels' importance, not their pixel counts
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
    importance: Optional[np.ndarray] = None
    fit_channels: Optional[int] = None
    colours_lab: Optional[np.ndarray] = None
    colour_rows: Optional[np.ndarray] = None  # pixel_rows(), once computed
    chroma: float = _spaces.OKLAB_CHROMA_WEIGHT  # an OKLab fit's chroma weight (_spaces.chroma_weight)
    colour_stages: Optional[object] = None  # an OKLab fit's stages in sRGB, to code them at another weight

    def __post_init__(self):
        if self.fit_channels is None:
            self.fit_channels = self.points.shape[1]

    def oklab(self):
        """OKLab (u, 3) float64 of colours (without alpha), computed once: an OKLab fit's
        codes and every ΔE figure of the image come from the same conversion (a tenth of
        a small photo's quantize when done twice)."""
        if self.colours_lab is None:
            self.colours_lab = _spaces.oklab(self.colours)
        return self.colours_lab

    def pixel_rows(self):
        """The row (n,) uint32 of ``colours`` of every pixel, looked up once through a
        table: a dithered OKLab fit's per-pixel codes and the ΔE of dithered labels both
        come from it.  For images without alpha, whose pixels are the fitted ones."""
        if self.colour_rows is None:
            rows = np.arange(self.colours.shape[0], dtype=np.uint32)
            self.colour_rows = _kernels.zeroed_pages(self.pixels.shape[0], np.uint32)
            _kernels.remap_through_table(self.pixels, _kmeans.label_table(self.colours, rows), self.colour_rows)
        return self.colour_rows

    @property
    def reserves_transparent(self):
        return self.visible is not None

    def decode(self, centres):
        """uint8 palette (k, C) in the image's channels (straight alpha) of fitted centres."""
        centres = centres[:, : self.fit_channels]
        if self.space == "oklab":
            return _spaces.decode_oklab(centres, self.chroma)
        if self.alpha:
            return _spaces.unpremultiply(centres)
        return _kmeans.round_palette(centres)

    def encode(self, palette):
        """palette (k, C) uint8 as float32 points of the fit's space, exactly (unpadded)."""
        if self.space == "oklab":
            return _spaces.oklab_codes(palette, self.chroma)
        if self.alpha:
            return _spaces.premultiply(palette).astype(np.float32)
        return palette.astype(np.float32)

    def error_palette(self, palette):
        """palette (k, C) uint8 in the space errors are measured in (premultiplied for alpha)."""
        return _spaces.premultiply(palette) if self.alpha else palette


def _packed_unique(points):
    """Distinct rows of points (n, 4) uint8: colours (u, 4), inverse (n,), counts (u,) int64."""
    keys = np.ascontiguousarray(points).view(np.uint32).ravel()
    unique_keys, inverse, counts = _kernels.packed_unique(keys)
    colours = unique_keys.view(np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(colours), inverse, counts


# Importance of a pixel against its contrast c = h + v (0..1020, see
# _kernels.contrast_map): 255 in flat areas and smooth gradients, falling as
# (1 - c / 510)^4 to IMPORTANCE_FLOOR, about a third, in busy texture (libimagequant's
# curve, on 8-bit values).  Texture still counts: its colours need entries, only less
# precise ones.
IMPORTANCE_FLOOR = 85
IMPORTANCE_OF_CONTRAST = np.floor(
    IMPORTANCE_FLOOR + (256 - IMPORTANCE_FLOOR) * (1.0 - np.minimum(np.arange(1021) / 510.0, 1.0)) ** 4
).clip(0, 255).astype(np.uint8)


def importance_map(pixels, width):
    """(n,) uint8 visibility of error at each of pixels (n, C) uint8, rows of ``width``.

    Local contrast (second differences, the largest over channels) turned into
    IMPORTANCE_OF_CONTRAST, then closed by two widenings and two narrowings of a
    5-pixel cross: flat areas grow over thin lines and edges (a line is not texture, and
    its colour shows), shrink back, and what stays low is texture wider than a few
    pixels.
    """
    importance = np.empty(pixels.shape[0], dtype=np.uint8)
    _kernels.contrast_map(pixels, width, IMPORTANCE_OF_CONTRAST, importance)
    other = np.empty_like(importance)
    for take_max in (True, True, False, False):
        _kernels.cross_filter(importance, width, take_max, other)
        importance, other = other, importance
    return importance


def prepare(pixels, *, alpha, space, n_colors, rng, sample_size, reserve_transparent=True, width=None):
    """Histogram and stages of pixels (n, C) uint8 for fits of up to n_colors entries.

    alpha: the last channel is alpha; colours are premultiplied, and with
    ``reserve_transparent`` fully transparent pixels are left out of the fit (they take
    a reserved entry).  space: "rgb" (as stored) or "oklab" (without alpha only).
    width: the image's width, to weight the fit by importance_map; None for plain
    k-means (every pixel weighs 1).
    """
    visible = inverse = importance = None
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
    fitted_importance = None
    if width is not None:
        importance = importance_map(premultiplied, width)
        fitted_importance = importance if visible is None else importance[visible]
    if fitted.shape[1] <= _kmeans.MAX_PACKED_CHANNELS:
        if importance is None:
            colours, counts = _kmeans.distinct_colours(fitted)
            weights = counts
        else:
            colours, counts, weight_sums = _kernels.weighted_colour_histogram(fitted, fitted_importance)
            weights = _kmeans.capped_weights(weight_sums)
        stages = _kmeans.pixel_stages(fitted, colours, weights, n_colors, rng, sample_size, fitted_importance)
    else:
        colours, inverse, counts = _packed_unique(fitted)
        weights = counts
        if importance is not None:
            weight_sums = np.bincount(inverse, weights=fitted_importance, minlength=colours.shape[0])
            weights = _kmeans.capped_weights(weight_sums.astype(np.int64))  # exact: integers below 2^53
        stages = _kmeans.weighted_stages(colours, weights, n_colors, rng, sample_size)
    points = colours
    colours_lab = colour_stages = None
    chroma = _spaces.chroma_weight(n_colors)
    if space == "oklab":
        colours_lab = _spaces.oklab(colours)
        colour_stages = stages
        points, stages = _oklab_points(colours, colours_lab, colour_stages, chroma)
    fit_channels = points.shape[1]
    if fit_channels < FIT_CHANNELS:
        points, stages = _padded(points, stages)
    return Prepared(
        pixels, alpha, space, colours, counts, points, stages, visible, inverse, fitted, premultiplied, importance,
        fit_channels, colours_lab, chroma=chroma, colour_stages=colour_stages,
    )


def _oklab_points(colours, colours_lab, colour_stages, chroma):
    """The OKLab codes (u, C) of colours, and the stages of colour_stages (sRGB) in codes,
    chroma weighing ``chroma`` times lightness."""
    points = _spaces.encode_oklab(colours, colours_lab, chroma)
    encoded = {}

    def encode(stage):
        # Stages may share point sets; keep them shared (fit_stages skips repeats).
        if id(stage) not in encoded:
            encoded[id(stage)] = (
                points if stage[0] is colours else _spaces.encode_oklab(stage[0], chroma=chroma), stage[1]
            )
        return encoded[id(stage)]

    stages = _kmeans.Stages(
        encode(colour_stages.seed), encode(colour_stages.sample), encode(colour_stages.full),
        encode(colour_stages.seeding) if colour_stages.seeding is not None else None, colour_stages.small,
    )
    return points, stages


def for_palette_size(prepared, n_colors):
    """prepared with the OKLab chroma weight of a fit of n_colors (_spaces.chroma_weight):
    itself when that is its weight already (or the fit is not in OKLab, or grey, where
    only lightness is coded), else a copy whose points and stages are coded anew."""
    chroma = _spaces.chroma_weight(n_colors)
    if prepared.space != "oklab" or prepared.fit_channels == 1 or chroma == prepared.chroma:
        return prepared
    points, stages = _oklab_points(prepared.colours, prepared.oklab(), prepared.colour_stages, chroma)
    return replace(prepared, points=points, stages=stages, chroma=chroma)


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
        pad_stage(stages.seeding) if stages.seeding is not None else None, stages.small,
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
    """(points, rows): the pixels' values in the fit's space, points (m, d) uint8, and
    rows (n,) uint32, the row of points of each pixel, or None when points has a row per
    pixel.  An OKLab fit's are its distinct colours' codes and each pixel's colour
    (pixel_rows): no per-pixel codes are made (as a table from colour to codes and a
    remap, they took 0.08 s of a 12 MP dithered run; the rows, which the ΔE reuses,
    0.03-0.07 s)."""
    if prepared.alpha:
        return prepared.error_pixels, None
    if prepared.space == "oklab":
        return np.ascontiguousarray(prepared.points[:, : prepared.fit_channels]), prepared.pixel_rows()
    return prepared.pixels, None


class _DitherSetup:
    """What selective Floyd-Steinberg takes besides the pixels, made once per palette:
    the palette in the fit's space, skipped pixels, the undithered labels (the dither
    map's runs and each pixel's first guess), neighbour lists, guess radii, the eased
    strength and the error cap."""

    def __init__(self, prepared, result, strength, labels_dtype):
        self.points, self.rows = _pixel_points(prepared)
        self.alpha = prepared.alpha
        self.palette_points = prepared.encode(result.palette)
        if self.rows is None:
            self.undithered = pixel_labels(prepared, result, labels_dtype)
        else:
            # An OKLab fit has each pixel's colour (for its codes): its label is the colour's,
            # gathered, with no table of its own (0.03-0.07 s of a 12 MP photo).
            colour_labels = result.colour_labels.astype(labels_dtype).reshape(-1, 1)
            self.undithered = _kernels.gather_rows(colour_labels, self.rows).reshape(-1)
        self.skip = np.zeros(0, dtype=np.bool_)
        if prepared.reserves_transparent:
            self.skip = ~prepared.visible
            self.palette_points[0] = np.float32(1e6)  # the reserved entry is for transparent pixels only
        # The importance map tempers the dither map in texture when the fit made one; it is
        # not made for dithering alone: on 4 photos at k = 32 and 128 (OKLab) SSIMULACRA2
        # was 44.38 / 74.16 with it and 44.59 / 74.32 without, and it costs about as much as
        # the dithering's other passes together.
        self.importance = prepared.importance
        self.neighbours, self.gaps = neighbour_lists(self.palette_points)
        self.radius = guess_radius(self.gaps)
        if prepared.reserves_transparent:
            self.radius[0] = 0.0  # never guessed
        # Most of the error is passed on: the response to a share below 1 is steep, so it is
        # eased (liq's curve), and 1/16 is always dropped so that errors cannot pile up.
        self.level = float((1.0 - (1.0 - strength) ** 2) * DROPPED_ERROR_KEEP)
        self.max_error = np.float32(max_dither_error(prepared, result))

    def run(self, part, width, skip, labels, squared_error=False):
        """Dither the pixels of slice ``part`` (whole rows of ``width``) into labels[part],
        leaving the pixels where ``skip`` (bool over the part, or empty) is set; returns
        the part's squared error when asked and the diffusion's points are the pixels in
        the error space (an RGB or grey fit), else None."""
        undithered = self.undithered[part]
        importance = self.importance[part] if self.importance is not None else np.zeros(0, dtype=np.uint8)
        strength_map = np.empty(undithered.shape[0], dtype=np.uint8)
        _kernels.dither_map(undithered, width, importance, STRENGTH_OF_AGREEMENT, strength_map)
        points, rows = (self.points[part], None) if self.rows is None else (self.points, self.rows[part])
        # An RGB or grey fit diffuses the pixels themselves onto the palette's own values:
        # the diffusion sums their squared error as it goes (a pass of 0.02-0.03 s less
        # over a 12 MP photo).
        in_error_space = rows is None and not self.alpha
        total = _kernels.floyd_steinberg(
            points, width, self.palette_points, self.level, strength_map, self.max_error,
            skip, undithered, self.neighbours, self.gaps, self.radius, labels[part], rows,
            squared_error=squared_error and in_error_space,
        )
        return None if total is None else int(total)


def dithered_labels(prepared, result, width, strength, labels_dtype):
    """Labels (n,) of every pixel by selective Floyd-Steinberg in the fit's space, and
    their summed squared error in the error space (pixel_squared_error).

    The undithered labels guide it: their runs make the dither map (dither where a
    band of one entry would show, little on edges, texture and isolated pixels), and
    each is the first guess of its pixel's nearest-entry search.
    """
    setup = _DitherSetup(prepared, result, strength, labels_dtype)
    labels = np.zeros(setup.undithered.shape[0], dtype=labels_dtype)
    squared_error = setup.run(slice(None), width, setup.skip, labels, squared_error=True)
    if squared_error is None:
        squared_error = pixel_squared_error(prepared, result.palette, labels)
    return labels, squared_error


def dithered_frame_labels(prepared, result, n_frames, width, strength, labels_dtype):
    """Labels (n,) of n_frames frames of one size, stacked in prepared, dithered in turn.

    A pixel equal to the same pixel of the previous frame keeps its label and takes no
    part in the diffusion: what does not move does not flicker.  The palette's set-up
    (neighbour lists, radii) serves every frame.
    """
    setup = _DitherSetup(prepared, result, strength, labels_dtype)
    labels = np.zeros(setup.undithered.shape[0], dtype=labels_dtype)
    frame_size = setup.undithered.shape[0] // n_frames
    for i in range(n_frames):
        now, before = slice(i * frame_size, (i + 1) * frame_size), slice((i - 1) * frame_size, i * frame_size)
        frame_skip = setup.skip[now]
        if i > 0:
            keep = (prepared.pixels[now] == prepared.pixels[before]).all(axis=1)
            labels[now][keep] = labels[before][keep]
            frame_skip = keep | frame_skip if frame_skip.size else keep
        setup.run(now, width, frame_skip, labels)
    return labels


# The share of the received error a pixel applies at full strength.
DROPPED_ERROR_KEEP = 15.0 / 16.0
# Dither strength (0..255) of a dither-map agreement score a (_kernels.dither_map):
# 255 (1 - 20 / (20 + a)): a third for an isolated pixel (a = 10), most for long runs.
STRENGTH_OF_AGREEMENT = np.floor(255.0 * (1.0 - 20.0 / (20.0 + np.arange(2048)))).astype(np.uint8)
# Errors whose squared length exceeds this many times the undithered mapping's mean
# squared error per pixel are damped (never below MIN_MAX_DITHER_ERROR): long errors
# make lone pixels of far entries stand out.
MAX_DITHER_ERROR_RATIO = 2.4
MIN_MAX_DITHER_ERROR = 176.0


def max_dither_error(prepared, result):
    """The squared error length, in the fit's space, above which dithering damps errors."""
    if prepared.colours.shape[0] == 0:
        return MIN_MAX_DITHER_ERROR
    palette_codes = np.rint(np.clip(_fit_points(prepared, result.palette), 0, 255)).astype(np.uint8)
    error = _kernels.squared_error(prepared.points, prepared.counts, palette_codes, result.colour_labels)
    return max(MAX_DITHER_ERROR_RATIO * float(error) / float(prepared.counts.sum()), MIN_MAX_DITHER_ERROR)


# Entries listed per palette entry for the dithering's nearest-entry search; larger
# palettes search all entries when a list runs out.
MAX_NEIGHBOURS = 256


def neighbour_lists(palette_points):
    """For every entry of palette_points (m, d) float32, the (m, L) int32 entries nearest
    to it (itself first, then by distance, ties by index) and their (m, L) float32
    distances from it; L = min(m, MAX_NEIGHBOURS)."""
    m = palette_points.shape[0]
    points = palette_points.astype(np.float64)
    n_listed = min(m, MAX_NEIGHBOURS)
    neighbours = np.empty((m, n_listed), dtype=np.int32)
    gaps = np.empty((m, n_listed), dtype=np.float32)
    rows = max(1, (1 << 22) // max(m, 1))  # a block of rows' distances in 32 MB
    for start in range(0, m, rows):
        stop = min(start + rows, m)
        block = np.zeros((stop - start, m))
        for j in range(points.shape[1]):
            gap = points[start:stop, j, None] - points[None, :, j]
            block += gap * gap
        block = np.sqrt(block)
        block[np.arange(stop - start), np.arange(start, stop)] = -1.0  # itself first, even among duplicates
        order = np.argsort(block, axis=1, kind="stable")[:, :n_listed]
        neighbours[start:stop] = order
        gaps[start:stop] = np.maximum(np.take_along_axis(block, order, axis=1), 0.0)
    return neighbours, gaps


def guess_radius(neighbour_gaps):
    """(m,) float32: a squared distance within which each entry is surely the nearest,
    from neighbour_lists' distances.

    Within half the distance to its nearest other entry, an entry is strictly nearer
    than any other (triangle inequality); squared, a quarter, shrunk by 2 % so float32
    rounding of the distances can never turn the test wrong.
    """
    if neighbour_gaps.shape[1] < 2:
        return np.full(neighbour_gaps.shape[0], np.inf, dtype=np.float32)
    nearest_other = neighbour_gaps[:, 1].astype(np.float64)
    return (0.98 * 0.25 * nearest_other * nearest_other).astype(np.float32)


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
        distances = np.sqrt(((prepared.oklab() - palette_lab[result.colour_labels]) ** 2).sum(axis=1))
        return float(distances @ prepared.counts / prepared.counts.sum())
    # Each pixel's distinct colour, whose OKLab is computed once.
    total = _kernels.indexed_distance_sum(prepared.pixel_rows(), labels, prepared.oklab(), palette_lab)
    return float(total / prepared.pixels.shape[0])
