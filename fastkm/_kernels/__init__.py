"""Numba kernels: the hot loops of fastkm.

Every kernel takes arrays and scalars only (no objects, no random generator) and is
compiled once, on first use, then cached on disk (``cache=True``).  Randomness is drawn
by the caller in NumPy and passed in as uniform numbers.

Kernels are serial and release the GIL; a pass over many blocks of data (blocks sized by
data, never by thread count) runs one range of blocks per thread from a small thread
pool (``_threads.run_blocks``).  Each block writes its own row of partial results, and
the rows are merged in block order.  Results are therefore bit-identical for any number
of threads.

One module per pipeline stage, in the order a quantize call runs them: ``histogram``
(colours and their counts), ``cells`` (the grid that prunes the nearest search),
``maps`` (importance and dither maps), ``seeding`` (k-means++), ``nearest`` and ``lloyd`` (assignment and centroid updates),
``swaps`` (moments and splits for the swap proposals), ``remap`` and ``dither`` (labels
of every pixel), ``metrics`` (figures over every pixel).  This package re-exports them
all.  Each kernel has a plain-NumPy reference in ``tests/reference.py``.
"""

import contextlib
import os
import threading

import numba
import numba.core.event
from numba.core.runtime import rtsys as _runtime

# The submodules' kernels are re-exported: callers write _kernels.lloyd_step.
# ruff: noqa: F401

from ._threads import limit_threads, thread_count
from ._common import (
    ASSIGN_TILE, ASSIGN_TILES_PER_TASK, SUM_BLOCK, SEED_BLOCK, PIXEL_BLOCK, BUCKETS_PER_TASK, zeroed_pages,
)
from .cells import CELL_SLACK, TOP_CELL_BITS, cell_sort
from .dither import floyd_steinberg
from .histogram import colour_histogram, weighted_colour_histogram, gather_rows, packed_unique
from .maps import MAP_ROWS, contrast_map, cross_filter, dither_map
from .lloyd import lloyd_step, cell_lloyd_step
from .metrics import indexed_distance_sum
from .nearest import point_columns, assign_labels
from .remap import fill_label_table, remap_through_table, squared_error
from .seeding import kmeans_plusplus, cell_kmeans_plusplus
from .swaps import weighted_moments, weighted_scatter, split_in_two, point_errors


class _CompileNotices(numba.core.event.Listener):
    """Calls the announcement of the active ``compile_notices`` block once per block,
    when numba starts compiling a fastkm kernel on that block's thread.

    numba raises the "numba:compile" event only for a real compile, never for a kernel
    loaded from its disk cache, so an announcement never lies and no compile goes
    unannounced, whichever path (image layout, dithering, colour space, palette size)
    needs it.
    """

    def on_start(self, event):
        announce = getattr(_local, "announce", None)
        if announce is None or getattr(_local, "announced", True):
            return
        if getattr(event.data["dispatcher"].py_func, "__module__", "").startswith(__name__):
            _local.announced = True
            announce()

    def on_end(self, event):
        pass


_local = threading.local()
numba.core.event.register("numba:compile", _CompileNotices())


@contextlib.contextmanager
def compile_notices(announce):
    """Within the block, the first compile of a fastkm kernel on this thread calls
    ``announce()`` (no arguments), before compiling; at most once per block.  An outer
    block's announcement wins over an inner one (the command line's note over the
    library's warning)."""
    if getattr(_local, "announce", None) is not None:
        yield
        return
    _local.announce, _local.announced = announce, False
    try:
        yield
    finally:
        _local.announce = None


def _tolerate_broken_cache(kernel):
    """Make a kernel recompile, instead of failing, when its cache entry is unreadable.

    numba raises when a cache index or data file is truncated or corrupt (a killed
    write, a disk error, a copied stale folder).  Loading then falls back to compiling,
    and saving first removes the unreadable index so the fresh entry replaces it.  A
    read-only package folder needs nothing here: numba then caches in the user's cache
    folder.
    """
    cache = getattr(kernel, "_cache", None)
    if cache is None or not hasattr(cache, "load_overload"):
        return
    load, save = cache.load_overload, cache.save_overload
    load_entry = getattr(cache, "_load_overload", None)

    def load_overload(sig, target_context):
        try:
            if load_entry is None:
                return load(sig, target_context)
            # numba's public load first refreshes the target context, which imports
            # every NumPy and Python implementation numba can compile (0.3-0.45 s of
            # each process's start-up) though loading compiled code needs none of them:
            # only the runtime the loaded code calls into.  A cache miss compiles, and
            # compiling refreshes the contexts itself.
            _runtime.initialize(target_context)
            return load_entry(sig, target_context)
        except Exception:  # corrupt entry: compile afresh
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception:
            try:
                os.unlink(cache._cache_file._index_path)
                save(sig, data)
            except Exception:  # caching is an optimisation; the compiled kernel still runs
                pass

    cache.load_overload = load_overload
    cache.save_overload = save_overload


# Every cached function here, helpers included: a caller's compile loads its helpers.
from . import _common, cells, dither, histogram, lloyd, maps, metrics, nearest, remap, seeding, swaps  # noqa: E402

for _module in (_common, cells, dither, histogram, lloyd, maps, metrics, nearest, remap, seeding, swaps):
    for _kernel in [value for value in vars(_module).values() if hasattr(value, "_cache")]:
        _tolerate_broken_cache(_kernel)
