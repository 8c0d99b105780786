"""The command line through typer's CliRunner: exit codes, files, messages."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import fastkm
from fastkm.cli import app

runner = CliRunner()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def photo_copy(tmp_path, sample_path):
    path = tmp_path / "parrots.png"
    shutil.copy(sample_path("kodim23.png"), path)
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "quantize" in result.output and "compare" in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"fastkm {fastkm.__version__}"


def test_quantize_writes_indexed_png_and_keeps_input(photo_copy, tmp_path):
    before = digest(photo_copy)
    output = tmp_path / "out" / "parrots-16.png"
    result = invoke("quantize", photo_copy, "-o", output, "-k", 16, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert digest(photo_copy) == before
    with Image.open(output) as written:
        assert written.mode == "P"
        assert written.size == (768, 512)
        assert len(written.getcolors()) <= 16
    line = result.stdout.strip()  # stderr may announce the first-run compile
    assert "\n" not in line
    for part in ("parrots.png 768x512", "16 colours", "PSNR", " s,", "kB ->"):
        assert part in line
    # Same pixels as the API with the same seed.
    api = fastkm.quantize(fastkm.io.read_image(photo_copy), 16, seed=3, space="auto")
    np.testing.assert_array_equal(fastkm.io.read_image(output), api.image)


def test_quantize_default_output_name_and_no_overwrite(photo_copy):
    result = invoke("quantize", photo_copy, "-k", 8)
    assert result.exit_code == 0, result.output
    output = photo_copy.with_name("parrots-k8.png")
    assert output.exists()
    first = digest(output)
    again = invoke("quantize", photo_copy, "-k", 8, "--seed", 1)
    assert again.exit_code == 1
    assert "already exists; use --force" in again.output
    assert digest(output) == first
    forced = invoke("quantize", photo_copy, "-k", 8, "--seed", 1, "--force")
    assert forced.exit_code == 0


def test_quantize_never_overwrites_the_input(photo_copy):
    before = digest(photo_copy)
    result = invoke("quantize", photo_copy, "-o", photo_copy, "-k", 4, "--force")
    assert result.exit_code == 1
    assert "is the input file" in result.output
    assert digest(photo_copy) == before


@pytest.mark.parametrize("k", ["0", "-3", "abc", "300"])
def test_quantize_bad_k_is_a_usage_error(photo_copy, k):
    result = invoke("quantize", photo_copy, "-k", k, "-o", photo_copy.with_name("x.png"))
    assert result.exit_code == 2
    assert "-k" in result.output
    assert not photo_copy.with_name("x.png").exists()


def test_quantize_many_colours_to_webp(photo_copy):
    output = photo_copy.with_name("many.webp")
    result = invoke("quantize", photo_copy, "-k", 300, "-o", output)
    assert result.exit_code == 0, result.output
    assert len(np.unique(fastkm.io.read_image(output).reshape(-1, 3), axis=0)) <= 300


@pytest.mark.parametrize(
    "content, message", [(None, "no such file"), (b"", "file is empty"), (b"not an image at all", "cannot decode")]
)
def test_quantize_bad_input_is_one_line_exit_1_no_output(tmp_path, content, message):
    source = tmp_path / "broken.jpg"
    if content is not None:
        source.write_bytes(content)
    output = tmp_path / "out.png"
    result = invoke("quantize", source, "-o", output)
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.strip().startswith("error:") and result.output.strip().count("\n") == 0
    assert "Traceback" not in result.output
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["broken.jpg"] if content is not None else [])


def test_quantize_unknown_output_format(photo_copy):
    result = invoke("quantize", photo_copy, "-o", photo_copy.with_name("out.xyz"))
    assert result.exit_code == 1
    assert "unknown output format .xyz" in result.output


def test_compare_writes_side_by_side_figure(photo_copy, tmp_path):
    before = digest(photo_copy)
    figure = tmp_path / "figure.png"
    result = invoke("compare", photo_copy, "-k", 5, "-o", figure, "--max-side", 400)
    assert result.exit_code == 0, result.output
    assert digest(photo_copy) == before
    with Image.open(figure) as written:
        width, height = written.size
        array = np.asarray(written.convert("RGB"))
    # Two 400x267 panels next to each other, plus margins and a caption strip.
    assert 800 < width < 900 and 267 < height < 400
    left, right = array[16 : 16 + 267, 16 : 16 + 400], array[16 : 16 + 267, 432 : 432 + 400]
    assert len(np.unique(right.reshape(-1, 3), axis=0)) <= 5
    assert len(np.unique(left.reshape(-1, 3), axis=0)) > 1000
    assert "PSNR" in result.output


def test_compare_requires_output(photo_copy):
    result = invoke("compare", photo_copy, "-k", 5)
    assert result.exit_code == 2


def test_batch_folder_reports_bad_files_and_writes_the_rest(tmp_path, photo_folder):
    source = photo_folder
    before = {p: digest(p) for p in source.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    result = invoke("quantize", source, "-o", out, "-k", 8, "--recursive")
    assert result.exit_code == 1  # one file failed
    assert "broken.jpg" in result.output and "cannot decode" in result.output
    assert "skipped: not an image" in result.output and "notes.txt" in result.output
    assert "2 written, 1 failed, 1 skipped" in result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["parrots.png", "sub/hats.png"]
    for written in out.rglob("*.png"):
        with Image.open(written) as image:
            assert image.mode == "P" and len(image.getcolors()) <= 8
    assert {p: digest(p) for p in before} == before  # inputs untouched
    assert not list(out.rglob("*.part"))


def test_batch_of_named_files_all_good_exits_0(tmp_path, sample_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    shutil.copy(sample_path("kodim23.png"), a)
    shutil.copy(sample_path("kodim03.png"), b)
    result = invoke("quantize", a, b, "-o", tmp_path / "out", "-k", 4)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a.png").exists() and (tmp_path / "out" / "b.png").exists()
    again = invoke("quantize", a, b, "-o", tmp_path / "out", "-k", 4)
    assert again.exit_code == 1 and "already exists; use --force" in again.output


def test_batch_output_must_be_a_folder(tmp_path, sample_path):
    a = tmp_path / "a.png"
    shutil.copy(sample_path("kodim23.png"), a)
    result = invoke("quantize", a, a, "-o", tmp_path / "out.png")
    assert result.exit_code == 2
    assert "names an output folder" in result.output


def test_batch_refuses_a_second_input_with_the_same_output(tmp_path, sample_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(sample_path("kodim23.png"), tmp_path / "a" / "x.png")
    shutil.copy(sample_path("kodim03.png"), tmp_path / "b" / "x.png")
    result = invoke("quantize", tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "-o", tmp_path / "out", "-k", 4)
    assert result.exit_code == 1
    assert "also the output of" in result.output and "1 written, 1 failed" in result.output
    np.testing.assert_array_equal(
        fastkm.io.read_image(tmp_path / "out" / "x.png"),
        fastkm.quantize(fastkm.io.read_image(tmp_path / "a" / "x.png"), 4, space="auto").image,
    )


def test_batch_empty_folder_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("quantize", tmp_path / "empty", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "no image files found" in result.output


def _hostile_inputs(tmp_path, sample_path):
    """(name, path) of inputs that must fail cleanly."""
    import struct
    import zlib

    cases = {}
    cases["missing"] = tmp_path / "missing.png"
    (tmp_path / "empty.png").write_bytes(b"")
    cases["empty"] = tmp_path / "empty.png"
    data = sample_path("kodim23.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    cases["truncated png"] = tmp_path / "truncated.png"
    jpeg = sample_path("bus-3mp.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(jpeg[:5000])
    cases["truncated jpeg"] = tmp_path / "truncated.jpg"
    (tmp_path / "random.png").write_bytes(np.random.default_rng(0).bytes(5000))
    cases["random bytes"] = tmp_path / "random.png"
    (tmp_path / "text.jpg").write_text("this is not an image\n")
    cases["text as jpg"] = tmp_path / "text.jpg"
    bomb = tmp_path / "bomb.png"
    Image.new("RGB", (1, 1)).save(bomb)
    raw = bytearray(bomb.read_bytes())
    raw[16:24] = struct.pack(">II", 60000, 60000)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    bomb.write_bytes(bytes(raw))
    cases["decompression bomb"] = bomb
    return cases


def test_hostile_inputs_fail_with_one_line_and_no_output(tmp_path, sample_path):
    out = tmp_path / "out"
    out.mkdir()
    for name, path in _hostile_inputs(tmp_path, sample_path).items():
        target = out / f"{path.stem}.png"
        result = invoke("quantize", path, "-o", target)
        assert result.exit_code == 1, (name, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, result.output)
        assert "Traceback" not in result.output
        assert not target.exists(), name
    assert list(out.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image")
    result = invoke("--debug", "quantize", tmp_path / "text.jpg", "-o", tmp_path / "x.png")
    assert result.exit_code != 0
    assert isinstance(result.exception, fastkm.io.ImageReadError)


def test_output_folder_that_cannot_be_created(photo_copy, tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("a file, not a folder")
    result = invoke("quantize", photo_copy, "-o", blocker / "sub" / "out.png")
    assert result.exit_code == 1
    assert "cannot write to folder" in result.output


def test_max_pixels_option(photo_copy, tmp_path):
    result = invoke("quantize", photo_copy, "-o", tmp_path / "x.png", "--max-pixels", 1000)
    assert result.exit_code == 1 and "768x512 = 393,216 pixels exceeds the limit of 1,000 pixels" in result.output
    assert invoke("quantize", photo_copy, "-o", tmp_path / "x.png", "--max-pixels", 400000).exit_code == 0


def test_compare_with_a_folder_as_input(tmp_path):
    result = invoke("compare", tmp_path, "-o", tmp_path / "fig.png")
    assert result.exit_code == 1 and "is a folder" in result.output


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 500, 3), (700, 1, 3), (2, 3)])
def test_tiny_and_thin_images(tmp_path, shape):
    image = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    source = tmp_path / "thin.png"
    Image.fromarray(image).save(source)
    result = invoke("quantize", source, "-o", tmp_path / "out.png", "-k", 16)
    assert result.exit_code == 0, result.output
    back = fastkm.io.read_image(tmp_path / "out.png")
    assert back.shape[:2] == shape[:2]


def test_flat_colour_says_it_kept_the_exact_colours(tmp_path):
    source = tmp_path / "flat.png"
    Image.new("RGB", (30, 20), (12, 200, 99)).save(source)
    result = invoke("quantize", source, "-o", tmp_path / "out.png", "-k", 16)
    assert result.exit_code == 0
    assert "1 colour (the image has only 1 distinct colour: kept exactly)" in result.stdout
    assert "PSNR inf dB" in result.stdout


def test_compare_unknown_figure_format_fails_before_the_work(photo_copy, tmp_path):
    for name in ("figure", "figure.xyz"):
        result = invoke("compare", photo_copy, "-o", tmp_path / name)
        assert result.exit_code == 1 and "unknown output format" in result.output
        assert "Traceback" not in result.output


def test_negative_seed_is_a_usage_error(photo_copy, tmp_path):
    result = invoke("quantize", photo_copy, "-o", tmp_path / "x.png", "--seed", -1)
    assert result.exit_code == 2


def test_compare_figure_fits_captions_of_narrow_images(tmp_path):
    source = tmp_path / "narrow.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(300, 4, 3), dtype=np.uint8)).save(source)
    figure = tmp_path / "figure.png"
    result = invoke("compare", source, "-o", figure, "-k", 4)
    assert result.exit_code == 0, result.output
    with Image.open(figure) as written:
        array = np.asarray(written.convert("RGB"))
    # Caption text (dark pixels) never touches the left or right edge.
    assert array[:, :3].min() > 200 and array[:, -3:].min() > 200
    assert written.width > 2 * 100  # widened for the captions


def test_save_palette_and_reuse_it(photo_copy, tmp_path, sample_path):
    for suffix in (".gpl", ".json"):
        saved = tmp_path / f"palette{suffix}"
        first = invoke("quantize", photo_copy, "-o", tmp_path / f"a{suffix}.png", "-k", 6, "--save-palette", saved)
        assert first.exit_code == 0, first.output
        other = tmp_path / "other.png"
        shutil.copy(sample_path("kodim03.png"), other)
        second = invoke("quantize", other, "-o", tmp_path / f"b{suffix}.png", "--palette", saved)
        assert second.exit_code == 0, second.output
        with Image.open(tmp_path / f"a{suffix}.png") as a, Image.open(tmp_path / f"b{suffix}.png") as b:
            colours_a = {c for _, c in a.convert("RGB").getcolors()}
            colours_b = {c for _, c in b.convert("RGB").getcolors()}
        assert colours_b <= colours_a
    # An indexed PNG serves as a palette too.
    third = invoke("quantize", photo_copy, "-o", tmp_path / "c.png", "--palette", tmp_path / "a.gpl.png")
    assert third.exit_code == 0, third.output


def test_bad_palette_file_is_one_line(photo_copy, tmp_path):
    bad = tmp_path / "bad.gpl"
    bad.write_text("not a palette\n")
    result = invoke("quantize", photo_copy, "-o", tmp_path / "x.png", "--palette", bad)
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and "cannot read a palette" in result.output
    result = invoke("quantize", photo_copy, "-o", tmp_path / "x.png", "--save-palette", tmp_path / "p.txt")
    assert result.exit_code == 2


def test_dither_space_and_summary(photo_copy, tmp_path):
    plain = invoke("quantize", photo_copy, "-o", tmp_path / "plain.png", "-k", 8)
    dithered = invoke("quantize", photo_copy, "-o", tmp_path / "dithered.png", "-k", 8, "--dither")
    half = invoke("quantize", photo_copy, "-o", tmp_path / "half.png", "-k", 8, "--dither", "--dither-strength", 0.5)
    rgb = invoke("quantize", photo_copy, "-o", tmp_path / "rgb.png", "-k", 8, "--space", "rgb")
    lab = invoke("quantize", photo_copy, "-o", tmp_path / "lab.png", "-k", 8, "--space", "oklab")
    for result in (plain, dithered, half, rgb, lab):
        assert result.exit_code == 0, result.output
        assert "MSE " in result.output and "ΔE " in result.output
    files = [np.asarray(Image.open(tmp_path / f"{n}.png").convert("RGB")) for n in ("plain", "dithered", "half", "rgb")]
    assert all(not np.array_equal(files[0], other) for other in files[1:])
    # The default fits in OKLab (no alpha here); --space rgb is exact k-means with lower MSE.
    assert np.array_equal(files[0], np.asarray(Image.open(tmp_path / "lab.png").convert("RGB")))
    mse = {name: float(r.output.split("MSE ")[1].split(",")[0]) for name, r in (("auto", plain), ("rgb", rgb))}
    assert mse["rgb"] < mse["auto"]
    assert invoke("quantize", photo_copy, "-o", tmp_path / "x.png", "--space", "hsv").exit_code == 2
    assert invoke("quantize", photo_copy, "-o", tmp_path / "x.png", "--dither-strength", 2).exit_code == 2


def test_dither_and_no_dither_are_both_accepted(photo_copy, tmp_path):
    """--no-dither writes what the default does, --dither what dithering does; the last one given wins."""
    for name, flags in (("default", []), ("off", ["--no-dither"]), ("on", ["--dither"]),
                        ("on-then-off", ["--dither", "--no-dither"])):
        result = invoke("quantize", photo_copy, "-o", tmp_path / f"{name}.png", "-k", 8, *flags)
        assert result.exit_code == 0, result.output
    pixels = {n: np.asarray(Image.open(tmp_path / f"{n}.png").convert("RGB")) for n in ("default", "off", "on", "on-then-off")}
    assert np.array_equal(pixels["default"], pixels["off"]) and np.array_equal(pixels["off"], pixels["on-then-off"])
    assert not np.array_equal(pixels["off"], pixels["on"])
    assert "--no-dither" in invoke("quantize", "--help").output
    figure = invoke("compare", photo_copy, "-o", tmp_path / "c.png", "-k", 8, "--no-dither")
    assert figure.exit_code == 0, figure.output


def test_psnr_target(photo_copy, tmp_path):
    output = tmp_path / "target.png"
    result = invoke("quantize", photo_copy, "-o", output, "-k", 64, "--psnr", 27)
    assert result.exit_code == 0, result.output
    with Image.open(output) as written:
        n_colours = len(written.convert("RGB").getcolors())
    assert 8 < n_colours < 64
    assert f"{n_colours} colours" in result.output
    out_of_reach = invoke("quantize", photo_copy, "-o", tmp_path / "never.png", "-k", 4, "--psnr", 40)
    assert out_of_reach.exit_code == 99  # pngquant's "quality too low", apart from errors (1)
    assert out_of_reach.output.strip().startswith("error: 4 colours reach only")
    assert not (tmp_path / "never.png").exists()
    assert invoke("quantize", photo_copy, "--psnr", 30, "--palette", output).exit_code == 2


def test_shared_palette_over_a_folder(tmp_path, sample_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("kodim23.png", "kodim03.png"):
        shutil.copy(sample_path(name), folder / name)
    (folder / "notes.txt").write_text("not an image")
    saved = tmp_path / "shared.json"
    result = invoke("quantize", folder, "-o", tmp_path / "out", "-k", 12, "--shared-palette", "--save-palette", saved)
    assert result.exit_code == 0, result.output
    palettes = []
    for name in ("kodim23.png", "kodim03.png"):
        with Image.open(tmp_path / "out" / name) as written:
            palettes.append({c for _, c in written.convert("RGB").getcolors()})
    shared = {tuple(c) for c in fastkm.io.read_palette(saved).tolist()}
    assert len(shared) == 12 and palettes[0] <= shared and palettes[1] <= shared
    assert len(palettes[0] | palettes[1]) > max(len(p) for p in palettes) - 1  # one palette, used by both


def test_transparent_png_in_and_out(tmp_path, sample_photo):
    photo = sample_photo("kodim23.png")[::4, ::4]
    alpha = np.zeros(photo.shape[:2], np.uint8)
    alpha[10:-10, 10:-10] = 255
    alpha[10:20, 10:-10] = 100
    source = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([photo, alpha])).save(source)
    result = invoke("quantize", source, "-o", tmp_path / "q.png", "-k", 8)
    assert result.exit_code == 0, result.output
    assert "ΔE" not in result.output
    written = fastkm.io.read_image(tmp_path / "q.png")
    assert written.shape == photo.shape[:2] + (4,)
    np.testing.assert_array_equal(written[..., 3] == 0, alpha == 0)
    refused = invoke("quantize", source, "-o", tmp_path / "q.bmp", "-k", 8)
    assert refused.exit_code == 1 and "cannot hold transparency" in refused.output
    assert not (tmp_path / "q.bmp").exists()
    figure = invoke("compare", source, "-o", tmp_path / "figure.png", "-k", 8)
    assert figure.exit_code == 0, figure.output


def test_multi_frame_input_is_quantized_whole_and_compare_takes_the_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 128, 250)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    result = invoke("quantize", tmp_path / "anim.gif", "-o", tmp_path / "all.png", "-k", 4)
    assert result.exit_code == 0, result.output
    assert "3 frames" in result.output
    assert fastkm.io.read_animation(tmp_path / "all.png").n_frames == 3
    figure = invoke("compare", tmp_path / "anim.gif", "-o", tmp_path / "figure.png", "-k", 4)
    assert figure.exit_code == 0, figure.output
    assert "has 3 frames; fastkm quantizes the first one" in figure.output


def test_compare_dithered_oklab(photo_copy, tmp_path):
    result = invoke("compare", photo_copy, "-o", tmp_path / "c.png", "-k", 8, "--dither", "--space", "oklab")
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output


def test_a_local_batch_never_imports_dask(tmp_path):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(tmp_path / name)
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from fastkm.cli import app\n"
        f"args = ['quantize', {str(tmp_path)!r}, '-o', {str(tmp_path / 'out')!r}, '-k', '4']\n"
        "result = CliRunner().invoke(app, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_scheduler_without_dask_says_how_to_install_it(tmp_path, sample_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now fails
    (tmp_path / "in").mkdir()
    shutil.copy(sample_path("kodim23.png"), tmp_path / "in" / "a.png")
    result = invoke("quantize", tmp_path / "in", "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:8786")
    assert result.exit_code == 1
    assert result.output.strip() == "error: --scheduler needs Dask: pip install 'fastkm[dask]'"
    assert not (tmp_path / "out").exists()


def test_scheduler_is_for_batches(photo_copy, tmp_path):
    result = invoke("quantize", photo_copy, "-o", tmp_path / "x.png", "--scheduler", "tcp://127.0.0.1:8786")
    assert result.exit_code == 2
    assert "sends a batch" in result.output


# --- the program as a whole: python -m fastkm, global flags anywhere, usage errors ---


PRELOADING = """
import sys
import fastkm.cli as cli
cli.PRELOAD_MIN_BYTES = 0  # the sample photo is smaller than a preload is worth
real_preload = cli._preload_kernels
def traced(options):
    print("preloading", file=sys.stderr, flush=True)
    real_preload(options)
cli._preload_kernels = traced
sys.argv = ["fastkm"] + sys.argv[1:]
cli.run()
"""


@pytest.mark.parametrize("options", [["-k", "8"], ["-k", "40", "--dither"], ["-k", "12", "--space", "rgb"]])
def test_kernels_loaded_beside_the_decoding_change_no_byte(photo_copy, tmp_path, options):
    """A large RGB PNG's fit kernels load on the import thread while it decodes, by a
    tiny fit with the same options: the output is that of the command in process."""
    in_process = invoke("quantize", photo_copy, "-o", tmp_path / "a.png", "-q", *options)
    assert in_process.exit_code == 0, in_process.output
    own = subprocess.run(
        [sys.executable, "-c", PRELOADING, "quantize", str(photo_copy), "-o", str(tmp_path / "b.png"), *options],
        capture_output=True, text=True,
    )
    assert own.returncode == 0, own.stderr
    assert "preloading" in own.stderr and "Traceback" not in own.stderr
    assert own.stderr.count("Compiling") <= 1
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_only_large_rgb_and_rgba_pngs_preload_their_kernels(tmp_path, sample_path, monkeypatch):
    from fastkm import cli

    options = {"n_colors": 16, "palette": None, "min_psnr": None, "frame": None}
    rgb = sample_path("kodim23.png")
    assert not cli._preload_worthwhile(rgb, options)  # smaller than PRELOAD_MIN_BYTES
    monkeypatch.setattr(cli, "PRELOAD_MIN_BYTES", 0)
    assert cli._preload_worthwhile(rgb, options)
    assert not cli._preload_worthwhile(rgb, dict(options, n_colors=300))
    assert not cli._preload_worthwhile(rgb, dict(options, palette=np.zeros((4, 3), np.uint8)))
    assert not cli._preload_worthwhile(Path("-"), options)
    assert not cli._preload_worthwhile(rgb, {"seed": 0})  # the palette and compare commands' options
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(tmp_path / "rgba.png")
    assert cli._preload_worthwhile(tmp_path / "rgba.png", options)  # its alpha may be opaque
    Image.fromarray(np.zeros((8, 8, 2), np.uint8), "LA").save(tmp_path / "grey.png")
    assert not cli._preload_worthwhile(tmp_path / "grey.png", options)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "rgb.jpg")
    assert not cli._preload_worthwhile(tmp_path / "rgb.jpg", options)


def test_python_dash_m_fastkm_runs_the_command_line():
    completed = subprocess.run([sys.executable, "-m", "fastkm", "--version"], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"fastkm {fastkm.__version__}"


def test_its_own_process_writes_what_the_command_does_in_process(photo_copy, tmp_path):
    """The console script's process imports the fit on a background thread while it
    reads, and freezes its objects before exiting: the same bytes and exit codes."""
    in_process = invoke("quantize", photo_copy, "-o", tmp_path / "a.png", "-k", 8, "-q")
    assert in_process.exit_code == 0, in_process.output
    own = subprocess.run(
        [sys.executable, "-m", "fastkm", "quantize", str(photo_copy), "-o", str(tmp_path / "b.png"), "-k", "8", "-q"],
        capture_output=True, text=True,
    )
    assert own.returncode == 0, own.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    missing = subprocess.run(
        [sys.executable, "-m", "fastkm", "quantize", str(tmp_path / "none.png"), "-o", str(tmp_path / "c.png")],
        capture_output=True, text=True,
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    assert not (tmp_path / "c.png").exists()


def test_help_shows_examples():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and "fastkm palette photo.jpg -k 5 --json" in result.output


@pytest.mark.parametrize("args, message", [
    (["quantize", "{photo}", "-k", "0"], "error: Invalid value for '-k' / '--colors': 0 is not in the range"),
    (["quantize", "{photo}", "--frob"], "error: No such option: --frob"),
    (["quantize"], "error: Missing argument 'INPUT...'"),
    (["bogus"], "error: No such command 'bogus'"),
])
def test_usage_errors_are_one_line_and_exit_2(photo_copy, capsys, args, message):
    from fastkm.cli import run

    with pytest.raises(SystemExit) as exit_info:
        run([a.format(photo=photo_copy) for a in args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), captured.err
    assert "--help'" in lines[0] and captured.out == ""


def test_bare_command_prints_help(capsys):
    from fastkm.cli import run

    with pytest.raises(SystemExit) as exit_info:
        run([])
    assert exit_info.value.code == 2
    assert "Usage: fastkm" in capsys.readouterr().out


def test_debug_anywhere_on_the_line(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image")
    result = invoke("quantize", tmp_path / "text.jpg", "-o", tmp_path / "x.png", "--debug")
    assert isinstance(result.exception, fastkm.io.ImageReadError)
    plain = invoke("quantize", tmp_path / "text.jpg", "-o", tmp_path / "x.png")
    assert plain.exit_code == 1 and "Traceback" not in plain.output  # the flag does not stick


def test_quiet_anywhere_keeps_results_and_errors(photo_copy, tmp_path):
    output = tmp_path / "q.png"
    result = invoke("quantize", photo_copy, "-o", output, "-k", 8, "-q")
    assert result.exit_code == 0 and result.output == "" and output.exists()
    again = invoke("quantize", photo_copy, "--quiet", "-o", output, "-k", 8)
    assert again.exit_code == 1 and again.output.startswith("error: ")
    grey = tmp_path / "two.png"
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(grey)
    listed = invoke("palette", grey, "-k", 3, "-q")
    assert listed.exit_code == 0 and listed.stderr == "" and len(listed.stdout.splitlines()) == 2


def test_quiet_run_skips_the_summarys_delta_e(photo_copy, tmp_path, monkeypatch):
    from fastkm import _pipeline

    calls = []
    measure = _pipeline.mean_delta_e
    monkeypatch.setattr(_pipeline, "mean_delta_e", lambda *a, **k: calls.append(1) or measure(*a, **k))
    quiet = invoke("quantize", photo_copy, "-o", tmp_path / "q.png", "-k", 8, "--dither", "-q")
    assert quiet.exit_code == 0 and calls == []
    shown = invoke("quantize", photo_copy, "-o", tmp_path / "s.png", "-k", 8, "--dither")
    assert shown.exit_code == 0 and calls == [1] and "ΔE" in shown.output
    assert digest(tmp_path / "q.png") == digest(tmp_path / "s.png")


def test_weighting_option(photo_copy, tmp_path):
    outputs = {}
    for weighting in ("perceptual", "none"):
        result = invoke("quantize", photo_copy, "-o", tmp_path / f"{weighting}.png", "-k", 8, "--weighting", weighting)
        assert result.exit_code == 0, result.output
        outputs[weighting] = np.asarray(Image.open(tmp_path / f"{weighting}.png").convert("RGB"))
    assert not np.array_equal(outputs["perceptual"], outputs["none"])
    bad = invoke("quantize", photo_copy, "-o", tmp_path / "bad.png", "--weighting", "loud")
    assert bad.exit_code == 2 and not (tmp_path / "bad.png").exists()


def test_a_batch_in_parallel_writes_the_bytes_of_one_file_at_a_time(tmp_path, sample_photo):
    source = tmp_path / "photos"
    source.mkdir()
    photos = [sample_photo("kodim23.png"), sample_photo("kodim03.png")]
    for index in range(5):  # small photos of different colours
        crop = photos[index % 2][index * 40 : index * 40 + 160, index * 50 : index * 50 + 240]
        Image.fromarray(crop).save(source / f"photo{index}.png")
    outputs = {}
    for n_jobs in (1, 3):
        result = invoke("quantize", source, "-o", tmp_path / f"jobs{n_jobs}", "-k", 8, "--jobs", n_jobs)
        assert result.exit_code == 0, result.output
        outputs[n_jobs] = {path.name: digest(path) for path in (tmp_path / f"jobs{n_jobs}").iterdir()}
    assert len(outputs[1]) == 5 and outputs[3] == outputs[1]
    single = tmp_path / "single.png"
    assert invoke("quantize", source / "photo4.png", "-o", single, "-k", 8).exit_code == 0
    assert digest(single) == outputs[1]["photo4.png"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_standard_output_is_one_line_naming_it(tmp_path):
    image = tmp_path / "small.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(image)
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "fastkm", "quantize", str(image), "-k", "4", "-o", "-"],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "error: standard output: cannot write (No space left on device)"


def test_empty_standard_input_says_what_to_do(tmp_path):
    empty = runner.invoke(app, ["quantize", "-", "-o", str(tmp_path / "x.png")], input=b"")
    assert empty.exit_code == 1 and "error: standard input: no data; pipe an image file in" in empty.output


def test_an_empty_argument_is_a_usage_error_not_the_current_folder(tmp_path, monkeypatch):
    """typer reads "" as the path ".": `fastkm quantize "$UNSET"` must not quantize the
    current folder, nor `-o ""` name it."""
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    for args in (["quantize", ""], ["quantize", "photo.png", "-o", ""], ["palette", ""], ["compare", "", "-o", "x.png"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "an argument is empty (an unset shell variable?)" in result.output, args
    blank = invoke("quantize", "photo.png", "-o", "  ")
    assert blank.exit_code == 2 and "is blank; name an output file" in blank.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]
