"""The cell grid: colours sorted into Morton-ordered cells, and each cell's candidate centres."""

import numpy as np
from numba import njit

from ._common import ASSIGN_TILE, PIXEL_BLOCK
from ._threads import readonly, run_blocks


# Squared-distance margin of the cell pruning: a centre is searched when its distance to a
# cell could come within this of the cell's best, which covers the float32 rounding of
# the expanded distances (below 0.05 for uint8 points and centres in [0, 255]).  With
# it, pruned searches pick exactly the centre a full search picks.
CELL_SLACK = 0.25
# Cells per axis (as bits) of the coarsest level of the candidate search: each finer
# level filters the candidates of the cell it lies in, so most cells test a few dozen
# centres instead of all k.
TOP_CELL_BITS = 2


def cell_sort(points, weights, cell_bits):
    """Points (n, 3) uint8 and weights (n,) sorted by grid cell (a stable counting sort).

    The RGB cube is cut into 2^cell_bits cells per axis, ordered by the interleaved bits
    of their coordinates (Morton order), so that the cells of every coarser grid are
    contiguous too.  Returns sorted points (n, 3) uint8, sorted weights, their
    point_columns layout (3, n_padded) float32, the cell starts (n_cells + 1,) int64,
    the original index of each sorted point (n,) int64 and sum of weight * |point|^2 as
    float64 (exact for integer weights below 2^53).  Blocks of PIXEL_BLOCK points are
    counted and scattered at once, each into its own slots, so the order is the same
    for any number of threads.
    """
    points, weights = readonly(points), readonly(weights)
    n_points = points.shape[0]
    shift = 8 - cell_bits
    # spread[v]: the bits of v's cell coordinate, interleaved for the first channel.
    coordinate = np.arange(256) >> shift
    spread = np.zeros(256, dtype=np.int64)
    for t in range(cell_bits):
        spread |= ((coordinate >> t) & 1) << (3 * t + 2)
    n_cells = 1 << (3 * cell_bits)
    n_blocks = max(1, (n_points + PIXEL_BLOCK - 1) // PIXEL_BLOCK)
    cell_of = np.empty(n_points, dtype=np.int64)
    block_counts = np.zeros((n_blocks, n_cells), dtype=np.int64)
    run_blocks(_cell_counts, n_blocks, points, spread, cell_of, block_counts)
    # Slots: cell by cell, and within a cell block by block (a stable order).
    ends = np.cumsum(block_counts.T.ravel()).reshape(n_cells, n_blocks)
    offsets = np.ascontiguousarray((ends - block_counts.T).T)
    start = np.append(offsets[0], n_points)
    n_padded = max(1, (n_points + ASSIGN_TILE - 1) // ASSIGN_TILE) * ASSIGN_TILE
    sorted_points = np.empty((n_points, 3), dtype=np.uint8)
    sorted_weights = np.empty(n_points, dtype=weights.dtype)
    columns = np.zeros((3, n_padded), dtype=np.float32)
    order = np.empty(n_points, dtype=np.int64)
    block_norm = np.zeros(n_blocks, dtype=np.float64)
    run_blocks(_cell_scatter, n_blocks, points, weights, cell_of, offsets, sorted_points, sorted_weights, columns,
               order, block_norm)
    norm_total = 0.0
    for block in range(n_blocks):
        norm_total += float(block_norm[block])
    return sorted_points, sorted_weights, columns, start, order, norm_total


@njit(cache=True, nogil=True)
def _cell_counts(first, stop, points, spread, cell_of, block_counts):
    """Each point's cell, and the points per cell of each block first..stop-1."""
    n_points = points.shape[0]
    for block in range(first, stop):
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_points)):
            code = spread[points[i, 0]] | (spread[points[i, 1]] >> 1) | (spread[points[i, 2]] >> 2)
            cell_of[i] = code
            block_counts[block, code] += 1


@njit(cache=True, nogil=True)
def _cell_scatter(first, stop, points, weights, cell_of, offsets, sorted_points, sorted_weights, columns, order,
                  block_norm):
    """Move the points of blocks first..stop-1 to their slots; each block's sum of
    weight * |point|^2 into block_norm."""
    n_points = points.shape[0]
    for block in range(first, stop):
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
