"""Lloyd iterations: assignment and centroid sums, plain and over the cell grid."""

import numpy as np
from numba import njit

from ._common import ASSIGN_TILE, ASSIGN_TILES_PER_TASK
from ._threads import readonly, run_blocks
from .cells import TOP_CELL_BITS, _cell_candidates
from .nearest import _expanded_centres, _nearest_in_column_tile, _nearest_in_tile_rgb


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
    keeps private partial sums, merged in task order: the same bits for any
    number of threads.
    """
    n_points, n_channels = points.shape
    centres = readonly(centres)
    task_size = ASSIGN_TILE * ASSIGN_TILES_PER_TASK
    n_tasks = max(1, (n_points + task_size - 1) // task_size)
    # Per task and cluster: the channel sums, then the count, side by side in one row.
    partial_sums = np.zeros((n_tasks, centres.shape[0], n_channels + 1), dtype=sums.dtype)
    partial_changed = np.zeros(n_tasks, dtype=np.int64)
    run_blocks(_lloyd_tasks, n_tasks, columns, readonly(points), readonly(weights), centres,
               _expanded_centres(centres), labels, min_dist, partial_sums, partial_changed)
    sums[:] = 0
    counts[:] = 0
    for task in range(n_tasks):
        counts += partial_sums[task, :, n_channels]
        sums += partial_sums[task, :, :n_channels]
    return int(partial_changed.sum())


@njit(cache=True, nogil=True)
def _lloyd_tasks(first, stop, columns, points, weights, centres, expanded, labels, min_dist, partial_sums,
                 partial_changed):
    """lloyd_step's tasks first..stop-1, each into its own row of the partials."""
    n_points, n_channels = points.shape
    task_size = ASSIGN_TILE * ASSIGN_TILES_PER_TASK
    count_column = np.uint64(n_channels)
    best_dist = np.empty(ASSIGN_TILE, dtype=np.float32)
    best_label = np.empty(ASSIGN_TILE, dtype=np.int32)
    dist = np.empty(ASSIGN_TILE, dtype=np.float32)
    for task in range(first, stop):
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
    centres = readonly(centres)
    expanded = _expanded_centres(centres)
    centre_columns = readonly(np.ascontiguousarray(centres.T))
    n_tasks = task_cells.shape[0] - 1
    partial_sums = np.zeros((n_tasks, centres.shape[0], 4), dtype=sum_changes.dtype)
    partial_changed = np.zeros(n_tasks, dtype=np.int64)
    run_blocks(_cell_lloyd_tasks, n_tasks, readonly(task_cells), columns, readonly(points),
               readonly(weights), readonly(cell_corners), readonly(cell_start), cell_bits, expanded, centre_columns,
               labels, partial_sums, partial_changed)
    # Merged in task order (a reduction over the first axis adds the tasks' rows one
    # after another), as one operation rather than one per task.
    merged = partial_sums[0] if n_tasks == 1 else partial_sums.sum(axis=0)
    sum_changes[...] = merged[:, :3]
    count_changes[...] = merged[:, 3]
    return int(partial_changed.sum())


@njit(cache=True, nogil=True)
def _cell_lloyd_tasks(first, stop, task_cells, columns, points, weights, cell_corners, cell_start, cell_bits,
                      expanded, centre_columns, labels, partial_sums, partial_changed):
    """cell_lloyd_step's tasks first..stop-1: task t labels the points of cells
    task_cells[t]:task_cells[t+1], writes the changes of the sums into partial_sums[t]
    (k, 4) and the number of points whose label changed into partial_changed[t]."""
    n_centres = centre_columns.shape[1]
    n_levels = cell_bits - TOP_CELL_BITS + 1
    all_ids = np.empty(n_centres, dtype=np.int32)
    for centre in range(n_centres):
        all_ids[centre] = centre
    level_ids = np.empty((n_levels, n_centres), dtype=np.int32)
    level_count = np.empty(n_levels, dtype=np.int64)
    level_count[:] = 0
    level_key = np.empty(n_levels, dtype=np.int64)
    candidate_rows = np.empty((n_centres, 5), dtype=np.float32)
    candidate_rows[:] = 0
    best_dist = np.empty(ASSIGN_TILE, dtype=np.float32)
    best_label = np.empty(ASSIGN_TILE, dtype=np.int32)
    for task in range(first, stop):
        task_sums = partial_sums[task]
        level_key[:] = -1  # no candidate list kept from another task
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
                        _move_point(task_sums, points, weights, np.uint64(row), old, only)
                continue
            for q in range(n_candidates):
                for j in range(4):
                    candidate_rows[q, j] = expanded[candidate_ids[q], j]
            rows = candidate_rows[:n_candidates]
            for start in range(cell_start[cell], cell_stop, ASSIGN_TILE):
                tile_stop = min(start + ASSIGN_TILE, cell_stop)
                m = tile_stop - start
                for i in range(m):
                    best_dist[i] = np.inf
                    best_label[i] = 0
                _nearest_in_tile_rgb(
                    columns[0, start:tile_stop], columns[1, start:tile_stop], columns[2, start:tile_stop], rows,
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


@njit(cache=True, nogil=True)
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
