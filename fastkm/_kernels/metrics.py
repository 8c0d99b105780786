"""Quality figures computed over every pixel (mean OKLab distance)."""

import numpy as np
from numba import njit

from ._common import SUM_BLOCK
from ._threads import readonly, run_blocks


def indexed_distance_sum(index, labels, colour_points, palette_points):
    """Sum over pixels of the distance between each pixel's colour and its palette entry.

    index          IN (n,) integer: each pixel's row of colour_points
    labels         IN (n,) integer: each pixel's palette entry
    colour_points  IN (u, d) float64: the distinct colours (e.g. in OKLab)
    palette_points IN (m, d) float64: the palette in the same space
    The colours' conversion is done once per distinct colour by the caller, so a pass
    over the pixels is two lookups each (a dithered 12 MP photo's mean ΔE: 4-6 times
    faster than converting every pixel).  Sums per fixed block, merged in order: the
    same result for any number of threads.
    """
    index, labels = readonly(index), readonly(labels)
    n_blocks = max(1, (index.shape[0] + SUM_BLOCK - 1) // SUM_BLOCK)
    partial = np.zeros(n_blocks, dtype=np.float64)
    run_blocks(_indexed_blocks, n_blocks, index, labels, readonly(colour_points), readonly(palette_points), partial)
    total = 0.0
    for block in range(n_blocks):
        total += float(partial[block])
    return total


@njit(cache=True, nogil=True)
def _indexed_blocks(first, stop, index, labels, colour_points, palette_points, partial):
    """indexed_distance_sum's blocks first..stop-1, each sum into partial[block]."""
    n_points = index.shape[0]
    n_dims = colour_points.shape[1]
    for block in range(first, stop):
        total = 0.0
        for i in range(block * SUM_BLOCK, min((block + 1) * SUM_BLOCK, n_points)):
            colour, entry = index[i], labels[i]
            dist = 0.0
            for j in range(n_dims):
                t = colour_points[colour, j] - palette_points[entry, j]
                dist += t * t
            total += np.sqrt(dist)
        partial[block] = total
