"""The ``fastkm`` command line: thin commands over the library.

Library errors are caught here and printed as one line on stderr with exit code 1;
usage errors (bad options) exit with 2, as typer does; an unreachable --psnr target
exits with 99 and a --skip-if-larger skip with 98, as pngquant's do.  ``--debug``
shows tracebacks.
"""

import dataclasses
import gc
import itertools
import math
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from enum import Enum
from typing import List, Optional

import numpy as np
import typer
import typer.core

# numba and the kernels load in the commands that run them (``--help`` needs neither).
from . import __version__
from ._limits import DEFAULT_SAMPLE_SIZE, DEFAULT_WEIGHTING, MAX_COLORS, FastkmError, QualityError
from .io import (
    ANIMATION_SUFFIXES,
    DEFAULT_MAX_PIXELS,
    FORMAT_SUFFIXES,
    INDEXED_SUFFIXES,
    PALETTE_SUFFIXES,
    RGB_SUFFIXES,
    ImageReadError,
    ImageWriteError,
    Outputs,
    carries_profile,
    describe,
    encode_quantized,
    gif_palette_size,
    indexed_capacity_error,
    is_animation,
    is_srgb,
    output_format,
    output_kind,
    palette_capacity_error,
    read_animation,
    read_colour_profile,
    read_image_file,
    read_palette,
    same_space,
    to_srgb,
    write_animation,
    write_bytes,
    write_image,
    write_palette,
)
from .io.atomic import reason
from .io.paths import Inputs, default_output, earlier_output_of, output_key, readable_suffixes

# Options of the whole program, taken from anywhere on the command line (before "--").
GLOBAL_FLAGS = {"--debug": "debug", "-q": "quiet", "--quiet": "quiet"}

EXAMPLES = """Examples:

\b
  fastkm quantize photo.jpg -k 16 -o photo-16.png   # an indexed PNG of 16 colours
  fastkm quantize photos/ -o small/ -k 64 -r        # a folder, sub-folders too
  fastkm quantize logo.png -k 32 --dither           # dithered, transparency kept
  fastkm palette photo.jpg -k 5 --json              # dominant colours, their shares
  fastkm compare photo.jpg -k 8 -o figure.png       # original and 8 colours, side by side

Run 'fastkm COMMAND --help' for a command's options."""


class _Group(typer.core.TyperGroup):
    """Reads --debug and -q/--quiet wherever they stand, then parses the rest."""

    def parse_args(self, ctx, args):
        _state.update(debug=False, quiet=False)
        if "" in args:
            # typer reads an empty path as ".": `fastkm quantize "$UNSET"` would quantize
            # the whole current folder.
            usage_error = sys.modules[typer.BadParameter.__module__].UsageError  # typer's click, as in run()
            raise usage_error("an argument is empty (an unset shell variable?); remove it or give it a value", ctx=ctx)
        rest, positional_only = [], False
        for arg in args:
            if positional_only or arg not in GLOBAL_FLAGS:
                rest.append(arg)
                positional_only = positional_only or arg == "--"
            else:
                _state[GLOBAL_FLAGS[arg]] = True
        return super().parse_args(ctx, rest)


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    help="Fast k-means colour quantization: a photo in, its best k-colour version out.",
    epilog=EXAMPLES,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False, "quiet": False}


def _version_callback(value: bool):
    if value:
        typer.echo(f"fastkm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show a traceback when something fails (anywhere on the line)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only results and errors: no notes or progress."),
):
    """Fast k-means colour quantization: a photo in, its best k-colour version out."""
    warnings.showwarning = _warning_as_note


def _warning_as_note(message, category, filename, lineno, file=None, line=None):
    """Warnings (a decoder's note of a corrupt EXIF block) as one line on stderr."""
    _note(f"note: {str(message).splitlines()[0] if str(message) else category.__name__}")


# Exit codes.  98 and 99 are pngquant's, so scripts written for it read fastkm's too.
EXIT_ERROR = 1  # a file could not be read or written, or the input is unusable
EXIT_USAGE = 2  # bad options (typer's own code)
EXIT_NOT_SMALLER = 98  # --skip-if-larger: the result would not be smaller; nothing written
EXIT_QUALITY = 99  # --psnr: the target is out of reach with -k colours; nothing written
# "-" as INPUT reads standard input, as -o writes standard output.
STDIO = "-"


def _fail(message, code=EXIT_ERROR):
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _human_bytes(n_bytes):
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Refused(Exception):
    """A request the command declines (it would overwrite an input or an existing file)."""


class NotSmaller(Exception):
    """--skip-if-larger: the result would not be smaller than the input; nothing written."""


def _is_stdio(path):
    return str(path) == STDIO


def _check_outputs(inputs, outputs, force, planned=None):
    """Refuse, before any work, outputs that would land on one of inputs (an Inputs) or
    on each other, or replace an existing file without --force.

    outputs: (path, what it is) pairs; ``planned`` (output_key -> what) carries the
    outputs already checked across calls, for a batch."""
    planned = {} if planned is None else planned
    for output_path, what in outputs:
        if _is_stdio(output_path):
            continue  # standard output
        clash = inputs.clash(output_path)
        if clash is not None:
            which = "the input file" if str(clash) == str(output_path) else f"the input file {clash}"
            raise Refused(
                f"{output_path}: is {which}; choose another output name (an input is never overwritten, "
                "not even with --force)"
            )
        key = output_key(output_path)
        if key in planned:
            raise Refused(f"{output_path}: is also {planned[key]}; give them different names")
        planned[key] = what
        if os.path.isdir(output_path):
            raise Refused(f"{output_path}: is a folder; give a file name")
        if (os.path.lexists(output_path) or os.path.lexists(os.path.realpath(output_path))) and not force:
            raise Refused(f"{output_path}: already exists; use --force to replace it")


def _note(message):
    """A note on stderr (compiling, frames, colours kept); -q silences it."""
    if not _state["quiet"]:
        typer.echo(message, err=True)


def _say(message, err=False):
    """A summary line on stdout (stderr when stdout carries the image) for a person
    reading it; -q silences it."""
    if not _state["quiet"]:
        typer.echo(message, err=err)


COMPILING = (
    "Compiling fastkm's kernels for this kind of image (first use only, a few seconds; cached for next time; "
    "`fastkm warmup` compiles them all ahead of time)..."
)


def _in_srgb(pixels, icc_profile):
    """(pixels, None): pixels converted to sRGB from icc_profile (None = already sRGB)."""
    return (pixels if is_srgb(icc_profile) else to_srgb(pixels, icc_profile)), None


def _pixels_to_fit(image_file, options, file_format, name, echo=_note):
    """The pixels to quantize and the profile to write with them: the file's own, or
    sRGB when asked (--srgb, a given palette, mixed shared profiles) or when the output
    format cannot carry a profile, so the palette is fitted to the colours shown."""
    pixels, profile = image_file.pixels, image_file.icc_profile
    if options.get("to_srgb") or not carries_profile(file_format):
        if not is_srgb(profile) and not options.get("to_srgb"):
            echo(f"note: {name} is in {describe(profile)}; converted to sRGB, as {file_format} files cannot say otherwise")
        pixels, profile = _in_srgb(pixels, profile)
    return pixels, profile


def _import_fit_meanwhile(input_path=None, options=None):
    """Import numba, the kernels and the library on a background thread, once per
    process, while this thread reads the input.

    Decoders release the GIL, so on two or more cores the imports (0.3 s of Python)
    and the decoding (0.4 s for a 12 MP PNG) overlap.  An import that fails here fails
    again, with its message, where the fit imports the same modules.  When the input is
    a large RGB or RGBA PNG (_preload_worthwhile), the thread then also loads the fit's kernels
    from numba's cache (a tiny fit with the same options) while the decoding goes on.
    """
    global _fit_imports
    if _fit_imports is None and "fastkm.api" not in sys.modules:
        preload = options if _preload_worthwhile(input_path, options) else None
        _fit_imports = threading.Thread(target=_import_fit, args=(preload,), name="fastkm-imports", daemon=True)
        _fit_imports.start()


# PNGs of at least this many bytes decode for longer than the imports take (a 15 MB 12 MP
# PNG: 0.4 s, the imports 0.3 s): the rest of the decoding loads the fit's kernels.
PRELOAD_MIN_BYTES = 8 << 20
_PNG_RGB8 = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def _preload_worthwhile(input_path, options):
    """Whether the fit's kernels can load beside the decoding: a plain fit (no given
    palette, no PSNR target, at most 256 colours) of a large 8-bit RGB or RGBA PNG (bytes
    24 and 25 of the file: bit depth 8, colour type 2 or 6; an RGBA photo's alpha is
    mostly opaque everywhere, and then its fit is an RGB one) on two or more cores."""
    if (options is None or input_path is None or _is_stdio(input_path) or options.get("palette") is not None
            or options.get("min_psnr") is not None or options.get("frame") is not None
            or not 0 < options.get("n_colors", 0) <= 256 or (os.cpu_count() or 1) < 2):
        return False
    try:
        if os.stat(input_path).st_size < PRELOAD_MIN_BYTES:
            return False
        with open(input_path, "rb") as file:
            head = file.read(26)
    except OSError:
        return False
    return head[:16] == _PNG_RGB8 and head[24:26] in (b"\x08\x02", b"\x08\x06")


def _preload_kernels(options):
    """Load the kernels a fit with these options calls from numba's cache, by a fit of a
    tiny RGB image of the same types.  Only on a warm cache: on a first run the fit
    compiles on the main thread, announced (and the compile-ahead helper may help); a
    kernel still compiled here is announced as the main thread's would be."""
    from . import _compile_ahead, _kernels
    from .api import quantize

    if not _compile_ahead.cached(3):
        return
    pixels = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    with _kernels.compile_notices(_note_preload_compiling), _kernels.limit_threads(1):
        quantize(pixels, options["n_colors"], seed=0, dither=options.get("dither", 0.0),
                 space=options.get("space", "auto"), weighting=options.get("weighting", DEFAULT_WEIGHTING),
                 sample_size=options.get("sample_size", DEFAULT_SAMPLE_SIZE))


# Whether the preload announced a compile, so the fit need not.  A plain dict, not a
# threading object: `python -m fastkm.cli` runs this module as __main__, whose functions
# a Dask batch pickles by value, with the globals they reach.
_preload_noted = {"compiling": False}


def _note_preload_compiling():
    _preload_noted["compiling"] = True
    _note(COMPILING)


def _announce_compiling(echo):
    """The fit's compile note, unless the preload has just given it."""
    if _preload_noted["compiling"]:
        _preload_noted["compiling"] = False
    else:
        echo(COMPILING)


def _import_fit(preload=None):
    # In the command line's own process, garbage collection waits for the end of the
    # imports, whose 100,000 objects (modules, functions, numba's types) live until the
    # process ends; then they are frozen, out of every later collection.  Collecting
    # while they are made (150 times), or once they are made, finds nothing to free and
    # costs 0.04-0.05 s each way.
    pause_collection = _own_process and gc.isenabled()
    if pause_collection:
        gc.disable()
    try:
        from . import _kernels, api  # noqa: F401
        # What the first kernel call imports: numba's array allocation, for the cached
        # kernels' environments (0.05 s), and numpy.ma, which numba's typing of an array
        # argument checks for (0.01 s).
        import numba.np.arrayobj  # noqa: F401
        import numpy.ma  # noqa: F401
    except Exception:  # reported by the fit's own import
        pass
    finally:
        if pause_collection:
            gc.freeze()
            gc.enable()
    if preload is not None:
        try:
            _preload_kernels(preload)
        except Exception:  # an optimisation only: the fit loads what it needs itself
            pass


_fit_imports = None
# True in the command line's own process (the console script, python -m fastkm), which
# runs nothing else.
_own_process = False


def _read_input(input_path, options, file_format="PNG", echo=_note):
    """Read one input (a path, or '-' for standard input, read in full first: decoders
    seek, pipes do not; the pixel limit is checked on the header as for files) as the fit
    wants it for an output in file_format: (ImageFile, pixels (H, W, C) or (H, W) uint8,
    the profile of those pixels (None = sRGB))."""
    _import_fit_meanwhile(input_path, options)
    source = sys.stdin.buffer.read() if _is_stdio(input_path) else input_path
    if isinstance(source, bytes) and not source:
        raise Refused("standard input: no data; pipe an image file in")
    name = "standard input" if _is_stdio(input_path) else str(input_path)
    image_file = read_image_file(source, max_pixels=options["max_pixels"], name=name)
    if options.get("frame") is not None:
        # One frame of an animation, composited as shown; profile and metadata are the file's.
        if isinstance(source, bytes):
            raise Refused("--frame picks a frame of a named file; it cannot read standard input")
        frames = read_animation(source, max_pixels=options["max_pixels"], last_frame=options["frame"]).frames
        chosen = frames[-1] if frames.shape[3] == 3 or np.any(frames[-1, :, :, 3] < 255) else frames[-1, :, :, :3]
        image_file = dataclasses.replace(image_file, pixels=chosen)
    elif image_file.n_frames > 1:
        echo(f"note: {name} has {image_file.n_frames} frames; fastkm quantizes the first one (--frame N picks another)")
    image, profile = _pixels_to_fit(image_file, options, file_format, name, echo)
    palette = options.get("palette")
    return image_file, (image if palette is None else _onto_channels(image, palette.shape[1])), profile


def _onto_channels(image, n_channels):
    """An image in a palette's channels: grey repeated to RGB, an opaque alpha added (a
    shared palette over images of which some have transparency)."""
    if image.ndim == 2:
        image = image[:, :, None]
    colour, alpha = (image[..., :-1], image[..., -1:]) if image.shape[2] in (2, 4) else (image, None)
    if n_channels >= 3 and colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if n_channels in (2, 4) and alpha is None:
        alpha = np.full(image.shape[:2] + (1,), 255, np.uint8)
    image = np.concatenate([colour, alpha], axis=2) if alpha is not None else colour
    return image[:, :, 0] if image.shape[2] == 1 else image


def _fit(image, options, echo=_note):
    """Quantize a read image with the fit options; returns (result, seconds)."""
    from . import _kernels
    from .api import quantize

    with _kernels.compile_notices(lambda: _announce_compiling(echo)):
        start = time.perf_counter()
        # As (H, W, 1): a grey image 3 or 4 pixels wide is not a list of RGB(A) pixels.
        result = quantize(
            image[:, :, None] if image.ndim == 2 else image, options["n_colors"], palette=options.get("palette"),
            seed=options["seed"],
            sample_size=options["sample_size"], dither=options["dither"], space=options["space"],
            weighting=options.get("weighting", DEFAULT_WEIGHTING), min_psnr=options.get("min_psnr"),
        )
        seconds = time.perf_counter() - start
        if not _state["quiet"]:
            # The summary shows it (quiet runs print none: a dithered 12 MP photo's ΔE is a
            # pass over every pixel); a compile it needs is announced here.
            result.delta_e
    return result, seconds


def _quality(result):
    """'MSE m, PSNR p dB, ΔE d' for a summary line."""
    delta_e = getattr(result, "delta_e", None)  # not measured over animation frames
    text = f"MSE {result.mse:.2f}, PSNR {result.psnr:.2f} dB"
    return text + (f", ΔE {delta_e:.4f}" if delta_e is not None else "")


# What one file can fail with (an OSError: a name too long, a full disk, no permission);
# anything else is a bug and keeps its traceback.
FAILURES = (FastkmError, ImageReadError, ImageWriteError, Refused, NotSmaller, OSError)


def _exit_code(error):
    """The exit code of a failure: 99 for an unreachable --psnr, 98 for --skip-if-larger."""
    if isinstance(error, QualityError):
        return EXIT_QUALITY
    if isinstance(error, NotSmaller):
        return EXIT_NOT_SMALLER
    return EXIT_ERROR


# A batch whose files end differently exits with the most serious code.
_SEVERITY = {0: 0, EXIT_NOT_SMALLER: 1, EXIT_QUALITY: 2, EXIT_ERROR: 3}


def _message(error):
    """One line for a failure: the library's message, or an OSError's file and reason."""
    if isinstance(error, OSError) and not isinstance(error, ImageWriteError):
        where = error.filename if error.filename is not None else ""
        return f"{where}: {reason(error)}" if where else reason(error)
    if isinstance(error, MemoryError):
        return "not enough memory for this image; try a smaller one"
    return str(error)


def _run(body):
    """Run a command body, turning library errors into one line and their exit code."""
    try:
        body()
    except (*FAILURES, MemoryError) as error:
        if _state["debug"]:
            raise
        if isinstance(error, NotSmaller):
            _note(f"skipped: {error}")
            raise typer.Exit(EXIT_NOT_SMALLER)
        _fail(_message(error), _exit_code(error))


def _finite(value):
    """Typer callback: refuse NaN and infinity, which pass typer's range checks."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number; give a finite value")
    return value


N_COLORS_OPTION = typer.Option(16, "-k", "--colors", min=1, max=MAX_COLORS, help="Number of colours in the palette.")
SEED_OPTION = typer.Option(0, "--seed", min=0, help="Random seed: the same seed gives the same output.")
MAX_PIXELS_OPTION = typer.Option(
    DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse images with more pixels than this (decompression bombs)."
)
SAMPLE_OPTION = typer.Option(
    DEFAULT_SAMPLE_SIZE, "--sample-size", min=1, help="Pixels sampled to seed the fit before the exact refinement."
)
DITHER_OPTION = typer.Option(
    False, "--dither/--no-dither",
    help="Floyd-Steinberg dithering (smoother gradients, lower PSNR) or none; both spellings are accepted so "
    "that scripts can say which they want whatever the default.",
)
DITHER_STRENGTH_OPTION = typer.Option(
    1.0, "--dither-strength", min=0.0, max=1.0, callback=_finite,
    help="Share of each pixel's error passed on by --dither (0..1).",
)


class Space(str, Enum):
    auto = "auto"
    rgb = "rgb"
    oklab = "oklab"


SPACE_OPTION = typer.Option(
    Space.auto, "--space",
    help="Colour space of the fit: oklab (perceptual: lowest ΔE, files that look better per byte), rgb "
    "(exact k-means on the stored values: lowest MSE), or auto: oklab, and rgb for images with transparency.",
)


class Weighting(str, Enum):
    perceptual = "perceptual"
    none = "none"


WEIGHTING_OPTION = typer.Option(
    Weighting(DEFAULT_WEIGHTING), "--weighting",
    help="perceptual: weigh each pixel by how visible its error is (flat areas most, busy texture a third); "
    "none: plain k-means, lowest MSE.",
)


# The suffixes fastkm writes images with.
IMAGE_SUFFIXES = set(INDEXED_SUFFIXES) | set(RGB_SUFFIXES)


def _check_colours_fit(output_path, n_colors):
    why_not = indexed_capacity_error(output_path, n_colors)
    if why_not:
        raise typer.BadParameter(why_not, param_hint="'-k'")


def _quantize_to(input_path, output_path, options, echo=_note, inputs=None):
    """Quantize one input (a path or '-') and write it to output_path (a path, or '-' for
    standard output), with its palette when options["save_palette"] names one (both or
    neither); returns (result, seconds quantize took, input bytes, output bytes).

    ``inputs`` (an Inputs) are the files no output may land on; by default the input."""
    save_palette = options["save_palette"]
    to_stdout = _is_stdio(output_path)
    outputs = [(output_path, "the image output")]
    if save_palette is not None:
        outputs.append((save_palette, "the palette output"))
    _check_outputs(inputs or Inputs([] if _is_stdio(input_path) else [input_path]), outputs, options["force"])
    if options.get("frame") is None and not _is_stdio(input_path) and is_animation(input_path):
        if to_stdout:
            raise Refused(f"{input_path.name} is an animation: name an output file with -o (or pick one frame with --frame N)")
        result, seconds = _quantize_animation(input_path, output_path, options, echo=echo)
        return result, seconds, input_path.stat().st_size, output_path.stat().st_size
    file_format = options["format"] or ("PNG" if to_stdout else output_format(output_path))
    image_file, image, profile = _read_input(input_path, options, file_format, echo=echo)
    if save_palette is not None:
        why_not = palette_capacity_error(save_palette, image.shape[2] if image.ndim == 3 else 1)
        if why_not:
            raise Refused(f"{save_palette}: {why_not}")
    result, seconds = _fit(image, options, echo=echo)
    shown_output = "standard output" if to_stdout else str(output_path)
    try:
        data = encode_quantized(
            result.palette, result.labels, file_format, optimize=options["optimize"], icc_profile=profile,
            metadata=None if options["strip"] else image_file.metadata,
        )
    except ImageWriteError as error:
        raise ImageWriteError(f"{shown_output}: {error}") from None
    if options["skip_if_larger"] and len(data) >= image_file.n_bytes:
        shown_input = "standard input" if _is_stdio(input_path) else str(input_path)
        raise NotSmaller(
            f"{shown_input}: the result ({_human_bytes(len(data))}) would not be smaller than the input "
            f"({_human_bytes(image_file.n_bytes)}); nothing written (--skip-if-larger)"
        )
    with Outputs(replace=options["force"]) as staged:
        if not to_stdout:
            write_bytes(output_path, data, outputs=staged)
        if save_palette is not None:
            write_palette(save_palette, result.palette, outputs=staged)
        staged.publish()
    if to_stdout:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except OSError as error:  # a full disk, a closed pipe
            raise ImageWriteError(f"standard output: cannot write ({reason(error)})") from None
    return result, seconds, image_file.n_bytes, len(data)


def _quantize_animation(input_path, output_path, options, echo=_note):
    """Quantize every frame of an animation (one palette over all frames, or one per frame
    with options["per_frame"]) and write it, with its palette when options["save_palette"]
    names one; returns the FramesResult and the seconds quantize_frames took."""
    suffix = output_path.suffix.lower()
    save_palette = options["save_palette"]
    if suffix not in ANIMATION_SUFFIXES:
        raise Refused(
            f"{output_path}: {suffix or '(no suffix)'} holds one frame and {input_path.name} is an animation; "
            "write a .gif, .png or .webp, or pick one frame with --frame N"
        )
    if options.get("min_psnr") is not None:
        raise Refused("--psnr chooses the colours of one image; animations take -k")
    if save_palette is not None and options.get("per_frame"):
        raise Refused("--save-palette: with --per-frame every frame has its own palette")
    _import_fit_meanwhile()
    animation = read_animation(input_path, max_pixels=options["max_pixels"])
    frames = animation.frames
    if save_palette is not None:
        why_not = palette_capacity_error(save_palette, frames.shape[3])
        if why_not:
            raise Refused(f"{save_palette}: {why_not}")
    if suffix == ".gif" and frames.shape[3] == 4:
        opacity = frames[..., 3]
        if np.any((opacity > 0) & (opacity < 255)):
            echo("note: GIF pixels are transparent or opaque: translucent ones are made one or the other at 50 %")
            frames = frames.copy()
            frames[..., 3] = np.where(opacity >= 128, 255, 0).astype(np.uint8)
    n_colors = options["n_colors"]
    if suffix == ".gif":
        n_colors = gif_palette_size(n_colors, frames.shape[3] == 4 and bool(np.any(frames[..., 3] == 0)))
    from . import _kernels
    from .api import quantize_frames

    with _kernels.compile_notices(lambda: _announce_compiling(echo)):
        start = time.perf_counter()
        result = quantize_frames(
            frames, n_colors, per_frame=options.get("per_frame", False), palette=options.get("palette"),
            seed=options["seed"], dither=options["dither"], space=options["space"], sample_size=options["sample_size"],
        )
        seconds = time.perf_counter() - start
    with Outputs(replace=options["force"]) as staged:
        write_animation(output_path, None, animation.durations, animation.loop, palettes=result.palettes,
                        labels=result.labels, outputs=staged)
        if save_palette is not None:
            write_palette(save_palette, result.palettes[0], outputs=staged)
        staged.publish()
    return result, seconds


def _is_under(path, folder):
    """Whether path lies inside folder (both real paths)."""
    return os.path.commonpath([path, folder]) == folder and path != folder


def _collect(inputs, recursive, output_dir=None):
    """Files to quantize as (path, folder it was found under or None), and skipped
    files as (path, why).

    In folders: every format Pillow reads; hidden files, files inside the output folder
    (when it lies within an input folder) and fastkm's own earlier outputs (a PNG fastkm
    wrote named NAME-k<N>.png beside an image NAME.*) are skipped.  Files named
    explicitly are always taken."""
    files, skipped = [], []
    output_real = os.path.realpath(output_dir) if output_dir is not None else None
    for path in inputs:
        if not path.is_dir():
            files.append((path, None))  # named explicitly: a bad file is a failure
            continue
        suffixes = readable_suffixes()
        walk_outputs = output_real is not None and _is_under(output_real, os.path.realpath(path))
        found = [f for f in sorted(path.glob("**/*" if recursive else "*")) if not f.name.startswith(".")]
        images = {}  # folder -> its image files, for recognising earlier outputs
        for candidate in found:
            if candidate.is_file() and candidate.suffix.lower() in suffixes:
                images.setdefault(candidate.parent, []).append(candidate)
        for candidate in found:
            if not candidate.is_file():
                continue
            if walk_outputs and _is_under(os.path.realpath(candidate), output_real):
                continue  # this run's output folder
            if candidate.suffix.lower() not in suffixes:
                skipped.append((candidate, "skipped: not an image"))
                continue
            source = earlier_output_of(candidate, images[candidate.parent])
            if source is not None:
                skipped.append((candidate, f"skipped: output of {source.name}"))
            else:
                files.append((candidate, path))
    return files, skipped


def _batch_file(input_path, output_path, options):
    """One file of a batch: (colours, MSE, PSNR dB, ΔE or None, seconds), or the failure
    it met, returned rather than raised so that a worker of a cluster hands it back as a
    result."""
    try:
        result, seconds, _, _ = _quantize_to(input_path, output_path, options)
    except (*FAILURES, MemoryError) as error:
        return error
    return result.n_colors, result.mse, result.psnr, getattr(result, "delta_e", None), seconds


def _run_here(jobs, starting, n_workers=1):
    """_batch_file for each (index, args), after starting(index); yields (index, outcome),
    in the order the files finish.

    With n_workers > 1, files after the first are quantized n_workers at a time in
    threads, each kernel on its share of the kernels' threads: small photos keep every
    core busy (one file's reading and writing overlap another's kernels, which release
    the GIL) where one photo's kernels alone cannot.  Each file's output is the same as a
    one-at-a-time run's (the kernels' results never depend on the thread count).  The
    first file runs alone: its compile, if any, is announced once.
    """
    from . import _kernels

    jobs = list(jobs)
    for index, args in jobs[:1]:
        starting(index)
        yield index, _batch_file(*args)
    rest = jobs[1:]
    n_workers = min(n_workers, len(rest))
    if n_workers < 2:
        for index, args in rest:
            starting(index)
            yield index, _batch_file(*args)
        return
    from concurrent.futures import ThreadPoolExecutor, as_completed

    threads_each = max(1, _kernels.thread_count() // n_workers)

    def work(index, args):
        with _kernels.limit_threads(threads_each):  # this thread's kernels only
            starting(index)
            return index, _batch_file(*args)

    with ThreadPoolExecutor(n_workers) as pool:
        for done in as_completed([pool.submit(work, index, args) for index, args in rest]):
            yield done.result()


def _plan(files, output_dir, options, inputs):
    """Every output of a batch, checked against every input and every other output
    before anything is written: (targets, jobs [(index, args)], refusals [(index, Refused)])."""
    planned = {}
    targets, jobs, refusals = [], [], []
    for index, (path, root) in enumerate(files):
        suffix = _format_suffix(options["format"])
        if output_dir is None:
            target = default_output(path, options["n_colors"]).with_suffix(suffix)
        else:
            relative = path.parent.relative_to(root) if root is not None else Path()
            target = output_dir / relative / f"{path.stem}{suffix}"
        targets.append(target)
        try:
            _check_outputs(inputs, [(target, f"the output of {path}")], options["force"], planned)
        except Refused as refused:
            refusals.append((index, refused))
        else:
            jobs.append((index, (path, target, options)))
    return targets, jobs, refusals


def _batch(inputs, output_dir, options, recursive, scheduler=None, read_files=(), n_workers=1):
    """Quantize many files: progress bar, one failure never stops the rest, summary table.

    With a dask.distributed ``scheduler`` address, each file is one task on the cluster;
    else n_workers files at a time here (_run_here).
    ``read_files`` are other files the run reads (a palette), which no output may replace."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    files, skipped = _collect(inputs, recursive, output_dir)
    n_colors = options["n_colors"]
    shown_names = [str(path.relative_to(root)) if root is not None else path.name for path, root in files]
    targets, jobs, refusals = _plan(files, output_dir, options, Inputs([*(p for p, _ in files), *read_files]))
    if scheduler is not None:
        from ._distributed import run_on_cluster  # Dask is loaded for a cluster run only

        try:
            outcomes = run_on_cluster(scheduler, _batch_file, jobs)
        except FastkmError as error:
            _fail(str(error))
    rows = [None] * len(files)
    n_failed, n_not_smaller, exit_code = 0, 0, 0
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, disable=_state["quiet"],
    ) as progress:
        task = progress.add_task("quantizing", total=len(files))
        if scheduler is None:
            outcomes = _run_here(
                jobs, lambda i: progress.update(task, description=f"quantizing {shown_names[i]}"), n_workers
            )
        else:
            progress.update(task, description=f"quantizing on {scheduler}")
        for index, outcome in itertools.chain(refusals, outcomes):
            shown = shown_names[index]
            if isinstance(outcome, BaseException):
                exit_code = max(exit_code, _exit_code(outcome), key=_SEVERITY.get)
            if isinstance(outcome, NotSmaller):
                n_not_smaller += 1
                rows[index] = (shown, "skipped: not smaller", "", "", "", "", "", "")
            elif isinstance(outcome, BaseException):
                if _state["debug"]:
                    raise outcome
                if isinstance(outcome, MemoryError):
                    outcome = f"{files[index][0]}: not enough memory for this image"
                n_failed += 1
                message = outcome if isinstance(outcome, str) else _message(outcome)
                progress.console.print(f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True)
                rows[index] = (shown, "failed", "", "", "", "", "", "")
            else:
                colours, mse, psnr, delta_e, seconds = outcome
                delta_e = "" if delta_e is None else f"{delta_e:.4f}"
                rows[index] = (
                    shown, "ok", f"{colours}", f"{mse:.2f}", f"{psnr:.2f}", delta_e, f"{seconds:.2f}", str(targets[index])
                )
            progress.advance(task)
    for path, why in skipped:
        rows.append((path.name, why, "", "", "", "", "", ""))
    n_written = len(files) - n_failed - n_not_smaller
    not_smaller = f"{n_not_smaller} not smaller (nothing written), " if n_not_smaller else ""
    table = Table(title=f"fastkm quantize -k {n_colors}: {n_written} written, {n_failed} failed, {not_smaller}"
                  f"{len(skipped)} skipped")
    for column in ("input", "status", "colours", "MSE", "PSNR dB", "ΔE", "seconds"):
        table.add_column(column, no_wrap=True)
    table.add_column("output", overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # names printed as they are, never as markup
    if not _state["quiet"]:
        Console(width=max(120, Console().width)).print(table)
    if not files:
        _fail("no image files found in the inputs")
    if exit_code:
        raise typer.Exit(exit_code)


def _fit_shared(inputs, options, recursive, output_dir=None):
    """Fit one palette over every readable input (with a progress bar) into options["palette"].

    Inputs in different colour spaces are fitted, and later written, in sRGB (one
    palette's values mean one set of colours only in one space).  Unreadable files are
    left out here; the batch that follows reports them.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import _kernels
    from .api import shared_palette

    files = [path for path, _ in _collect(inputs, recursive, output_dir)[0]]
    file_format = options["format"] or "PNG"
    profiles = [read_colour_profile(path) for path in files]
    if not options["to_srgb"] and any(not same_space(profiles[0], profile) for profile in profiles[1:]):
        options["to_srgb"] = True
        spaces = sorted({describe(None if is_srgb(profile) else profile) for profile in profiles})
        _note(f"note: the inputs are in different colour spaces ({', '.join(spaces)}); "
              "the shared palette is fitted and written in sRGB")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), disable=_state["quiet"],
    ) as progress:
        task = progress.add_task("sampling for the shared palette", total=len(files))
        failures = []  # the batch reports each one; the palette is fitted over the others

        def images():
            for path in files:
                try:
                    image_file = read_image_file(path, max_pixels=options["max_pixels"])
                    yield _pixels_to_fit(image_file, options, file_format, str(path), echo=lambda message: None)[0]
                except (ImageReadError, OSError) as error:
                    failures.append(error)
                finally:
                    progress.advance(task)

        with _kernels.compile_notices(lambda: progress.console.print(COMPILING, markup=False, highlight=False)):
            sampled = images()
            first = next(sampled, None)
            if first is None:
                raise Refused(f"no input could be read to fit the shared palette; {_message(failures[0])}")
            options["palette"] = shared_palette(
                itertools.chain([first], sampled), options["n_colors"], seed=options["seed"], space=options["space"],
                sample_size=options["sample_size"],
            )
    unread = f" ({len(failures)} could not be read)" if failures else ""
    _note(f"shared palette: {_count(options['palette'].shape[0], 'colour')} fitted over "
          f"{_count(len(files) - len(failures), 'input')}{unread}")
    return files


class Format(str, Enum):
    png = "png"
    gif = "gif"
    bmp = "bmp"
    tif = "tif"
    webp = "webp"
    jpg = "jpg"


def _format_suffix(file_format):
    """The suffix of outputs in file_format (Pillow's name; None = PNG, the default)."""
    return FORMAT_SUFFIXES[file_format or "PNG"]


def _check_format(output, file_format, batch):
    """Refuse an -o file whose suffix names another format than --format."""
    if file_format is None or output is None or _is_stdio(output) or batch:
        return
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        return
    try:
        named = output_format(output)
    except ImageWriteError as error:
        raise typer.BadParameter(str(error), param_hint="'-o'")
    if named != file_format:
        raise typer.BadParameter(
            f"{output} is a {named} file name, and --format asks for {file_format}; drop one of them",
            param_hint="'--format'",
        )


def _output_of_one(input_path, output, n_colors, file_format=None):
    """The output file of a single input: -o as given ('-': standard output), or inside
    -o when that is a folder (it exists, or ends with a slash), or INPUT-k<N>.png (the
    suffix of --format) beside the input; standard output for standard input."""
    suffix = _format_suffix(file_format)
    if output is None:
        return Path(STDIO) if _is_stdio(input_path) else default_output(input_path, n_colors).with_suffix(suffix)
    if _is_stdio(output):
        return Path(STDIO)
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        stem = "image" if _is_stdio(input_path) else input_path.stem
        return Path(output) / f"{stem}{suffix}"
    return Path(output)


def _batch_folder(output):
    """The output folder of a batch from -o (None: beside each input); a usage error for
    what looks like a file name."""
    if output is None:
        return None
    folder = Path(output)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise typer.BadParameter(f"{output}: is a file; with several inputs or a folder, -o names an output folder",
                                 param_hint="'-o'")
    looks_like_a_file = folder.suffix.lower() in IMAGE_SUFFIXES | set(PALETTE_SUFFIXES)
    if looks_like_a_file and not output.endswith(("/", os.sep)) and not os.path.isdir(folder):
        raise typer.BadParameter(
            f"{output}: with several inputs or a folder, -o names an output folder (end it with a slash "
            "to make a folder of that name)", param_hint="'-o'"
        )
    return folder


@app.command("quantize")
def quantize_command(
    inputs: List[Path] = typer.Argument(
        ..., metavar="INPUT...",
        help="Images or folders to quantize (JPEG, PNG, TIFF, WebP, BMP, GIF...); '-' reads one image from "
        "standard input.",
    ),
    output: Optional[str] = typer.Option(
        None,
        "-o",
        "--output",
        help="Output file (one input; .png/.gif/.bmp/.tif are indexed; '-' writes standard output) or folder "
        "(several inputs or a folder; with one input, an existing folder or a name ending in a slash). "
        "Default: INPUT-k<N>.png beside each input; standard output for '-'.",
    ),
    n_colors: int = N_COLORS_OPTION,
    seed: int = SEED_OPTION,
    sample_size: int = SAMPLE_OPTION,
    force: bool = typer.Option(False, "--force", "-f", help="Replace existing output files (never an input)."),
    optimize: bool = typer.Option(False, "--optimize", help="Spend more time on PNG compression for a smaller file."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Look for images in sub-folders too."),
    palette_file: Optional[Path] = typer.Option(
        None, "--palette",
        help="Map onto this palette (.gpl, .json, or an image's colours) instead of fitting one; its colours are "
        "sRGB, and so are the outputs.",
    ),
    save_palette: Optional[Path] = typer.Option(
        None, "--save-palette", help="Also write the palette used (.gpl or .json); one input only."
    ),
    max_pixels: int = MAX_PIXELS_OPTION,
    dither: bool = DITHER_OPTION,
    dither_strength: float = DITHER_STRENGTH_OPTION,
    space: Space = SPACE_OPTION,
    weighting: Weighting = WEIGHTING_OPTION,
    min_psnr: Optional[float] = typer.Option(
        None, "--psnr", min=0.001, callback=_finite,
        help=f"Target quality in dB: the fewest colours, up to -k, that reach it (exit code {EXIT_QUALITY} and "
        "nothing written if -k colours cannot).",
    ),
    shared: bool = typer.Option(
        False, "--shared-palette", help="Fit one palette over all inputs (an equal share each) and map every input onto it."
    ),
    per_frame: bool = typer.Option(
        False, "--per-frame", help="Animations: fit a palette to every frame (default: one over all frames)."
    ),
    frame: Optional[int] = typer.Option(
        None, "--frame", min=0, metavar="N", help="Quantize only frame N (from 0) of an animation, into any format."
    ),
    file_format: Optional[Format] = typer.Option(
        None, "--format", help="Output format for -o - and for default output names (default png)."
    ),
    srgb: bool = typer.Option(
        False, "--srgb", help="Convert to sRGB before quantizing and write sRGB (default: keep the input's colour "
        "profile where the format can hold it)."
    ),
    strip: bool = typer.Option(
        False, "--strip", help="Write no metadata (EXIF, XMP, resolution, text): only the colour profile, if any."
    ),
    skip_if_larger: bool = typer.Option(
        False, "--skip-if-larger",
        help=f"Write nothing when the result would not be smaller than the input file (exit code {EXIT_NOT_SMALLER}).",
    ),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", metavar="ADDRESS",
        help="Send a batch to this dask.distributed scheduler (tcp://host:8786), one task per file; needs "
        "fastkm[dask] on every machine, and inputs and outputs on storage the workers share.",
    ),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1,
        help="Files of a batch quantized at once (default: one per core, or NUMBA_NUM_THREADS); "
        "the outputs are the same for any number.",
    ),
):
    """Reduce images to N colours and write them (indexed PNGs by default).

    One file in, one file out; several files or a folder in, a folder out (with a
    progress bar and a summary table; one bad file never stops the others).
    Exit codes: 0 done, 1 error, 2 bad options, 98 not smaller (--skip-if-larger),
    99 quality not reached (--psnr)."""
    pillow_format = None if file_format is None else {"tif": "TIFF", "jpg": "JPEG"}.get(
        file_format.value, file_format.value.upper()
    )
    options = {
        "n_colors": n_colors, "seed": seed, "sample_size": sample_size, "force": force, "optimize": optimize,
        "max_pixels": max_pixels, "palette": None, "save_palette": save_palette,
        "dither": dither_strength if dither else 0.0, "space": space.value, "weighting": weighting.value,
        "min_psnr": min_psnr, "per_frame": per_frame, "frame": frame,
        "format": pillow_format, "to_srgb": srgb or palette_file is not None, "strip": strip,
        "skip_if_larger": skip_if_larger,
    }
    if per_frame and (palette_file is not None or shared or frame is not None):
        raise typer.BadParameter("fits a palette to each frame of an animation; not with --palette, "
                                 "--shared-palette or --frame", param_hint="'--per-frame'")
    if min_psnr is not None and (palette_file is not None or shared):
        raise typer.BadParameter("chooses the size of a fitted palette; not with --palette or --shared-palette",
                                 param_hint="'--psnr'")
    if shared and palette_file is not None:
        raise typer.BadParameter("fits a palette; not with --palette", param_hint="'--shared-palette'")
    if output is not None and not output.strip():
        raise typer.BadParameter("is blank; name an output file, a folder, or '-' for standard output",
                                 param_hint="'-o'")
    from_stdin = any(_is_stdio(path) for path in inputs)
    if from_stdin and len(inputs) > 1:
        raise typer.BadParameter("'-' (standard input) must be the only INPUT", param_hint="'INPUT...'")
    if from_stdin and shared:
        raise typer.BadParameter("reads its inputs twice; not with standard input", param_hint="'--shared-palette'")
    if palette_file is not None:
        try:
            options["palette"] = read_palette(palette_file)
        except ImageReadError as error:
            _fail(str(error))
    read_files = [palette_file] if palette_file is not None else []
    if save_palette is not None and save_palette.suffix.lower() not in PALETTE_SUFFIXES:
        raise typer.BadParameter(f"{save_palette}: use a .gpl or .json file name", param_hint="'--save-palette'")
    batch = len(inputs) > 1 or (not from_stdin and inputs[0].is_dir())
    _check_format(output, pillow_format, batch)
    if batch:
        if save_palette is not None and not shared:
            raise typer.BadParameter("saves the palette of one input, or with --shared-palette",
                                     param_hint="'--save-palette'")
        if output is not None and _is_stdio(output):
            raise typer.BadParameter("standard output takes one image; with several inputs -o names a folder",
                                     param_hint="'-o'")
        output_dir = _batch_folder(output)
        _check_colours_fit(Path("output" + _format_suffix(pillow_format)), n_colors)
    elif scheduler is not None:
        raise typer.BadParameter("sends a batch (several inputs or a folder) to a cluster", param_hint="'--scheduler'")
    if shared:
        output_dir = _batch_folder(output) if batch else None

        def fit_and_save():
            files = _fit_shared(inputs, options, recursive, output_dir)
            if save_palette is not None:
                _check_outputs(Inputs([*files, *read_files]), [(save_palette, "the palette output")], force)
                write_palette(save_palette, options["palette"], replace=force)

        _run(fit_and_save)
        options["save_palette"] = None
    if batch:
        import numba

        _batch(inputs, output_dir, options, recursive, scheduler, read_files, jobs or numba.config.NUMBA_NUM_THREADS)
        return

    input_path = inputs[0]
    output_path = _output_of_one(input_path, output, n_colors, pillow_format)
    to_stdout = _is_stdio(output_path)
    if (output is None and frame is None and not from_stdin and input_path.suffix.lower() in ANIMATION_SUFFIXES
            and is_animation(input_path)):
        output_path = output_path.with_suffix(input_path.suffix)  # an animation keeps its format
    if to_stdout and sys.stdout.isatty():
        _fail("standard output is a terminal; redirect it (> out.png) or name an output file with -o")
    if from_stdin and sys.stdin.isatty():
        _fail("standard input is a terminal; pipe an image in (fastkm quantize - < photo.jpg) or name a file")
    read_by_run = Inputs([*([] if from_stdin else [input_path]), *read_files])

    def body():
        _check_colours_fit(Path("output" + _format_suffix(pillow_format)) if to_stdout else output_path, n_colors)
        result, seconds, n_bytes_in, n_bytes_out = _quantize_to(input_path, output_path, options, inputs=read_by_run)
        height, width = result.labels.shape[-2:]
        note = size = ""
        if palette_file is None and getattr(result, "n_distinct", n_colors + 1) <= n_colors:
            note = f" (the image has only {_count(result.n_distinct, 'distinct colour')}: kept exactly)"
        if result.labels.ndim == 3:  # an animation
            size = f", {_count(result.n_frames, 'frame')}"
            note = " in each frame's palette" if not result.shared else ""
        if _state["quiet"]:
            return  # no summary: not even its ΔE, a pass over every pixel when dithered
        # With the image on standard output, the summary goes to standard error.
        _say(
            f"{'standard input' if from_stdin else input_path.name} {width}x{height}{size} -> "
            f"{'standard output' if to_stdout else output_path}: {_count(result.n_colors, 'colour')}{note}, "
            f"{_quality(result)}, {seconds:.2f} s, {_human_bytes(n_bytes_in)} -> {_human_bytes(n_bytes_out)}",
            err=to_stdout,
        )

    _run(body)


@app.command("compare")
def compare_command(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Image to quantize ('-' reads standard input)."),
    output: Path = typer.Option(..., "-o", "--output", help="Figure file to write (PNG recommended)."),
    n_colors: int = N_COLORS_OPTION,
    seed: int = SEED_OPTION,
    sample_size: int = SAMPLE_OPTION,
    max_side: int = typer.Option(1024, "--max-side", min=16, help="Longest side of each panel, in pixels."),
    force: bool = typer.Option(False, "--force", "-f", help="Replace an existing figure file (never the input)."),
    max_pixels: int = MAX_PIXELS_OPTION,
    dither: bool = DITHER_OPTION,
    dither_strength: float = DITHER_STRENGTH_OPTION,
    space: Space = SPACE_OPTION,
    weighting: Weighting = WEIGHTING_OPTION,
    strip: bool = typer.Option(
        False, "--palette-strip", help="Draw the palette under the images, each colour as wide as its share."
    ),
):
    """Write a figure: INPUT and its N-colour version side by side, with captions.

    The quantization is the one ``quantize`` writes to a PNG (in the input's colour
    space); both panels are shown converted to sRGB, the colours a viewer shows."""
    options = {
        "n_colors": n_colors, "seed": seed, "sample_size": sample_size, "max_pixels": max_pixels,
        "dither": dither_strength if dither else 0.0, "space": space.value, "weighting": weighting.value,
    }

    def body():
        output_kind(output)  # an unknown figure format fails now, not after the work
        _check_outputs(Inputs([] if _is_stdio(input_path) else [input_path]), [(output, "the figure")], force)
        image_file, image, profile = _read_input(input_path, options)
        result, seconds = _fit(image, options)
        height, width = result.labels.shape
        has_alpha = image.ndim == 3 and image.shape[2] in (2, 4)
        how = ", ".join([f"k = {result.n_colors}"] + (["OKLab"] if space is Space.oklab or (space is Space.auto and not has_alpha) else [])
                        + (["dithered"] if dither else []))
        # The figure's font has no Greek letters: "dE" for ΔE.
        delta_e = f", dE {result.delta_e:.4f}" if result.delta_e is not None else ""
        in_space = "" if is_srgb(profile) else f", {describe(profile)}"
        captions = (
            f"original ({width}x{height}, {result.n_distinct:,} colours{in_space})",
            f"fastkm, {how}: PSNR {result.psnr:.2f} dB{delta_e}",
        )
        from .figure import side_by_side  # Pillow's drawing modules: only this command needs them

        palette_shares = _dominant_colours(result)[:2] if strip else None
        panels = [to_srgb(image, profile), to_srgb(result.image, profile)]
        figure = side_by_side(panels, captions, max_side=max_side, strip=palette_shares)
        write_image(output, figure, replace=force)
        shown = "standard input" if _is_stdio(input_path) else input_path.name
        _say(f"{shown}: k = {result.n_colors}, PSNR {result.psnr:.2f} dB, {seconds:.2f} s -> {output}")

    _run(body)


def _dominant_colours(result):
    """The visible palette entries (m, C) uint8 sorted by falling share, their shares
    (m,) of the visible pixels (summing to 1), and the fully transparent pixels left out."""
    palette, counts = result.palette, result.counts
    n_transparent = 0
    if palette.shape[1] in (2, 4):
        transparent = palette[:, -1] == 0
        n_transparent = int(counts[transparent].sum())
        palette, counts = palette[~transparent], counts[~transparent]
    order = np.argsort(-counts, kind="stable")
    palette, counts = palette[order], counts[order]
    return palette, counts / max(int(counts.sum()), 1), n_transparent


def _colour_fields(entry):
    """(hex code, [r, g, b], alpha or None) of a palette entry of 1 to 4 channels."""
    rgb = [int(v) for v in (entry[:3] if entry.shape[0] >= 3 else np.repeat(entry[:1], 3))]
    alpha = int(entry[-1]) if entry.shape[0] in (2, 4) else None
    code = "#" + "".join(f"{v:02x}" for v in rgb) + (f"{alpha:02x}" if alpha is not None and alpha < 255 else "")
    return code, rgb, alpha


@app.command("palette")
def palette_command(
    input_path: Path = typer.Argument(..., metavar="IMAGE", help="Image whose dominant colours to list."),
    n_colors: int = typer.Option(5, "-k", "--colors", min=1, max=256, help="Number of colours to find."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON: a list of {hex, rgb, share} by falling share; shares are fractions summing to 1."
    ),
    swatch: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Also write a swatch strip (.png, .webp...): each colour as wide as its share."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Replace an existing swatch file (never the input)."),
    seed: int = SEED_OPTION,
    sample_size: int = SAMPLE_OPTION,
    max_pixels: int = MAX_PIXELS_OPTION,
    space: Space = SPACE_OPTION,
):
    """List the dominant colours of IMAGE, by share of its pixels: hex code, RGB, percent.

    Fully transparent pixels are left out, and the shares are of the visible pixels."""
    options = {"seed": seed, "sample_size": sample_size, "max_pixels": max_pixels, "dither": 0.0, "space": space.value}

    def body():
        if swatch is not None:
            output_kind(swatch)  # an unknown swatch format fails now, not after the work
            _check_outputs(Inputs([input_path]), [(swatch, "the swatch")], force)
        # Hex codes and RGB values are sRGB: the image's colours are converted to it.
        _, image, _ = _read_input(input_path, dict(options, to_srgb=True))
        has_transparent = image.ndim == 3 and image.shape[2] in (2, 4) and bool(np.any(image[..., -1] == 0))
        # The transparent pixels take one palette entry of their own: ask for one more.
        result, _ = _fit(image, dict(options, n_colors=n_colors + has_transparent))
        palette, shares, n_transparent = _dominant_colours(result)
        rows = [_colour_fields(entry) for entry in palette]
        if as_json:
            import json

            listed = [
                {"hex": code, "rgb": rgb, "share": float(share), **({"alpha": alpha} if alpha is not None else {})}
                for (code, rgb, alpha), share in zip(rows, shares)
            ]
            typer.echo("[\n" + ",\n".join(f"  {json.dumps(entry)}" for entry in listed) + "\n]")
        else:
            for (code, rgb, alpha), share in zip(rows, shares):
                translucent = f"  alpha {alpha}" if alpha is not None and alpha < 255 else ""
                typer.echo(f"{code:<9}  rgb({rgb[0]:3d}, {rgb[1]:3d}, {rgb[2]:3d})  {100 * share:5.1f} %{translucent}")
        if not rows:
            _note("note: every pixel of the image is fully transparent: there is no colour to list")
            if swatch is not None:
                raise Refused(f"{swatch}: not written; every pixel of {input_path} is fully transparent, "
                              "so there is no colour to draw")
            return
        if n_transparent:
            _note(f"note: {n_transparent:,} fully transparent pixels left out; shares are of the visible pixels")
        if result.n_distinct < n_colors:
            _note(f"note: the image has only {_count(result.n_distinct, 'distinct colour')}")
        if swatch is not None:
            from .figure import palette_strip  # Pillow's drawing: only the swatch needs it

            write_image(swatch, palette_strip(palette, shares, max(600, 60 * len(palette)), 100), replace=force)

    _run(body)


@app.command("warmup")
def warmup_command():
    """Compile every kernel now, for every kind of image and option (for container images
    and CI): later runs load them from numba's disk cache and never compile."""
    from .api import warmup

    _note("compiling (or loading) fastkm's kernels for every kind of image and option...")
    start = time.perf_counter()
    warmup(progress=lambda what, seconds: typer.echo(f"  {what}: {seconds:.1f} s"))
    typer.echo(f"fastkm's kernels are ready: {time.perf_counter() - start:.1f} s")


class _Signalled(BaseException):
    """A stop signal, raised where the program is so that the same cleanup as for
    Ctrl-C runs (temporary files removed); a BaseException, which no handler of
    errors catches."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


# Signals that stop a run cleanly; the exit code is 128 + the signal's number (130 for
# SIGINT, 129 for SIGHUP, 143 for SIGTERM), as a shell reports a process they killed.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _stop(signum, frame):
    for each in STOP_SIGNALS:  # a second signal must not cut the cleanup short
        signal.signal(each, signal.SIG_IGN)
    raise _Signalled(signum)


def run(argv=None):
    """Console-script entry point: runs the command line ``argv`` (default: sys.argv)
    and exits with its code; a usage error is one ``error:`` line and exit code 2."""
    # click's exceptions where typer raises them from: its own copy of click in newer
    # typer versions, the click package in older ones.
    exceptions = sys.modules[typer.BadParameter.__module__]
    no_args_is_help = getattr(exceptions, "NoArgsIsHelpError", ())
    global _own_process
    if argv is None:
        _own_process = True
        # The command line's own process (console script, python -m fastkm), which runs
        # nothing else: numba imports SciPy's BLAS, where SciPy is installed, when it
        # first loads a kernel (0.2 s of a quantize's start-up), and no fastkm kernel
        # calls BLAS.  A caller running the command line in its own process keeps SciPy.
        sys.modules.setdefault("scipy.linalg.cython_blas", None)
    for each in STOP_SIGNALS:
        signal.signal(each, _stop)
    try:
        _run_app(argv, exceptions, no_args_is_help)
    finally:
        if _fit_imports is not None:
            # A command that ends early (a decoding error, a signal) may end while the
            # import thread still loads kernels: the process does not exit inside numba's
            # loader, but it waits at most a second for it.
            _fit_imports.join(timeout=1.0)
        if argv is None:
            # The process ends here.  Python's exit runs full garbage collections over
            # every object numba and the loaded kernels made (0.2 s of a quantize's
            # start-up); frozen objects are left out of them.  Nothing is lost: files
            # are closed, and atexit handlers (numba's, the thread pool's) still run.
            gc.freeze()


def _run_app(argv, exceptions, no_args_is_help):
    """Run the command line ``argv`` and exit with its code; ``exceptions`` is the click
    module typer raises from."""
    try:
        code = app(prog_name="fastkm", args=argv, standalone_mode=False)
    except _Signalled as stopped:
        name = signal.Signals(stopped.signum).name
        sys.stderr.write(f"error: stopped by {name}; files already written are complete, no partial file is left\n")
        sys.exit(128 + stopped.signum)
    except exceptions.UsageError as error:
        if isinstance(error, no_args_is_help):
            typer.echo(error.format_message())  # the help text, for a bare "fastkm"
        else:
            where = f"; see '{error.ctx.command_path} --help'" if error.ctx is not None else ""
            typer.secho(f"error: {error.format_message().rstrip('.')}{where}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except typer.Abort:
        typer.secho("error: interrupted", err=True, fg=typer.colors.RED)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # python -m fastkm.cli
    run()
