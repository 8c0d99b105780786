"""Dominant colours: fastkm against Pylette and colorthief, speed and palette quality.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/dominant.py [IMAGES...] [-k 5 8] [--rounds 3] \
        [--out bench/results/dominant.md]

(one thread each: Pylette's scikit-learn and fastkm's kernels would otherwise use every
core, colorthief one; the results file records the thread settings of its run)

Every tool gets the same decoded RGB array and is called as its README shows, with its
defaults: ``fastkm.quantize(image, k)``; ``pylette.extract_colors(image, palette_size=k)``
(scikit-learn k-means on the image shrunk to 256x256); colorthief's
``ColorThief.get_palette(color_count=k)`` (modified median cut on every 10th pixel), its
Pillow image set from the array so that no file decoding is timed.  After one untimed call of every tool, time is the best of
``--rounds`` calls (one call for a tool whose first took over 5 s).  Quality: each tool's
palette is rounded to uint8, every pixel of the full image is mapped to its nearest entry,
and the MSE per channel of that image is reported (lower is better); "x fastkm" is the
time, and "MSE / fastkm" the MSE, over fastkm's.  Photos: the 12 MP photo when present,
the 24 Kodak photos when present, else the bundled samples.
"""

import argparse
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import fastkm
from fastkm.io import read_image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.photos import LARGE_PHOTO, SAMPLE_DIR, images_in  # noqa: E402
from tests.reference import quantized_mse  # noqa: E402

KODAK = ROOT.parent / "shared" / "images" / "kodak"


def fastkm_palette(image, n_colors):
    return fastkm.quantize(image, n_colors).palette


def pylette_palette(image, n_colors):
    import pylette

    palette = pylette.extract_colors(image, palette_size=n_colors)
    return np.array([colour.rgb for colour in palette.colors])


def colorthief_palette(image, n_colors):
    from colorthief import ColorThief
    from PIL import Image

    # ColorThief opens a file; give it a tiny one, then the decoded image itself.
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1)).save(tiny, format="PNG")
    thief = ColorThief(tiny)
    thief.image = Image.fromarray(image)
    return np.array(thief.get_palette(color_count=n_colors))


TOOLS = {"fastkm": fastkm_palette, "pylette": pylette_palette, "colorthief": colorthief_palette}


def best_time(function, image, n_colors, rounds):
    """(palette, best seconds over the rounds); one round when a call takes over 5 s."""
    best, palette = np.inf, None
    for _ in range(rounds):
        start = time.perf_counter()
        palette = function(image, n_colors)
        best = min(best, time.perf_counter() - start)
        if best > 5:
            break
    return palette, best


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def default_images():
    photos = [LARGE_PHOTO] if LARGE_PHOTO.exists() else []
    return photos + (images_in(KODAK) if KODAK.is_dir() else images_in(SAMPLE_DIR))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("-k", nargs="+", type=int, default=[5, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    images = args.images or default_images()
    # An untimed first call of every tool: imports, compiled kernels, caches.
    warm_up = read_image(SAMPLE_DIR / "kodim23.png")[::4, ::4]
    for function in TOOLS.values():
        function(warm_up, args.k[0])

    import pylette  # noqa: F401
    from importlib.metadata import version

    header = [
        f"Dominant colours, `python bench/dominant.py`: {cpu_name()}, {os.cpu_count()} cores, "
        f"fastkm {fastkm.__version__}, Pylette {version('pylette')}, colorthief {version('colorthief')}; "
        f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'unset')}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, 1-minute load {os.getloadavg()[0]:.1f} at the start; "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC.",
        "",
        (__doc__.split("\n\n", 3)[3].strip().replace("\n", " ")),
        "",
        "| photo | k | tool | colours | time | x fastkm | MSE | MSE / fastkm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    ratios = {(tool, k): ([], []) for tool in TOOLS for k in args.k}
    for path in images:
        image = read_image(path)
        if image.ndim != 3 or image.shape[2] != 3:
            print(f"skipped {path.name}: not an RGB photo", file=sys.stderr)
            continue
        for k in args.k:
            base = None
            for tool, function in TOOLS.items():
                palette, seconds = best_time(function, image, k, args.rounds)
                palette = np.clip(np.rint(palette), 0, 255).astype(np.uint8)
                mse = quantized_mse(image, palette)
                if base is None:
                    base = (seconds, mse)
                ratios[tool, k][0].append(seconds / base[0])
                ratios[tool, k][1].append(mse / base[1])
                megapixels = image.shape[0] * image.shape[1] / 1e6
                rows.append(
                    f"| {path.name} ({megapixels:.2f} MP) | {k} | {tool} | {len(palette)} | {seconds:.3f} s | "
                    f"{seconds / base[0]:.1f} | {mse:.2f} | {mse / base[1]:.3f} |"
                )
                print(rows[-1], flush=True)
    summary = ["", "Geometric means over the photos:", "", "| k | tool | x fastkm (time) | MSE / fastkm |", "|---|---|---|---|"]
    for (tool, k), (times, mses) in ratios.items():
        if times:
            summary.append(f"| {k} | {tool} | {np.exp(np.mean(np.log(times))):.1f} | {np.exp(np.mean(np.log(mses))):.3f} |")
    print("\n".join(summary))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(header + rows + summary) + "\n")


if __name__ == "__main__":
    main()
