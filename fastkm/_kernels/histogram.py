"""Colour histogram of the pixels (a bucket sort by first channel) and pixel sampling."""

import numpy as np
from numba import njit

from ._common import PIXEL_BLOCK, BUCKETS_PER_TASK
from ._threads import readonly, run_blocks


@njit(cache=True, nogil=True)
def _pack_key(pixels, i):
    key = np.uint32(0)
    for j in range(pixels.shape[1]):
        key = (key << np.uint32(8)) | np.uint32(pixels[i, j])
    return key


def colour_histogram(pixels):
    """Distinct colours (u, d) uint8 of pixels (n, d) uint8 and their pixel counts (u,)
    int64: weighted_colour_histogram without weights."""
    colours, counts, _ = weighted_colour_histogram(pixels, np.zeros(0, dtype=np.uint8))
    return colours, counts


def weighted_colour_histogram(pixels, weights):
    """Distinct colours of an image, how many pixels hold each and their summed weights.

    pixels   IN (n, d) uint8 with 1 <= d <= 3
    weights  IN (n,) uint8 weight of every pixel, or (0,) for none
    returns  colours (u, d) uint8, grouped by channel 0 ascending, in order of first
             appearance within a group; counts (u,) int64, summing to n; weight_sums
             (u,) int64, the sum of each colour's pixels' weights ((0,) without weights;
             integers, so exact in any order)

    Colours are packed into keys of 8*d bits.  The top 8 bits pick one of 256 buckets:
    pixels are scattered into bucket order (block-wise counts and a prefix sum, so no
    two blocks write the same place), then every bucket is counted in its own small
    table.  Memory beyond the input is 2 bytes per pixel (3 with weights), not a 2^24
    table per thread.
    """
    pixels = readonly(pixels)
    weights = readonly(weights)
    n_pixels, n_channels = pixels.shape
    weighted = weights.shape[0] > 0
    n_blocks = max(1, (n_pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK)
    block_bucket_counts = np.zeros((n_blocks, 256), dtype=np.int64)
    run_blocks(_bucket_tallies, n_blocks, pixels, block_bucket_counts)
    # offsets[block, bucket]: where this block's pixels of this bucket go (bucket by
    # bucket, and within a bucket block by block).
    ends = np.cumsum(block_bucket_counts.T.ravel()).reshape(256, n_blocks)
    offsets = np.ascontiguousarray((ends - block_bucket_counts.T).T)
    bucket_start = np.append(offsets[0], n_pixels)

    # The low key has at most 16 bits (d <= 3): 2 bytes per pixel.
    low_keys = np.empty(n_pixels, dtype=np.uint16)
    # Each pixel's weight goes where its key goes.
    sorted_weights = np.empty(n_pixels if weighted else 0, dtype=np.uint8)
    run_blocks(_scatter_keys, n_blocks, pixels, weights, offsets, low_keys, sorted_weights)

    bucket_counts = np.empty(n_pixels, dtype=np.uint32)
    bucket_weights = np.empty(n_pixels if weighted else 0, dtype=np.int64)
    n_distinct = np.zeros(256, dtype=np.int64)
    run_blocks(_count_buckets, 256 // BUCKETS_PER_TASK, n_channels, low_keys, sorted_weights, bucket_start,
               bucket_counts, bucket_weights, n_distinct)

    out_start = np.cumsum(n_distinct) - n_distinct
    n_colours = int(n_distinct.sum())
    colours = np.empty((n_colours, n_channels), dtype=np.uint8)
    counts = np.empty(n_colours, dtype=np.int64)
    weight_sums = np.empty(n_colours if weighted else 0, dtype=np.int64)
    run_blocks(_write_colours, 256, low_keys, bucket_start, n_distinct, out_start, bucket_counts, bucket_weights,
               colours, counts, weight_sums)
    return colours, counts, weight_sums


@njit(cache=True, nogil=True)
def _bucket_tallies(first, stop, pixels, block_bucket_counts):
    """Pixels per bucket (first channel) of each block first..stop-1 of PIXEL_BLOCK."""
    n_pixels = pixels.shape[0]
    # Four interleaved tallies: neighbouring pixels often share a first channel, and one
    # tally would make each count wait for the previous store (12 MP photo: 9 -> 5 ms).
    tallies = np.empty((4, 256), dtype=np.int64)
    for block in range(first, stop):
        tallies[:] = 0
        start = block * PIXEL_BLOCK
        end = min(start + PIXEL_BLOCK, n_pixels)
        i = start
        while i + 4 <= end:
            for lane in range(4):
                tallies[lane, pixels[np.uint64(i + lane), np.uint64(0)]] += 1
            i += 4
        for i in range(i, end):
            tallies[0, pixels[np.uint64(i), np.uint64(0)]] += 1
        for lane in range(4):
            for bucket in range(256):
                block_bucket_counts[block, bucket] += tallies[lane, bucket]


@njit(cache=True, nogil=True)
def _scatter_keys(first, stop, pixels, weights, offsets, low_keys, sorted_weights):
    """Scatter the low keys (and weights) of blocks first..stop-1 into bucket order."""
    n_pixels, n_channels = pixels.shape
    weighted = weights.shape[0] > 0
    low_mask = np.uint32((1 << (8 * n_channels - 8)) - 1)
    for block in range(first, stop):
        cursor = offsets[block].astype(np.uint64)
        end = min((block + 1) * PIXEL_BLOCK, n_pixels)
        if weighted:
            for i in range(block * PIXEL_BLOCK, end):
                bucket = pixels[i, 0]
                low_keys[cursor[bucket]] = np.uint16(_pack_key(pixels, i) & low_mask)
                sorted_weights[cursor[bucket]] = weights[i]
                cursor[bucket] += np.uint64(1)
        elif n_channels == 3:
            # Unsigned indices and the low key read straight from channels 1 and 2: no
            # negative-index checks in the scatter (12 MP photo: 76 -> 59 ms in all).
            for i in range(block * PIXEL_BLOCK, end):
                row = np.uint64(i)
                bucket = np.uint64(pixels[row, np.uint64(0)])
                position = cursor[bucket]
                low_keys[position] = (np.uint16(pixels[row, np.uint64(1)]) << np.uint16(8)) | np.uint16(
                    pixels[row, np.uint64(2)]
                )
                cursor[bucket] = position + np.uint64(1)
        else:
            for i in range(block * PIXEL_BLOCK, end):
                bucket = pixels[i, 0]
                low_keys[cursor[bucket]] = np.uint16(_pack_key(pixels, i) & low_mask)
                cursor[bucket] += np.uint64(1)


@njit(cache=True, nogil=True)
def _count_buckets(first, stop, n_channels, low_keys, sorted_weights, bucket_start, bucket_counts, bucket_weights,
                   n_distinct):
    """Count the buckets of groups first..stop-1, each in a small table.

    Group g holds buckets g, g + G, g + 2G, ... (G groups): neighbouring buckets
    (similar first channel) are often all heavy or all empty, so strided groups balance
    the threads.  The table is cleared as its entries are read out, so it is zeroed only
    once.  A bucket's distinct keys (in order of first appearance) are written back over
    the front of its own slice of low_keys as they are first met (never past the key
    being read), their counts into bucket_counts.  Only the first n_distinct entries of
    each bucket's slice are written, so only about 4 bytes per distinct colour of this
    array are ever touched.
    """
    weighted = sorted_weights.shape[0] > 0
    table_size = 1 << (8 * n_channels - 8)
    table = np.empty(table_size, dtype=np.uint32)
    table[:] = 0
    weight_table = np.empty(table_size if weighted else 0, dtype=np.int64)
    weight_table[:] = 0
    n_groups = 256 // BUCKETS_PER_TASK
    for group in range(first, stop):
        for bucket in range(group, 256, n_groups):
            start = bucket_start[bucket]
            end = start  # one past the last distinct key found
            for i in range(start, bucket_start[bucket + 1]):
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


@njit(cache=True, nogil=True)
def _write_colours(first, stop, low_keys, bucket_start, n_distinct, out_start, bucket_counts, bucket_weights,
                   colours, counts, weight_sums):
    """Unpack the distinct keys of buckets first..stop-1 into colours and counts."""
    n_channels = colours.shape[1]
    weighted = weight_sums.shape[0] > 0
    low_bits = 8 * n_channels - 8
    for bucket in range(first, stop):
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


def gather_rows(pixels, indices):
    """pixels[indices] for pixels (n, d) and indices (m,) integer: (m, d) of pixels' dtype.

    NumPy's fancy indexing of 3-byte rows runs at ~100 ns a row; this is the same
    gather as a flat loop over blocks of rows.
    """
    pixels = readonly(pixels)
    indices = readonly(indices)
    out = np.empty((indices.shape[0], pixels.shape[1]), dtype=pixels.dtype)
    run_blocks(_gather_blocks, max(1, (indices.shape[0] + PIXEL_BLOCK - 1) // PIXEL_BLOCK), pixels, indices, out)
    return out


@njit(cache=True, nogil=True)
def _gather_blocks(first, stop, pixels, indices, out):
    n_rows = indices.shape[0]
    n_channels = pixels.shape[1]
    for block in range(first, stop):
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_rows)):
            row = np.uint64(indices[i])
            for j in range(n_channels):
                out[i, j] = pixels[row, np.uint64(j)]


def packed_unique(keys):
    """np.unique(keys, return_inverse=True, return_counts=True) for uint32 keys (n,):
    the distinct keys (u,) ascending, inverse (n,) int64 (each key's place among them)
    and counts (u,) int64.

    An LSD radix sort of (key, index) pairs, a byte a pass (a pass whose byte is the
    same for every key is skipped), each pass block-wise counts, a prefix sum and a
    scatter, so blocks never write the same place and the order is the same for any
    number of threads; then runs of equal keys are numbered block-wise.  np.unique's
    comparison sort took 2.6 s of 12 M keys, this 0.22-0.45 s (two threads).
    """
    keys = readonly(keys)
    n_keys = keys.shape[0]
    if n_keys > np.iinfo(np.uint32).max:
        # Indices are carried as uint32: 16 GB of RGBA and more takes NumPy's way.
        unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        return unique, inverse.ravel().astype(np.int64, copy=False), counts.astype(np.int64)
    n_blocks = max(1, (n_keys + PIXEL_BLOCK - 1) // PIXEL_BLOCK)
    source_keys, source_index = keys, np.arange(n_keys, dtype=np.uint32)
    # Two buffers the passes write in turn (the input is never written).
    buffers = [(np.empty(n_keys, dtype=np.uint32), np.empty(n_keys, dtype=np.uint32)) for _ in range(2)]
    n_passes = 0
    tallies = np.zeros((n_blocks, 256), dtype=np.int64)
    for shift in (0, 8, 16, 24):
        tallies[:] = 0
        run_blocks(_digit_tallies, n_blocks, readonly(source_keys), shift, tallies)
        if (tallies.sum(axis=0) == n_keys).any():
            continue  # one value of this byte everywhere: the order stands
        ends = np.cumsum(tallies.T.ravel()).reshape(256, n_blocks)
        offsets = np.ascontiguousarray((ends - tallies.T).T)
        target_keys, target_index = buffers[n_passes % 2]
        run_blocks(_digit_scatter, n_blocks, readonly(source_keys), readonly(source_index), shift, offsets,
                   target_keys, target_index)
        source_keys, source_index = target_keys, target_index
        n_passes += 1
    source_keys, source_index = readonly(source_keys), readonly(source_index)
    new_runs = np.zeros(n_blocks, dtype=np.int64)
    run_blocks(_count_new_runs, n_blocks, source_keys, new_runs)
    first_run = np.cumsum(new_runs) - new_runs
    n_unique = int(new_runs.sum())
    unique = np.empty(n_unique, dtype=np.uint32)
    run_starts = np.empty(n_unique + 1, dtype=np.int64)
    run_starts[n_unique] = n_keys
    inverse = np.empty(n_keys, dtype=np.int64)
    run_blocks(_number_runs, n_blocks, source_keys, source_index, first_run, unique, run_starts, inverse)
    return unique, inverse, np.diff(run_starts)


@njit(cache=True, nogil=True)
def _digit_tallies(first, stop, keys, shift, tallies):
    """Keys per value of the byte at ``shift`` in each block first..stop-1."""
    n_keys = keys.shape[0]
    for block in range(first, stop):
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_keys)):
            tallies[block, (keys[np.uint64(i)] >> np.uint32(shift)) & np.uint32(255)] += 1


@njit(cache=True, nogil=True)
def _digit_scatter(first, stop, keys, index, shift, offsets, sorted_keys, sorted_index):
    """Each key of blocks first..stop-1, with its index, to its place by the byte at
    ``shift`` (offsets: each block's first place per byte value; stable)."""
    n_keys = keys.shape[0]
    place = np.empty(256, dtype=np.int64)
    for block in range(first, stop):
        place[:] = offsets[block]
        for i in range(block * PIXEL_BLOCK, min((block + 1) * PIXEL_BLOCK, n_keys)):
            key = keys[np.uint64(i)]
            digit = (key >> np.uint32(shift)) & np.uint32(255)
            destination = np.uint64(place[digit])
            sorted_keys[destination] = key
            sorted_index[destination] = index[np.uint64(i)]
            place[digit] += 1


@njit(cache=True, nogil=True)
def _count_new_runs(first, stop, sorted_keys, new_runs):
    """How many runs of equal keys begin in each block first..stop-1."""
    n_keys = sorted_keys.shape[0]
    for block in range(first, stop):
        start = block * PIXEL_BLOCK
        count = 0
        for i in range(start, min(start + PIXEL_BLOCK, n_keys)):
            count += 1 if i == 0 or sorted_keys[np.uint64(i)] != sorted_keys[np.uint64(i - 1)] else 0
        new_runs[block] = count


@njit(cache=True, nogil=True)
def _number_runs(first, stop, sorted_keys, sorted_index, first_run, unique, run_starts, inverse):
    """Each run beginning in blocks first..stop-1: its key and start; and each key's run
    number, written at its original index."""
    n_keys = sorted_keys.shape[0]
    for block in range(first, stop):
        start = block * PIXEL_BLOCK
        run = first_run[block] - 1  # the run under way where the block begins
        for i in range(start, min(start + PIXEL_BLOCK, n_keys)):
            key = sorted_keys[np.uint64(i)]
            if i == 0 or key != sorted_keys[np.uint64(i - 1)]:
                run += 1
                unique[run] = key
                run_starts[run] = i
            inverse[np.uint64(sorted_index[np.uint64(i)])] = run
