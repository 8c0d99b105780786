"""fastkm.dask and ``fastkm quantize --scheduler`` on a LocalCluster of 2 worker processes.

Skipped when the ``fastkm[dask]`` extra is not installed.
"""

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask
import numba

import fastkm
import fastkm.dask
from fastkm import FastkmError

from .test_cli import invoke


@pytest.fixture(scope="module")
def client():
    """A client (the default scheduler) of 2 single-threaded worker processes on 127.0.0.1."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        env={"NUMBA_NUM_THREADS": "1"},  # one core each; the test process keeps its threads
    ) as cluster, distributed.Client(cluster) as client:
        # The workers import numba after env= applies (pytest's main module does not import it).
        assert set(client.run(numba.get_num_threads).values()) == {1}
        yield client


def mosaic(photo):
    """2 x 2 tiles of a photo, mirrored so that no two tiles are the same pixels."""
    top = np.concatenate([photo, photo[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([top, top[::-1]], axis=0))


def test_array_path_is_lazy_and_within_a_few_percent_of_in_memory(client, sample_photo):
    image = mosaic(sample_photo("kodim23.png"))  # 1024 x 1536
    # Uneven chunks: the last row and column of chunks are smaller.
    array = da.from_array(image, chunks=(300, 500, 3))
    result = fastkm.dask.quantize(array, 16, seed=1, sample_size=200_000)
    assert isinstance(result.palette, np.ndarray)
    assert result.palette.shape == (16, 3) and result.palette.dtype == np.uint8
    assert isinstance(result.labels, da.Array)
    assert result.labels.shape == (1024, 1536) and result.labels.dtype == np.uint8
    assert result.labels.chunks == array.chunks[:2]
    assert 1 <= result.n_passes <= fastkm.dask.DEFAULT_PASSES

    in_memory = fastkm.quantize(image, 16, seed=1)
    assert result.mse <= 1.03 * in_memory.mse
    labels = result.labels.compute()
    quantized = result.palette[labels]
    # The reported error is the error of the labels it returns.
    assert result.mse == pytest.approx(np.mean((quantized.astype(np.int64) - image) ** 2), rel=1e-12)
    np.testing.assert_array_equal(result.image.compute(), quantized)


def test_same_seed_same_result_for_any_chunking_and_scheduler(client, sample_photo):
    image = sample_photo("kodim23.png")
    on_cluster = fastkm.dask.quantize(da.from_array(image, chunks=(200, 333, 1)), 8, seed=5, sample_size=50_000)
    with dask.config.set(scheduler="threads"):
        whole = fastkm.dask.quantize(da.from_array(image, chunks=-1), 8, seed=5, sample_size=50_000)
        whole_labels = whole.labels.compute()
    np.testing.assert_array_equal(on_cluster.palette, whole.palette)
    np.testing.assert_array_equal(on_cluster.labels.compute(), whole_labels)
    assert on_cluster.mse == whole.mse
    other_seed = fastkm.dask.quantize(da.from_array(image, chunks=(200, 333, 3)), 8, seed=6, sample_size=50_000)
    assert not np.array_equal(other_seed.palette, on_cluster.palette)


def test_few_colours_are_kept_exactly_even_when_the_sample_misses_one(client):
    grey = np.full((300, 400), 10, dtype=np.uint8)
    grey[:, 200:] = 200
    grey[100:, :50] = 90
    grey[299, 399] = 255  # one pixel in 120,000: the 1,000-pixel sample all but surely misses it
    result = fastkm.dask.quantize(da.from_array(grey, chunks=(128, 128)), 8, sample_size=1000)
    np.testing.assert_array_equal(result.palette, [[10], [90], [200], [255]])
    assert result.mse == 0 and result.psnr == float("inf")
    assert result.image.shape == (300, 400)
    np.testing.assert_array_equal(result.image.compute(), grey)


def test_many_colours_give_uint16_labels(client):
    image = np.random.default_rng(0).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    result = fastkm.dask.quantize(da.from_array(image, chunks=(32, 40, 3)), 300, passes=1)
    assert result.palette.shape == (300, 3)
    assert result.labels.dtype == np.uint16 and result.labels.compute().max() < 300


def test_threaded_scheduler_survives_numba_workqueue_layer(sample_path):
    # workqueue aborts the process when two threads launch parallel kernels at once;
    # fastkm's kernels are serial and never start numba's threading layer.
    script = (
        "import dask, dask.array as da, numba, fastkm.dask\n"
        "from fastkm.io import read_image\n"
        f"image = da.from_array(read_image({str(sample_path('kodim23.png'))!r}), chunks=(128, 128, 3))\n"
        "with dask.config.set(scheduler='threads', num_workers=4):\n"
        "    result = fastkm.dask.quantize(image, 4, sample_size=20_000)\n"
        "    result.labels.compute()\n"
        "print(numba.np.ufunc.parallel._is_initialized, result.n_colors)\n"
    )
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    completed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["False", "4"]


@pytest.mark.parametrize(
    ("array", "kwargs", "message"),
    [
        (da.zeros((8, 8, 3), dtype=np.float32), {}, "float32, expected uint8; convert 0..255 data with array.astype"),
        (da.zeros((8, 8, 4), dtype=np.uint8), {}, "drop an alpha channel"),
        (da.zeros((0, 8, 3), dtype=np.uint8), {}, "it holds no pixels"),
        (da.zeros((8, 8, 3), dtype=np.uint8), {"n_colors": 0}, "n_colors=0 must be between 1 and 65536"),
        (da.zeros((8, 8, 3), dtype=np.uint8), {"passes": 0}, "passes=0 must be a positive integer"),
        (da.zeros((8, 8, 3), dtype=np.uint8)[da.arange(8) > 3], {}, "unknown chunk sizes"),
    ],
)
def test_bad_input_is_a_clear_error(array, kwargs, message):
    with pytest.raises(FastkmError, match=message):
        fastkm.dask.quantize(array, **{"n_colors": 4, **kwargs})


def digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.png")}


def fastkm_command(*args):
    """Run the command in a fresh process, as a user would (no Dask client of the tests in it)."""
    return subprocess.run(
        [sys.executable, "-m", "fastkm.cli", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_batch_on_the_cluster_writes_the_same_bytes_as_a_local_run(client, tmp_path, photo_folder):
    source = photo_folder
    address = client.scheduler.address
    local = invoke("quantize", source, "-o", tmp_path / "local", "-k", 8, "--recursive")
    on_cluster = fastkm_command(
        "quantize", source, "-o", tmp_path / "cluster", "-k", 8, "--recursive", "--scheduler", address
    )
    output = on_cluster.stdout + on_cluster.stderr
    assert local.exit_code == on_cluster.returncode == 1, output  # one file failed
    assert "error: " in output and "broken.jpg: cannot decode" in output and "Traceback" not in output
    assert "2 written, 1 failed, 1 skipped" in output
    assert sorted(digests(tmp_path / "cluster")) == ["parrots.png", "sub/hats.png"]
    assert digests(tmp_path / "cluster") == digests(tmp_path / "local")
    all_good = fastkm_command("quantize", source / "sub", "-o", tmp_path / "all-good", "--scheduler", address)
    assert all_good.returncode == 0, all_good.stdout + all_good.stderr
    assert "1 written, 0 failed, 0 skipped" in all_good.stdout


def test_cli_unreachable_scheduler_is_one_line(tmp_path, sample_path, monkeypatch):
    monkeypatch.setattr("fastkm._distributed.CONNECT_TIMEOUT", 1)
    (tmp_path / "in").mkdir()
    shutil.copy(sample_path("kodim23.png"), tmp_path / "in" / "a.png")
    result = invoke("quantize", tmp_path / "in", "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output
