"""Every kernel against its plain-NumPy reference in tests/reference.py."""

import time

import numba
import numpy as np
import pytest

from fastkm import _kernels, _kmeans
from fastkm import _pipeline
from fastkm._kernels import dither

from . import reference


def random_points(rng, n_points, n_channels, n_values=256):
    return rng.integers(0, n_values, size=(n_points, n_channels), dtype=np.uint8)


@pytest.mark.parametrize("n_channels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("n_centres", [1, 2, 7, 16, 33])
def test_assign_labels_integer_centres_match_reference_exactly(n_channels, n_centres):
    rng = np.random.default_rng(n_channels * 100 + n_centres)
    # Few distinct values: many exact ties, which must go to the lowest index.
    points = random_points(rng, 20000 + 37, n_channels, n_values=6) * np.uint8(40)
    centres = random_points(rng, n_centres, n_channels, n_values=6) * np.uint8(40)
    labels = np.empty(len(points), dtype=np.int32)
    min_dist = np.empty(len(points), dtype=np.float32)
    _kernels.assign_labels(points, centres.astype(np.float32), labels, min_dist)
    expected_labels, expected_dist = reference.assign_labels(points, centres)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(min_dist, expected_dist)


@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_assign_labels_float_centres_pick_a_nearest_centre(n_channels):
    rng = np.random.default_rng(7)
    points = random_points(rng, 30000, n_channels)
    centres = rng.uniform(0, 255, size=(64, n_channels)).astype(np.float32)
    labels = np.empty(len(points), dtype=np.int32)
    min_dist = np.empty(len(points), dtype=np.float32)
    _kernels.assign_labels(points, centres, labels, min_dist)
    expected_labels, expected_dist = reference.assign_labels(points, centres)
    # float32 rounding may break a near-tie the other way, never by more than rounding.
    chosen_dist = ((points.astype(np.float64) - centres[labels].astype(np.float64)) ** 2).sum(1)
    np.testing.assert_allclose(chosen_dist, expected_dist, atol=0.1)
    np.testing.assert_allclose(min_dist, expected_dist, atol=0.1)
    assert np.mean(labels == expected_labels) > 0.999


@pytest.mark.parametrize("labels_dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_assign_labels_writes_any_integer_dtype(labels_dtype):
    rng = np.random.default_rng(3)
    points = random_points(rng, 1000, 3)
    palette = random_points(rng, 200, 3)
    labels = np.empty(len(points), dtype=labels_dtype)
    _kernels.assign_labels(points, palette.astype(np.float32), labels, np.empty(len(points), np.float32))
    np.testing.assert_array_equal(labels, reference.assign_labels(points, palette)[0])


@pytest.mark.parametrize("n_points,n_centres", [(50, 5), (5000, 16), (2 * _kernels.SEED_BLOCK + 3, 12)])
def test_kmeans_plusplus_matches_reference(n_points, n_centres):
    rng = np.random.default_rng(n_centres)
    points = random_points(rng, n_points, 3)
    weights = rng.integers(1, 50, size=n_points).astype(np.int64)
    n_trials = 2 + int(np.log(n_centres))
    first, trials = rng.random(), rng.random((n_centres - 1, n_trials))
    chosen = _kernels.kmeans_plusplus(points, weights, first, trials)
    np.testing.assert_array_equal(chosen, reference.kmeans_plusplus(points, weights, first, trials))


def test_kmeans_plusplus_with_fewer_distinct_points_than_centres():
    points = np.array([[0, 0, 0], [255, 255, 255], [0, 0, 0]], dtype=np.uint8)
    weights = np.array([1, 1, 5], dtype=np.int64)
    rng = np.random.default_rng(0)
    first, trials = rng.random(), rng.random((4, 3))
    chosen = _kernels.kmeans_plusplus(points, weights, first, trials)
    np.testing.assert_array_equal(chosen, reference.kmeans_plusplus(points, weights, first, trials))
    # Both distinct colours are found; the rest repeat the heaviest point.
    assert {tuple(points[i]) for i in chosen} == {(0, 0, 0), (255, 255, 255)}


def test_kmeans_plusplus_never_draws_zero_weight_points():
    rng = np.random.default_rng(1)
    points = random_points(rng, 3000, 3)
    weights = np.zeros(3000, dtype=np.int64)
    weights[::7] = 3
    for seed in range(20):
        draws = np.random.default_rng(seed)
        chosen = _kernels.kmeans_plusplus(points, weights, draws.random(), draws.random((9, 4)))
        assert np.all(weights[chosen] > 0)


@pytest.mark.parametrize("n_channels", [1, 2, 3])
@pytest.mark.parametrize("n_values", [2, 17, 256])
def test_colour_histogram_matches_reference(n_channels, n_values):
    rng = np.random.default_rng(n_channels * 1000 + n_values)
    pixels = random_points(rng, 3 * _kernels.PIXEL_BLOCK + 11, n_channels, n_values)
    colours, counts = _kernels.colour_histogram(pixels)
    expected_colours, expected_counts = reference.colour_histogram(pixels)
    colours, counts = reference.sort_colours(colours, counts)
    np.testing.assert_array_equal(colours, expected_colours)
    np.testing.assert_array_equal(counts, expected_counts)


@pytest.mark.parametrize("n_channels", [1, 2, 3])
def test_weighted_colour_histogram_matches_reference(n_channels):
    rng = np.random.default_rng(n_channels)
    pixels = random_points(rng, 3 * _kernels.PIXEL_BLOCK + 11, n_channels, n_values=23)
    weights = rng.integers(0, 256, len(pixels)).astype(np.uint8)
    colours, counts, sums = _kernels.weighted_colour_histogram(pixels, weights)
    expected = reference.weighted_colour_histogram(pixels, weights)
    order = np.lexsort(colours.T[::-1])
    for got, want in zip((colours[order], counts[order], sums[order]), expected):
        np.testing.assert_array_equal(got, want)
    # Without weights: the same colours and counts, no sums.
    plain = _kernels.weighted_colour_histogram(pixels, np.zeros(0, np.uint8))
    np.testing.assert_array_equal(plain[0], colours)
    np.testing.assert_array_equal(plain[1], counts)
    assert plain[2].shape == (0,)


def test_colour_histogram_of_one_pixel():
    colours, counts = _kernels.colour_histogram(np.array([[1, 2, 3]], dtype=np.uint8))
    np.testing.assert_array_equal(colours, [[1, 2, 3]])
    np.testing.assert_array_equal(counts, [1])


@pytest.mark.parametrize("n_channels", [1, 3])
def test_remap_through_table_looks_up_packed_colours(n_channels):
    rng = np.random.default_rng(5)
    pixels = random_points(rng, 100000, n_channels)
    table = rng.integers(0, 256, size=256**n_channels).astype(np.uint8)
    labels = np.empty(len(pixels), dtype=np.uint8)
    _kernels.remap_through_table(pixels, table, labels)
    keys = np.zeros(len(pixels), dtype=np.int64)
    for j in range(n_channels):
        keys = keys * 256 + pixels[:, j]
    np.testing.assert_array_equal(labels, table[keys])


def test_squared_error_matches_reference():
    rng = np.random.default_rng(11)
    points = random_points(rng, 100000, 3)
    weights = rng.integers(1, 1000, size=len(points)).astype(np.int64)
    palette = random_points(rng, 40, 3)
    labels = rng.integers(0, 40, size=len(points)).astype(np.int32)
    assert _kernels.squared_error(points, weights, palette, labels) == reference.squared_error(
        points, weights, palette, labels
    )


def _run_all_kernels(seed):
    rng = np.random.default_rng(seed)
    pixels = random_points(rng, 4 * _kernels.PIXEL_BLOCK + 3, 3, n_values=64) * np.uint8(4)
    colours, counts = _kernels.colour_histogram(pixels)
    chosen = _kernels.kmeans_plusplus(colours, counts, rng.random(), rng.random((15, 4)))
    centres = colours[chosen].astype(np.float32) + np.float32(0.37)
    labels = np.empty(len(colours), np.int32)
    min_dist = np.empty(len(colours), np.float32)
    _kernels.assign_labels(colours, centres, labels, min_dist)
    # Float weights: the partial sums must still merge in the same order.
    step_labels = np.zeros(len(colours), np.int32)
    step_dist = np.empty(len(colours), np.float32)
    sums = np.empty((16, 3), np.float64)
    weights = counts.astype(np.float64) * 0.1
    totals = np.empty(16, np.float64)
    changed = _kernels.lloyd_step(
        _kernels.point_columns(colours), colours, weights, centres, step_labels, step_dist, sums, totals
    )
    return colours, counts, chosen, labels, min_dist, step_labels, step_dist, sums, totals, np.array(changed)


def test_kernels_give_identical_results_for_1_and_2_threads():
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run_all_kernels(42)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _run_all_kernels(42)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)  # bit-identical, float sums included


@pytest.mark.parametrize("n_blocks", [0, 1, 2, 7, 48])
def test_run_blocks_dynamic_runs_every_block_once(n_blocks):
    from fastkm._kernels import _threads

    ran = []

    def kernel(first, stop, out):
        for block in range(first, stop):
            time.sleep(0.001 * (block % 3))  # uneven blocks: threads take different counts
            out.append(block)

    _threads.run_blocks_dynamic(kernel, n_blocks, ran)
    assert sorted(ran) == list(range(n_blocks))


@pytest.mark.parametrize(("n_items", "dtype"), [(10, np.uint8), (1 << 24, np.uint8), (1 << 24, np.uint32)])
def test_zeroed_pages_are_zeroed_writable_arrays(n_items, dtype):
    table = _kernels.zeroed_pages(n_items, dtype)
    assert table.shape == (n_items,) and table.dtype == dtype and table.flags.writeable and table.flags.c_contiguous
    assert not table.any()
    table[[0, n_items - 1]] = 7
    assert table.sum() == 14


@pytest.mark.parametrize("n_channels", [1, 2, 3])
def test_fill_label_table_matches_fancy_indexing(n_channels):
    rng = np.random.default_rng(n_channels)
    colours, _ = reference.colour_histogram(random_points(rng, 5000, n_channels))
    labels = rng.integers(1, 200, size=len(colours)).astype(np.uint8)
    table = np.zeros(256**n_channels, dtype=np.uint8)
    _kernels.fill_label_table(colours, labels, table)
    expected = np.zeros_like(table)
    keys = np.zeros(len(colours), dtype=np.int64)
    for j in range(n_channels):
        keys = keys * 256 + colours[:, j]
    expected[keys] = labels
    np.testing.assert_array_equal(table, expected)


@pytest.mark.parametrize("n_points", [1, 3 * _kernels.ASSIGN_TILE * _kernels.ASSIGN_TILES_PER_TASK + 17])
@pytest.mark.parametrize("n_channels", [1, 3, 4])
@pytest.mark.parametrize("weights_dtype", [np.int64, np.float64])
def test_lloyd_step_matches_reference_assign_and_sums(n_points, n_channels, weights_dtype):
    rng = np.random.default_rng(n_channels)
    points = random_points(rng, n_points, n_channels, n_values=8) * np.uint8(30)
    weights = rng.integers(1, 100, size=n_points).astype(weights_dtype)
    centres = random_points(rng, 12, n_channels, n_values=8) * np.uint8(30)
    previous = rng.integers(0, 12, size=n_points).astype(np.int32)
    labels = previous.copy()
    min_dist = np.empty(n_points, np.float32)
    sums = np.empty((12, n_channels), weights_dtype)
    counts = np.empty(12, weights_dtype)
    columns = _kernels.point_columns(points)
    assert columns.shape[1] % _kernels.ASSIGN_TILE == 0
    np.testing.assert_array_equal(columns[:, :n_points], points.T)
    n_changed = _kernels.lloyd_step(
        columns, points, weights, centres.astype(np.float32), labels, min_dist, sums, counts
    )
    expected_labels, expected_dist = reference.assign_labels(points, centres)
    expected_sums, expected_counts = reference.cluster_sums(points, weights, expected_labels, 12)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(min_dist, expected_dist)
    assert n_changed == np.count_nonzero(previous != expected_labels)
    if weights_dtype is np.int64:
        np.testing.assert_array_equal(sums, expected_sums)
        np.testing.assert_array_equal(counts, expected_counts)
    else:
        np.testing.assert_allclose(sums, expected_sums, rtol=1e-12)
        np.testing.assert_allclose(counts, expected_counts, rtol=1e-12)


@pytest.mark.parametrize("n_channels", [1, 3])
def test_palette_sums_match_reference_and_add_up_over_any_split(n_channels):
    rng = np.random.default_rng(7 + n_channels)
    colours = random_points(rng, 5000, n_channels, n_values=16) * np.uint8(17)
    counts = rng.integers(1, 50, size=5000).astype(np.int64)
    palette = random_points(rng, 9, n_channels, n_values=16) * np.uint8(17)
    sums, cluster_counts, error = _kmeans.palette_sums(colours, counts, palette)
    labels, _ = reference.assign_labels(colours, palette)
    expected_sums, expected_counts = reference.cluster_sums(colours, counts, labels, 9)
    np.testing.assert_array_equal(sums, expected_sums)
    np.testing.assert_array_equal(cluster_counts, expected_counts)
    assert error == reference.squared_error(colours, counts, palette, labels)
    parts = [_kmeans.palette_sums(colours[s], counts[s], palette) for s in (slice(0, 1234), slice(1234, None))]
    np.testing.assert_array_equal(parts[0][0] + parts[1][0], sums)
    np.testing.assert_array_equal(parts[0][1] + parts[1][1], cluster_counts)
    assert parts[0][2] + parts[1][2] == error


@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_gather_rows_matches_fancy_indexing(n_channels):
    rng = np.random.default_rng(n_channels)
    pixels = random_points(rng, 200000, n_channels)
    indices = rng.integers(0, len(pixels), size=150000)
    np.testing.assert_array_equal(_kernels.gather_rows(pixels, indices), pixels[indices])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gather_rows_keeps_the_dtype_with_uint32_indices(dtype):
    # A dithered OKLab fit's undithered labels: each pixel's colour's label.
    rng = np.random.default_rng(5)
    colour_labels = rng.integers(0, np.iinfo(dtype).max, size=(3000, 1)).astype(dtype)
    rows = rng.integers(0, 3000, size=70001).astype(np.uint32)
    gathered = _kernels.gather_rows(colour_labels, rows)
    assert gathered.dtype == dtype
    np.testing.assert_array_equal(gathered, colour_labels[rows])


@pytest.mark.parametrize(("n_keys", "high", "top"), [
    (0, 10, 0), (1, 10, 0), (7, 3, 0), (70000, 50, 0), (200001, 2**32 - 1, 0), (3 * 65536 + 5, 2**24, 255),
])
def test_packed_unique_matches_numpys_unique(n_keys, high, top):
    # Blocks of keys, runs crossing block boundaries, a byte that never varies (skipped).
    rng = np.random.default_rng(n_keys)
    keys = rng.integers(0, high, n_keys, dtype=np.uint64).astype(np.uint32) | np.uint32(top << 24)
    unique, inverse, counts = _kernels.packed_unique(keys)
    expected = np.unique(keys, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(unique, expected[0])
    np.testing.assert_array_equal(inverse, expected[1].ravel())
    np.testing.assert_array_equal(counts, expected[2])
    assert inverse.dtype == counts.dtype == np.int64


@pytest.mark.parametrize(("n_channels", "n_entries"), [(1, 5), (3, 3), (3, 9), (3, 16), (3, 17), (3, 40), (3, 300),
                                                       (4, 12)])
@pytest.mark.parametrize("with_map", [False, True])
@pytest.mark.parametrize("good_guesses", [False, True])
def test_floyd_steinberg_matches_reference(n_channels, n_entries, with_map, good_guesses):
    # 3 entries: a block mostly padding; 16: one block holds the palette; 17 and 40: the
    # walk goes on past the block; 300: more than a neighbour list holds.  4 strips: two
    # groups of lanes.
    check_floyd_steinberg(n_channels, n_entries, with_map, good_guesses, 3 * dither.STRIP_ROWS + 5, 13)


@pytest.mark.parametrize("n_strips", [1, 3, 5])
def test_floyd_steinberg_matches_reference_with_a_lane_left_over(n_strips):
    # An odd number of strips: the last group has a lane with no strip (and with one strip,
    # the first strip's lane, which starts without warm-up, is alone).
    check_floyd_steinberg(3, 24, True, True, (n_strips - 1) * dither.STRIP_ROWS + 9, 7)


@pytest.mark.parametrize("n_listed", [10, 16, 20])
def test_floyd_steinberg_with_neighbour_lists_shorter_than_the_palette(n_listed):
    # Lists of fewer entries than the palette (the pipeline lists up to 256): where a
    # list ends before the stopping test, every entry is tried, inside or past a block.
    rng = np.random.default_rng(n_listed)
    height, width, n_entries = dither.STRIP_ROWS + 9, 11, 40
    points = np.clip(rng.normal(128, 70, (height * width, 3)), 0, 255).astype(np.uint8)
    palette = rng.uniform(0, 255, (n_entries, 3)).astype(np.float32)
    guesses = rng.integers(0, n_entries, height * width).astype(np.int32)
    neighbours, gaps = _pipeline.neighbour_lists(palette)
    neighbours, gaps = np.ascontiguousarray(neighbours[:, :n_listed]), np.ascontiguousarray(gaps[:, :n_listed])
    labels = np.zeros(height * width, np.uint8)
    _kernels.floyd_steinberg(points, width, palette, 0.9, np.zeros(0, np.uint8), np.float32(600.0),
                             np.zeros(0, bool), guesses, neighbours, gaps, _pipeline.guess_radius(gaps), labels)
    expected = reference.floyd_steinberg(points, width, palette, 0.9, None, 600.0, None, guesses,
                                         dither.STRIP_ROWS, dither.WARMUP_ROWS)
    np.testing.assert_array_equal(labels, expected)


@numba.njit
def nearest_in_block(target, block_points, first):
    return dither._nearest_in_block(target[0], target[1], target[2], block_points, first)


def test_nearest_in_block_matches_reference():
    rng = np.random.default_rng(3)
    n_blocks, size = 40, dither.BLOCK
    # Few distinct coordinates: ties, which must report the first position and their count.
    block_points = (rng.integers(0, 4, (n_blocks, 3, size)) * 60.0).astype(np.float32)
    for block in range(n_blocks):
        for target in np.concatenate([rng.uniform(-30, 290, (8, 3)), rng.integers(0, 4, (8, 3)) * 60.0]).astype(np.float32):
            points = block_points[block].T  # (size, 3)
            dist = np.zeros(size, np.float32)
            for j in range(3):
                dist += (target[j] - points[:, j]) ** 2
            best, position, n_positions = nearest_in_block(target, block_points.ravel(), block * size)
            assert best == dist.min()
            assert position == np.argmin(dist)
            assert n_positions == np.count_nonzero(dist == dist.min())


def test_neighbour_blocks_hold_each_entrys_nearest_first():
    rng = np.random.default_rng(4)
    for n_entries in (3, 16, 40):
        palette = rng.uniform(0, 255, (n_entries, 3)).astype(np.float32)
        neighbours, _ = _pipeline.neighbour_lists(palette)
        block_points, block_entries = dither.neighbour_blocks(palette, neighbours)
        block_points = block_points.reshape(n_entries, 3, dither.BLOCK)
        block_entries = block_entries.reshape(n_entries, dither.BLOCK)
        n_listed = min(n_entries, dither.BLOCK)
        np.testing.assert_array_equal(block_entries[:, :n_listed], neighbours[:, :n_listed])
        np.testing.assert_array_equal(block_points[:, :, :n_listed].transpose(0, 2, 1), palette[neighbours[:, :n_listed]])
        assert np.all(block_points[:, :, n_listed:] >= 1e9)  # padding: never the nearest


@pytest.mark.parametrize(("height", "width"), [(1, 1), (5, 1), (dither.STRIP_ROWS + 3, 1), (7, 2), (2, 40)])
def test_floyd_steinberg_matches_reference_on_narrow_and_short_images(height, width):
    # One or two columns: the padding columns on both sides hold the row below's first and
    # last terms; fewer rows than a strip's warm-up.
    for n_channels in (1, 3):
        check_floyd_steinberg(n_channels, 9, True, False, height, width)


def check_floyd_steinberg(n_channels, n_entries, with_map, good_guesses, height, width):
    rng = np.random.default_rng(n_channels + 10 * n_entries + 2 * with_map + good_guesses + height * width)
    # A smooth ramp with noise: errors carry over many pixels, and out of the cube.
    ramp = np.linspace(-20, 275, height * width)[:, None] + rng.normal(0, 20, (height * width, n_channels))
    points = np.clip(ramp, 0, 255).astype(np.uint8)
    palette = rng.uniform(0, 255, size=(n_entries, n_channels)).astype(np.float32)
    palette[-1] = palette[0]  # a duplicate entry: ties go to the lowest index
    strength_map = rng.integers(0, 256, height * width).astype(np.uint8) if with_map else np.zeros(0, np.uint8)
    skip = rng.random(height * width) < 0.1
    if good_guesses:
        guesses = reference.assign_labels(points, palette)[0].astype(np.int32)
    else:  # a guess starts the search, and is kept only where no error is applied
        guesses = rng.integers(0, n_entries, height * width).astype(np.int32)
    neighbours, gaps = _pipeline.neighbour_lists(palette)
    labels = np.full(height * width, 999, np.uint16)
    max_error = 600.0
    squared_error = _kernels.floyd_steinberg(
        points, width, palette, 0.9, strength_map, np.float32(max_error), skip, guesses, neighbours, gaps,
        _pipeline.guess_radius(gaps), labels, squared_error=True,
    )
    expected = reference.floyd_steinberg(
        points, width, palette, 0.9, strength_map if with_map else None, max_error, skip, guesses,
        dither.STRIP_ROWS, dither.WARMUP_ROWS,
    )
    np.testing.assert_array_equal(labels[~skip], expected[~skip])
    assert np.all(labels[skip] == 999)  # skipped pixels keep their labels
    # From each pixel's value (not its target) to its entry, float32 per channel, over
    # the pixels not skipped.
    gaps_to_entries = points[~skip].astype(np.float32) - palette[expected[~skip]]
    np.testing.assert_allclose(squared_error, (gaps_to_entries * gaps_to_entries).astype(np.float64).sum(), rtol=1e-12)


@pytest.mark.parametrize("n_channels", [1, 3])
def test_floyd_steinberg_reads_only_the_palettes_channels(n_channels):
    # Per-pixel OKLab codes come as 4 bytes a pixel: the columns past the palette's are
    # never read.
    rng = np.random.default_rng(7)
    height, width = dither.STRIP_ROWS + 9, 21
    points = random_points(rng, height * width, n_channels)
    wide = np.concatenate([points, random_points(rng, height * width, 4 - n_channels)], axis=1)
    palette = rng.uniform(0, 255, size=(12, n_channels)).astype(np.float32)
    guesses = reference.assign_labels(points, palette)[0].astype(np.int32)
    neighbours, gaps = _pipeline.neighbour_lists(palette)
    results = []
    for given in (points, wide):
        labels = np.empty(height * width, np.int32)
        _kernels.floyd_steinberg(
            given, width, palette, 0.9, np.zeros(0, np.uint8), np.float32(600.0), np.zeros(0, np.bool_), guesses,
            neighbours, gaps, _pipeline.guess_radius(gaps), labels,
        )
        results.append(labels)
    np.testing.assert_array_equal(results[0], results[1])
    with pytest.raises(ValueError):
        _kernels.floyd_steinberg(
            points[:, :0], width, palette, 0.9, np.zeros(0, np.uint8), np.float32(600.0), np.zeros(0, np.bool_),
            guesses, neighbours, gaps, _pipeline.guess_radius(gaps), labels,
        )


@pytest.mark.parametrize("n_channels", [3, 4])
def test_floyd_steinberg_through_rows_of_distinct_values(n_channels):
    # An OKLab fit passes its distinct colours' codes and each pixel's row of them.
    rng = np.random.default_rng(11)
    height, width = dither.STRIP_ROWS + 9, 23
    values = random_points(rng, 50, n_channels)
    rows = rng.integers(0, len(values), height * width).astype(np.uint32)
    palette = rng.uniform(0, 255, size=(9, n_channels)).astype(np.float32)
    guesses = reference.assign_labels(values[rows], palette)[0].astype(np.int32)
    neighbours, gaps = _pipeline.neighbour_lists(palette)
    results = []
    for points, given_rows in ((values[rows], None), (values, rows)):
        labels = np.empty(height * width, np.int32)
        _kernels.floyd_steinberg(
            points, width, palette, 0.9, np.zeros(0, np.uint8), np.float32(600.0), np.zeros(0, np.bool_), guesses,
            neighbours, gaps, _pipeline.guess_radius(gaps), labels, given_rows,
        )
        results.append(labels)
    np.testing.assert_array_equal(results[0], results[1])


def test_floyd_steinberg_zero_level_keeps_the_undithered_labels():
    rng = np.random.default_rng(5)
    points = random_points(rng, 40 * 30, 3)
    palette = rng.uniform(0, 255, size=(16, 3)).astype(np.float32)
    undithered, _ = reference.assign_labels(points, palette)
    labels = np.empty(len(points), np.int32)
    neighbours, gaps = _pipeline.neighbour_lists(palette)
    _kernels.floyd_steinberg(
        points, 40, palette, 0.0, np.zeros(0, np.uint8), np.float32(100.0), np.zeros(0, np.bool_),
        undithered.astype(np.int32), neighbours, gaps, _pipeline.guess_radius(gaps), labels,
    )
    np.testing.assert_array_equal(labels, undithered)


def test_neighbour_lists_put_each_entry_first_then_by_distance():
    palette = np.array([[0, 0, 0], [10, 0, 0], [0, 0, 0], [3, 4, 0]], np.float32)
    neighbours, gaps = _pipeline.neighbour_lists(palette)
    np.testing.assert_array_equal(neighbours[:, 0], [0, 1, 2, 3])  # itself, even when duplicated
    np.testing.assert_array_equal(neighbours[0], [0, 2, 3, 1])
    np.testing.assert_allclose(gaps[0], [0, 0, 5, 10])
    np.testing.assert_array_equal(_pipeline.guess_radius(gaps)[[0, 3]], [0, np.float32(0.98 * 0.25 * 25)])


@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_contrast_map_matches_reference(n_channels):
    rng = np.random.default_rng(n_channels)
    height, width = 2 * _kernels.MAP_ROWS + 3, 29
    # Smooth and busy parts side by side.
    smooth = np.linspace(0, 255, height * width).reshape(height, width, 1).repeat(n_channels, axis=2)
    noisy = smooth + rng.normal(0, 40, smooth.shape) * (np.arange(width) > width // 2)[None, :, None]
    pixels = np.clip(noisy, 0, 255).astype(np.uint8).reshape(-1, n_channels)
    importance = np.empty(height * width, np.uint8)
    _kernels.contrast_map(pixels, width, _pipeline.IMPORTANCE_OF_CONTRAST, importance)
    np.testing.assert_array_equal(importance, reference.contrast_map(pixels, width, _pipeline.IMPORTANCE_OF_CONTRAST))
    grid = importance.reshape(height, width)
    # Rounding the ramp to integers leaves second differences of 1 or 2.
    assert grid[:, 2 : width // 2 - 1].min() >= 240 and np.median(grid[:, width // 2 + 2 :]) < 150


@pytest.mark.parametrize("take_max", [False, True])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 7), (6, 1), (37, 11)])
def test_cross_filter_matches_reference(take_max, height, width):
    source = np.random.default_rng(height * width).integers(0, 256, height * width).astype(np.uint8)
    out = np.empty_like(source)
    _kernels.cross_filter(source, width, take_max, out)
    np.testing.assert_array_equal(out, reference.cross_filter(source, width, take_max))


@pytest.mark.parametrize("with_importance", [False, True])
@pytest.mark.parametrize("width", [1, 2, 31])
def test_dither_map_matches_reference(with_importance, width):
    # One and two columns: every run ends at the row's end.
    rng = np.random.default_rng(with_importance)
    height = 2 * _kernels.MAP_ROWS + 5
    # Bands of one label broken by noise: long runs, short runs and lone pixels.
    labels = (np.arange(height * width) // 97 % 5).astype(np.uint8)
    labels[rng.random(labels.size) < 0.2] = 7
    importance = rng.integers(85, 256, labels.size).astype(np.uint8) if with_importance else np.zeros(0, np.uint8)
    strength = np.empty(labels.size, np.uint8)
    _kernels.dither_map(labels, width, importance, _pipeline.STRENGTH_OF_AGREEMENT, strength)
    expected = reference.dither_map(
        labels, width, importance if with_importance else None, _pipeline.STRENGTH_OF_AGREEMENT
    )
    np.testing.assert_array_equal(strength, expected)


def test_dither_map_is_full_in_bands_and_a_third_at_lone_pixels():
    labels = np.zeros((9, 40), np.uint8)
    labels[4, 20] = 1
    strength = np.empty(labels.size, np.uint8)
    _kernels.dither_map(labels.ravel(), 40, np.zeros(0, np.uint8), _pipeline.STRENGTH_OF_AGREEMENT, strength)
    strength = strength.reshape(labels.shape)
    assert strength[0, 0] >= 250 and strength[4, 20] == 85


@pytest.mark.parametrize("n_dims", [1, 3])
def test_indexed_distance_sum_matches_reference(n_dims):
    rng = np.random.default_rng(n_dims)
    colour_points, palette_points = rng.normal(size=(900, n_dims)), rng.normal(size=(40, n_dims))
    index = rng.integers(0, 900, size=70000).astype(np.uint32)
    labels = rng.integers(0, 40, size=70000).astype(np.uint16)
    total = _kernels.indexed_distance_sum(index, labels, colour_points, palette_points)
    assert total == pytest.approx(reference.indexed_distance_sum(index, labels, colour_points, palette_points), rel=1e-12)


def test_squared_error_with_unit_weights():
    rng = np.random.default_rng(3)
    points = random_points(rng, 50000, 4)
    palette = random_points(rng, 7, 4)
    labels = rng.integers(0, 7, size=len(points))
    expected = reference.squared_error(points, np.ones(len(points), np.int64), palette, labels)
    assert _kernels.squared_error(points, np.zeros(0, np.int64), palette, labels) == expected


@pytest.mark.parametrize("cell_bits", [2, 3, 5])
@pytest.mark.parametrize("weights_dtype", [np.int64, np.float64])
def test_cell_sort_matches_reference(cell_bits, weights_dtype):
    rng = np.random.default_rng(cell_bits)
    points = random_points(rng, 10007, 3)
    weights = rng.integers(1, 1000, size=len(points)).astype(weights_dtype)
    sorted_points, sorted_weights, columns, start, order, norm_total = _kernels.cell_sort(points, weights, cell_bits)
    expected_points, expected_weights, expected_order, expected_norm = reference.cell_sort(points, weights, cell_bits)
    np.testing.assert_array_equal(sorted_points, expected_points)
    np.testing.assert_array_equal(sorted_weights, expected_weights)
    np.testing.assert_array_equal(order, expected_order)
    np.testing.assert_array_equal(columns[:, : len(points)], expected_points.T)
    assert norm_total == expected_norm
    assert start[0] == 0 and start[-1] == len(points) and np.all(np.diff(start) >= 0)


def _cell_step(points, weights, centres, previous, n_clusters, cell_bits):
    """cell_lloyd_step through sort_into_cells; labels and sum changes in the original order."""
    cells = _kmeans.sort_into_cells(points, weights, cell_bits)
    labels = previous[cells.order].copy()
    sums = np.empty((n_clusters, 3), weights.dtype)
    counts = np.empty(n_clusters, weights.dtype)
    n_changed = _kernels.cell_lloyd_step(
        cells.columns, cells.points, cells.weights, cells.corners, cells.start, cells.task_cells, cells.bits,
        centres.astype(np.float32), labels, sums, counts,
    )
    unsorted = np.empty_like(labels)
    unsorted[cells.order] = labels
    return unsorted, sums, counts, n_changed


@pytest.mark.parametrize("cell_bits", [2, 3, 4, 5])
@pytest.mark.parametrize("n_centres", [1, 2, 16, 64, 300])
def test_cell_lloyd_step_labels_match_reference_exactly(cell_bits, n_centres):
    rng = np.random.default_rng(cell_bits * 1000 + n_centres)
    # Few distinct values: many exact ties, which must still go to the lowest index.
    points = random_points(rng, 3 * _kmeans.CELL_TASK_POINTS + 11, 3, n_values=18) * np.uint8(15)
    weights = rng.integers(1, 100, size=len(points)).astype(np.int64)
    centres = random_points(rng, n_centres, 3, n_values=18) * np.uint8(15)
    labels, sums, counts, n_changed = _cell_step(
        points, weights, centres, np.full(len(points), -1, np.int32), n_centres, cell_bits
    )
    expected_labels, _ = reference.assign_labels(points, centres)
    np.testing.assert_array_equal(labels, expected_labels)
    # From no labels, the changes are the full sums.
    expected_sums, expected_counts = reference.cluster_sums(points, weights, expected_labels, n_centres)
    np.testing.assert_array_equal(sums, expected_sums)
    np.testing.assert_array_equal(counts, expected_counts)
    assert n_changed == len(points)


@pytest.mark.parametrize("weights_dtype", [np.int64, np.float64])
def test_cell_lloyd_step_moves_only_changed_points(weights_dtype):
    rng = np.random.default_rng(5)
    points = random_points(rng, 20000, 3)
    weights = rng.integers(1, 100, size=len(points)).astype(weights_dtype)
    # Float centres: labels must be those of assign_labels (same float32 arithmetic).
    centres = rng.uniform(0, 255, size=(40, 3)).astype(np.float32)
    previous = rng.integers(0, 40, size=len(points)).astype(np.int32)
    labels, sum_changes, count_changes, n_changed = _cell_step(points, weights, centres, previous, 40, 4)
    expected_labels = np.empty(len(points), np.int32)
    _kernels.assign_labels(points, centres, expected_labels, np.empty(len(points), np.float32))
    np.testing.assert_array_equal(labels, expected_labels)
    assert n_changed == np.count_nonzero(previous != expected_labels)
    before = reference.cluster_sums(points, weights, previous, 40)
    after = reference.cluster_sums(points, weights, expected_labels, 40)
    if weights_dtype is np.int64:
        np.testing.assert_array_equal(sum_changes, after[0] - before[0])
        np.testing.assert_array_equal(count_changes, after[1] - before[1])
    else:
        np.testing.assert_allclose(sum_changes, after[0] - before[0], atol=1e-6)
        np.testing.assert_allclose(count_changes, after[1] - before[1], atol=1e-9)


def test_cell_lloyd_step_is_identical_for_1_and_2_threads():
    rng = np.random.default_rng(9)
    points = random_points(rng, 5 * _kmeans.CELL_TASK_POINTS, 3)
    weights = rng.random(len(points)) * 10  # float sums: the merge order matters
    centres = rng.uniform(0, 255, size=(64, 3)).astype(np.float32)
    previous = np.full(len(points), -1, np.int32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _cell_step(points, weights, centres, previous, 64, 4)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _cell_step(points, weights, centres, previous, 64, 4)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_clusters", [3, 16, 64])
def test_lloyd_in_cells_follows_plain_lloyd(n_clusters):
    rng = np.random.default_rng(n_clusters)
    colours, counts = _kernels.colour_histogram(random_points(rng, 200000, 3, n_values=64) * np.uint8(4))
    start = colours[rng.choice(len(colours), n_clusters, replace=False)].astype(np.float64)
    plain = _kmeans.lloyd(colours, counts, start, max_iter=30, tol_abs=0.0)
    point_set = _kmeans.PointSet(colours, counts, n_clusters)
    in_cells = point_set.lloyd(start, max_iter=30, tol_abs=0.0)
    assert in_cells.n_iter == plain.n_iter
    np.testing.assert_array_equal(in_cells.centres, plain.centres)
    np.testing.assert_array_equal(point_set.original_order(in_cells.labels), plain.labels)
    assert in_cells.inertia == pytest.approx(plain.inertia, rel=1e-6)


@pytest.mark.parametrize("n_clusters", [5, 32])
def test_overrelaxed_lloyd_ends_at_a_lloyd_fixed_point(n_clusters):
    rng = np.random.default_rng(50 + n_clusters)
    colours, counts = _kernels.colour_histogram(random_points(rng, 100000, 3, n_values=48) * np.uint8(5))
    start = colours[rng.choice(len(colours), n_clusters, replace=False)].astype(np.float64)
    point_set = _kmeans.PointSet(colours, counts, n_clusters)
    run = point_set.lloyd(start, max_iter=500, tol_abs=0.0, final_assign=False, overrelax=True)
    assert run.n_iter < 500
    points = point_set.points
    # Every point labelled with a nearest centre (up to float32 rounding of distances) ...
    dist = ((points.astype(np.float64)[:, None, :] - run.centres[None, :, :]) ** 2).sum(axis=2)
    assert np.all(dist[np.arange(len(points)), run.labels] <= dist.min(axis=1) + 1e-3)
    # ... every centre the mean of its points, and sums and inertia those of the labels.
    sums, weights = reference.cluster_sums(points, point_set.weights, run.labels, n_clusters)
    np.testing.assert_array_equal(run.sums, sums)
    np.testing.assert_array_equal(run.counts, weights)
    np.testing.assert_allclose(run.centres, sums / weights[:, None], rtol=1e-9)
    inertia = float(point_set.weights @ dist[np.arange(len(points)), run.labels])
    assert run.inertia == pytest.approx(inertia, rel=1e-9)


@pytest.mark.parametrize("n_channels", [3, 4])
def test_point_set_nearest_matches_nearest_entries(n_channels):
    rng = np.random.default_rng(30 + n_channels)
    points = random_points(rng, 3 * _kmeans.CELL_TASK_POINTS + 5, n_channels, n_values=20) * np.uint8(13)
    weights = rng.integers(1, 9, size=len(points)).astype(np.int64)
    point_set = _kmeans.PointSet(points, weights, 50)
    for centres in (
        rng.uniform(0, 255, size=(50, n_channels)).astype(np.float32),
        (random_points(rng, 50, n_channels, n_values=20) * np.uint8(13)).astype(np.float32),  # exact ties
    ):
        np.testing.assert_array_equal(point_set.nearest(centres), _kmeans.nearest_entries(points, centres))


def _blob(rng, centre, n_points, spread):
    return np.clip(np.asarray(centre) + rng.integers(-spread, spread + 1, size=(n_points, 3)), 0, 255).astype(np.uint8)


def test_split_in_two_separates_two_blobs():
    rng = np.random.default_rng(3)
    points = np.concatenate([_blob(rng, (20, 30, 40), 500, 6), _blob(rng, (200, 180, 160), 300, 6)])
    weights = rng.integers(1, 50, size=len(points)).astype(np.float64)
    halves = _kmeans._split_in_two(points, weights, np.arange(len(points)))
    first = slice(0, 500)
    second = slice(500, None)
    expected = [weights[part] @ points[part] / weights[part].sum() for part in (first, second)]
    order = np.argsort(halves[:, 0])
    np.testing.assert_allclose(halves[order], expected, rtol=1e-12)
    assert _kmeans._split_in_two(np.full((4, 3), 7, np.uint8), np.ones(4), np.arange(4)) is None


@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_split_kernels_match_reference(n_channels):
    rng = np.random.default_rng(20 + n_channels)
    points = random_points(rng, 3000, n_channels)
    weights = rng.integers(1, 50, size=len(points)).astype(np.float64)
    members = np.flatnonzero(rng.random(len(points)) < 0.4)
    np.testing.assert_allclose(
        _kernels.weighted_scatter(points, weights, members),
        reference.weighted_scatter(points, weights, members),
        rtol=1e-10,
    )
    axis = rng.normal(size=n_channels)
    halves = np.empty((2, n_channels))
    for n_iter in (1, 6):
        assert _kernels.split_in_two(points, weights, members, axis, n_iter, halves)
        np.testing.assert_allclose(halves, reference.split_in_two(points, weights, members, axis, n_iter), rtol=1e-10)
    # One colour: nothing to split; no members: nothing either.
    same = np.zeros_like(points)
    assert not _kernels.split_in_two(same, weights, members, axis, 6, halves)
    assert not _kernels.split_in_two(points, weights, members[:0], axis, 6, halves)


@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_point_errors_match_reference(n_channels):
    rng = np.random.default_rng(30 + n_channels)
    points = random_points(rng, 2000, n_channels)
    weights = rng.integers(1, 50, size=len(points)).astype(np.float64)
    centres = rng.uniform(0, 255, size=(9, n_channels))
    labels = rng.integers(0, 8, size=len(points)).astype(np.int32)  # centre 8 has no points
    out = np.empty(len(points)), np.empty(9), np.empty(9)
    _kernels.point_errors(points, weights, centres, labels, *out)
    for got, expected in zip(out, reference.point_errors(points, weights, centres, labels)):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_split_proposal_moves_a_redundant_centre_into_the_widest_cluster():
    # Two centres on two small nearby blobs, one on a large cluster of two blobs: the
    # fix is to merge the small pair and split the large cluster, which the first
    # (deterministic) proposal does, drawing no random numbers.
    rng = np.random.default_rng(4)
    points = np.concatenate([
        _blob(rng, (10, 10, 10), 3000, 8), _blob(rng, (90, 90, 90), 3000, 8),
        _blob(rng, (200, 200, 200), 200, 3), _blob(rng, (215, 215, 215), 200, 3),
    ])
    colours, counts = _kernels.colour_histogram(points)
    point_set = _kmeans.PointSet(colours, counts, 3)
    start = np.array([[50, 50, 50], [200, 200, 200], [215, 215, 215]], dtype=np.float64)
    run = point_set.lloyd(start, max_iter=50, tol_abs=0.0)
    swap_rng = np.random.default_rng(0)
    state = swap_rng.bit_generator.state
    swapped = _kmeans.random_swaps(point_set, run, swap_rng, n_swaps=1, swap_iter=3, tol_abs=0.0, n_splits=1)
    assert swap_rng.bit_generator.state == state
    assert swapped.inertia < 0.3 * run.inertia
    found = swapped.centres[np.argsort(swapped.centres[:, 0])]
    np.testing.assert_allclose(found, [[10, 10, 10], [90, 90, 90], [207.5, 207.5, 207.5]], atol=1.5)


@pytest.mark.parametrize("weights_dtype", [np.int64, np.float64])
def test_weighted_moments_match_numpy(weights_dtype):
    rng = np.random.default_rng(11)
    points = random_points(rng, 5000, 3)
    weights = rng.integers(1, 1000, size=len(points)).astype(weights_dtype)
    moments = _kernels.weighted_moments(points, weights)
    x = points.astype(np.float64)
    w = weights.astype(np.float64)
    np.testing.assert_allclose(moments, np.stack([w @ x, w @ (x * x)]), rtol=1e-12)


@pytest.mark.parametrize("n_centres", [1, 5, 40, 200])
@pytest.mark.parametrize("cell_bits", [2, 4])
def test_cell_kmeans_plusplus_chooses_as_kmeans_plusplus(n_centres, cell_bits):
    rng = np.random.default_rng(n_centres + cell_bits)
    colours, counts = _kernels.colour_histogram(random_points(rng, 60000, 3, n_values=40) * np.uint8(6))
    cells = _kmeans.sort_into_cells(colours, counts, cell_bits)
    first_uniform, trial_uniforms = rng.random(), rng.random((n_centres - 1, 2 + int(np.log(n_centres))))
    chosen = _kernels.cell_kmeans_plusplus(
        cells.columns, cells.weights, cells.corners, cells.start, cells.bits, first_uniform, trial_uniforms
    )
    # Integer weights: every potential is exact, so the choices are the reference's.
    expected = reference.kmeans_plusplus(cells.points, cells.weights, first_uniform, trial_uniforms)
    np.testing.assert_array_equal(chosen, expected)


def test_cell_kmeans_plusplus_with_fewer_distinct_points_than_centres():
    colours = np.array([[0, 0, 0], [255, 255, 255], [10, 200, 30]], dtype=np.uint8)
    counts = np.array([5, 1, 2], dtype=np.int64)
    cells = _kmeans.sort_into_cells(colours, counts, 3)
    rng = np.random.default_rng(0)
    first_uniform, trial_uniforms = rng.random(), rng.random((5, 3))
    chosen = _kernels.cell_kmeans_plusplus(
        cells.columns, cells.weights, cells.corners, cells.start, cells.bits, first_uniform, trial_uniforms
    )
    expected = reference.kmeans_plusplus(cells.points, cells.weights, first_uniform, trial_uniforms)
    np.testing.assert_array_equal(chosen, expected)


def _histogram_total(stage):
    return int(stage[1].sum())


@pytest.mark.parametrize("n_colors, expect_seeding", [(16, False), (64, True), (256, False)])
def test_pixel_stages_seed_from_part_of_the_seed_sample_from_33_to_128_colours(n_colors, expect_seeding):
    rng = np.random.default_rng(8)
    pixels = random_points(rng, 400_000, 3, n_values=40)
    colours, counts = _kernels.colour_histogram(pixels)
    stages = _kmeans.pixel_stages(pixels, colours, counts, n_colors, np.random.default_rng(0), 1 << 18)
    if not expect_seeding:
        assert stages.seeding is None
        return
    assert _histogram_total(stages.seeding) == _kmeans.SEEDING_SAMPLE
    # Every seeding colour is a seed-stage colour, with no more pixels.
    seed = dict(zip(map(tuple, stages.seed[0]), stages.seed[1]))
    assert all(seed[tuple(c)] >= w for c, w in zip(stages.seeding[0], stages.seeding[1]))
    # No random numbers of its own: the other stages are those of a fit without it.
    # (At 256 colours: at 16 these 0.4 MP would take the small-photo stages.)
    without = _kmeans.pixel_stages(pixels, colours, counts, 256, np.random.default_rng(0), 1 << 18)
    np.testing.assert_array_equal(stages.seed[1], without.seed[1])


def test_weighted_stages_seed_from_part_of_the_seed_draws():
    rng = np.random.default_rng(9)
    points = random_points(rng, 5000, 4)
    weights = rng.integers(1, 200, size=len(points)).astype(np.int64)
    stages = _kmeans.weighted_stages(points, weights, 64, np.random.default_rng(0), 1 << 18)
    assert _histogram_total(stages.seeding) == _kmeans.SEEDING_SAMPLE
    seed = dict(zip(map(tuple, stages.seed[0]), stages.seed[1]))
    assert all(seed[tuple(c)] >= w for c, w in zip(stages.seeding[0], stages.seeding[1]))
    # Too few pixels to sample: nothing to draw a smaller seeding from.
    assert _kmeans.weighted_stages(points[:50], weights[:50] % 3 + 1, 64, np.random.default_rng(0), 1 << 18).seeding is None


def test_best_of_inits_draws_starts_from_the_given_set():
    rng = np.random.default_rng(10)
    points = random_points(rng, 3000, 3)
    point_set = _kmeans.PointSet(points, np.ones(len(points), np.int64), 5)
    # Five points to draw five starts from: k-means++ takes them all.
    starts = np.array([[10, 10, 10], [240, 10, 10], [10, 240, 10], [10, 10, 240], [240, 240, 240]], np.uint8)
    draw_from = _kmeans.PointSet(starts, np.ones(5, np.int64), 5)
    run = _kmeans.best_of_inits(
        point_set, 5, np.random.default_rng(0), n_init=1, max_iter=1, tol_abs=0.0, draw_from=draw_from
    )
    drawn = draw_from.seed_centres(5, np.random.default_rng(0))
    assert sorted(map(tuple, drawn)) == sorted(map(tuple, starts.astype(np.float64)))
    # (In the drawn order: integer points tie between integer centres, and ties go to
    # the lower index.)
    expected = point_set.lloyd(drawn, max_iter=1, tol_abs=0.0)
    np.testing.assert_allclose(run.centres, expected.centres)
