"""What the public API accepts: its limits, defaults and the error it raises.

Kept apart from ``api`` (which loads numba and the kernels) so that the command line
can build its options and help without them.
"""

from typing import Literal

# Pixels in the random sample that seeds and pre-fits the palette before the refinement
# on the full colour histogram (see bench/README.md for the measurement behind it).
DEFAULT_SAMPLE_SIZE = 1 << 18
MAX_COLORS = 65536
# How quantize weighs pixels in the fit (see quantize).
Weighting = Literal["perceptual", "none"]
DEFAULT_WEIGHTING: Weighting = "none"


class FastkmError(ValueError):
    """A problem with the caller's input; the message says what and how to fix it."""


class QualityError(FastkmError):
    """``min_psnr`` cannot be reached with at most ``n_colors`` colours."""

    def __init__(self, message, psnr, n_colors):
        super().__init__(message)
        self.psnr = psnr
        self.n_colors = n_colors
