"""fastkm: fast k-means colour quantization with numba kernels.

    >>> import fastkm
    >>> result = fastkm.quantize(image, n_colors=16)   # image: (H, W, 3) uint8
    >>> result.palette, result.labels, result.image, result.psnr
    >>> fastkm.quantize(image, 16, dither=True, space="oklab")  # smoother, perceptual
    >>> fastkm.quantize(image, 256, min_psnr=40)   # the fewest colours reaching 40 dB
    >>> palette = fastkm.shared_palette(frames, 64)  # one palette for many images
    >>> animation = fastkm.io.read_animation("in.gif")   # every frame, durations, loop
    >>> result = fastkm.quantize_frames(animation.frames, 64, dither=True)
    >>> fastkm.io.write_animation("out.gif", None, animation.durations, animation.loop,
    ...                           palettes=result.palettes, labels=result.labels)
"""

from .api import (
    FastkmError,
    FramesResult,
    KMeans,
    QualityError,
    QuantizeResult,
    psnr_from_mse,
    quantize,
    quantize_frames,
    shared_palette,
)

# The one place the version is written; pyproject.toml reads it from here.
__version__ = "0.1.0"

__all__ = [
    "FastkmError",
    "FramesResult",
    "KMeans",
    "QualityError",
    "QuantizeResult",
    "psnr_from_mse",
    "quantize",
    "quantize_frames",
    "shared_palette",
    "__version__",
]
