"""Quality figures computed over every pixel (mean OKLab distance)."""

import numpy as np
from numba import njit

from ._common import SUM_BLOCK
from ._threads import readonly, run_blocks


def oklab_distance_sum(pixels, labels, srgb_to_linear, rgb_to_lms, lms_to_lab, palette_lab):
    """Sum over pixels of the OKLab distance between each pixel and its palette entry.

    pixels        IN (n, C) uint8 sRGB, C = 3, or 1 for grey
    labels        IN (n,) integer
    srgb_to_linear IN (256,) float64; rgb_to_lms, lms_to_lab IN (3, 3) float64
    palette_lab   IN (m, 3) float64, OKLab of the palette
    Sums per fixed block, merged in order: the same result for any number of threads.
    """
    pixels, labels = readonly(pixels), readonly(labels)
    n_blocks = max(1, (pixels.shape[0] + SUM_BLOCK - 1) // SUM_BLOCK)
    partial = np.zeros(n_blocks, dtype=np.float64)
    run_blocks(_oklab_blocks, n_blocks, pixels, labels, readonly(srgb_to_linear), readonly(rgb_to_lms),
               readonly(lms_to_lab), readonly(palette_lab), partial)
    total = 0.0
    for block in range(n_blocks):
        total += float(partial[block])
    return total


@njit(cache=True, nogil=True)
def _oklab_blocks(first, stop, pixels, labels, srgb_to_linear, rgb_to_lms, lms_to_lab, palette_lab, partial):
    """oklab_distance_sum's blocks first..stop-1, each sum into partial[block]."""
    n_points, n_channels = pixels.shape
    linear = np.empty(3, dtype=np.float64)
    cone = np.empty(3, dtype=np.float64)
    for block in range(first, stop):
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
