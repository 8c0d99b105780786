"""Quality against scikit-learn KMeans(n_init=1) on real photos (MSE of the uint8 output).

    python bench/quality.py [IMAGES...] [-k 16 64] [--out bench/results/quality.md]

Both methods output a uint8 palette (scikit-learn's centres rounded) and every pixel's
nearest palette entry; MSE is per channel against the original.  Defaults to the 24
Kodak photographs in ../shared/images/kodak when present, else the bundled samples.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import fastkm
from fastkm.io import read_image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.reference import quantized_mse  # noqa: E402


def sklearn_palette(image, n_colors, seed):
    from sklearn.cluster import KMeans

    pixels = image.reshape(-1, 3).astype(np.float32)
    model = KMeans(n_clusters=n_colors, n_init=1, random_state=seed).fit(pixels)
    return np.clip(np.rint(model.cluster_centers_), 0, 255).astype(np.uint8)


def default_images():
    kodak = ROOT.parent / "shared" / "images" / "kodak"
    if kodak.is_dir():
        return sorted(kodak.glob("*.png"))
    return sorted((ROOT / "sample_images").glob("*.png"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("-k", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    images = args.images or default_images()
    rows = ["| image | k | fastkm MSE | sklearn MSE | ratio | fastkm s | sklearn s |", "|---|---|---|---|---|---|---|"]
    ratios = {k: [] for k in args.k}
    for path in images:
        image = read_image(path)
        for k in args.k:
            start = time.perf_counter()
            ours = fastkm.quantize(image, k, seed=args.seed)
            ours_s = time.perf_counter() - start
            start = time.perf_counter()
            theirs = quantized_mse(image, sklearn_palette(image, k, args.seed))
            theirs_s = time.perf_counter() - start
            ratio = ours.mse / theirs
            ratios[k].append(ratio)
            rows.append(f"| {path.name} | {k} | {ours.mse:.2f} | {theirs:.2f} | {ratio:.4f} | {ours_s:.2f} | {theirs_s:.2f} |")
            print(rows[-1], flush=True)
    for k, values in ratios.items():
        rows.append(f"| **mean ratio** | {k} | | | **{np.mean(values):.4f}** (worst {np.max(values):.4f}) | | |")
        print(rows[-1])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
