"""Compiles are announced, whichever path needs them, and warmup() leaves none to do.

A real compile of fastkm's kernels takes seconds to minutes; these tests compile a
one-line function that numba takes for one of fastkm's kernels (by its module name)
instead, so the announcements are exercised by genuine numba compiles.
"""

import os
import subprocess
import sys
import time
import warnings

import numba
import numba.core.event
import numpy as np
import pytest
from typer.testing import CliRunner

import fastkm
from fastkm import _compile_ahead, _kernels
from fastkm.cli import COMPILING, app


def fresh_kernel():
    """A fastkm-looking kernel never compiled before (each call makes a new one)."""

    def add_one(x):
        return x + 1

    add_one.__module__ = "fastkm._kernels.probe"
    return numba.njit(add_one)


def test_a_compile_within_a_block_is_announced_once_before_it_runs():
    calls = []
    with _kernels.compile_notices(lambda: calls.append("announced")):
        kernel = fresh_kernel()
        assert kernel(1) == 2 and calls == ["announced"]
        fresh_kernel()(1)  # a second compile in the same block: no second line
        assert calls == ["announced"]
    with _kernels.compile_notices(lambda: calls.append("again")):
        kernel(2)  # compiled already: nothing to announce
        assert calls == ["announced"]
        fresh_kernel()(1)
    assert calls == ["announced", "again"]


def test_only_fastkm_kernels_and_only_within_a_block_are_announced():
    calls = []
    fresh_kernel()(1)  # outside any block
    with _kernels.compile_notices(lambda: calls.append("inner")):
        numba.njit(lambda x: x * 2)(3)  # not fastkm's
    assert calls == []


def test_the_outer_block_announces():
    calls = []
    with _kernels.compile_notices(lambda: calls.append("outer")):
        with _kernels.compile_notices(lambda: calls.append("inner")):
            fresh_kernel()(1)
    assert calls == ["outer"]


@pytest.fixture()
def compiling_histogram(monkeypatch):
    """quantize's first kernel compiles (something) on every call."""
    histogram = _kernels.colour_histogram

    def compiling(pixels):
        fresh_kernel()(1)
        return histogram(pixels)

    monkeypatch.setattr(_kernels, "colour_histogram", compiling)


def small_photo():
    return np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)


def test_quantize_warns_before_it_compiles_pointing_at_the_callers_line(compiling_histogram):
    with pytest.warns(fastkm.CompileWarning, match="first use only") as caught:
        fastkm.quantize(small_photo(), 4)
    assert len(caught) == 1
    assert caught[0].filename == __file__  # the caller's line, not fastkm's


def test_nothing_to_compile_nothing_said():
    photo = small_photo()
    fastkm.quantize(photo, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastkm.CompileWarning)
        fastkm.quantize(photo, 4)


def test_the_command_line_says_one_line_instead_of_a_warning(compiling_histogram, tmp_path):
    from PIL import Image

    Image.fromarray(small_photo()).save(tmp_path / "photo.png")
    result = CliRunner().invoke(app, ["quantize", str(tmp_path / "photo.png"), "-k", "4"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count(COMPILING) == 1
    assert "CompileWarning" not in result.output


def every_call():
    """Every public call, in every layout and option, on small inputs."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    alpha = rng.choice(np.array([0, 90, 255], np.uint8), size=(40, 50, 1))
    for image in (rgb, rgb[..., 0], rgb[..., :1], np.dstack([rgb, alpha]), np.dstack([rgb[..., :1], alpha])):
        for n_colors in (5, 300):
            for dither in (0.0, 0.5):
                for space in ("rgb", "oklab") if image.ndim == 3 and image.shape[2] == 3 else ("rgb",):
                    result = fastkm.quantize(image, n_colors, dither=dither, space=space, sample_size=500)
                    result.delta_e
                    fastkm.quantize(image, palette=result.palette[:7], dither=dither, space=space).delta_e
        fastkm.quantize(image, 32, min_psnr=15)
    fastkm.shared_palette([rgb, rgb[..., 0]], 8, space="oklab")
    points = rgb.reshape(-1, 3)
    fastkm.KMeans(4, random_state=0).fit(points).predict(points)
    fastkm.KMeans(4, random_state=0).fit(points[:, :2], sample_weight=np.ones(points.shape[0])).predict(points[:, :2])
    fastkm.KMeans(4, random_state=0).fit(np.repeat(points[:8], 1 << 17, axis=0))


def kernel_signatures():
    """{kernel name: its compiled (or loaded) signatures} of every kernel fastkm calls."""
    return {
        name: set(value.signatures)
        for name, value in vars(_kernels).items()
        if isinstance(value, numba.core.dispatcher.Dispatcher)
    }


def test_after_warmup_no_call_needs_a_kernel_warmup_did_not_make():
    # Kernels loaded from the disk cache add signatures as compiled ones do: any
    # signature a call adds is one a fresh process would compile after warmup.
    timings = fastkm.warmup()
    assert [what for what, _ in timings][:2] == ["RGB images", "grey images"]
    warmed = kernel_signatures()
    assert {name for name, signatures in warmed.items() if not signatures} == set()  # every kernel reached
    every_call()
    added = {name: signatures - warmed[name] for name, signatures in kernel_signatures().items()}
    assert {name: sorted(map(str, new)) for name, new in added.items() if new} == {}


def test_warmup_command_lists_what_it_compiled():
    result = CliRunner().invoke(app, ["warmup"])
    assert result.exit_code == 0, result.output
    assert "RGB images:" in result.stdout and "fastkm's kernels are ready" in result.stdout


# The helper process of a first run (fastkm._compile_ahead).


def dispatcher_signatures():
    """{kernel name: signatures} of every kernel and helper of the stage modules."""
    return {_compile_ahead._name(kernel): set(kernel.signatures) for kernel in _compile_ahead._kernel_dispatchers()}


def test_the_helpers_plans_compile_only_what_the_real_fits_use():
    # A plan compiling other types than the fit it stands for would leave the main
    # process to compile everything itself: every signature a plan adds is such a miss.
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    alpha = rng.choice(np.array([0, 90, 255], np.uint8), size=(40, 50, 1))
    for image in (rgb, np.dstack([rgb, alpha])):
        for n_colors in (16, 300):
            fastkm.quantize(image, n_colors)
    used = dispatcher_signatures()
    for n_channels in (3, 4):
        for labels_dtype in (np.uint8, np.uint16):
            _compile_ahead._run_plan(_compile_ahead.plan(n_channels, labels_dtype, True))
    added = {name: signatures - used[name] for name, signatures in dispatcher_signatures().items()}
    assert {name: sorted(map(str, new)) for name, new in added.items() if new} == {}


def compiling_a_b(then):
    """A stand-in helper process that reports compiling kernel "a.b", then runs the Python
    ``then``; its _Helper, once "a.b" is being compiled."""
    script = "import time; print('start a.b', flush=True); " + then
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    helper = _compile_ahead._Helper(process)
    deadline = time.perf_counter() + 30
    while "a.b" not in helper.compiling:
        assert time.perf_counter() < deadline, "the stand-in helper never reported"
        time.sleep(0.01)
    return helper


def test_the_main_process_waits_only_for_what_the_helper_is_compiling():
    helper = compiling_a_b("time.sleep(0.5); print('saved a.b', flush=True); time.sleep(30)")
    process = helper.process
    try:
        started = time.perf_counter()
        assert not helper.wait_for("a.c")  # not the helper's: compile at once
        assert time.perf_counter() - started < 0.2
        assert helper.wait_for("a.b") and "a.b" not in helper.compiling
        assert not helper.wait_for("a.b")  # saved: load it
    finally:
        helper.end()
    assert process.returncode is not None  # ended, and reaped


def test_no_helper_process_outlives_the_process_that_started_it(tmp_path):
    code = (
        "import numpy as np; from fastkm import _compile_ahead as ahead; "
        "ahead.start(3, np.uint8); helper, = ahead._helpers; print(helper.process.pid)"
    )
    # An empty cache: the helper has work to do.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), **{_compile_ahead.ENV: "1"})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(result.stdout.strip()), 0)


def test_no_helper_when_the_kernels_are_cached_turned_off_or_no_core_is_spare(monkeypatch):
    fastkm.quantize(small_photo(), 4)  # the kernels are in the cache
    monkeypatch.setattr(_compile_ahead, "_spare_cores", lambda: 8.0)
    assert not _compile_ahead._worth_a_helper(3)

    def never_called(x):
        return x

    never_cached = numba.njit(cache=True)(never_called)
    monkeypatch.setattr(_compile_ahead, "_plan_kernels", lambda n_channels: [never_cached])
    assert _compile_ahead._worth_a_helper(3)
    monkeypatch.setenv(_compile_ahead.ENV, "0")
    assert not _compile_ahead._worth_a_helper(3)
    monkeypatch.delenv(_compile_ahead.ENV)
    monkeypatch.setattr(_compile_ahead, "_spare_cores", lambda: 0.5)
    assert not _compile_ahead._worth_a_helper(3)
    monkeypatch.setenv(_compile_ahead.ENV, "1")  # whatever the load
    assert _compile_ahead._worth_a_helper(3)


def test_a_forked_child_neither_waits_for_nor_ends_its_parents_helper():
    helper = compiling_a_b("time.sleep(30)")
    process = helper.process
    try:
        pid = os.fork()
        if pid == 0:  # the child: compile at once, leave the helper alone
            started = time.perf_counter()
            waited = helper.wait_for("a.b")
            helper.end()
            os._exit(0 if not waited and time.perf_counter() - started < 1.0 else 1)
        assert os.waitpid(pid, 0)[1] == 0
        assert process.poll() is None  # still running: the child did not end it
    finally:
        helper.end()


def test_spare_cores_are_between_none_and_every_core():
    n_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 0.0 <= _compile_ahead._spare_cores() <= n_cores + 1e-9
