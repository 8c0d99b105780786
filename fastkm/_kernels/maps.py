"""Per-pixel maps of an image: how visible quantization error is at each pixel (the
importance map that weights the fit) and where dithering removes banding (the dither map).

Every map is a pure function of a pixel's neighbourhood: row tasks run at once
and nothing is summed, so the maps are the same for any number of threads.
"""

import numpy as np
from numba import njit

from ._threads import readonly, run_blocks

# Rows per parallel task of the map passes.
MAP_ROWS = 16


@njit(cache=True, nogil=True)
def _pixel_contrast(pixels, left, centre, right, above, below):
    """h + v of the pixel at row ``centre`` with its neighbours' rows (see contrast_map)."""
    h = 0
    v = 0
    for j in range(pixels.shape[1]):
        twice = 2 * np.int32(pixels[centre, j])
        h = max(h, abs(np.int32(pixels[left, j]) + np.int32(pixels[right, j]) - twice))
        v = max(v, abs(np.int32(pixels[above, j]) + np.int32(pixels[below, j]) - twice))
    return h + v


def contrast_map(pixels, width, importance_of_contrast, importance):
    """Importance of every pixel from its local contrast.

    pixels                 IN  (n, d) uint8, an image n / width rows high, row-major
    importance_of_contrast IN  (1021,) uint8: the importance of each contrast value
    importance             OUT (n,) uint8

    A pixel's contrast is h + v, where h = |left + right - 2 * centre| and v the same
    along the column (second differences, the largest over channels; a pixel beyond the
    image's border repeats the border).  h + v is 0..1020: low in flat areas and smooth
    gradients (where banding shows), high in busy texture (where error hides).  It is
    twice liq's max(edge - |h - v| / 2, min(h, v)), which is (h + v) / 2 for any h, v.
    """
    pixels = readonly(pixels)
    importance_of_contrast = readonly(importance_of_contrast)
    n_tasks = (pixels.shape[0] // width + MAP_ROWS - 1) // MAP_ROWS
    run_blocks(_contrast_map_rows, n_tasks, pixels, width, importance_of_contrast, importance)


@njit(cache=True, nogil=True)
def _contrast_map_rows(first, stop, pixels, width, importance_of_contrast, importance):
    """contrast_map on the row tasks first..stop-1 (MAP_ROWS rows each)."""
    height = pixels.shape[0] // width
    for task in range(first, stop):
        for y in range(task * MAP_ROWS, min((task + 1) * MAP_ROWS, height)):
            row = y * width
            up = (max(y - 1, 0) - y) * width  # offsets of the rows above and below
            down = (min(y + 1, height - 1) - y) * width
            last = row + width - 1
            importance[row] = importance_of_contrast[
                _pixel_contrast(pixels, row, row, min(row + 1, last), row + up, row + down)
            ]
            # Inside the row no neighbour is clamped.
            for i in range(row + 1, last):
                importance[i] = importance_of_contrast[_pixel_contrast(pixels, i - 1, i, i + 1, i + up, i + down)]
            if width > 1:
                importance[last] = importance_of_contrast[
                    _pixel_contrast(pixels, last - 1, last, last, last + up, last + down)
                ]


@njit(cache=True, nogil=True)
def _cross_extreme(source, left, centre, right, above, below, take_max):
    a = max(source[left], source[right]) if take_max else min(source[left], source[right])
    b = max(source[above], source[below]) if take_max else min(source[above], source[below])
    return max(max(a, b), source[centre]) if take_max else min(min(a, b), source[centre])


def cross_filter(source, width, take_max, out):
    """The largest (take_max) or smallest value of each pixel's 5-pixel cross: itself
    and its 4 neighbours (a pixel beyond the border repeats the border).

    source IN (n,) uint8, an image n / width rows high; out OUT (n,) uint8, not source
    """
    source = readonly(source)
    n_tasks = (source.shape[0] // width + MAP_ROWS - 1) // MAP_ROWS
    run_blocks(_cross_filter_rows, n_tasks, source, width, take_max, out)


@njit(cache=True, nogil=True)
def _cross_filter_rows(first, stop, source, width, take_max, out):
    """cross_filter on the row tasks first..stop-1 (MAP_ROWS rows each)."""
    height = source.shape[0] // width
    for task in range(first, stop):
        for y in range(task * MAP_ROWS, min((task + 1) * MAP_ROWS, height)):
            row = y * width
            up = (max(y - 1, 0) - y) * width
            down = (min(y + 1, height - 1) - y) * width
            last = row + width - 1
            out[row] = _cross_extreme(source, row, row, min(row + 1, last), row + up, row + down, take_max)
            # Inside the row no neighbour is clamped; one loop per filter keeps the branch out.
            if take_max:
                for i in range(row + 1, last):
                    out[i] = max(max(max(source[i - 1], source[i + 1]), max(source[i + up], source[i + down])), source[i])
            else:
                for i in range(row + 1, last):
                    out[i] = min(min(min(source[i - 1], source[i + 1]), min(source[i + up], source[i + down])), source[i])
            if width > 1:
                out[last] = _cross_extreme(source, last - 1, last, last, last + up, last + down, take_max)


def dither_map(labels, width, importance, strength_of_agreement, strength):
    """How strongly to dither every pixel, from an undithered remap.

    labels                 IN  (n,) integer, palette index of every pixel (undithered),
                           an image n / width rows high
    importance             IN  (n,) uint8 importance map (255 flat .. ~85 texture), or
                           (0,) for flat everywhere
    strength_of_agreement  IN  (a,) uint8: the strength of each agreement score (scores
                           past the end take the last entry)
    strength               OUT (n,) uint8: 0 (none) .. 255 (full)

    A pixel's agreement score is 10 per pixel of the horizontal run of equal labels it
    lies in, plus 15 for every pixel of that run whose label the pixel above or below
    shares: long runs in a band of one entry score high (banding shows there), isolated
    pixels, edges and texture score low.  The strength of the score is then scaled by
    (importance + 128) / 383, a third less in texture.
    """
    labels = readonly(labels)
    importance = readonly(importance)
    strength_of_agreement = readonly(strength_of_agreement)
    n_tasks = (labels.shape[0] // width + MAP_ROWS - 1) // MAP_ROWS
    run_blocks(_dither_map_rows, n_tasks, labels, width, importance, strength_of_agreement, strength)


@njit(cache=True, nogil=True)
def _dither_map_rows(first, stop, labels, width, importance, strength_of_agreement, strength):
    """dither_map on the row tasks first..stop-1 (MAP_ROWS rows each)."""
    height = labels.shape[0] // width
    last = strength_of_agreement.shape[0] - 1
    use_importance = importance.shape[0] > 0
    for task in range(first, stop):
        for y in range(task * MAP_ROWS, min((task + 1) * MAP_ROWS, height)):
            row = np.uint64(y * width)
            # The rows above and below; at the image's edge the row itself stands in,
            # with no bonus.  Agreements are counted, not branched on: in texture a
            # branch per pixel mispredicts (the map took 0.054 s instead of 0.041 s on
            # the 12 MP photo at 16 colours, one thread).
            above = np.uint64(max(y - 1, 0) * width)
            below = np.uint64(min(y + 1, height - 1) * width)
            bonus_above = 15 if y > 0 else 0
            bonus_below = 15 if y + 1 < height else 0
            start = 0
            while start < width:
                # The run and its score in one loop: a second one over the run (for the
                # agreements) mispredicted its exit once more a run (0.074 -> 0.051 s at
                # 256 colours, 0.049 -> 0.038 s at 16, the 12 MP photo, one thread).
                label = labels[row + np.uint64(start)]
                score = 0
                stop = start
                while True:
                    ux = np.uint64(stop)
                    score += 10 + bonus_above * np.int64(labels[above + ux] == label)
                    score += bonus_below * np.int64(labels[below + ux] == label)
                    stop += 1
                    if stop == width or labels[row + np.uint64(stop)] != label:
                        break
                run_strength = np.int64(strength_of_agreement[min(score, last)])
                for x in range(start, stop):
                    ux = np.uint64(x)
                    if use_importance:
                        strength[row + ux] = np.uint8((run_strength * (np.int64(importance[row + ux]) + 128)) // 383)
                    else:
                        strength[row + ux] = np.uint8(run_strength)
                start = stop
