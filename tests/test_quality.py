"""fastkm's MSE against exact k-means on the bundled photos: what the speed-ups must keep.

The reference is bench/data/exact_kmeans.json: k-means run to convergence on every
pixel (scikit-learn Lloyd, tol=0, best of 64 / 16 / 8 starts at k = 16 / 64 / 256),
made offline by bench/exact_reference.py and keyed by a hash of the decoded pixels.
Issue 3 asks for 1 % on photos of 12 MP and more (bench/test_quality_targets.py checks
the 12 MP photo); these small photos are held to it too, at three seeds each: the
worst of the 27 runs is kodim03 at k=64, seed 2, 1.0081 times the exact MSE (before the
split swaps and the over-relaxed seed runs, kodim03 at k=64 reached 1.011 at seed 0).
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import fastkm

REFERENCE = Path(__file__).resolve().parent.parent / "bench" / "data" / "exact_kmeans.json"
MAX_RATIO = 1.01


def pixels_sha256(image):
    """The reference's key: sha256 of the shape's text, then the row-major pixels."""
    digest = hashlib.sha256(f"{image.shape}".encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


@pytest.mark.parametrize("name", ["bus-3mp.jpg", "kodim03.png", "kodim23.png"])
@pytest.mark.parametrize("n_colors", [16, 64, 256])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mse_within_1_percent_of_exact_kmeans(sample_photo, name, n_colors, seed):
    photo = sample_photo(name)
    versions = json.loads(REFERENCE.read_text())["photos"][name]
    exact = versions[pixels_sha256(photo)]["k"][str(n_colors)]["mse_rounded"]["sum"]
    result = fastkm.quantize(photo, n_colors, seed=seed)
    ratio = 3 * result.mse / exact  # the reference sums the MSE over R, G, B
    assert ratio <= MAX_RATIO, f"{name} k={n_colors} seed {seed}: {ratio:.4f} times exact k-means' MSE"
