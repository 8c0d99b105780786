"""Numba kernels: the hot loops of fastkm.

Every kernel takes arrays and scalars only (no objects, no random generator) and is
compiled once, on first use, then cached on disk (``cache=True``).  Randomness is drawn
by the caller in NumPy and passed in as uniform numbers.

Parallel reductions never accumulate into shared arrays from a ``prange``: each block of
data (blocks sized by data, never by thread count) writes its own row of partial
results, and the rows are merged serially in block order.  Results are therefore
bit-identical for any number of threads.

Each kernel has a plain-NumPy reference in ``tests/reference.py``.
"""

import os

import numpy as np
from numba import njit, prange

# Pixels per tile of the assignment loop: a tile's float32 columns, distances and labels
# stay in L1 while every centre streams over them.
ASSIGN_TILE = 256
# Tiles handled by one parallel task (one scratch allocation per task).
ASSIGN_TILES_PER_TASK = 64
# Points per block of the squared-error sum; fixed, so the order never depends on threads.
SUM_BLOCK = 32768
# Points per block of the k-means++ potential: a weighted draw skips whole blocks by
# their totals and scans one block point by point, so blocks are kept small.
SEED_BLOCK = 2048
# Pixels per block of the histogram and remap passes.
PIXEL_BLOCK = 65536
# Histogram buckets (of 256) counted by one parallel task with one table.
BUCKETS_PER_TASK = 16


@njit(cache=True, fastmath={"contract"})
def _nearest_in_tile_rgb(x0, x1, x2, expanded, best_dist, best_label):
    """Tile update for 3 channels: best_dist/best_label over all centres.

    expanded (k, 4) float32 holds (-2 c0, -2 c1, -2 c2, |c|^2), so the distance minus the
    pixel's own |x|^2 is |c|^2 - 2 x.c: three fused multiply-adds per pixel and centre.
    Two centres share each pass over the tile to halve its loads and stores.  For
    integer-valued centres every intermediate is an integer below 2^24, hence exact.
    """
    n_centres = expanded.shape[0]
    tile = x0.shape[0]
    c = 0
    while c + 1 < n_centres:
        a0 = expanded[c, 0]
        a1 = expanded[c, 1]
        a2 = expanded[c, 2]
        an = expanded[c, 3]
        b0 = expanded[c + 1, 0]
        b1 = expanded[c + 1, 1]
        b2 = expanded[c + 1, 2]
        bn = expanded[c + 1, 3]
        second = c + 1
        for i in range(tile):
            p0 = x0[i]
            p1 = x1[i]
            p2 = x2[i]
            d_first = an + p0 * a0 + p1 * a1 + p2 * a2
            d_second = bn + p0 * b0 + p1 * b1 + p2 * b2
            best = best_dist[i]
            label = best_label[i]
            label = c if d_first < best else label
            best = min(d_first, best)
            label = second if d_second < best else label
            best_dist[i] = min(d_second, best)
            best_label[i] = label
        c += 2
    if c < n_centres:
        a0 = expanded[c, 0]
        a1 = expanded[c, 1]
        a2 = expanded[c, 2]
        an = expanded[c, 3]
        for i in range(tile):
            d_first = an + x0[i] * a0 + x1[i] * a1 + x2[i] * a2
            best = best_dist[i]
            label = best_label[i]
            best_label[i] = c if d_first < best else label
            best_dist[i] = min(d_first, best)


@njit(cache=True, fastmath={"contract"})
def _nearest_in_tile_rgba(x0, x1, x2, x3, expanded, best_dist, best_label):
    """Tile update for 4 channels, as _nearest_in_tile_rgb with (-2 c0..c3, |c|^2).

    One centre per pass: with four channels the two-centre pass runs out of registers.
    """
    for c in range(expanded.shape[0]):
        a0 = expanded[c, 0]
        a1 = expanded[c, 1]
        a2 = expanded[c, 2]
        a3 = expanded[c, 3]
        an = expanded[c, 4]
        for i in range(x0.shape[0]):
            d_first = an + x0[i] * a0 + x1[i] * a1 + x2[i] * a2 + x3[i] * a3
            best = best_dist[i]
            label = best_label[i]
            best_label[i] = c if d_first < best else label
            best_dist[i] = min(d_first, best)


@njit(cache=True)
def _nearest_in_tile_any(columns, centres, dist, best_dist, best_label):
    """Tile update for any channel count (difference form, channel by channel)."""
    n_channels, tile = columns.shape
    for c in range(centres.shape[0]):
        for i in range(tile):
            dist[i] = np.float32(0.0)
        for j in range(n_channels):
            cj = centres[c, j]
            for i in range(tile):
                t = columns[j, i] - cj
                dist[i] += t * t
        for i in range(tile):
            best = best_dist[i]
            label = best_label[i]
            best_label[i] = c if dist[i] < best else label
            best_dist[i] = min(dist[i], best)


@njit(cache=True)
def _expanded_centres(centres):
    """(k, 5) float32 (-2 c0, -2 c1, -2 c2, -2 c3, |c|^2) for centres of up to 4
    channels; the coefficients of missing channels are 0 (unused above 4 channels).

    |c|^2 sits in column 3 for up to 3 channels (the layout _nearest_in_tile_rgb reads)
    and in column 4 for 4 channels.
    """
    n_centres, n_channels = centres.shape
    expanded = np.zeros((n_centres, 5), dtype=np.float32)
    if n_channels <= 4:
        norm_column = 3 if n_channels <= 3 else 4
        for c in range(n_centres):
            norm = np.float32(0.0)
            for j in range(n_channels):
                expanded[c, j] = np.float32(-2.0) * centres[c, j]
                norm += centres[c, j] * centres[c, j]
            expanded[c, norm_column] = norm
    return expanded


@njit(cache=True)
def _nearest_in_tile(points, start, m, centres, expanded, columns, dist, best_dist, best_label):
    """Nearest centre of points[start:start+m] (m <= ASSIGN_TILE) into best_dist/label.

    Converts the uint8 rows into the (d, ASSIGN_TILE) float32 scratch ``columns`` and
    searches it as a column tile; entries past m hold stale values and mean nothing.
    """
    for i in range(m):
        for j in range(points.shape[1]):
            columns[j, i] = np.float32(points[start + i, j])
    _nearest_in_column_tile(columns, 0, centres, expanded, dist, best_dist, best_label)


@njit(cache=True)
def _nearest_in_column_tile(columns, start, centres, expanded, dist, best_dist, best_label):
    """Nearest centre of the ASSIGN_TILE points starting at ``start`` of float32 columns.

    columns (d, n_padded) float32, n_padded a multiple of ASSIGN_TILE: no conversion or
    transposition per call, the tile is a view.  best_dist holds true squared distances.
    """
    stop = start + ASSIGN_TILE
    best_dist[:] = np.inf
    best_label[:] = 0
    n_channels = columns.shape[0]
    if n_channels <= 4:
        # Up to 3 channels share the 3-channel loop: a missing channel repeats the
        # last one with a zero coefficient, so it adds exactly nothing.
        x0 = columns[0, start:stop]
        x1 = columns[min(1, n_channels - 1), start:stop]
        x2 = columns[min(2, n_channels - 1), start:stop]
        x3 = columns[min(3, n_channels - 1), start:stop]
        if n_channels == 4:
            _nearest_in_tile_rgba(x0, x1, x2, x3, expanded, best_dist, best_label)
        else:
            _nearest_in_tile_rgb(x0, x1, x2, expanded, best_dist, best_label)
        # Branch-free |x|^2: repeated columns count with weight 0.
        w1 = np.float32(n_channels > 1)
        w2 = np.float32(n_channels > 2)
        w3 = np.float32(n_channels > 3)
        for i in range(ASSIGN_TILE):
            own_norm = x0[i] * x0[i] + w1 * (x1[i] * x1[i]) + w2 * (x2[i] * x2[i]) + w3 * (x3[i] * x3[i])
            # Clamp: rounding can push |c|^2 - 2x.c + |x|^2 a hair below zero.
            best_dist[i] = max(best_dist[i] + own_norm, np.float32(0.0))
    else:
        _nearest_in_tile_any(columns[:, start:stop], centres, dist, best_dist, best_label)


@njit(cache=True, parallel=True)
def point_columns(points):
    """points (n, d) uint8 as float32 columns (d, n_padded), zero-padded to whole tiles."""
    n_points, n_channels = points.shape
    n_padded = max(1, (n_points + ASSIGN_TILE - 1) // ASSIGN_TILE) * ASSIGN_TILE
    columns = np.zeros((n_channels, n_padded), dtype=np.float32)
    n_blocks = (n_points + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    for block in prange(n_blocks):
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_points)):
            for j in range(n_channels):
                columns[j, i] = np.float32(points[i, j])
    return columns


@njit(cache=True, parallel=True)
def assign_labels(points, centres, labels, min_dist):
    """Nearest centre of every point.

    points   IN  (n, d) uint8
    centres  IN  (k, d) float32
    labels   OUT (n,) any integer dtype: index of the nearest centre (lowest index on ties)
    min_dist OUT (n,) float32: squared distance to that centre

    Exact (labels and distances) when the centres are integer-valued, as a uint8 palette
    is; otherwise distances carry float32 rounding and near-ties may go either way.

    Points are processed in tiles of ASSIGN_TILE held as float32 columns; the loop over
    centres is outside and the loop over the tile's pixels inside, so the compiler turns
    the inner loop into SIMD fused multiply-adds, compares and selects.
    """
    n_points = points.shape[0]
    n_channels = points.shape[1]
    expanded = _expanded_centres(centres)
    task_size = ASSIGN_TILE * ASSIGN_TILES_PER_TASK
    n_tasks = (n_points + task_size - 1) // task_size
    for task in prange(n_tasks):
        columns = np.zeros((n_channels, ASSIGN_TILE), dtype=np.float32)
        best_dist = np.empty(ASSIGN_TILE, dtype=np.float32)
        best_label = np.empty(ASSIGN_TILE, dtype=np.int32)
        dist = np.empty(ASSIGN_TILE, dtype=np.float32)
        task_end = min((task + 1) * task_size, n_points)
        for start in range(task * task_size, task_end, ASSIGN_TILE):
            m = min(ASSIGN_TILE, task_end - start)
            _nearest_in_tile(points, start, m, centres, expanded, columns, dist, best_dist, best_label)
            for i in range(m):
                labels[start + i] = best_label[i]
                min_dist[start + i] = best_dist[i]


@njit(cache=True, parallel=True)
def lloyd_step(columns, points, weights, centres, labels, min_dist, sums, counts):
    """One Lloyd iteration: assign every point, then sum the clusters (one pass).

    columns  IN     (d, n_padded) float32: point_columns(points), made once per data set
    points   IN     (n, d) uint8
    weights  IN     (n,) int64 or float64
    centres  IN     (k, d) float32
    labels   IN/OUT (n,) int32: previous labels in, nearest centre out (as assign_labels)
    min_dist OUT    (n,) float32: squared distance to that centre
    sums     OUT    (k, d), dtype of weights: sum of weight * point per new cluster
    counts   OUT    (k,), dtype of weights: sum of weight per new cluster
    returns  number of points whose label changed

    Each task of ASSIGN_TILE * ASSIGN_TILES_PER_TASK points (a fixed, data-sized block)
    keeps private partial sums, merged serially in task order: the same bits for any
    number of threads.
    """
    n_points, n_channels = points.shape
    n_centres = centres.shape[0]
    expanded = _expanded_centres(centres)
    task_size = ASSIGN_TILE * ASSIGN_TILES_PER_TASK
    n_tasks = max(1, (n_points + task_size - 1) // task_size)
    # Per task and cluster: the channel sums, then the count, side by side in one row.
    partial_sums = np.zeros((n_tasks, n_centres, n_channels + 1), dtype=sums.dtype)
    partial_changed = np.zeros(n_tasks, dtype=np.int64)
    count_column = np.uint64(n_channels)
    for task in prange(n_tasks):
        best_dist = np.empty(ASSIGN_TILE, dtype=np.float32)
        best_label = np.empty(ASSIGN_TILE, dtype=np.int32)
        dist = np.empty(ASSIGN_TILE, dtype=np.float32)
        task_sums = partial_sums[task]
        changed = 0
        task_end = min((task + 1) * task_size, n_points)
        for start in range(task * task_size, task_end, ASSIGN_TILE):
            m = min(ASSIGN_TILE, task_end - start)
            _nearest_in_column_tile(columns, start, centres, expanded, dist, best_dist, best_label)
            for i in range(m):
                label = best_label[i]
                if labels[start + i] != label:
                    changed += 1
                labels[start + i] = label
                min_dist[start + i] = best_dist[i]
            # Unsigned indices: numba adds no negative-index wraparound to these loads and
            # stores (measured on 389k colours, one thread: k=16 4.4 -> 2.9 ms a step).
            if n_channels == 3:
                # Unrolled: the generic channel loop costs ~3 ns more per point.
                for i in range(m):
                    label = np.uint64(best_label[i])
                    row = np.uint64(start + i)
                    w = weights[row]
                    task_sums[label, np.uint64(0)] += w * points[row, np.uint64(0)]
                    task_sums[label, np.uint64(1)] += w * points[row, np.uint64(1)]
                    task_sums[label, np.uint64(2)] += w * points[row, np.uint64(2)]
                    task_sums[label, count_column] += w
            else:
                for i in range(m):
                    label = np.uint64(best_label[i])
                    row = np.uint64(start + i)
                    w = weights[row]
                    for j in range(n_channels):
                        task_sums[label, np.uint64(j)] += w * points[row, np.uint64(j)]
                    task_sums[label, count_column] += w
        partial_changed[task] = changed
    sums[:] = 0
    counts[:] = 0
    n_changed = 0
    for task in range(n_tasks):
        n_changed += partial_changed[task]
        for c in range(n_centres):
            counts[c] += partial_sums[task, c, n_channels]
            for j in range(n_channels):
                sums[c, j] += partial_sums[task, c, j]
    return n_changed


# Squared-distance margin of the cell pruning: a centre is searched when its distance to a
# cell could come within this of the cell's best, which covers the float32 rounding of
# the expanded distances (below 0.05 for uint8 points and centres in [0, 255]).  With
# it, pruned searches pick exactly the centre a full search picks.
CELL_SLACK = 0.25
# Cells per axis (as bits) of the coarsest level of the candidate search: each finer
# level filters the candidates of the cell it lies in, so most cells test a few dozen
# centres instead of all k.
TOP_CELL_BITS = 2


@njit(cache=True, parallel=True)
def cell_sort(points, weights, cell_bits):
    """Points (n, 3) uint8 and weights (n,) sorted by grid cell (a stable counting sort).

    The RGB cube is cut into 2^cell_bits cells per axis, ordered by the interleaved bits
    of their coordinates (Morton order), so that the cells of every coarser grid are
    contiguous too.  Returns sorted points (n, 3) uint8, sorted weights, their
    point_columns layout (3, n_padded) float32, the cell starts (n_cells + 1,) int64,
    the original index of each sorted point (n,) int64 and sum of weight * |point|^2 as
    float64 (exact for integer weights below 2^53).  Blocks of PIXEL_BLOCK points are
    counted and scattered in parallel, each into its own slots, so the order is the
    same for any number of threads.
    """
    n_points = points.shape[0]
    shift = 8 - cell_bits
    spread = np.zeros(256, dtype=np.int64)
    for v in range(256):
        g = v >> shift
        key = 0
        for t in range(cell_bits - 1, -1, -1):
            key = (key << 3) | (((g >> t) & 1) << 2)
        spread[v] = key
    n_cells = 1 << (3 * cell_bits)
    n_blocks = max(1, (n_points + PIXEL_BLOCK - 1) // PIXEL_BLOCK)
    cell_of = np.empty(n_points, dtype=np.int64)
    block_counts = np.zeros((n_blocks, n_cells), dtype=np.int64)
    for block in prange(n_blocks):
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_points)):
            code = spread[points[i, 0]] | (spread[points[i, 1]] >> 1) | (spread[points[i, 2]] >> 2)
            cell_of[i] = code
            block_counts[block, code] += 1
    # Slots: cell by cell, and within a cell block by block (a stable order).
    start = np.empty(n_cells + 1, dtype=np.int64)
    offsets = np.empty((n_blocks, n_cells), dtype=np.int64)
    position = 0
    for c in range(n_cells):
        start[c] = position
        for block in range(n_blocks):
            offsets[block, c] = position
            position += block_counts[block, c]
    start[n_cells] = position
    n_padded = max(1, (n_points + ASSIGN_TILE - 1) // ASSIGN_TILE) * ASSIGN_TILE
    sorted_points = np.empty((n_points, 3), dtype=np.uint8)
    sorted_weights = np.empty(n_points, dtype=weights.dtype)
    columns = np.zeros((3, n_padded), dtype=np.float32)
    order = np.empty(n_points, dtype=np.int64)
    block_norm = np.zeros(n_blocks, dtype=np.float64)
    for block in prange(n_blocks):
        cursor = offsets[block].copy()
        norm_sum = 0.0
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_points)):
            code = cell_of[i]
            to = cursor[code]
            cursor[code] = to + 1
            order[to] = i
            w = weights[i]
            sorted_weights[to] = w
            norm = 0
            for j in range(3):
                v = points[i, j]
                sorted_points[to, j] = v
                columns[j, to] = np.float32(v)
                norm += np.int64(v) * np.int64(v)
            norm_sum += np.float64(w) * np.float64(norm)
        block_norm[block] = norm_sum
    norm_total = 0.0
    for block in range(n_blocks):
        norm_total += block_norm[block]
    return sorted_points, sorted_weights, columns, start, order, norm_total


@njit(cache=True)
def _box_candidates(lo0, lo1, lo2, side, centre_columns, from_ids, n_from, out_ids):
    """The centres among from_ids[:n_from] that can be nearest to some point of the box
    [lo, lo + side]^3; writes them, in the same (ascending) order, to out_ids and
    returns how many.

    A centre whose nearest possible distance to the box exceeds the smallest farthest
    possible distance of any listed centre is never the nearest of a point in it.
    Float32 box distances of values below 256 are off by far less than CELL_SLACK.
    """
    c0 = centre_columns[0]
    c1 = centre_columns[1]
    c2 = centre_columns[2]
    hi0 = lo0 + side
    hi1 = lo1 + side
    hi2 = lo2 + side
    threshold = np.float32(np.inf)
    for q in range(n_from):
        c = from_ids[q]
        f0 = max(c0[c] - lo0, hi0 - c0[c])
        f1 = max(c1[c] - lo1, hi1 - c1[c])
        f2 = max(c2[c] - lo2, hi2 - c2[c])
        threshold = min(threshold, f0 * f0 + f1 * f1 + f2 * f2)
    threshold += np.float32(CELL_SLACK)
    count = 0
    for q in range(n_from):
        c = from_ids[q]
        n0 = max(lo0 - c0[c], np.float32(0.0), c0[c] - hi0)
        n1 = max(lo1 - c1[c], np.float32(0.0), c1[c] - hi1)
        n2 = max(lo2 - c2[c], np.float32(0.0), c2[c] - hi2)
        if n0 * n0 + n1 * n1 + n2 * n2 <= threshold:
            out_ids[count] = c
            count += 1
    return count


@njit(cache=True)
def _cell_candidates(corner, cell_bits, centre_columns, all_ids, level_ids, level_count, level_key):
    """Candidates (as level_ids[-1, :count]) of the cell whose low corner is ``corner``
    (3,) uint8, out of all_ids (k,) = 0..k-1; returns count.  Levels TOP_CELL_BITS..cell_bits are searched coarse to
    fine, each filtering its parent's list; a level whose cell is the one already
    listed (level_key) is reused."""
    n_levels = level_ids.shape[0]
    recompute = False
    for level in range(n_levels):
        bits = cell_bits - (n_levels - 1) + level
        shift = 8 - bits
        g0 = np.int64(corner[0]) >> shift
        g1 = np.int64(corner[1]) >> shift
        g2 = np.int64(corner[2]) >> shift
        key = (g0 << (2 * bits)) | (g1 << bits) | g2
        if recompute or key != level_key[level]:
            recompute = True
            level_key[level] = key
            side = np.float32((1 << shift) - 1)
            lo0 = np.float32(g0 << shift)
            lo1 = np.float32(g1 << shift)
            lo2 = np.float32(g2 << shift)
            if level == 0:
                level_count[0] = _box_candidates(
                    lo0, lo1, lo2, side, centre_columns, all_ids, all_ids.shape[0], level_ids[0]
                )
            else:
                level_count[level] = _box_candidates(
                    lo0, lo1, lo2, side, centre_columns, level_ids[level - 1], level_count[level - 1],
                    level_ids[level],
                )
    return level_count[n_levels - 1]


@njit(cache=True, parallel=True)
def cell_lloyd_step(columns, points, weights, cell_corners, cell_start, task_cells, cell_bits, centres, labels,
                    sum_changes, count_changes):
    """A Lloyd assignment of 3-channel points sorted by grid cell (cell_sort), in which each
    cell searches only the centres that can be nearest to it (_cell_candidates), and
    only points that change label touch the sums.

    columns      IN     (3, n_padded) float32: the points as columns (from cell_sort)
    points       IN     (n, 3) uint8, in cell order
    weights      IN     (n,) int64 or float64
    cell_corners IN     (m, 3) uint8: low corner of each non-empty cell, in the points' order
    cell_start   IN     (m + 1,) int64: cell i holds points cell_start[i]:cell_start[i+1]
    task_cells   IN     (t + 1,) int64: task j handles cells task_cells[j]:task_cells[j+1]
                        (a partition by data, so the merge order never depends on threads)
    cell_bits    IN     int: cells per axis are 2^cell_bits (at least TOP_CELL_BITS)
    centres      IN     (k, 3) float32
    labels       IN/OUT (n,) int32: previous labels (-1: none) in, nearest centre out
    sum_changes  OUT    (k, 3), dtype of weights: change of sum of weight * point per cluster
    count_changes OUT   (k,), dtype of weights: change of sum of weight per cluster
    returns      number of points whose label changed

    Each point's distances to its candidates are the same float32 numbers assign_labels
    computes, and pruned centres are farther by more than their rounding, so the labels
    are those of a full search.  Starting from labels -1 the changes are the full sums.
    Partial changes per task are merged in task order: with int64 weights they are exact.
    """
    n_centres = centres.shape[0]
    expanded = _expanded_centres(centres)
    centre_columns = np.ascontiguousarray(centres.T)
    n_levels = cell_bits - TOP_CELL_BITS + 1
    n_tasks = task_cells.shape[0] - 1
    partial_sums = np.zeros((n_tasks, n_centres, 4), dtype=sum_changes.dtype)
    partial_changed = np.zeros(n_tasks, dtype=np.int64)
    for task in prange(n_tasks):
        all_ids = np.arange(n_centres).astype(np.int32)
        level_ids = np.empty((n_levels, n_centres), dtype=np.int32)
        level_count = np.zeros(n_levels, dtype=np.int64)
        level_key = np.full(n_levels, -1, dtype=np.int64)
        candidate_rows = np.zeros((n_centres, 5), dtype=np.float32)
        best_dist = np.empty(ASSIGN_TILE, dtype=np.float32)
        best_label = np.empty(ASSIGN_TILE, dtype=np.int32)
        task_sums = partial_sums[task]
        changed = 0
        for cell in range(task_cells[task], task_cells[task + 1]):
            n_candidates = _cell_candidates(
                cell_corners[cell], cell_bits, centre_columns, all_ids, level_ids, level_count, level_key
            )
            candidate_ids = level_ids[n_levels - 1]
            cell_stop = cell_start[cell + 1]
            if n_candidates == 1:
                # One possible centre: no search.
                only = candidate_ids[0]
                for row in range(cell_start[cell], cell_stop):
                    old = labels[row]
                    if old != only:
                        changed += 1
                        labels[row] = only
                        _move_point(task_sums, points, weights, row, old, only)
                continue
            for q in range(n_candidates):
                for j in range(4):
                    candidate_rows[q, j] = expanded[candidate_ids[q], j]
            rows = candidate_rows[:n_candidates]
            for start in range(cell_start[cell], cell_stop, ASSIGN_TILE):
                stop = min(start + ASSIGN_TILE, cell_stop)
                m = stop - start
                for i in range(m):
                    best_dist[i] = np.inf
                    best_label[i] = 0
                _nearest_in_tile_rgb(
                    columns[0, start:stop], columns[1, start:stop], columns[2, start:stop], rows,
                    best_dist[:m], best_label[:m],
                )
                for i in range(m):
                    row = np.uint64(start + i)
                    label = candidate_ids[np.uint64(best_label[np.uint64(i)])]
                    old = labels[row]
                    if old != label:
                        changed += 1
                        labels[row] = label
                        _move_point(task_sums, points, weights, row, old, label)
        partial_changed[task] = changed
    sum_changes[:] = 0
    count_changes[:] = 0
    n_changed = 0
    for task in range(n_tasks):
        n_changed += partial_changed[task]
        for c in range(n_centres):
            count_changes[c] += partial_sums[task, c, 3]
            for j in range(3):
                sum_changes[c, j] += partial_sums[task, c, j]
    return n_changed


@njit(cache=True)
def _move_point(task_sums, points, weights, row, old, new):
    """Move a 3-channel point's weighted sums from cluster ``old`` (-1: none) to ``new``."""
    row = np.uint64(row)
    w = weights[row]
    p0 = points[row, np.uint64(0)]
    p1 = points[row, np.uint64(1)]
    p2 = points[row, np.uint64(2)]
    to = np.uint64(new)
    task_sums[to, np.uint64(0)] += w * p0
    task_sums[to, np.uint64(1)] += w * p1
    task_sums[to, np.uint64(2)] += w * p2
    task_sums[to, np.uint64(3)] += w
    if old >= 0:
        frm = np.uint64(old)
        task_sums[frm, np.uint64(0)] -= w * p0
        task_sums[frm, np.uint64(1)] -= w * p1
        task_sums[frm, np.uint64(2)] -= w * p2
        task_sums[frm, np.uint64(3)] -= w


@njit(cache=True)
def _distance_to_row(columns, i, row):
    """Squared distance between points i and row, from float32 columns (exact: integers)."""
    d = np.float32(0.0)
    for j in range(columns.shape[0]):
        t = columns[j, i] - columns[j, row]
        d += t * t
    return d


@njit(cache=True)
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


@njit(cache=True, fastmath={"reassoc", "contract"})
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


@njit(cache=True, fastmath={"reassoc", "contract"})
def _trial_potential_any(weights, closest, dist):
    total = 0.0
    for i in range(closest.shape[0]):
        total += weights[i] * np.float64(min(closest[i], dist[i]))
    return total


@njit(cache=True)
def _point_potential(columns, weights, closest, pending, i):
    """weight * squared distance to the nearest chosen centre, ``pending`` included."""
    d = closest[i]
    if pending >= 0:
        d = min(d, _distance_to_row(columns, i, pending))
    return np.float64(weights[i]) * np.float64(d)


@njit(cache=True)
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


@njit(cache=True, parallel=True)
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
    parallel pass per centre: it folds the previous winner into ``closest`` and scores
    the new candidates; the winner's block totals are the next draw's block totals.
    """
    n_points, n_channels = points.shape
    n_centres = trial_uniforms.shape[0] + 1
    n_trials = trial_uniforms.shape[1]
    n_blocks = max(1, (n_points + SEED_BLOCK - 1) // SEED_BLOCK)
    chosen = np.empty(n_centres, dtype=np.int64)
    # Points as float32 columns and weights as float64: the layouts the SIMD loops want
    # (AVX2 has no int64 -> float64 conversion).
    columns = np.empty((n_channels, n_points), dtype=np.float32)
    weights_f = np.empty(n_points, dtype=np.float64)
    for block in prange(n_blocks):
        for i in range(block * SEED_BLOCK, min((block + 1) * SEED_BLOCK, n_points)):
            weights_f[i] = np.float64(weights[i])
            for j in range(n_channels):
                columns[j, i] = np.float32(points[i, j])

    # First centre: probability ~ weight, i.e. potential with every distance 1.
    closest = np.ones(n_points, dtype=np.float32)
    block_potential = np.empty(n_blocks, dtype=np.float64)
    for block in prange(n_blocks):
        total = 0.0
        for i in range(block * SEED_BLOCK, min((block + 1) * SEED_BLOCK, n_points)):
            total += np.float64(weights[i])
        block_potential[block] = total
    total_weight = 0.0
    for block in range(n_blocks):
        total_weight += block_potential[block]
    chosen[0] = _weighted_draw(columns, weights, closest, -1, block_potential, first_uniform * total_weight)
    heaviest = 0
    for i in range(n_points):
        if weights[i] > weights[heaviest]:
            heaviest = i

    # closest[i]: squared distance from point i to its nearest folded-in centre.
    for block in prange(n_blocks):
        total = 0.0
        for i in range(block * SEED_BLOCK, min((block + 1) * SEED_BLOCK, n_points)):
            closest[i] = _distance_to_row(columns, i, chosen[0])
            total += np.float64(weights[i]) * np.float64(closest[i])
        block_potential[block] = total

    candidates = np.empty(n_trials, dtype=np.int64)
    trial_potential = np.empty((n_blocks, n_trials), dtype=np.float64)
    pending = -1
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
        for block in prange(n_blocks):
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


@njit(cache=True)
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


@njit(cache=True)
def _box_gap(corner, side, x0, x1, x2):
    """Smallest squared distance from (x0, x1, x2) to the cell [corner, corner + side]^3."""
    lo0 = np.float32(corner[0])
    lo1 = np.float32(corner[1])
    lo2 = np.float32(corner[2])
    gap0 = max(lo0 - x0, np.float32(0.0), x0 - (lo0 + side))
    gap1 = max(lo1 - x1, np.float32(0.0), x1 - (lo1 + side))
    gap2 = max(lo2 - x2, np.float32(0.0), x2 - (lo2 + side))
    return gap0 * gap0 + gap1 * gap1 + gap2 * gap2


@njit(cache=True, parallel=True)
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
    closest = np.ones(n_points, dtype=np.float32)
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
    for cell in prange(n_cells):
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
        for t in prange(n_trials):
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


@njit(cache=True)
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


@njit(cache=True)
def _pack_key(pixels, i):
    key = np.uint32(0)
    for j in range(pixels.shape[1]):
        key = (key << np.uint32(8)) | np.uint32(pixels[i, j])
    return key


@njit(cache=True, parallel=True)
def colour_histogram(pixels):
    """Distinct colours of an image and how many pixels hold each.

    pixels   IN (n, d) uint8 with 1 <= d <= 3
    returns  colours (u, d) uint8, grouped by channel 0 ascending, in order of first
             appearance within a group; counts (u,) int64, summing to n

    Colours are packed into keys of 8*d bits.  The top 8 bits pick one of 256 buckets:
    pixels are scattered into bucket order (block-wise counts and a serial prefix sum, so
    no two blocks write the same place), then every bucket is counted in its own small
    table.  Memory beyond the input is 2 bytes per pixel, not a 2^24 table per thread.
    """
    n_pixels, n_channels = pixels.shape
    low_bits = 8 * n_channels - 8
    low_mask = np.uint32((1 << low_bits) - 1)
    table_size = 1 << low_bits
    n_blocks = max(1, (n_pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK)

    block_bucket_counts = np.zeros((n_blocks, 256), dtype=np.int64)
    for block in prange(n_blocks):
        # Four interleaved tallies: neighbouring pixels often share a first channel, and
        # one tally would make each count wait for the previous store (12 MP photo:
        # 9 -> 5 ms).
        tallies = np.zeros((4, 256), dtype=np.int64)
        start = block * PIXEL_BLOCK
        stop = min(start + PIXEL_BLOCK, n_pixels)
        i = start
        while i + 4 <= stop:
            for lane in range(4):
                tallies[lane, pixels[np.uint64(i + lane), np.uint64(0)]] += 1
            i += 4
        for i in range(i, stop):
            tallies[0, pixels[np.uint64(i), np.uint64(0)]] += 1
        for lane in range(4):
            for bucket in range(256):
                block_bucket_counts[block, bucket] += tallies[lane, bucket]
    # offsets[block, bucket]: where this block's pixels of this bucket go.
    offsets = np.empty((n_blocks, 256), dtype=np.int64)
    bucket_start = np.empty(257, dtype=np.int64)
    position = 0
    for bucket in range(256):
        bucket_start[bucket] = position
        for block in range(n_blocks):
            offsets[block, bucket] = position
            position += block_bucket_counts[block, bucket]
    bucket_start[256] = position

    # The low key has at most 16 bits (d <= 3): 2 bytes per pixel.
    low_keys = np.empty(n_pixels, dtype=np.uint16)
    for block in prange(n_blocks):
        cursor = offsets[block].astype(np.uint64)
        if n_channels == 3:
            # Unsigned indices and the low key read straight from channels 1 and 2: no
            # negative-index checks in the scatter (12 MP photo: 76 -> 59 ms in all).
            for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_pixels)):
                row = np.uint64(i)
                bucket = np.uint64(pixels[row, np.uint64(0)])
                position = cursor[bucket]
                low_keys[position] = (np.uint16(pixels[row, np.uint64(1)]) << np.uint16(8)) | np.uint16(
                    pixels[row, np.uint64(2)]
                )
                cursor[bucket] = position + np.uint64(1)
        else:
            for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_pixels)):
                bucket = pixels[i, 0]
                low_keys[cursor[bucket]] = np.uint16(_pack_key(pixels, i) & low_mask)
                cursor[bucket] += np.uint64(1)

    # Count each bucket in a small table: groups of buckets share one table per task, and
    # the table is cleared as its entries are read out, so it is zeroed only once.  A
    # bucket's distinct keys (in order of first appearance) are written back over the
    # front of its own slice of low_keys as they are first met (never past the key being
    # read), their counts into bucket_counts.  Only the first n_distinct entries of each
    # bucket's slice are written, so only about 4 bytes per distinct colour of this
    # array are ever touched.
    bucket_counts = np.empty(n_pixels, dtype=np.uint32)
    n_distinct = np.zeros(256, dtype=np.int64)
    for group in prange(256 // BUCKETS_PER_TASK):
        table = np.zeros(table_size, dtype=np.uint32)
        # Strided groups: neighbouring buckets (similar first channel) are often all
        # heavy or all empty, so spreading them over tasks balances the threads.
        for bucket in range(group, 256, 256 // BUCKETS_PER_TASK):
            start = bucket_start[bucket]
            stop = bucket_start[bucket + 1]
            end = start  # one past the last distinct key found
            for i in range(start, stop):
                key = np.uint64(low_keys[np.uint64(i)])
                count = table[key]
                if count == 0:
                    low_keys[end] = np.uint16(key)
                    end += 1
                table[key] = count + np.uint32(1)
            for i in range(start, end):
                key = np.uint64(low_keys[i])
                bucket_counts[i] = table[key]
                table[key] = 0
            n_distinct[bucket] = end - start

    n_colours = 0
    for bucket in range(256):
        n_colours += n_distinct[bucket]
    colours = np.empty((n_colours, n_channels), dtype=np.uint8)
    counts = np.empty(n_colours, dtype=np.int64)
    out_start = np.empty(256, dtype=np.int64)
    position = 0
    for bucket in range(256):
        out_start[bucket] = position
        position += n_distinct[bucket]
    for bucket in prange(256):
        start = bucket_start[bucket]
        for u in range(n_distinct[bucket]):
            out = out_start[bucket] + u
            key = (np.uint32(bucket) << np.uint32(low_bits)) | np.uint32(low_keys[start + u])
            for j in range(n_channels):
                shift = np.uint32(8 * (n_channels - 1 - j))
                colours[out, j] = np.uint8((key >> shift) & np.uint32(255))
            counts[out] = np.int64(bucket_counts[start + u])
    return colours, counts


@njit(cache=True, fastmath={"reassoc"})
def weighted_moments(points, weights):
    """Per channel, sum of weight * value and of weight * value^2.

    points  IN (n, d) uint8
    weights IN (n,) int64 or float64
    returns (2, d) float64: row 0 the first moments, row 1 the second (exact for
            integer weights while the sums stay below 2^53)

    A channel at a time into local sums, which reassociation lets run as SIMD lanes
    (12 MP photo's 389k colours: 1.6 -> 1.3 ms).  The order of the additions is fixed
    when compiled; with integer weights every partial sum is an exact integer, so any
    order gives the same moments.
    """
    moments = np.zeros((2, points.shape[1]), dtype=np.float64)
    for j in range(points.shape[1]):
        first = 0.0
        second = 0.0
        for i in range(points.shape[0]):
            weighted = np.float64(weights[i]) * np.float64(points[i, j])
            first += weighted
            second += weighted * np.float64(points[i, j])
        moments[0, j] = first
        moments[1, j] = second
    return moments


@njit(cache=True)
def _weighted_member_sum(points, weights, members, out):
    """out[:] = sum of weight * point over the members (in member order); returns the
    weights' sum."""
    out[:] = 0.0
    total = 0.0
    for i in members:
        w = weights[i]
        total += w
        for j in range(points.shape[1]):
            out[j] += w * np.float64(points[i, j])
    return total


@njit(cache=True)
def weighted_scatter(points, weights, members):
    """Weighted scatter matrix of the member points about their weighted mean.

    points  IN (n, d) uint8
    weights IN (n,) float64
    members IN (m,) int64, indices into points (one cluster)
    returns (d, d) float64: sum_i w_i (x_i - mean)(x_i - mean)^T over the members
    """
    n_channels = points.shape[1]
    mean = np.empty(n_channels, dtype=np.float64)
    total = _weighted_member_sum(points, weights, members, mean)
    scatter = np.zeros((n_channels, n_channels), dtype=np.float64)
    if total <= 0.0:
        return scatter
    mean /= total
    centred = np.empty(n_channels, dtype=np.float64)
    for i in members:
        w = weights[i]
        for j in range(n_channels):
            centred[j] = np.float64(points[i, j]) - mean[j]
        for a in range(n_channels):
            for b in range(n_channels):
                scatter[a, b] += w * centred[a] * centred[b]
    return scatter


@njit(cache=True)
def split_in_two(points, weights, members, axis, n_iter, halves):
    """A 2-means of the member points: cut across ``axis`` through their weighted mean,
    then ``n_iter`` rounds of means and reassignment.

    points  IN  (n, d) uint8
    weights IN  (n,) float64
    members IN  (m,) int64, indices into points
    axis    IN  (d,) float64, the direction of the first cut
    halves  OUT (2, d) float64: the two means, of the last assignment the rounds
                compared (the first half is where points lie past the cut)
    returns True, or False when every point falls on one side (halves is then unset)

    Serial and in member order, so the split never depends on the thread count.
    """
    n_channels = points.shape[1]
    n_members = members.shape[0]
    total_sum = np.empty(n_channels, dtype=np.float64)
    total = _weighted_member_sum(points, weights, members, total_sum)
    first = np.empty(n_members, dtype=np.bool_)
    for m in range(n_members):
        i = members[m]
        along = 0.0
        for j in range(n_channels):
            along += (np.float64(points[i, j]) - total_sum[j] / total) * axis[j]
        first[m] = along > 0.0
    first_sum = np.empty(n_channels, dtype=np.float64)
    direction = np.empty(n_channels, dtype=np.float64)
    split = False
    for _ in range(n_iter):
        first_weight = 0.0
        first_sum[:] = 0.0
        for m in range(n_members):
            if first[m]:
                i = members[m]
                w = weights[i]
                first_weight += w
                for j in range(n_channels):
                    first_sum[j] += w * np.float64(points[i, j])
        if not (0.0 < first_weight < total):
            break
        split = True
        # Nearer the first half: x.(b - a) < (|b|^2 - |a|^2) / 2.
        threshold = 0.0
        for j in range(n_channels):
            halves[0, j] = first_sum[j] / first_weight
            halves[1, j] = (total_sum[j] - first_sum[j]) / (total - first_weight)
            direction[j] = halves[1, j] - halves[0, j]
            threshold += 0.5 * (halves[1, j] * halves[1, j] - halves[0, j] * halves[0, j])
        for m in range(n_members):
            i = members[m]
            along = 0.0
            for j in range(n_channels):
                along += np.float64(points[i, j]) * direction[j]
            first[m] = along < threshold
    return split


@njit(cache=True)
def point_errors(points, weights, centres, labels, errors, cluster_weights, cluster_errors):
    """Each point's weighted squared distance to its centre, and per-cluster totals.

    points          IN  (n, d) uint8
    weights         IN  (n,) float64
    centres         IN  (k, d) float64
    labels          IN  (n,) int32, each point's centre
    errors          OUT (n,) float64: w_i |x_i - centres[labels[i]]|^2
    cluster_weights OUT (k,) float64: the weights of each centre's points, summed
    cluster_errors  OUT (k,) float64: their errors, summed

    Serial, in point order: the sums never depend on the thread count.
    """
    cluster_weights[:] = 0.0
    cluster_errors[:] = 0.0
    for i in range(points.shape[0]):
        label = labels[i]
        distance = 0.0
        for j in range(points.shape[1]):
            gap = np.float64(points[i, j]) - centres[label, j]
            distance += gap * gap
        error = weights[i] * distance
        errors[i] = error
        cluster_weights[label] += weights[i]
        cluster_errors[label] += error


@njit(cache=True, parallel=True)
def gather_rows(pixels, indices):
    """pixels[indices] for pixels (n, d) uint8 and indices (m,) int64: (m, d) uint8.

    NumPy's fancy indexing of 3-byte rows runs at ~100 ns a row; this is the same
    gather as a flat parallel loop.
    """
    n_rows = indices.shape[0]
    n_channels = pixels.shape[1]
    out = np.empty((n_rows, n_channels), dtype=np.uint8)
    n_blocks = max(1, (n_rows + PIXEL_BLOCK - 1) // PIXEL_BLOCK)
    for block in prange(n_blocks):
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_rows)):
            row = np.uint64(indices[i])
            for j in range(n_channels):
                out[i, j] = pixels[row, np.uint64(j)]
    return out


@njit(cache=True, parallel=True)
def fill_label_table(colours, labels, table):
    """table[packed colour of colours[i]] = labels[i]; other entries are left as they are.

    colours IN  (u, d) uint8 with 1 <= d <= 3, distinct rows (so no two writes collide)
    labels  IN  (u,) integer
    table   OUT (256**d,) integer
    """
    n_colours = colours.shape[0]
    n_blocks = max(1, (n_colours + PIXEL_BLOCK - 1) // PIXEL_BLOCK)
    for block in prange(n_blocks):
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_colours)):
            table[np.uint64(_pack_key(colours, i))] = labels[np.uint64(i)]


@njit(cache=True, parallel=True)
def remap_through_table(pixels, label_table, labels):
    """labels[i] = label_table[packed colour of pixels[i]].

    pixels      IN  (n, d) uint8 with 1 <= d <= 3
    label_table IN  (256**d,) integer: the label of every packed colour
    labels      OUT (n,) integer
    """
    n_pixels = pixels.shape[0]
    n_blocks = max(1, (n_pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK)
    for block in prange(n_blocks):
        if pixels.shape[1] == 3:
            # Unsigned indices, key built inline: no negative-index checks per lookup.
            for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_pixels)):
                row = np.uint64(i)
                key = (
                    (np.uint64(pixels[row, np.uint64(0)]) << np.uint64(16))
                    | (np.uint64(pixels[row, np.uint64(1)]) << np.uint64(8))
                    | np.uint64(pixels[row, np.uint64(2)])
                )
                labels[row] = label_table[key]
        else:
            for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_pixels)):
                labels[i] = label_table[_pack_key(pixels, i)]


@njit(cache=True, parallel=True)
def squared_error(points, weights, palette, labels):
    """Total weighted squared error sum_i w_i * ||points[i] - palette[labels[i]]||^2.

    points  IN (n, d) uint8; weights IN (n,) int64, or (0,) for weight 1 everywhere;
    palette IN (k, d) uint8; labels IN (n,) integer.  Exact (integer arithmetic),
    returns int64.
    """
    n_points, n_channels = points.shape
    unit_weights = weights.shape[0] == 0
    n_blocks = max(1, (n_points + SUM_BLOCK - 1) // SUM_BLOCK)
    partial = np.zeros(n_blocks, dtype=np.int64)
    for block in prange(n_blocks):
        total = 0
        for i in range(block * SUM_BLOCK, min((block + 1) * SUM_BLOCK, n_points)):
            d = 0
            for j in range(n_channels):
                t = np.int64(points[i, j]) - np.int64(palette[labels[i], j])
                d += t * t
            total += d if unit_weights else weights[i] * d
        partial[block] = total
    total = 0
    for block in range(n_blocks):
        total += partial[block]
    return total


@njit(cache=True)
def _squared_distance(target, palette, c):
    dist = np.float32(0.0)
    for j in range(target.shape[0]):
        t = target[j] - palette[c, j]
        dist += t * t
    return dist


@njit(cache=True)
def _nearest_entry(target, palette):
    """Index of the palette row (m, d) float32 nearest to target (d,) float32; lowest on ties."""
    best = 0
    best_dist = np.inf
    for c in range(palette.shape[0]):
        dist = _squared_distance(target, palette, c)
        if dist < best_dist:
            best_dist = dist
            best = c
    return best


@njit(cache=True)
def floyd_steinberg(points, width, palette, strength, skip, nearest_table, guess_radius, labels):
    """Floyd-Steinberg error diffusion onto a palette, in serpentine row order.

    points        IN  (n, d) uint8, the pixels of an image n / width rows high, row-major
    palette       IN  (m, d) float32, in the same space as points
    strength      IN  0..1, the fraction of each pixel's error passed on
    skip          IN  (n,) bool: pixels left alone (their labels are kept, they pass on
                  no error and the error sent to them is dropped); (0,) for none
    nearest_table IN/OUT (256**d,) int32 filled with -1, or (0,) to search every pixel:
                  a cache of the nearest entry of each integer colour, filled as met
    guess_radius  IN  (m,) float32: a squared distance below which an entry is surely
                  the nearest (under a quarter of its squared distance to the nearest
                  other entry), or (0,) to always search
    labels        OUT (n,) integer, palette index of every pixel

    Each pixel's value plus the error it received is clipped to 0..255, takes the nearest
    entry (of the value rounded to integers when a table is given), and sends
    ``strength`` times its remaining error to its unvisited neighbours: 7/16 ahead, 3/16
    behind below, 5/16 below, 1/16 ahead below.  Neighbours mostly share an entry: the
    previous pixel's is tried first and kept, without a search, when it is within its
    guess radius (then it is strictly the nearest, by the triangle inequality).  Serial:
    each pixel needs its predecessors' errors.
    """
    n_points, n_channels = points.shape
    height = n_points // width
    error_row = np.zeros((width + 2, n_channels), dtype=np.float32)
    error_below = np.zeros((width + 2, n_channels), dtype=np.float32)
    target = np.empty(n_channels, dtype=np.float32)
    rounded = np.empty(n_channels, dtype=np.float32)
    use_table = nearest_table.shape[0] > 0
    use_guess = guess_radius.shape[0] > 0
    use_skip = skip.shape[0] > 0
    share = np.float32(strength) / np.float32(16.0)
    previous = 0
    for y in range(height):
        step = 1 if y % 2 == 0 else -1
        for s in range(width):
            x = s if step == 1 else width - 1 - s
            i = y * width + x
            if use_skip and skip[i]:
                continue
            key = 0
            for j in range(n_channels):
                v = np.float32(points[i, j]) + error_row[x + 1, j]
                target[j] = min(max(v, np.float32(0.0)), np.float32(255.0))
                rounded[j] = np.float32(np.int64(target[j] + np.float32(0.5)))
                key = key * 256 + np.int64(rounded[j])
            search = rounded if use_table else target
            if use_guess and _squared_distance(search, palette, previous) < guess_radius[previous]:
                label = previous
            elif use_table:
                label = nearest_table[key]
                if label < 0:
                    label = _nearest_entry(rounded, palette)
                    nearest_table[key] = label
            else:
                label = _nearest_entry(target, palette)
            labels[i] = label
            previous = label
            for j in range(n_channels):
                e = (target[j] - palette[label, j]) * share
                error_row[x + 1 + step, j] += 7 * e
                error_below[x + 1 - step, j] += 3 * e
                error_below[x + 1, j] += 5 * e
                error_below[x + 1 + step, j] += e
        error_row, error_below = error_below, error_row
        error_below[:] = 0.0


@njit(cache=True, parallel=True)
def oklab_distance_sum(pixels, labels, srgb_to_linear, rgb_to_lms, lms_to_lab, palette_lab):
    """Sum over pixels of the OKLab distance between each pixel and its palette entry.

    pixels        IN (n, C) uint8 sRGB, C = 3, or 1 for grey
    labels        IN (n,) integer
    srgb_to_linear IN (256,) float64; rgb_to_lms, lms_to_lab IN (3, 3) float64
    palette_lab   IN (m, 3) float64, OKLab of the palette
    Sums per fixed block, merged in order: the same result for any number of threads.
    """
    n_points, n_channels = pixels.shape
    n_blocks = max(1, (n_points + SUM_BLOCK - 1) // SUM_BLOCK)
    partial = np.zeros(n_blocks, dtype=np.float64)
    for block in prange(n_blocks):
        linear = np.empty(3, dtype=np.float64)
        cone = np.empty(3, dtype=np.float64)
        total = 0.0
        for i in range(block * SUM_BLOCK, min((block + 1) * SUM_BLOCK, n_points)):
            for j in range(3):
                linear[j] = srgb_to_linear[pixels[i, j if n_channels == 3 else 0]]
            for r in range(3):
                cone[r] = np.cbrt(rgb_to_lms[r, 0] * linear[0] + rgb_to_lms[r, 1] * linear[1] + rgb_to_lms[r, 2] * linear[2])
            dist = 0.0
            for r in range(3):
                lab = lms_to_lab[r, 0] * cone[0] + lms_to_lab[r, 1] * cone[1] + lms_to_lab[r, 2] * cone[2]
                t = lab - palette_lab[labels[i], r]
                dist += t * t
            total += np.sqrt(dist)
        partial[block] = total
    total = 0.0
    for block in range(n_blocks):
        total += partial[block]
    return total


# The kernels a quantize() call on an RGB photo runs (gather_rows, for large photos only,
# is left out so that small images do not keep announcing a compile, and so is
# assign_labels, which maps only images with no more colours than the palette; a kernel
# listed here that quantize does not run would announce a compile on every run).
QUANTIZE_KERNELS = (
    cell_sort,
    cell_lloyd_step,
    weighted_moments,
    cell_kmeans_plusplus,
    colour_histogram,
    fill_label_table,
    remap_through_table,
    squared_error,
    point_errors,
    weighted_scatter,
    split_in_two,
)


def kernels_cached():
    """True when every kernel quantize() runs has a fresh entry in numba's on-disk cache.

    Used only to tell the user that the first run compiles; a wrong answer costs a
    message, never a result.  Reads numba's cache index (a private API), so any
    surprise there counts as cached: better no message than a false one.
    """
    try:
        return all(kernel._cache._cache_file._load_index() for kernel in QUANTIZE_KERNELS)
    except Exception:
        return True


def _tolerate_broken_cache(kernel):
    """Make a kernel recompile, instead of failing, when its cache entry is unreadable.

    numba raises when a cache index or data file is truncated or corrupt (a killed
    write, a disk error, a copied stale folder).  Loading then falls back to compiling,
    and saving first removes the unreadable index so the fresh entry replaces it.  A
    read-only package folder needs nothing here: numba then caches in the user's cache
    folder.
    """
    cache = getattr(kernel, "_cache", None)
    if cache is None or not hasattr(cache, "load_overload"):
        return
    load, save = cache.load_overload, cache.save_overload

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception:  # corrupt entry: compile afresh
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception:
            try:
                os.unlink(cache._cache_file._index_path)
                save(sig, data)
            except Exception:  # caching is an optimisation; the compiled kernel still runs
                pass

    cache.load_overload = load_overload
    cache.save_overload = save_overload


# Every cached function here, helpers included: a caller's compile loads its helpers.
for _kernel in [value for value in list(globals().values()) if hasattr(value, "_cache")]:
    _tolerate_broken_cache(_kernel)
