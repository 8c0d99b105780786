"""Small photos in process: fastkm.quantize against faiss (time) and scikit-learn (MSE).

    python bench/small_photos.py [-k 5 16 64] [--repeats 5] [--sklearn-seeds 3]
                                 [--out bench/results/small_photos.md]

Photos: the bundled ones (kodim03, kodim23, and bus-3mp downscaled to 0.26 MP), the 24
Kodak photos in ../shared/images/kodak and 0.14-0.4 MP downscales and crops of the 12 MP
photo in ../shared/images/large (both optional: not in a user's clone).

Time: ``fastkm.quantize(image, k, seed)`` (fit and labels, what a user calls) against
faiss as bench/peers.py runs it (``faiss.Kmeans(d=3, k, niter=25, seed)`` on float32
pixels, rounded palette, ``IndexFlatL2.search`` for every pixel's label), each with
its library's default threads.  Per photo and k the two run alternately ``--repeats``
times after one warm call each, and the photo's time is each one's median; the table
gives the sum of the medians over the photos and their ratio (same run).

MSE: fastkm's (seed 0) against scikit-learn ``KMeans(n_clusters=k, n_init=1,
random_state=s)`` on the float32 pixels for s = 0 .. sklearn_seeds - 1, palette rounded
to uint8 and every pixel's nearest entry; the ratio is to the mean over those seeds.
scikit-learn's MSEs take minutes; they are kept in bench/data/sklearn_small.json, keyed
by a hash of the pixels, and computed only for photos not listed there.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import fastkm
from fastkm.io import read_image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "images"
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from peers import faiss_kmeans

from tests.reference import quantized_mse

SKLEARN_CACHE = ROOT / "bench" / "data" / "sklearn_small.json"


def _resized(image, width):
    """image (H, W, 3) uint8 downscaled to ``width`` (Lanczos, aspect kept)."""
    from PIL import Image

    height = round(image.shape[0] * width / image.shape[1])
    return np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))


def _crop(image, height, width, top_share=0.5, left_share=0.5):
    top = int((image.shape[0] - height) * top_share)
    left = int((image.shape[1] - width) * left_share)
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def photos():
    """[(name, (H, W, 3) uint8)]: the small photos the benchmark runs on."""
    found = []
    bus = read_image(ROOT / "sample_images" / "bus-3mp.jpg")
    found.append(("bus-3mp 624x468", _resized(bus, 624)))
    kodak = SHARED / "kodak"
    if kodak.is_dir():
        found += [(path.name, read_image(path)) for path in sorted(kodak.glob("*.png"))]
    else:
        found += [(name, read_image(ROOT / "sample_images" / name)) for name in ("kodim03.png", "kodim23.png")]
    large = SHARED / "large" / "012mp-bus.jpg"
    if large.is_file():
        photo = read_image(large)
        for width in (432, 624, 730):  # 0.14, 0.29, 0.40 MP
            found.append((f"12mp {width}x{round(photo.shape[0] * width / photo.shape[1])}", _resized(photo, width)))
        found.append(("12mp crop 512x288", _crop(photo, 288, 512, 0.4, 0.3)))
        found.append(("12mp crop 640x400", _crop(photo, 400, 640, 0.6, 0.7)))
    return found


def pixels_sha256(image):
    digest = hashlib.sha256(f"{image.shape}".encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def sklearn_mse(image, n_colors, seed):
    from sklearn.cluster import KMeans

    pixels = image.reshape(-1, 3).astype(np.float32)
    model = KMeans(n_clusters=n_colors, n_init=1, random_state=seed).fit(pixels)
    palette = np.clip(np.rint(model.cluster_centers_), 0, 255).astype(np.uint8)
    return quantized_mse(image, palette)


def sklearn_references(found, ks, n_seeds):
    """{name: {k: [MSE of seed 0, 1, ...]}}, from the cache where it has them."""
    cache = json.loads(SKLEARN_CACHE.read_text()) if SKLEARN_CACHE.is_file() else {}
    references = {}
    for name, image in found:
        entry = cache.setdefault(pixels_sha256(image), {"name": name, "k": {}})
        for k in ks:
            values = entry["k"].setdefault(str(k), [])
            while len(values) < n_seeds:
                values.append(sklearn_mse(image, k, len(values)))
                SKLEARN_CACHE.write_text(json.dumps(cache, indent=1) + "\n")
                print(f"scikit-learn {name} k={k} seed {len(values) - 1}: {values[-1]:.3f}", file=sys.stderr)
        references[name] = {k: entry["k"][str(k)][:n_seeds] for k in ks}
    return references


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(found, k, references, repeats):
    """(summary row, photo rows) of fastkm against faiss at k on every photo."""
    fastkm_total = faiss_total = 0.0
    ratios, time_ratios, rows = [], [], []
    for name, image in found:
        fastkm.quantize(image, k, seed=0)
        faiss_kmeans(image, k, 0)
        fastkm_times, faiss_times = [], []
        for repeat in range(repeats):
            fastkm_times.append(timed(lambda: fastkm.quantize(image, k, seed=repeat)))
            faiss_times.append(timed(lambda: faiss_kmeans(image, k, repeat)))
        fastkm_time, faiss_time = statistics.median(fastkm_times), statistics.median(faiss_times)
        fastkm_total += fastkm_time
        faiss_total += faiss_time
        ratio = fastkm.quantize(image, k, seed=0).mse / float(np.mean(references[name][k]))
        ratios.append(ratio)
        time_ratios.append(fastkm_time / faiss_time)
        rows.append(
            f"| {name} | {image.shape[1]}x{image.shape[0]} | {k} | {fastkm_time * 1e3:.1f} | {faiss_time * 1e3:.1f} "
            f"| {fastkm_time / faiss_time:.2f} | {ratio:.4f} |"
        )
    worst = int(np.argmax(ratios))
    summary = (
        f"{k} | {fastkm_total * 1e3:.0f} | {faiss_total * 1e3:.0f} | {fastkm_total / faiss_total:.2f} "
        f"| {max(time_ratios):.2f} | {np.mean(ratios):.4f} | {ratios[worst]:.4f} ({found[worst][0]}) |"
    )
    return summary, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, nargs="+", default=[5, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sklearn-seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--threads", nargs="+", default=["default", "1"],
        help="thread settings to time: 'default' (each library's own) or a count given to both libraries",
    )
    parser.add_argument("--only-sklearn", action="store_true", help="fill the scikit-learn cache and stop")
    args = parser.parse_args()
    found = photos()
    references = sklearn_references(found, args.k, args.sklearn_seeds)
    if args.only_sklearn:
        return
    load_before = os.getloadavg()
    rows, summary = [], []
    for threads in args.threads:
        if threads != "default":
            import faiss
            import numba

            faiss.omp_set_num_threads(int(threads))
            numba.set_num_threads(int(threads))
        for k in args.k:
            measured = measure(found, k, references, args.repeats)
            summary.append(f"| {threads} | " + measured[0])
            if threads == args.threads[0]:
                rows += measured[1]
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        f"# Small photos in process: fastkm.quantize against faiss and scikit-learn ({len(found)} photos)",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, at {commit}, "
        f"`python bench/small_photos.py {' '.join(sys.argv[1:])}`; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after. Times are medians of {args.repeats} alternating runs per photo, summed over "
        f"the photos, with each library's default threads and then with the thread count given to both (numba's "
        f"and faiss's OpenMP); MSE ratios are fastkm's (seed 0) to the mean of scikit-learn KMeans(n_init=1) over "
        f"seeds 0..{args.sklearn_seeds - 1}.",
        "",
        "| threads | k | fastkm ms | faiss ms | fastkm / faiss | worst photo's time ratio | mean MSE / sklearn "
        "| worst MSE / sklearn |",
        "|---|---|---|---|---|---|---|---|",
        *summary,
        "",
        f"Per photo ({args.threads[0]} threads):",
        "",
        "| photo | size | k | fastkm ms | faiss ms | time ratio | MSE / sklearn |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(lines[:12]))
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
