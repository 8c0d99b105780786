"""The indexed PNG encoder: bit packing against a plain reference, exact round trips
through Pillow's decoder, a short tRNS, and smaller files than Pillow's writer."""

import io as bytes_io
import struct

import numpy as np
import pytest
from PIL import Image

import fastkm
from fastkm import io
from fastkm.io import png


def reference_packed_rows(labels, bits):
    """PNG packing one pixel at a time: pixel x of a row goes to byte x * bits // 8, high bits first."""
    height, width = labels.shape
    rows = np.zeros((height, (width * bits + 7) // 8), np.uint8)
    for y in range(height):
        for x in range(width):
            bit = x * bits
            rows[y, bit // 8] |= int(labels[y, x]) << (8 - bits - bit % 8)
    return rows


def chunks(data):
    """[(tag, payload)] of a PNG's chunks."""
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        found.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return found


@pytest.mark.parametrize(("n_entries", "bits"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (256, 8)])
def test_bit_depth_is_the_smallest_that_holds_the_palette(n_entries, bits):
    assert png.bit_depth(n_entries) == bits


def test_bit_depth_refuses_more_than_256_entries():
    with pytest.raises(ValueError, match="at most 256"):
        png.bit_depth(257)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("width", [1, 7, 8, 9, 13])
def test_packed_rows_match_reference(bits, width):
    labels = np.random.default_rng(bits * 100 + width).integers(0, 1 << bits, (5, width)).astype(np.uint8)
    np.testing.assert_array_equal(png.packed_rows(labels, bits), reference_packed_rows(labels, bits))


@pytest.mark.parametrize("n_entries", [1, 2, 3, 4, 5, 16, 17, 200, 256])
@pytest.mark.parametrize("width", [1, 5, 33])
def test_round_trip_through_pillow_is_exact(n_entries, width):
    rng = np.random.default_rng(n_entries * 7 + width)
    colours = rng.integers(0, 256, (n_entries, 3)).astype(np.uint8)
    labels = rng.integers(0, n_entries, (11, width)).astype(np.uint8)
    data = png.indexed_png(colours, labels)
    with Image.open(bytes_io.BytesIO(data)) as decoded:
        decoded.load()  # checks every chunk's CRC and the zlib stream
        assert decoded.mode == "P" and decoded.size == (width, 11)
        np.testing.assert_array_equal(np.asarray(decoded), labels)
        palette = np.array(decoded.getpalette()[: 3 * n_entries], np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(palette, colours)
        assert "transparency" not in decoded.info
    header = chunks(data)[0]
    assert header[0] == b"IHDR" and header[1][8] == png.bit_depth(n_entries)
    assert [tag for tag, _ in chunks(data)] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]


def test_trns_stops_at_the_last_entry_that_is_not_opaque():
    colours = np.array([[0, 0, 0], [200, 10, 10], [10, 200, 10], [10, 10, 200], [9, 9, 9]], np.uint8)
    alpha = np.array([0, 128, 255, 255, 255], np.uint8)
    labels = (np.arange(6 * 10).reshape(6, 10) % 5).astype(np.uint8)
    data = png.indexed_png(colours, labels, alpha)
    assert dict(chunks(data))[b"tRNS"] == bytes([0, 128])
    with Image.open(bytes_io.BytesIO(data)) as decoded:
        rgba = np.asarray(decoded.convert("RGBA"))
    np.testing.assert_array_equal(rgba, np.concatenate([colours, alpha[:, None]], axis=1)[labels])
    # All opaque: no tRNS chunk at all.
    assert b"tRNS" not in dict(chunks(png.indexed_png(colours, labels, np.full(5, 255, np.uint8))))


def test_level_changes_bytes_not_pixels_and_output_is_deterministic(sample_photo):
    result = fastkm.quantize(sample_photo("kodim23.png"), 32)
    fast = png.indexed_png(result.palette, result.labels, level=1)
    default = png.indexed_png(result.palette, result.labels)
    smallest = png.indexed_png(result.palette, result.labels, level=png.OPTIMIZE_LEVEL)
    assert default == png.indexed_png(result.palette, result.labels)
    assert len(smallest) < len(default) < len(fast)
    for data in (fast, smallest):
        with Image.open(bytes_io.BytesIO(data)) as decoded:
            np.testing.assert_array_equal(np.asarray(decoded), result.labels)


def test_default_level_searches_harder_on_small_images_only():
    """Up to NEAR_OPTIMAL_MAX_BYTES of scanlines the default is near-optimal parsing
    (smaller than level 6); above it, level 6 (the search's time grows with the image)."""
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, size=(200, 3), dtype=np.uint8)
    # Runs of labels: compressible, as quantized photos are.
    small = np.repeat(rng.integers(0, 200, size=(300, 50)), 8, axis=1).astype(np.uint8)  # 400 x 300
    assert small.size + small.shape[0] <= png.NEAR_OPTIMAL_MAX_BYTES
    near_optimal = png.indexed_png(colours, small, level=png.NEAR_OPTIMAL_LEVEL)
    assert png.indexed_png(colours, small) == near_optimal
    assert len(near_optimal) < len(png.indexed_png(colours, small, level=png.DEFAULT_LEVEL))
    large = np.tile(small, (8, 6))  # 2400 x 2400: 5.76 MB of scanlines
    assert large.size > png.NEAR_OPTIMAL_MAX_BYTES
    assert png.indexed_png(colours, large) == png.indexed_png(colours, large, level=png.DEFAULT_LEVEL)


@pytest.mark.parametrize("n_colors", [8, 256])
def test_written_png_is_smaller_than_pillows(tmp_path, sample_photo, n_colors):
    """The reason for an own encoder: smaller than Pillow's PNG writer at zlib level 3 (the
    former default, no faster), and with optimize smaller than Pillow's optimize."""
    result = fastkm.quantize(sample_photo("kodim03.png"), n_colors)
    ours, ours_optimized = tmp_path / "ours.png", tmp_path / "ours-optimized.png"
    io.write_quantized(ours, result.palette, result.labels)
    io.write_quantized(ours_optimized, result.palette, result.labels, optimize=True)
    pillow = Image.frombytes("P", result.labels.shape[::-1], result.labels.tobytes())
    pillow.putpalette(result.palette.tobytes())
    pillow_default, pillow_optimized = bytes_io.BytesIO(), bytes_io.BytesIO()
    pillow.save(pillow_default, format="PNG", compress_level=3)
    pillow.save(pillow_optimized, format="PNG", optimize=True)
    assert ours.stat().st_size < len(pillow_default.getvalue())
    assert ours_optimized.stat().st_size < min(ours.stat().st_size, len(pillow_optimized.getvalue()))
    np.testing.assert_array_equal(io.read_image(ours_optimized), result.image)


def test_text_chunks_and_the_software_note(tmp_path):
    colours = np.array([[1, 2, 3], [200, 100, 0]], np.uint8)
    labels = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    with Image.open(bytes_io.BytesIO(png.indexed_png(colours, labels, text={"Comment": "two colours"}))) as decoded:
        assert decoded.info["Comment"] == "two colours"
    io.write_quantized(tmp_path / "out.png", colours, labels)
    with Image.open(tmp_path / "out.png") as written:  # how a later run recognises its own outputs
        assert written.info["Software"] == io.write.SOFTWARE
