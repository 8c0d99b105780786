"""Nearest-centre search: float32 point columns, tiles of pixels against streamed centres."""

import numpy as np
from numba import njit

from ._common import ASSIGN_TILE, ASSIGN_TILES_PER_TASK
from ._threads import readonly, run_blocks


@njit(cache=True, nogil=True, fastmath={"contract"})
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


@njit(cache=True, nogil=True, fastmath={"contract"})
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _expanded_centres(centres):
    """(k, 5) float32 (-2 c0, -2 c1, -2 c2, -2 c3, |c|^2) for centres of up to 4
    channels; the coefficients of missing channels are 0 (unused above 4 channels).

    |c|^2 sits in column 3 for up to 3 channels (the layout _nearest_in_tile_rgb reads)
    and in column 4 for 4 channels.
    """
    n_centres, n_channels = centres.shape
    expanded = np.empty((n_centres, 5), dtype=np.float32)
    expanded[:] = 0
    if n_channels <= 4:
        norm_column = 3 if n_channels <= 3 else 4
        for c in range(n_centres):
            norm = np.float32(0.0)
            for j in range(n_channels):
                expanded[c, j] = np.float32(-2.0) * centres[c, j]
                norm += centres[c, j] * centres[c, j]
            expanded[c, norm_column] = norm
    return expanded


@njit(cache=True, nogil=True)
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


def point_columns(points):
    """points (n, d) uint8 as float32 columns (d, n_padded), zero-padded to whole tiles."""
    points = readonly(points)
    n_points, n_channels = points.shape
    n_padded = max(1, (n_points + ASSIGN_TILE - 1) // ASSIGN_TILE) * ASSIGN_TILE
    columns = np.zeros((n_channels, n_padded), dtype=np.float32)
    columns[:, :n_points] = points.T
    return columns


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
    points, centres = readonly(points), readonly(centres)
    task_size = ASSIGN_TILE * ASSIGN_TILES_PER_TASK
    n_tasks = (points.shape[0] + task_size - 1) // task_size
    run_blocks(_assign_tasks, n_tasks, points, centres, _expanded_centres(centres), labels, min_dist)


@njit(cache=True, nogil=True)
def _assign_tasks(first, stop, points, centres, expanded, labels, min_dist):
    """assign_labels on tasks first..stop-1 of ASSIGN_TILE * ASSIGN_TILES_PER_TASK points."""
    n_points, n_channels = points.shape
    task_size = ASSIGN_TILE * ASSIGN_TILES_PER_TASK
    columns = np.empty((n_channels, ASSIGN_TILE), dtype=np.float32)
    columns[:] = 0
    best_dist = np.empty(ASSIGN_TILE, dtype=np.float32)
    best_label = np.empty(ASSIGN_TILE, dtype=np.int32)
    dist = np.empty(ASSIGN_TILE, dtype=np.float32)
    for task in range(first, stop):
        task_end = min((task + 1) * task_size, n_points)
        for start in range(task * task_size, task_end, ASSIGN_TILE):
            m = min(ASSIGN_TILE, task_end - start)
            # The tile's rows as float32 columns (entries past m hold stale values and mean
            # nothing), searched as a column tile.
            for i in range(m):
                for j in range(n_channels):
                    columns[j, i] = np.float32(points[start + i, j])
            _nearest_in_column_tile(columns, np.int64(0), centres, expanded, dist, best_dist, best_label)
            for i in range(m):
                labels[start + i] = best_label[i]
                min_dist[start + i] = best_dist[i]
