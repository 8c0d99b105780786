"""Colour histogram of the pixels (a bucket sort by first channel) and pixel sampling."""

import numpy as np
from numba import njit, prange

from ._common import PIXEL_BLOCK, BUCKETS_PER_TASK


@njit(cache=True, nogil=True)
def _pack_key(pixels, i):
    key = np.uint32(0)
    for j in range(pixels.shape[1]):
        key = (key << np.uint32(8)) | np.uint32(pixels[i, j])
    return key


@njit(cache=True, nogil=True)
def colour_histogram(pixels):
    """Distinct colours (u, d) uint8 of pixels (n, d) uint8 and their pixel counts (u,)
    int64: weighted_colour_histogram without weights."""
    colours, counts, _ = weighted_colour_histogram(pixels, np.zeros(0, dtype=np.uint8))
    return colours, counts


@njit(cache=True, nogil=True, parallel=True)
def weighted_colour_histogram(pixels, weights):
    """Distinct colours of an image, how many pixels hold each and their summed weights.

    pixels   IN (n, d) uint8 with 1 <= d <= 3
    weights  IN (n,) uint8 weight of every pixel, or (0,) for none
    returns  colours (u, d) uint8, grouped by channel 0 ascending, in order of first
             appearance within a group; counts (u,) int64, summing to n; weight_sums
             (u,) int64, the sum of each colour's pixels' weights ((0,) without weights;
             integers, so exact in any order)

    Colours are packed into keys of 8*d bits.  The top 8 bits pick one of 256 buckets:
    pixels are scattered into bucket order (block-wise counts and a serial prefix sum, so
    no two blocks write the same place), then every bucket is counted in its own small
    table.  Memory beyond the input is 2 bytes per pixel (3 with weights), not a 2^24
    table per thread.
    """
    n_pixels, n_channels = pixels.shape
    weighted = weights.shape[0] > 0
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
    # Each pixel's weight goes where its key goes.
    sorted_weights = np.empty(n_pixels if weighted else 0, dtype=np.uint8)
    for block in prange(n_blocks):
        cursor = offsets[block].astype(np.uint64)
        if weighted:
            for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_pixels)):
                bucket = pixels[i, 0]
                low_keys[cursor[bucket]] = np.uint16(_pack_key(pixels, i) & low_mask)
                sorted_weights[cursor[bucket]] = weights[i]
                cursor[bucket] += np.uint64(1)
        elif n_channels == 3:
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
    bucket_weights = np.empty(n_pixels if weighted else 0, dtype=np.int64)
    n_distinct = np.zeros(256, dtype=np.int64)
    for group in prange(256 // BUCKETS_PER_TASK):
        table = np.zeros(table_size, dtype=np.uint32)
        weight_table = np.zeros(table_size if weighted else 0, dtype=np.int64)
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
                if weighted:
                    weight_table[key] += np.int64(sorted_weights[i])
            for i in range(start, end):
                key = np.uint64(low_keys[i])
                bucket_counts[i] = table[key]
                table[key] = 0
                if weighted:
                    bucket_weights[i] = weight_table[key]
                    weight_table[key] = 0
            n_distinct[bucket] = end - start

    n_colours = 0
    for bucket in range(256):
        n_colours += n_distinct[bucket]
    colours = np.empty((n_colours, n_channels), dtype=np.uint8)
    counts = np.empty(n_colours, dtype=np.int64)
    weight_sums = np.empty(n_colours if weighted else 0, dtype=np.int64)
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
            if weighted:
                weight_sums[out] = bucket_weights[start + u]
    return colours, counts, weight_sums


@njit(cache=True, nogil=True, parallel=True)
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
