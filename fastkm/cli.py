"""The ``fastkm`` command line: thin commands over the library.

Library errors are caught here and printed as one line on stderr with exit code 1;
usage errors (bad options) exit with 2, as typer does.  ``--debug`` shows tracebacks.
"""

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from . import __version__, _kernels
from .api import DEFAULT_SAMPLE_SIZE, MAX_COLORS, FastkmError, quantize
from .figure import side_by_side
from .io import (
    DEFAULT_MAX_PIXELS,
    MAX_INDEXED_COLORS,
    ImageReadError,
    ImageWriteError,
    output_kind,
    read_image,
    write_image,
    write_quantized,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fast k-means colour quantization: a photo in, its best k-colour version out.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def _version_callback(value: bool):
    if value:
        typer.echo(f"fastkm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show a traceback when something fails."),
):
    """Fast k-means colour quantization: a photo in, its best k-colour version out."""
    _state["debug"] = debug


def _fail(message):
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def _human_bytes(n_bytes):
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000


def _same_file(a, b):
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _check_output(input_path, output_path, force):
    """Refuse outputs that would overwrite the input, or an existing file without --force."""
    if _same_file(input_path, output_path) or input_path.resolve() == output_path.resolve():
        _fail(f"{output_path}: is the input file; choose another output name (the input is never overwritten)")
    if output_path.is_dir():
        _fail(f"{output_path}: is a folder; give a file name such as {output_path / (input_path.stem + '.png')}")
    if output_path.exists() and not force:
        _fail(f"{output_path}: already exists; use --force to replace it")


def _quantize_file(input_path, n_colors, seed, sample_size, max_pixels):
    image = read_image(input_path, max_pixels=max_pixels)
    if not _kernels.kernels_cached():
        typer.echo("Compiling fastkm's kernels (first run only; they are cached for next time)...", err=True)
    start = time.perf_counter()
    result = quantize(image, n_colors, seed=seed, sample_size=sample_size)
    return image, result, time.perf_counter() - start


def _run(body):
    """Run a command body, turning library errors into one line and exit code 1."""
    try:
        body()
    except (FastkmError, ImageReadError, ImageWriteError) as error:
        if _state["debug"]:
            raise
        _fail(str(error))
    except MemoryError:
        if _state["debug"]:
            raise
        _fail("not enough memory for this image; try a smaller one")


N_COLORS_OPTION = typer.Option(16, "-k", "--colors", min=1, max=MAX_COLORS, help="Number of colours in the palette.")
SEED_OPTION = typer.Option(0, "--seed", help="Random seed: the same seed gives the same output.")
MAX_PIXELS_OPTION = typer.Option(
    DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse images with more pixels than this (decompression bombs)."
)
SAMPLE_OPTION = typer.Option(
    DEFAULT_SAMPLE_SIZE, "--sample-size", min=1, help="Pixels sampled to seed the fit before the exact refinement."
)


@app.command("quantize")
def quantize_command(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Image to quantize (JPEG, PNG, TIFF, WebP, BMP, GIF...)."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Output file; .png/.gif/.bmp/.tif are indexed. Default: INPUT-k<N>.png beside the input."
    ),
    n_colors: int = N_COLORS_OPTION,
    seed: int = SEED_OPTION,
    sample_size: int = SAMPLE_OPTION,
    force: bool = typer.Option(False, "--force", "-f", help="Replace an existing output file (never the input)."),
    optimize: bool = typer.Option(False, "--optimize", help="Spend more time on PNG compression for a smaller file."),
    max_pixels: int = MAX_PIXELS_OPTION,
):
    """Reduce INPUT to N colours and write it (an indexed PNG by default)."""
    output_path = output if output is not None else input_path.with_name(f"{input_path.stem}-k{n_colors}.png")

    def body():
        if output_kind(output_path) == "indexed" and n_colors > MAX_INDEXED_COLORS:
            raise typer.BadParameter(
                f"{n_colors} colours do not fit an indexed {output_path.suffix} file (at most {MAX_INDEXED_COLORS}); "
                "use fewer colours or a .webp output",
                param_hint="'-k'",
            )
        _check_output(input_path, output_path, force)
        image, result, seconds = _quantize_file(input_path, n_colors, seed, sample_size, max_pixels)
        write_quantized(output_path, result.palette, result.labels, optimize=optimize)
        height, width = result.labels.shape
        note = ""
        if result.n_distinct <= n_colors:
            note = f" (the image has only {result.n_distinct} distinct colours: kept exactly)"
        typer.echo(
            f"{input_path.name} {width}x{height} -> {output_path}: {result.n_colors} colours{note}, "
            f"PSNR {result.psnr:.2f} dB, {seconds:.2f} s, "
            f"{_human_bytes(input_path.stat().st_size)} -> {_human_bytes(output_path.stat().st_size)}"
        )

    _run(body)


@app.command("compare")
def compare_command(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Image to quantize."),
    output: Path = typer.Option(..., "-o", "--output", help="Figure file to write (PNG recommended)."),
    n_colors: int = N_COLORS_OPTION,
    seed: int = SEED_OPTION,
    sample_size: int = SAMPLE_OPTION,
    max_side: int = typer.Option(1024, "--max-side", min=16, help="Longest side of each panel, in pixels."),
    force: bool = typer.Option(False, "--force", "-f", help="Replace an existing figure file (never the input)."),
    max_pixels: int = MAX_PIXELS_OPTION,
):
    """Write a figure: INPUT and its N-colour version side by side, with captions."""

    def body():
        _check_output(input_path, output, force)
        image, result, seconds = _quantize_file(input_path, n_colors, seed, sample_size, max_pixels)
        height, width = result.labels.shape
        captions = (
            f"original ({width}x{height}, {result.n_distinct:,} colours)",
            f"fastkm, k = {result.n_colors}: PSNR {result.psnr:.2f} dB",
        )
        figure = side_by_side(image, result.image, captions, max_side=max_side)
        write_image(output, figure)
        typer.echo(f"{input_path.name}: k = {result.n_colors}, PSNR {result.psnr:.2f} dB, {seconds:.2f} s -> {output}")

    _run(body)


def run():
    """Console-script entry point."""
    app(prog_name="fastkm")


if __name__ == "__main__":  # python -m fastkm.cli
    sys.exit(run())
