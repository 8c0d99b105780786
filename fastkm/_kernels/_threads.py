"""Serial kernels run over blocks of data from a pool of Python threads.

A parallel numba kernel (``parallel=True``) compiles three to six times slower than the
same loops serial, loads slower from the disk cache, and starts numba's threading layer
(whose idle threads spin).  fastkm's hot loops are serial ``nogil`` kernels that handle a
range of data-sized blocks instead; ``run_blocks`` splits the blocks into one contiguous
range per thread and runs the ranges at once.  Each block writes its own results, merged
in block order by the caller, so results never depend on the number of threads.
"""

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_local = threading.local()
_pool = None
_pool_lock = threading.Lock()


def _configured_threads():
    """NUMBA_NUM_THREADS, or every core numba would use (read without starting numba's
    threading layer)."""
    import numba

    parallel = numba.np.ufunc.parallel
    if parallel._is_initialized:
        return numba.get_num_threads()  # honours this thread's numba.set_num_threads
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def thread_count():
    """Threads the kernels called from this thread may use."""
    limit = getattr(_local, "limit", None)
    configured = _configured_threads()
    return configured if limit is None else max(1, min(limit, configured))


@contextlib.contextmanager
def limit_threads(n_threads):
    """Within the block, this thread's kernels use at most ``n_threads`` threads."""
    before = getattr(_local, "limit", None)
    _local.limit = n_threads if before is None else min(before, n_threads)
    try:
        yield
    finally:
        _local.limit = before


def readonly(array):
    """A read-only view of a C-contiguous array (a copy if it is not contiguous; the
    array itself if it is already both).

    Callers pass writable and read-only arrays alike; numba compiles each kind as a
    signature of its own, so the kernels' entry points take read-only views only.
    """
    if isinstance(array, np.ndarray) and not array.flags.writeable and array.flags.c_contiguous:
        return array
    view = np.ascontiguousarray(array).view()
    view.flags.writeable = False
    return view


def _executor():
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max(1, os.cpu_count() or 1), thread_name_prefix="fastkm")
    return _pool


def _forget_pool_in_child():
    """A forked child has none of the parent's pool threads: it starts a pool of its own."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


def run_blocks(kernel, n_blocks, *args):
    """``kernel(first, stop, *args)`` over blocks 0..n_blocks-1, one contiguous range of
    blocks per thread (the calling thread takes the first); returns when all are done."""
    # One block (a small photo's passes): no thread count to look up.
    n_threads = min(thread_count(), n_blocks) if n_blocks > 1 else 1
    if n_threads <= 1:
        kernel(0, n_blocks, *args)
        return
    bounds = [n_blocks * i // n_threads for i in range(n_threads + 1)]
    # An empty range first: a kernel not yet compiled (or loaded) is compiled here, on
    # the calling thread, where compile_notices announces it.
    kernel(0, 0, *args)
    pool = _executor()
    others = [pool.submit(kernel, bounds[i], bounds[i + 1], *args) for i in range(1, n_threads)]
    try:
        kernel(bounds[0], bounds[1], *args)
    finally:
        for future in others:
            future.result()


def run_blocks_dynamic(kernel, n_blocks, *args):
    """``kernel(block, block + 1, *args)`` for every block 0..n_blocks-1, each thread
    taking the next block not yet taken, until none is left.

    For blocks of uneven cost (strips of an image whose detail varies: the error
    diffusion's two halves of the 12 MP photo took 0.42 and 0.32 s at 256 OKLab
    colours), so that the threads finish together.  Each block still writes only its
    own results, so they do not depend on which thread ran it.
    """
    n_threads = min(thread_count(), n_blocks)
    if n_threads <= 1:
        kernel(0, n_blocks, *args)
        return
    kernel(0, 0, *args)  # compiled or loaded on the calling thread, as run_blocks does
    taken = [0]
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                block = taken[0]
                taken[0] += 1
            if block >= n_blocks:
                return
            kernel(block, block + 1, *args)

    others = [_executor().submit(work) for _ in range(1, n_threads)]
    try:
        work()
    finally:
        for future in others:
            future.result()

