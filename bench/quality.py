"""Quality against scikit-learn KMeans(n_init=1) on real photos (MSE of the uint8 output).

    python bench/quality.py [IMAGES...] [-k 16 64] [--out bench/results/quality.md] [--chart PNG]
    python bench/quality.py --from-table bench/results/quality_kodak.md --chart bench/figures/quality_kodak.png

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


def read_table(path):
    """{k: [(image name, MSE ratio fastkm / scikit-learn)]} from a table this script wrote."""
    ratios = {}
    for line in Path(path).read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 7 and cells[1].isdigit() and not cells[0].startswith("**"):
            ratios.setdefault(int(cells[1]), []).append((cells[0], float(cells[4])))
    return ratios


def chart(ratios, path):
    """Each photo's MSE ratio at every k, sorted, with 1 (as good as scikit-learn) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for k, rows in sorted(ratios.items()):
        values = sorted(ratio for _, ratio in rows)
        ax.plot(range(1, len(values) + 1), values, "o-", label=f"k={k} (mean {np.mean(values):.4f})")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("photo (sorted by ratio)")
    ax.set_ylabel("MSE fastkm / scikit-learn")
    ax.set_title(f"{max(len(rows) for rows in ratios.values())} photos: below 1, fastkm's colours are closer")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("-k", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--chart", type=Path, help="draw each photo's MSE ratio into this PNG")
    parser.add_argument("--from-table", type=Path, help="chart a table written by --out instead of running")
    args = parser.parse_args()
    if args.from_table:
        if not args.chart:
            parser.error("--from-table needs --chart")
        chart(read_table(args.from_table), args.chart)
        return
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
    if args.chart:
        chart({k: [(None, ratio) for ratio in values] for k, values in ratios.items()}, args.chart)
    for k, values in ratios.items():
        rows.append(f"| **mean ratio** | {k} | | | **{np.mean(values):.4f}** (worst {np.max(values):.4f}) | | |")
        print(rows[-1])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
