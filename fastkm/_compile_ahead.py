"""Compiling the later stages' kernels in a second process during a first run.

A first run compiles its kernels one after another on one core: the histogram, the
cell grid and k-means++ before the first Lloyd step can run, then Lloyd, the swaps and
the remap.  When the kernels a fit needs are not in numba's disk cache yet, ``start``
launches a helper process that compiles the Lloyd and remap kernels (on small
synthetic data of the same types, so the same signatures) into the cache on the second
core while this process compiles the early stages.  When this process then needs a
kernel the helper is compiling at that moment, it waits for the helper's cache entry
and loads it instead of compiling it a second time; a kernel the helper has not
reached yet, or one it compiled with other types, this process compiles as before.
Results do not change: a loaded kernel is the same compiled code.

The helper reports each compile's start and each saved entry on its stdout.  It is
started only when it can help: the plan's kernels missing from the cache, a cache
folder this user can write, a core that other processes leave idle (sampled for
0.1 s), not within another helper.  It exits
when its plan is done; this process ends it at exit if it is still running, and it
stops by itself if this process goes away.  FASTKM_COMPILE_AHEAD=0 turns it off;
FASTKM_COMPILE_AHEAD=1 starts it whatever the load and number of cores.
"""

import atexit
import os
import subprocess
import sys
import threading
import time
import types

import numpy as np

from . import _kernels, _kmeans

ENV = "FASTKM_COMPILE_AHEAD"
# The longest this process waits for one of the helper's entries before compiling the
# kernel itself: a first run's longest compile takes 4 s on a quiet 2-core machine and
# about 10 s on a busy one; past this the helper is stuck or starved.
WAIT_S = 30.0

_started: set = set()  # plans decided on in this process
_start_lock = threading.Lock()
_helpers: list = []  # the helpers this process started (_Helper)


def _kernel_dispatchers():
    """Every cached numba dispatcher of the kernel modules, helpers included."""
    modules = [
        value for value in vars(_kernels).values()
        if isinstance(value, types.ModuleType) and value.__name__.startswith(_kernels.__name__ + ".")
    ]
    found = {}
    for module in modules:  # modules import each other's helpers: each dispatcher once
        found.update((id(value), value) for value in vars(module).values() if hasattr(value, "_cache"))
    return list(found.values())


def _name(dispatcher):
    return f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"


def _synthetic_colours(n_channels):
    """Distinct colours (u, n_channels) uint8 and their counts (u,) int64, as a histogram."""
    rng = np.random.default_rng(0)
    colours = np.unique(rng.integers(0, 256, size=(4096, n_channels), dtype=np.uint8), axis=0)
    return np.ascontiguousarray(colours), rng.integers(1, 9, size=colours.shape[0]).astype(np.int64)


def _fit_later_stages(n_channels, labels_dtype, remap):
    """The calls a fit of n_channels points makes besides the histogram and k-means++:
    first the two small kernels the main process meets just before k-means++ (the sample
    gather, the moments of the tolerance), then Lloyd (over cells for 3 channels, else
    plain), the nearest-entry search and, with ``remap``, the error and the remap of
    pixels to labels_dtype labels.  Sizes are small: only the types count."""
    colours, counts = _synthetic_colours(n_channels)
    if n_channels <= _kmeans.MAX_PACKED_CHANNELS:
        _kernels.gather_rows(colours, np.arange(4, dtype=np.int64))
    _kmeans.tolerance(colours, counts, 1e-4)
    point_set = _kmeans.PointSet(colours, counts, 16)
    run = point_set.lloyd(point_set.points[:16].astype(np.float64), max_iter=2, tol_abs=0.0, overrelax=True)
    palette = _kmeans.round_palette(run.centres)
    colour_labels = point_set.nearest(palette.astype(np.float32))
    if remap:
        _kernels.squared_error(colours, counts, palette, colour_labels)
        if n_channels <= _kmeans.MAX_PACKED_CHANNELS:
            _kmeans.remap(colours, _kmeans.PaletteFit(palette, colour_labels, colours, counts, 0, 0), labels_dtype)


def plan(n_channels, labels_dtype, remap):
    """The helper's plan for a fit of n_channels (3: the cell grid; 4: plain columns)
    points: a string, the helper's command-line argument."""
    return f"{n_channels},{np.dtype(labels_dtype).name},{int(bool(remap))}"


def _run_plan(text):
    n_channels, labels_dtype, remap = text.split(",")
    with _kernels.limit_threads(1):
        _fit_later_stages(int(n_channels), np.dtype(labels_dtype), remap == "1")


def _plan_kernels(n_channels):
    """Kernels whose missing cache entries say the plan is worth a helper."""
    from ._kernels import lloyd, nearest

    if n_channels == 3:
        return [lloyd._cell_lloyd_tasks]
    return [lloyd._lloyd_tasks, nearest._assign_tasks]


def _writable(path):
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.access(path, os.W_OK)


# Idle time sampled to decide on a helper (only on a cold cache: a first run's compile
# takes seconds); 100 ms is 20 clock ticks of 2 cores.
IDLE_SAMPLE_S = 0.1


# Idle cores a helper needs: one for itself and half a core of slack (see _spare_cores).
SPARE_CORES = 1.5


def _cpu_ticks():
    """(idle, total) clock ticks of all cores since boot, from /proc/stat (Linux)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)


def _spare_cores():
    """Cores that other processes leave idle now: the idle share of all cores over
    IDLE_SAMPLE_S, while this process waits (Linux); elsewhere the cores less the
    1-minute load average.  A helper needs about a core of its own (SPARE_CORES): on
    2 cores with one kept busy by another process it took a first run from 10.2-10.5 s
    to 9.5-10.0 s at a quarter more CPU time, and where other work kept load averages
    at 2.5-3.5 it made first runs 1.1-1.4 times slower.  The idle share, unlike the
    load average, does not count work that has just ended (the install before a first
    run, an earlier command)."""
    try:
        n_cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n_cores = os.cpu_count() or 1
    if n_cores < 2:
        return 0.0
    try:
        idle_before, total_before = _cpu_ticks()
        time.sleep(IDLE_SAMPLE_S)
        idle_after, total_after = _cpu_ticks()
        if total_after > total_before:
            return n_cores * (idle_after - idle_before) / (total_after - total_before)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return n_cores - os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows: no load average
        return float(n_cores)


def _has_index(cache):
    """Whether a kernel's numba cache has its index file (something was cached)."""
    return os.path.exists(cache._cache_file._index_path)


def cached(n_channels):
    """Whether the kernels of a fit of n_channels points have been cached (their plan's
    index files exist): a warm cache, where a fit loads rather than compiles."""
    try:
        return all(_has_index(kernel._cache) for kernel in _plan_kernels(n_channels))
    except AttributeError:  # another numba's cache layout
        return False


def _worth_a_helper(n_channels):
    setting = os.environ.get(ENV, "")
    if setting == "0" or getattr(sys, "frozen", False) or not sys.executable:
        return False  # turned off, or an embedded or frozen interpreter: no Python to start
    import numba

    if numba.config.DISABLE_JIT:
        return False
    try:
        caches = [kernel._cache for kernel in _plan_kernels(n_channels)]
        missing = any(not _has_index(cache) and _writable(cache._cache_path) for cache in caches)
    except (AttributeError, OSError):  # another numba's cache layout: compile as usual
        return False
    # Sampling the idle time costs IDLE_SAMPLE_S: only on a cold cache.
    return missing and (setting == "1" or _spare_cores() >= SPARE_CORES)


def start(n_channels, labels_dtype, remap=True):
    """Launch the helper for a fit of n_channels points when its kernels are not cached
    (at most once per plan and process); returns at once."""
    text = plan(n_channels, labels_dtype, remap)
    if text in _started:
        return
    with _start_lock:  # a batch quantizes on several threads at once
        if text in _started:
            return
        _started.add(text)  # decided once per process: later calls cost nothing
        if any(running.process.poll() is None for running in _helpers) or not _worth_a_helper(n_channels):
            return  # one helper at a time: two would share one spare core
        _launch(text)


def _launch(text):
    """Start the helper process on a plan, and make every kernel wait for its entries."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from fastkm import _compile_ahead; _compile_ahead.helper(sys.argv[2], int(sys.argv[3]))"
    )
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", code, package_parent, text, str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=dict(os.environ, **{ENV: "0"}),
        )
    except OSError:
        return
    helper_process = _Helper(process)
    _helpers.append(helper_process)
    atexit.register(helper_process.end)
    for dispatcher in _kernel_dispatchers():
        _wait_before_compiling(dispatcher, helper_process)


class _Helper:
    """The main process's view of a helper: which kernels it is compiling now."""

    def __init__(self, process):
        self.process = process
        # A forked child of this process inherits this object but not the reader thread
        # nor the helper: it neither waits for the helper nor ends it.
        self.owner = os.getpid()
        self.compiling = set()
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name="fastkm-compile-ahead").start()

    def _read(self):
        for line in self.process.stdout:
            event, _, name = line.decode(errors="replace").strip().partition(" ")
            with self.changed:
                if event == "start":
                    self.compiling.add(name)
                elif event == "saved":
                    self.compiling.discard(name)
                self.changed.notify_all()
        with self.changed:
            self.compiling.clear()
            self.changed.notify_all()

    def wait_for(self, name):
        """Wait until the helper has saved ``name``, if it is compiling it; whether it was."""
        if os.getpid() != self.owner:
            return False
        with self.changed:
            if name not in self.compiling:
                return False
            self.changed.wait_for(lambda: name not in self.compiling, WAIT_S)
            return True

    def end(self):
        if os.getpid() != self.owner:
            return
        if self.process.poll() is None:
            self.process.terminate()  # numba writes cache entries atomically: none is left half-written
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_before_compiling(dispatcher, helper_process):
    """On a cache miss of a kernel the helper is compiling, wait for its entry and load it."""
    cache = dispatcher._cache
    load = cache.load_overload
    name = _name(dispatcher)

    def load_overload(sig, target_context):
        loaded = load(sig, target_context)
        if loaded is None and helper_process.wait_for(name):
            loaded = load(sig, target_context)
        return loaded

    cache.load_overload = load_overload


def helper(text, parent_pid):
    """The helper process: compile the plan's kernels into the cache, reporting each
    compile's start and each saved entry on stdout."""
    import numba.core.event

    def report(event, name):
        if os.getppid() != parent_pid:
            os._exit(0)  # the main process is gone: nobody waits for these kernels
        sys.stdout.write(f"{event} {name}\n")
        sys.stdout.flush()

    class Reporter(numba.core.event.Listener):
        def on_start(self, event):
            report("start", _name(event.data["dispatcher"]))

        def on_end(self, event):
            pass

    def reporting(dispatcher):
        cache = dispatcher._cache
        save = cache.save_overload

        def save_overload(sig, data):
            try:
                save(sig, data)
            finally:
                report("saved", _name(dispatcher))

        cache.save_overload = save_overload

    for dispatcher in _kernel_dispatchers():
        reporting(dispatcher)
    numba.core.event.register("numba:compile", Reporter())
    _run_plan(text)
