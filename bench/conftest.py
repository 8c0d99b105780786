"""Benchmark fixtures and options: the photos the benchmarks run on, and the k values.

Benchmarks are not part of the default test run (``pytest`` looks in tests/ only); run
them with ``pytest bench/`` (see README.md).  Tests that take ``photo`` run once per
photo: FASTKM_BENCH_IMAGE=path names one photo; ``--bench-dir DIR`` (or
FASTKM_BENCH_DIR=DIR) every image file in DIR; by default the 12 MP photo in
../shared/images/large when present, plus the bundled sample_images/.  The per-stage
benchmarks take ``main_photo``: FASTKM_BENCH_IMAGE, else the 12 MP photo, else the
bundled 3 MP one.  ``--bench-k 5,16,64,256`` (or FASTKM_BENCH_K) sets the k values of
the peer benchmark (default 16, 64, 256).
"""

import os
from pathlib import Path

import numpy as np
import pytest
from photos import LARGE_PHOTO, ROOT, default_photos, images_in, read_rgb  # pytest puts bench/ on sys.path

import fastkm

BUNDLED_PHOTO = ROOT / "sample_images" / "bus-3mp.jpg"


def pytest_addoption(parser):
    group = parser.getgroup("fastkm benchmarks")
    group.addoption(
        "--bench-dir",
        default=os.environ.get("FASTKM_BENCH_DIR"),
        help="benchmark every image file in this folder (default: 12 MP photo and sample_images/)",
    )
    group.addoption(
        "--bench-k",
        default=os.environ.get("FASTKM_BENCH_K", "16,64,256"),
        help="comma-separated k values of the peer benchmark (default 16,64,256)",
    )


def bench_photos(config):
    named = os.environ.get("FASTKM_BENCH_IMAGE")
    if named:
        return [Path(named)]
    folder = config.getoption("bench_dir")
    return images_in(folder) if folder else default_photos()


def pytest_generate_tests(metafunc):
    if "photo_path" in metafunc.fixturenames:
        paths = bench_photos(metafunc.config)
        # session scope: pytest groups the tests by photo, so each photo is decoded once
        metafunc.parametrize("photo_path", paths, ids=[p.name for p in paths], scope="session")


@pytest.fixture(scope="session")
def photo(photo_path):
    """(H, W, 3) uint8 read-only photo shared by the benchmarks of one photo."""
    return read_rgb(photo_path)


@pytest.fixture(scope="session")
def photo_name(photo_path):
    return photo_path.name


@pytest.fixture(scope="session")
def main_photo_path():
    named = os.environ.get("FASTKM_BENCH_IMAGE")
    if named:
        return Path(named)
    return LARGE_PHOTO if LARGE_PHOTO.exists() else BUNDLED_PHOTO


@pytest.fixture(scope="session")
def main_photo(main_photo_path):
    return read_rgb(main_photo_path)


@pytest.fixture(scope="session")
def fastkm_warm():
    """Compile (or load) the kernels outside the timed runs."""
    fastkm.quantize(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), 4)
