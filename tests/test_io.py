"""Image files: decoding to uint8, indexed output, atomic writes."""

import os

import numpy as np
import pytest
from PIL import Image

import fastkm
from fastkm import io


@pytest.mark.parametrize("suffix", [".png", ".gif", ".bmp", ".tif"])
def test_indexed_round_trip_is_exact(tmp_path, sample_photo, suffix):
    photo = sample_photo("kodim23.png")
    result = fastkm.quantize(photo, 16)
    path = tmp_path / f"out{suffix}"
    io.write_quantized(path, result.palette, result.labels)
    with Image.open(path) as written:
        assert written.mode == "P"
        assert written.size == (photo.shape[1], photo.shape[0])
    np.testing.assert_array_equal(io.read_image(path), result.image)


def test_indexed_png_is_smaller_than_rgb_png(tmp_path, sample_photo):
    photo = sample_photo("kodim03.png")
    result = fastkm.quantize(photo, 16)
    indexed = tmp_path / "indexed.png"
    io.write_quantized(indexed, result.palette, result.labels)
    rgb = tmp_path / "rgb.png"
    Image.fromarray(result.image).save(rgb)
    with Image.open(indexed) as written:
        assert written.mode == "P"
        assert len(written.getcolors()) <= 16
    assert indexed.stat().st_size < 0.8 * rgb.stat().st_size


def test_grey_round_trip(tmp_path):
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (20, 1))
    result = fastkm.quantize(grey, 8)
    path = tmp_path / "grey.png"
    io.write_quantized(path, result.palette, result.labels)
    back = io.read_image(path)
    # A palette PNG decodes to RGB; its three channels carry the grey levels.
    np.testing.assert_array_equal(back[..., 0], result.image)


def test_rgb_outputs(tmp_path, sample_photo):
    photo = sample_photo("kodim23.png")[:64, :64]
    result = fastkm.quantize(photo, 8)
    io.write_quantized(tmp_path / "out.webp", result.palette, result.labels)
    np.testing.assert_array_equal(io.read_image(tmp_path / "out.webp"), result.image)  # lossless
    io.write_quantized(tmp_path / "out.jpg", result.palette, result.labels)
    assert io.read_image(tmp_path / "out.jpg").shape == photo.shape


def test_write_refuses_unknown_format_and_too_many_colours(tmp_path):
    with pytest.raises(io.ImageWriteError, match="unknown output format .xyz"):
        io.write_quantized(tmp_path / "a.xyz", np.zeros((2, 3), np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(io.ImageWriteError, match="300 colours do not fit an indexed .png"):
        io.write_quantized(tmp_path / "a.png", np.zeros((300, 3), np.uint8), np.zeros((2, 2), np.uint16))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(tmp_path):
    def broken_save(temporary):
        with open(temporary, "wb") as file:
            file.write(b"half an image")
        raise OSError("disk full")

    with pytest.raises(io.ImageWriteError, match="disk full"):
        io._atomic_save(tmp_path / "out.png", broken_save)
    assert list(tmp_path.iterdir()) == []


def test_written_file_has_normal_permissions(tmp_path):
    path = tmp_path / "out.png"
    io.write_quantized(path, np.zeros((1, 3), np.uint8), np.zeros((2, 2), np.uint8))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_read_modes(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    # Palette image -> RGB
    Image.fromarray(rgb).quantize(8).save(tmp_path / "p.png")
    assert io.read_image(tmp_path / "p.png").shape == (20, 30, 3)
    # 16-bit grey -> 8-bit grey, rounded
    deep = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "deep.png"), [[0, 1, 255, 128]])
    # CMYK JPEG -> RGB
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert io.read_image(tmp_path / "cmyk.jpg").shape == (20, 30, 3)
    # Opaque RGBA -> RGB; RGBA with transparency kept as RGBA
    rgba = np.dstack([rgb, np.full((20, 30), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "opaque.png"), rgb)
    rgba[0, 0, 3] = 0
    rgba[1, 1, 3] = 100
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "alpha.png"), rgba)
    # Grey + alpha -> (H, W, 2); a palette image with tRNS transparency -> RGBA
    grey_alpha = np.dstack([rgb[..., 0], rgba[..., 3]])
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "la.png"), grey_alpha)
    indexed = Image.fromarray(rgb).quantize(8)
    indexed.save(tmp_path / "trns.png", transparency=0)
    read = io.read_image(tmp_path / "trns.png")
    assert read.shape == (20, 30, 4)
    np.testing.assert_array_equal(read[..., 3] == 0, np.asarray(indexed) == 0)


def test_read_applies_exif_orientation(tmp_path):
    array = np.zeros((10, 20, 3), np.uint8)
    array[:, :10] = 255  # left half white
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    shown = io.read_image(tmp_path / "rotated.jpg")
    assert shown.shape == (20, 10, 3)
    assert shown[:8].mean() > 200 and shown[12:].mean() < 50  # white half now on top


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such file"), (b"", "file is empty"), (b"hello, this is text", "cannot decode"), (b"\x89PNG\r\n\x1a\n\x00", "cannot decode")],
)
def test_read_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(io.ImageReadError, match=message) as caught:
        io.read_image(path)
    assert "\n" not in str(caught.value)


def test_read_truncated_jpeg(tmp_path, sample_path):
    data = sample_path("bus-3mp.jpg").read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(io.ImageReadError, match="cannot decode"):
        io.read_image(path)


def test_read_folder_is_an_error(tmp_path):
    with pytest.raises(io.ImageReadError, match="is a folder"):
        io.read_image(tmp_path)


def _png_claiming_size(path, width, height):
    """A 1x1 PNG whose header is rewritten to claim width x height (CRC fixed)."""
    import struct
    import zlib

    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    # IHDR data starts at byte 16 (8 signature + 4 length + 4 type); CRC follows 13 bytes.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_claiming_size(bomb, 100000, 100000)
    with pytest.raises(io.ImageReadError, match="100000x100000 = 10000 megapixels exceeds the limit of 200"):
        io.read_image(bomb)
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    with pytest.raises(io.ImageReadError, match="exceeds the limit"):
        io.read_image(small, max_pixels=1000)
    assert io.read_image(small, max_pixels=1200).shape == (30, 40, 3)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own limit restored


def _alpha_result():
    """A small quantized RGBA image: entry 0 transparent, one translucent, two opaque."""
    palette = np.array([[0, 0, 0, 0], [200, 10, 10, 128], [10, 200, 10, 255], [10, 10, 200, 255]], np.uint8)
    labels = np.arange(20 * 30).reshape(20, 30).astype(np.uint8) % 4
    return palette, labels


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_alpha_round_trip_is_exact(tmp_path, suffix):
    palette, labels = _alpha_result()
    path = tmp_path / f"alpha{suffix}"
    io.write_quantized(path, palette, labels)
    np.testing.assert_array_equal(io.read_image(path), palette[labels])
    if suffix == ".png":
        with Image.open(path) as written:  # indexed, transparency in tRNS
            assert written.mode == "P" and "transparency" in written.info


def test_alpha_gif_and_formats_without_alpha(tmp_path):
    palette, labels = _alpha_result()
    binary = palette.copy()
    binary[1, 3] = 255
    io.write_quantized(tmp_path / "a.gif", binary, labels)  # on/off transparency fits a GIF
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.gif"), binary[labels])
    for name, message in (("b.gif", "GIF holds only fully transparent or opaque"), ("c.bmp", "cannot hold"),
                          ("d.jpg", "cannot hold")):
        with pytest.raises(io.ImageWriteError, match=message):
            io.write_quantized(tmp_path / name, palette, labels)
        assert not (tmp_path / name).exists()
    # Grey + alpha: indexed PNG with an RGBA palette (grey in all three channels).
    grey_alpha = palette[:, [0, 3]]
    io.write_quantized(tmp_path / "la.png", grey_alpha, labels)
    np.testing.assert_array_equal(io.read_image(tmp_path / "la.png"), grey_alpha[:, [0, 0, 0, 1]][labels])


def test_frame_count(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 128, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert io.frame_count(tmp_path / "anim.gif") == 3
    np.testing.assert_array_equal(io.read_image(tmp_path / "anim.gif"), np.zeros((8, 8, 3)))  # the first
    frames[0].save(tmp_path / "still.png")
    assert io.frame_count(tmp_path / "still.png") == 1
    assert io.frame_count(tmp_path / "missing.png") == 1


@pytest.mark.parametrize("kind", ["still", "animation"])
def test_a_png_cut_anywhere_is_refused_even_where_its_pixels_decode(tmp_path, kind):
    """Cut inside the last IDAT's checksum or the IEND chunk, a PNG's pixels still
    decode: the missing end chunk says the file is not whole."""
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    whole = tmp_path / "whole.png"
    if kind == "still":
        Image.fromarray(pixels).save(whole)
    else:
        frames = [Image.fromarray(pixels), Image.fromarray(pixels[::-1])]
        frames[0].save(whole, save_all=True, append_images=frames[1:], duration=100)
    data = whole.read_bytes()
    cut = tmp_path / "cut.png"
    for n_bytes in (len(data) - 1, len(data) - 12, len(data) - 16):
        cut.write_bytes(data[:n_bytes])
        with pytest.raises(io.ImageReadError, match="truncated"):
            io.read_image(cut)
        with pytest.raises(io.ImageReadError, match="truncated"):
            io.read_image(data[:n_bytes])
    cut.write_bytes(data + b"data some tools append")
    assert io.read_image(cut).shape == (4, 4, 3)


@pytest.mark.parametrize(
    "palette, labels, message",
    [
        (np.zeros((4, 3), np.uint8), np.full((2, 2), 4, np.uint8), "labels range from 4 to 4; a palette of 4 colours"),
        (np.zeros((4, 3), np.uint8), np.full((2, 2), -1), "labels range from -1 to -1"),
        (np.zeros((4, 3), np.uint8), np.zeros((2, 2)), "dtype float64; expected \\(H, W\\) integer"),
        (np.zeros((4, 3), np.uint8), np.zeros(4, np.uint8), "shape \\(4,\\)"),
        (np.zeros((4, 3), np.uint8), np.zeros((0, 2), np.uint8), "shape \\(0, 2\\)"),
        (np.full((4, 3), 0.5), np.zeros((2, 2), np.uint8), "palette has dtype float64; expected uint8"),
        (np.zeros((4, 5), np.uint8), np.zeros((2, 2), np.uint8), "palette has shape \\(4, 5\\)"),
        (np.zeros((0, 3), np.uint8), np.zeros((2, 2), np.uint8), "palette has shape \\(0, 3\\)"),
    ],
)
def test_write_quantized_refuses_what_it_would_write_wrong(tmp_path, palette, labels, message):
    path = tmp_path / "out.png"
    with pytest.raises(io.ImageWriteError, match=message) as caught:
        io.write_quantized(path, palette, labels)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_write_quantized_takes_integer_palettes_in_range(tmp_path):
    io.write_quantized(tmp_path / "out.png", [[0, 128, 255]], np.zeros((2, 2), np.int64))
    assert np.array_equal(io.read_image(tmp_path / "out.png"), np.tile([0, 128, 255], (2, 2, 1)))


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((3, 3, 3)), "dtype float64; expected uint8"),
        (np.zeros((3, 3, 5), np.uint8), "shape \\(3, 3, 5\\)"),
        (np.zeros((0, 3, 3), np.uint8), "shape \\(0, 3, 3\\)"),
        (np.zeros(3, np.uint8), "shape \\(3,\\)"),
    ],
)
def test_write_image_refuses_other_images(tmp_path, image, message):
    with pytest.raises(io.ImageWriteError, match=message):
        io.write_image(tmp_path / "out.png", image)
    with pytest.raises(io.ImageWriteError, match="unknown output format .xyz"):
        io.write_image(tmp_path / "out.xyz", np.zeros((3, 3, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_palette_refuses_other_palettes(tmp_path):
    for palette, message in [(np.zeros((3, 5), np.uint8), "shape \\(3, 5\\)"), (np.zeros((3, 3)), "dtype float64"),
                             (np.zeros((0, 3), np.uint8), "shape \\(0, 3\\)")]:
        with pytest.raises(io.ImageWriteError, match=message):
            io.write_palette(tmp_path / "p.json", palette)
    assert list(tmp_path.iterdir()) == []


def test_write_animation_refuses_labels_past_the_palette_and_bad_durations(tmp_path):
    palette = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    labels = np.zeros((2, 3, 3), np.uint8)
    past = labels.copy()
    past[1, 2, 2] = 2
    for suffix in (".gif", ".png"):
        with pytest.raises(io.ImageWriteError, match="labels range from 0 to 2; a palette of 2 colours"):
            io.write_animation(tmp_path / f"a{suffix}", None, [100, 100], palettes=[palette], labels=past)
        with pytest.raises(io.ImageWriteError, match="labels of frame 1 range from 5 to 5"):
            io.write_animation(tmp_path / f"a{suffix}", None, [100, 100], palettes=[palette, palette],
                               labels=np.stack([labels[0], labels[1] + 5]))
        with pytest.raises(io.ImageWriteError, match="durations must be 2 finite numbers"):
            io.write_animation(tmp_path / f"a{suffix}", None, [float("nan"), 100], palettes=[palette], labels=labels)
    assert list(tmp_path.iterdir()) == []


def test_max_pixels_none_is_no_limit_and_nonsense_is_refused(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (3, 2)).save(path)
    assert io.read_image(path, max_pixels=None).shape == (2, 3, 3)
    assert io.read_animation(path, max_pixels=None).frames.shape == (1, 2, 3, 3)
    for nonsense in (0, -1, float("nan"), "5"):
        with pytest.raises(ValueError, match="must be a number of pixels >= 1, or None"):
            io.read_image(path, max_pixels=nonsense)
    with pytest.raises(io.ImageReadError, match="exceeds the limit of 1 pixel;"):
        io.read_image(path, max_pixels=1)


def test_bytes_that_are_no_image_are_one_line_naming_the_data():
    with pytest.raises(io.ImageReadError) as caught:
        io.read_image(b"not an image at all")
    assert str(caught.value) == "image data: cannot decode as an image (cannot identify image file)"
    with pytest.raises(io.ImageReadError, match="^image data: no data"):
        io.read_image(b"")
