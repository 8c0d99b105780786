"""Block sizes shared by the kernels: fixed by the data, never by the thread count."""


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
