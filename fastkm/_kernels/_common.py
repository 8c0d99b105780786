"""Block sizes shared by the kernels: fixed by the data, never by the thread count.

Kernels allocate with ``np.empty`` and fill (``a[:] = 0``) rather than ``np.zeros``,
``np.ones`` or ``np.arange``: numba compiles each of those as a function of its own
for every dtype and shape type, in every process; a first run compiled twelve such
for ``np.zeros`` alone (0.7 s of CPU time), where a fill is lowered inline.
"""


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
