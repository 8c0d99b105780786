import shutil
from pathlib import Path

import pytest

from fastkm.io import read_image

SAMPLE_IMAGES = Path(__file__).resolve().parent.parent / "sample_images"


@pytest.fixture(scope="session")
def sample_path():
    """Path of a bundled sample image by file name."""
    return lambda name: SAMPLE_IMAGES / name


@pytest.fixture()
def photo_folder(tmp_path):
    """A folder of two photos (one in a sub-folder), a broken image and a text file."""
    source = tmp_path / "photos"
    (source / "sub").mkdir(parents=True)
    shutil.copy(SAMPLE_IMAGES / "kodim23.png", source / "parrots.png")
    shutil.copy(SAMPLE_IMAGES / "kodim03.png", source / "sub" / "hats.png")
    (source / "broken.jpg").write_bytes(b"not a jpeg")
    (source / "notes.txt").write_text("not an image")
    return source


@pytest.fixture(scope="session")
def sample_photo():
    """A bundled sample photo, decoded, by file name (cached per session)."""
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = read_image(SAMPLE_IMAGES / name)
        return cache[name]

    return load
