"""fastkm palette (dominant colours) and compare --palette-strip through CliRunner."""

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fastkm.cli import app
from fastkm.io import read_image

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def photo_copy(tmp_path, sample_path):
    path = tmp_path / "parrots.png"
    shutil.copy(sample_path("kodim23.png"), path)
    return path


def test_palette_prints_colours_by_falling_share(photo_copy):
    result = invoke("palette", photo_copy, "-k", 5)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5
    pattern = re.compile(r"^#([0-9a-f]{6})\s+rgb\(\s*(\d+),\s*(\d+),\s*(\d+)\)\s+([\d.]+) %$")
    shares = []
    for line in lines:
        match = pattern.match(line)
        assert match, line
        code, *rgb, percent = match.groups()
        assert bytes.fromhex(code) == bytes(int(v) for v in rgb)
        shares.append(float(percent))
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(100, abs=0.3)  # each rounded to 0.1 %


def test_palette_json_shares_sum_to_one_and_match_the_quantized_image(photo_copy):
    result = invoke("palette", photo_copy, "-k", 5, "--json", "--seed", 2)
    assert result.exit_code == 0, result.output
    colours = json.loads(result.stdout)
    assert [sorted(c) for c in colours] == [["hex", "rgb", "share"]] * 5
    shares = [c["share"] for c in colours]
    assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    assert shares == sorted(shares, reverse=True)
    for colour in colours:
        assert colour["hex"] == "#" + "".join(f"{v:02x}" for v in colour["rgb"])
    # The same colours and shares as the API's quantize with the same seed.
    import fastkm

    fitted = fastkm.quantize(read_image(photo_copy), 5, seed=2, space="auto")
    by_share = np.argsort(-fitted.counts, kind="stable")
    assert [c["rgb"] for c in colours] == fitted.palette[by_share].tolist()
    np.testing.assert_allclose(shares, fitted.shares[by_share])


def test_palette_swatch_strip(photo_copy, tmp_path):
    swatch = tmp_path / "swatch.png"
    result = invoke("palette", photo_copy, "-k", 4, "--json", "-o", swatch)
    assert result.exit_code == 0, result.output
    colours = json.loads(result.stdout)
    strip = read_image(swatch)
    assert strip.shape == (100, 600, 3)
    # Left to right, the colours by falling share, each band as wide as its share.
    row = strip[50]
    starts = np.flatnonzero(np.any(np.diff(row.astype(int), axis=0) != 0, axis=1)) + 1
    bands = np.split(row, starts)
    assert [band[0].tolist() for band in bands] == [c["rgb"] for c in colours]
    for band, colour in zip(bands, colours):
        assert len(band) == pytest.approx(600 * colour["share"], abs=1.5)
    again = invoke("palette", photo_copy, "-k", 4, "-o", swatch)
    assert again.exit_code == 1 and "already exists; use --force" in again.output
    refused = invoke("palette", photo_copy, "-o", photo_copy, "--force")
    assert refused.exit_code == 1 and "is the input file" in refused.output


def test_palette_leaves_transparent_pixels_out(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)
    rgba[:, 10:15] = (0, 0, 255, 255)  # the other 15 columns are fully transparent
    path = tmp_path / "logo.png"
    Image.fromarray(rgba).save(path)
    result = invoke("palette", path, "-k", 2, "--json")
    assert result.exit_code == 0, result.output
    colours = json.loads(result.stdout)
    assert [(c["hex"], round(c["share"], 6)) for c in colours] == [("#ff0000", round(2 / 3, 6)), ("#0000ff", round(1 / 3, 6))]
    assert "300 fully transparent pixels left out" in result.stderr


def test_palette_of_a_grey_image_and_bad_options(tmp_path):
    grey = np.repeat(np.array([[10, 10, 200]], np.uint8), 8, axis=0)
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    result = invoke("palette", path, "-k", 3)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("#0a0a0a    rgb( 10,  10,  10)   66.7 %")  # a grey image 3 pixels wide
    assert "only 2 distinct colours" in result.stderr
    assert invoke("palette", path, "-k", 0).exit_code == 2
    missing = invoke("palette", tmp_path / "missing.png")
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_compare_palette_strip(photo_copy, tmp_path):
    plain, stripped = tmp_path / "plain.png", tmp_path / "strip.png"
    assert invoke("compare", photo_copy, "-o", plain, "-k", 6, "--max-side", 200).exit_code == 0
    result = invoke("compare", photo_copy, "-o", stripped, "-k", 6, "--max-side", 200, "--palette-strip")
    assert result.exit_code == 0, result.output
    a, b = read_image(plain), read_image(stripped)
    assert b.shape[1] == a.shape[1] and b.shape[0] > a.shape[0]
    np.testing.assert_array_equal(b[: a.shape[0]], a)
    # The strip holds exactly the palette's six colours (and the white margin).
    strip_colours = {tuple(c) for c in b[a.shape[0]:].reshape(-1, 3)} - {(255, 255, 255)}
    assert len(strip_colours) == 6


def test_an_image_with_no_visible_pixel_lists_nothing_and_draws_no_swatch(tmp_path):
    image = tmp_path / "clear.png"
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(image)
    listed = runner.invoke(app, ["palette", str(image), "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    assert "every pixel of the image is fully transparent" in listed.output
    swatch = runner.invoke(app, ["palette", str(image), "-o", str(tmp_path / "swatch.png")])
    assert swatch.exit_code == 1 and "swatch.png: not written; every pixel of" in swatch.output
    assert not (tmp_path / "swatch.png").exists()
    from fastkm.figure import palette_strip

    assert not palette_strip(np.zeros((0, 3), np.uint8), np.zeros(0), 8, 2).any()
