"""Animations in and out: GIF, APNG and animated WebP.

Reading gives every frame as a viewer shows it: Pillow composites all three formats
itself (GIF disposal and partial frames, APNG dispose and blend operations, WebP
through libwebp's animation decoder), so each frame comes out as a full canvas.
Memory is bounded by a documented limit rather than by streaming: canvas pixels times
frames must stay within ``max_pixels`` (checked from the headers before any frame is
decoded), and the frames are held at up to 4 bytes a pixel.

Loop counts are stored as the number of times the animation plays, 0 for forever, in
every format: a GIF's NETSCAPE count is the number of repeats after the first play
(what browsers do), and a GIF without one plays once.

Writing keeps frame count, durations and loop count.  GIF is written here (Pillow
encodes each frame's pixels): one global palette when the frames share one, each
frame cropped to the area that changed, and inside it the unchanged pixels made
transparent when that encodes smaller.  APNG and WebP go through Pillow (which crops
APNG frames to their changed area, and libwebp does the same for WebP, losslessly).
Every writer merges identical consecutive frames into one, their durations added: the
same playback in fewer bytes.
"""

import os
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import GifImagePlugin, Image, ImageSequence

from typing import Any, Optional

from .atomic import ImageWriteError, Outputs, PathLike, _atomic_save
from .read import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    check_not_truncated,
    checked_max_pixels,
    decode_failure,
    regular_file_size,
)
from .write import _png_text, checked_labels, checked_palette, palette_image

# Formats that hold animations, by output suffix.
ANIMATION_SUFFIXES = {".gif": "GIF", ".png": "PNG", ".apng": "PNG", ".webp": "WEBP"}
GIF_MAX_COLORS = 256
# GIF stores delays in hundredths of a second, up to 65535 of them.
GIF_MAX_DELAY_MS = 655350
# GIF NETSCAPE and APNG/WebP loop fields are 16 (WebP, GIF) or 32 bits wide.
MAX_LOOP = 65535


@dataclass
class Animation:
    """Frames of an animation as a viewer composites them.

    frames     (n, H, W, C) uint8, C = 3 (RGB) or 4 (RGBA, straight alpha; only when
               some pixel of some frame is not opaque)
    durations  (n,) int64, how long each frame shows, in milliseconds
    loop       times the animation plays; 0 = forever
    """

    frames: np.ndarray
    durations: np.ndarray
    loop: int = 0

    @property
    def n_frames(self):
        return self.frames.shape[0]


def is_animation(path: PathLike) -> bool:
    """True when ``path`` is a GIF, PNG or WebP file with more than one frame."""
    if not os.path.isfile(path):
        return False  # a pipe or a device is not opened here: read_image says what it is
    try:
        # Decoder warnings (a corrupt EXIF block) are read_image's to report, once.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                return image.format in ("GIF", "PNG", "WEBP") and getattr(image, "n_frames", 1) > 1
    except Exception:  # not readable: read_image or read_animation will say why
        return False


def _plays_from_file(image):
    """Times the animation plays (0 = forever) from an open Pillow image's info."""
    if image.format == "GIF":
        if "loop" not in image.info:
            return 1  # no NETSCAPE block: the animation plays once
        repeats = int(image.info["loop"])
        return 0 if repeats == 0 else repeats + 1
    return int(image.info.get("loop", 0))


def read_animation(path: PathLike, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                   last_frame: Optional[int] = None) -> Animation:
    """Read every frame of a GIF, APNG or animated WebP file, composited as a viewer shows it.

    Returns an Animation (frames (n, H, W, 3 or 4) uint8, durations in ms, loop count).
    A single-frame image comes back as a one-frame animation; ``last_frame`` (counted
    from 0) stops after that frame.  Width x height x frames decoded, taken from the
    file before any frame is decoded, must not exceed ``max_pixels`` (None: no limit).
    Raises ImageReadError with a one-line reason for a missing, truncated or corrupt
    file, a format that holds no animation, or one over the limit.
    """
    max_pixels = checked_max_pixels(max_pixels)
    path = Path(path)
    regular_file_size(path)
    previous_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # our limit, over all frames, replaces Pillow's
        with Image.open(path) as image:
            if image.format not in ("GIF", "PNG", "WEBP"):
                raise ImageReadError(f"{path}: {image.format} files hold no animation; expected a GIF, PNG or WebP")
            width, height = image.size
            n_frames = int(getattr(image, "n_frames", 1))
            if last_frame is not None:
                if not 0 <= last_frame < n_frames:
                    raise ImageReadError(
                        f"{path}: has {n_frames} frame{'s' if n_frames > 1 else ''}; frame {last_frame} is not "
                        f"one of them (frames count from 0 to {n_frames - 1})"
                    )
                n_frames = last_frame + 1
            if max_pixels is not None and width * height * n_frames > max_pixels:
                raise ImageReadError(
                    f"{path}: {n_frames} frames of {width}x{height} = {width * height * n_frames:,} pixels exceed "
                    f"the limit of {max_pixels:,} pixels over all frames; raise it with --max-pixels if you "
                    "trust the file"
                )
            loop = _plays_from_file(image)
            frames = np.empty((n_frames, height, width, 4), dtype=np.uint8)
            durations = np.zeros(n_frames, dtype=np.int64)
            n_read = 0
            for frame in ImageSequence.Iterator(image):
                frames[n_read] = np.asarray(frame.convert("RGBA"))
                durations[n_read] = round(float(frame.info.get("duration", 0) or 0))
                n_read += 1
                if n_read == n_frames:
                    break
            if n_read != n_frames:
                raise ImageReadError(f"{path}: holds {n_read} frames, its header says {n_frames}; it may be truncated")
            if last_frame is None:
                check_not_truncated(path)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory for {n_frames} frames of {width}x{height}") from None
    except Exception as error:
        raise decode_failure(path, error, "an animation") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    if np.all(frames[..., 3] == 255):
        frames = frames[..., :3]  # opaque everywhere: alpha says nothing
    return Animation(np.ascontiguousarray(frames), durations, loop)


def _check_frames(frames, durations, loop):
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] not in (3, 4) or 0 in frames.shape[:3]:
        raise ImageWriteError(
            f"frames have shape {frames.shape} and dtype {frames.dtype}; expected (n, H, W, 3 or 4) uint8"
        )
    durations = np.asarray(durations)
    if durations.shape != (frames.shape[0],) or not np.all(np.isfinite(durations) & (durations >= 0)):
        raise ImageWriteError(
            f"durations must be {frames.shape[0]} finite numbers >= 0 (milliseconds), one per frame; "
            f"got {np.array2string(durations, threshold=6)}"
        )
    if not isinstance(loop, (int, np.integer)) or not 0 <= loop <= MAX_LOOP:
        raise ImageWriteError(f"loop={loop!r} must be an integer between 0 (forever) and {MAX_LOOP}")
    return durations.astype(np.int64)


def write_animation(
    path: PathLike,
    frames: Any,
    durations: Any,
    loop: int = 0,
    *,
    palettes: Any = None,
    labels: Any = None,
    replace: bool = True,
    outputs: Optional[Outputs] = None,
) -> None:
    """Write an animation atomically as .gif, .png (APNG) or .webp (lossless), by suffix.

    Either full-colour ``frames`` (n, H, W, 3 or 4) uint8, or indexed frames: ``labels``
    (n, H, W) uint8 with ``palettes``, a list of one shared palette (m, 3 or 4) uint8 or
    of one per frame (then pass frames=None).  GIF needs indexed frames of at most 256
    colours, fully transparent or opaque.  durations (n,) in milliseconds (GIF rounds
    them to hundredths of a second); loop: times it plays, 0 = forever.  ``replace`` and
    ``outputs`` as for ``write_quantized`` (an existing file is replaced only with
    replace; with an Outputs the file is staged and published with the others).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in ANIMATION_SUFFIXES:
        raise ImageWriteError(f"{path}: {suffix or '(no suffix)'} holds one frame; write a .gif, .png or .webp animation")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 3 or len(palettes) not in (1, labels.shape[0]):
            raise ImageWriteError(
                f"expected labels (n, H, W) and 1 or n palettes, got labels {labels.shape} and {len(palettes)} palettes"
            )
        palettes = [checked_palette(p, f"palette {i}") for i, p in enumerate(palettes)]
        if len(palettes) == 1:
            checked_labels(labels, palettes[0].shape[0], ndim=3)
        else:
            for i, (frame, palette) in enumerate(zip(labels, palettes)):
                checked_labels(frame, palette.shape[0], what=f"labels of frame {i}")
        # Grey palettes become RGB: every format here stores colour frames.
        palettes = [np.concatenate([np.repeat(p[:, :1], 3, axis=1), p[:, 1:]], axis=1) if p.shape[1] in (1, 2) else p
                    for p in palettes]
        if frames is None:
            frames = _colour_frames(palettes, labels)
    durations = _check_frames(frames, durations, loop)
    if suffix == ".gif":
        if labels is None:
            raise ImageWriteError(f"{path}: GIF frames must be indexed; quantize them first (fastkm.quantize_frames)")
        data = _gif_bytes(palettes, labels, durations, loop)
        _atomic_save(path, lambda temporary: Path(temporary).write_bytes(data), replace=replace, outputs=outputs)
        return
    n_frames = frames.shape[0]
    if labels is not None and len(palettes) == 1 and palettes[0].shape[0] <= 256 and ANIMATION_SUFFIXES[suffix] == "PNG":

        images = [palette_image(palettes[0], labels[i]) for i in range(n_frames)]
    else:
        images = [Image.fromarray(frames[i]) for i in range(n_frames)]
    options = {"save_all": True, "append_images": images[1:], "duration": durations.tolist(), "loop": int(loop)}
    if ANIMATION_SUFFIXES[suffix] == "WEBP":
        options.update(lossless=True, quality=100, method=4)
    else:
        # The "Software" text tells later folder runs that fastkm wrote this file.
        options.update(compress_level=6, pnginfo=_png_text(None))

    def save(temporary):
        images[0].save(temporary, format=ANIMATION_SUFFIXES[suffix], **options)

    _atomic_save(path, save, replace=replace, outputs=outputs)


def _colour_frames(palettes, labels):
    if len(palettes) == 1:
        return palettes[0][labels]
    return np.stack([palette[frame] for palette, frame in zip(palettes, labels)])


# --------------------------------------------------------------------------------------
# GIF


def gif_palette_size(n_colors: int, transparent: bool) -> int:
    """Colours to fit for a GIF animation of up to n_colors: 256 leave no index free for
    the pixels a frame leaves unchanged, so ask for 255 (as ffmpeg and gifski do) unless
    the frames have transparent pixels, whose entry serves (``transparent``).  A still
    scene with a moving object, 20 frames, plain: 117,838 bytes at 255 colours against
    134,166 at 256 (bench/results/animation.md)."""
    return n_colors if transparent else min(n_colors, GIF_MAX_COLORS - 1)


def _gif_palette_bytes(palette, n_entries):
    """RGB bytes of palette (m, C) padded with black to n_entries (a power of two >= 2)."""
    rgb = np.zeros((n_entries, 3), dtype=np.uint8)
    rgb[: palette.shape[0]] = palette[:, :3] if palette.shape[1] >= 3 else palette[:, :1]
    return rgb.tobytes()


def _table_bits(n_entries):
    """Colour table size field: the table holds 2 ** (bits + 1) entries."""
    return max(1, int(np.ceil(np.log2(max(n_entries, 2))))) - 1


def _transparent_index(palette):
    """Index of a fully transparent entry of palette, else a free index (m < 256) that
    the writer adds as transparent, else None."""
    if palette.shape[1] in (2, 4):
        clear = np.flatnonzero(palette[:, -1] == 0)
        if clear.size:
            return int(clear[0])
    return palette.shape[0] if palette.shape[0] < GIF_MAX_COLORS else None


def _frame_block(labels, palette, offset, *, transparent, delay_ms, disposal, local_table):
    """One frame's bytes: graphic control extension, image descriptor, LZW data."""
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), np.ascontiguousarray(labels).tobytes())
    n_entries = 2 << _table_bits(max(palette.shape[0], (transparent or 0) + 1))
    image.putpalette(_gif_palette_bytes(palette, n_entries))
    params = {"duration": (delay_ms + 5) // 10 * 10, "disposal": disposal, "include_color_table": local_table}
    if transparent is not None:
        params["transparency"] = transparent
    # Pillow writes the control extension (the disposal is always given) and the LZW data.
    return b"".join(GifImagePlugin.getdata(image, offset, **params))


def _changed_box(mask):
    """(top, bottom, left, right) bounds of the True pixels of mask (H, W), or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1


def _gif_bytes(palettes, labels, durations, loop, *, crop=True, see_through=True):
    """A whole GIF file of indexed frames labels (n, H, W) over palettes (1 or n).

    crop, see_through: write frames after the first cropped to the changed box, and try
    unchanged pixels as transparent there (both on; off only to measure what they save).
    """
    n_frames, height, width = labels.shape
    for palette in palettes:
        if palette.shape[0] > GIF_MAX_COLORS:
            raise ImageWriteError(f"{palette.shape[0]} colours do not fit a GIF (at most {GIF_MAX_COLORS})")
        if palette.shape[1] in (2, 4) and np.any((palette[:, -1] > 0) & (palette[:, -1] < 255)):
            raise ImageWriteError("GIF holds only fully transparent or opaque pixels; these frames have translucent ones")
    if np.any(durations > GIF_MAX_DELAY_MS):
        raise ImageWriteError(f"GIF frames show for at most {GIF_MAX_DELAY_MS} ms each")
    if labels.dtype != np.uint8:
        labels = labels.astype(np.uint8)
    shared = len(palettes) == 1
    colours = _colour_frames(palettes, labels) if not shared else None

    def shown(i):
        """Frame i's pixels as comparable values: labels over a shared palette, else colours."""
        return labels[i] if shared else colours[i]

    def clear(i):
        """Fully transparent pixels of frame i (H, W) bool."""
        palette = palettes[0 if shared else i]
        if palette.shape[1] not in (2, 4):
            return np.zeros((height, width), dtype=bool)
        return palette[labels[i], -1] == 0

    # Deltas draw over what is shown, so a pixel can never turn transparent again: then
    # every frame is drawn whole over a cleared canvas (disposal 2) instead.
    whole = any(np.any(clear(i) & ~clear(i - 1)) for i in range(1, n_frames))

    # Merge runs of identical frames (the same playback).
    keep, merged = [0], [int(durations[0])]
    for i in range(1, n_frames):
        if np.array_equal(shown(i), shown(keep[-1])) and merged[-1] + durations[i] <= GIF_MAX_DELAY_MS:
            merged[-1] += int(durations[i])
        else:
            keep.append(i)
            merged.append(int(durations[i]))

    global_palette = palettes[0]
    # Room for an added transparent entry where the shared palette leaves one.
    global_entries = 2 << _table_bits(min(global_palette.shape[0] + shared, GIF_MAX_COLORS))
    out = BytesIO()
    out.write(b"GIF89a" + width.to_bytes(2, "little") + height.to_bytes(2, "little"))
    out.write(bytes([0x80 | 0x70 | _table_bits(global_entries), 0, 0]))
    out.write(_gif_palette_bytes(global_palette, global_entries))
    if loop != 1:  # no NETSCAPE block: plays once
        repeats = 0 if loop == 0 else loop - 1
        out.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + repeats.to_bytes(2, "little") + b"\x00")
    for position, (i, delay_ms) in enumerate(zip(keep, merged)):
        palette = palettes[0 if shared else i]
        transparent = _transparent_index(palette)
        # A palette with a clear entry declares it in every frame, or it would show black.
        has_clear = palette.shape[1] in (2, 4) and bool(np.any(palette[:, -1] == 0))
        options = {"delay_ms": delay_ms, "local_table": not shared}
        if position == 0 or whole or not crop:
            out.write(_frame_block(labels[i], palette, (0, 0), transparent=transparent if has_clear else None,
                                   disposal=2 if whole else 1, **options))
            continue
        previous = keep[position - 1]
        changed = shown(i) != shown(previous)
        if changed.ndim == 3:
            changed = changed.any(axis=2)
        top, bottom, left, right = _changed_box(changed)
        boxed = labels[i, top:bottom, left:right]
        blocks = [_frame_block(boxed, palette, (left, top), transparent=transparent if has_clear else None,
                               disposal=1, **options)]
        if transparent is not None and see_through:
            # Unchanged pixels as transparent: longer runs of one index, often fewer bytes.
            clear_unchanged = np.where(changed[top:bottom, left:right], boxed, np.uint8(transparent))
            blocks.append(_frame_block(clear_unchanged, palette, (left, top), transparent=transparent, disposal=1,
                                       **options))
        out.write(min(blocks, key=len))
    out.write(b";")
    return out.getvalue()
