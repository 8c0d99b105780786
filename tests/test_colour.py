"""Colour profiles, metadata, pipes and pngquant's exit codes, on generated tagged photos.

The Display P3 and Adobe RGB (1998) profiles are built by ``rgb_profile`` (no binary
profile in the repository); the photos are crops of the bundled Kodak parrots whose
values are read as P3 or Adobe RGB values, so that many of their colours lie outside
sRGB, as in a phone's or camera's photo.
"""

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

import fastkm
from fastkm import _spaces
from fastkm.cli import app
from fastkm.io import profiles

runner = CliRunner()
DISPLAY_P3 = profiles.rgb_profile(profiles.PRIMARIES["display-p3"], description="Display P3")
ADOBE_RGB = profiles.rgb_profile(
    profiles.PRIMARIES["adobe-rgb"], gamma=profiles.ADOBE_RGB_GAMMA, description="Adobe RGB (1998)"
)
TAGS = {"p3": DISPLAY_P3, "adobe": ADOBE_RGB}
OUTPUT_SUFFIXES = (".png", ".gif", ".bmp", ".tif", ".webp", ".jpg")
ORIENTATION = 0x0112


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def parrots_crop(sample_path):
    with Image.open(sample_path("kodim23.png")) as image:
        return np.asarray(image.convert("RGB").crop((160, 96, 416, 288)))  # 256x192


@pytest.fixture(scope="module")
def tagged(parrots_crop, tmp_path_factory):
    """Tagged photos by (profile name, suffix): PNG and JPEG (quality 95)."""
    folder = tmp_path_factory.mktemp("tagged")
    paths = {}
    for name, profile in TAGS.items():
        for suffix, options in ((".png", {}), (".jpg", {"quality": 95})):
            path = folder / f"{name}{suffix}"
            Image.fromarray(parrots_crop).save(path, icc_profile=profile, **options)
            paths[name, suffix] = path
    return paths


def rendered(path):
    """The sRGB pixels a colour-managed viewer shows for an image file."""
    with Image.open(path) as image:
        profile = image.info.get("icc_profile")
        pixels = np.asarray(image.convert("RGB"))
    return profiles.to_srgb(pixels, profile)


def mean_delta_e(a, b):
    """Mean OKLab ΔE between two sRGB images of the same shape."""
    lab_a, lab_b = (_spaces.oklab(x.reshape(-1, 3)) for x in (a, b))
    return float(np.linalg.norm(lab_a - lab_b, axis=1).mean())


def own_delta_e(output):
    return float(re.search(r"ΔE (\d+\.\d+)", output).group(1))


# --- profiles --------------------------------------------------------------------------


def from_srgb(rgb, profile):
    image = Image.fromarray(np.array([[rgb]], np.uint8))
    converted = profiles.ImageCms.profileToProfile(
        image, profiles.srgb_profile(), profiles._open(profile), outputMode="RGB"
    )
    return np.asarray(converted)[0, 0].tolist()


def test_built_profiles_give_the_published_conversions():
    # sRGB's primaries in Display P3 and in Adobe RGB (1998), as colour references list them.
    assert from_srgb((255, 0, 0), DISPLAY_P3) == [234, 51, 35]
    assert from_srgb((0, 255, 0), DISPLAY_P3) == [117, 251, 76]
    assert from_srgb((255, 0, 0), ADOBE_RGB) == [219, 0, 0]
    assert from_srgb((0, 255, 0), ADOBE_RGB) == [144, 255, 60]
    assert profiles.describe(DISPLAY_P3) == "Display P3" and profiles.describe(None) == "sRGB"
    built_srgb = profiles.rgb_profile(profiles.PRIMARIES["srgb"], description="my sRGB")
    assert profiles.is_srgb(built_srgb) and not profiles.is_srgb(DISPLAY_P3) and not profiles.is_srgb(ADOBE_RGB)
    assert profiles.same_space(None, built_srgb) and not profiles.same_space(DISPLAY_P3, ADOBE_RGB)


def test_read_image_file_carries_the_profile_and_read_image_stays_an_array(tagged, parrots_crop):
    image_file = fastkm.io.read_image_file(tagged["p3", ".png"])
    assert image_file.icc_profile == DISPLAY_P3
    assert image_file.format == "PNG" and image_file.n_bytes == tagged["p3", ".png"].stat().st_size
    np.testing.assert_array_equal(image_file.pixels, parrots_crop)  # values as stored, not converted
    assert fastkm.io.read_image_file(tagged["adobe", ".jpg"]).icc_profile == ADOBE_RGB
    assert isinstance(fastkm.io.read_image(tagged["p3", ".png"]), np.ndarray)
    same_bytes = fastkm.io.read_image_file(tagged["p3", ".png"].read_bytes())
    np.testing.assert_array_equal(same_bytes.pixels, parrots_crop)
    assert same_bytes.icc_profile == DISPLAY_P3


def png_with_chunks(path, pixels, chunks):
    info = PngImagePlugin.PngInfo()
    for chunk_type, data in chunks:
        info.add(chunk_type, data)
    Image.fromarray(pixels).save(path, pnginfo=info)


def gama(gamma):
    return b"gAMA", int(round(gamma * 100000)).to_bytes(4, "big")


def test_png_colour_chunks(tmp_path):
    rgb = np.full((4, 4, 3), 128, np.uint8)
    png_with_chunks(tmp_path / "srgb.png", rgb, [(b"sRGB", b"\0")])
    png_with_chunks(tmp_path / "gamma22.png", rgb, [gama(1 / 2.2)])
    png_with_chunks(tmp_path / "linear.png", rgb, [gama(1.0)])
    assert fastkm.io.read_image_file(tmp_path / "srgb.png").icc_profile is None
    assert fastkm.io.read_image_file(tmp_path / "gamma22.png").icc_profile is None  # sRGB, as browsers take it
    linear = fastkm.io.read_image_file(tmp_path / "linear.png")
    assert linear.icc_profile is not None
    # Linear light 0.5 is sRGB 188.
    assert np.abs(profiles.to_srgb(linear.pixels, linear.icc_profile).astype(int) - 188).max() <= 1
    # A grey PNG's gamma is applied on reading: grey stays grey, in sRGB.
    png_with_chunks(tmp_path / "grey.png", np.full((4, 4), 128, np.uint8), [gama(1.0)])
    grey = fastkm.io.read_image_file(tmp_path / "grey.png")
    assert grey.pixels.shape == (4, 4) and grey.icc_profile is None and abs(int(grey.pixels[0, 0]) - 188) <= 1


# --- acceptance: the colours shown survive quantization in every output format ----------


@pytest.mark.parametrize("source", [("p3", ".png"), ("p3", ".jpg"), ("adobe", ".png"), ("adobe", ".jpg")])
def test_colour_managed_output_matches_the_input(tagged, tmp_path, source):
    """A viewer shows the output within 1.25x the quantization's own mean ΔE of the
    input (2x for JPEG outputs, whose compression adds its own)."""
    path = tagged[source]
    shown_input = rendered(path)
    for suffix in OUTPUT_SUFFIXES:
        output = tmp_path / f"out{suffix}"
        result = invoke("quantize", path, "-k", 64, "-o", output, "--force")
        assert result.exit_code == 0, result.output
        shift = mean_delta_e(rendered(output), shown_input)
        limit = (2.0 if suffix == ".jpg" else 1.25) * own_delta_e(result.output)
        assert shift <= limit, (source, suffix, shift, limit)
        with Image.open(output) as written:
            kept = written.info.get("icc_profile")
        if suffix in (".gif", ".bmp"):
            assert kept is None and f"is in {profiles.describe(TAGS[source[0]])}; converted to sRGB" in result.output
        else:
            assert kept == TAGS[source[0]]


@pytest.mark.parametrize("name", ["p3", "adobe"])
def test_dropping_the_profile_would_fail_the_check(tagged, tmp_path, name):
    """The check above can fail: the same output read as sRGB (the profile dropped, as
    fastkm did before) is more than 1.25x the quantization's error away at 256 colours."""
    output = tmp_path / "out.png"
    result = invoke("quantize", tagged[name, ".png"], "-k", 256, "-o", output)
    with Image.open(output) as written:
        untagged = np.asarray(written.convert("RGB"))
    assert mean_delta_e(untagged, rendered(tagged[name, ".png"])) > 1.25 * own_delta_e(result.output)


def test_srgb_option_converts_and_writes_untagged(tagged, tmp_path):
    output = tmp_path / "out.png"
    result = invoke("quantize", tagged["adobe", ".png"], "-k", 64, "-o", output, "--srgb")
    assert result.exit_code == 0, result.output
    with Image.open(output) as written:
        assert "icc_profile" not in written.info
    shown = rendered(tagged["adobe", ".png"])
    assert mean_delta_e(rendered(output), shown) <= 1.01 * own_delta_e(result.output)


def test_given_palette_is_srgb(tagged, tmp_path):
    palette = tmp_path / "palette.json"
    palette.write_text('{"palette": [[0, 0, 0], [255, 255, 255], [200, 40, 40], [40, 160, 60], [40, 60, 200]]}')
    output = tmp_path / "out.png"
    result = invoke("quantize", tagged["p3", ".png"], "--palette", palette, "-o", output)
    assert result.exit_code == 0, result.output
    with Image.open(output) as written:
        assert "icc_profile" not in written.info
        assert len(written.getcolors()) <= 5
    expected = fastkm.quantize(profiles.to_srgb(fastkm.io.read_image(tagged["p3", ".png"]), DISPLAY_P3), 5,
                               palette=np.array([[0, 0, 0], [255, 255, 255], [200, 40, 40], [40, 160, 60],
                                                 [40, 60, 200]], np.uint8), space="auto")
    np.testing.assert_array_equal(fastkm.io.read_image(output), expected.image)


def test_shared_palette_keeps_one_profile_and_converts_mixed_ones(tagged, tmp_path, sample_path):
    jpeg_copy = tmp_path / "p3-jpeg.jpg"
    jpeg_copy.write_bytes(tagged["p3", ".jpg"].read_bytes())
    same = invoke("quantize", tagged["p3", ".png"], jpeg_copy, "--shared-palette", "-k", 16, "-o", tmp_path / "same")
    assert same.exit_code == 0, same.output
    for name in ("p3.png", "p3-jpeg.png"):
        with Image.open(tmp_path / "same" / name) as written:
            assert written.info.get("icc_profile") == DISPLAY_P3
    mixed = invoke("quantize", tagged["p3", ".png"], tagged["adobe", ".jpg"], "--shared-palette", "-k", 16,
                   "-o", tmp_path / "mixed")
    assert mixed.exit_code == 0, mixed.output
    assert "different colour spaces (Adobe RGB (1998), Display P3)" in mixed.output
    palettes = []
    for name in ("p3.png", "adobe.png"):
        with Image.open(tmp_path / "mixed" / name) as written:
            assert "icc_profile" not in written.info
            palettes.append({tuple(c) for _, c in written.convert("RGB").getcolors()})
    assert palettes[0] | palettes[1] and len(palettes[0] | palettes[1]) <= 16  # one palette, in sRGB


def test_compare_shows_colour_managed_pixels(tmp_path):
    p3_colour = np.array([200, 60, 60], np.uint8)
    source = tmp_path / "flat.png"
    Image.fromarray(np.tile(p3_colour, (64, 64, 1))).save(source, icc_profile=DISPLAY_P3)
    shown = profiles.to_srgb(p3_colour[None, None], DISPLAY_P3)[0, 0]
    assert not np.array_equal(shown, p3_colour)
    result = invoke("compare", source, "-k", 2, "-o", tmp_path / "figure.png")
    assert result.exit_code == 0, result.output
    colours = {tuple(c) for _, c in Image.open(tmp_path / "figure.png").convert("RGB").getcolors(1 << 16)}
    assert tuple(shown) in colours and tuple(p3_colour) not in colours


# --- metadata ----------------------------------------------------------------------------


def test_metadata_kept_orientation_applied_and_strip(tmp_path, parrots_crop):
    source = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored on its side: shown rotated 90 degrees clockwise
    exif[0x010F] = "Camera maker"
    Image.fromarray(parrots_crop).save(source, exif=exif, icc_profile=DISPLAY_P3, dpi=(300, 300), quality=95)
    kept = tmp_path / "kept.png"
    assert invoke("quantize", source, "-k", 16, "-o", kept).exit_code == 0
    with Image.open(kept) as written:
        assert written.size == (192, 256)  # the rotation is in the pixels
        assert written.getexif().get(ORIENTATION) is None and written.getexif().get(0x010F) == "Camera maker"
        assert written.info.get("icc_profile") == DISPLAY_P3
        assert tuple(round(v) for v in written.info["dpi"]) == (300, 300)
    stripped = tmp_path / "stripped.webp"
    assert invoke("quantize", source, "-k", 16, "-o", stripped, "--strip").exit_code == 0
    with Image.open(stripped) as written:
        assert written.size == (192, 256)
        assert "exif" not in written.info and written.info.get("icc_profile") == DISPLAY_P3


def test_png_text_and_xmp_travel_to_png(tmp_path, parrots_crop):
    source = tmp_path / "text.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Parrots")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    Image.fromarray(parrots_crop).save(source, pnginfo=info)
    assert invoke("quantize", source, "-k", 8, "-o", tmp_path / "out.png").exit_code == 0
    with Image.open(tmp_path / "out.png") as written:
        written.load()
        assert written.text.get("Title") == "Parrots" and "xmpmeta" in written.info.get("xmp", b"").decode()
    assert invoke("quantize", source, "-k", 8, "-o", tmp_path / "bare.png", "--strip").exit_code == 0
    with Image.open(tmp_path / "bare.png") as written:
        written.load()
        assert written.text == {"Software": "fastkm"} and "xmp" not in written.info  # how fastkm knows its outputs


# --- pipes and exit codes -----------------------------------------------------------------


def fastkm_command(*args, **options):
    command = [sys.executable, "-c", "from fastkm.cli import run; run()", *map(str, args)]
    return subprocess.run(command, **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **options})


@pytest.mark.parametrize("source", [("p3", ".png"), ("adobe", ".jpg")])
def test_pipe_gives_the_bytes_of_the_file_run(tagged, tmp_path, source):
    """cat x.png | fastkm quantize - -k 16 -o - > y.png  ==  fastkm quantize x.png -k 16 -o y.png"""
    to_file = fastkm_command("quantize", tagged[source], "-k", 16, "-o", tmp_path / "y.png")
    assert to_file.returncode == 0, to_file.stderr
    piped = fastkm_command("quantize", "-", "-k", 16, "-o", "-", input=tagged[source].read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == (tmp_path / "y.png").read_bytes()
    summary = piped.stderr.decode().strip().splitlines()[-1]
    assert summary.startswith("standard input 256x192 -> standard output: 16 colours")


def test_pipe_format_and_default_output(tagged, tmp_path):
    data = tagged["p3", ".png"].read_bytes()
    piped = runner.invoke(app, ["quantize", "-", "-k", "8", "--format", "webp"], input=data)
    assert piped.exit_code == 0, piped.output
    with Image.open(io.BytesIO(piped.stdout_bytes)) as written:  # '-' in, no -o: standard output
        assert written.format == "WEBP" and written.info.get("icc_profile") == DISPLAY_P3
    clash = invoke("quantize", tagged["p3", ".png"], "-o", tmp_path / "x.png", "--format", "gif")
    assert clash.exit_code == 2
    too_large = runner.invoke(app, ["quantize", "-", "--max-pixels", "1000", "-o", str(tmp_path / "x.png")], input=data)
    assert too_large.exit_code == 1 and "standard input: 256x192" in too_large.output and "--max-pixels" in too_large.output
    empty = runner.invoke(app, ["quantize", "-", "-o", str(tmp_path / "x.png")], input=b"")
    assert empty.exit_code == 1 and "standard input: no data" in empty.output
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_image_data_is_never_written_to_a_terminal(tagged):
    leader, follower = os.openpty()
    try:
        completed = fastkm_command("quantize", tagged["p3", ".png"], "-o", "-", stdout=follower, stderr=subprocess.PIPE)
    finally:
        os.close(follower)
        os.close(leader)
    assert completed.returncode == 1
    assert completed.stderr.decode().strip() == (
        "error: standard output is a terminal; redirect it (> out.png) or name an output file with -o"
    )


def test_skip_if_larger(tagged, tmp_path):
    small = tmp_path / "small.png"
    assert invoke("quantize", tagged["p3", ".png"], "-k", 4, "-o", small, "--optimize").exit_code == 0
    before = small.read_bytes()
    result = invoke("quantize", small, "-k", 4, "-o", tmp_path / "again.png", "--skip-if-larger")
    assert result.exit_code == 98
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "would not be smaller than the input" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "again.png").exists() and small.read_bytes() == before
    piped = runner.invoke(app, ["quantize", "-", "-k", "4", "--skip-if-larger"], input=before)
    assert piped.exit_code == 98 and piped.stdout_bytes == b""
    shrinks = invoke("quantize", tagged["p3", ".png"], "-k", 4, "-o", tmp_path / "fine.png", "--skip-if-larger")
    assert shrinks.exit_code == 0 and (tmp_path / "fine.png").exists()
    # In a batch the skipped file is listed and the exit code says so.
    batch = invoke("quantize", small, tagged["p3", ".png"], "-k", 4, "-o", tmp_path / "out", "--skip-if-larger")
    assert batch.exit_code == 98, batch.output
    assert "not smaller" in batch.output and (tmp_path / "out" / "p3.png").exists()
    assert not (tmp_path / "out" / "small.png").exists()
