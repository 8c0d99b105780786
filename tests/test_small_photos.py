"""Small photos take their own stages: a small seed draw, no sample stage, fewer starts
and swaps (see _kmeans.small_seed_pixels), at the quality of the usual ones."""

import numpy as np
import pytest

import fastkm
from fastkm import _kmeans, _pipeline
from fastkm._limits import DEFAULT_SAMPLE_SIZE


def _prepared(photo, n_colors, **options):
    pixels = photo.reshape(-1, photo.shape[-1])
    options = {"alpha": False, "space": "rgb", "n_colors": n_colors, "rng": np.random.default_rng(0),
               "sample_size": DEFAULT_SAMPLE_SIZE, **options}
    return _pipeline.prepare(pixels, **options)


def test_small_photo_seeds_on_a_small_draw_and_skips_the_sample_stage(sample_photo):
    prepared = _prepared(sample_photo("kodim23.png"), 16)
    stages = prepared.stages
    assert stages.small
    assert int(stages.seed[1].sum()) == _kmeans.SMALL_SEED_PIXELS  # pixels drawn
    assert stages.sample is stages.full
    assert stages.full[0] is prepared.points


@pytest.mark.parametrize(
    "n_pixels, n_colors, sample_size, weighted, expected",
    [
        (393_216, 16, 1 << 18, False, _kmeans.SMALL_SEED_PIXELS),
        (393_216, 32, 1 << 18, False, _kmeans.SMALL_SEED_PIXELS),
        (393_216, 33, 1 << 18, False, None),  # larger palettes: the usual stages
        (3_000_000, 16, 1 << 18, False, None),  # a large photo
        (393_216, 16, None, False, None),  # sampling turned off
        (393_216, 16, 1 << 18, True, None),  # perceptually weighted
        (393_216, 16, 4096, False, 4096),  # a smaller sample asked for
        (20_000, 16, 1 << 18, False, None),  # a draw of over half the pixels does not pay
    ],
)
def test_which_photos_take_the_small_stages(n_pixels, n_colors, sample_size, weighted, expected):
    assert _kmeans.small_seed_pixels(n_pixels, n_colors, sample_size, weighted) == expected


def test_large_palettes_and_unsampled_fits_keep_the_usual_stages(sample_photo):
    photo = sample_photo("kodim23.png")
    assert not _prepared(photo, 64).stages.small
    assert not _prepared(photo, 16, sample_size=None).stages.small


def test_a_poor_draw_falls_back_to_the_usual_stages():
    # One colour nearly everywhere and 39 on one pixel each: a draw of 16k pixels holds
    # a few colours, too few to seed 32 entries, so the fit takes the usual stages.
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, size=(40, 3), dtype=np.uint8)
    picks = np.zeros(600 * 600, dtype=np.int64)
    picks[:39] = np.arange(1, 40)  # 39 colours on one pixel each: rarely drawn
    image = colours[picks].reshape(600, 600, 3)
    stages = _prepared(image, 32).stages
    assert not stages.small
    result = fastkm.quantize(image, 32)
    assert result.n_colors == 32


@pytest.mark.parametrize("name", ["kodim03.png", "kodim23.png"])
def test_small_photo_at_k5_as_good_as_scikit_learn(sample_photo, name):
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    photo = sample_photo(name)
    pixels = photo.reshape(-1, 3).astype(np.float32)
    mses = []
    for seed in range(3):
        centres = sklearn_cluster.KMeans(n_clusters=5, n_init=1, random_state=seed).fit(pixels).cluster_centers_
        palette = np.clip(np.rint(centres), 0, 255)
        distances = ((pixels[:, None, :] - palette[None].astype(np.float32)) ** 2).sum(axis=2)
        mses.append(float(distances.min(axis=1).mean()) / 3)
    # The mean of scikit-learn's single starts; a 0.1 % margin for its float32 centres.
    assert fastkm.quantize(photo, 5).mse <= 1.001 * np.mean(mses)
