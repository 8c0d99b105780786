"""Algorithm drivers: k-means++ seeding, Lloyd iterations, the palette fit and remap.

The drivers own the loops, the convergence tests and the random numbers; every pass
over the data is one call of a kernel in ``_kernels``.  Validation is assumed done by
the caller (the public API).
"""

import contextlib
from dataclasses import dataclass
from typing import Optional

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
    table = _kernels.zeroed_pages(256 ** colours.shape[1], labels.dtype)
    _kernels.fill_label_table(colours, labels, table)
    return table



def _seed_uniforms(n_clusters, rng):
    """The uniform numbers of one k-means++ seeding: the first draw and (k - 1, trials)."""
    n_trials = 2 + int(np.log(n_clusters))
    return rng.random(), rng.random((n_clusters - 1, n_trials))


def seed_centres(points, weights, n_clusters, rng):
    """k-means++ centres (n_clusters, d) float64 drawn from weighted points."""
    first_uniform, trial_uniforms = _seed_uniforms(n_clusters, rng)
    chosen = _kernels.kmeans_plusplus(points, weights, first_uniform, trial_uniforms)
    return points[chosen].astype(np.float64)


def random_centres(points, weights, n_clusters, rng):
    """n_clusters of the points (k, d) float64, drawn with probability proportional to
    their weights (scikit-learn's init='random'); distinct while there are enough points
    of positive weight."""
    probabilities = np.asarray(weights, dtype=np.float64)
    probabilities = probabilities / probabilities.sum()
    replace = np.count_nonzero(probabilities) < n_clusters
    chosen = rng.choice(points.shape[0], size=n_clusters, replace=replace, p=probabilities)
    return points[chosen].astype(np.float64)


def tolerance(points, weights, tol):
    """Absolute centre-shift tolerance: tol times the mean per-channel weighted variance."""
    moments = _kernels.weighted_moments(points, weights)
    total = float(np.sum(weights, dtype=np.float64))
    mean = moments[0] / total
    variance = moments[1] / total - mean * mean
    return float(tol * np.mean(np.maximum(variance, 0.0)))


@dataclass
class Cells:
    """3-channel weighted points sorted by grid cell, for cell_lloyd_step.

    points (n, 3) uint8 and weights (n,) in cell order, order (n,) int64 the original
    index of each, columns their float32 columns,
    corners (m, 3) uint8 the low corners of the non-empty cells, start (m + 1,) int64
    their first points, task_cells (t + 1,) int64 the cells of each parallel task, bits
    the cells per axis (2^bits), norm_total the sum of weight * |point|^2 (for inertias
    from cluster sums).
    """

    points: np.ndarray
    weights: np.ndarray
    order: np.ndarray
    columns: np.ndarray
    corners: np.ndarray
    start: np.ndarray
    task_cells: np.ndarray
    bits: int
    norm_total: float


# Points per parallel task of the cell search (the same block size as lloyd_step's).
CELL_TASK_POINTS = _kernels.ASSIGN_TILE * _kernels.ASSIGN_TILES_PER_TASK


def cell_bits_for(n_points, n_clusters):
    """Cells per axis (as bits) for a search of n_points among n_clusters centres: finer
    cells prune more centres but hold fewer points per SIMD tile.  Measured, one steady
    Lloyd step on the 12 MP photo's colours: 389k colours at k=256 1.73 ms with 8 cells
    per axis, 1.54 ms with 16, 2.53 ms with 32; its 74k-colour sample 0.59, 0.83 and
    1.51 ms; at k=16 and 64, 8 and 16 cells per axis are within 5 % of each other."""
    return 4 if n_clusters > 32 and n_points >= 200_000 else 3


def sort_into_cells(points, weights, bits):
    """Cells of points (n, 3) uint8 with weights (n,), cut 2^bits per axis."""
    sorted_points, sorted_weights, columns, all_start, order, norm_total = _kernels.cell_sort(points, weights, bits)
    filled = np.flatnonzero(all_start[1:] > all_start[:-1])
    start = np.append(all_start[filled], points.shape[0]).astype(np.int64)
    # Each filled cell's low corner, from its first point.
    corners = (sorted_points[start[:-1]] >> (8 - bits)) << (8 - bits)
    # Tasks of about CELL_TASK_POINTS points each, cut at cell boundaries.
    cuts = np.searchsorted(start, np.arange(CELL_TASK_POINTS, points.shape[0], CELL_TASK_POINTS))
    task_cells = np.unique(np.concatenate([[0], cuts, [filled.shape[0]]])).astype(np.int64)
    return Cells(sorted_points, sorted_weights, order, columns, corners, start, task_cells, bits, norm_total)


@dataclass
class LloydResult:
    centres: np.ndarray  # (k, d) float64
    labels: np.ndarray  # (n,) int32, nearest centre of each point
    min_dist: np.ndarray  # (n,) float32, squared distance to it
    inertia: float  # sum of weight * min_dist
    n_iter: int
    sums: Optional[np.ndarray] = None  # (k, d) cluster sums of the labels (runs over cells only)
    counts: Optional[np.ndarray] = None  # (k,) cluster weights of the labels (runs over cells only)


def _relocate_empty(points, weights, labels, min_dist, sums, counts):
    """Move each empty cluster onto one of the worst-fitted points (in place).

    Each relocated point leaves its old cluster's sums, as in scikit-learn.  Points that
    already sit on a centre (distance 0) are never used: with fewer distinct points than
    clusters, the surplus clusters stay empty and keep their previous centre.  Returns
    the moves made, as (point, cluster) pairs.
    """
    moves = []
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return moves
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
        moves.append((point, cluster))
    return moves


def _cluster_means(centres, sums, counts):
    """New centres (the means of non-empty clusters; empty ones stay) and the summed
    squared shift from ``centres``."""
    filled = counts > 0
    if filled.all():
        new_centres = sums / counts[:, None]  # the usual case, without masking
    else:
        new_centres = centres.copy()
        new_centres[filled] = sums[filled] / counts[filled, None]
    return new_centres, float(((new_centres - centres) ** 2).sum())


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
        centres, shift = _cluster_means(centres, sums, counts)
        if shift <= tol_abs:
            break
    if not labels_stable and final_assign:
        _kernels.assign_labels(points, centres.astype(np.float32), labels, min_dist)
    inertia = float(weights.astype(np.float64) @ min_dist.astype(np.float64))
    return LloydResult(centres, labels, min_dist, inertia, n_iter)


# Over-relaxed Lloyd (Salakhutdinov & Roweis' adaptive over-relaxed bound optimization,
# applied to k-means): each step goes ``eta`` times as far as the plain step, from the
# centres towards their clusters' means, with eta growing by OVERRELAX_GROWTH while the
# steps lower the inertia and falling back to a plain step when one does not.  Plain
# Lloyd creeps when many clusters share borders, as a large palette's do: on the 12 MP
# bus photo at k=256 (seed 0) the full-histogram run took 49 plain steps and still
# stopped above where the over-relaxed one ends after 34 steps, overshoots and their
# plain redos included (MSE 1.0079 against 1.0051 times exact k-means).  Runs to
# convergence are over-relaxed; a random swap's few steps and the short probes of
# k-means++ starts are not.
OVERRELAX_GROWTH = 1.5
OVERRELAX_MAX = 8.0


def lloyd_in_cells(cells, centres, *, max_iter, tol_abs, final_assign=True, start=None, overrelax=False):
    """Lloyd iterations as ``lloyd``, on points sorted into cells (sort_into_cells).

    Each step searches per cell only the centres that can be nearest (the same labels as
    a full search), and the cluster sums are running totals that only points changing
    label update: late iterations, where few points move, cost little.  Labels are in
    the cells' point order; the result has no min_dist, and its inertia is exact for
    the returned centres and labels (with ``final_assign=False``, the labels the centres
    were computed from as means).  ``start``, an earlier result on the same cells, gives
    labels and sums to start from: the first step then moves only the points whose label
    changes with the new centres (a swap moves one centre), not every point.

    ``overrelax``: extrapolated steps (see OVERRELAX_GROWTH), each kept only if the
    inertia after it is below that of the plain step's centres and labels, so the
    inertia still falls at every kept step.  Every assignment counts towards max_iter.
    """
    points, weights = cells.points, cells.weights
    n_points, n_channels = points.shape
    n_clusters = centres.shape[0]
    centres = centres.astype(np.float64, copy=True)
    if start is not None:
        labels, sums, counts = start.labels.copy(), start.sums.copy(), start.counts.copy()
    else:
        labels = np.full(n_points, -1, dtype=np.int32)
        sums = np.zeros((n_clusters, n_channels), dtype=weights.dtype)
        counts = np.zeros(n_clusters, dtype=weights.dtype)
    sum_changes = np.empty_like(sums)
    count_changes = np.empty_like(counts)

    def step(target):
        n_changed = _kernels.cell_lloyd_step(
            cells.columns, points, weights, cells.corners, cells.start, cells.task_cells, cells.bits,
            target.astype(np.float32), labels, sum_changes, count_changes,
        )
        sums[...] += sum_changes
        counts[...] += count_changes
        return n_changed

    def inertia(centres):
        # sum_i w_i |x_i - c_(l_i)|^2 = sum w|x|^2 - 2 sum_j c_j.S_j + sum_j W_j |c_j|^2
        return (
            cells.norm_total
            - 2.0 * float((centres * sums).sum())
            + float(counts.astype(np.float64) @ (centres**2).sum(axis=1))
        )

    eta = 1.0
    n_iter = 1
    labels_stable = step(centres) == 0
    while not labels_stable:
        if np.any(counts == 0):
            # Rare: an empty cluster takes a worst-fitted point (labels follow the sums).
            min_dist = ((points.astype(np.float64) - centres[labels]) ** 2).sum(axis=1)
            for point, cluster in _relocate_empty(points, weights, labels, min_dist, sums, counts):
                labels[point] = cluster
        means, shift = _cluster_means(centres, sums, counts)
        if shift <= tol_abs or n_iter >= max_iter:
            centres = means
            break
        if not overrelax:
            centres = means
            labels_stable = step(centres) == 0
            n_iter += 1
            continue
        means_inertia = inertia(means)
        centres = centres + eta * (means - centres)
        labels_stable = step(centres) == 0
        n_iter += 1
        if inertia(centres) <= means_inertia:
            eta = min(eta * OVERRELAX_GROWTH, OVERRELAX_MAX)
        elif n_iter < max_iter:
            # Overshot: take the plain step instead, and grow eta again from 1.
            eta = 1.0
            centres = means
            labels_stable = step(centres) == 0
            n_iter += 1
        else:
            # Out of steps after an overshoot: end at these labels' means (the loop's top).
            labels_stable = False
    if not labels_stable and final_assign:
        step(centres)
    return LloydResult(centres, labels, None, max(inertia(centres), 0.0), n_iter, sums, counts)


class PointSet:
    """Weighted points that Lloyd runs on again and again, with what the runs reuse.

    points (n, d) uint8 and weights (n,) int64 or float64.  3-channel points are sorted
    into grid cells for n_clusters centres (so ``points``, ``weights`` and run labels
    are in cell order); others keep their order and float32 columns.
    """

    def __init__(self, points, weights, n_clusters):
        self.cells = None
        self.columns = None
        if points.shape[1] == 3:
            self.cells = sort_into_cells(points, weights, cell_bits_for(points.shape[0], n_clusters))
            points, weights = self.cells.points, self.cells.weights
        else:
            self.columns = _kernels.point_columns(points)
        self.points = points
        self.weights = weights

    def seed_centres(self, n_clusters, rng):
        """k-means++ centres (n_clusters, d) float64 (as ``seed_centres``)."""
        if self.cells is None:
            return seed_centres(self.points, self.weights, n_clusters, rng)
        first_uniform, trial_uniforms = _seed_uniforms(n_clusters, rng)
        cells = self.cells
        chosen = _kernels.cell_kmeans_plusplus(
            cells.columns, cells.weights, cells.corners, cells.start, cells.bits, first_uniform, trial_uniforms
        )
        return self.points[chosen].astype(np.float64)

    def nearest(self, centres):
        """Index (n,) int32 of the nearest of centres (k, d) float32 for each point, in the
        order the points were given: exactly nearest_entries' labels, by a cell search
        (at k=256, 389k colours: about 2 ms against 7)."""
        if self.cells is None:
            return nearest_entries(self.points, centres)
        cells = self.cells
        labels = np.full(self.points.shape[0], -1, dtype=np.int32)
        sums = np.empty((centres.shape[0], self.points.shape[1]), dtype=self.weights.dtype)
        counts = np.empty(centres.shape[0], dtype=self.weights.dtype)
        _kernels.cell_lloyd_step(
            cells.columns, cells.points, cells.weights, cells.corners, cells.start, cells.task_cells, cells.bits,
            centres, labels, sums, counts,
        )
        return self.original_order(labels)

    def original_order(self, labels):
        """Per-point values (n,) in the order the points were given."""
        if self.cells is None:
            return labels
        unsorted = np.empty_like(labels)
        unsorted[self.cells.order] = labels
        return unsorted

    def lloyd(self, centres, *, max_iter, tol_abs, final_assign=True, start=None, overrelax=False):
        """A Lloyd run from centres (k, d) float64, as ``lloyd`` (labels in self.points' order);
        ``start``, an earlier run on this set, is where the cell runs pick up their labels;
        ``overrelax`` extrapolates the cell runs' steps (lloyd_in_cells)."""
        if self.cells is not None:
            return lloyd_in_cells(
                self.cells, centres, max_iter=max_iter, tol_abs=tol_abs, final_assign=final_assign, start=start,
                overrelax=overrelax,
            )
        return lloyd(
            self.points, self.weights, centres, max_iter=max_iter, tol_abs=tol_abs, columns=self.columns,
            final_assign=final_assign,
        )


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
# best one then runs to convergence.  Ranking after 10 iterations picked nearly the same
# start as full runs would (Kodak, k=16: mean MSE ratio to scikit-learn 0.984 against
# 0.982) at a third of the cost; with today's swaps after it, 5 did as well as 10 (worst
# ratio to exact k-means over 3 photos x 5 seeds: k=16 1.0070 against 1.0282, k=64
# 1.0118 against 1.0118) at half the probing.
PROBE_ITER = 5


# Below this many points, k-means runs on one thread: each pass is then well under a
# millisecond, and waking the other thread for every pass (about twice per Lloyd
# iteration, once per k-means++ centre) costs more than it saves.  Measured with the
# cell search, whole fits, one thread against two: the 15k-colour sample of kodim01 at
# k=16 took 40 ms against 61 ms; the 51k of kodim23 88 ms against 71 ms, and the 74k of
# the 12 MP photo 245 ms against 208 ms (k=256: 769 against 648 ms).
SERIAL_BELOW = 32768
# Photos of up to this many pixels are quantized on one thread from histogram to labels
# (threads_for(n_pixels, SERIAL_PHOTO_PIXELS)).  With the small-photo stages such a
# photo takes 12-15 ms of CPU time in some 40 passes, each under a millisecond; on the
# shared 2-core machine (load average 5) six such photos took 178 / 191 / 570 ms each at
# k = 5 / 16 / 64 with two threads (every pass waiting for the second) and 41 / 57 / 148
# ms with one (bench/results/small_photos_sweep.md).
SERIAL_PHOTO_PIXELS = 1 << 19


def threads_for(n_points, serial_below=SERIAL_BELOW):
    """Run the enclosed kernels on one thread when the problem (n_points) is below
    serial_below."""
    if n_points < serial_below:
        return _kernels.limit_threads(1)
    return contextlib.nullcontext()


def best_of_inits(point_set, n_clusters, rng, *, n_init, max_iter, tol_abs, draw_from=None):
    """The best of ``n_init`` k-means++ starts on a PointSet, run to convergence by Lloyd.

    ``draw_from``: a PointSet (a subset of the same pixels) that k-means++ draws the
    starts from instead of ``point_set``.

    Every start runs PROBE_ITER plain iterations (fewer if it converges); the one with
    the lowest inertia then continues, over-relaxed, to convergence or ``max_iter``
    iterations in all.  Over-relaxing these runs too (not only the later stages), the
    worst ratio to exact k-means over 12 seeds (12 MP / bus-3mp / kodim03) stayed at
    k=16 1.0077 / 1.0068 / 1.0003, went at k=64 from 1.0064 / 1.0042 / 1.018 to
    1.0063 / 1.0043 / 1.0075, and at k=256 from 1.0040 / 1.0027 / 1.0012 to 1.0041 /
    1.0044 / 1.0000 (12 MP mean 1.0018 -> 1.0009).
    """
    draw_from = point_set if draw_from is None else draw_from
    if n_init == 1:
        centres = draw_from.seed_centres(n_clusters, rng)
        return point_set.lloyd(centres, max_iter=max_iter, tol_abs=tol_abs, overrelax=True)
    probe_iter = min(PROBE_ITER, max_iter)
    best = None
    for _ in range(n_init):
        centres = draw_from.seed_centres(n_clusters, rng)
        run = point_set.lloyd(centres, max_iter=probe_iter, tol_abs=tol_abs, final_assign=False)
        if best is None or run.inertia < best.inertia:
            best = run
    # Continue the best start; this also makes its labels and inertia match its centres.
    more = point_set.lloyd(
        best.centres, max_iter=max(1, max_iter - probe_iter), tol_abs=tol_abs, start=best, overrelax=True
    )
    more.n_iter += best.n_iter
    return more


# Random swaps (Franti & Kivijarvi's random-swap clustering): move one centre, run a few
# Lloyd iterations, keep the move if the inertia drops.  Lloyd alone stops in the first
# local minimum: on the 12 MP bus photo at k=16, the best of 4 k-means++ starts ends
# 0-5 % above scikit-learn's run depending on the seed.  Swaps on a smaller sample than
# the 262k-pixel one were cheaper but transferred worse to the full image.
def swap_plan(n_colors):
    """(number of swaps, of which split proposals, Lloyd iterations per swap) for a
    palette of n_colors.

    Measured as the worst ratio to exact k-means' MSE over 12 seeds on each of the 12 MP
    bus photo, bus-3mp and kodim03 (in that order):
    - k <= 32: a swap needs more than 2 iterations to show its worth when a centre moves
      onto a small saturated patch (kodim03, k=16, seed 0: 1.0186 with 2, 1.0003 with
      4).  15 random swaps left 1.043 / 1.026 / 1.019; 4 splits first then 11 random
      swaps 1.0077 / 1.0069 / 1.0015; 4 + 4 1.023 / 1.024 / 1.0015.  With the seed runs
      over-relaxed: 15 swaps of 4 iterations 1.0077 / 1.0068 / 1.0003, of 3 iterations
      1.0077 / 1.0068 / 1.0004 (a fifth fewer steps); 12 of 3 1.0085 / 1.0068 / 1.0004;
      10 of 3 1.0085 / 1.024 / 1.0015 (too few).  Over 48 seeds, 4 splits in 15 swaps
      still left 2 seeds each of the 12 MP photo and bus-3mp at 1.018-1.029; 8 splits
      in 15 fixed all four (worst 1.0084 / 1.0071 / 1.0017 over 48 seeds) at the same
      cost (1.03 times the time, paired, within the noise) where more random swaps (20)
      fixed none;
    - k = 64: 30 random swaps of 2 iterations left 1.013 / 1.008 / 1.014; 8 splits and
      nothing else 1.0064 / 1.0042 / 1.018, at under a third of the swaps;
    - k = 256: 15 random swaps left 1.0073 / 1.0072 / 1.0079; 4 splits alone 1.0040 /
      1.0030 / 1.0031, 8 splits alone 1.0040 / 1.0027 / 1.0012; with the seed stage
      over-relaxed, 8 splits of 2 iterations 1.0041 / 1.0044 / 1.0000 and of 1 iteration
      1.0038 / 1.0034 / 1.0006, a third fewer Lloyd steps (at k=64, 1 iteration left
      kodim03 at 1.015 against 1.0075); 4 splits of 1 iteration 1.0038 / 1.0042 /
      1.0032 (12 MP mean 1.0013 against 1.0012), 5 % faster quantize than 8.
    """
    if n_colors <= 32:
        return 15, 8, 3
    if n_colors <= 128:
        return 8, 8, 2
    return 4, 4, 1


# k-means++ starts on a small photo's seed stage (Stages.small).
SMALL_N_INIT = 2


def small_swap_plan(n_colors):
    """swap_plan for a small photo's seed stage (Stages.small): half the swaps, and at
    most one more than the palette's colours.

    At most n_colors swaps (as this was) left 5 of 720 runs at k = 5 (30 small photos x
    24 seeds) 1.025-1.073 times scikit-learn's mean MSE: each time every proposal tried
    was a split that did not pay, and the sixth split, never tried, was the one that
    did (it was accepted in each of those runs once allowed).  With n_colors + 1: none
    above 1.006, for about 5 % more time at k = 5; from 8 colours up the plan is
    unchanged.
    """
    n_swaps, n_splits, swap_iter = swap_plan(n_colors)
    n_swaps = min((n_swaps + 1) // 2, n_colors + 1)
    return n_swaps, min(n_splits, n_swaps), swap_iter


SWAP_SAMPLE = 1 << 18

# Candidates of a split proposal: centres among this many cheapest to merge away, and
# clusters among this many with the largest squared error.
SPLIT_CHOICES = 3
# Lloyd iterations of the 2-means that splits a cluster.
SPLIT_ITER = 6


def _split_in_two(points, weights, members):
    """Centres (2, d) float64 of a 2-means split of the weighted points (n, d) uint8
    listed in members (m,) int64: cut across the principal axis at their mean, then
    Lloyd iterations; None if every point ends on one side (a single colour)."""
    scatter = _kernels.weighted_scatter(points, weights, members)
    axis = np.linalg.eigh(scatter)[1][:, -1]
    halves = np.empty((2, points.shape[1]))
    return halves if _kernels.split_in_two(points, weights, members, axis, SPLIT_ITER, halves) else None


@dataclass
class _SwapOdds:
    """What a run's swap proposals are drawn from (see random_swaps)."""

    cumulative: np.ndarray  # (n,) running sum of weight x squared distance to the centre
    move_cumulative: np.ndarray  # (k,) running probability of each centre to move
    cheapest_merges: np.ndarray  # SPLIT_CHOICES centres cheapest to merge, cheapest first
    worst_clusters: np.ndarray  # SPLIT_CHOICES clusters of largest squared error, largest first


# Pairwise distances held at once by nearest_other_centre: rows of k, as many as make
# this many float64 (16 MB) -- at k = 65536, 32 rows, where a whole (k, k) matrix would
# take 34 GB.
NEAREST_OTHER_ELEMENTS = 1 << 21


def nearest_other_centre(centres):
    """For each row of centres (k, d): the index (k,) int64 of the nearest other row and
    the squared distance (k,) float64 to it (inf for k = 1; the first on ties).

    Computed a channel at a time (10x faster at k=256 than a (k, k, d) difference) over
    blocks of NEAREST_OTHER_ELEMENTS distances, so memory grows with k, not k squared;
    the numbers are those of the whole matrix."""
    n_centres = centres.shape[0]
    nearest = np.zeros(n_centres, dtype=np.int64)
    distance = np.full(n_centres, np.inf)
    block = max(1, NEAREST_OTHER_ELEMENTS // max(n_centres, 1))
    for start in range(0, n_centres, block):
        stop = min(start + block, n_centres)
        between = np.zeros((stop - start, n_centres))
        for column in centres.T:
            gap = column[start:stop, None] - column[None, :]
            between += gap * gap
        between[np.arange(stop - start), np.arange(start, stop)] = np.inf
        nearest[start:stop] = between.argmin(axis=1)
        distance[start:stop] = between[np.arange(stop - start), nearest[start:stop]]
    return nearest, distance


def _swap_odds(point_set, run, weights):
    """The _SwapOdds of a run on a PointSet (weights (n,) float64)."""
    n_clusters = run.centres.shape[0]
    # Each point's weight times its squared distance to its centre (k-means++'s D^2
    # weighting): colours far from every centre, such as a small saturated patch the
    # palette has no entry for, are where a moved centre helps most.
    errors = np.empty(weights.shape[0])
    cluster_weights = np.empty(n_clusters)
    cluster_errors = np.empty(n_clusters)
    _kernels.point_errors(point_set.points, weights, run.centres, run.labels, errors, cluster_weights, cluster_errors)
    cumulative = np.cumsum(errors)
    if not cumulative[-1] > 0:
        cumulative = np.cumsum(weights)
    # The centre to move: drawn with probability inversely proportional to what merging
    # its cluster into the nearest other one would cost (Ward's distance), so redundant
    # centres move and needed ones mostly stay.
    nearest, gap = nearest_other_centre(run.centres)
    pair = cluster_weights + cluster_weights[nearest]
    merge_cost = cluster_weights * cluster_weights[nearest] / np.maximum(pair, 1e-300) * gap
    keep = 1.0 / np.maximum(merge_cost, 1e-12)
    return _SwapOdds(
        cumulative,
        np.cumsum(keep / keep.sum()),
        np.argsort(merge_cost, kind="stable")[:SPLIT_CHOICES],
        np.argsort(-cluster_errors, kind="stable")[:SPLIT_CHOICES],
    )


def random_swaps(point_set, run, rng, *, n_swaps, swap_iter, tol_abs, n_splits=0):
    """Improve a converged Lloyd run on a PointSet by accepted swaps; returns the best run.

    The first ``n_splits`` proposals are merge-and-split moves: a centre among the
    cheapest to merge away goes to split a cluster among those of largest squared error
    in two (its 2-means), each pair tried once while the run stands.  A palette that
    spends two entries on a small region and one on a large varied one (kodim03 at k=16:
    two yellows, one dark brown over 78k pixels) is where random draws rarely find the
    fix.  The other proposals move a centre drawn by inverse merge cost to a point drawn
    by D^2.
    """
    if run.centres.shape[0] < 2:
        return run  # one centre: nothing to swap it with
    points = point_set.points
    weights = point_set.weights.astype(np.float64)
    odds = None
    tried = set()
    for _ in range(n_swaps):
        if odds is None:
            odds = _swap_odds(point_set, run, weights)
            tried.clear()
        centres = run.centres.copy()
        proposal = None
        if n_splits > 0:
            untried = [
                (int(moved), int(split))
                for moved in odds.cheapest_merges
                for split in odds.worst_clusters
                if moved != split and (int(moved), int(split)) not in tried
            ]
            proposal = untried[0] if untried else None
        if proposal is not None:
            n_splits -= 1
            tried.add(proposal)
            moved, split = proposal
            halves = _split_in_two(points, weights, np.flatnonzero(run.labels == split))
            if halves is None:
                continue
            centres[moved], centres[split] = halves
        else:
            moved = min(int(np.searchsorted(odds.move_cumulative, rng.random(), side="right")), centres.shape[0] - 1)
            drawn = int(np.searchsorted(odds.cumulative, rng.random() * odds.cumulative[-1], side="right"))
            centres[moved] = points[min(drawn, points.shape[0] - 1)]
        candidate = point_set.lloyd(centres, max_iter=swap_iter, tol_abs=tol_abs, start=run)
        if candidate.inertia < run.inertia:
            run = candidate
            odds = None
    return run


@dataclass
class Stages:
    """The nested point sets a fit runs on, smallest first: (points, weights) pairs.

    seed    k-means++ starts and random swaps run here (at most SWAP_SAMPLE pixels' worth)
    sample  Lloyd continues here (``sample_size`` pixels' worth; may be ``seed`` itself)
    full    every pixel: the objective the result is judged by (may be ``sample``)
    seeding where k-means++ draws its starts (seeds_from_subset): SEEDING_SAMPLE of the
            seed stage's randomly drawn pixels; None when the seed stage has no more
            than that (or is not a random sample), or for other palette sizes (as
            prepared), and then ``seed`` serves
    """

    seed: tuple
    sample: tuple
    full: tuple
    seeding: Optional[tuple] = None
    # A small photo's stages (small_seed_pixels): the seed stage is a small draw and
    # fit_stages tries fewer starts and swaps on it (SMALL_N_INIT, small_swap_plan).
    small: bool = False


# Palettes above this many colours are drawn from one k-means++ start (default_n_init),
# and their seed and later stages stop after SEED_MAX_ITER_LARGE and
# STAGE_MAX_ITER_LARGE Lloyd steps.
LARGE_PALETTE_ABOVE = 128


# From SEEDING_ABOVE + 1 to SEEDING_UP_TO colours (where several starts are drawn),
# k-means++ draws its starts from SEEDING_SAMPLE pixels of the seed stage rather than all
# of it; the starts' Lloyd runs still use the whole seed stage.  Seeding costs grow with
# the points (every trial centre sums its potential over them): on the 12 MP photo's
# 74k-colour seed stage one seeding took 8.7 ms at k=64, on the 65,536-pixel subset (28k
# colours) 3.5 ms; quantize at k=64 took 0.78 times the time (median of 10 paired runs).
# Worst ratio to exact k-means over 12 seeds (12 MP / bus-3mp / kodim03) at k=64:
# 1.0032 / 1.0090 / 1.0089 against 1.0063 / 1.0043 / 1.0075 (12 MP mean 1.0008 against
# 1.0028).  At k=16 a subset left two of 12 seeds at 1.024 on two photos (the basin the
# swaps exist for); at k=256 (one start) it saved 4 % of the time but raised the 12 MP
# mean from 1.0024 to 1.0035 and the worst to 1.0089.
SEEDING_ABOVE = 32
SEEDING_UP_TO = LARGE_PALETTE_ABOVE
SEEDING_SAMPLE = 1 << 16


def seeds_from_subset(n_colors):
    """Whether k-means++ for n_colors draws from the seeding stage (see Stages)."""
    return SEEDING_ABOVE < n_colors <= SEEDING_UP_TO


def _seeding(histogram, n_drawn, n_colors):
    """The seeding stage (see Stages) of a seed stage of n_drawn randomly drawn pixels:
    ``histogram(m)``, the (points, weights) of the first m of them; or None."""
    if not seeds_from_subset(n_colors) or n_drawn <= SEEDING_SAMPLE:
        return None
    seeding = histogram(SEEDING_SAMPLE)
    return seeding if seeding[0].shape[0] > n_colors else None


# Small photos (at most SMALL_PHOTO_PIXELS pixels, palettes of at most SMALL_SEED_UP_TO
# colours, plain weighting): k-means++ starts and swaps run on a draw of
# SMALL_SEED_PIXELS pixels, and Lloyd then goes straight to the full histogram (no
# sample stage: on a 0.4 MP photo a 262k-pixel sample holds nearly as many colours as
# the photo).  The starts and swaps were most of the time of such a photo (kodim05 at
# k=16, one thread: 48 of 72 ms on a 262k-pixel seed stage).  Over 30 photos of 0.14-0.4
# MP (bench/results/small_photos_sweep.md) the small stages took a third to a half of
# the CPU time at k = 5 and 16, for MSE ratios to scikit-learn's single starts of mean
# 0.984 / 0.982 and worst 1.0002 / 1.017 (usual stages: 0.984 / 0.981, 1.0001 / 1.003;
# the k = 16 worst, kodim18, reaches 1.017 with either at some seed).  At k = 64 a draw
# this small left kodim03 above 1.01 times exact k-means, and the usual stages are
# already four times faster than faiss there.  Above 1 MP the time saved shrinks and
# the MSE cost grows (up to 0.7 %).
SMALL_PHOTO_PIXELS = 1 << 20
SMALL_SEED_UP_TO = 32
SMALL_SEED_PIXELS = 1 << 14


def small_seed_pixels(n_pixels, n_colors, sample_size, weighted):
    """Pixels drawn for a small photo's seed stage (see SMALL_PHOTO_PIXELS), or None
    when the photo takes the usual stages (large, a large palette, a perceptually
    weighted fit, or sampling turned off by sample_size=None)."""
    if sample_size is None or weighted or n_colors > SMALL_SEED_UP_TO or n_pixels > SMALL_PHOTO_PIXELS:
        return None
    n_drawn = min(SMALL_SEED_PIXELS, sample_size)
    return n_drawn if n_pixels > 2 * n_drawn else None


def pixel_stages(pixels, colours, weights, n_colors, rng, sample_size, pixel_weights=None):
    """Stages for pixels (n, d) uint8 with histogram (colours, weights): uniform random
    pixel samples, histogrammed.

    pixel_weights: (n,) uint8, the weight of every pixel, or None for weight 1; weights
    are then the (capped) weight sums of the colours, and every sample is histogrammed
    with its pixels' weights (capped_weights), so each stage estimates the same weighted
    objective.
    """

    def histogram(rows, indices):
        # The weighted histogram of rows, drawn from pixels at indices.
        if pixel_weights is None:
            return distinct_colours(rows)
        sample_colours, _, sums = _kernels.weighted_colour_histogram(rows, pixel_weights[indices])
        return sample_colours, capped_weights(sums)

    n_pixels = pixels.shape[0]
    full = (colours, weights)
    n_drawn = small_seed_pixels(n_pixels, n_colors, sample_size, pixel_weights is not None)
    if n_drawn is not None:
        seed_hist = histogram(_kernels.gather_rows(pixels, rng.integers(0, n_pixels, size=n_drawn)), None)
        # A draw poorer in colours than the palette cannot seed it.
        if seed_hist[0].shape[0] > n_colors:
            return Stages(seed_hist, full, full, None, small=True)
    sampled = sample_size is not None and n_pixels > sample_size
    if sampled:
        indices = rng.integers(0, n_pixels, size=sample_size)
        sample = _kernels.gather_rows(pixels, indices)
        sample_hist = histogram(sample, indices)
        # A sample poorer in colours than the palette cannot seed it.
        sampled = sample_hist[0].shape[0] > n_colors
    if not sampled:
        sample, sample_hist, indices = pixels, full, None
    # The pixels of the seed stage, when they are a random draw (the first rows of an
    # unsampled image are not).
    seed_hist, seed_pixels, seed_indices = sample_hist, (sample if sampled else None), indices
    if sample.shape[0] > SWAP_SAMPLE:
        # A random subset (the sample may be the whole image, whose first rows are not).
        chosen = rng.choice(sample.shape[0], SWAP_SAMPLE, replace=False)
        subset = _kernels.gather_rows(sample, chosen)
        subset_indices = chosen if indices is None else indices[chosen]
        subset_hist = histogram(subset, subset_indices)
        if subset_hist[0].shape[0] > n_colors:
            seed_hist, seed_pixels, seed_indices = subset_hist, subset, subset_indices
    seeding = None
    if seed_pixels is not None:
        seeding = _seeding(
            lambda m: histogram(seed_pixels[:m], seed_indices[:m]), seed_pixels.shape[0], n_colors
        )
    return Stages(seed_hist, sample_hist, full, seeding)


# No colour weighs more than this share of the total weight (capped_weights).
WEIGHT_CAP_SHARE = 0.1


def capped_weights(weight_sums):
    """Colour weights (u,) int64 with none above WEIGHT_CAP_SHARE of their total, so
    that one colour (a large flat background, weighted most) cannot claim most of a
    perceptually weighted palette."""
    cap = max(1, int(np.sum(weight_sums) * WEIGHT_CAP_SHARE))
    return np.minimum(weight_sums, cap)


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
    seed, seed_draws = sample, draws
    if (draws.shape[0] if draws is not None else n_pixels) > SWAP_SAMPLE:
        subset = draws[rng.choice(draws.shape[0], SWAP_SAMPLE, replace=False)] if draws is not None else draw(SWAP_SAMPLE)
        candidate = _thinned(points, subset)
        if candidate[0].shape[0] > n_colors:
            seed, seed_draws = candidate, subset
    seeding = None
    if seed_draws is not None:
        seeding = _seeding(lambda m: _thinned(points, seed_draws[:m]), seed_draws.shape[0], n_colors)
    return Stages(seed, sample, full, seeding)


def default_n_init(n_colors):
    """k-means++ starts for a palette of n_colors.

    A small palette depends on where its few centres start: best of 4 keeps every Kodak
    photo within 1.5 % of scikit-learn's MSE where a single start is up to 10 % worse;
    at k=64, kodim03 (seed 0) came within 1.1 % of exact k-means with 4 starts and 1.4 %
    with 2.  A large one hardly does: at k=256, one start came within 0.71 % of exact
    k-means on three photos x five seeds (max ratio), four starts within 0.86 %, at a
    quarter of the seeding cost.
    """
    return 4 if n_colors <= 64 else 2 if n_colors <= LARGE_PALETTE_ABOVE else 1


# Lloyd steps of the seed stage's run above 128 colours (one k-means++ start): the
# over-relaxed full-histogram stage finishes what the seed run leaves.  12 MP photo at
# k=256, quantize timed against no cap in one process: 0.86 times the time (median of
# paired runs), MSE within 0.3 %; worst ratio to exact k-means over 12 seeds (12 MP /
# bus-3mp / kodim03) 1.0035 / 1.0049 / 1.0024 against 1.0038 / 1.0042 / 1.0032.  At k=64
# (4 starts) the same cap left kodim03 at 1.0115 against 1.0075, so smaller palettes
# run to convergence.
SEED_MAX_ITER_LARGE = 15
# Lloyd steps of each later stage (sample, full histogram) above 128 colours.  At k=256
# the over-relaxed full-histogram run takes 21-46 steps, and the last ones gain little
# (12 MP photo, seed 2: 1.0041 times exact k-means' MSE after 20 steps, 1.0024 after
# 41).  Over 12 seeds (12 MP / bus-3mp / kodim03) the worst ratio to exact k-means went
# from 1.0035 / 1.0049 / 1.0024 to 1.0041 / 1.0057 / 1.0024 and the 12 MP mean from
# 1.0017 to 1.0024 (25 steps: 1.0035 / 1.0051 / 1.0024, mean 1.0019); quantize took
# 0.83 times the time (median of 12 paired runs).  Up to 128 colours the full stage
# ends in 4-22 steps anyway.
STAGE_MAX_ITER_LARGE = 20


def fit_stages(stages, n_colors, rng, *, n_init, max_iter, tol_abs, n_swaps=None):
    """Fit n_colors centres through the stages; returns (centres (k, d) float64, n_iter,
    the PointSet of the full stage, for nearest-entry searches over it).

    On the seed stage: k-means++ and Lloyd ``n_init`` times (the best start kept; None:
    default_n_init; at most SEED_MAX_ITER_LARGE steps above LARGE_PALETTE_ABOVE
    colours), then ``n_swaps`` random swaps to leave poor local minima (None:
    swap_plan).  Lloyd then continues on the sample stage and on the full stage until
    converged (or ``max_iter``; at most STAGE_MAX_ITER_LARGE steps each above
    LARGE_PALETTE_ABOVE colours).
    """
    if n_init is None:
        n_init = SMALL_N_INIT if stages.small else default_n_init(n_colors)
    seed_points, seed_weights = stages.seed
    with threads_for(seed_points.shape[0]):
        seed_set = PointSet(seed_points, seed_weights, n_colors)
        large = n_colors > LARGE_PALETTE_ABOVE
        seed_iter = min(max_iter, SEED_MAX_ITER_LARGE) if large else max_iter
        draw_from = None
        if seeds_from_subset(n_colors) and stages.seeding is not None:
            draw_from = PointSet(*stages.seeding, n_colors)
        fitted = best_of_inits(
            seed_set, n_colors, rng, n_init=n_init, max_iter=seed_iter, tol_abs=tol_abs, draw_from=draw_from
        )
        planned_swaps, n_splits, swap_iter = small_swap_plan(n_colors) if stages.small else swap_plan(n_colors)
        n_swaps = planned_swaps if n_swaps is None else n_swaps
        fitted = random_swaps(
            seed_set, fitted, rng, n_swaps=n_swaps, swap_iter=swap_iter, tol_abs=tol_abs, n_splits=n_splits
        )
    n_iter = fitted.n_iter
    previous = stages.seed
    point_set = seed_set
    stage_iter = min(max_iter, STAGE_MAX_ITER_LARGE) if large else max_iter
    for stage in (stages.sample, stages.full):
        if stage is previous:
            continue
        previous = stage
        point_set = PointSet(stage[0], stage[1], n_colors)
        with threads_for(stage[0].shape[0]):
            # Only the centres go on: the caller assigns its rounded palette afterwards.
            fitted = point_set.lloyd(
                fitted.centres, max_iter=stage_iter, tol_abs=tol_abs, final_assign=False, overrelax=True
            )
        n_iter += fitted.n_iter
    return fitted.centres, n_iter, point_set


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
    centres, n_iter, _ = fit_stages(
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
