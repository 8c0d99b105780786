"""Premultiplied or straight alpha: which clustering of translucent pixels looks better?

fastkm clusters the colours of images with alpha premultiplied (each colour channel
times alpha / 255) with alpha as a 4th channel.  The alternative is straight RGBA as
four plain channels.  This script fits both on photos given soft alpha masks and
measures what a viewer sees: the mean squared error of the image composited over a
black and over a white background (mean of the two), per channel.

    python bench/alpha.py [-k 16 64] [--out bench/results/alpha.md]
"""

import argparse
from pathlib import Path
from unittest import mock

import numpy as np

import fastkm
from fastkm import _kmeans, _spaces
from fastkm.io import read_image

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ["kodim23.png", "kodim03.png"]


def masks(height, width):
    """Soft alpha masks (H, W) uint8: a vignette that fades out and a diagonal ramp."""
    yy, xx = np.mgrid[:height, :width]
    radius = np.hypot(yy - height / 2, xx - width / 2) / (0.35 * min(height, width))
    vignette = np.clip(255 * (1.5 - radius), 0, 255).astype(np.uint8)
    ramp = np.clip(255 * (xx / width + yy / height - 0.3), 0, 255).astype(np.uint8)
    return {"vignette": vignette, "ramp": ramp}


def composited_mse(rgba, quantized):
    """Mean over black and white backgrounds of the per-channel MSE of the composites."""
    def over(image, background):
        a = image[..., 3:].astype(np.float64) / 255.0
        return image[..., :3] * a + background * (1.0 - a)

    return float(np.mean([np.mean((over(rgba, b) - over(quantized, b)) ** 2) for b in (0.0, 255.0)]))


def straight(rgba, n_colors):
    """Quantize with alpha as a plain 4th channel (no premultiplication)."""
    with mock.patch.object(_spaces, "premultiply", lambda p: p), mock.patch.object(
        _spaces, "unpremultiply", _kmeans.round_palette
    ):
        return fastkm.quantize(rgba, n_colors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "alpha.md")
    args = parser.parse_args()
    rows = ["| photo | mask | k | premultiplied | straight | straight / premultiplied |", "|---|---|---|---|---|---|"]
    for name in PHOTOS:
        image = read_image(ROOT / "sample_images" / name)
        for mask_name, alpha in masks(*image.shape[:2]).items():
            rgba = np.dstack([image, alpha])
            for k in args.k:
                premultiplied = composited_mse(rgba, fastkm.quantize(rgba, k).image)
                plain = composited_mse(rgba, straight(rgba, k).image)
                rows.append(f"| {name} | {mask_name} | {k} | {premultiplied:.2f} | {plain:.2f} | {plain / premultiplied:.3f} |")
                print(rows[-1], flush=True)
    text = "# Alpha: premultiplied against straight clustering\n\n" + (
        "Composited MSE per channel (mean over black and white backgrounds; lower is better), "
        "`python bench/alpha.py`.\n\n"
    ) + "\n".join(rows) + "\n"
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
