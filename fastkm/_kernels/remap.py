"""Remap: a colour-to-label table applied to every pixel, and the squared error of a mapping."""

import numpy as np
from numba import njit

from ._common import SUM_BLOCK, PIXEL_BLOCK
from ._threads import readonly, run_blocks
from .histogram import _pack_key


def fill_label_table(colours, labels, table):
    """table[packed colour of colours[i]] = labels[i]; other entries are left as they are.

    colours IN  (u, d) uint8 with 1 <= d <= 3, distinct rows (so no two writes collide)
    labels  IN  (u,) integer
    table   OUT (256**d,) integer
    """
    colours, labels = readonly(colours), readonly(labels)
    run_blocks(_fill_blocks, max(1, (colours.shape[0] + PIXEL_BLOCK - 1) // PIXEL_BLOCK), colours, labels, table)


@njit(cache=True, nogil=True)
def _fill_blocks(first, stop, colours, labels, table):
    n_colours = colours.shape[0]
    for block in range(first, stop):
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_colours)):
            table[np.uint64(_pack_key(colours, i))] = labels[np.uint64(i)]


def remap_through_table(pixels, label_table, labels):
    """labels[i] = label_table[packed colour of pixels[i]].

    pixels      IN  (n, d) uint8 with 1 <= d <= 3
    label_table IN  (256**d,) integer: the label of every packed colour
    labels      OUT (n,) integer
    """
    pixels, label_table = readonly(pixels), readonly(label_table)
    n_blocks = max(1, (pixels.shape[0] + PIXEL_BLOCK - 1) // PIXEL_BLOCK)
    run_blocks(_remap_blocks, n_blocks, pixels, label_table, labels)


@njit(cache=True, nogil=True)
def _remap_blocks(first, stop, pixels, label_table, labels):
    n_pixels = pixels.shape[0]
    for block in range(first, stop):
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


def squared_error(points, weights, palette, labels):
    """Total weighted squared error sum_i w_i * ||points[i] - palette[labels[i]]||^2.

    points  IN (n, d) uint8; weights IN (n,) int64, or (0,) for weight 1 everywhere;
    palette IN (k, d) uint8; labels IN (n,) integer.  Exact (integer arithmetic),
    returns int64.
    """
    points, weights, palette, labels = readonly(points), readonly(weights), readonly(palette), readonly(labels)
    n_blocks = max(1, (points.shape[0] + SUM_BLOCK - 1) // SUM_BLOCK)
    partial = np.zeros(n_blocks, dtype=np.int64)
    run_blocks(_squared_error_blocks, n_blocks, points, weights, palette, labels, partial)
    return np.int64(partial.sum())


@njit(cache=True, nogil=True)
def _squared_error_blocks(first, stop, points, weights, palette, labels, partial):
    n_points, n_channels = points.shape
    unit_weights = weights.shape[0] == 0
    for block in range(first, stop):
        total = 0
        for i in range(block * SUM_BLOCK, min((block + 1) * SUM_BLOCK, n_points)):
            d = 0
            for j in range(n_channels):
                t = np.int64(points[i, j]) - np.int64(palette[labels[i], j])
                d += t * t
            total += d if unit_weights else weights[i] * d
        partial[block] = total
