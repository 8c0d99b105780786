"""Rate-distortion against pngquant: the files each CLI writes, judged by how they look and what they weigh.

    python bench/rate_distortion.py            # bundled + Kodak photos, 12 MP photo half and full size
    python bench/rate_distortion.py --quick    # bundled photos and four Kodak ones, no 12 MP
    python bench/rate_distortion.py --fastkm-cmd "/path/to/other/.venv/bin/fastkm" --label other

Both tools get the same PNG inputs (JPEGs are decoded once and saved as PNG, colour
profile dropped, so both read identical pixels) and the same colour counts, plain and
dithered: ``pngquant K --nofs`` / ``pngquant K`` (Floyd-Steinberg, its default) against
``fastkm quantize -k K`` / ``fastkm quantize -k K --dither``.  For every output file:
SSIMULACRA2 (PyPI ``ssimulacra2``, higher is better, 100 = identical), FLIP (PyPI
``flip-evaluator``, LDR, default 67 pixels per degree; lower is better), PSNR over RGB,
file bytes and the wall time of the command (start-up included, as a user sees it).

Writes every measurement to ``bench/results/rate_distortion.csv``, the summary tables to
``bench/results/rate_distortion.md`` and the chart of bits per pixel against mean
SSIMULACRA2 to ``bench/figures/rate_distortion.png`` (``--name`` changes the stem).
The fastkm command comes from ``--fastkm-cmd`` or the ``FASTKM_CMD`` environment variable
(default: this Python's ``-m fastkm.cli``); pngquant from ``--pngquant`` or ``PNGQUANT``
(default: the one ``pngquant-cli`` installs beside this Python, then PATH).
"""

import argparse
import csv
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "sample_images"
KODAK_DIR = ROOT.parent / "shared" / "images" / "kodak"
LARGE_PHOTO = ROOT.parent / "shared" / "images" / "large" / "012mp-bus.jpg"
COLOUR_COUNTS = (8, 32, 128, 256)
MODES = ("plain", "dithered")
# The acceptance sets (mean quality, total bytes) and the large ones (mostly wall time).
PHOTO_SETS = ("bundled", "kodak")
LARGE_SETS = ("12mp-half", "12mp-full")
# Photos of another camera than the acceptance sets' (a phone's sensor noise and
# sharpening): crops of the 12 MP photo at full resolution, a check on photos the
# defaults were not tuned on.
CROP_SET = "12mp-crops"
CROP_SIZE = (1024, 768)
CROP_CENTRES = ((0.2, 0.25), (0.5, 0.25), (0.8, 0.25), (0.2, 0.75), (0.5, 0.75), (0.8, 0.75))
QUICK_KODAK = ("kodim01.png", "kodim05.png", "kodim15.png", "kodim19.png")  # with the bundled kodim03, kodim23


def prepared_inputs(sets, work_dir, quick):
    """[(set name, file name, PNG path)] for the requested sets that exist here.

    A Kodak file identical to a bundled one (the bundled photos are two of the Kodak set)
    is listed once, as bundled, so that the two sets together count each photo once."""
    inputs = []
    if "bundled" in sets:
        inputs += [("bundled", p.name, p) for p in sorted(SAMPLE_DIR.glob("*.png"))]
    if "kodak" in sets and KODAK_DIR.is_dir():
        kodak = sorted(KODAK_DIR.glob("*.png"))
        if quick:
            kodak = [p for p in kodak if p.name in QUICK_KODAK]
        bundled = {hashlib.sha256(p.read_bytes()).digest() for p in SAMPLE_DIR.glob("*.png")}
        inputs += [("kodak", p.name, p) for p in kodak if hashlib.sha256(p.read_bytes()).digest() not in bundled]
    if CROP_SET in sets and LARGE_PHOTO.exists():
        with Image.open(LARGE_PHOTO) as photo:
            photo = photo.convert("RGB")
            for n, (x, y) in enumerate(CROP_CENTRES):
                target = work_dir / f"{LARGE_PHOTO.stem}-crop{n + 1}.png"
                left = int(x * photo.width - CROP_SIZE[0] / 2)
                top = int(y * photo.height - CROP_SIZE[1] / 2)
                photo.crop((left, top, left + CROP_SIZE[0], top + CROP_SIZE[1])).save(target, compress_level=1)
                inputs.append((CROP_SET, target.name, target))
    for set_name, factor in (("12mp-half", 2), ("12mp-full", 1)):
        if set_name not in sets or not LARGE_PHOTO.exists():
            continue
        target = work_dir / f"{LARGE_PHOTO.stem}-{set_name}.png"
        if not target.exists():
            with Image.open(LARGE_PHOTO) as photo:
                photo = photo.convert("RGB")  # pixels as stored; the ICC profile is not carried over
                if factor > 1:
                    photo = photo.resize((photo.width // factor, photo.height // factor), Image.LANCZOS)
                photo.save(target, compress_level=1)
        inputs.append((set_name, target.name, target))
    return inputs


def read_rgb(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def psnr(reference, test):
    mse = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def flip(reference, test):
    """Mean LDR-FLIP error of two (H, W, 3) uint8 sRGB images."""
    import flip_evaluator

    _, mean_error, _ = flip_evaluator.evaluate(
        reference.astype(np.float32) / 255, test.astype(np.float32) / 255, "LDR", applyMagma=False
    )
    return float(mean_error)


def ssimulacra2(reference_path, test_path):
    from ssimulacra2 import compute_ssimulacra2

    return float(compute_ssimulacra2(str(reference_path), str(test_path)))


def timed(command):
    """Run a command; its wall seconds.  A failure stops the benchmark with the tool's message."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: {shlex.join(map(str, command))} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def tool_commands(fastkm_cmd, pngquant):
    """{tool: function(input, output, k, mode) -> argv}."""
    def fastkm(source, target, n_colors, mode):
        return [*fastkm_cmd, "quantize", str(source), "-o", str(target), "-k", str(n_colors), "--force",
                *(["--dither"] if mode == "dithered" else [])]

    def pngquant_argv(source, target, n_colors, mode):
        return [pngquant, str(n_colors), "--force", "--output", str(target),
                *(["--nofs"] if mode == "plain" else []), str(source)]

    return {"fastkm": fastkm, "pngquant": pngquant_argv}


FIELDS = ("set", "image", "pixels", "k", "mode", "tool", "bytes", "seconds", "ssimulacra2", "flip", "psnr")


def read_rows(path):
    """Rows of a CSV this script wrote, numbers as numbers."""
    with open(path, newline="") as handle:
        return [{key: (value if key in ("set", "image", "mode", "tool") else float(value) if "." in value
                       else int(value)) for key, value in row.items()} for row in csv.DictReader(handle)]


def measure(inputs, commands, colour_counts, work_dir, csv_path, keep_dir=None, log=print):
    """One row per (input, k, mode, tool): the output file's metrics, bytes and wall time,
    each appended to ``csv_path`` as soon as measured (an interrupted run keeps them).

    Output files are deleted once measured, or moved into ``keep_dir`` when given."""
    rows = []
    with open(csv_path, "w", newline="") as handle:
        csv.DictWriter(handle, fieldnames=FIELDS).writeheader()
    for set_name, name, source in inputs:
        reference = read_rgb(source)
        n_pixels = reference.shape[0] * reference.shape[1]
        for n_colors in colour_counts:
            for mode in MODES:
                for tool, argv in commands.items():  # interleaved, so machine load hits both alike
                    target = work_dir / f"{Path(name).stem}-{tool}-{mode}-k{n_colors}.png"
                    seconds = timed(argv(source, target, n_colors, mode))
                    test = read_rgb(target)
                    row = {
                        "set": set_name, "image": name, "pixels": n_pixels, "k": n_colors, "mode": mode, "tool": tool,
                        "bytes": target.stat().st_size, "seconds": round(seconds, 4),
                        "ssimulacra2": round(ssimulacra2(source, target), 4),
                        "flip": round(flip(reference, test), 6), "psnr": round(psnr(reference, test), 4),
                    }
                    rows.append(row)
                    with open(csv_path, "a", newline="") as handle:
                        csv.DictWriter(handle, fieldnames=FIELDS).writerow(row)
                    log(f"{name} k={n_colors} {mode:8s} {tool:8s} SSIMULACRA2 {row['ssimulacra2']:7.2f}  "
                        f"FLIP {row['flip']:.4f}  PSNR {row['psnr']:.2f}  {row['bytes']:>9,} B  {seconds:6.2f} s")
                    if keep_dir is None:
                        target.unlink()
                    else:
                        shutil.move(target, keep_dir / target.name)
    return rows


def summary(rows, sets):
    """{(k, mode): {"fastkm": (mean S2, total bytes, mean FLIP, total s, total pixels), "pngquant": ...}} over sets."""
    grouped = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["set"] in sets:
            grouped[(row["k"], row["mode"])][row["tool"]].append(row)
    table = {}
    for key, per_tool in sorted(grouped.items(), key=lambda item: (MODES.index(item[0][1]), item[0][0])):
        table[key] = {
            tool: (
                float(np.mean([r["ssimulacra2"] for r in runs])), sum(r["bytes"] for r in runs),
                float(np.mean([r["flip"] for r in runs])), sum(r["seconds"] for r in runs),
                sum(r["pixels"] for r in runs), len(runs),
            )
            for tool, runs in per_tool.items()
        }
    return table


def markdown_table(table, title):
    lines = [
        f"### {title}", "",
        "| k | mode | SSIMULACRA2 fastkm / pngquant | bytes fastkm ÷ pngquant | FLIP fastkm / pngquant "
        "| time fastkm ÷ pngquant | images |",
        "|---|---|---|---|---|---|---|",
    ]
    for (n_colors, mode), per_tool in table.items():
        if "fastkm" not in per_tool or "pngquant" not in per_tool:
            continue
        f, p = per_tool["fastkm"], per_tool["pngquant"]
        lines.append(
            f"| {n_colors} | {mode} | {f[0]:.1f} / {p[0]:.1f} | {f[1] / p[1]:.2f} | {f[2]:.4f} / {p[2]:.4f} "
            f"| {f[3] / p[3]:.2f} | {f[5]} |"
        )
    return lines


def write_markdown(path, rows, header):
    lines = [*header, ""]
    present = {row["set"] for row in rows}
    main_sets = [s for s in PHOTO_SETS if s in present]
    if main_sets:
        lines += markdown_table(summary(rows, main_sets), " + ".join(main_sets) + " photos (means over photos; "
                                "bytes and time summed)")
        lines.append("")
    for set_name in (CROP_SET, *LARGE_SETS):
        if set_name in present:
            pixels = next(r["pixels"] for r in rows if r["set"] == set_name)
            lines += markdown_table(summary(rows, [set_name]), f"{set_name} ({pixels / 1e6:.1f} MP)")
            lines.append("")
    path.write_text("\n".join(lines))


def write_chart(path, rows, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = {row["set"] for row in rows}
    panels = [([s for s in PHOTO_SETS if s in present], " + ".join(s for s in PHOTO_SETS if s in present))]
    panels += [([s], s) for s in (CROP_SET, *LARGE_SETS) if s in present]
    panels = [p for p in panels if p[0]]
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
    styles = {("fastkm", "plain"): ("tab:blue", "-"), ("fastkm", "dithered"): ("tab:blue", "--"),
              ("pngquant", "plain"): ("tab:orange", "-"), ("pngquant", "dithered"): ("tab:orange", "--")}
    for axis, (sets, label) in zip(axes[0], panels):
        table = summary(rows, sets)
        for (tool, mode), (colour, line) in styles.items():
            points = [(n_colors, per_tool[tool]) for (n_colors, m), per_tool in table.items()
                      if m == mode and tool in per_tool]
            if not points:
                continue
            points.sort()
            bits_per_pixel = [8 * v[1] / v[4] for _, v in points]
            quality = [v[0] for _, v in points]
            axis.plot(bits_per_pixel, quality, line, color=colour, marker="o", label=f"{tool} {mode}")
            for (n_colors, _), x, y in zip(points, bits_per_pixel, quality):
                axis.annotate(f"k={n_colors}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        axis.set_xlabel("file size, bits per pixel (total bytes × 8 / total pixels)")
        axis.set_ylabel("mean SSIMULACRA2 (higher is better)")
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def default_pngquant():
    beside = Path(sys.executable).parent / "pngquant"
    return str(beside) if beside.exists() else shutil.which("pngquant")


def tool_version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="bundled photos and four Kodak ones, no 12 MP photo")
    parser.add_argument("--sets", nargs="+", choices=PHOTO_SETS + LARGE_SETS + (CROP_SET,), help="which photo sets (default: all)")
    parser.add_argument("-k", "--colors", type=int, nargs="+", default=list(COLOUR_COUNTS))
    parser.add_argument("--fastkm-cmd", default=os.environ.get("FASTKM_CMD"),
                        help="command that runs fastkm's CLI (default: FASTKM_CMD or this Python -m fastkm.cli)")
    parser.add_argument("--pngquant", default=os.environ.get("PNGQUANT") or default_pngquant())
    parser.add_argument("--name", default="rate_distortion", help="stem of the result files")
    parser.add_argument("--note", default="", help="a line to put under the results' title (what was run)")
    parser.add_argument("--keep", type=Path, help="keep every output file in this folder")
    parser.add_argument("--report", type=Path, metavar="CSV",
                        help="measure nothing: rebuild the table and chart from a CSV of an earlier run")
    args = parser.parse_args(argv)
    if not args.pngquant:
        parser.error("no pngquant found: pip install pngquant-cli (the bench extra), or pass --pngquant")
    fastkm_cmd = shlex.split(args.fastkm_cmd) if args.fastkm_cmd else [sys.executable, "-m", "fastkm.cli"]
    sets = args.sets or (PHOTO_SETS if args.quick else PHOTO_SETS + LARGE_SETS)
    commands = tool_commands(fastkm_cmd, args.pngquant)
    results = ROOT / "bench" / "results"
    if args.report is not None:
        rows = read_rows(args.report)
    else:
        with tempfile.TemporaryDirectory(prefix="fastkm-rd-") as temporary:
            work_dir = Path(temporary)
            inputs = prepared_inputs(sets, work_dir, args.quick)
            if not inputs:
                raise SystemExit("error: none of the photo sets is present here")
            # Compile and cache fastkm's kernels before anything is timed.
            timed(commands["fastkm"](inputs[0][2], work_dir / "warm-up.png", 16, "dithered"))
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
            rows = measure(inputs, commands, args.colors, work_dir, results / f"{args.name}.csv", keep_dir=args.keep)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible"
    header = [
        "# Rate-distortion: fastkm's CLI against pngquant's on the same PNG inputs", "",
        (f"Run {when}, commit {commit}{' (dirty)' if dirty else ''}, on {machine} (shared machine: times are "
         "indicative, ratios come from runs interleaved in the same spell)." if args.report is None else
         f"Table made {when} (commit {commit}) from the measurements in `{args.report.name}` (see the note)."),
        f"fastkm: `{shlex.join(fastkm_cmd)} quantize -k K [--dither]`; pngquant: "
        f"`{tool_version([args.pngquant, '--version'])}`, `pngquant K [--nofs]` (FS dithering is its default).",
        "SSIMULACRA2: higher is better; FLIP: lower is better; time: wall time of each command, start-up "
        f"included. Every measurement: `bench/results/{(args.report or Path(args.name + '.csv')).name}`.",
    ]
    if args.note:
        header += ["", args.note]
    write_markdown(results / f"{args.name}.md", rows, header)
    write_chart(ROOT / "bench" / "figures" / f"{args.name}.png", rows, f"fastkm vs pngquant, {when}, commit {commit}")
    print(f"wrote bench/results/{args.name}.md, .csv and bench/figures/{args.name}.png")


if __name__ == "__main__":
    main()
