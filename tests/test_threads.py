"""The thread pool that runs serial kernels over blocks: every block once, results that
never depend on the thread count, compiles on the caller's thread."""

import threading

import numba
import numpy as np
import pytest

from fastkm import _kernels, _kmeans
from fastkm._kernels import _threads


@pytest.fixture()
def four_threads(monkeypatch):
    """Kernels may use 4 threads, whatever the machine's core count."""
    monkeypatch.setattr(_threads, "_configured_threads", lambda: 4)


@pytest.mark.parametrize("n_blocks", [0, 1, 2, 3, 7, 64])
def test_every_block_runs_once_and_the_caller_takes_the_first_range(four_threads, n_blocks):
    visits = np.zeros(n_blocks, np.int64)
    threads = {}
    ranges = []

    def kernel(first, stop, visits):
        if stop > first:
            ranges.append((first, stop))
        for block in range(first, stop):
            visits[block] += 1
            threads[block] = threading.get_ident()

    _threads.run_blocks(kernel, n_blocks, visits)
    assert visits.tolist() == [1] * n_blocks
    if n_blocks:
        assert threads[0] == threading.get_ident()
    # One contiguous range per thread, of sizes that differ by at most one block.
    assert len(ranges) == min(4, n_blocks)
    sizes = [stop - first for first, stop in ranges]
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_limit_threads_nests_and_restores(four_threads):
    assert _threads.thread_count() == 4
    with _kernels.limit_threads(2):
        assert _threads.thread_count() == 2
        with _kernels.limit_threads(3):  # an inner block never raises the limit
            assert _threads.thread_count() == 2
        with _kernels.limit_threads(1):
            assert _threads.thread_count() == 1
        assert _threads.thread_count() == 2
    assert _threads.thread_count() == 4


def test_a_kernel_error_reaches_the_caller(four_threads):
    def kernel(first, stop):
        if first > 0:
            raise ValueError("block failed")

    with pytest.raises(ValueError, match="block failed"):
        _threads.run_blocks(kernel, 8)


def test_a_compile_happens_on_the_calling_thread_and_is_announced(four_threads):
    def add_blocks(first, stop, out):
        for block in range(first, stop):
            out[block] = block + 1

    add_blocks.__module__ = "fastkm._kernels.probe"  # taken for one of fastkm's kernels
    kernel = numba.njit(nogil=True)(add_blocks)
    calls = []
    out = np.zeros(8, np.int64)
    with _kernels.compile_notices(lambda: calls.append(threading.get_ident())):
        _threads.run_blocks(kernel, 8, out)
    assert calls == [threading.get_ident()]
    assert out.tolist() == list(range(1, 9))


def _many_block_results(rng):
    """Kernels over several blocks each: histogram, cell sort, cell Lloyd step, remap and
    squared error of 300k pixels, with float weights where the merge order matters."""
    pixels = rng.integers(0, 256, size=(300_000, 3), dtype=np.uint8)
    importance = rng.integers(0, 256, size=300_000, dtype=np.uint8)
    colours, counts, sums = _kernels.weighted_colour_histogram(pixels, importance)
    weights = rng.random(colours.shape[0]) * 10
    cells = _kmeans.sort_into_cells(colours, weights, 3)
    centres = rng.uniform(0, 255, size=(32, 3)).astype(np.float32)
    labels = np.full(colours.shape[0], -1, np.int32)
    sum_changes = np.empty((32, 3))
    count_changes = np.empty(32)
    changed = _kernels.cell_lloyd_step(
        cells.columns, cells.points, cells.weights, cells.corners, cells.start, cells.task_cells, cells.bits,
        centres, labels, sum_changes, count_changes,
    )
    table = _kmeans.label_table(colours, labels.astype(np.uint8)[np.argsort(cells.order)])
    pixel_labels = np.empty(pixels.shape[0], np.uint8)
    _kernels.remap_through_table(pixels, table, pixel_labels)
    palette = np.clip(np.rint(centres), 0, 255).astype(np.uint8)
    error = _kernels.squared_error(pixels, np.zeros(0, np.int64), palette, pixel_labels)
    return (colours, counts, sums, cells.points, cells.columns, np.array(cells.norm_total), labels, sum_changes,
            count_changes, np.array(changed), pixel_labels, np.array(error))


def test_results_over_many_blocks_are_identical_for_1_and_4_threads(monkeypatch):
    results = {}
    for n_threads in (1, 4):
        monkeypatch.setattr(_threads, "_configured_threads", lambda: n_threads)
        results[n_threads] = _many_block_results(np.random.default_rng(5))
    for one, four in zip(results[1], results[4]):
        np.testing.assert_array_equal(one, four)  # bit-identical, float sums included


def test_a_forked_child_runs_blocks_on_a_pool_of_its_own(four_threads):
    import os
    import signal

    def kernel(first, stop, out):
        for block in range(first, stop):
            out[block] = block

    _threads.run_blocks(kernel, 8, np.zeros(8, np.int64))  # the parent's pool exists
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's outcome is its exit code)
        signal.alarm(30)  # a child waiting on the parent's threads would hang: end it
        out = np.zeros(8, np.int64)
        _threads.run_blocks(kernel, 8, out)
        os._exit(0 if out.tolist() == list(range(8)) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
