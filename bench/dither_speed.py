"""Dithered quantize against plain quantize, in one process, on the 12 MP photo.

    python bench/dither_speed.py [PHOTO] [--k 16 256] [--rounds 5] [--out bench/results/dither_speed_12mp.md]

Each round times a plain and a dithered call back to back (same photo, k, seed and
options), so a slow spell of a shared machine hits both; the ratio reported is the
median of the rounds' ratios.  A first untimed call of each loads the compiled kernels.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba  # noqa: E402

import fastkm  # noqa: E402
from photos import LARGE_PHOTO, read_rgb  # noqa: E402


def timed(image, n_colors, **options):
    start = time.perf_counter()
    fastkm.quantize(image, n_colors, seed=0, **options)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", default=str(LARGE_PHOTO))
    parser.add_argument("--k", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--weighting", default=None, help="weighting= for both calls (default: quantize's)")
    parser.add_argument("--out", default=None, help="append the table to this Markdown file")
    args = parser.parse_args()
    image = read_rgb(args.photo)
    options = {} if args.weighting is None else {"weighting": args.weighting}
    lines = [
        f"Photo {Path(args.photo).name} ({image.shape[1]}x{image.shape[0]}), {numba.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), fastkm "
        + subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        + f", options {options or 'default'}; median of {args.rounds} paired rounds.",
        "",
        "| k | plain s | dithered s | dithered / plain |",
        "|---|---|---|---|",
    ]
    for n_colors in args.k:
        timed(image, n_colors, **options)
        timed(image, n_colors, dither=True, **options)
        plain, dithered = [], []
        for _ in range(args.rounds):
            plain.append(timed(image, n_colors, **options))
            dithered.append(timed(image, n_colors, dither=True, **options))
        ratio = statistics.median(d / p for d, p in zip(dithered, plain))
        lines.append(
            f"| {n_colors} | {statistics.median(plain):.3f} | {statistics.median(dithered):.3f} | {ratio:.2f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
