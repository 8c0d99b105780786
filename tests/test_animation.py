"""Animations: reading composited frames, writing GIF/APNG/WebP, shared palettes with
alpha, stable dithering, and bad input."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import fastkm
from fastkm.cli import app
from fastkm.io import ImageReadError, ImageWriteError, read_animation, write_animation

DURATIONS = [40, 80, 120, 200]
PLAYS = 3  # times each test animation plays


def _moving_square(photo, n_frames=4, size=(48, 64), step=6):
    """A still crop of a photo with a red square moving right: (n, H, W, 3) uint8."""
    height, width = size
    frames = np.repeat(photo[100 : 100 + height, 300 : 300 + width][None], n_frames, axis=0).copy()
    for i in range(n_frames):
        frames[i, 10:26, 4 + step * i : 20 + step * i] = (220, 30, 40)
    return frames


def _save_with_pillow(path, frames, durations=DURATIONS, plays=PLAYS):
    """An animation written by Pillow itself, as another tool would write it."""
    images = [Image.fromarray(frame) for frame in frames]
    options = {"save_all": True, "append_images": images[1:], "duration": list(durations)}
    suffix = path.suffix.lower()
    # GIF's NETSCAPE block counts the repeats after the first play.
    options["loop"] = plays - 1 if suffix == ".gif" else plays
    if suffix == ".webp":
        options["lossless"] = True
    images[0].save(path, **options)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def square_frames(sample_photo):
    return _moving_square(sample_photo("kodim23.png"))


# --- reading --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_read_every_frame_with_durations_and_loop(tmp_path, square_frames, suffix):
    path = tmp_path / f"anim{suffix}"
    frames = square_frames if suffix != ".gif" else fastkm.quantize_frames(square_frames, 64).frames
    _save_with_pillow(path, frames)
    animation = read_animation(path)
    assert animation.n_frames == 4
    assert animation.durations.tolist() == DURATIONS
    assert animation.loop == PLAYS
    # Pillow writes frames 1.. cropped to what changed: reading composites them whole.
    np.testing.assert_array_equal(animation.frames, frames)


def test_gif_without_loop_block_plays_once_and_loop_zero_forever(tmp_path, square_frames):
    frames = [Image.fromarray(f).quantize(16) for f in square_frames]
    frames[0].save(tmp_path / "once.gif", save_all=True, append_images=frames[1:], duration=50)
    frames[0].save(tmp_path / "forever.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert read_animation(tmp_path / "once.gif").loop == 1
    assert read_animation(tmp_path / "forever.gif").loop == 0


def test_gif_disposal_to_background_and_transparency_are_composited(tmp_path):
    # Frame 0: a blue square on a clear canvas; frame 1 clears it (disposal 2) and draws
    # a green one elsewhere.  A viewer shows frame 1 without the blue square.
    canvas = np.zeros((2, 20, 30, 4), np.uint8)
    canvas[0, 2:8, 2:8] = (0, 0, 255, 255)
    canvas[1, 10:16, 20:26] = (0, 255, 0, 255)
    palette = np.array([[0, 0, 0, 0], [0, 0, 255, 255], [0, 255, 0, 255]], np.uint8)
    labels = np.zeros((2, 20, 30), np.uint8)
    labels[0, 2:8, 2:8], labels[1, 10:16, 20:26] = 1, 2
    path = tmp_path / "dispose.gif"
    write_animation(path, None, [100, 100], 0, palettes=[palette], labels=labels)
    with Image.open(path) as image:
        assert image.disposal_method == 2  # a pixel turns transparent: frames are cleared
    animation = read_animation(path)
    assert animation.frames.shape == (2, 20, 30, 4)
    np.testing.assert_array_equal(animation.frames[..., 3] > 0, canvas[..., 3] > 0)
    np.testing.assert_array_equal(animation.frames[animation.frames[..., 3] > 0], canvas[canvas[..., 3] > 0])


def test_apng_blend_over_is_composited(tmp_path):
    base = np.zeros((16, 16, 4), np.uint8)
    base[..., 0], base[..., 3] = 200, 255
    over = np.zeros((16, 16, 4), np.uint8)
    over[4:8, 4:8] = (0, 0, 250, 255)  # opaque where drawn, clear elsewhere
    images = [Image.fromarray(base), Image.fromarray(over)]
    images[0].save(tmp_path / "over.png", save_all=True, append_images=images[1:], duration=100,
                   blend=[0, 1])  # 0: OP_SOURCE, 1: OP_OVER
    frames = read_animation(tmp_path / "over.png").frames
    expected = base[..., :3].copy()
    expected[4:8, 4:8] = (0, 0, 250)
    np.testing.assert_array_equal(frames[1], expected)


# --- the nine round trips -------------------------------------------------------------


@pytest.mark.parametrize("source", [".gif", ".png", ".webp"])
@pytest.mark.parametrize("target", [".gif", ".png", ".webp"])
def test_cli_round_trip_keeps_frames_durations_and_loop(tmp_path, square_frames, source, target):
    frames = square_frames if source != ".gif" else fastkm.quantize_frames(square_frames, 200).frames
    _save_with_pillow(tmp_path / f"in{source}", frames)
    out = tmp_path / f"out{target}"
    result = invoke("quantize", tmp_path / f"in{source}", "-o", out, "-k", 24)
    assert result.exit_code == 0, result.output
    assert "4 frames" in result.output
    animation = read_animation(out)
    assert animation.n_frames == 4
    assert animation.durations.tolist() == DURATIONS
    assert animation.loop == PLAYS
    # One palette over all frames, written losslessly: at most 24 colours in all.
    assert len(np.unique(animation.frames.reshape(-1, 3), axis=0)) <= 24
    assert fastkm.psnr_from_mse(((animation.frames.astype(float) - frames) ** 2).mean()) > 25


def test_default_output_keeps_the_animation_format(tmp_path, square_frames):
    _save_with_pillow(tmp_path / "clip.webp", square_frames)
    result = invoke("quantize", tmp_path / "clip.webp", "-k", 8)
    assert result.exit_code == 0, result.output
    assert read_animation(tmp_path / "clip-k8.webp").n_frames == 4


def test_api_writes_what_it_quantized(tmp_path, square_frames):
    result = fastkm.quantize_frames(square_frames, 32, dither=True)
    assert result.shared and result.palettes[0].shape == (32, 3) and result.labels.shape == (4, 48, 64)
    for suffix in (".gif", ".png", ".webp"):
        write_animation(tmp_path / f"a{suffix}", None, DURATIONS, 0, palettes=result.palettes, labels=result.labels)
        np.testing.assert_array_equal(read_animation(tmp_path / f"a{suffix}").frames, result.frames)


def test_grey_frames_and_large_palettes_are_written_in_colour(tmp_path, square_frames):
    grey = fastkm.quantize_frames(square_frames[..., 1], 8)
    assert grey.palettes[0].shape == (8, 1)
    write_animation(tmp_path / "grey.gif", None, DURATIONS, 0, palettes=grey.palettes, labels=grey.labels)
    np.testing.assert_array_equal(read_animation(tmp_path / "grey.gif").frames[..., 0], grey.frames)
    many = fastkm.quantize_frames(square_frames, 600)
    assert many.labels.dtype == np.uint16 and many.n_colors > 256
    write_animation(tmp_path / "many.png", None, DURATIONS, 0, palettes=many.palettes, labels=many.labels)
    np.testing.assert_array_equal(read_animation(tmp_path / "many.png").frames, many.frames)


def test_per_frame_palettes(tmp_path, square_frames):
    result = fastkm.quantize_frames(square_frames, 8, per_frame=True)
    assert len(result.palettes) == 4 and not result.shared
    shared = fastkm.quantize_frames(square_frames, 8)
    assert result.mse <= shared.mse * 1.05  # each frame's own palette fits it at least as well
    path = tmp_path / "per-frame.gif"
    write_animation(path, None, DURATIONS, 0, palettes=result.palettes, labels=result.labels)
    np.testing.assert_array_equal(read_animation(path).frames, result.frames)
    cli = invoke("quantize", path, "-o", tmp_path / "p.png", "-k", 8, "--per-frame")
    assert cli.exit_code == 0 and "each frame's palette" in cli.output, cli.output


def test_gif_keeps_256_colours_and_refuses_more(tmp_path, square_frames):
    result = fastkm.quantize_frames(square_frames, 256)
    assert result.palettes[0].shape[0] == 256
    write_animation(tmp_path / "full.gif", None, DURATIONS, 0, palettes=result.palettes, labels=result.labels)
    np.testing.assert_array_equal(read_animation(tmp_path / "full.gif").frames, result.frames)
    _save_with_pillow(tmp_path / "in.png", square_frames)
    cli = invoke("quantize", tmp_path / "in.png", "-o", tmp_path / "big.gif", "-k", 300)
    assert cli.exit_code == 2 and not (tmp_path / "big.gif").exists()
    # The command line fits 255, leaving an index for unchanged pixels (transparent).
    cli = invoke("quantize", tmp_path / "in.png", "-o", tmp_path / "cli.gif", "-k", 256)
    assert cli.exit_code == 0 and "255 colours" in cli.output, cli.output
    assert fastkm.io.read_animation(tmp_path / "cli.gif").n_frames == 4


# --- transparency ---------------------------------------------------------------------


def test_shared_palette_with_alpha_reserves_a_transparent_entry(square_frames):
    frames = np.concatenate([square_frames, np.full(square_frames.shape[:3] + (1,), 255, np.uint8)], axis=3)
    frames[:, :8, :8, 3] = 0
    palette = fastkm.shared_palette(frames, 16)
    assert palette.shape == (16, 4) and palette[0].tolist() == [0, 0, 0, 0] and np.all(palette[1:, 3] == 255)
    # Opaque RGBA frames need no alpha; grey and RGB images share an RGB palette.
    assert fastkm.shared_palette(frames[..., :3], 8).shape[1] == 3
    assert fastkm.shared_palette([frames[0, ..., 0], frames[1, ..., :3]], 8).shape[1] == 3


def test_shared_palette_over_a_folder_with_transparency(tmp_path, square_frames):
    folder = tmp_path / "frames"
    folder.mkdir()
    rgba = np.concatenate([square_frames[0], np.full((48, 64, 1), 255, np.uint8)], axis=2)
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba).save(folder / "a.png")
    Image.fromarray(square_frames[1]).save(folder / "b.png")
    Image.fromarray(square_frames[2, :, :, 0]).save(folder / "c.png")  # grey
    result = invoke("quantize", folder, "-o", tmp_path / "out", "-k", 12, "--shared-palette")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "a.png") as image:
        assert np.all(np.asarray(image.convert("RGBA"))[:10, :10, 3] == 0)
    colours = [{tuple(c) for c in np.asarray(Image.open(tmp_path / "out" / f"{n}.png").convert("RGB")).reshape(-1, 3)}
               for n in "abc"]
    assert len(colours[0] | colours[1] | colours[2]) <= 12


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_transparency_survives_every_format(tmp_path, square_frames, suffix):
    frames = np.concatenate([square_frames, np.full(square_frames.shape[:3] + (1,), 255, np.uint8)], axis=3)
    frames[:, :8, :8, 3] = 0
    frames[2:, 30:, 40:, 3] = 0  # visible, then transparent: the GIF has to clear it
    result = fastkm.quantize_frames(frames, 16)
    write_animation(tmp_path / f"a{suffix}", None, DURATIONS, 0, palettes=result.palettes, labels=result.labels)
    back = read_animation(tmp_path / f"a{suffix}").frames
    np.testing.assert_array_equal(back[..., 3], frames[..., 3])
    visible = frames[..., 3] > 0
    np.testing.assert_array_equal(back[visible], result.frames[visible])


def test_translucent_frames_become_on_or_off_in_a_gif(tmp_path, square_frames):
    frames = np.concatenate([square_frames, np.full(square_frames.shape[:3] + (1,), 255, np.uint8)], axis=3)
    frames[:, :, :20, 3] = 100
    _save_with_pillow(tmp_path / "soft.png", frames)
    result = invoke("quantize", tmp_path / "soft.png", "-o", tmp_path / "soft.gif", "-k", 16)
    assert result.exit_code == 0, result.output
    assert "translucent" in result.output
    back = read_animation(tmp_path / "soft.gif").frames
    assert np.all(back[:, :, :20, 3] == 0) and np.all(back[:, :, 20:, 3] == 255)


# --- no flicker and small GIFs --------------------------------------------------------


def test_dithering_leaves_static_pixels_alone(sample_photo):
    frames = _moving_square(sample_photo("kodim23.png"), n_frames=6, size=(64, 96), step=8)
    static = np.all(frames == frames[:1], axis=(0, 3))
    result = fastkm.quantize_frames(frames, 16, dither=True)
    out = result.frames
    flicker = np.any(out[1:] != out[:-1], axis=3)[:, static].mean()
    assert flicker < 0.001
    # It is dithered: the plain mapping differs on many pixels.
    plain = fastkm.quantize_frames(frames, palette=result.palettes[0]).labels
    assert np.mean(plain != result.labels) > 0.05
    # Frame by frame, independent dithering would flicker: the test can tell.
    independent = np.stack([fastkm.quantize(f, palette=result.palettes[0], dither=True).image for f in frames])
    assert np.any(independent[1:] != independent[:-1], axis=3)[:, static].mean() > 0.001


def test_gif_frames_are_cropped_to_what_changed(tmp_path, square_frames):
    result = fastkm.quantize_frames(square_frames, 32)
    path = tmp_path / "small.gif"
    write_animation(path, None, DURATIONS, 0, palettes=result.palettes, labels=result.labels)
    changed = np.any(result.frames[1:] != result.frames[:-1], axis=3)
    with Image.open(path) as image:
        for i in range(1, 4):
            image.seek(i)
            left, top, right, bottom = image.dispose_extent
            rows, columns = np.nonzero(changed[i - 1])
            assert (top, bottom, left, right) == (rows.min(), rows.max() + 1, columns.min(), columns.max() + 1)
    # No larger than Pillow's own GIF of the same indexed frames (which crops them too).
    from fastkm.io.write import palette_image

    images = [palette_image(result.palettes[0], labels) for labels in result.labels]
    images[0].save(tmp_path / "pillow.gif", save_all=True, append_images=images[1:], duration=DURATIONS, loop=0)
    assert path.stat().st_size <= (tmp_path / "pillow.gif").stat().st_size


def _frame_controls(data):
    """(flags, transparent index) of every graphic control extension of a GIF file."""
    return [(data[i + 3], data[i + 6]) for i in range(len(data)) if data.startswith(b"!\xf9\x04", i)]


def test_gif_unchanged_pixels_become_transparent_where_smaller(tmp_path, sample_photo):
    # Two small squares in opposite corners move: the changed box is nearly the whole
    # frame, but few of its pixels change.
    frames = np.repeat(sample_photo("kodim23.png")[:96, :128][None], 3, axis=0).copy()
    for i in range(3):
        frames[i, 2 + i : 8 + i, 2:8] = (255, 0, 0)
        frames[i, 88 - i : 94 - i, 120:126] = (0, 0, 255)
    result = fastkm.quantize_frames(frames, 32)
    write_animation(tmp_path / "a.gif", None, [100] * 3, 0, palettes=result.palettes, labels=result.labels)
    controls = _frame_controls((tmp_path / "a.gif").read_bytes())
    assert len(controls) == 3
    assert controls[0][0] & 1 == 0  # the first frame is drawn whole, opaque
    assert all(flags & 1 and index == 32 for flags, index in controls[1:])  # index 32: added, transparent
    np.testing.assert_array_equal(read_animation(tmp_path / "a.gif").frames, result.frames)


def test_identical_frames_merge_their_durations(tmp_path, square_frames):
    frames = square_frames[[0, 0, 1, 2, 3]]
    result = fastkm.quantize_frames(frames, 16)
    write_animation(tmp_path / "a.gif", None, [100, 50, 100, 100, 100], 0, palettes=result.palettes,
                    labels=result.labels)
    assert read_animation(tmp_path / "a.gif").durations.tolist() == [150, 100, 100, 100]


# --- bad input ------------------------------------------------------------------------


def _apng_with_frame_count(path, frames, n_frames):
    """An APNG whose acTL chunk claims n_frames."""
    _save_with_pillow(path, frames)
    data = bytearray(path.read_bytes())
    at = data.index(b"acTL")
    data[at + 4 : at + 8] = struct.pack(">I", n_frames)
    data[at + 12 : at + 16] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 12])))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
@pytest.mark.parametrize("kept", [0.4, 0.7, 0.98])
def test_truncated_animation_fails_in_one_line_and_writes_nothing(tmp_path, square_frames, suffix, kept):
    frames = square_frames if suffix != ".gif" else fastkm.quantize_frames(square_frames, 64).frames
    _save_with_pillow(tmp_path / f"full{suffix}", frames)
    data = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: int(len(data) * kept)])
    result = invoke("quantize", tmp_path / f"cut{suffix}", "-o", tmp_path / "out.gif")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result.output
    assert f"cut{suffix}" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"cut{suffix}", f"full{suffix}"]  # nothing written


def test_absurd_frame_count_is_refused_before_decoding(tmp_path, square_frames):
    _apng_with_frame_count(tmp_path / "many.png", square_frames, 1_000_000_000)
    with pytest.raises(ImageReadError, match="1000000000 frames of 64x48 = .* exceed the limit"):
        read_animation(tmp_path / "many.png")
    result = invoke("quantize", tmp_path / "many.png", "-o", tmp_path / "out.png")
    assert result.exit_code == 1 and "--max-pixels" in result.output and not (tmp_path / "out.png").exists()


def test_absurd_canvas_is_refused(tmp_path, square_frames):
    _save_with_pillow(tmp_path / "ok.gif", fastkm.quantize_frames(square_frames, 64).frames)
    data = bytearray((tmp_path / "ok.gif").read_bytes())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # the logical screen's width and height
    (tmp_path / "huge.gif").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="65535x65535"):
        read_animation(tmp_path / "huge.gif")


def test_max_pixels_counts_every_frame(tmp_path, square_frames):
    _save_with_pillow(tmp_path / "a.webp", square_frames)
    one_frame = 64 * 48
    assert read_animation(tmp_path / "a.webp", max_pixels=4 * one_frame).n_frames == 4
    with pytest.raises(ImageReadError, match="over all frames"):
        read_animation(tmp_path / "a.webp", max_pixels=4 * one_frame - 1)
    assert read_animation(tmp_path / "a.webp", max_pixels=one_frame, last_frame=0).n_frames == 1


def test_frames_of_different_sizes_are_refused(square_frames):
    with pytest.raises(fastkm.FastkmError, match="frame 1 has shape .* every frame"):
        fastkm.quantize_frames([square_frames[0], square_frames[1, :-1]], 8)
    with pytest.raises(ImageWriteError, match="durations"):
        write_animation("never.gif", square_frames, [100], 0)


def test_single_frame_output_refuses_or_takes_one_frame(tmp_path, square_frames):
    _save_with_pillow(tmp_path / "a.gif", fastkm.quantize_frames(square_frames, 64).frames)
    result = invoke("quantize", tmp_path / "a.gif", "-o", tmp_path / "a.jpg")
    assert result.exit_code == 1 and "--frame N" in result.output and not (tmp_path / "a.jpg").exists()
    result = invoke("quantize", tmp_path / "a.gif", "-o", tmp_path / "a.bmp", "--frame", 2, "-k", 8)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "a.bmp") as image:
        assert image.size == (64, 48)
    result = invoke("quantize", tmp_path / "a.gif", "-o", tmp_path / "b.bmp", "--frame", 4)
    assert result.exit_code == 1 and "frames count from 0 to 3" in result.output
