"""The ``fastkm`` command line: thin commands over the library.

Library errors are caught here and printed as one line on stderr with exit code 1;
usage errors (bad options) exit with 2, as typer does.  ``--debug`` shows tracebacks.
"""

import itertools
import sys
import time
from pathlib import Path
from enum import Enum
from typing import List, Optional

import numpy as np
import typer

from . import __version__, _kernels
from .api import DEFAULT_SAMPLE_SIZE, MAX_COLORS, FastkmError, quantize, shared_palette
from .io import (
    DEFAULT_MAX_PIXELS,
    INDEXED_SUFFIXES,
    RGB_SUFFIXES,
    ImageReadError,
    frame_count,
    ImageWriteError,
    indexed_capacity_error,
    output_kind,
    read_image,
    read_palette,
    write_image,
    write_palette,
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


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _same_file(a, b):
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


class Refused(Exception):
    """A request the command declines (it would overwrite the input or an existing file)."""


def _check_output(input_path, output_path, force):
    """Refuse outputs that would overwrite the input, or an existing file without --force."""
    if _same_file(input_path, output_path) or input_path.resolve() == output_path.resolve():
        raise Refused(f"{output_path}: is the input file; choose another output name (the input is never overwritten)")
    if output_path.is_dir():
        raise Refused(f"{output_path}: is a folder; give a file name such as {output_path / (input_path.stem + '.png')}")
    if output_path.exists() and not force:
        raise Refused(f"{output_path}: already exists; use --force to replace it")


def _note(message):
    typer.echo(message, err=True)


def _quantize_file(input_path, options, echo=_note):
    """Read and quantize one file with the fit options; returns (image, result, seconds)."""
    image = read_image(input_path, max_pixels=options["max_pixels"])
    n_frames = frame_count(input_path)
    if n_frames > 1:
        echo(f"note: {input_path} has {n_frames} frames; fastkm quantizes the first one")
    palette = options.get("palette")
    if palette is not None and image.ndim == 2 and palette.shape[1] == 3:
        image = np.dstack([image] * 3)  # a grey image onto a colour palette
    if not _kernels.kernels_cached():
        echo("Compiling fastkm's kernels (first run only; they are cached for next time)...")
    start = time.perf_counter()
    result = quantize(
        image, options["n_colors"], palette=palette, seed=options["seed"], sample_size=options["sample_size"],
        dither=options["dither"], space=options["space"], min_psnr=options.get("min_psnr"),
    )
    return image, result, time.perf_counter() - start


def _quality(result):
    """'MSE m, PSNR p dB, ΔE d' for a summary line."""
    delta_e = result.delta_e
    text = f"MSE {result.mse:.2f}, PSNR {result.psnr:.2f} dB"
    return text + (f", ΔE {delta_e:.4f}" if delta_e is not None else "")


# What one file can fail with; anything else is a bug and keeps its traceback.
FAILURES = (FastkmError, ImageReadError, ImageWriteError, Refused)


def _run(body):
    """Run a command body, turning library errors into one line and exit code 1."""
    try:
        body()
    except FAILURES as error:
        if _state["debug"]:
            raise
        _fail(str(error))
    except MemoryError:
        if _state["debug"]:
            raise
        _fail("not enough memory for this image; try a smaller one")


N_COLORS_OPTION = typer.Option(16, "-k", "--colors", min=1, max=MAX_COLORS, help="Number of colours in the palette.")
SEED_OPTION = typer.Option(0, "--seed", min=0, help="Random seed: the same seed gives the same output.")
MAX_PIXELS_OPTION = typer.Option(
    DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse images with more pixels than this (decompression bombs)."
)
SAMPLE_OPTION = typer.Option(
    DEFAULT_SAMPLE_SIZE, "--sample-size", min=1, help="Pixels sampled to seed the fit before the exact refinement."
)
DITHER_OPTION = typer.Option(False, "--dither", help="Floyd-Steinberg dithering: smoother gradients, lower PSNR.")
DITHER_STRENGTH_OPTION = typer.Option(
    1.0, "--dither-strength", min=0.0, max=1.0, help="Share of each pixel's error passed on by --dither (0..1)."
)


class Space(str, Enum):
    rgb = "rgb"
    oklab = "oklab"


SPACE_OPTION = typer.Option(
    Space.rgb, "--space", help="Colour space of the fit: rgb (lowest MSE) or oklab (perceptual, lowest ΔE)."
)


# Every format fastkm writes is one it reads; other files in a folder are skipped.
IMAGE_SUFFIXES = set(INDEXED_SUFFIXES) | set(RGB_SUFFIXES)


def _check_colours_fit(output_path, n_colors):
    reason = indexed_capacity_error(output_path, n_colors)
    if reason:
        raise typer.BadParameter(reason, param_hint="'-k'")


def _quantize_to(input_path, output_path, options, echo=_note):
    """Quantize one file and write it; returns the result and the seconds quantize took."""
    _check_output(input_path, output_path, options["force"])
    image, result, seconds = _quantize_file(input_path, options, echo=echo)
    write_quantized(output_path, result.palette, result.labels, optimize=options["optimize"])
    if options["save_palette"] is not None:
        write_palette(options["save_palette"], result.palette)
    return result, seconds


def _collect(inputs, recursive):
    """Files to quantize as (path, folder it was found under or None), and skipped files."""
    files, skipped = [], []
    for path in inputs:
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for found in sorted(path.glob(pattern)):
                if not found.is_file() or found.name.startswith("."):
                    continue
                if found.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((found, path))
                else:
                    skipped.append(found)
        else:
            files.append((path, None))  # named explicitly: a bad file is a failure
    return files, skipped


def _batch_file(input_path, output_path, options):
    """One file of a batch: (colours, MSE, PSNR dB, ΔE or None, seconds), or the failure
    it met, returned rather than raised so that a worker of a cluster hands it back as a
    result."""
    try:
        result, seconds = _quantize_to(input_path, output_path, options)
    except (*FAILURES, MemoryError) as error:
        return error
    return result.n_colors, result.mse, result.psnr, result.delta_e, seconds


def _run_here(jobs, starting):
    """_batch_file for each (index, args) in turn, after starting(index); yields (index, outcome)."""
    for index, args in jobs:
        starting(index)
        yield index, _batch_file(*args)


def _batch(inputs, output_dir, options, recursive, scheduler=None):
    """Quantize many files: progress bar, one failure never stops the rest, summary table.

    With a dask.distributed ``scheduler`` address, each file is one task on the cluster."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    files, skipped = _collect(inputs, recursive)
    n_colors = options["n_colors"]
    planned = {}
    shown_names, targets, refusals, jobs = [], [], [], []
    for index, (path, root) in enumerate(files):
        shown_names.append(str(path.relative_to(root)) if root is not None else path.name)
        if output_dir is None:
            target = path.with_name(f"{path.stem}-k{n_colors}.png")
        else:
            relative = path.parent.relative_to(root) if root is not None else Path()
            target = output_dir / relative / f"{path.stem}.png"
        targets.append(target)
        if target in planned:
            refused = Refused(f"{target}: also the output of {planned[target]}; rename one of the inputs")
            refusals.append((index, refused))
        else:
            planned[target] = path
            jobs.append((index, (path, target, options)))
    if scheduler is not None:
        from ._distributed import run_on_cluster  # Dask is loaded for a cluster run only

        try:
            outcomes = run_on_cluster(scheduler, _batch_file, jobs)
        except FastkmError as error:
            _fail(str(error))
    rows = [None] * len(files)
    n_failed = 0
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("quantizing", total=len(files))
        if scheduler is None:
            outcomes = _run_here(jobs, lambda i: progress.update(task, description=f"quantizing {shown_names[i]}"))
        else:
            progress.update(task, description=f"quantizing on {scheduler}")
        for index, outcome in itertools.chain(refusals, outcomes):
            shown = shown_names[index]
            if isinstance(outcome, BaseException):
                if _state["debug"]:
                    raise outcome
                if isinstance(outcome, MemoryError):
                    outcome = f"{files[index][0]}: not enough memory for this image"
                n_failed += 1
                progress.console.print(f"error: {outcome}", style="red", markup=False, highlight=False, soft_wrap=True)
                rows[index] = (shown, "failed", "", "", "", "", "", "")
            else:
                colours, mse, psnr, delta_e, seconds = outcome
                delta_e = "" if delta_e is None else f"{delta_e:.4f}"
                rows[index] = (
                    shown, "ok", f"{colours}", f"{mse:.2f}", f"{psnr:.2f}", delta_e, f"{seconds:.2f}", str(targets[index])
                )
            progress.advance(task)
    for path in skipped:
        rows.append((path.name, "skipped: not an image", "", "", "", "", "", ""))
    table = Table(title=f"fastkm quantize -k {n_colors}: {len(files) - n_failed} written, {n_failed} failed, "
                  f"{len(skipped)} skipped")
    for column in ("input", "status", "colours", "MSE", "PSNR dB", "ΔE", "seconds"):
        table.add_column(column, no_wrap=True)
    table.add_column("output", overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(width=max(120, Console().width)).print(table)
    if n_failed or not files:
        if not files:
            typer.secho("error: no image files found in the inputs", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


def _fit_shared(inputs, options, recursive):
    """Fit one palette over every readable input (with a progress bar) into options["palette"].

    Unreadable files are left out here; the batch that follows reports them.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    files = [path for path, _ in _collect(inputs, recursive)[0]]
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("sampling for the shared palette", total=len(files))

        def images():
            for path in files:
                try:
                    yield read_image(path, max_pixels=options["max_pixels"])
                except ImageReadError:
                    pass
                finally:
                    progress.advance(task)

        if not _kernels.kernels_cached():
            _note("Compiling fastkm's kernels (first run only; they are cached for next time)...")
        # Alpha is not shared yet: such an image fails here with a clear message.
        options["palette"] = shared_palette(
            images(), options["n_colors"], seed=options["seed"], space=options["space"],
            sample_size=options["sample_size"],
        )
    _note(f"shared palette: {_count(options['palette'].shape[0], 'colour')} fitted over {_count(len(files), 'input')}")


@app.command("quantize")
def quantize_command(
    inputs: List[Path] = typer.Argument(
        ..., metavar="INPUT...", help="Images or folders to quantize (JPEG, PNG, TIFF, WebP, BMP, GIF...)."
    ),
    output: Optional[Path] = typer.Option(
        None,
        "-o",
        "--output",
        help="Output file (one input; .png/.gif/.bmp/.tif are indexed) or folder (several inputs or a folder). "
        "Default: INPUT-k<N>.png beside each input.",
    ),
    n_colors: int = N_COLORS_OPTION,
    seed: int = SEED_OPTION,
    sample_size: int = SAMPLE_OPTION,
    force: bool = typer.Option(False, "--force", "-f", help="Replace existing output files (never an input)."),
    optimize: bool = typer.Option(False, "--optimize", help="Spend more time on PNG compression for a smaller file."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Look for images in sub-folders too."),
    palette_file: Optional[Path] = typer.Option(
        None, "--palette", help="Map onto this palette (.gpl, .json, or an image's colours) instead of fitting one."
    ),
    save_palette: Optional[Path] = typer.Option(
        None, "--save-palette", help="Also write the palette used (.gpl or .json); one input only."
    ),
    max_pixels: int = MAX_PIXELS_OPTION,
    dither: bool = DITHER_OPTION,
    dither_strength: float = DITHER_STRENGTH_OPTION,
    space: Space = SPACE_OPTION,
    min_psnr: Optional[float] = typer.Option(
        None, "--psnr", min=0.001,
        help="Target quality in dB: the fewest colours, up to -k, that reach it (fails if -k colours cannot).",
    ),
    shared: bool = typer.Option(
        False, "--shared-palette", help="Fit one palette over all inputs (an equal share each) and map every input onto it."
    ),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", metavar="ADDRESS",
        help="Send a batch to this dask.distributed scheduler (tcp://host:8786), one task per file; needs "
        "fastkm[dask] on every machine, and inputs and outputs on storage the workers share.",
    ),
):
    """Reduce images to N colours and write them (indexed PNGs by default).

    One file in, one file out; several files or a folder in, a folder out (with a
    progress bar and a summary table; one bad file never stops the others)."""
    options = {
        "n_colors": n_colors, "seed": seed, "sample_size": sample_size, "force": force, "optimize": optimize,
        "max_pixels": max_pixels, "palette": None, "save_palette": save_palette,
        "dither": dither_strength if dither else 0.0, "space": space.value, "min_psnr": min_psnr,
    }
    if min_psnr is not None and (palette_file is not None or shared):
        raise typer.BadParameter("chooses the size of a fitted palette; not with --palette or --shared-palette",
                                 param_hint="'--psnr'")
    if shared and palette_file is not None:
        raise typer.BadParameter("fits a palette; not with --palette", param_hint="'--shared-palette'")
    if palette_file is not None:
        try:
            options["palette"] = read_palette(palette_file)
        except ImageReadError as error:
            _fail(str(error))
    if save_palette is not None and save_palette.suffix.lower() not in (".gpl", ".json"):
        raise typer.BadParameter(f"{save_palette}: use a .gpl or .json file name", param_hint="'--save-palette'")
    batch = len(inputs) > 1 or inputs[0].is_dir()
    if batch:
        if save_palette is not None and not shared:
            raise typer.BadParameter("saves the palette of one input, or with --shared-palette",
                                     param_hint="'--save-palette'")
        if output is not None and output.suffix and not output.is_dir():
            raise typer.BadParameter(
                f"{output}: with several inputs or a folder, -o names an output folder", param_hint="'-o'"
            )
        _check_colours_fit(Path("output.png"), n_colors)  # batch outputs are PNGs
    elif scheduler is not None:
        raise typer.BadParameter("sends a batch (several inputs or a folder) to a cluster", param_hint="'--scheduler'")
    if shared:
        _run(lambda: _fit_shared(inputs, options, recursive))
        if save_palette is not None:
            _run(lambda: write_palette(save_palette, options["palette"]))
            options["save_palette"] = None
    if batch:
        _batch(inputs, output, options, recursive, scheduler)
        return

    input_path = inputs[0]
    output_path = output if output is not None else input_path.with_name(f"{input_path.stem}-k{n_colors}.png")

    def body():
        _check_colours_fit(output_path, n_colors)
        result, seconds = _quantize_to(input_path, output_path, options)
        height, width = result.labels.shape
        note = ""
        if palette_file is None and result.n_distinct <= n_colors:
            note = f" (the image has only {_count(result.n_distinct, 'distinct colour')}: kept exactly)"
        typer.echo(
            f"{input_path.name} {width}x{height} -> {output_path}: {_count(result.n_colors, 'colour')}{note}, "
            f"{_quality(result)}, {seconds:.2f} s, "
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
    dither: bool = DITHER_OPTION,
    dither_strength: float = DITHER_STRENGTH_OPTION,
    space: Space = SPACE_OPTION,
):
    """Write a figure: INPUT and its N-colour version side by side, with captions."""
    options = {
        "n_colors": n_colors, "seed": seed, "sample_size": sample_size, "max_pixels": max_pixels,
        "dither": dither_strength if dither else 0.0, "space": space.value,
    }

    def body():
        output_kind(output)  # an unknown figure format fails now, not after the work
        _check_output(input_path, output, force)
        image, result, seconds = _quantize_file(input_path, options)
        height, width = result.labels.shape
        how = ", ".join([f"k = {result.n_colors}"] + (["OKLab"] if space is Space.oklab else [])
                        + (["dithered"] if dither else []))
        # The figure's font has no Greek letters: "dE" for ΔE.
        delta_e = f", dE {result.delta_e:.4f}" if result.delta_e is not None else ""
        captions = (
            f"original ({width}x{height}, {result.n_distinct:,} colours)",
            f"fastkm, {how}: PSNR {result.psnr:.2f} dB{delta_e}",
        )
        from .figure import side_by_side  # Pillow's drawing modules: only this command needs them

        figure = side_by_side([image, result.image], captions, max_side=max_side)
        write_image(output, figure)
        typer.echo(f"{input_path.name}: k = {result.n_colors}, PSNR {result.psnr:.2f} dB, {seconds:.2f} s -> {output}")

    _run(body)


def run():
    """Console-script entry point."""
    app(prog_name="fastkm")


if __name__ == "__main__":  # python -m fastkm.cli
    sys.exit(run())
