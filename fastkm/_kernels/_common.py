"""Block sizes shared by the kernels (fixed by the data, never by the thread count),
and the allocation of their largest tables.

Kernels allocate with ``np.empty`` and fill (``a[:] = 0``) rather than ``np.zeros``,
``np.ones`` or ``np.arange``: numba compiles each of those as a function of its own
for every dtype and shape type, in every process; a first run compiled twelve such
for ``np.zeros`` alone (0.7 s of CPU time), where a fill is lowered inline.
The largest tables made in Python for them come from ``zeroed_pages``.
"""

import mmap

import numpy as np


# Pixels per tile of the assignment loop: a tile's float32 columns, distances and labels
# stay in L1 while every centre streams over them.
ASSIGN_TILE = 256
# Tiles handled by one parallel task (one scratch allocation per task).
ASSIGN_TILES_PER_TASK = 64
# Points per block of the squared-error sum; fixed, so the order never depends on threads.
SUM_BLOCK = 32768
# Points per block of the k-means++ potential: a weighted draw skips whole blocks by
# their totals and scans one block point by point, so blocks are kept small.
SEED_BLOCK = 2048
# Pixels per block of the histogram and remap passes.
PIXEL_BLOCK = 65536
# Histogram buckets (of 256) counted by one parallel task with one table.
BUCKETS_PER_TASK = 16


# Arrays of at least this many bytes are mapped in huge pages where the system allows it:
# glibc's largest threshold for serving an allocation from a fresh mapping, so every
# array this large faults its pages in one by one (smaller ones are often reused memory
# that a memset zeroes; in huge pages a 16 MB table of a small photo took 8 ms, against
# 1 ms from np.zeros in a loop).
HUGE_PAGE_BYTES = 32 << 20


def zeroed_pages(n_items, dtype):
    """A zeroed (n_items,) array of dtype, in huge pages when large (Linux).

    A 2^24-entry uint32 colour table is touched all over by a photo's colours: filling
    the 64 MB table of a 12 MP photo's 389k colours took 7-82 ms of page faults in 4 KB
    pages, 17-23 ms in 2 MB ones (Linux leaves huge pages to madvise by default).  The
    memory is an anonymous mapping, freed with the array.
    """
    dtype = np.dtype(dtype)
    n_bytes = n_items * dtype.itemsize
    if n_bytes < HUGE_PAGE_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.zeros(n_items, dtype=dtype)
    mapping = mmap.mmap(-1, n_bytes)
    try:
        mapping.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # not allowed here: small pages, still zeroed
        pass
    return np.frombuffer(mapping, dtype=dtype, count=n_items)
