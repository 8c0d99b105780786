"""fastkm.quantize against its peers on the same decoded photo, per photo and per k.

    pytest bench/test_peers.py --benchmark-autosave                   # 12 MP photo + sample_images/
    pytest bench/test_peers.py --bench-dir ~/photos --benchmark-autosave
    pytest bench/test_peers.py --bench-k 5,16,64,256 ...              # default k = 16, 64, 256
    FASTKM_BENCH_SLOW=1 pytest bench/test_peers.py ...                # also the minutes-long runs

Every method gets the same (H, W, 3) uint8 array and returns a palette and labels; the
MSE of palette[labels] against the photo (summed over channels, as in the issue
tables) is stored in each result's extra_info.  Ratios against fastkm are made from
one saved run by bench/report.py.  Peers missing from the environment are skipped:
install them with `pip install -e '.[bench]'`.  Photo selection: see conftest.py.
"""

import math
import os
import time

import peers  # pytest puts bench/ on sys.path
import pytest

import fastkm

pytestmark = pytest.mark.usefixtures("fastkm_warm")
RUN_SLOW = os.environ.get("FASTKM_BENCH_SLOW") == "1"
AVAILABLE = set(peers.available_peers())
# Seconds the timed rounds of a method span at least (see test_quantize_photo).
ROUNDS_SPAN = 3.0


def _slow(peer, n_pixels, n_colors):
    """Runs of a minute or more on a 12 MP photo (measured, see bench/README.md)."""
    work = n_pixels * n_colors
    if peer == "sklearn-kmeans":
        return work > 12e6 * 64
    if peer == "sklearn-minibatch":
        return n_pixels > 2e6
    if peer == "opencv-kmeans":
        return work > 12e6 * 16
    return False


def _fastkm(image, n_colors, seed):
    result = fastkm.quantize(image, n_colors, seed=seed)
    return result.palette, result.labels


def pytest_generate_tests(metafunc):
    if "n_colors" in metafunc.fixturenames:
        # --bench-k / FASTKM_BENCH_K, an option of conftest.py
        metafunc.parametrize("n_colors", [int(k) for k in metafunc.config.getoption("bench_k").split(",")])


@pytest.mark.parametrize("method", ["fastkm", *peers.PEERS])
def test_quantize_photo(benchmark, photo, photo_name, method, n_colors):
    if method != "fastkm" and method not in AVAILABLE:
        pytest.skip(f"{method} is not installed (pip install -e '.[bench]')")
    n_pixels = photo.shape[0] * photo.shape[1]
    if method != "fastkm" and _slow(method, n_pixels, n_colors) and not RUN_SLOW:
        pytest.skip(f"{method} at k={n_colors} on {n_pixels / 1e6:.0f} MP takes minutes; set FASTKM_BENCH_SLOW=1")
    if method in ("imagequant", "pillow-mediancut", "pillow-fastoctree") and n_colors > 256:
        pytest.skip(f"{method} holds at most 256 colours")
    run = _fastkm if method == "fastkm" else peers.PEERS[method]
    benchmark.group = f"quantize k={n_colors}"
    # The minimum over rounds is the statistic (the machine is shared and noisy).  Methods
    # that take tens of seconds run once.  The others run once untimed (first-call costs:
    # thread pools, caches), then at least 5 rounds spanning at least ROUNDS_SPAN seconds,
    # so that a slow spell of a second or two cannot cover every round of a fast method
    # while a slower one's rounds outlast it.
    if _slow(method, n_pixels, n_colors) or method.startswith(("sklearn", "opencv")):
        rounds = 1
    else:
        start = time.perf_counter()
        run(photo, n_colors, 0)
        rounds = max(5, math.ceil(ROUNDS_SPAN / (time.perf_counter() - start)))
    palette, labels = benchmark.pedantic(run, args=(photo, n_colors, 0), rounds=rounds, warmup_rounds=0)
    peers.validate_output(photo, n_colors, palette, labels)
    benchmark.extra_info.update(
        method=method,
        n_colors=n_colors,
        image=photo_name,
        megapixels=round(n_pixels / 1e6, 2),
        mse=round(3 * peers.mse(photo, palette, labels), 4),
        palette_size=len(palette),
    )
