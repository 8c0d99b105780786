"""fastkm.KMeans inside scikit-learn: its own estimator checks, Pipeline, GridSearchCV,
cross_val_score, clone and check_is_fitted.  Skipped without scikit-learn."""

import numpy as np
import pytest

import fastkm

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402


@pytest.fixture(scope="module")
def pixels():
    """Four colour blobs: 400 RGB points, uint8."""
    rng = np.random.default_rng(0)
    centres = np.array([[30, 30, 30], [220, 40, 40], [40, 200, 60], [60, 60, 230]])
    points = centres[rng.integers(0, 4, 400)] + rng.integers(-12, 13, size=(400, 3))
    return points.astype(np.uint8)


# scikit-learn's checks feed their own data: mostly float64 drawn from normal or uniform
# distributions (negative values, fractions).  fastkm.KMeans clusters uint8 colours
# (0..255, at most 4 channels) and refuses any other dtype with a ValueError rather than
# round it, so these checks fail at that refusal and at nothing else (each was run and its
# error read).  The behaviours they test are tested on uint8 data below (pickling, an
# idempotent fit, parameters left untouched, sample weights, sample order, n_features_in_).
FLOAT_DATA = "fits float64 data; fastkm.KMeans takes uint8 colours only and refuses other dtypes"
EXPECTED_FAILED_CHECKS = {
    "check_estimators_dtypes": "fits float32 and int data of 5 features (at most 4 channels; float refused)",
    "check_complex_data": "expects the message 'Complex data not supported'; complex input is refused as a non-uint8 dtype",
    "check_dtype_object": "fits object-dtype data; refused as a non-uint8 dtype",
    "check_all_zero_sample_weights_error": FLOAT_DATA,
    "check_dict_unchanged": FLOAT_DATA,
    "check_dont_overwrite_parameters": FLOAT_DATA,
    "check_estimators_empty_data_messages": FLOAT_DATA,
    "check_estimators_fit_returns_self": FLOAT_DATA,
    "check_estimators_nan_inf": FLOAT_DATA,
    "check_estimators_overwrite_params": FLOAT_DATA,
    "check_estimators_pickle": FLOAT_DATA,
    "check_estimators_pickle(readonly_memmap=True)": FLOAT_DATA,
    "check_f_contiguous_array_estimator": FLOAT_DATA,
    "check_fit2d_1feature": FLOAT_DATA,
    "check_fit2d_1sample": FLOAT_DATA,
    "check_fit2d_predict1d": FLOAT_DATA,
    "check_fit_check_is_fitted": FLOAT_DATA,
    "check_fit_idempotent": FLOAT_DATA,
    "check_fit_score_takes_y": FLOAT_DATA,
    "check_methods_sample_order_invariance": FLOAT_DATA,
    "check_methods_subset_invariance": FLOAT_DATA,
    "check_n_features_in": FLOAT_DATA,
    "check_n_features_in_after_fitting": FLOAT_DATA,
    "check_pipeline_consistency": FLOAT_DATA,
    "check_positive_only_tag_during_fit": FLOAT_DATA,
    "check_readonly_memmap_input": FLOAT_DATA,
    "check_sample_weight_equivalence_on_dense_data": FLOAT_DATA,
    "check_sample_weights_list": FLOAT_DATA,
    "check_sample_weights_not_overwritten": FLOAT_DATA,
    "check_transformer_data_not_an_array": FLOAT_DATA,
    "check_transformer_general": FLOAT_DATA,
    "check_transformer_general(readonly_memmap=True)": FLOAT_DATA,
    "check_transformer_n_iter": FLOAT_DATA,
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks([fastkm.KMeans(n_clusters=3, random_state=0)], expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_tags_say_clusterer_and_transformer():
    from sklearn.base import is_clusterer
    from sklearn.utils import get_tags

    model = fastkm.KMeans(3)
    assert is_clusterer(model)
    tags = get_tags(model)
    assert tags.transformer_tags is not None and tags.input_tags.positive_only
    assert not tags.target_tags.required


def test_check_is_fitted_and_clone(pixels):
    model = fastkm.KMeans(n_clusters=4, random_state=0)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(model)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        model.predict(pixels)
    model.fit(pixels)
    check_is_fitted(model)
    assert model.n_features_in_ == 3
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "cluster_centers_")


def test_inside_a_pipeline(pixels):
    pipeline = make_pipeline(FunctionTransformer(lambda x: x), fastkm.KMeans(n_clusters=4, random_state=0))
    labels = pipeline.fit_predict(pixels)
    assert len(np.unique(labels)) == 4
    distances = Pipeline([("kmeans", fastkm.KMeans(n_clusters=4, random_state=0))]).fit_transform(pixels)
    assert distances.shape == (len(pixels), 4)
    np.testing.assert_array_equal(pipeline.predict(pixels), labels)


def test_grid_search_and_cross_val_score(pixels):
    search = GridSearchCV(fastkm.KMeans(random_state=0), {"n_clusters": [2, 4]}, cv=3).fit(pixels)
    # score is minus the inertia of held-out points: more clusters always fit them closer.
    assert search.best_params_ == {"n_clusters": 4}
    scores = cross_val_score(fastkm.KMeans(n_clusters=4, random_state=0), pixels, cv=4)
    assert scores.shape == (4,) and np.all(scores < 0)


@pytest.mark.parametrize("init, n_init, expected_starts", [("k-means++", "auto", 1), ("random", "auto", 10),
                                                             ("random", 3, 3)])
def test_n_init_auto_and_random_init(pixels, monkeypatch, init, n_init, expected_starts):
    calls = []
    original = fastkm._kmeans.random_centres
    monkeypatch.setattr(fastkm._kmeans, "random_centres", lambda *a: calls.append(1) or original(*a))
    model = fastkm.KMeans(n_clusters=4, init=init, n_init=n_init, random_state=0).fit(pixels)
    assert len(calls) == (expected_starts if init == "random" else 0)
    # Four well-separated blobs: every start finds them.
    reference = fastkm.KMeans(n_clusters=4, random_state=0).fit(pixels)
    assert model.inertia_ == pytest.approx(reference.inertia_)


def test_random_init_draws_distinct_points():
    rng = np.random.default_rng(1)
    points = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], np.uint8)
    centres = fastkm._kmeans.random_centres(points, np.array([100, 1, 1, 1]), 4, rng)
    assert len(np.unique(centres, axis=0)) == 4


def test_array_init_and_bad_init(pixels):
    init = np.array([[30, 30, 30], [220, 40, 40], [40, 200, 60], [60, 60, 230]], np.float64)
    model = fastkm.KMeans(n_clusters=4, init=init, n_init="auto").fit(pixels)
    assert np.abs(np.sort(model.cluster_centers_, axis=0) - np.sort(init, axis=0)).max() < 5
    with pytest.raises(fastkm.FastkmError, match="init='kmeans' must be 'k-means\\+\\+', 'random' or an array"):
        fastkm.KMeans(4, init="kmeans").fit(pixels)
    with pytest.raises(fastkm.FastkmError, match="n_init=0 must be a positive integer"):
        fastkm.KMeans(4, n_init=0).fit(pixels)


# --- what the float-data checks above test, on uint8 colours ---------------------------


def test_fit_returns_self_is_idempotent_and_leaves_parameters_alone(pixels):
    model = fastkm.KMeans(n_clusters=4, random_state=0)
    before = model.get_params()
    assert model.fit(pixels) is model
    first = model.cluster_centers_.copy(), model.labels_.copy()
    assert model.get_params() == before
    model.fit(pixels)
    np.testing.assert_array_equal(model.cluster_centers_, first[0])
    np.testing.assert_array_equal(model.labels_, first[1])


def test_pickle_round_trip_and_read_only_input(pixels):
    import pickle

    read_only = pixels.copy()
    read_only.flags.writeable = False
    model = fastkm.KMeans(n_clusters=4, random_state=0).fit(read_only)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(pixels), model.predict(pixels))
    np.testing.assert_array_equal(again.transform(pixels), model.transform(pixels))


def test_sample_order_subsets_and_feature_count(pixels):
    model = fastkm.KMeans(n_clusters=4, random_state=0).fit(pixels)
    order = np.random.default_rng(2).permutation(len(pixels))
    np.testing.assert_array_equal(model.predict(pixels[order]), model.predict(pixels)[order])
    np.testing.assert_array_equal(model.predict(pixels[:10]), model.predict(pixels)[:10])
    with pytest.raises(ValueError, match="X has 2 features, but KMeans is expecting 3 features as input"):
        model.predict(pixels[:, :2])


def test_integer_sample_weights_equal_repeated_points(pixels):
    weights = np.random.default_rng(3).integers(1, 4, len(pixels))
    weighted = fastkm.KMeans(n_clusters=4, random_state=0).fit(pixels, sample_weight=list(weights))
    repeated = fastkm.KMeans(n_clusters=4, random_state=0).fit(np.repeat(pixels, weights, axis=0))
    np.testing.assert_allclose(np.sort(weighted.cluster_centers_, axis=0), np.sort(repeated.cluster_centers_, axis=0))
    assert weighted.inertia_ == pytest.approx(repeated.inertia_)
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        fastkm.KMeans(n_clusters=2).fit(pixels, sample_weight=np.zeros(len(pixels)))


def test_sparse_input_is_refused_by_name(pixels):
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(ValueError, match="sparse input is not supported; pass X.toarray()"):
        fastkm.KMeans(n_clusters=2).fit(sparse.csr_array(pixels))
