"""What quantize and KMeans take: pixel lists, Pillow images of every mode, floats,
integer arrays; and what they refuse, with a message that says what to pass."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastkm
from fastkm import io

# Six colours: every exact fit below keeps them all (n_colors=16).
COLOURS = np.array(
    [[0, 0, 0], [255, 255, 255], [200, 30, 40], [20, 180, 60], [30, 40, 220], [250, 200, 10]], np.uint8
)


@pytest.fixture(scope="module")
def few_colours():
    labels = np.random.default_rng(0).integers(0, len(COLOURS), size=(12, 17))
    return COLOURS[labels]


@pytest.fixture(scope="module")
def photo(sample_photo):
    return sample_photo("kodim23.png")[::4, ::4]


# --- lists of pixels ------------------------------------------------------------


def test_a_list_of_rgb_pixels_is_quantized_as_pixels(photo):
    pixels = photo.reshape(-1, 3)
    result = fastkm.quantize(pixels, 5)
    whole = fastkm.quantize(photo, 5)
    assert result.palette.shape == (5, 3)
    assert result.labels.shape == (len(pixels),)
    assert result.image.shape == pixels.shape
    np.testing.assert_array_equal(result.palette, whole.palette)
    np.testing.assert_array_equal(result.labels, whole.labels.ravel())
    assert result.mse == pytest.approx(whole.mse)


def test_a_list_of_rgba_pixels_is_quantized_as_pixels(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:5, :5, 3] = 0
    result = fastkm.quantize(rgba.reshape(-1, 4), 8)
    whole = fastkm.quantize(rgba, 8)
    assert result.palette.shape == (8, 4) and result.labels.shape == (rgba.shape[0] * rgba.shape[1],)
    np.testing.assert_array_equal(result.palette, whole.palette)
    np.testing.assert_array_equal(result.labels, whole.labels.ravel())


def test_a_grey_image_three_pixels_wide_goes_as_h_w_1():
    grey = np.arange(30, dtype=np.uint8).reshape(10, 3, 1) * np.uint8(8)
    result = fastkm.quantize(grey, 4)
    assert result.palette.shape == (4, 1) and result.labels.shape == (10, 3)


def test_dithering_a_list_of_pixels_is_refused(photo):
    with pytest.raises(fastkm.FastkmError, match=r"dither needs the pixels' places in the image: pass the \(H, W, 3\)"):
        fastkm.quantize(photo.reshape(-1, 3), 4, dither=True)


# --- Pillow images -----------------------------------------------------------------


def _pillow_cases(few_colours):
    """(mode, Pillow image, the pixels read_image gives for that image saved as a file)."""
    rgb = Image.fromarray(few_colours)
    grey = np.asarray(rgb.convert("L"))
    alpha = np.where(np.arange(few_colours.shape[1]) < 5, 0, 255).astype(np.uint8)[None, :].repeat(12, 0)
    palette_image = rgb.quantize(len(COLOURS), dither=Image.Dither.NONE)
    palette_alpha = palette_image.copy()
    palette_alpha.info["transparency"] = 0  # index 0 transparent, as a PNG's tRNS chunk says
    with_alpha = palette_image.convert("RGB").convert("RGBA")
    with_alpha.putalpha(Image.fromarray(alpha))
    transparent_rgba = np.asarray(palette_image.convert("RGBA")).copy()
    transparent_rgba[np.asarray(palette_image) == 0, 3] = 0
    wide = (grey.astype(np.uint16) * 257).astype(np.uint16)  # 16-bit samples: 257 * v -> v
    return [
        ("P", palette_image, np.asarray(palette_image.convert("RGB"))),
        ("P with transparency", palette_alpha, transparent_rgba),
        ("PA", with_alpha.convert("PA"), np.asarray(with_alpha.convert("PA").convert("RGBA"))),
        ("1", rgb.convert("1", dither=Image.Dither.NONE), np.asarray(rgb.convert("L")) >= 128),
        ("I;16", Image.fromarray(wide), grey),
        ("F in 0..255", rgb.convert("F"), np.rint(np.asarray(rgb.convert("F"))).astype(np.uint8)),
        ("F in [0, 1]", Image.fromarray(grey.astype(np.float32) / 255), grey),
        ("L", rgb.convert("L"), grey),
        ("LA", with_alpha.convert("LA"), np.asarray(with_alpha.convert("LA"))),
        ("RGB", rgb, few_colours),
        ("RGBA", with_alpha, np.asarray(with_alpha)),
        ("CMYK", rgb.convert("CMYK"), np.asarray(rgb.convert("CMYK").convert("RGB"))),
    ]


@pytest.mark.parametrize("case", range(12), ids=lambda i: ["P", "P+tRNS", "PA", "1", "I;16", "F255", "F01", "L",
                                                             "LA", "RGB", "RGBA", "CMYK"][i])
def test_pillow_images_are_their_colours_in_every_mode(few_colours, case):
    mode, image, expected = _pillow_cases(few_colours)[case]
    if expected.dtype == np.bool_:
        expected = expected.astype(np.uint8) * 255
    if expected.ndim == 3 and expected.shape[2] in (2, 4):
        expected = np.where(expected[..., -1:] == 0, 0, expected)  # fully transparent: palette entry 0
    result = fastkm.quantize(image, 16)
    # At most six colours: the fit keeps them exactly, so the output is the input's colours.
    assert result.mse == 0, mode
    np.testing.assert_array_equal(result.image, expected, err_msg=mode)


@pytest.mark.parametrize("mode, suffix", [("P", ".png"), ("P with transparency", ".png"), ("I;16", ".png"),
                                          ("CMYK", ".jpg"), ("1", ".png"), ("LA", ".png"), ("F", ".tif")])
def test_pillow_images_convert_as_read_image_converts_their_files(tmp_path, few_colours, mode, suffix):
    rgb = Image.fromarray(few_colours)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    elif mode == "P with transparency":
        image = rgb.quantize(8)
        image.info["transparency"] = 2
    else:
        image = rgb.quantize(8) if mode == "P" else rgb.convert(mode)
    path = tmp_path / f"image{suffix}"
    image.save(path)
    with Image.open(path) as reopened:
        from_pillow = io.from_pillow(reopened)
    from_file = io.read_image(path)
    if from_pillow.ndim == 3 and from_pillow.shape[2] in (2, 4) and np.all(from_pillow[..., -1] == 255):
        from_pillow = from_pillow[..., :-1]  # read_image drops an alpha that is opaque everywhere
        from_pillow = from_pillow[..., 0] if from_pillow.shape[2] == 1 else from_pillow
    np.testing.assert_array_equal(from_pillow, from_file)


def test_kmeans_takes_a_pillow_palette_image_as_its_colours(few_colours):
    image = Image.fromarray(few_colours).quantize(len(COLOURS), dither=Image.Dither.NONE)
    model = fastkm.KMeans(n_clusters=6, random_state=0).fit(image)
    assert model.cluster_centers_.shape == (6, 3)
    assert model.inertia_ == 0


# --- floats and other integer types --------------------------------------------------


def test_floats_in_0_1_are_scaled_to_0_255(photo):
    expected = fastkm.quantize(photo, 8)
    result = fastkm.quantize(photo / 255.0, 8)
    np.testing.assert_array_equal(result.palette, expected.palette)
    np.testing.assert_array_equal(result.labels, expected.labels)
    assert result.psnr == pytest.approx(expected.psnr)
    assert fastkm.quantize(photo.astype(np.float32) / 255, 8).psnr == pytest.approx(expected.psnr)


def test_floats_on_the_0_255_scale_are_refused_with_advice_that_works(photo):
    floats = photo.astype(np.float64)
    with pytest.raises(fastkm.FastkmError, match=r"float pixels range from \d+ to 255") as error:
        fastkm.quantize(floats, 8)
    advice = "np.clip(np.rint(x), 0, 255).astype(np.uint8)"
    assert advice in str(error.value)
    converted = eval(advice, {"np": np, "x": floats})
    np.testing.assert_array_equal(fastkm.quantize(converted, 8).palette, fastkm.quantize(photo, 8).palette)


@pytest.mark.parametrize("values, message", [
    (np.array([[[-1.0, 0.5, 2.0]]]), r"range from -1 to 2.*scale them to \[0, 1\] first"),
    (np.array([[[np.nan, 0.5, 0.2]]]), "NaN or infinity"),
])
def test_other_float_ranges_are_refused(values, message):
    with pytest.raises(fastkm.FastkmError, match=message):
        fastkm.quantize(values, 2)


def test_integer_arrays_in_0_255_are_taken_as_they_are(few_colours):
    result = fastkm.quantize(few_colours.astype(np.int64), 16)
    np.testing.assert_array_equal(result.image, few_colours)
    with pytest.raises(fastkm.FastkmError, match="dtype int64 with values from 1 to 256, expected uint8"):
        fastkm.quantize(few_colours.astype(np.int64) + 1, 4)


def test_sixteen_bit_arrays_are_refused_with_the_scaling_that_keeps_them(few_colours):
    wide = few_colours.astype(np.uint16) * 257
    with pytest.raises(fastkm.FastkmError, match="dtype uint16, expected uint8") as error:
        fastkm.quantize(wide, 16)
    advice = "((x.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)"
    assert advice in str(error.value)
    np.testing.assert_array_equal(eval(advice, {"np": np, "x": wide}), few_colours)


# --- file names and grey images as KMeans input ----------------------------------


@pytest.mark.parametrize("name", ["photo.png", Path("photo.png")])
def test_a_file_name_points_to_read_image(name):
    with pytest.raises(fastkm.FastkmError, match=r"image is a file name \('photo.png'\).*fastkm.io.read_image"):
        fastkm.quantize(name, 5)
    with pytest.raises(fastkm.FastkmError, match=r"X is a file name"):
        fastkm.KMeans(2).fit(name)


def test_kmeans_refuses_a_grey_image_and_takes_it_as_pixels_when_asked(photo):
    grey = photo[..., 1]
    with pytest.raises(fastkm.FastkmError, match=r"X has shape \(\d+, \d+\).*grey image \(H, W\) is X.reshape\(-1, 1\)"):
        fastkm.KMeans(n_clusters=4, random_state=0).fit(grey)
    model = fastkm.KMeans(n_clusters=4, random_state=0).fit(grey.reshape(-1, 1))
    assert model.cluster_centers_.shape == (4, 1) and model.labels_.shape == (grey.size,)
    same = fastkm.KMeans(n_clusters=4, random_state=0).fit(grey[:, :, None])
    np.testing.assert_array_equal(same.cluster_centers_, model.cluster_centers_)
