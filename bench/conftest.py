"""Benchmark fixtures: the photos the benchmarks run on.

Benchmarks are not part of the default test run (``pytest`` looks in tests/ only); run
them with ``pytest bench/`` (see README.md).  FASTKM_BENCH_IMAGE names the photo; by
default the 12 MP photo in ../shared/images/large when present, else the bundled
3 MP sample.
"""

import os
from pathlib import Path

import pytest

from fastkm.io import read_image

ROOT = Path(__file__).resolve().parent.parent
LARGE_PHOTO = ROOT.parent / "shared" / "images" / "large" / "012mp-bus.jpg"
BUNDLED_PHOTO = ROOT / "sample_images" / "bus-3mp.jpg"


def bench_image_path():
    named = os.environ.get("FASTKM_BENCH_IMAGE")
    if named:
        return Path(named)
    return LARGE_PHOTO if LARGE_PHOTO.exists() else BUNDLED_PHOTO


@pytest.fixture(scope="session")
def photo():
    """(H, W, 3) uint8 photo shared by every benchmark of the session."""
    path = bench_image_path()
    image = read_image(path)
    image.flags.writeable = False
    return image


@pytest.fixture(scope="session")
def photo_name():
    return bench_image_path().name
