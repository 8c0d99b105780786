"""Offline reference: k-means run to convergence on every pixel of each photo.

    python bench/exact_reference.py [PHOTO_OR_FOLDER...] [-k 16 64 256] [--n-init 8] [--force]

k-means on the distinct colours of a photo, each weighted by its pixel count, has the
same objective, the same Lloyd steps and the same fixed points as k-means on all of its
pixels, so this runs scikit-learn's Lloyd on that weighted histogram (float64,
``tol=0``: until no label changes) from ``--n-init`` k-means++ starts and keeps the
best.  That is a local optimum, the one any careful k-means reaches, not the global one.

Recorded per photo and k: MSE per pixel of the float centres, and of the centres
rounded to a uint8 palette with every colour re-assigned to its nearest palette entry
(exact integer distances): the latter compares with fastkm's uint8 output.  MSE is
given summed over R, G, B ("sum"), as the mean of the three channels ("mean", what
fastkm.quantize reports) and per channel ("rgb").  Results merge into
bench/data/exact_kmeans.json under the photo's file name and pixel sha256; a (photo,
k) already there with at least as many starts is skipped unless --force.
Default photos: the 12 MP ../shared photo when present and sample_images/*.
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from photos import REFERENCE_PATH, load_references, photos_from, pixels_sha256, read_rgb  # beside this script

MAX_ITER = 100_000
CHUNK = 1 << 16


def colour_histogram(image):
    """Distinct colours (n, 3) float64 and their pixel counts (n,) int64, from packed 24-bit keys."""
    pixels = image.reshape(-1, 3).astype(np.int32)
    keys = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    unique, counts = np.unique(keys, return_counts=True)
    colours = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=1).astype(np.float64)
    return colours, counts.astype(np.int64)


def weighted_mse(colours, counts, centres):
    """MSE per pixel of the nearest centre (exact for integer centres), summed and per channel."""
    squared = np.zeros(3)
    for start in range(0, len(colours), CHUNK):
        block = colours[start : start + CHUNK]
        distances = (block * block).sum(1)[:, None] - 2 * block @ centres.T + (centres * centres).sum(1)
        diff = block - centres[distances.argmin(axis=1)]
        squared += counts[start : start + CHUNK] @ (diff * diff)
    per_channel = squared / counts.sum()
    return {"sum": float(per_channel.sum()), "mean": float(per_channel.mean()), "rgb": per_channel.tolist()}


def converged_kmeans(colours, counts, n_colors, n_init):
    """Best of n_init Lloyd runs to convergence: (centres, per-start records)."""
    from sklearn.cluster import KMeans

    best, starts = None, []
    for seed in range(n_init):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a ConvergenceWarning would make the reference invalid
            model = KMeans(
                n_colors, init="k-means++", n_init=1, tol=0, max_iter=MAX_ITER, algorithm="lloyd", random_state=seed
            ).fit(colours, sample_weight=counts)
        mse = model.inertia_ / counts.sum()
        starts.append(
            {
                "seed": seed,
                "mse_sum": round(mse, 6),
                "n_iter": int(model.n_iter_),
                "converged": bool(model.n_iter_ < MAX_ITER),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(f"    seed {seed}: MSE {mse:.4f} after {model.n_iter_} iterations, {starts[-1]['seconds']} s", flush=True)
        if best is None or mse < best[0]:
            best = (mse, model.cluster_centers_)
    return best[1], starts


def reference(colours, counts, n_colors, n_init):
    centres, starts = converged_kmeans(colours, counts, n_colors, n_init)
    palette = np.clip(np.rint(centres), 0, 255)
    best = min(starts, key=lambda s: s["mse_sum"])
    return {
        "n_init": n_init,
        "best_seed": best["seed"],
        "all_converged": all(s["converged"] for s in starts),
        "mse": weighted_mse(colours, counts, centres),
        "mse_rounded": weighted_mse(colours, counts, palette),
        "palette_rounded": bytes(palette.astype(np.uint8).ravel()).hex(),
        "starts": starts,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", type=Path, help="photos or folders (default: see above)")
    parser.add_argument("-k", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--n-init", type=int, default=8, help="k-means++ starts (seeds 0..n-1)")
    parser.add_argument("--out", type=Path, default=REFERENCE_PATH)
    parser.add_argument("--force", action="store_true", help="recompute entries already in the file")
    args = parser.parse_args()
    references = load_references(args.out)
    import sklearn

    references["about"] = (
        "Exact k-means per photo and k: scikit-learn KMeans(algorithm='lloyd', init='k-means++', tol=0, "
        f"max_iter={MAX_ITER}) on the photo's distinct colours weighted by pixel count (float64), best of "
        "n_init starts (random_state 0..n_init-1). mse: float centres; mse_rounded: centres rounded to uint8, "
        "colours re-assigned exactly. sum: over R, G, B per pixel; mean: per channel; rgb: each channel. "
        "Made by bench/exact_reference.py."
    )
    references["sklearn_version"] = sklearn.__version__
    for path in photos_from(args.photos):
        image = read_rgb(path)
        sha256 = pixels_sha256(image)
        colours, counts = colour_histogram(image)
        entry = references["photos"].setdefault(path.name, {}).setdefault(sha256, {"k": {}})
        entry.update(height=image.shape[0], width=image.shape[1], n_distinct_colours=len(colours))
        print(f"{path.name}: {image.shape[1]}x{image.shape[0]}, {len(colours)} distinct colours", flush=True)
        for n_colors in args.k:
            done = entry["k"].get(str(n_colors))
            if done and done["n_init"] >= args.n_init and not args.force:
                print(f"  k={n_colors}: kept (best of {done['n_init']} starts)")
                continue
            print(f"  k={n_colors}, {args.n_init} starts", flush=True)
            start = time.perf_counter()
            entry["k"][str(n_colors)] = reference(colours, counts, n_colors, args.n_init)
            entry["k"][str(n_colors)]["seconds"] = round(time.perf_counter() - start, 1)
            result = entry["k"][str(n_colors)]
            print(f"  k={n_colors}: MSE {result['mse']['sum']:.4f}, rounded palette {result['mse_rounded']['sum']:.4f}")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(references, indent=1, sort_keys=True) + "\n")  # after each k: resumable


if __name__ == "__main__":
    main()
