"""One benchmark per pipeline stage, and the whole quantize, at k = 5, 16, 64, 256.

Stages: histogram of distinct colours, k-means++ on the sample (plain and over grid
cells, as quantize runs it), assignment of every pixel, one Lloyd step on the histogram
(plain; and over grid cells once the labels have settled, the late iterations that make
most of a fit), remap, whole quantize.  One photo: FASTKM_BENCH_IMAGE, else the 12 MP
photo, else the bundled 3 MP one.

    pytest bench/test_stages.py --benchmark-autosave
"""

import numpy as np
import pytest

import fastkm
from fastkm import _kernels, _kmeans
from fastkm._limits import DEFAULT_SAMPLE_SIZE

N_COLORS = [5, 16, 64, 256]


@pytest.fixture(scope="module")
def pixels(main_photo):
    return main_photo.reshape(-1, 3)


@pytest.fixture(scope="module")
def histogram(pixels):
    return _kmeans.distinct_colours(pixels)


def _centres(histogram, n_colors):
    colours, counts = histogram
    rng = np.random.default_rng(0)
    return colours[rng.choice(len(colours), n_colors, replace=False)].astype(np.float32)


def test_histogram(benchmark, pixels):
    benchmark.group = "stage: histogram"
    colours, counts = benchmark(_kernels.colour_histogram, pixels)
    benchmark.extra_info.update(n_pixels=len(pixels), n_distinct=len(colours))


@pytest.mark.parametrize("n_colors", N_COLORS)
def test_init_kmeans_plusplus_on_sample(benchmark, pixels, n_colors):
    benchmark.group = f"stage: init k={n_colors}"
    rng = np.random.default_rng(0)
    sample = pixels[rng.integers(0, len(pixels), size=DEFAULT_SAMPLE_SIZE)]
    colours, counts = _kmeans.distinct_colours(sample)
    benchmark(_kmeans.seed_centres, colours, counts, n_colors, np.random.default_rng(1))
    benchmark.extra_info.update(n_points=len(colours))


@pytest.mark.parametrize("n_colors", N_COLORS)
def test_init_cell_kmeans_plusplus_on_sample(benchmark, pixels, n_colors):
    benchmark.group = f"stage: init k={n_colors}"
    rng = np.random.default_rng(0)
    sample = pixels[rng.integers(0, len(pixels), size=DEFAULT_SAMPLE_SIZE)]
    point_set = _kmeans.PointSet(*_kmeans.distinct_colours(sample), n_colors)
    benchmark(point_set.seed_centres, n_colors, np.random.default_rng(1))
    benchmark.extra_info.update(n_points=len(point_set.points))


@pytest.mark.parametrize("n_colors", N_COLORS)
def test_settled_cell_lloyd_step_on_histogram(benchmark, histogram, n_colors):
    """One Lloyd assignment over the full histogram by grid cells, labels already settled."""
    benchmark.group = f"stage: lloyd step k={n_colors}"
    colours, counts = histogram
    cells = _kmeans.sort_into_cells(colours, counts, _kmeans.cell_bits_for(len(colours), n_colors))
    centres = _centres(histogram, n_colors)
    labels = np.full(len(colours), -1, np.int32)
    sums = np.empty((n_colors, 3), np.int64)
    totals = np.empty(n_colors, np.int64)
    step_args = (cells.columns, cells.points, cells.weights, cells.corners, cells.start, cells.task_cells, cells.bits)
    _kernels.cell_lloyd_step(*step_args, centres, labels, sums, totals)
    benchmark(_kernels.cell_lloyd_step, *step_args, centres, labels, sums, totals)
    benchmark.extra_info.update(n_points=len(colours), n_cells=len(cells.corners))


@pytest.fixture(scope="module")
def full_stage_start(pixels, histogram):
    """By n_colors: the full-histogram PointSet, the tolerance and the centres quantize's
    seed stage (starts and swaps on the sample) hands to the full stage, seed 0."""
    starts = {}

    def start(n_colors):
        if n_colors not in starts:
            rng = np.random.default_rng(0)
            stages = _kmeans.pixel_stages(pixels, *histogram, n_colors, rng, DEFAULT_SAMPLE_SIZE)
            tol_abs = _kmeans.tolerance(*histogram, 1e-4)
            # fit_stages with every later stage the seed stage itself: it stops where
            # quantize hands over to the full histogram (seeding, starts, swaps).
            seed_only = _kmeans.Stages(stages.seed, stages.seed, stages.seed, stages.seeding)
            centres, _, _ = _kmeans.fit_stages(seed_only, n_colors, rng, n_init=None, max_iter=100, tol_abs=tol_abs)
            starts[n_colors] = (_kmeans.PointSet(*histogram, n_colors), tol_abs, centres)
        return starts[n_colors]

    return start


@pytest.mark.parametrize("overrelax", [False, True], ids=["plain", "overrelaxed"])
@pytest.mark.parametrize("n_colors", N_COLORS)
def test_full_histogram_lloyd(benchmark, full_stage_start, n_colors, overrelax):
    """Lloyd to convergence on the full histogram from the seed stage's centres, as
    quantize's last stage runs it (over-relaxed; quantize stops it after
    STAGE_MAX_ITER_LARGE steps above 128 colours) and plainly."""
    benchmark.group = f"stage: full lloyd k={n_colors}"
    point_set, tol_abs, centres = full_stage_start(n_colors)
    run = benchmark(point_set.lloyd, centres, max_iter=100, tol_abs=tol_abs, final_assign=False, overrelax=overrelax)
    benchmark.extra_info.update(n_iter=run.n_iter, inertia=run.inertia)


@pytest.mark.parametrize("n_colors", N_COLORS)
def test_assign_all_pixels(benchmark, pixels, histogram, n_colors):
    benchmark.group = f"stage: assign k={n_colors}"
    centres = _centres(histogram, n_colors)
    labels = np.empty(len(pixels), np.int32)
    min_dist = np.empty(len(pixels), np.float32)
    benchmark(_kernels.assign_labels, pixels, centres, labels, min_dist)
    if benchmark.stats:  # None under --benchmark-disable
        seconds = benchmark.stats.stats.min
        benchmark.extra_info["G_pairs_per_s"] = round(len(pixels) * n_colors / seconds / 1e9, 2)


@pytest.mark.parametrize("n_colors", N_COLORS)
def test_lloyd_step_on_histogram(benchmark, histogram, n_colors):
    """One Lloyd iteration (assign + update) over the full colour histogram."""
    benchmark.group = f"stage: lloyd step k={n_colors}"
    colours, counts = histogram
    centres = _centres(histogram, n_colors)
    columns = _kernels.point_columns(colours)
    labels = np.zeros(len(colours), np.int32)
    min_dist = np.empty(len(colours), np.float32)
    sums = np.empty((n_colors, 3), np.int64)
    totals = np.empty(n_colors, np.int64)
    benchmark(_kernels.lloyd_step, columns, colours, counts, centres, labels, min_dist, sums, totals)
    benchmark.extra_info["n_points"] = len(colours)


@pytest.mark.parametrize("n_colors", N_COLORS)
def test_remap_all_pixels(benchmark, pixels, n_colors):
    benchmark.group = f"stage: remap k={n_colors}"
    fit = _kmeans.fit_palette(
        pixels, n_colors, np.random.default_rng(0), sample_size=DEFAULT_SAMPLE_SIZE, n_init=1,
        max_iter=20, tol=1e-4,
    )
    benchmark(_kmeans.remap, pixels, fit, np.uint8)


@pytest.mark.parametrize("n_colors", N_COLORS)
def test_quantize(benchmark, main_photo, main_photo_path, n_colors):
    benchmark.group = f"quantize k={n_colors}"
    result = benchmark(fastkm.quantize, main_photo, n_colors)
    benchmark.extra_info.update(image=main_photo_path.name, mse=result.mse * 3, psnr=result.psnr)
