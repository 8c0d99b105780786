"""The same input, k and seed give byte-identical files: any thread count, CLI or API."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN = """
import hashlib, json, sys
import fastkm
from fastkm.io import read_image, write_quantized
image = read_image(sys.argv[1])
result = fastkm.quantize(image, int(sys.argv[2]), seed=int(sys.argv[3]), **json.loads(sys.argv[5]))
write_quantized(sys.argv[4], result.palette, result.labels)
print(hashlib.sha256(open(sys.argv[4], "rb").read()).hexdigest())
"""


def _api_digest(tmp_path, image_path, n_colors, seed, threads, **options):
    output = tmp_path / f"api-{threads}.png"
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    completed = subprocess.run(
        [sys.executable, "-c", RUN, str(image_path), str(n_colors), str(seed), str(output), json.dumps(options)],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return completed.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("n_colors", [16, 200])
def test_identical_files_for_1_2_4_threads_and_the_cli(tmp_path, sample_path, n_colors):
    image_path = sample_path("bus-3mp.jpg")
    # space="auto": what the command line fits in by default.
    digests = {threads: _api_digest(tmp_path, image_path, n_colors, 7, threads, space="auto") for threads in (1, 2, 4)}
    assert len(set(digests.values())) == 1, digests
    cli_output = tmp_path / "cli.png"
    subprocess.run(
        [sys.executable, "-m", "fastkm.cli", "quantize", str(image_path), "-o", str(cli_output),
         "-k", str(n_colors), "--seed", "7"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    assert hashlib.sha256(cli_output.read_bytes()).hexdigest() == digests[1]


@pytest.mark.parametrize("n_colors", [5, 32])
def test_small_photo_identical_for_1_2_4_threads(tmp_path, sample_path, n_colors):
    # A small photo's own stages (a small seed draw, one thread for the whole fit).
    image_path = sample_path("kodim23.png")
    digests = {threads: _api_digest(tmp_path, image_path, n_colors, 3, threads) for threads in (1, 2, 4)}
    assert len(set(digests.values())) == 1, digests


@pytest.mark.parametrize("weighting", ["perceptual", "none"])
def test_weighted_and_dithered_files_identical_for_1_2_4_threads(tmp_path, sample_path, weighting):
    # Dithered in strips and weighted by the importance map: neither may depend on threads.
    image_path = sample_path("kodim23.png")
    options = {"dither": True, "weighting": weighting}
    digests = {threads: _api_digest(tmp_path, image_path, 32, 3, threads, **options) for threads in (1, 2, 4)}
    assert len(set(digests.values())) == 1, digests


def test_repeated_runs_in_one_process_are_identical(sample_photo):
    import fastkm

    photo = sample_photo("kodim03.png")
    first = fastkm.quantize(photo, 32, seed=11)
    for _ in range(2):
        again = fastkm.quantize(photo, 32, seed=11)
        np.testing.assert_array_equal(again.palette, first.palette)
        np.testing.assert_array_equal(again.labels, first.labels)


QUANTIZE_SMALL = (
    "import fastkm, numpy as np; "
    "r = fastkm.quantize(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8), 4); "
    "print(r.palette.tobytes().hex()); "
    "import sys; print('compiler registries loaded' if 'numba.np.linalg' in sys.modules else 'cache only')"
)


def test_compile_cache_survives_unwritable_package_and_corrupt_entries(tmp_path):
    """One test, two compiles (each costs ~30 s on 2 cores)."""
    import shutil

    shutil.copytree(os.path.join(ROOT, "fastkm"), tmp_path / "fastkm", ignore=shutil.ignore_patterns("__pycache__"))
    # A file where numba wants the __pycache__ folder: the in-tree cache cannot be
    # created (as in a read-only install), so numba caches in the user's cache folder.
    for package in ("fastkm", "fastkm/_kernels"):
        (tmp_path / package / "__pycache__").write_text("not a folder")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"))

    def run():
        # cwd too: for `python -c` the working folder precedes PYTHONPATH on sys.path.
        completed = subprocess.run(
            [sys.executable, "-c", QUANTIZE_SMALL], env=env, capture_output=True, text=True, cwd=str(tmp_path)
        )
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    first = run()
    assert first.endswith("compiler registries loaded\n")
    entries = list((tmp_path / "xdg").rglob("*.nbi")) + list((tmp_path / "xdg").rglob("*.nbc"))
    assert entries, "nothing was cached in the user cache folder"
    for entry in entries:  # a killed write or a disk error: garbage in every entry
        entry.write_bytes(os.urandom(64))
    assert run() == first  # recompiled, same result
    # The rewritten cache loads, without importing what numba needs only to compile
    # (about 0.4 s of every warm process's start-up).
    assert run() == first.replace("compiler registries loaded", "cache only")


def test_kill_9_leaves_no_output_or_a_complete_one(tmp_path, sample_path):
    """SIGKILL the CLI at several moments: the output is absent or a complete PNG."""
    import signal
    import time

    from PIL import Image

    source = sample_path("bus-3mp.jpg")
    outcomes = set()
    for delay in (0.3, 0.9, 1.5, 2.1, 2.7, 3.3, 4.5):
        target = tmp_path / f"out-{delay}.png"
        process = subprocess.Popen(
            [sys.executable, "-m", "fastkm.cli", "quantize", str(source), "-o", str(target), "-k", "64", "--optimize"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if target.exists():
            with Image.open(target) as image:
                image.load()  # raises on a truncated file
                assert image.size == (2016, 1512)
            outcomes.add("complete")
        else:
            outcomes.add("absent")
    assert "absent" in outcomes  # the kill landed before the rename at least once


def test_a_thread_pool_over_images_gives_the_serial_results(sample_photo):
    from concurrent.futures import ThreadPoolExecutor

    import fastkm

    photos = [sample_photo("kodim23.png"), sample_photo("kodim03.png")]
    calls = [
        (photos[i % 2][:, : 300 + 40 * i], dict(n_colors=(8, 40)[i % 2], seed=i, dither=i == 3, space=("rgb", "oklab")[i // 3]))
        for i in range(6)
    ]

    def run(call):
        result = fastkm.quantize(call[0], **call[1])
        return result.palette, result.labels, result.mse, result.delta_e

    serial = [run(call) for call in calls]
    with ThreadPoolExecutor(3) as pool:
        pooled = list(pool.map(run, calls))
    for (palette, labels, mse, delta_e), expected in zip(pooled, serial):
        np.testing.assert_array_equal(palette, expected[0])
        np.testing.assert_array_equal(labels, expected[1])
        assert (mse, delta_e) == expected[2:]


def test_every_kernel_releases_the_gil():
    # Threads over images scale only if no kernel holds the GIL while it runs.
    import numba

    from fastkm import _kernels

    modules = [getattr(_kernels, name) for name in dir(_kernels) if type(getattr(_kernels, name)).__name__ == "module"]
    kernels = [v for m in modules for v in vars(m).values() if isinstance(v, numba.core.dispatcher.Dispatcher)]
    assert len(kernels) > 20
    assert [k.py_func.__name__ for k in kernels if not k.targetoptions.get("nogil")] == []
