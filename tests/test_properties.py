"""Property-based tests (hypothesis): kernels and quantize against the NumPy reference
on random shapes, channel counts, palette sizes, duplicate and all-equal pixels."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastkm
from fastkm import _kernels

from . import reference

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def points_and_centres(draw, max_channels=5):
    n_channels = draw(st.integers(1, max_channels))
    n_points = draw(st.integers(1, 600))
    n_values = draw(st.sampled_from([1, 2, 5, 256]))  # 1: all points equal
    values = draw(arrays(np.uint8, (n_points, n_channels), elements=st.integers(0, n_values - 1)))
    points = (values.astype(np.int64) * (255 // max(1, n_values - 1))).astype(np.uint8)
    n_centres = draw(st.integers(1, 24))
    centres = draw(arrays(np.uint8, (n_centres, n_channels)))
    return points, centres


@SETTINGS
@given(points_and_centres())
def test_assign_labels_property(data):
    points, centres = data
    labels = np.empty(len(points), np.int32)
    min_dist = np.empty(len(points), np.float32)
    _kernels.assign_labels(points, centres.astype(np.float32), labels, min_dist)
    expected_labels, expected_dist = reference.assign_labels(points, centres)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(min_dist, expected_dist)


@SETTINGS
@given(points_and_centres(), st.booleans())
def test_lloyd_step_property(data, integer_weights):
    points, centres = data
    rng = np.random.default_rng(len(points))
    weights = rng.integers(0, 9, len(points)) if integer_weights else rng.uniform(0, 3, len(points))
    k = len(centres)
    labels = np.full(len(points), -1, np.int32)
    min_dist = np.empty(len(points), np.float32)
    sums = np.empty((k, points.shape[1]), weights.dtype)
    counts = np.empty(k, weights.dtype)
    changed = _kernels.lloyd_step(
        _kernels.point_columns(points), points, weights, centres.astype(np.float32), labels, min_dist, sums, counts
    )
    expected_labels, _ = reference.assign_labels(points, centres)
    expected_sums, expected_counts = reference.cluster_sums(points, weights, expected_labels, k)
    np.testing.assert_array_equal(labels, expected_labels)
    assert changed == len(points)
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-12)
    np.testing.assert_allclose(counts, expected_counts, rtol=1e-12)


@SETTINGS
@given(points_and_centres(max_channels=3))
def test_colour_histogram_property(data):
    points, _ = data
    colours, counts = _kernels.colour_histogram(points)
    expected_colours, expected_counts = reference.colour_histogram(points)
    colours, counts = reference.sort_colours(colours, counts)
    np.testing.assert_array_equal(colours, expected_colours)
    np.testing.assert_array_equal(counts, expected_counts)


@st.composite
def small_images(draw):
    height = draw(st.integers(1, 24))
    width = draw(st.integers(1, 24))
    grey = draw(st.booleans())
    shape = (height, width) if grey else (height, width, 3)
    if grey and width in (3, 4):
        shape = (height, width, 1)  # (H, 3) and (H, 4) are lists of RGB and RGBA pixels
    n_values = draw(st.sampled_from([1, 3, 256]))
    image = draw(arrays(np.uint8, shape, elements=st.integers(0, n_values - 1)))
    return image


@SETTINGS
@given(small_images(), st.integers(1, 40), st.integers(0, 3))
def test_quantize_property(image, n_colors, seed):
    result = fastkm.quantize(image, n_colors, seed=seed)
    n_channels = 1 if image.ndim == 2 or image.shape[2] == 1 else 3
    pixels = image.reshape(-1, n_channels)
    n_distinct = len(np.unique(pixels, axis=0))
    assert result.n_distinct == n_distinct
    assert result.palette.shape == (min(n_colors, n_distinct), n_channels)
    assert result.image.shape == (image.shape[:2] if n_channels == 1 else image.shape)
    # Every pixel maps to its nearest palette entry, and the MSE is that of the image.
    expected_labels, _ = reference.assign_labels(pixels, result.palette)
    np.testing.assert_array_equal(result.labels.ravel(), expected_labels)
    assert result.mse == np.mean((image.reshape(result.image.shape).astype(np.float64) - result.image) ** 2)
    if n_distinct <= n_colors:
        assert result.mse == 0
        np.testing.assert_array_equal(result.image, image.reshape(result.image.shape))
