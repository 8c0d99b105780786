from pathlib import Path

import pytest

from fastkm.io import read_image

SAMPLE_IMAGES = Path(__file__).resolve().parent.parent / "sample_images"


@pytest.fixture(scope="session")
def sample_path():
    """Path of a bundled sample image by file name."""
    return lambda name: SAMPLE_IMAGES / name


@pytest.fixture(scope="session")
def sample_photo():
    """A bundled sample photo, decoded, by file name (cached per session)."""
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = read_image(SAMPLE_IMAGES / name)
        return cache[name]

    return load
