"""Alpha, dithering, OKLab, target PSNR and shared palettes, on the bundled photos."""

import numpy as np
import pytest

import fastkm
from fastkm import _spaces

from . import reference


def soft_alpha(height, width):
    """A vignette mask (H, W) uint8: opaque centre, translucent ring, transparent corners."""
    yy, xx = np.mgrid[:height, :width]
    radius = np.hypot(yy - height / 2, xx - width / 2) / (0.35 * min(height, width))
    return np.clip(255 * (1.5 - radius), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def parrots(sample_photo):
    """The parrots at half size (384x256): real photo content, quick fits."""
    return np.ascontiguousarray(sample_photo("kodim23.png")[::2, ::2])


@pytest.fixture(scope="module")
def rgba(parrots):
    return np.dstack([parrots, soft_alpha(*parrots.shape[:2])])


def box_blur(image, radius=3):
    """Mean over (2r+1)^2 windows (valid part only), float64, per channel."""
    x = image.astype(np.float64)
    x = x if x.ndim == 3 else x[..., None]
    c = np.pad(x, ((1, 0), (1, 0), (0, 0))).cumsum(0).cumsum(1)
    n = 2 * radius + 1
    return (c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]) / (n * n)


# --- alpha ---------------------------------------------------------------------------


def test_alpha_transparent_pixels_share_entry_zero(rgba):
    result = fastkm.quantize(rgba, 16)
    alpha = rgba[..., 3]
    assert result.palette.shape == (16, 4)
    assert tuple(result.palette[0]) == (0, 0, 0, 0)
    assert np.all(result.labels[alpha == 0] == 0)
    assert np.all(result.labels[alpha > 0] > 0)  # visible pixels never turn transparent
    # Entries follow by rising alpha; translucent entries exist for the soft ring.
    assert np.all(np.diff(result.palette[:, 3].astype(int)) >= 0)
    assert np.any((result.palette[:, 3] > 0) & (result.palette[:, 3] < 255))
    # mse: per channel, premultiplied, over all pixels.
    premultiplied = _spaces.premultiply(rgba.reshape(-1, 4)).astype(np.int64)
    mapped = _spaces.premultiply(result.palette)[result.labels.ravel()].astype(np.int64)
    assert result.mse == pytest.approx(((premultiplied - mapped) ** 2).sum() / rgba.size, rel=1e-12)
    assert result.image.shape == rgba.shape and result.delta_e is None


def test_grey_alpha_and_fully_transparent_images():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(40, 50), dtype=np.uint8)
    alpha = np.where(rng.random((40, 50)) < 0.3, 0, 255).astype(np.uint8)
    result = fastkm.quantize(np.dstack([grey, alpha]), 8)
    assert result.palette.shape == (8, 2) and tuple(result.palette[0]) == (0, 0)
    assert np.all((result.labels == 0) == (alpha == 0))
    empty = fastkm.quantize(np.zeros((5, 6, 4), np.uint8), 8)
    assert empty.palette.tolist() == [[0, 0, 0, 0]] and empty.mse == 0


def test_opaque_alpha_is_fitted_like_rgb(parrots):
    opaque = np.dstack([parrots, np.full(parrots.shape[:2], 255, np.uint8)])
    with_alpha, plain = fastkm.quantize(opaque, 16), fastkm.quantize(parrots, 16)
    np.testing.assert_array_equal(with_alpha.palette[:, :3], plain.palette)
    assert np.all(with_alpha.palette[:, 3] == 255)
    np.testing.assert_array_equal(with_alpha.labels, plain.labels)


def test_alpha_errors(rgba):
    with pytest.raises(fastkm.FastkmError, match="n_colors >= 2"):
        fastkm.quantize(rgba, 1)
    with pytest.raises(fastkm.FastkmError, match="oklab.*transparency"):
        fastkm.quantize(rgba, 8, space="oklab")


def test_auto_space_is_oklab_without_alpha_and_rgb_with_it(parrots, rgba):
    for image, same_as in ((parrots, "oklab"), (parrots[..., :1], "oklab"), (rgba, "rgb")):
        auto, explicit = fastkm.quantize(image, 8, space="auto"), fastkm.quantize(image, 8, space=same_as)
        np.testing.assert_array_equal(auto.palette, explicit.palette)
        np.testing.assert_array_equal(auto.labels, explicit.labels)
    with pytest.raises(fastkm.FastkmError, match="'auto', 'rgb', 'oklab'"):
        fastkm.quantize(parrots, 8, space="lab")


def test_alpha_premultiplied_clustering_beats_straight(rgba):
    """What shows is the image composited over a background: clustering premultiplied
    colours must beat clustering alpha as a plain 4th channel (bench/alpha.py)."""
    from unittest import mock

    from fastkm import _kmeans

    def composited_error(quantized):
        a, b = rgba[..., 3:] / 255.0, quantized[..., 3:] / 255.0
        return np.mean([np.mean((rgba[..., :3] * a + g * (1 - a) - quantized[..., :3] * b - g * (1 - b)) ** 2)
                        for g in (0.0, 255.0)])

    premultiplied = fastkm.quantize(rgba, 16).image
    with mock.patch.object(_spaces, "premultiply", lambda p: p), mock.patch.object(
        _spaces, "unpremultiply", _kmeans.round_palette
    ):
        straight = fastkm.quantize(rgba, 16).image
    assert composited_error(premultiplied) < 0.9 * composited_error(straight)


# --- dithering -----------------------------------------------------------------------


def shown(image):
    """What shows of an image: premultiplied colours for images with alpha."""
    if image.ndim == 3 and image.shape[2] in (2, 4):
        return image[..., :-1] * (image[..., -1:] / 255.0)
    return image


def blurred_error(image, quantized, columns=slice(None)):
    return np.mean((box_blur(shown(quantized)) - box_blur(shown(image)))[:, columns] ** 2)


@pytest.mark.parametrize("layout", ["rgb", "grey", "oklab", "rgba", "opaque-rgba"])
def test_dithered_mse_is_the_mse_of_the_dithered_image(sample_photo, layout):
    # RGB and grey fits sum it during the diffusion, the others in a pass of their own.
    image = sample_photo("kodim23.png")[:150, :170]
    space = "oklab" if layout == "oklab" else "rgb"
    if layout == "grey":
        image = image[..., 1]
    elif layout.endswith("rgba"):
        alpha = np.full(image.shape[:2] + (1,), 255, np.uint8)
        if layout == "rgba":
            alpha[:40] = np.arange(170, dtype=np.uint8)[None, :, None]  # some transparent, some partly
        image = np.concatenate([image, alpha], axis=2)
    result = fastkm.quantize(image, 24, dither=True, space=space)
    n_channels = image.shape[2] if image.ndim == 3 else 1
    values, quantized = image.reshape(-1, n_channels), result.image.reshape(-1, n_channels)
    if layout == "rgba":  # errors of premultiplied colours, as the fit measures them
        values, quantized = _spaces.premultiply(values), _spaces.premultiply(quantized)
    expected = np.mean((quantized.astype(np.float64) - values) ** 2)
    assert result.mse == pytest.approx(expected, rel=1e-12)


def test_dithering_turns_a_ramp_into_its_local_averages():
    ramp = np.tile(np.linspace(0, 255, 300), (80, 1)).astype(np.uint8)
    plain = fastkm.quantize(ramp, 4)
    dithered = fastkm.quantize(ramp, 4, dither=True)
    np.testing.assert_array_equal(dithered.palette, plain.palette)  # same fit, other mapping
    # Between the darkest and the lightest entry (beyond them no mix can match):
    # dithering is nearly exact on average, plain mapping makes 4 flat bands.
    inside = (ramp[0] >= plain.palette.min() + 10) & (ramp[0] <= plain.palette.max() - 10)
    columns = slice(np.argmax(inside), len(inside) - np.argmax(inside[::-1]) - 6)
    assert blurred_error(ramp, dithered.image, columns) < 0.05 * blurred_error(ramp, plain.image, columns)


@pytest.mark.parametrize("name", ["kodim23.png", "kodim03.png"])
def test_dithering_keeps_local_averages_of_photos(sample_photo, name):
    photo = sample_photo(name)
    plain = fastkm.quantize(photo, 16)
    dithered = fastkm.quantize(photo, 16, dither=True)
    # Dithering is selective: edges, texture and lone pixels get a third or less of the
    # error, so what is left sits there and in saturated colours outside the palette's
    # hull, which no mix of its entries can reach (full-strength dithering everywhere
    # reached 0.5-0.6 here, selective 0.64 on kodim23, and looks better by SSIMULACRA2).
    assert blurred_error(photo, dithered.image) < 0.75 * blurred_error(photo, plain.image)
    assert dithered.mse > plain.mse  # pixel by pixel it is further away
    np.testing.assert_array_equal(dithered.image, dithered.palette[dithered.labels])


def test_dither_strength_between_off_and_full(parrots):
    errors = [blurred_error(parrots, fastkm.quantize(parrots, 16, dither=s).image) for s in (0, 0.5, 1)]
    assert errors[0] > errors[1] > errors[2]
    with pytest.raises(fastkm.FastkmError, match="dither"):
        fastkm.quantize(parrots, 8, dither=1.5)


def test_dithering_grey_oklab_and_alpha(parrots, rgba):
    grey = parrots.mean(axis=2).astype(np.uint8)
    # With alpha, 15 entries spread over 4 dimensions leave more of the translucent
    # ring outside their hull: dithering helps less there (ratios 0.84-0.96 over seeds
    # 0-3, before and after the swap changes of issue 3; the better the plain fit, the
    # less dithering adds).
    # In OKLab, selective dithering (less on edges and texture) leaves 0.74-0.80 of the
    # blurred sRGB error (full strength everywhere: under 0.7).
    for image, options, ratio in ((grey, {}, 0.7), (parrots, {"space": "oklab"}, 0.85), (rgba, {}, 0.97)):
        plain = fastkm.quantize(image, 16, **options)
        dithered = fastkm.quantize(image, 16, dither=True, **options)
        assert blurred_error(image, dithered.image) < ratio * blurred_error(image, plain.image), options
    transparent = rgba[..., 3] == 0
    assert np.all(fastkm.quantize(rgba, 6, dither=True).labels[transparent] == 0)


# --- OKLab ---------------------------------------------------------------------------


def test_oklab_codes_round_trip_and_match_reference():
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, size=(5000, 3), dtype=np.uint8)
    np.testing.assert_allclose(_spaces.oklab(colours), reference.oklab(colours), atol=1e-12)
    codes = _spaces.encode_oklab(colours)
    decoded = _spaces.decode_oklab(codes.astype(np.float64))
    # A code step is 1/255 in OKLab: decoding lands within half a step per axis, plus
    # the rounding to sRGB, far below a visible difference (ΔE about 0.02).
    delta_e = np.sqrt(((reference.oklab(decoded) - reference.oklab(colours)) ** 2).sum(axis=1))
    assert delta_e.max() < 0.006
    assert codes[:, 1:].min() > 0 and codes.max() < 255  # the sRGB gamut fits the codes


@pytest.mark.parametrize("chroma", [1.0, 1.15])
def test_oklab_codes_round_trip_at_each_chroma_weight(chroma):
    rng = np.random.default_rng(2)
    colours = rng.integers(0, 256, size=(5000, 3), dtype=np.uint8)
    codes = _spaces.encode_oklab(colours, chroma=chroma)
    np.testing.assert_allclose(_spaces.oklab_codes(colours, chroma), codes, atol=0.5)  # before rounding
    decoded = _spaces.decode_oklab(codes.astype(np.float64), chroma)
    delta_e = np.sqrt(((reference.oklab(decoded) - reference.oklab(colours)) ** 2).sum(axis=1))
    assert delta_e.max() < 0.006
    lab = reference.oklab(colours)  # a and b scaled chroma times as much as L
    np.testing.assert_allclose(codes[:, 1].astype(float) - 128, lab[:, 1] * 255 * chroma, atol=0.5)


def test_chroma_weighs_less_with_fewer_colours():
    weights = [_spaces.chroma_weight(k) for k in (1, 2, 8, 12, 16, 32, 64, 256, 65536)]
    assert weights[:3] == [_spaces.SMALL_PALETTE_CHROMA_WEIGHT] * 3
    assert weights[-4:] == [_spaces.OKLAB_CHROMA_WEIGHT] * 4
    assert weights == sorted(weights) and weights[3] < weights[4] < weights[5]


def test_oklab_fit_and_mapping_use_the_palettes_chroma_weight(parrots, monkeypatch):
    # The fit's codes follow its size; a given palette is mapped with the weight of its
    # own size, so mapping a fitted palette again gives the fit's own labels.
    seen = []
    encode = _spaces.encode_oklab
    def recording(colours, lab=None, chroma=_spaces.OKLAB_CHROMA_WEIGHT):
        seen.append(chroma)
        return encode(colours, lab, chroma)

    monkeypatch.setattr(_spaces, "encode_oklab", recording)
    for n_colors in (8, 16, 64):
        seen.clear()
        result = fastkm.quantize(parrots, n_colors, space="oklab")
        assert set(seen) == {_spaces.chroma_weight(n_colors)}
        again = fastkm.quantize(parrots, palette=result.palette, space="oklab")
        np.testing.assert_array_equal(again.labels, result.labels)


def test_min_psnr_palette_maps_back_to_its_own_labels(parrots):
    # The search fits each size with that size's chroma weight, so the palette it picks
    # maps onto the image as it was fitted (the search once fitted every size with the
    # weight of the largest allowed: 3,549 pixels differed).
    result = fastkm.quantize(parrots, 256, min_psnr=26, space="oklab")
    assert 8 < result.palette.shape[0] < 32  # a size whose weight differs from 256's
    again = fastkm.quantize(parrots, palette=result.palette, space="oklab")
    np.testing.assert_array_equal(again.labels, result.labels)


def test_a_palette_padded_with_copies_maps_the_same(parrots):
    fitted = fastkm.quantize(parrots, 12, space="oklab")
    padded = np.concatenate([fitted.palette, np.repeat(fitted.palette[:1], 4, axis=0)])
    again = fastkm.quantize(parrots, palette=padded, space="oklab")
    np.testing.assert_array_equal(again.labels, fitted.labels)  # copies lose ties to entry 0


# kodim03's OKLab fit wins by about 1 % once the RGB fit finds its best minimum (seeds
# 0-2: 0.988-0.993; 0.955-0.994 before issue 3's swap changes); the parrots' by 6-8 %.
@pytest.mark.parametrize(("name", "ratio"), [("kodim23.png", 0.97), ("kodim03.png", 1.0)])
def test_oklab_fit_has_lower_delta_e_than_rgb_fit(sample_photo, name, ratio):
    photo = sample_photo(name)
    rgb, lab = fastkm.quantize(photo, 16), fastkm.quantize(photo, 16, space="oklab")
    assert lab.delta_e < ratio * rgb.delta_e
    assert rgb.mse < lab.mse  # and each space wins its own measure


@pytest.mark.parametrize("dither", [0.0, 1.0])
def test_delta_e_from_histogram_or_labels_matches_per_pixel(parrots, dither):
    # Plain: from the histogram; dithered (a colour takes several labels): per pixel
    # through each pixel's distinct colour.
    for image in (parrots, parrots[..., :1]):
        result = fastkm.quantize(image, 16, dither=dither)
        per_pixel = reference.oklab_distance_sum(
            image.reshape(-1, image.shape[-1]), result.labels.ravel(), reference.oklab(
                np.repeat(result.palette, 3, axis=1) if result.palette.shape[1] == 1 else result.palette)
        ) / result.labels.size
        assert result.delta_e == pytest.approx(per_pixel, rel=1e-9)


def test_oklab_grey_gives_a_grey_palette(parrots):
    grey = parrots.mean(axis=2).astype(np.uint8)
    result = fastkm.quantize(grey, 8, space="oklab")
    assert result.palette.shape == (8, 1) and result.image.shape == grey.shape
    assert result.psnr > 25


# --- target PSNR ---------------------------------------------------------------------


def test_min_psnr_uses_fewer_colours_and_reaches_the_target(parrots):
    result = fastkm.quantize(parrots, 64, min_psnr=28.0)
    assert result.psnr >= 28.0
    assert 8 < result.n_colors < 64
    # One colour fewer, fitted in full, does not reach it: the search found the edge.
    assert fastkm.quantize(parrots, result.n_colors - 2).psnr < 28.0
    assert fastkm.quantize(parrots, 64, min_psnr=28.0).palette.tolist() == result.palette.tolist()


def test_min_psnr_out_of_reach_raises_with_the_psnr_reached(parrots):
    with pytest.raises(fastkm.QualityError, match="8 colours reach only") as caught:
        fastkm.quantize(parrots, 8, min_psnr=40)
    assert 20 < caught.value.psnr < 40 and caught.value.n_colors == 8
    with pytest.raises(fastkm.FastkmError, match="min_psnr"):
        fastkm.quantize(parrots, 8, min_psnr=-3)
    with pytest.raises(fastkm.FastkmError, match="palette"):
        fastkm.quantize(parrots, 8, min_psnr=30, palette=np.zeros((2, 3), np.uint8))


# --- shared palette ------------------------------------------------------------------


def test_shared_palette_serves_every_image(sample_photo):
    parrots, house = sample_photo("kodim23.png"), sample_photo("kodim03.png")
    palette = fastkm.shared_palette(iter([parrots, house]), 32)
    assert palette.shape == (32, 3) and palette.dtype == np.uint8
    for photo in (parrots, house):
        shared = fastkm.quantize(photo, palette=palette)
        own = fastkm.quantize(photo, 32)
        assert own.psnr - 3.0 < shared.psnr <= own.psnr + 0.1
    np.testing.assert_array_equal(fastkm.shared_palette([parrots, house], 32), palette)  # deterministic


def test_shared_palette_weighs_small_images_equally(parrots):
    # A small all-red frame next to a large photo still gets its red.
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 250
    palette = fastkm.shared_palette([parrots, red], 8)
    assert np.min(np.abs(palette.astype(int) - [250, 0, 0]).sum(axis=1)) <= 3


def test_shared_palette_mixed_grey_and_errors(parrots):
    grey = parrots.mean(axis=2).astype(np.uint8)
    assert fastkm.shared_palette([grey, parrots], 8).shape == (8, 3)
    assert fastkm.shared_palette([grey], 8).shape == (8, 1)
    with pytest.raises(fastkm.FastkmError, match="at least one image"):
        fastkm.shared_palette([], 8)
    # Transparency is shared too: a fully transparent image gives the transparent entry alone.
    assert fastkm.shared_palette([np.zeros((4, 4, 4), np.uint8)], 8).tolist() == [[0, 0, 0, 0]]
    with pytest.raises(fastkm.FastkmError, match="oklab"):
        fastkm.shared_palette([np.zeros((4, 4, 4), np.uint8)], 8, space="oklab")


# --- perceptual weighting -------------------------------------------------------------


def test_perceptual_weighting_favours_flat_areas():
    """A smooth ramp beside random noise: weighted by visibility, the fit spends more
    entries on the ramp (where bands show) and less on the noise (which hides error);
    plain k-means keeps the lowest MSE overall."""
    from fastkm import _pipeline

    height, width = 96, 128
    ramp = np.linspace(0, 255, width // 2)[None, :, None] * np.array([1.0, 0.6, 0.3])
    noise = np.random.default_rng(0).integers(0, 256, (height, width // 2, 3))
    image = np.concatenate([np.broadcast_to(ramp, noise.shape), noise], axis=1).astype(np.uint8)
    importance = _pipeline.importance_map(image.reshape(-1, 3), width).reshape(height, width)
    assert importance[:, : width // 2 - 3].min() >= 250 and np.median(importance[:, width // 2 :]) < 100
    plain = fastkm.quantize(image, 8, weighting="none")
    weighted = fastkm.quantize(image, 8, weighting="perceptual")

    def ramp_error(result):
        return np.mean((result.image.astype(np.float64) - image)[:, : width // 2] ** 2)

    # Measured: 319 -> 176 on the ramp, 922 -> 965 overall.
    assert ramp_error(weighted) < 0.7 * ramp_error(plain)
    assert plain.mse < weighted.mse


def test_weighting_none_is_plain_kmeans_and_bad_names_are_refused(parrots):
    default = fastkm.quantize(parrots, 8, seed=4)
    none = fastkm.quantize(parrots, 8, seed=4, weighting="none")
    np.testing.assert_array_equal(default.palette, none.palette)  # the default fit is plain k-means
    with pytest.raises(fastkm.FastkmError, match="weighting='visible' must be one of 'perceptual', 'none'"):
        fastkm.quantize(parrots, 8, weighting="visible")


def test_perceptual_weighting_needs_an_image_not_a_pixel_list(parrots):
    with pytest.raises(fastkm.FastkmError, match="weighting='perceptual' needs the pixels' places"):
        fastkm.quantize(parrots.reshape(-1, 3), 8, weighting="perceptual")
    n_pixels = parrots.shape[0] * parrots.shape[1]
    assert fastkm.quantize(parrots.reshape(-1, 3), 8, weighting="none").labels.shape == (n_pixels,)
