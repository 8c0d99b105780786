"""Algorithm drivers: k-means++ seeding, Lloyd iterations, the palette fit and remap.

The drivers own the loops, the convergence tests and the random numbers; every pass
over the data is one call of a kernel in ``_kernels``.  Validation is assumed done by
the caller (the public API).
"""

import contextlib
from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels

# Channels up to which colours are packed into integer keys (256**3 table entries).
MAX_PACKED_CHANNELS = 3


def distinct_colours(pixels):
    """Distinct rows of ``pixels`` (n, d) uint8, d <= MAX_PACKED_CHANNELS, and their
    counts (u,) int64."""
    return _kernels.colour_histogram(pixels)


def label_table(colours, labels):
    """A lookup table from packed colour to label, for ``remap_through_table``.

    colours (u, d) uint8 with d <= 3, distinct; labels (u,) integer.  Returns
    (256**d,) of the labels' dtype; entries for colours not listed are 0.
    """
    table = np.zeros(256 ** colours.shape[1], dtype=labels.dtype)
    _kernels.fill_label_table(colours, labels, table)
    return table


def seed_centres(points, weights, n_clusters, rng):
    """k-means++ centres (n_clusters, d) float64 drawn from weighted points."""
    n_trials = 2 + int(np.log(n_clusters))
    first_uniform = rng.random()
    trial_uniforms = rng.random((n_clusters - 1, n_trials))
    chosen = _kernels.kmeans_plusplus(points, weights, first_uniform, trial_uniforms)
    return points[chosen].astype(np.float64)


def tolerance(points, weights, tol):
    """Absolute centre-shift tolerance: tol times the mean per-channel weighted variance."""
    w = weights.astype(np.float64)
    total = w.sum()
    x = points.astype(np.float64)
    mean = (w @ x) / total
    variance = (w @ (x * x)) / total - mean * mean
    return float(tol * np.mean(np.maximum(variance, 0.0)))


@dataclass
class LloydResult:
    centres: np.ndarray  # (k, d) float64
    labels: np.ndarray  # (n,) int32, nearest centre of each point
    min_dist: np.ndarray  # (n,) float32, squared distance to it
    inertia: float  # sum of weight * min_dist
    n_iter: int


def _relocate_empty(points, weights, labels, min_dist, sums, counts):
    """Move each empty cluster onto one of the worst-fitted points (in place).

    Each relocated point leaves its old cluster's sums, as in scikit-learn.  Points that
    already sit on a centre (distance 0) are never used: with fewer distinct points than
    clusters, the surplus clusters stay empty and keep their previous centre.
    """
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return
    # Stable sort on the negated distance: deterministic choice among equal distances.
    worst = np.argsort(-min_dist, kind="stable")[: empty.size]
    for cluster, point in zip(empty, worst):
        if min_dist[point] <= 0.0:
            break
        old = labels[point]
        if counts[old] <= weights[point]:
            continue
        sums[old] -= weights[point] * points[point]
        counts[old] -= weights[point]
        sums[cluster] = weights[point] * points[point]
        counts[cluster] = weights[point]


def lloyd(points, weights, centres, *, max_iter, tol_abs, columns=None, final_assign=True):
    """Lloyd iterations on weighted points from the given centres.

    points (n, d) uint8; weights (n,) int64 (exact sums) or float64; centres (k, d)
    float64.  Stops when the labels no longer change, when the summed squared centre
    shift is at most ``tol_abs``, or after ``max_iter`` iterations; a final assignment
    makes the labels match the returned centres.  ``columns`` may pass
    ``_kernels.point_columns(points)`` when the same points are fitted repeatedly.

    With ``final_assign=False`` (for runs that are only compared and continued), the
    final assignment is skipped: labels and inertia then belong to the centres before
    the last update, and the inertia is an upper bound of the returned centres' one.
    """
    if columns is None:
        columns = _kernels.point_columns(points)
    n_points, n_channels = points.shape
    n_clusters = centres.shape[0]
    centres = centres.astype(np.float64, copy=True)
    labels = np.full(n_points, -1, dtype=np.int32)
    min_dist = np.empty(n_points, dtype=np.float32)
    sums = np.empty((n_clusters, n_channels), dtype=weights.dtype)
    counts = np.empty(n_clusters, dtype=weights.dtype)
    n_iter = 0
    labels_stable = False
    for n_iter in range(1, max_iter + 1):
        n_changed = _kernels.lloyd_step(
            columns, points, weights, centres.astype(np.float32), labels, min_dist, sums, counts
        )
        if n_changed == 0:
            # Same labels as the step that produced these centres: a fixed point.
            labels_stable = True
            break
        _relocate_empty(points, weights, labels, min_dist, sums, counts)
        filled = counts > 0
        new_centres = centres.copy()
        new_centres[filled] = sums[filled] / counts[filled, None]
        shift = float(((new_centres - centres) ** 2).sum())
        centres = new_centres
        if shift <= tol_abs:
            break
    if not labels_stable and final_assign:
        _kernels.assign_labels(points, centres.astype(np.float32), labels, min_dist)
    inertia = float(weights.astype(np.float64) @ min_dist.astype(np.float64))
    return LloydResult(centres, labels, min_dist, inertia, n_iter)


def round_palette(centres):
    """Centres (k, d) float64 rounded to a uint8 palette."""
    return np.clip(np.rint(centres), 0, 255).astype(np.uint8)


@dataclass
class PaletteFit:
    palette: np.ndarray  # (m, d) uint8, m = min(n_colors, n_distinct)
    colour_labels: np.ndarray  # (u,) label of each distinct colour in the palette
    colours: np.ndarray  # (u, d) uint8 distinct colours of the image
    counts: np.ndarray  # (u,) int64 pixels per distinct colour
    squared_error: int  # exact sum over pixels of the squared error of the result
    n_iter: int  # Lloyd iterations of the best start plus the full-histogram refinement


# Lloyd iterations each k-means++ start gets before the starts are compared; only the
# best one then runs to convergence.  Ranking after 10 iterations picks nearly the same
# start as full runs would (Kodak, k=16: mean MSE ratio to scikit-learn 0.984 against
# 0.982) at a third of the cost.
PROBE_ITER = 10


# Below this many points, k-means runs on one thread: each pass is then well under a
# millisecond, and waking the other threads for every pass (twice per Lloyd iteration,
# once per k-means++ centre) costs more than it saves (measured: the 74k-colour sample
# of a 12 MP photo fits in 0.10 s on one thread and 0.28 s on two).
SERIAL_BELOW = 131072


@contextlib.contextmanager
def threads_for(n_points):
    """Run the enclosed kernels on one thread when the problem is small."""
    before = numba.get_num_threads()
    if n_points < SERIAL_BELOW:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def best_of_inits(points, weights, n_clusters, rng, *, n_init, max_iter, tol_abs, columns=None):
    """The best of ``n_init`` k-means++ starts, run to convergence by Lloyd.

    Every start runs PROBE_ITER iterations (fewer if it converges); the one with the
    lowest inertia then continues to convergence or ``max_iter`` iterations in all.
    """
    if columns is None:
        columns = _kernels.point_columns(points)
    if n_init == 1:
        centres = seed_centres(points, weights, n_clusters, rng)
        return lloyd(points, weights, centres, max_iter=max_iter, tol_abs=tol_abs, columns=columns)
    probe_iter = min(PROBE_ITER, max_iter)
    best = None
    for _ in range(n_init):
        centres = seed_centres(points, weights, n_clusters, rng)
        run = lloyd(
            points, weights, centres, max_iter=probe_iter, tol_abs=tol_abs, columns=columns, final_assign=False
        )
        if best is None or run.inertia < best.inertia:
            best = run
    # Continue the best start; this also makes its labels and inertia match its centres.
    more = lloyd(points, weights, best.centres, max_iter=max(1, max_iter - probe_iter), tol_abs=tol_abs, columns=columns)
    more.n_iter += best.n_iter
    return more


# Random swaps (Franti & Kivijarvi's random-swap clustering): move one centre to a
# random colour, run a few Lloyd iterations, keep the move if the inertia drops.  Lloyd
# alone stops in the first local minimum: on the 12 MP bus photo at k=16, the best of 4
# k-means++ starts ends 0-5 % above scikit-learn's run depending on the seed; 30 swaps
# of 2 iterations on the 262k-pixel sample bring seeds 0-3 within 0.7 % of it, and
# the worst Kodak photo from 1.022 to 1.013 times scikit-learn's MSE.  Swaps on a
# smaller sample were cheaper but transferred worse to the full image.
N_SWAPS = 30
SWAP_ITER = 2
SWAP_SAMPLE = 1 << 18


def random_swaps(points, weights, run, rng, *, n_swaps, swap_iter, tol_abs, columns=None):
    """Improve a converged Lloyd run by accepted random swaps; returns the best run."""
    cumulative = np.cumsum(weights.astype(np.float64))
    if columns is None:
        columns = _kernels.point_columns(points)
    for _ in range(n_swaps):
        centres = run.centres.copy()
        moved = rng.integers(centres.shape[0])
        # A colour drawn with probability proportional to its pixel count.
        drawn = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        centres[moved] = points[min(drawn, points.shape[0] - 1)]
        candidate = lloyd(points, weights, centres, max_iter=swap_iter, tol_abs=tol_abs, columns=columns)
        if candidate.inertia < run.inertia:
            run = candidate
    return run


@dataclass
class Stages:
    """The nested point sets a fit runs on, smallest first: (points, weights) pairs.

    seed    k-means++ starts and random swaps run here (at most SWAP_SAMPLE pixels' worth)
    sample  Lloyd continues here (``sample_size`` pixels' worth; may be ``seed`` itself)
    full    every pixel: the objective the result is judged by (may be ``sample``)
    """

    seed: tuple
    sample: tuple
    full: tuple


def pixel_stages(pixels, colours, counts, n_colors, rng, sample_size):
    """Stages for pixels (n, d) uint8 with histogram (colours, counts): uniform random
    pixel samples, histogrammed."""
    n_pixels = pixels.shape[0]
    full = (colours, counts)
    sampled = sample_size is not None and n_pixels > sample_size
    if sampled:
        sample = _kernels.gather_rows(pixels, rng.integers(0, n_pixels, size=sample_size))
        sample_hist = distinct_colours(sample)
        # A sample poorer in colours than the palette cannot seed it.
        sampled = sample_hist[0].shape[0] > n_colors
    if not sampled:
        sample, sample_hist = pixels, full
    if sample.shape[0] > SWAP_SAMPLE:
        # A random subset (the sample may be the whole image, whose first rows are not).
        subset = _kernels.gather_rows(sample, rng.choice(sample.shape[0], SWAP_SAMPLE, replace=False))
        seed_hist = distinct_colours(subset)
        if seed_hist[0].shape[0] <= n_colors:
            seed_hist = sample_hist
    else:
        seed_hist = sample_hist
    return Stages(seed_hist, sample_hist, full)


def _thinned(points, draws):
    """The weighted point set of ``draws`` (indices into points): (points, counts int64)."""
    counts = np.bincount(draws, minlength=points.shape[0])
    kept = np.flatnonzero(counts)
    return np.ascontiguousarray(points[kept]), counts[kept].astype(np.int64)


def weighted_stages(points, weights, n_colors, rng, sample_size):
    """Stages for weighted points (u, d) uint8 with weights (u,) int64 (pixel counts) or
    float64: pixels drawn with probability proportional to weight, as sampling the
    pixels the points stand for; the seed stage is a subset of the sample stage."""
    full = (points, weights)
    if points.shape[0] == 0:
        return Stages(full, full, full)
    cumulative = np.cumsum(weights, dtype=np.float64)

    def draw(n_draws):
        drawn = np.searchsorted(cumulative, rng.random(n_draws) * cumulative[-1], side="right")
        return np.minimum(drawn, points.shape[0] - 1)

    # Float weights are not pixel counts: always sample them.
    n_pixels = cumulative[-1] if weights.dtype.kind in "iu" else np.inf
    sample, draws = full, None
    if sample_size is not None and n_pixels > sample_size:
        draws = draw(sample_size)
        candidate = _thinned(points, draws)
        # A sample poorer in colours than the palette cannot seed it.
        if candidate[0].shape[0] > n_colors:
            sample = candidate
        else:
            draws = None
    seed = sample
    if (draws.shape[0] if draws is not None else n_pixels) > SWAP_SAMPLE:
        subset = draws[rng.choice(draws.shape[0], SWAP_SAMPLE, replace=False)] if draws is not None else draw(SWAP_SAMPLE)
        candidate = _thinned(points, subset)
        if candidate[0].shape[0] > n_colors:
            seed = candidate
    return Stages(seed, sample, full)


def fit_stages(stages, n_colors, rng, *, n_init, max_iter, tol_abs, n_swaps=N_SWAPS):
    """Fit n_colors centres through the stages; returns (centres (k, d) float64, n_iter).

    On the seed stage: k-means++ and Lloyd ``n_init`` times (the best start kept), then
    ``n_swaps`` random swaps to leave poor local minima.  Lloyd then continues on the sample
    stage and on the full stage until converged (or ``max_iter``).
    """
    seed_points, seed_weights = stages.seed
    with threads_for(seed_points.shape[0]):
        seed_columns = _kernels.point_columns(seed_points)
        fitted = best_of_inits(
            seed_points, seed_weights, n_colors, rng, n_init=n_init, max_iter=max_iter, tol_abs=tol_abs,
            columns=seed_columns,
        )
        fitted = random_swaps(
            seed_points, seed_weights, fitted, rng, n_swaps=n_swaps, swap_iter=SWAP_ITER, tol_abs=tol_abs,
            columns=seed_columns,
        )
    n_iter = fitted.n_iter
    previous = stages.seed
    for stage in (stages.sample, stages.full):
        if stage is previous:
            continue
        previous = stage
        with threads_for(stage[0].shape[0]):
            # Only the centres go on: the caller assigns its rounded palette afterwards.
            fitted = lloyd(stage[0], stage[1], fitted.centres, max_iter=max_iter, tol_abs=tol_abs, final_assign=False)
        n_iter += fitted.n_iter
    return fitted.centres, n_iter


def nearest_entries(points, palette_points):
    """Index (u,) int32 of the nearest of palette_points (m, d) float32 for each of
    points (u, d) uint8 (lowest index on ties)."""
    labels = np.empty(points.shape[0], dtype=np.int32)
    _kernels.assign_labels(points, palette_points, labels, np.empty(points.shape[0], dtype=np.float32))
    return labels


def fit_palette(pixels, n_colors, rng, *, sample_size, n_init, max_iter, tol):
    """Fit a palette of n_colors to pixels (n, d) uint8 and label every distinct colour.

    1. Histogram of distinct colours: k-means on the colours weighted by their pixel
       counts has exactly the objective of k-means on all pixels, at a fraction of the
       points.
    2. ``fit_stages`` on nested random pixel samples, then on the full histogram, so the
       result has the quality of exact k-means on every pixel.
    3. Centres are rounded to uint8, and every distinct colour gets its nearest palette
       entry (exact integer distances, lowest index on ties).
    """
    colours, counts = distinct_colours(pixels)
    if colours.shape[0] <= n_colors:
        # The image itself is the best palette: zero error.
        return PaletteFit(colours.copy(), np.arange(colours.shape[0], dtype=np.int32), colours, counts, 0, 0)
    stages = pixel_stages(pixels, colours, counts, n_colors, rng, sample_size)
    centres, n_iter = fit_stages(
        stages, n_colors, rng, n_init=n_init, max_iter=max_iter, tol_abs=tolerance(colours, counts, tol)
    )
    fit = map_colours(colours, counts, round_palette(centres))
    fit.n_iter = n_iter
    return fit


def map_colours(colours, counts, palette):
    """A PaletteFit of the histogram (colours, counts) onto palette (m, d) uint8: every
    distinct colour gets its nearest palette entry (exact, lowest index on ties)."""
    colour_labels = nearest_entries(colours, palette.astype(np.float32))
    error = int(_kernels.squared_error(colours, counts, palette, colour_labels))
    return PaletteFit(palette, colour_labels, colours, counts, error, 0)


def map_to_palette(pixels, palette):
    """A PaletteFit that maps pixels (n, d) uint8 onto a given palette (m, d) uint8."""
    return map_colours(*distinct_colours(pixels), palette)


def palette_sums(colours, counts, palette):
    """One Lloyd pass of a palette over weighted colours, for sums merged across data sets.

    colours (u, d) uint8, counts (u,) int64, palette (k, d) uint8.  Returns the sums
    (k, d) int64 and pixel counts (k,) int64 of the colours nearest to each palette
    entry, and the exact squared error (int) of mapping every colour to it.  Integer
    sums, so results merged from any split of the data are the same in any order.
    """
    n_clusters, n_channels = palette.shape
    labels = np.full(colours.shape[0], -1, dtype=np.int32)
    min_dist = np.empty(colours.shape[0], dtype=np.float32)
    sums = np.empty((n_clusters, n_channels), dtype=np.int64)
    cluster_counts = np.empty(n_clusters, dtype=np.int64)
    columns = _kernels.point_columns(colours)
    _kernels.lloyd_step(columns, colours, counts, palette.astype(np.float32), labels, min_dist, sums, cluster_counts)
    error = int(_kernels.squared_error(colours, counts, palette, labels))
    return sums, cluster_counts, error


def remap(pixels, fit, labels_dtype):
    """Label of every pixel (n,) in ``labels_dtype``, through the fitted colour labels."""
    labels = np.empty(pixels.shape[0], dtype=labels_dtype)
    table = label_table(fit.colours, fit.colour_labels.astype(labels_dtype))
    _kernels.remap_through_table(pixels, table, labels)
    return labels
