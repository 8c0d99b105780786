"""Floyd-Steinberg error diffusion onto a palette."""

import numpy as np
from numba import njit



@njit(cache=True, nogil=True)
def _squared_distance(target, palette, c):
    dist = np.float32(0.0)
    for j in range(target.shape[0]):
        t = target[j] - palette[c, j]
        dist += t * t
    return dist


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
