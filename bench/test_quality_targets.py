"""Quality targets of issue 3, per photo and k (a benchmark: not in the default test run).

    pytest bench/test_quality_targets.py [--bench-dir DIR] [--benchmark-autosave]

fastkm's MSE within 1 % of exact k-means run to convergence (the offline reference in
bench/data/exact_kmeans.json; a photo without one, or whose pixels changed since, checks
only libimagequant), and at most 0.99x libimagequant's at k = 16 and 0.97x at k = 256.
The time is one fastkm.quantize; the MSEs and ratios go into each result's extra_info;
bench/quality_targets.py writes them as a table.
"""

import pytest
from photos import load_references  # pytest puts bench/ on sys.path
from quality_targets import MAX_RATIO_TO_IMAGEQUANT, measure

import fastkm

pytestmark = pytest.mark.usefixtures("fastkm_warm")


@pytest.fixture(scope="session")
def references():
    return load_references()


@pytest.mark.parametrize("n_colors", [16, 64, 256])
def test_quality_targets(benchmark, photo, photo_name, n_colors, references):
    benchmark.group = f"quality targets k={n_colors}"
    result = benchmark.pedantic(fastkm.quantize, args=(photo, n_colors), kwargs={"seed": 0}, rounds=1)
    row = measure(photo, photo_name, n_colors, references, 3 * result.mse)
    benchmark.extra_info.update({key: value for key, value in row.items() if key != "misses"})
    if row["exact_mse"] is None and n_colors not in MAX_RATIO_TO_IMAGEQUANT:
        pytest.skip(row["missing"])  # nothing to check
    assert not row["misses"], f"{photo_name} k={n_colors}: " + "; ".join(row["misses"])
