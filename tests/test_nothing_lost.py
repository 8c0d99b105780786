"""Nothing lost, ever: no output lands on an input or replaces a file without --force,
outputs appear whole (image and palette together), every bad file or name costs one
line, transparency and palette colours survive, signals clean up, memory does not grow
with k squared."""

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from fastkm import _kmeans, cli, io
from fastkm.io import atomic

runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(folder):
    return {p: digest(p) for p in folder.rglob("*") if p.is_file()}


def small_photo(seed=0, shape=(24, 32)):
    """A small colourful image, quick to quantize."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)


def save(path, image=None, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small_photo() if image is None else image).save(path, **options)
    return path


def no_temporaries(folder):
    return not [p for p in folder.rglob("*") if p.name.endswith(".part")]


def one_error_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output


# --- 1. no output lands on an input -------------------------------------------------


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_batch_into_its_own_folder_never_replaces_an_input(tmp_path, force):
    folder = tmp_path / "photos"
    save(folder / "x.png")
    save(folder / "x.jpg", small_photo(1))
    before = digests(folder)
    result = invoke("quantize", folder, "-o", folder, "-k", 4, *force)
    assert result.exit_code == 1
    assert "is the input file" in result.output
    assert digests(folder) == before


def test_a_photo_named_like_an_output_is_an_input(tmp_path):
    """x-k16.png that fastkm did not write is a photo: x.png's output may not replace it."""
    folder = tmp_path / "photos"
    save(folder / "x.png")
    save(folder / "x-k16.png", small_photo(2))
    before = digests(folder)
    result = invoke("quantize", folder, "-k", 16, "--force")
    assert result.exit_code == 1
    assert "x-k16.png: is the input file" in result.output
    assert {p: d for p, d in digests(folder).items() if p in before} == before
    assert (folder / "x-k16-k16.png").exists()  # the photo x-k16.png itself was quantized


def test_a_folder_rerun_skips_its_own_outputs(tmp_path):
    folder = tmp_path / "photos"
    save(folder / "x.png")
    save(folder / "y.jpg", small_photo(1))
    assert invoke("quantize", folder, "-k", 16).exit_code == 0
    written = digests(folder)
    again = invoke("quantize", folder, "-k", 16)
    assert again.exit_code == 1 and "already exists; use --force" in again.output
    assert "skipped: output of x.png" in again.output and "skipped: output of y.jpg" in again.output
    assert not list(folder.glob("*-k16-k16.png"))
    forced = invoke("quantize", folder, "-k", 16, "--force")
    assert forced.exit_code == 0, forced.output
    assert "2 written, 0 failed, 2 skipped" in forced.output
    assert digests(folder) == written  # the same seed: the same files
    other_k = invoke("quantize", folder, "-k", 8)
    assert other_k.exit_code == 0 and sorted(p.name for p in folder.glob("*-k8.png")) == ["x-k8.png", "y-k8.png"]


def test_a_recursive_rerun_skips_the_output_folder_inside_the_input(tmp_path):
    folder = tmp_path / "photos"
    save(folder / "x.png")
    out = folder / "quantized"
    assert invoke("quantize", folder, "-o", out, "-r", "-k", 4).exit_code == 0
    again = invoke("quantize", folder, "-o", out, "-r", "-k", 4, "--force")
    assert again.exit_code == 0, again.output
    assert "1 written" in again.output
    assert not (out / "quantized").exists()


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_save_palette_onto_an_input_is_refused(tmp_path, force):
    photo = save(tmp_path / "photo.json.png")
    palette = tmp_path / "colours.json"
    palette.write_text(json.dumps([[0, 0, 0], [255, 255, 255], [200, 30, 40]]))
    image_named_json = tmp_path / "image.json"
    image_named_json.write_bytes(photo.read_bytes())  # Pillow reads it by its content
    before = digests(tmp_path)
    cases = [
        ("quantize", photo, "-o", tmp_path / "a.png", "--palette", palette, "--save-palette", palette),
        ("quantize", image_named_json, "-o", tmp_path / "b.png", "--save-palette", image_named_json),
        ("quantize", photo, "-o", tmp_path / "c.png", "--palette", palette,
         "--save-palette", tmp_path / "sub" / ".." / "colours.json"),
    ]
    for args in cases:
        result = invoke(*args, "-k", 4, *force)
        assert result.exit_code == 1, (args, result.output)
        assert "is the input file" in result.output and one_error_line(result)
    assert digests(tmp_path) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink", "dotdot"])
def test_an_output_that_is_the_input_by_another_name_is_refused(tmp_path, link):
    photo = save(tmp_path / "photo.png")
    other = tmp_path / "other.png"
    if link == "symlink":
        other.symlink_to(photo)
    elif link == "hardlink":
        os.link(photo, other)
    else:
        (tmp_path / "sub").mkdir()
        other = tmp_path / "sub" / ".." / "photo.png"
    before = digest(photo)
    result = invoke("quantize", photo, "-o", other, "-k", 4, "--force")
    assert result.exit_code == 1 and "is the input file" in result.output
    assert digest(photo) == before


def test_input_given_through_a_symlink_is_protected_at_its_target(tmp_path):
    photo = save(tmp_path / "photo.png")
    (tmp_path / "link.png").symlink_to(photo)
    before = digest(photo)
    result = invoke("quantize", tmp_path / "link.png", "-o", photo, "-k", 4, "--force")
    assert result.exit_code == 1 and "is the input file" in result.output
    assert digest(photo) == before


def test_image_and_palette_outputs_must_differ(tmp_path):
    photo = save(tmp_path / "photo.png")
    result = invoke("quantize", photo, "-o", tmp_path / "same.json", "--save-palette", tmp_path / "same.json")
    assert result.exit_code == 1 and one_error_line(result)
    assert not (tmp_path / "same.json").exists()


def test_case_insensitive_folders_compare_names_without_case(tmp_path, monkeypatch):
    from fastkm.io import paths

    paths._case_insensitive.cache_clear()
    monkeypatch.setattr(paths, "_case_insensitive", lambda folder: True)
    assert paths.output_key(tmp_path / "Photo.PNG") == paths.output_key(tmp_path / "photo.png")
    monkeypatch.undo()
    assert paths.output_key(tmp_path / "Photo.PNG") != paths.output_key(tmp_path / "photo.png")


# --- 2. outputs created without replacing, all or nothing ----------------------------


def test_save_palette_never_replaces_a_file_without_force(tmp_path):
    photo = save(tmp_path / "photo.png")
    palette = tmp_path / "palette.gpl"
    palette.write_text("my palette, not fastkm's\n")
    result = invoke("quantize", photo, "-o", tmp_path / "out.png", "--save-palette", palette, "-k", 4)
    assert result.exit_code == 1 and "already exists; use --force" in result.output
    assert palette.read_text() == "my palette, not fastkm's\n"
    assert not (tmp_path / "out.png").exists()  # all or nothing
    forced = invoke("quantize", photo, "-o", tmp_path / "out.png", "--save-palette", palette, "-k", 4, "--force")
    assert forced.exit_code == 0 and palette.read_text().startswith("GIMP Palette")


@pytest.mark.parametrize("appears", ["image", "palette"])
def test_an_output_that_appears_while_quantizing_is_kept(tmp_path, monkeypatch, appears):
    photo = save(tmp_path / "photo.png")
    out, palette = tmp_path / "out.png", tmp_path / "out.json"
    late = out if appears == "image" else palette
    real_fit = cli._fit

    def fit_while_another_program_writes(*args, **kwargs):
        late.write_bytes(b"written meanwhile by another program")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cli, "_fit", fit_while_another_program_writes)
    result = invoke("quantize", photo, "-o", out, "--save-palette", palette, "-k", 4)
    assert result.exit_code == 1 and one_error_line(result)
    assert "already exists" in result.output
    assert late.read_bytes() == b"written meanwhile by another program"
    assert not (palette if appears == "image" else out).exists()  # the other one is taken back
    assert no_temporaries(tmp_path)


def test_publish_takes_back_the_first_file_when_the_second_fails(tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    second.write_text("old")
    with atomic.Outputs() as outputs:
        outputs.add(first, lambda temporary: open(temporary, "w").write("new first"))
        outputs.add(second, lambda temporary: open(temporary, "w").write("new second"))
        with pytest.raises(atomic.OutputExistsError):
            outputs.publish()
    assert not first.exists() and second.read_text() == "old"
    assert no_temporaries(tmp_path)


def test_publish_with_replace_puts_back_what_it_replaced(tmp_path, monkeypatch):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("old first")
    real_replace = os.replace

    def failing_replace(source, target):
        if str(target) == str(second):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with atomic.Outputs(replace=True) as outputs:
        outputs.add(first, lambda temporary: open(temporary, "w").write("new first"))
        outputs.add(second, lambda temporary: open(temporary, "w").write("new second"))
        with pytest.raises(io.ImageWriteError, match="No space left"):
            outputs.publish()
    assert first.read_text() == "old first" and not second.exists()
    assert no_temporaries(tmp_path)


def test_without_hard_links_outputs_are_created_exclusively(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    target = tmp_path / "out.txt"
    atomic._atomic_save(target, lambda temporary: open(temporary, "w").write("one"), replace=False)
    assert target.read_text() == "one"
    with pytest.raises(atomic.OutputExistsError):
        atomic._atomic_save(target, lambda temporary: open(temporary, "w").write("two"), replace=False)
    assert target.read_text() == "one" and no_temporaries(tmp_path)


def test_longest_file_name_the_system_takes_can_be_written(tmp_path):
    photo = save(tmp_path / "photo.png")
    longest = tmp_path / ("n" * (os.pathconf(tmp_path, "PC_NAME_MAX") - 4) + ".png")
    result = invoke("quantize", photo, "-o", longest, "-k", 4)
    assert result.exit_code == 0, result.output
    assert longest.exists() and no_temporaries(tmp_path)


# --- 3. every bad file, name or option costs one line; the batch goes on -------------


def test_a_decoder_crash_is_one_line_and_the_batch_goes_on(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    save(folder / "a.png")
    save(folder / "b.avif", small_photo(1))
    save(folder / "c.png", small_photo(2))
    real_decode = io.read._decode

    def crashing_decoder(path, max_pixels):
        if path.suffix == ".avif":
            raise RuntimeError("Failed to decode frame 0: Decoding of color planes failed")
        return real_decode(path, max_pixels)

    monkeypatch.setattr(io.read, "_decode", crashing_decoder)
    result = invoke("quantize", folder, "-o", tmp_path / "out", "-k", 4)
    assert result.exit_code == 1
    assert "b.avif: cannot decode as an image (Failed to decode frame 0" in result.output
    assert "2 written, 1 failed" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


@pytest.mark.filterwarnings("ignore::fastkm.io.ImageReadWarning")
@pytest.mark.parametrize("suffix", [".avif", ".png", ".jpg", ".webp", ".gif", ".tif", ".bmp"])
def test_corrupted_files_decode_or_fail_with_image_read_error(tmp_path, suffix):
    """Seeded random byte changes and cuts of a small file of each format: read_image
    returns an image or raises ImageReadError, never anything else."""
    clean = save(tmp_path / f"clean{suffix}")
    data = clean.read_bytes()
    rng = np.random.default_rng(len(suffix))
    for attempt in range(120):
        damaged = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            damaged[int(rng.integers(len(damaged)))] = int(rng.integers(256))
        if attempt % 3 == 0:
            damaged = damaged[: int(rng.integers(1, len(damaged)))]
        path = tmp_path / f"damaged{suffix}"
        path.write_bytes(bytes(damaged))
        try:
            io.read_image(path)
        except io.ImageReadError as error:
            assert "\n" not in str(error)


NAMES = [
    "photo with spaces",
    "[bold]loud",
    "[bold]",
    "[red]half[not a style]",
    "[link=file:x]link",
    "a ] b [",
    "фото 写真 üñí",
    "emoji 🎨",
    "-dash",
    "a" * 200,
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".ppm", ".tga", ".qoi"])
def test_odd_names_are_printed_literally(tmp_path, name, suffix):
    folder = tmp_path / f"in {name[:20]}"
    save(folder / f"{name}{suffix}")
    result = invoke("quantize", folder, "-o", tmp_path / "out", "-k", 4)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / f"{name}.png").exists()
    assert name[:20] in result.output.replace("\n", "")  # table cells fold long names
    single = invoke("quantize", folder / f"{name}{suffix}", "-k", 4)
    assert single.exit_code == 0, single.output
    assert f"{name}{suffix}" in single.output


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1,
                    max_size=60).filter(lambda n: n.strip(". ") == n and len(n.encode()) <= 200))
def test_any_file_name_round_trips(tmp_path_factory, name):
    folder = tmp_path_factory.mktemp("names")
    photo = save(folder / f"{name}.png")
    result = invoke("quantize", folder, "-o", folder / "out", "-k", 3)
    assert result.exit_code == 0, result.output
    assert (folder / "out" / f"{name}.png").exists()
    assert digest(photo) == digest(folder / f"{name}.png")


def test_names_too_long_for_the_file_system_fail_one_line_and_the_batch_goes_on(tmp_path):
    folder = tmp_path / "photos"
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    save(folder / ("n" * (name_max - 4) + ".png"))  # its default output adds -k4
    save(folder / "short.png")
    result = invoke("quantize", folder, "-k", 4)
    assert result.exit_code == 1
    assert "name too long" in result.output.lower() and "Traceback" not in result.output
    assert "1 written, 1 failed" in result.output and (folder / "short-k4.png").exists()
    single = invoke("quantize", folder / ("n" * (name_max - 4) + ".png"), "-k", 4)
    assert single.exit_code == 1 and one_error_line(single) and "name too long" in single.output.lower()


BAD_PALETTES = {
    "strings.json": '[["red", "green", "blue"]]',
    "nan.json": "[[NaN, 0, 0]]",
    "floats.json": "[[0.5, 10, 20]]",
    "booleans.json": "[[true, false, true]]",
    "short rows.json": "[[1, 2]]",
    "ragged.json": "[[1, 2, 3], [1, 2, 3, 4]]",
    "too big.json": "[[256, 0, 0]]",
    "negative.json": "[[-1, 0, 0]]",
    "not a list.json": '{"palette": 7}',
    "empty.json": "[]",
    "not json.json": "{{{",
    "negative row.gpl": "GIMP Palette\n0 0 0\n-5 0 0\n",
    "too big.gpl": "GIMP Palette\n300 0 0\n",
    "words.gpl": "GIMP Palette\nred green blue\n",
    "short row.gpl": "GIMP Palette\n1 2\n",
    "no header.gpl": "0 0 0\n",
    "no colours.gpl": "GIMP Palette\n# nothing\n",
}


@pytest.mark.parametrize("name", sorted(BAD_PALETTES))
def test_malformed_palette_files_are_one_line(tmp_path, name):
    photo = save(tmp_path / "photo.png")
    palette = tmp_path / name
    palette.write_text(BAD_PALETTES[name])
    result = invoke("quantize", photo, "-o", tmp_path / "out.png", "--palette", palette)
    assert result.exit_code == 1 and one_error_line(result), result.output
    assert not (tmp_path / "out.png").exists()


def indexed_png(indices, plte):
    """A one-row 8-bit palette PNG written chunk by chunk (Pillow would not write indices
    beyond the palette)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", len(indices), 1, 8, 3, 0, 0, 0)
    pixels = zlib.compress(bytes([0, *indices]))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", bytes(plte))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def test_palette_image_with_indices_beyond_its_palette_is_one_line(tmp_path):
    photo = save(tmp_path / "photo.png")
    (tmp_path / "palette.png").write_bytes(indexed_png([0, 1, 2, 200], [0, 0, 0, 255, 255, 255, 255, 0, 0]))
    result = invoke("quantize", photo, "-o", tmp_path / "out.png", "--palette", tmp_path / "palette.png")
    assert result.exit_code == 1 and one_error_line(result), result.output
    assert "palette index" in result.output


def test_good_palette_files_still_read(tmp_path):
    (tmp_path / "a.json").write_text('{"palette": [[0, 0, 0], [255, 255, 255]]}')
    (tmp_path / "a.gpl").write_text("GIMP Palette\nName: a\nColumns: 2\n#\n  0   0   0\tblack\n255 255 255 white\n")
    for name in ("a.json", "a.gpl"):
        np.testing.assert_array_equal(io.read_palette(tmp_path / name), [[0, 0, 0], [255, 255, 255]])


@pytest.mark.parametrize("option", [["--psnr", "nan"], ["--psnr", "inf"], ["--dither", "--dither-strength", "nan"]])
def test_non_finite_option_values_are_usage_errors(tmp_path, option):
    photo = save(tmp_path / "photo.png")
    result = invoke("quantize", photo, "-o", tmp_path / "out.png", *option)
    assert result.exit_code == 2
    assert "not a number" in result.output and "min_psnr" not in result.output
    assert not (tmp_path / "out.png").exists()


def test_max_pixels_message_gives_exact_pixel_counts(tmp_path):
    photo = save(tmp_path / "photo.png")
    result = invoke("quantize", photo, "-o", tmp_path / "out.png", "--max-pixels", 1)
    assert result.exit_code == 1 and one_error_line(result)
    assert "32x24 = 768 pixels exceeds the limit of 1 pixel;" in result.output


def test_decoder_warnings_become_one_note(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Maker" * 20
    photo = tmp_path / "photo.jpg"
    Image.fromarray(small_photo()).save(photo, exif=exif.tobytes()[:30])  # cut short: corrupt
    result = invoke("quantize", photo, "-o", tmp_path / "out.png", "-k", 4)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "photo.jpg" in notes[0] and "EXIF" in notes[0]
    assert "Warning" not in result.output


# --- folders: every readable format; -o with one input; dotted folder names ----------


def test_folders_take_every_format_pillow_reads(tmp_path):
    folder = tmp_path / "photos"
    for number, suffix in enumerate([".avif", ".ppm", ".qoi", ".tga", ".png", ".webp"]):
        save(folder / f"p{number}{suffix}", small_photo(number))
    (folder / "notes.txt").write_text("not an image")
    result = invoke("quantize", folder, "-o", tmp_path / "out", "-k", 4)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").iterdir())) == 6
    assert "6 written, 0 failed, 1 skipped" in result.output


@pytest.mark.parametrize("form", ["slash", "existing"])
def test_one_input_into_a_folder(tmp_path, form):
    photo = save(tmp_path / "photo.jpg")
    out = tmp_path / "out"
    if form == "existing":
        out.mkdir()
    result = invoke("quantize", photo, "-o", f"{out}/" if form == "slash" else out, "-k", 4)
    assert result.exit_code == 0, result.output
    assert (out / "photo.png").exists()


def test_a_new_batch_folder_may_have_a_dot_in_its_name(tmp_path):
    save(tmp_path / "a.png")
    save(tmp_path / "b.png", small_photo(1))
    result = invoke("quantize", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "v1.2", "-k", 4)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "v1.2").iterdir()) == ["a.png", "b.png"]
    slash = invoke("quantize", tmp_path / "a.png", tmp_path / "b.png", "-o", f"{tmp_path / 'looks.png'}/", "-k", 4)
    assert slash.exit_code == 0 and (tmp_path / "looks.png" / "a.png").exists()


# --- 4. transparency keys and palette files keep every channel -----------------------


def test_rgb_colour_key_is_kept_as_transparency(tmp_path):
    image = small_photo()
    image[:4, :4] = 0
    save(tmp_path / "keyed.png", image, transparency=(0, 0, 0))
    read = io.read_image(tmp_path / "keyed.png")
    assert read.shape[2] == 4
    assert np.all(read[:4, :4, 3] == 0) and np.all(read[4:, :, 3] == 255)
    result = invoke("quantize", tmp_path / "keyed.png", "-o", tmp_path / "out.png", "-k", 8)
    assert result.exit_code == 0, result.output
    assert np.all(io.read_image(tmp_path / "out.png")[:4, :4, 3] == 0)


def test_grey_colour_key_is_kept_as_transparency(tmp_path):
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (8, 1))
    save(tmp_path / "keyed.png", grey, transparency=64)
    read = io.read_image(tmp_path / "keyed.png")
    assert read.shape == (8, 32, 2)
    np.testing.assert_array_equal(read[..., 1] == 0, grey == 64)
    result = invoke("quantize", tmp_path / "keyed.png", "-o", tmp_path / "out.png", "-k", 4)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(io.read_image(tmp_path / "out.png")[..., -1] == 0, grey == 64)


def rgba_photo():
    image = np.concatenate([small_photo(), np.full((24, 32, 1), 255, np.uint8)], axis=2)
    image[:8, :, 3] = 0
    image[8:12, :, 3] = 128
    return image


def test_save_palette_of_an_rgba_image_writes_real_colours_and_alpha(tmp_path):
    save(tmp_path / "rgba.png", rgba_photo())
    result = invoke("quantize", tmp_path / "rgba.png", "-o", tmp_path / "out.png", "-k", 8,
                    "--save-palette", tmp_path / "palette.json")
    assert result.exit_code == 0, result.output
    rows = np.array(json.loads((tmp_path / "palette.json").read_text())["palette"])
    quantized = io.read_image(tmp_path / "out.png")
    used = {tuple(p) for p in quantized.reshape(-1, 4).tolist()}
    assert rows.shape[1] == 4 and used <= {tuple(r) for r in rows.tolist()}
    assert not np.all(rows[:, 0] == rows[:, 1])  # not one channel three times


def test_save_palette_of_an_rgba_image_as_gpl_is_refused_before_anything_is_written(tmp_path):
    save(tmp_path / "rgba.png", rgba_photo())
    result = invoke("quantize", tmp_path / "rgba.png", "-o", tmp_path / "out.png", "--save-palette",
                    tmp_path / "palette.gpl")
    assert result.exit_code == 1 and one_error_line(result) and "cannot hold transparency" in result.output
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "palette.gpl").exists()


@pytest.mark.parametrize("channels", [1, 3])
def test_save_palette_of_grey_and_rgb_images_round_trips(tmp_path, channels):
    image = small_photo() if channels == 3 else small_photo()[..., 0]
    save(tmp_path / "in.png", image)
    for name in ("p.gpl", "p.json"):
        result = invoke("quantize", tmp_path / "in.png", "-o", tmp_path / f"{name}.png", "-k", 6,
                        "--save-palette", tmp_path / name)
        assert result.exit_code == 0, result.output
        quantized = io.read_image(tmp_path / f"{name}.png")
        colours = quantized.reshape(-1, channels)
        palette = io.read_palette(tmp_path / name)
        expected = np.unique(np.repeat(colours, 3 // channels, axis=1) if channels == 1 else colours, axis=0)
        assert {tuple(c) for c in expected.tolist()} <= {tuple(c) for c in palette.tolist()}


# --- 5. signals ----------------------------------------------------------------------

SLOW_SAVE = textwrap.dedent("""
    import sys, time
    import fastkm.io.write
    real_atomic_save = fastkm.io.write._atomic_save
    def slow_atomic_save(path, save, **options):
        def slow_save(temporary):
            save(temporary)
            print("SAVING", flush=True)  # the temporary file is on disk now
            time.sleep(60)
        real_atomic_save(path, slow_save, **options)
    fastkm.io.write._atomic_save = slow_atomic_save  # images are encoded in memory, then saved
    from fastkm.cli import run
    sys.argv = ["fastkm"] + sys.argv[1:]
    run()
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_mid_batch_removes_partial_files(tmp_path, signum):
    folder = tmp_path / "photos"
    for number in range(3):
        save(folder / f"p{number}.png", small_photo(number))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, "quantize", str(folder), "-o", str(out), "-k", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while process.stdout.readline().strip() != "SAVING":
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
        assert list(out.glob(".fastkm-*.part"))  # mid-write
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    assert list(out.iterdir()) == []  # the first output was not published, and no .part is left


# --- 6. memory: nothing of size k x k -----------------------------------------------


@pytest.mark.parametrize("n_centres", [1, 2, 7, 300, 600])
def test_nearest_other_centre_matches_the_full_matrix(n_centres, monkeypatch):
    monkeypatch.setattr(_kmeans, "NEAREST_OTHER_ELEMENTS", 64 * n_centres)  # blocks of 64 rows
    rng = np.random.default_rng(n_centres)
    centres = rng.integers(0, 6, (n_centres, 3)).astype(np.float64)  # many ties
    full = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(full, np.inf)
    nearest, distance = _kmeans.nearest_other_centre(centres)
    np.testing.assert_array_equal(nearest, full.argmin(axis=1) if n_centres > 1 else [0])
    np.testing.assert_array_equal(distance, full.min(axis=1))


def test_large_palettes_allocate_nothing_of_k_squared():
    """At k = 8192 a (k, k) float64 matrix is 512 MB; the nearest-other search holds a
    few blocks of NEAREST_OTHER_ELEMENTS distances at a time."""
    import tracemalloc

    n_centres = 8192
    centres = np.random.default_rng(1).integers(0, 256, (n_centres, 3)).astype(np.float64)
    tracemalloc.start()
    try:
        _kmeans.nearest_other_centre(centres)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 4 * _kmeans.NEAREST_OTHER_ELEMENTS * 8 < n_centres * n_centres * 8 / 4


def test_premultiply_in_blocks_matches_the_whole_array_formula(monkeypatch):
    from fastkm import _spaces

    monkeypatch.setattr(_spaces, "PREMULTIPLY_BLOCK", 1000)
    for n_channels in (2, 4):
        pixels = np.random.default_rng(n_channels).integers(0, 256, (4321, n_channels), dtype=np.uint8)
        wide = pixels.astype(np.int64)
        expected = pixels.copy()
        expected[:, :-1] = (wide[:, :-1] * wide[:, -1:] + 127) // 255
        np.testing.assert_array_equal(_spaces.premultiply(pixels), expected)


@pytest.mark.parametrize("name", ["dup.png", "dup-trns.png", "dup.gif", "rotated.png", "canvas.gif"])
def test_palette_images_read_as_pillow_converts_them(tmp_path, name):
    """Palette images are read index by index through a table; the pixels are Pillow's
    conversion of the whole image (duplicate entries, tRNS, GIF transparency, EXIF
    rotation, a frame smaller than its canvas)."""
    rng = np.random.default_rng(0)
    indexed = Image.frombytes("P", (50, 40), rng.integers(0, 8, 2000, dtype=np.uint8).tobytes())
    indexed.putpalette([0, 0, 0, 0, 0, 0, 255, 0, 0, 255, 0, 0, 1, 2, 3, 9, 9, 9, 0, 0, 0, 7, 7, 7])
    path = tmp_path / name
    if name == "dup-trns.png":
        indexed.save(path, transparency=bytes([255, 0, 255, 128, 255, 255, 255, 255]))
    elif name == "dup.gif":
        indexed.save(path, transparency=1)
    elif name == "rotated.png":
        exif = Image.Exif()
        exif[0x0112] = 6
        indexed.save(path, exif=exif.tobytes())
    elif name == "canvas.gif":
        frame = Image.new("RGBA", (2, 2), (255, 0, 0, 255))
        frame.putpixel((0, 0), (0, 0, 0, 0))
        frame.save(path)
        data = bytearray(path.read_bytes())
        data[6:10] = bytes([100, 0, 60, 0])  # a 100x60 canvas around the 2x2 frame
        path.write_bytes(bytes(data))
    else:
        indexed.save(path)
    from PIL import ImageOps

    with Image.open(path) as image:
        rgba = np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))
    read = io.read_image(path)
    if read.shape[2] == 3:
        assert np.all(rgba[..., 3] == 255)
        rgba = rgba[..., :3]
    np.testing.assert_array_equal(read, rgba)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_as_input_is_refused_without_blocking(tmp_path):
    """Opening a pipe that nobody writes to waits forever: every command and the
    shared-palette sampling say what it is instead, and the other inputs are done."""
    fifo = tmp_path / "pipe.gif"
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(good)
    script = textwrap.dedent(f"""
        import sys
        from fastkm.cli import app
        for args in (["quantize", {str(fifo)!r}, "-o", {str(tmp_path / "a.gif")!r}],
                     ["palette", {str(fifo)!r}],
                     ["quantize", {str(fifo)!r}, {str(good)!r}, "--shared-palette", "-o", {str(tmp_path / "shared")!r}]):
            try:
                app(args, prog_name="fastkm")
            except SystemExit as stop:
                print("exit", stop.code, file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stderr.count("pipe.gif: is not a regular file (a pipe or a device)") == 3, done.stderr[-800:]
    assert done.stderr.count("exit 1") == 3
    assert (tmp_path / "shared" / "good.png").exists() and not (tmp_path / "a.gif").exists()


def test_a_shared_palette_over_inputs_none_of_which_read_is_one_line(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_text("not an image")
    result = invoke("quantize", tmp_path / "a.png", tmp_path / "b.png", "--shared-palette", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "error: no input could be read to fit the shared palette; " in result.output
    assert "a.png: cannot decode as an image" in result.output and not (tmp_path / "out").exists()
