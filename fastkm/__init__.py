"""fastkm: fast k-means colour quantization with numba kernels.

    >>> import fastkm
    >>> result = fastkm.quantize(image, n_colors=16)   # image: (H, W, 3) uint8
    >>> result.palette, result.labels, result.image, result.psnr
"""

from importlib.metadata import PackageNotFoundError, version

from .api import FastkmError, KMeans, QuantizeResult, psnr_from_mse, quantize

try:
    __version__ = version("fastkm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["FastkmError", "KMeans", "QuantizeResult", "psnr_from_mse", "quantize", "__version__"]
