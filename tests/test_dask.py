"""fastkm.dask on a LocalCluster of 2 worker processes.

Skipped when the ``fastkm[dask]`` extra is not installed.
"""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask

import fastkm
import fastkm.dask
from fastkm import FastkmError


@pytest.fixture(scope="module")
def client():
    """A client (the default scheduler) of 2 single-threaded worker processes on 127.0.0.1."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        env={"NUMBA_NUM_THREADS": "1"},  # one core each; the test process keeps its threads
    ) as cluster, distributed.Client(cluster) as client:
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


@pytest.mark.parametrize(
    ("array", "kwargs", "message"),
    [
        (da.zeros((8, 8, 3), dtype=np.float32), {}, "dtype float32, expected uint8; convert 8-bit data with array.astype"),
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
