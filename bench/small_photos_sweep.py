"""The sweep behind the small-photo stages' constants (fastkm/_kmeans.py, SMALL_*).

    python bench/small_photos_sweep.py settings [-k 5 16 32] [--out bench/results/small_photos_sweep.md]
    python bench/small_photos_sweep.py sizes [--out ...]
    python bench/small_photos_sweep.py oklab [--out ...]

``settings``: each setting of the seed draw (SMALL_SEED_PIXELS), the k-means++ starts
(SMALL_N_INIT) and the swaps (small_swap_plan) against the usual stages, on the photos
of bench/small_photos.py: MSE over scikit-learn KMeans(n_init=1) (mean of its cached
seeds, bench/data/sklearn_small.json; run bench/small_photos.py first), mean and worst,
and the worst ratio to exact k-means over seeds 0-5 where bench/data/exact_kmeans.json
has the photo (kodim03, kodim23; k = 16 and 64); time as one thread's CPU time (the
machine is shared, and CPU time is steadier than wall time there), best of 3, summed
over five of the photos, over faiss's in the same run.

``sizes``: the small stages against the usual ones on downscales of the 12 MP photo and
bus-3mp from 0.4 to 1.7 MP (SMALL_PHOTO_PIXELS): CPU time and MSE, mean of seeds 0-3.

``oklab``: the small stages against the usual ones fitted in OKLab (the command line's
default for photos without alpha): mean ΔE, every third photo, seeds 0-2.

Everything runs on one thread (numba's and OpenMP's thread counts are set to 1 before
they load), so that the calling thread's CPU time is all of the work.
"""

import os

os.environ["NUMBA_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"

import argparse
import json
import sys
import time
import timeit
from pathlib import Path

import numpy as np

import fastkm
from fastkm import _kmeans
from fastkm.io import read_image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import small_photos
from peers import faiss_kmeans

TIMED = ["kodim05.png", "kodim03.png", "kodim23.png", "12mp 624x468", "kodim13.png"]
# (seed pixels, starts, swaps: a scale of the usual plan's, or "small" for small_swap_plan)
SETTINGS = [
    (16384, 2, "small"),  # the chosen one
    (8192, 2, "small"),
    (32768, 2, "small"),
    (16384, 1, "small"),
    (16384, 4, "small"),
    (16384, 2, 1.0),
    (16384, 2, 0.25),
    (16384, 2, 0.0),
]


def cpu_time(function, repeats=3):
    function()
    return min(timeit.Timer(function, timer=time.thread_time).repeat(number=1, repeat=repeats))


def settings(ks):
    found = small_photos.photos()
    cache = json.loads(small_photos.SKLEARN_CACHE.read_text())
    exact_all = json.loads((ROOT / "bench" / "data" / "exact_kmeans.json").read_text())["photos"]
    exact = {}
    for name, image in found:
        key = small_photos.pixels_sha256(image)
        if key in exact_all.get(name, {}):
            exact[name] = exact_all[name][key]["k"]
    faiss_time = {k: sum(cpu_time(lambda: faiss_kmeans(image, k, 0)) for name, image in found if name in TIMED) for k in ks}
    usual_plan, small_plan = _kmeans.swap_plan, _kmeans.small_swap_plan
    lines = [
        "| seed pixels | starts | swaps | k | CPU time / faiss | mean MSE / sklearn | worst MSE / sklearn | worst / exact k-means |",
        "|---|---|---|---|---|---|---|---|",
    ]
    kept = (_kmeans.SMALL_SEED_PIXELS, _kmeans.SMALL_N_INIT, _kmeans.small_swap_plan)
    for seed_pixels, n_init, swaps in [(None, None, None)] + SETTINGS:
        if seed_pixels is None:
            _kmeans.SMALL_PHOTO_PIXELS, label = 0, "usual stages: 262144, sample stage | 4 | usual"
        else:
            _kmeans.SMALL_PHOTO_PIXELS = 1 << 20
            _kmeans.SMALL_SEED_PIXELS, _kmeans.SMALL_N_INIT = seed_pixels, n_init
            if swaps == "small":
                _kmeans.small_swap_plan = small_plan
            else:
                def scaled(n_colors, scale=swaps):
                    n_swaps, n_splits, swap_iter = usual_plan(n_colors)
                    n_swaps = int(round(n_swaps * scale))
                    return n_swaps, min(n_splits, n_swaps), swap_iter

                _kmeans.small_swap_plan = scaled
            label = f"{seed_pixels} | {n_init} | {'min(k, half the usual)' if swaps == 'small' else f'{swaps:g} x usual'}"
        for k in ks:
            ratios, exact_ratios = [], []
            for name, image in found:
                references = cache.get(small_photos.pixels_sha256(image), {"k": {}})["k"].get(str(k))
                if references:
                    ratios.append(fastkm.quantize(image, k, seed=0).mse / float(np.mean(references)))
                if str(k) in exact.get(name, {}):
                    exact_sum = exact[name][str(k)]["mse_rounded"]["sum"]
                    exact_ratios += [3 * fastkm.quantize(image, k, seed=s).mse / exact_sum for s in range(6)]
            elapsed = sum(cpu_time(lambda: fastkm.quantize(image, k)) for name, image in found if name in TIMED)
            worst_exact = f"{max(exact_ratios):.4f}" if exact_ratios else ""
            lines.append(
                f"| {label} | {k} | {elapsed / faiss_time[k]:.2f} | {np.mean(ratios):.4f} | {np.max(ratios):.4f} "
                f"| {worst_exact} |"
            )
            print(lines[-1], flush=True)
    _kmeans.SMALL_SEED_PIXELS, _kmeans.SMALL_N_INIT, _kmeans.small_swap_plan = kept
    _kmeans.SMALL_PHOTO_PIXELS = 1 << 20
    return lines


def sizes():
    lines = [
        "| photo | MP | k | small stages ms | usual stages ms | time ratio | MSE small / usual |",
        "|---|---|---|---|---|---|---|",
    ]
    sources = [
        ("12 MP photo", read_image(small_photos.SHARED / "large" / "012mp-bus.jpg")),
        ("bus-3mp", read_image(ROOT / "sample_images" / "bus-3mp.jpg")),
    ]
    kept = _kmeans.SMALL_PHOTO_PIXELS
    for label, source in sources:
        for width in (730, 1000, 1250, 1500):
            image = small_photos._resized(source, width)
            for k in (5, 16, 32):
                measured = {}
                for small in (True, False):
                    _kmeans.SMALL_PHOTO_PIXELS = 1 << 24 if small else 0
                    measured[small] = (
                        cpu_time(lambda: fastkm.quantize(image, k)),
                        np.mean([fastkm.quantize(image, k, seed=s).mse for s in range(4)]),
                    )
                (small_time, small_mse), (usual_time, usual_mse) = measured[True], measured[False]
                lines.append(
                    f"| {label} {image.shape[1]}x{image.shape[0]} | {image.shape[0] * image.shape[1] / 1e6:.2f} | {k} "
                    f"| {small_time * 1e3:.1f} | {usual_time * 1e3:.1f} | {small_time / usual_time:.2f} "
                    f"| {small_mse / usual_mse:.4f} |"
                )
                print(lines[-1], flush=True)
    _kmeans.SMALL_PHOTO_PIXELS = kept
    return lines


def oklab():
    """The small stages against the usual ones in OKLab: mean ΔE over seeds 0-2, every third photo."""
    lines = ["| k | mean ΔE small / usual | worst | best |", "|---|---|---|---|"]
    kept = _kmeans.SMALL_PHOTO_PIXELS
    for k in (5, 16, 32):
        ratios = []
        for name, image in small_photos.photos()[::3]:
            delta_e = {}
            for small in (True, False):
                _kmeans.SMALL_PHOTO_PIXELS = 1 << 20 if small else 0
                delta_e[small] = np.mean([fastkm.quantize(image, k, seed=s, space="oklab").delta_e for s in range(3)])
            ratios.append(delta_e[True] / delta_e[False])
        lines.append(f"| {k} | {np.mean(ratios):.4f} | {max(ratios):.4f} | {min(ratios):.4f} |")
        print(lines[-1], flush=True)
    _kmeans.SMALL_PHOTO_PIXELS = kept
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["settings", "sizes", "oklab"])
    parser.add_argument("-k", type=int, nargs="+", default=[5, 16, 32])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = {"settings": lambda: settings(args.k), "sizes": sizes, "oklab": oklab}[args.what]()
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
