"""k-means++ seeding (greedy, several trials per centre), plain and over the cell grid."""

import numpy as np
from numba import njit

from ._common import SEED_BLOCK


@njit(cache=True, nogil=True)
def _distance_to_row(columns, i, row):
    """Squared distance between points i and row, from float32 columns (exact: integers)."""
    d = np.float32(0.0)
    for j in range(columns.shape[0]):
        t = columns[j, i] - columns[j, row]
        d += t * t
    return d


@njit(cache=True, nogil=True)
def _block_distances(columns, start, stop, row, out):
    """out[:stop-start] = squared distances of points start..stop-1 to point ``row``.

    Channel loop outside, point loop inside: the inner loop is contiguous and SIMD.
    """
    m = stop - start
    for i in range(m):
        out[i] = np.float32(0.0)
    for j in range(columns.shape[0]):
        cj = columns[j, row]
        column = columns[j, start:stop]
        for i in range(m):
            t = column[i] - cj
            out[i] += t * t


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _trial_potential_rgb(x0, x1, x2, weights, closest, c0, c1, c2):
    """sum_i weights[i] * min(closest[i], |x_i - c|^2) for 3 channels, in one SIMD pass.

    A separate function so that its fast-math flags (reassociation, for the vectorized
    sum) hold: integer-valued terms make the sum exact in any order.
    """
    total = 0.0
    for i in range(x0.shape[0]):
        t0 = x0[i] - c0
        t1 = x1[i] - c1
        t2 = x2[i] - c2
        d = t0 * t0 + t1 * t1 + t2 * t2
        total += weights[i] * np.float64(min(closest[i], d))
    return total


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _trial_potential_any(weights, closest, dist):
    total = 0.0
    for i in range(closest.shape[0]):
        total += weights[i] * np.float64(min(closest[i], dist[i]))
    return total


@njit(cache=True, nogil=True)
def _point_potential(columns, weights, closest, pending, i):
    """weight * squared distance to the nearest chosen centre, ``pending`` included."""
    d = closest[i]
    if pending >= 0:
        d = min(d, _distance_to_row(columns, i, pending))
    return np.float64(weights[i]) * np.float64(d)


@njit(cache=True, nogil=True)
def _weighted_draw(columns, weights, closest, pending, block_potential, target):
    """Index of the first point whose running sum of potential exceeds ``target``.

    Potentials are weight * D(x)^2 with D measured to the chosen centres and to
    ``pending`` (a centre chosen but not yet folded into ``closest``; -1 for none).
    Whole blocks are skipped by their totals, so a draw costs O(n_blocks + SEED_BLOCK).
    Points of zero potential are never drawn; if rounding pushes ``target`` past the
    total, the last point with positive potential is returned.
    """
    n_points = closest.shape[0]
    running = 0.0
    last_block = -1
    for block in range(block_potential.shape[0]):
        if block_potential[block] <= 0.0:
            continue
        last_block = block
        if running + block_potential[block] > target:
            for i in range(block * SEED_BLOCK, min((block + 1) * SEED_BLOCK, n_points)):
                potential = _point_potential(columns, weights, closest, pending, i)
                if potential > 0.0:
                    running += potential
                    if running > target:
                        return i
        else:
            running += block_potential[block]
    last_positive = -1
    if last_block >= 0:
        for i in range(last_block * SEED_BLOCK, min((last_block + 1) * SEED_BLOCK, n_points)):
            if _point_potential(columns, weights, closest, pending, i) > 0.0:
                last_positive = i
    return last_positive


@njit(cache=True, nogil=True)
def kmeans_plusplus(points, weights, first_uniform, trial_uniforms):
    """Greedy k-means++ seeding on weighted points; returns the chosen point indices.

    points          IN (n, d) uint8
    weights         IN (n,) int64 or float64, non-negative, not all zero
    first_uniform   IN float in [0, 1): draws the first centre with probability ~ weight
    trial_uniforms  IN (k - 1, n_trials) float64 in [0, 1): for each further centre,
                    n_trials candidates are drawn with probability ~ weight * D(x)^2 and
                    the one that lowers the total potential most is kept (scikit-learn
                    uses n_trials = 2 + int(ln k))
    returns         (k,) int64 indices into points

    When every point already coincides with a chosen centre (fewer distinct points than
    k), the potential is zero and further centres repeat the heaviest point.

    Squared distances between uint8 points are integers below 2^24, exact in float32;
    with integer weights every potential and block total is an integer below 2^53, so
    the sums are exact in any order (which lets the compiler vectorize them).  One
    pass per centre: it folds the previous winner into ``closest`` and scores
    the new candidates; the winner's block totals are the next draw's block totals.
    """
    n_points, n_channels = points.shape
    n_centres = trial_uniforms.shape[0] + 1
    n_trials = trial_uniforms.shape[1]
    n_blocks = max(1, (n_points + SEED_BLOCK - 1) // SEED_BLOCK)
    chosen = np.empty(n_centres, dtype=np.int64)
    no_centre = np.int64(-1)  # a variable, not the literal -1: one signature of the helpers
    # Points as float32 columns and weights as float64: the layouts the SIMD loops want
    # (AVX2 has no int64 -> float64 conversion).
    columns = np.empty((n_channels, n_points), dtype=np.float32)
    weights_f = np.empty(n_points, dtype=np.float64)
    for block in range(n_blocks):
        for i in range(block * SEED_BLOCK, min((block + 1) * SEED_BLOCK, n_points)):
            weights_f[i] = np.float64(weights[i])
            for j in range(n_channels):
                columns[j, i] = np.float32(points[i, j])

    # First centre: probability ~ weight, i.e. potential with every distance 1.
    closest = np.empty(n_points, dtype=np.float32)
    closest[:] = 1
    block_potential = np.empty(n_blocks, dtype=np.float64)
    for block in range(n_blocks):
        total = 0.0
        for i in range(block * SEED_BLOCK, min((block + 1) * SEED_BLOCK, n_points)):
            total += np.float64(weights[i])
        block_potential[block] = total
    total_weight = 0.0
    for block in range(n_blocks):
        total_weight += block_potential[block]
    chosen[0] = _weighted_draw(columns, weights, closest, no_centre, block_potential, first_uniform * total_weight)
    heaviest = 0
    for i in range(n_points):
        if weights[i] > weights[heaviest]:
            heaviest = i

    # closest[i]: squared distance from point i to its nearest folded-in centre.
    for block in range(n_blocks):
        total = 0.0
        for i in range(block * SEED_BLOCK, min((block + 1) * SEED_BLOCK, n_points)):
            closest[i] = _distance_to_row(columns, i, chosen[0])
            total += np.float64(weights[i]) * np.float64(closest[i])
        block_potential[block] = total

    candidates = np.empty(n_trials, dtype=np.int64)
    trial_potential = np.empty((n_blocks, n_trials), dtype=np.float64)
    pending = no_centre
    for c in range(1, n_centres):
        current = 0.0
        for block in range(n_blocks):
            current += block_potential[block]
        if current <= 0.0:
            chosen[c] = heaviest
            continue
        for t in range(n_trials):
            target = trial_uniforms[c - 1, t] * current
            candidates[t] = _weighted_draw(columns, weights, closest, pending, block_potential, target)
        for block in range(n_blocks):
            start = block * SEED_BLOCK
            stop = min((block + 1) * SEED_BLOCK, n_points)
            m = stop - start
            dist = np.empty(SEED_BLOCK, dtype=np.float32)
            block_closest = closest[start:stop]
            block_weights = weights_f[start:stop]
            if pending >= 0:
                _block_distances(columns, start, stop, pending, dist)
                for i in range(m):
                    block_closest[i] = min(block_closest[i], dist[i])
            for t in range(n_trials):
                if n_channels == 3:
                    total = _trial_potential_rgb(
                        columns[0, start:stop], columns[1, start:stop], columns[2, start:stop],
                        block_weights, block_closest, columns[0, candidates[t]], columns[1, candidates[t]],
                        columns[2, candidates[t]],
                    )
                else:
                    _block_distances(columns, start, stop, candidates[t], dist)
                    total = _trial_potential_any(block_weights, block_closest, dist)
                trial_potential[block, t] = total
        best_trial = 0
        best_total = np.inf
        for t in range(n_trials):
            total = 0.0
            for block in range(n_blocks):
                total += trial_potential[block, t]
            if total < best_total:
                best_total = total
                best_trial = t
        chosen[c] = candidates[best_trial]
        pending = chosen[c]
        for block in range(n_blocks):
            block_potential[block] = trial_potential[block, best_trial]
    return chosen


@njit(cache=True, nogil=True)
def _cell_draw(cell_potential, cell_start, weights, closest, target):
    """Index of the first point whose running sum of weight * closest exceeds ``target``,
    skipping whole cells by their potentials (as _weighted_draw skips blocks).  Points
    of zero potential are never drawn; past the total, the last positive one is."""
    running = 0.0
    last_cell = -1
    for cell in range(cell_potential.shape[0]):
        potential = cell_potential[cell]
        if potential <= 0.0:
            continue
        last_cell = cell
        if running + potential > target:
            for i in range(cell_start[cell], cell_start[cell + 1]):
                point_potential = np.float64(weights[i]) * np.float64(closest[i])
                if point_potential > 0.0:
                    running += point_potential
                    if running > target:
                        return i
        else:
            running += potential
    last_positive = -1
    if last_cell >= 0:
        for i in range(cell_start[last_cell], cell_start[last_cell + 1]):
            if np.float64(weights[i]) * np.float64(closest[i]) > 0.0:
                last_positive = i
    return last_positive


@njit(cache=True, nogil=True)
def _box_gap(corner, side, x0, x1, x2):
    """Smallest squared distance from (x0, x1, x2) to the cell [corner, corner + side]^3."""
    lo0 = np.float32(corner[0])
    lo1 = np.float32(corner[1])
    lo2 = np.float32(corner[2])
    gap0 = max(lo0 - x0, np.float32(0.0), x0 - (lo0 + side))
    gap1 = max(lo1 - x1, np.float32(0.0), x1 - (lo1 + side))
    gap2 = max(lo2 - x2, np.float32(0.0), x2 - (lo2 + side))
    return gap0 * gap0 + gap1 * gap1 + gap2 * gap2


@njit(cache=True, nogil=True)
def cell_kmeans_plusplus(columns, weights, cell_corners, cell_start, cell_bits, first_uniform, trial_uniforms):
    """kmeans_plusplus for 3-channel points sorted by grid cell (cell_sort): the same
    draws and choices, but a trial centre only visits the cells it can bring closer.

    columns        IN (3, n_padded) float32: the points in cell order (from cell_sort)
    weights        IN (n,) int64 or float64, in cell order
    cell_corners   IN (m, 3) uint8, cell_start (m + 1,) int64, cell_bits: as cell_lloyd_step
    first_uniform, trial_uniforms: as kmeans_plusplus
    returns        (k,) int64 indices into the sorted points

    Each cell keeps its potential (sum of weight * squared distance to the nearest
    chosen centre) and its largest such distance.  A cell whose box is at least that
    far from a trial centre keeps every distance, so its potential counts unchanged;
    late in the seeding most cells are so.  With integer weights every sum is exact, so
    the choices are those of kmeans_plusplus on the same sorted points.
    """
    n_points = weights.shape[0]
    n_cells = cell_corners.shape[0]
    n_centres = trial_uniforms.shape[0] + 1
    n_trials = trial_uniforms.shape[1]
    side = np.float32((1 << (8 - cell_bits)) - 1)
    chosen = np.empty(n_centres, dtype=np.int64)
    x0 = columns[0]
    x1 = columns[1]
    x2 = columns[2]
    weights_f = np.empty(n_points, dtype=np.float64)
    for i in range(n_points):
        weights_f[i] = np.float64(weights[i])

    # First centre: probability ~ weight (every distance 1).
    closest = np.empty(n_points, dtype=np.float32)
    closest[:] = 1
    cell_potential = np.empty(n_cells, dtype=np.float64)
    cell_farthest = np.empty(n_cells, dtype=np.float32)
    total_weight = 0.0
    for cell in range(n_cells):
        total = 0.0
        for i in range(cell_start[cell], cell_start[cell + 1]):
            total += weights_f[i]
        cell_potential[cell] = total
        total_weight += total
    chosen[0] = _cell_draw(cell_potential, cell_start, weights, closest, first_uniform * total_weight)
    heaviest = 0
    for i in range(n_points):
        if weights[i] > weights[heaviest]:
            heaviest = i
    closest[:] = np.inf  # so that folding the first centre in sets every distance
    for cell in range(n_cells):
        _fold_into_cell(x0, x1, x2, weights_f, closest, cell_start, cell, chosen[0], cell_potential, cell_farthest)

    candidates = np.empty(n_trials, dtype=np.int64)
    trial_total = np.empty(n_trials, dtype=np.float64)
    for c in range(1, n_centres):
        current = 0.0
        for cell in range(n_cells):
            current += cell_potential[cell]
        if current <= 0.0:
            chosen[c] = heaviest
            continue
        for t in range(n_trials):
            candidates[t] = _cell_draw(cell_potential, cell_start, weights, closest, trial_uniforms[c - 1, t] * current)
        for t in range(n_trials):
            candidate = candidates[t]
            c0 = x0[candidate]
            c1 = x1[candidate]
            c2 = x2[candidate]
            total = 0.0
            for cell in range(n_cells):
                if _box_gap(cell_corners[cell], side, c0, c1, c2) >= cell_farthest[cell]:
                    total += cell_potential[cell]  # no point of the cell comes closer
                else:
                    start = cell_start[cell]
                    stop = cell_start[cell + 1]
                    total += _trial_potential_rgb(
                        x0[start:stop], x1[start:stop], x2[start:stop], weights_f[start:stop], closest[start:stop],
                        c0, c1, c2,
                    )
            trial_total[t] = total
        best_trial = 0
        for t in range(1, n_trials):
            if trial_total[t] < trial_total[best_trial]:
                best_trial = t
        winner = candidates[best_trial]
        chosen[c] = winner
        # Fold the winner into the cells it brings closer.
        for cell in range(n_cells):
            if _box_gap(cell_corners[cell], side, x0[winner], x1[winner], x2[winner]) < cell_farthest[cell]:
                _fold_into_cell(x0, x1, x2, weights_f, closest, cell_start, cell, winner, cell_potential, cell_farthest)
    return chosen


@njit(cache=True, nogil=True)
def _fold_into_cell(x0, x1, x2, weights_f, closest, cell_start, cell, centre, cell_potential, cell_farthest):
    """Bring point ``centre`` into the closest distances of one cell's points, and set the
    cell's potential (sum of weight * closest) and its largest closest distance."""
    c0 = x0[centre]
    c1 = x1[centre]
    c2 = x2[centre]
    total = 0.0
    farthest = np.float32(0.0)
    for i in range(cell_start[cell], cell_start[cell + 1]):
        t0 = x0[i] - c0
        t1 = x1[i] - c1
        t2 = x2[i] - c2
        d = min(closest[i], t0 * t0 + t1 * t1 + t2 * t2)
        closest[i] = d
        farthest = max(farthest, d)
        total += weights_f[i] * np.float64(d)
    cell_potential[cell] = total
    cell_farthest[cell] = farthest
