"""The README's pictures of dithering, OKLab and alpha, made by fastkm itself.

    python bench/readme_figures.py     # writes bench/figures/{dither,oklab,alpha}.png
"""

from pathlib import Path

import numpy as np

import fastkm
from fastkm.figure import side_by_side
from fastkm.io import read_image, write_image

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "bench" / "figures"


def zoomed(image, factor=2):
    """Nearest-neighbour enlargement, so single dithered pixels stay visible."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def caption(label, result):
    # The figure's font has no Greek letters: "dE" for ΔE.
    delta_e = f", dE {result.delta_e:.4f}" if result.delta_e is not None else ""
    return f"{label}: PSNR {result.psnr:.2f} dB{delta_e}"


def main():
    parrots = read_image(ROOT / "sample_images" / "kodim23.png")
    crop = np.ascontiguousarray(parrots[40:300, 300:700])  # the two heads: gradients and saturated colours

    plain = fastkm.quantize(crop, 8)
    dithered = fastkm.quantize(crop, 8, dither=True)
    figure = side_by_side(
        [zoomed(crop), zoomed(plain.image), zoomed(dithered.image)],
        ["original", caption("k = 8", plain), caption("k = 8, --dither", dithered)],
    )
    write_image(FIGURES / "dither.png", figure)

    rgb = fastkm.quantize(crop, 12)
    lab = fastkm.quantize(crop, 12, space="oklab")
    figure = side_by_side(
        [zoomed(crop), zoomed(rgb.image), zoomed(lab.image)],
        ["original", caption("k = 12, rgb", rgb), caption("k = 12, --space oklab", lab)],
    )
    write_image(FIGURES / "oklab.png", figure)

    height, width = crop.shape[:2]
    yy, xx = np.mgrid[:height, :width]
    radius = np.hypot(yy - height / 2, xx - width / 2) / (0.4 * min(height, width))
    alpha = np.clip(255 * (1.6 - radius), 0, 255).astype(np.uint8)
    cutout = np.dstack([crop, alpha])
    result = fastkm.quantize(cutout, 16)
    figure = side_by_side(
        [zoomed(cutout), zoomed(result.image)], ["RGBA original, soft edge", caption("k = 16 (entry 0 transparent)", result)]
    )
    write_image(FIGURES / "alpha.png", figure)
    print(f"wrote {FIGURES}/dither.png, oklab.png, alpha.png")


if __name__ == "__main__":
    main()
