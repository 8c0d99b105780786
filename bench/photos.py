"""The photos the benchmarks run on, and the offline exact-k-means reference for them.

Default set: the 12 MP ``../shared/images/large/012mp-bus.jpg`` when present (it is not
in a user's clone) and the bundled ``sample_images/``; or every image file of a folder.
The reference (``bench/data/exact_kmeans.json``, made by ``bench/exact_reference.py``)
is keyed by file name and the sha256 of the decoded pixels, so a photo whose pixels
changed (re-encoded, or a different decoder) is reported as stale instead of compared.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from fastkm.io import read_image

ROOT = Path(__file__).resolve().parent.parent
LARGE_PHOTO = ROOT.parent / "shared" / "images" / "large" / "012mp-bus.jpg"
SAMPLE_DIR = ROOT / "sample_images"
REFERENCE_PATH = ROOT / "bench" / "data" / "exact_kmeans.json"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}


def images_in(folder):
    """Image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder of photos")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"{folder}: holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def default_photos():
    """The 12 MP photo when present, then the bundled samples."""
    return ([LARGE_PHOTO] if LARGE_PHOTO.exists() else []) + images_in(SAMPLE_DIR)


def photos_from(given):
    """Files and folders named on a command line, folders expanded; the default set when none."""
    return [p for path in map(Path, given) for p in (images_in(path) if path.is_dir() else [path])] or default_photos()


def read_rgb(path):
    """(H, W, 3) uint8 C-contiguous, read-only; a grey photo is repeated into 3 channels."""
    image = read_image(path)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image)
    image.flags.writeable = False
    return image


def pixels_sha256(image):
    """sha256 of the decoded (H, W, 3) uint8 pixels, row-major, with the shape in front."""
    digest = hashlib.sha256(f"{image.shape}".encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def load_references(path=REFERENCE_PATH):
    """The reference file as a dict ({'photos': {}} when there is none yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {"photos": {}}


def find_reference(references, name, sha256, n_colors):
    """(entry, why): the reference for this photo and k, or None and the reason it is missing."""
    versions = references["photos"].get(name)
    if not versions:
        return None, f"no exact reference for {name} (run bench/exact_reference.py on it)"
    if sha256 not in versions:
        return None, f"stale exact reference for {name}: its pixels changed (rerun bench/exact_reference.py)"
    entry = versions[sha256]["k"].get(str(n_colors))
    if entry is None:
        return None, f"no exact reference for {name} at k={n_colors}"
    return entry, ""
