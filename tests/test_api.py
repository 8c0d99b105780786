"""Contracts of the public API: fastkm.quantize and fastkm.KMeans."""

import numba
import numpy as np
import pytest

import fastkm
import fastkm.io

from . import reference


@pytest.fixture(scope="module")
def photo(sample_photo):
    return sample_photo("kodim23.png")


def test_quantize_result_contract(photo):
    result = fastkm.quantize(photo, 16, seed=1)
    height, width, _ = photo.shape
    assert result.palette.shape == (16, 3) and result.palette.dtype == np.uint8
    assert result.labels.shape == (height, width) and result.labels.dtype == np.uint8
    assert result.image.shape == photo.shape and result.image.dtype == np.uint8
    np.testing.assert_array_equal(result.image, result.palette[result.labels])
    expected_mse = np.mean((photo.astype(np.float64) - result.image) ** 2)
    assert result.mse == pytest.approx(expected_mse, rel=1e-12)
    assert result.psnr == pytest.approx(10 * np.log10(255**2 / expected_mse), rel=1e-12)
    assert result.n_colors == 16
    assert result.n_distinct == len(np.unique(photo.reshape(-1, 3), axis=0))


def test_quantize_labels_are_the_nearest_palette_entries(photo):
    result = fastkm.quantize(photo, 32)
    expected, _ = reference.assign_labels(photo.reshape(-1, 3), result.palette)
    np.testing.assert_array_equal(result.labels.ravel(), expected)


def test_quantize_is_deterministic_and_seeded(photo):
    a = fastkm.quantize(photo, 16, seed=3)
    b = fastkm.quantize(photo, 16, seed=3)
    np.testing.assert_array_equal(a.palette, b.palette)
    np.testing.assert_array_equal(a.labels, b.labels)
    c = fastkm.quantize(photo, 16, seed=4)
    assert not np.array_equal(a.palette, c.palette)


def test_quantize_same_result_for_1_and_2_threads(photo):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fastkm.quantize(photo, 24, seed=9)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = fastkm.quantize(photo, 24, seed=9)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.palette, two.palette)
    np.testing.assert_array_equal(one.labels, two.labels)


def test_quantize_without_sampling_stage(photo):
    result = fastkm.quantize(photo, 8, sample_size=None)
    assert result.palette.shape == (8, 3)
    assert result.psnr > 20


def test_quantize_large_palette_uses_uint16_labels(photo):
    result = fastkm.quantize(photo[:64, :64], 300)
    assert result.labels.dtype == np.uint16
    np.testing.assert_array_equal(result.image, result.palette[result.labels])


def test_quantize_grey_image():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(60, 80), dtype=np.uint8)
    result = fastkm.quantize(grey, 4)
    assert result.palette.shape == (4, 1)
    assert result.image.shape == (60, 80)
    np.testing.assert_array_equal(result.image, result.palette[result.labels][:, :, 0])
    # 1-D k-means of uniform values: four palette levels spread over the range.
    assert np.all(np.diff(np.sort(result.palette[:, 0].astype(int))) > 40)


def test_quantize_keeps_the_exact_colours_of_a_simple_image():
    image = np.zeros((10, 12, 3), dtype=np.uint8)
    image[:, 6:] = (200, 10, 30)
    image[4, 4] = (1, 2, 3)
    result = fastkm.quantize(image, 16)
    assert result.n_colors == 3 and result.n_distinct == 3
    assert result.mse == 0 and result.psnr == float("inf")
    np.testing.assert_array_equal(result.image, image)


def test_quantize_one_pixel_and_one_colour():
    result = fastkm.quantize(np.full((1, 1, 3), 77, dtype=np.uint8), 1)
    np.testing.assert_array_equal(result.palette, [[77, 77, 77]])
    result = fastkm.quantize(np.arange(30, dtype=np.uint8).reshape(5, 6), 1)
    assert result.palette.shape == (1, 1)
    assert result.palette[0, 0] in (14, 15)  # the rounded mean of 0..29


def test_quantize_hand_computed_case():
    # Two tight groups: k = 2 must put one centre on each group's mean.
    image = np.array([[[0, 0, 0], [2, 0, 0], [250, 250, 250], [254, 250, 250]]], dtype=np.uint8)
    result = fastkm.quantize(image, 2)
    assert sorted(map(tuple, result.palette.tolist())) == [(1, 0, 0), (252, 250, 250)]
    assert result.mse == pytest.approx((1 + 1 + 4 + 4) / 12)


@pytest.mark.parametrize(
    "image, kwargs, message",
    [
        (np.full((4, 4, 3), 2, np.float32), {}, "float pixels range from 2 to 2; floats must lie in"),
        (np.zeros((4, 4, 3), np.uint16), {}, "dtype uint16, expected uint8"),
        (np.zeros((4, 4, 5), np.uint8), {}, "expected (H, W) grey, (H, W, 2) grey"),
        (np.zeros((0, 4, 3), np.uint8), {}, "holds no pixels"),
        (np.zeros(16, np.uint8), {}, "expected (H, W) grey"),
        (np.zeros((4, 4, 3), np.uint8), {"n_colors": 0}, "n_colors=0 must be between 1 and 65536"),
        (np.zeros((4, 4, 3), np.uint8), {"n_colors": -3}, "n_colors=-3 must be between"),
        (np.zeros((4, 4, 3), np.uint8), {"n_colors": 2.5}, "must be an integer"),
        (np.zeros((4, 4, 3), np.uint8), {"max_iter": 0}, "max_iter=0 must be a positive integer"),
        (np.zeros((4, 4, 3), np.uint8), {"sample_size": -1}, "sample_size=-1"),
        (np.zeros((4, 4, 3), np.uint8), {"tol": float("nan")}, "tol=nan"),
        (np.zeros((4, 4, 3), np.uint8), {"seed": -1}, "seed=-1 must be a non-negative integer"),
        ([[[1, 2, 3]], [[1, 2]]], {}, "image cannot be made an array (setting an array element with a sequence)"),
        (bytes(5000), {}, "image is 5,000 bytes, expected its pixels: pass fastkm.io.read_image(data)"),
    ],
)
def test_quantize_rejects_bad_input_with_a_clear_message(image, kwargs, message):
    with pytest.raises(fastkm.FastkmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fastkm.quantize(image, **kwargs)


# --- KMeans estimator -------------------------------------------------------------


def test_kmeans_hand_computed_four_points():
    X = np.array([[0, 0], [0, 2], [10, 10], [10, 12]], dtype=np.uint8)
    model = fastkm.KMeans(n_clusters=2, random_state=0).fit(X)
    centres = sorted(map(tuple, model.cluster_centers_.tolist()))
    assert centres == [(0.0, 1.0), (10.0, 11.0)]
    assert model.inertia_ == pytest.approx(4.0)
    assert model.labels_[0] == model.labels_[1] != model.labels_[2] == model.labels_[3]
    assert model.labels_.dtype == np.int32
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    np.testing.assert_array_equal(model.fit_predict(X), model.labels_)


def test_kmeans_init_array_and_empty_cluster_relocation():
    X = np.array([[0, 0, 0]] * 5 + [[100, 100, 100]] * 5 + [[200, 0, 0]], dtype=np.uint8)
    # The third initial centre attracts nothing: it must be moved to the worst-fitted point.
    init = np.array([[0, 0, 0], [150, 50, 50], [255, 255, 255]], dtype=np.float64)
    model = fastkm.KMeans(n_clusters=3, init=init).fit(X)
    centres = sorted(map(tuple, model.cluster_centers_.round(6).tolist()))
    assert centres == [(0.0, 0.0, 0.0), (100.0, 100.0, 100.0), (200.0, 0.0, 0.0)]
    assert model.inertia_ == 0


def test_kmeans_matches_reference_lloyd_fixed_point(photo):
    X = photo[::4, ::4].reshape(-1, 3)
    model = fastkm.KMeans(n_clusters=8, random_state=0, tol=0.0, max_iter=500).fit(X)
    labels, centres = reference.lloyd_step(X, np.ones(len(X), np.int64), model.cluster_centers_)
    # Converged: one more reference step moves nothing, and labels agree.
    np.testing.assert_allclose(centres, model.cluster_centers_, atol=1e-6)
    # float32 distances may break a float64 near-tie the other way; nothing more.
    assert np.mean(labels == model.labels_) > 0.999
    assert model.inertia_ == pytest.approx(reference.assign_labels(X, model.cluster_centers_)[1].sum(), rel=1e-5)


def test_kmeans_accepts_an_image_and_sample_weights(photo):
    small = photo[::8, ::8]
    model = fastkm.KMeans(n_clusters=4, random_state=1).fit(small)
    assert model.labels_.shape == (small.shape[0] * small.shape[1],)
    X = small.reshape(-1, 3)
    weights = np.ones(len(X))
    weighted = fastkm.KMeans(n_clusters=4, random_state=1).fit(X, sample_weight=weights)
    assert weighted.inertia_ == pytest.approx(
        reference.assign_labels(X, weighted.cluster_centers_)[1].sum(), rel=1e-5
    )
    # Doubling every weight doubles the inertia and keeps the centres.
    doubled = fastkm.KMeans(n_clusters=4, random_state=1).fit(X, sample_weight=2 * weights)
    np.testing.assert_allclose(doubled.cluster_centers_, weighted.cluster_centers_)
    assert doubled.inertia_ == pytest.approx(2 * weighted.inertia_)


def test_kmeans_transform_and_score(photo):
    X = photo[::16, ::16].reshape(-1, 3)
    model = fastkm.KMeans(n_clusters=5, random_state=2).fit(X)
    distances = model.transform(X)
    assert distances.shape == (len(X), 5)
    expected = np.sqrt(((X[:, None, :].astype(float) - model.cluster_centers_[None]) ** 2).sum(2))
    np.testing.assert_allclose(distances, expected, atol=1e-6)
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-5)
    np.testing.assert_allclose(model.fit_transform(X), distances)


def test_kmeans_params_follow_sklearn_conventions():
    model = fastkm.KMeans(n_clusters=3, random_state=5)
    assert model.get_params()["n_clusters"] == 3
    assert model.set_params(n_clusters=4).n_clusters == 4
    assert not hasattr(model, "cluster_centers_")
    with pytest.raises(fastkm.FastkmError, match="not fitted"):
        model.predict(np.zeros((2, 3), np.uint8))
    with pytest.raises(fastkm.FastkmError, match="n_samples=2 should be >= n_clusters=4"):
        model.fit(np.zeros((2, 3), np.uint8))
    with pytest.raises(fastkm.FastkmError, match="sample_weight"):
        fastkm.KMeans(2).fit(np.zeros((3, 3), np.uint8), sample_weight=[1, -1, 1])


def test_kmeans_four_features_and_no_more():
    rng = np.random.default_rng(4)
    X = rng.integers(0, 4, size=(500, 4), dtype=np.uint8) * np.uint8(60)
    model = fastkm.KMeans(n_clusters=6, random_state=0).fit(X)
    assert model.cluster_centers_.shape == (6, 4)
    np.testing.assert_array_equal(model.labels_, model.predict(X))
    with pytest.raises(fastkm.FastkmError, match="5 features per point, expected at most 4"):
        fastkm.KMeans(n_clusters=6).fit(np.zeros((500, 5), np.uint8))


def test_quantize_accepts_array_likes_such_as_pil_images():
    from PIL import Image

    array = np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    result = fastkm.quantize(Image.fromarray(array), 4)
    assert result.image.shape == (20, 30, 3)
    grey = fastkm.quantize(Image.fromarray(array[..., 0]), 4)
    assert grey.image.shape == (20, 30)


def test_kmeans_labels_same_through_table_and_direct_assignment(photo, monkeypatch):
    X = photo.reshape(-1, 3)
    direct = fastkm.KMeans(n_clusters=12, random_state=3).fit(X)
    monkeypatch.setattr(fastkm.api, "TABLE_REMAP_MIN_POINTS", 1)
    table = fastkm.KMeans(n_clusters=12, random_state=3).fit(X)
    np.testing.assert_array_equal(direct.labels_, table.labels_)
    np.testing.assert_array_equal(direct.cluster_centers_, table.cluster_centers_)


def test_kmeans_accepts_legacy_random_state():
    X = np.random.default_rng(0).integers(0, 256, size=(300, 3), dtype=np.uint8)
    a = fastkm.KMeans(n_clusters=4, random_state=np.random.RandomState(5)).fit(X)
    b = fastkm.KMeans(n_clusters=4, random_state=np.random.RandomState(5)).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def test_quantize_onto_a_given_palette(photo):
    palette = np.array([[0, 0, 0], [255, 255, 255], [200, 30, 30], [30, 120, 40]], dtype=np.uint8)
    result = fastkm.quantize(photo, palette=palette)
    np.testing.assert_array_equal(result.palette, palette)
    expected, dist = reference.assign_labels(photo.reshape(-1, 3), palette)
    np.testing.assert_array_equal(result.labels.ravel(), expected)
    assert result.mse == pytest.approx(dist.sum() / photo.size)
    grey = fastkm.quantize(photo[..., 0], palette=np.array([[0], [128], [255]], np.uint8))
    assert set(np.unique(grey.image)) <= {0, 128, 255}
    with pytest.raises(fastkm.FastkmError, match=r"palette has shape \(4, 3\), expected \(m, 1\)"):
        fastkm.quantize(photo[..., 0], palette=palette)
    with pytest.raises(fastkm.FastkmError, match="palette has dtype float64"):
        fastkm.quantize(photo, palette=palette.astype(float))


# --- palette shares and Pillow output ------------------------------------------------


@pytest.mark.parametrize("case", ["rgb", "grey", "rgba", "dither", "palette", "oklab"])
def test_counts_and_shares_are_the_labels_tallies(photo, case):
    image = photo[::2, ::2]
    kwargs = {}
    if case == "grey":
        image = image[..., 1]
    elif case == "rgba":
        image = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
        image[:30, :, 3] = 0
        image[30:60, :, 3] = 100
    elif case == "dither":
        kwargs = {"dither": True}
    elif case == "palette":
        kwargs = {"palette": np.array([[0, 0, 0], [255, 255, 255], [200, 20, 20]], np.uint8)}
    elif case == "oklab":
        kwargs = {"space": "oklab"}
    result = fastkm.quantize(image, 12, **kwargs)
    expected = np.bincount(result.labels.ravel(), minlength=result.n_colors)
    np.testing.assert_array_equal(result.counts, expected)
    assert result.counts.dtype == np.int64
    assert result.shares.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(result.shares, expected / result.labels.size)
    if case == "rgba":
        assert result.counts[0] == 30 * image.shape[1]  # the transparent entry


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_to_pil_is_a_palette_image_of_the_result(tmp_path, photo, channels):
    from PIL import Image

    image = photo[::4, ::4]
    alpha = np.where(np.arange(image.shape[1]) < 20, 0, 255).astype(np.uint8)[None, :].repeat(image.shape[0], 0)
    image = {1: image[..., 0], 2: np.dstack([image[..., 0], alpha]), 3: image, 4: np.dstack([image, alpha])}[channels]
    result = fastkm.quantize(image, 16)
    pil = result.to_pil()
    assert isinstance(pil, Image.Image) and pil.mode == "P" and pil.size == (image.shape[1], image.shape[0])
    np.testing.assert_array_equal(np.asarray(pil), result.labels)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    np.testing.assert_array_equal(np.asarray(pil.convert(mode)), result.image)
    pil.save(tmp_path / "out.png")  # transparency as the PNG's tRNS chunk
    with Image.open(tmp_path / "out.png") as reopened:
        np.testing.assert_array_equal(np.asarray(reopened.convert(mode)), result.image)


def test_to_pil_refuses_what_a_palette_image_cannot_hold(photo):
    with pytest.raises(fastkm.FastkmError, match="at most 256 colours and this result has 300"):
        fastkm.quantize(photo[:64, :64], 300).to_pil()
    with pytest.raises(fastkm.FastkmError, match="to_pil needs an image"):
        fastkm.quantize(photo.reshape(-1, 3), 4).to_pil()


def test_the_package_ships_its_type_hints():
    from importlib.resources import files

    assert files("fastkm").joinpath("py.typed").is_file()
    assert fastkm.quantize.__annotations__["return"] is fastkm.QuantizeResult


@pytest.mark.parametrize("random_state", [-1, 1.5, "0", True])
def test_kmeans_refuses_other_random_states_with_a_clear_message(random_state):
    with pytest.raises(fastkm.FastkmError, match="random_state=.* must be None, a non-negative integer"):
        fastkm.KMeans(2, random_state=random_state).fit(np.arange(12, dtype=np.uint8).reshape(4, 3))


def test_fastkm_io_loads_on_first_use_in_a_fresh_interpreter():
    """fastkm.io and ``from fastkm import io`` without importing fastkm.io first."""
    import subprocess
    import sys

    code = "import fastkm; fastkm.io.read_image; from fastkm import io; print(io.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "fastkm.io", done.stderr[-500:]


def test_frames_given_as_a_file_name_and_negative_mse_are_refused_clearly():
    with pytest.raises(fastkm.FastkmError, match=r"frames is a file name \('in.gif'\).*read_animation\('in.gif'\)"):
        fastkm.quantize_frames("in.gif", 4)
    for mse in (-1.0, float("nan")):
        with pytest.raises(fastkm.FastkmError, match="must be a number >= 0"):
            fastkm.psnr_from_mse(mse)
    assert fastkm.psnr_from_mse(0) == float("inf")
