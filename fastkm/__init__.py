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
    >>> fastkm.warmup()   # compile every kernel now (container images, CI)
"""

from ._limits import FastkmError

# The one place the version is written; pyproject.toml reads it from here.
__version__ = "0.1.0"

__all__ = [
    "CompileWarning",
    "FastkmError",
    "FramesResult",
    "KMeans",
    "QualityError",
    "QuantizeResult",
    "psnr_from_mse",
    "quantize",
    "quantize_frames",
    "shared_palette",
    "warmup",
    "__version__",
]


def __getattr__(name):
    # The API (numba and the kernels, most of a command's start-up) loads on first use,
    # so that `fastkm --help` and tools that only import the package start quickly.
    if name in __all__:
        from . import api

        return getattr(api, name)
    if name == "io":  # image files: fastkm.io.read_image without importing fastkm.io first
        # import_module, not "from . import io": that asks this package for "io" first,
        # which lands here again, without end.
        import importlib

        return importlib.import_module(".io", __name__)
    raise AttributeError(f"module 'fastkm' has no attribute {name!r}")
