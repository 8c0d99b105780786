"""Public Python API: ``quantize`` and the scikit-learn style ``KMeans`` estimator."""

import functools
import inspect
import math
import os
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

import numpy as np
import numpy.typing as npt

from . import _compile_ahead, _kernels, _kmeans, _pipeline, _spaces
from ._limits import (  # noqa: F401 (public names of this module)
    DEFAULT_SAMPLE_SIZE, DEFAULT_WEIGHTING, MAX_COLORS, FastkmError, QualityError, Weighting,
)

# k-means++ starts on the sample: None picks them by palette size (_kmeans.default_n_init).
DEFAULT_N_INIT = None
# KMeans clusters colours: points of up to 4 channels (grey, grey + alpha, RGB, RGBA).
# Wider uint8 data is refused, since an (H, W) grey image would otherwise be taken
# as H points of W features without a word.
MAX_FEATURES = 4
# From this many points on, KMeans labels its training points through a colour table.
TABLE_REMAP_MIN_POINTS = 1 << 20


if TYPE_CHECKING:
    import PIL.Image

# What quantize and KMeans take: NumPy arrays (or anything np.asarray takes) and Pillow
# images; see quantize's docstring for the shapes and dtypes.
ImageLike = Union[npt.ArrayLike, "PIL.Image.Image"]
Space = Literal["rgb", "oklab", "auto"]


class CompileWarning(UserWarning):
    """fastkm is compiling kernels that this kind of call runs for the first time.

    Raised once per call that compiles, before the compile, which takes seconds; the
    compiled kernels are cached on disk, so later processes load them.  ``warmup()``
    compiles every kind ahead of time.  Silence it with
    ``warnings.simplefilter("ignore", fastkm.CompileWarning)``.
    """


COMPILING = (
    "compiling fastkm's kernels for this kind of input (first use only, a few seconds; cached on disk for later "
    "runs; fastkm.warmup() or `fastkm warmup` compiles every kind ahead of time)"
)
# Each compile is a distinct event (numba compiles a path once per process, then loads
# it from disk): show every one, not only the first per line of the caller's code.
warnings.filterwarnings("always", category=CompileWarning, append=True)


def _warn_compiling():
    # Point the warning at the caller's line: the first frame outside fastkm and numba.
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in ("fastkm", "numba", "contextlib"):
        frame, level = frame.f_back, level + 1
    warnings.warn(COMPILING, CompileWarning, stacklevel=level)


def _announces_compiles(function):
    """Wrap a public function so that a compile within it warns first (CompileWarning)."""

    @functools.wraps(function)
    def announcing(*args, **kwargs):
        with _kernels.compile_notices(_warn_compiling):
            return function(*args, **kwargs)

    return announcing


def _check_n_colors(n_colors, name="n_colors"):
    if isinstance(n_colors, bool) or not isinstance(n_colors, (int, np.integer)):
        raise FastkmError(f"{name}={n_colors!r} must be an integer between 1 and {MAX_COLORS}")
    if not 1 <= n_colors <= MAX_COLORS:
        raise FastkmError(f"{name}={n_colors} must be between 1 and {MAX_COLORS}")
    return int(n_colors)


def _check_positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise FastkmError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _check_tol(tol):
    if not isinstance(tol, (int, float, np.floating)) or not math.isfinite(tol) or tol < 0:
        raise FastkmError(f"tol={tol!r} must be a finite number >= 0")
    return float(tol)


def _check_uint8(dtype, what, convert="np.asarray(x, dtype=np.uint8)"):
    if dtype != np.uint8:
        raise FastkmError(
            f"{what} has dtype {dtype}, expected uint8; convert 0..255 data with {convert}, "
            "floats in [0, 1] with (x * 255).round().astype(np.uint8), other ranges scaled to 0..255 first"
        )


def _is_pillow_image(value):
    # Checked by name, so that fastkm never imports Pillow for NumPy input.
    return any(cls.__module__ == "PIL.Image" and cls.__name__ == "Image" for cls in type(value).__mro__)


def _refuse_file_name(value, what):
    if isinstance(value, (bytes, bytearray)) and (len(value) > 4096 or b"\0" in value):
        # Not a name: the bytes of an encoded file, or raw pixel bytes.
        raise FastkmError(
            f"{what} is {len(value):,} bytes, expected its pixels: pass fastkm.io.read_image(data) for the bytes "
            f"of an image file, or np.frombuffer(data, np.uint8).reshape(height, width, channels) for raw pixels"
        )
    if isinstance(value, (str, bytes, os.PathLike)):
        name = os.fsdecode(value)
        raise FastkmError(
            f"{what} is a file name ({name!r}), expected its pixels: "
            f"pass fastkm.io.read_image({name!r}), which decodes the file"
        )


def _as_array(value, what):
    """np.asarray(value), with a one-line FastkmError for what makes no array (a ragged list)."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        reason = str(error).split(". ")[0].splitlines()[0]
        raise FastkmError(f"{what} cannot be made an array ({reason}); pass rows of equal length, or an array") from None


def _integers_as_uint8(array, what):
    """uint8 from an integer or bool array whose values all lie in 0..255 (any other
    integer data is refused: a 16-bit image must be scaled, not cut)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype == np.uint16:
        raise FastkmError(
            f"{what} has dtype uint16, expected uint8: scale 16-bit data to 8 bits with "
            "((x.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8) (read_image does this for files)"
        )
    if np.issubdtype(array.dtype, np.integer):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if 0 <= low and high <= 255:
            return array.astype(np.uint8)
        raise FastkmError(f"{what} has dtype {array.dtype} with values from {low} to {high}, expected uint8 (0..255)")
    return None


def _as_uint8(array, what):
    """A uint8 array from uint8 data or integers in 0..255; anything else refused."""
    _refuse_file_name(array, what)
    array = _as_array(array, what)
    converted = _integers_as_uint8(array, what)
    if converted is None:
        _check_uint8(array.dtype, what)
    return converted


def _pillow_pixels(image):
    # fastkm.io (and with it Pillow and imageio) loads only for input that needs it.
    from .io.read import ImageReadError, from_pillow

    try:
        return from_pillow(image)
    except ImageReadError as error:
        raise FastkmError(str(error)) from None


def _floats_as_uint8(array):
    from .io.read import ImageReadError, float_to_uint8

    try:
        return float_to_uint8(array, "image")
    except ImageReadError as error:
        raise FastkmError(str(error)) from None


def _image_as_uint8(image):
    """An image's pixels as a uint8 array.

    Pillow images are converted as read_image converts files (palette and CMYK to RGB,
    transparency kept, 16-bit to 8-bit); floats in [0, 1] are scaled to 0..255;
    integers in 0..255 are taken as they are.  File names and other data are refused
    with a message that says what to pass.
    """
    _refuse_file_name(image, "image")
    if _is_pillow_image(image):
        return _pillow_pixels(image)
    array = _as_array(image, "image")
    if np.issubdtype(array.dtype, np.floating):
        return _floats_as_uint8(array)
    return _as_uint8(array, "image")


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise FastkmError(f"seed={seed!r} must be a non-negative integer (or None for a fresh random seed)")
    return seed


def _check_image_shape(shape, *, alpha=False):
    """Accept (H, W) grey and (H, W, 1 or 3) images with at least one pixel, and with
    ``alpha`` also (H, W, 2) grey + alpha and (H, W, 4) RGBA."""
    channels = (1, 2, 3, 4) if alpha else (1, 3)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in channels):
        expected = (
            "(H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA"
            if alpha
            else "(H, W) grey or (H, W, 3) RGB; drop an alpha channel with image[..., :3]"
        )
        raise FastkmError(f"image has shape {shape}, expected {expected}")
    if shape[0] == 0 or shape[1] == 0:
        raise FastkmError(f"image has shape {shape}: it holds no pixels")


def _image_pixels(image, pixel_lists=True):
    """Validate an image and view it as pixels (n, C) uint8, with its shape.

    C is 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); alpha is always last.  The
    shape is (H, W) for an image, (n,) for a list of pixels (n, 3) or (n, 4) (with
    ``pixel_lists``; else such an array is a grey image).
    """
    image = _image_as_uint8(image)
    if pixel_lists and image.ndim == 2 and image.shape[1] in (3, 4) and image.shape[0] > 0:
        # A list of RGB or RGBA pixels (image.reshape(-1, 3)), not a grey image 3 or 4
        # pixels wide: pass that as (H, W, 1).
        return np.ascontiguousarray(image), (image.shape[0],)
    _check_image_shape(image.shape, alpha=True)
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, n_channels = image.shape
    pixels = np.ascontiguousarray(image).reshape(height * width, n_channels)
    return pixels, (height, width)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error per channel on 0..255 data (inf for 0)."""
    if not mse >= 0:
        raise FastkmError(f"mse={mse!r} must be a number >= 0")
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@dataclass
class QuantizeResult:
    """The outcome of ``quantize``.

    palette  (m, C) uint8, C = the image's channels (alpha last, straight, not
             premultiplied); m <= n_colors, and m = the number of distinct colours when
             the image has no more than n_colors.  With transparent pixels, entry 0 is
             fully transparent (0, 0, 0, 0) and the others follow by rising alpha.
    labels   (H, W) uint8 when m <= 256, else uint16: palette index of every pixel
             ((n,) for a list of n pixels)
    mse      mean squared error per channel against the input (float); with alpha, of
             the premultiplied channels (the error seen when composited)
    psnr     10 log10(255^2 / mse) in dB (inf when exact)
    counts   (m,) int64 pixels mapped to each entry, shares (m,) float64 the same as
             fractions summing to 1; computed on first access
    to_pil() the result as a Pillow image in mode P (palette, transparency)
    delta_e  mean OKLab ΔE (Euclidean OKLab distance, L in 0..1) between every pixel and
             its palette colour; None for images with alpha.  Computed on first access.
    n_distinct  number of distinct colours of the fitted pixels
    n_iter   Lloyd iterations run
    image    (H, W, C) uint8 = palette[labels] ((H, W) for grey input, (n, C) for a list
             of pixels), computed on access
    """

    palette: np.ndarray
    labels: np.ndarray
    mse: float
    psnr: float
    n_distinct: int
    n_iter: int
    grey: bool = field(default=False, repr=False)
    _delta_e: Any = field(default=None, repr=False)
    _counts: Any = field(default=None, repr=False)

    @property
    def n_colors(self) -> int:
        return self.palette.shape[0]

    @property
    def counts(self) -> np.ndarray:
        """Pixels (m,) int64 mapped to each palette entry; they sum to the pixel count."""
        if callable(self._counts):
            self._counts = self._counts()
        elif self._counts is None:
            self._counts = np.bincount(self.labels.ravel(), minlength=self.n_colors).astype(np.int64)
        return self._counts

    @property
    def shares(self) -> np.ndarray:
        """Share (m,) float64 of the pixels mapped to each palette entry; they sum to 1."""
        counts = self.counts
        return counts / max(int(counts.sum()), 1)

    def to_pil(self) -> "PIL.Image.Image":
        """The result as a Pillow image in mode P: the palette (an RGBA palette, which a
        PNG stores as its tRNS chunk, when there is alpha) and one index per pixel.

        Grey palettes become grey RGB entries.  Needs an image result (labels (H, W))
        of at most 256 colours; else raises FastkmError.
        """
        if self.labels.ndim != 2:
            raise FastkmError(
                f"to_pil needs an image, and this result holds a list of {self.labels.shape[0]} pixels; "
                "quantize the (H, W, C) image instead"
            )
        if self.n_colors > 256:
            raise FastkmError(
                f"a Pillow palette image holds at most 256 colours and this result has {self.n_colors}; "
                "use PIL.Image.fromarray(result.image)"
            )
        from .io.write import palette_image

        return palette_image(self.palette, self.labels)

    @property
    def image(self) -> np.ndarray:
        quantized = self.palette[self.labels]
        return quantized[:, :, 0] if self.grey else quantized

    @property
    def delta_e(self) -> Optional[float]:
        if callable(self._delta_e):
            with _kernels.compile_notices(_warn_compiling):
                self._delta_e = self._delta_e()
        return self._delta_e


class NotFittedError(FastkmError, AttributeError):
    """A KMeans method that needs ``fit`` was called first (a ValueError and an
    AttributeError, as scikit-learn's NotFittedError)."""


@functools.lru_cache(maxsize=None)
def _not_fitted_class():
    """NotFittedError, also a subclass of scikit-learn's where that is installed (it is
    imported only here, when the error is raised)."""
    try:
        from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    except ImportError:
        return NotFittedError
    return type("NotFittedError", (NotFittedError, SklearnNotFittedError), {"__module__": __name__})


def _not_fitted_error(message):
    return _not_fitted_class()(message)


def _check_dither(dither):
    if isinstance(dither, bool):
        return 1.0 if dither else 0.0
    if not isinstance(dither, (int, float, np.floating)) or not 0.0 <= dither <= 1.0:
        raise FastkmError(f"dither={dither!r} must be a strength between 0 and 1 (or True / False)")
    return float(dither)


def _check_space(space, alpha):
    """The space a fit runs in: space itself, or for "auto" OKLab unless the image has alpha."""
    if space == "auto":
        return "rgb" if alpha else "oklab"
    if space not in _spaces.SPACES:
        raise FastkmError(f"space={space!r} must be one of {', '.join(map(repr, ('auto', *_spaces.SPACES)))}")
    if space == "oklab" and alpha:
        raise FastkmError("space='oklab' does not support images with transparency yet; use space='rgb'")
    return space


WEIGHTINGS = ("perceptual", "none")


def _check_weighting(weighting):
    if weighting not in WEIGHTINGS:
        raise FastkmError(f"weighting={weighting!r} must be one of {', '.join(map(repr, WEIGHTINGS))}")
    return weighting


def _check_palette(palette, n_channels):
    palette = _as_uint8(palette, "palette")
    if palette.ndim != 2 or palette.shape[1] != n_channels or not 1 <= palette.shape[0] <= MAX_COLORS:
        raise FastkmError(
            f"palette has shape {palette.shape}, expected (m, {n_channels}) with 1 <= m <= {MAX_COLORS} "
            "(one row per colour, as many channels as the image)"
        )
    return np.ascontiguousarray(palette)


def _sized_for(prepared, palette):
    """prepared as a fit of the given palette's size codes it: its distinct colours count,
    so a palette padded with copies maps the same (_pipeline.for_palette_size)."""
    return _pipeline.for_palette_size(prepared, np.unique(palette, axis=0).shape[0])


def _smallest_fit(prepared, n_max, min_psnr, n_values, rng, fit_options):
    """(prepared, fit): the fit with the fewest colours (at most n_max) whose PSNR reaches
    min_psnr, and prepared as that fit's size codes it (_pipeline.for_palette_size).

    Every try reuses the image's histogram and samples.  The size is found by bisection
    with quick fits (one k-means++ start, no random swaps: about a tenth of the cost);
    only the size found gets the full fit, which is kept unless the quick one is better.
    PSNR grows with the number of colours in practice, not strictly: the answer is the
    smallest size the bisection met that reaches the target.
    """
    quick_options = dict(fit_options, n_init=1, n_swaps=0)

    def psnr_of(fitted):
        return psnr_from_mse(fitted.squared_error / n_values)

    coded = {}  # the preparation coded for each chroma weight met

    def attempt(n_colors, options):
        # Each size is fitted with its own chroma weight, as a fit of that size would be.
        chroma = _spaces.chroma_weight(n_colors)
        if chroma not in coded:
            coded[chroma] = _pipeline.for_palette_size(prepared, n_colors)
        sized = coded[chroma]
        fitted = _pipeline.fit(sized, n_colors, rng, **options)
        return sized, fitted, psnr_of(fitted)

    # Bisection for the smallest size whose quick fit reaches the target, in [low, high].
    low, high = 2 if prepared.reserves_transparent else 1, n_max
    quick = None
    while low <= high:
        middle = (low + high) // 2
        sized, fitted, psnr = attempt(middle, quick_options)
        if psnr >= min_psnr:
            quick, high = (sized, fitted), min(middle, fitted.palette.shape[0]) - 1
        else:
            low = middle + 1
    # The full fit at the size found (or at n_max, which a quick fit could not make reach).
    sized, full, psnr = attempt(quick[1].palette.shape[0] if quick is not None else n_max, fit_options)
    if quick is None and psnr < min_psnr:
        raise QualityError(
            f"{n_max} colours reach only {psnr:.2f} dB, below the target of {min_psnr:g} dB; "
            "allow more colours or lower the target",
            psnr,
            n_max,
        )
    if quick is not None and quick[1].squared_error < full.squared_error and quick[0].chroma == sized.chroma:
        return quick
    return sized, full


@_announces_compiles
def quantize(
    image: ImageLike,
    n_colors: int = 16,
    *,
    palette: Optional[npt.ArrayLike] = None,
    seed: Optional[int] = 0,
    dither: Union[float, bool] = 0.0,
    space: Space = "rgb",
    weighting: Weighting = DEFAULT_WEIGHTING,
    min_psnr: Optional[float] = None,
    sample_size: Optional[int] = DEFAULT_SAMPLE_SIZE,
    n_init: Optional[int] = DEFAULT_N_INIT,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> QuantizeResult:
    """Reduce an image to ``n_colors`` colours with k-means.

    image       (H, W) grey, (H, W, 1) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or
                (H, W, 4) RGBA; or a list of pixels (n, 3) RGB or (n, 4) RGBA (labels
                are then (n,)); or a Pillow image (converted as read_image converts
                files: palette, CMYK and 16-bit modes to RGB or grey, transparency
                kept).  uint8, integers in 0..255, or floats in [0, 1] (scaled to
                0..255; other float ranges are refused).  With alpha, colours are
                clustered premultiplied (what shows when composited), and fully
                transparent pixels share one transparent entry (which counts towards
                n_colors).  A file name is refused: read it with fastkm.io.read_image.
                A grey image 3 or 4 pixels wide must come as (H, W, 1), since (n, 3)
                and (n, 4) are lists of pixels.
    n_colors    palette size, 1..65536 (an image with fewer distinct colours gets
                exactly its own colours); with ``min_psnr``, the most colours allowed
    palette     optional (m, C) uint8 palette to map the image onto instead of fitting
                one (C = the image's channels; n_colors is then ignored)
    seed        seed of NumPy's random generator: the same seed gives the same result,
                for any number of threads
    dither      Floyd-Steinberg error diffusion strength, 0 (off) to 1 (full), or True
                (images only: a list of pixels has no neighbours)
    space       "rgb": k-means on the stored sRGB values (minimises MSE); "oklab":
                k-means on OKLab, a perceptual space (minimises ΔE; no alpha);
                "auto": OKLab for images without alpha, else RGB (the command line's
                default: its files look better per byte, by SSIMULACRA2 and FLIP)
    weighting   "perceptual": every pixel weighs by how visible its error is (fully in
                flat areas and gradients, where banding shows; about a third in busy
                texture, which hides error), and no colour weighs more than a tenth of
                the image; "none": plain k-means, every pixel weighs 1 (minimises MSE)
    min_psnr    target PSNR in dB: use the fewest colours, up to n_colors, that reach it
                (before dithering); raises QualityError when n_colors cannot
    sample_size pixels sampled to seed and pre-fit the palette before the exact
                refinement on all pixels (None: no sampling stage)
    n_init      k-means++ starts tried on the sample (or on small images); the best
                one is refined.  None: 4 up to 64 colours, 2 up to 128, 1 above
    max_iter    Lloyd iterations per stage (above 128 colours at most 15 on the sample
                and 20 on all pixels, where later steps gain under 0.2 % MSE); tol:
                centre-shift tolerance relative to the pixels' variance
    returns     QuantizeResult (palette, labels, image, mse, psnr, delta_e)
    """
    pixels, shape = _image_pixels(image)
    n_channels = pixels.shape[1]
    alpha = n_channels in (2, 4)
    n_colors = _check_n_colors(n_colors)
    seed = _check_seed(seed)
    sample_size = _check_positive_int(sample_size, "sample_size", allow_none=True)
    n_init = _check_positive_int(n_init, "n_init", allow_none=True)
    max_iter = _check_positive_int(max_iter, "max_iter")
    tol = _check_tol(tol)
    dither = _check_dither(dither)
    if dither > 0 and len(shape) == 1:
        raise FastkmError(
            f"dither needs the pixels' places in the image: pass the (H, W, {n_channels}) image, not {pixels.shape} pixels"
        )
    space = _check_space(space, alpha)
    weighting = _check_weighting(weighting)
    if weighting == "perceptual" and len(shape) == 1:
        raise FastkmError(
            "weighting='perceptual' needs the pixels' places in the image: pass the "
            f"(H, W, {n_channels}) image, not {pixels.shape} pixels"
        )
    if palette is not None:
        palette = _check_palette(palette, n_channels)
        if min_psnr is not None:
            raise FastkmError("min_psnr chooses the number of colours of a fitted palette; it cannot go with palette=")
    if min_psnr is not None and (
        isinstance(min_psnr, bool) or not isinstance(min_psnr, (int, float, np.floating)) or not min_psnr > 0
    ):
        raise FastkmError(f"min_psnr={min_psnr!r} must be a positive number of dB")
    rng = np.random.default_rng(seed)
    with _kmeans.threads_for(pixels.shape[0], _kmeans.SERIAL_PHOTO_PIXELS):
        return _quantized(
            pixels, shape, n_channels, alpha, n_colors, rng, palette=palette, dither=dither, space=space,
            weighting=weighting, min_psnr=min_psnr, sample_size=sample_size,
            fit_options={"n_init": n_init, "max_iter": max_iter, "tol": tol},
        )


def _quantized(pixels, shape, n_channels, alpha, n_colors, rng, *, palette, dither, space, weighting, min_psnr,
               sample_size, fit_options):
    """quantize's work on validated pixels (n, C) uint8 of an image of ``shape``."""
    opaque_alpha = alpha and palette is None and bool(np.all(pixels[:, -1] == 255))
    if opaque_alpha:
        # Every pixel opaque: fit the colours alone, as fast as an image without alpha.
        pixels, alpha = pixels[:, :-1], False
    if palette is None:
        # On a first run, the fit's later kernels compile in a second process meanwhile.
        _compile_ahead.start(4 if pixels.shape[1] == 4 else 3, np.uint8 if n_colors <= 256 else np.uint16, dither == 0)
    prepared = _pipeline.prepare(
        pixels, alpha=alpha, space=space, n_colors=n_colors, rng=rng, sample_size=sample_size,
        reserve_transparent=palette is None,
        width=shape[1] if weighting == "perceptual" and palette is None else None,
    )
    if prepared.reserves_transparent and n_colors < 2 and prepared.colours.shape[0] > 0:
        raise FastkmError("an image with transparent and visible pixels needs n_colors >= 2 (one is transparent)")
    if palette is not None:
        prepared = _sized_for(prepared, palette)
        fitted = _pipeline.map_onto(prepared, palette)
    elif min_psnr is not None:
        prepared, fitted = _smallest_fit(prepared, n_colors, float(min_psnr), pixels.size, rng, fit_options)
    else:
        fitted = _pipeline.fit(prepared, n_colors, rng, **fit_options)

    labels_dtype = np.uint8 if fitted.palette.shape[0] <= 256 else np.uint16
    if dither > 0:
        labels, squared_error = _pipeline.dithered_labels(prepared, fitted, shape[1], dither, labels_dtype)

        def delta_e():
            return _pipeline.mean_delta_e(prepared, fitted.palette, labels=labels)
    else:
        labels = _pipeline.pixel_labels(prepared, fitted, labels_dtype)
        squared_error = fitted.squared_error

        def delta_e():
            return _pipeline.mean_delta_e(prepared, fitted.palette, result=fitted)
    # Undithered labels are the histogram's colours' labels: their counts come from the
    # histogram.  Dithered ones are tallied from the labels on first access.
    counts = None if dither > 0 else functools.partial(_pipeline.palette_counts, prepared, fitted)
    palette_out = fitted.palette
    if opaque_alpha:
        palette_out = np.concatenate([palette_out, np.full((palette_out.shape[0], 1), 255, np.uint8)], axis=1)
    mse = squared_error / (math.prod(shape) * n_channels)
    return QuantizeResult(
        palette=palette_out,
        labels=labels.reshape(shape),
        mse=mse,
        psnr=psnr_from_mse(mse),
        n_distinct=int(prepared.colours.shape[0]),
        n_iter=fitted.n_iter,
        grey=n_channels == 1,
        _delta_e=delta_e,
        _counts=counts,
    )


# Each image's histogram in a shared fit weighs this much in all: equal shares, as
# integers so the fit's sums stay exact.
SHARED_WEIGHT = 1 << 24
# Sampled pixels of several images histogrammed at once in a shared fit (16 MB of RGBA).
SHARED_BATCH_PIXELS = 1 << 22


@_announces_compiles
def shared_palette(
    images: Iterable[ImageLike],
    n_colors: int = 16,
    *,
    seed: Optional[int] = 0,
    space: Space = "rgb",
    sample_size: Optional[int] = DEFAULT_SAMPLE_SIZE,
    n_init: Optional[int] = DEFAULT_N_INIT,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> np.ndarray:
    """One palette fitted to several images at once (an image set, animation frames).

    images      an iterable of (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or
                (H, W, 4) RGBA uint8 images, read once (a generator may load files one
                at a time); sizes may differ
    n_colors, seed, space, sample_size, n_init, max_iter, tol: as for ``quantize``
    returns     palette (m, C) uint8: C counts 3 colour channels if any image is RGB
                (else 1), plus alpha (last, straight) if any pixel is not opaque.  With
                fully transparent pixels, entry 0 is transparent (0, 0, 0, 0), as in
                ``quantize``, and counts towards n_colors.

    Each image contributes a uniform random sample of up to ``sample_size`` of its
    visible (not fully transparent) pixels, and every image weighs the same in the fit,
    whatever its size; colours with alpha are fitted premultiplied.  Map each image onto
    the palette with ``quantize(image, palette=palette, space=space)`` (grey images onto
    an RGB palette as ``np.dstack([grey] * 3)``, opaque images onto a palette with alpha
    with an alpha channel of 255 added), or use ``quantize_frames``.
    """
    n_colors = _check_n_colors(n_colors)
    seed = _check_seed(seed)
    sample_size = _check_positive_int(sample_size, "sample_size", allow_none=True)
    fit_options = {
        "n_init": _check_positive_int(n_init, "n_init", allow_none=True),
        "max_iter": _check_positive_int(max_iter, "max_iter"),
        "tol": _check_tol(tol),
    }
    if space not in _spaces.SPACES:
        _check_space(space, alpha=False)
    rng = np.random.default_rng(seed)
    histograms = []  # (colours (u, C) premultiplied, weights (u,), has alpha)
    # Sampled pixels waiting to be histogrammed, by (pixels per image, channels, alpha):
    # images with as many pixels weigh the same per pixel, so one histogram serves many
    # (a histogram's 256**3 table costs more than a small frame's pixels).
    pending: dict = {}

    def histogram(key):
        n_per_image, _, alpha = key
        pixels = np.concatenate(pending.pop(key))
        if pixels.shape[1] <= _kmeans.MAX_PACKED_CHANNELS:
            colours, counts = _kmeans.distinct_colours(pixels)
        else:
            colours, _, counts = _pipeline._packed_unique(pixels)
        histograms.append((colours, np.rint(counts * (SHARED_WEIGHT / n_per_image)).astype(np.int64), alpha))

    any_colour = any_alpha = any_clear = False
    n_images = 0
    for image in images:
        n_images += 1
        pixels, _ = _image_pixels(image, pixel_lists=False)
        alpha = pixels.shape[1] in (2, 4)
        any_colour |= pixels.shape[1] >= 3
        if alpha:
            opacity = pixels[:, -1]
            if np.all(opacity == 255):
                pixels, alpha = pixels[:, :-1], False
            else:
                any_alpha = True
                visible = opacity > 0
                any_clear |= not visible.all()
                pixels = _spaces.premultiply(pixels[visible] if not visible.all() else pixels)
        if pixels.shape[0] == 0:
            continue  # fully transparent: nothing to fit
        if sample_size is not None and pixels.shape[0] > sample_size:
            pixels = _kernels.gather_rows(pixels, rng.integers(0, pixels.shape[0], size=sample_size))
        key = (pixels.shape[0], pixels.shape[1], alpha)
        pending.setdefault(key, []).append(pixels)
        if len(pending[key]) * key[0] >= SHARED_BATCH_PIXELS:
            histogram(key)
    for key in list(pending):
        histogram(key)
    if n_images == 0:
        raise FastkmError("shared_palette needs at least one image")
    space = _check_space(space, any_alpha)
    n_colour_channels = 3 if any_colour else 1

    def common_layout(colours, alpha):
        """Colours in the shared channel layout (grey repeated to RGB, alpha 255 added)."""
        colour = colours[:, :-1] if alpha else colours
        colour = np.repeat(colour, n_colour_channels // colour.shape[1], axis=1)
        if not any_alpha:
            return colour
        opacity = colours[:, -1:] if alpha else np.full((colours.shape[0], 1), 255, np.uint8)
        return np.concatenate([colour, opacity], axis=1)

    n_channels = n_colour_channels + any_alpha
    if histograms:
        colours = np.concatenate([common_layout(c, alpha) for c, _, alpha in histograms])
        weights = np.concatenate([w for _, w, _ in histograms])
    else:
        colours, weights = np.zeros((0, n_channels), np.uint8), np.zeros(0, np.int64)
    # Merge colours that several images hold, adding their weights.
    keys = colours.astype(np.uint32) @ (np.uint32(1) << (np.uint32(8) * np.arange(n_channels - 1, -1, -1, dtype=np.uint32)))
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=weights, minlength=first.size).astype(np.int64)
    colours = np.ascontiguousarray(colours[first])
    chroma = _spaces.chroma_weight(n_colors)
    points = _spaces.encode_oklab(colours, chroma=chroma) if space == "oklab" else colours
    stages = _kmeans.weighted_stages(points, weights, n_colors, rng, sample_size)
    # Any non-None ``visible`` reserves the transparent entry; the pixels themselves are
    # not needed to fit.
    reserved = np.zeros(0, dtype=bool) if any_clear else None
    if any_clear and n_colors < 2 and colours.shape[0] > 0:
        raise FastkmError("images with transparent and visible pixels need n_colors >= 2 (one is transparent)")
    prepared = _pipeline.Prepared(None, any_alpha, space, colours, weights, points, stages, reserved, None, chroma=chroma)
    return _pipeline.fit(prepared, n_colors, rng, **fit_options).palette


@dataclass
class FramesResult:
    """The outcome of ``quantize_frames``.

    palettes  list of (m, C) uint8 palettes: one shared by every frame, or one per frame
              (``per_frame``); C = the frames' channels, alpha last, straight; with
              transparent pixels, entry 0 is transparent
    labels    (n, H, W) uint8 when every palette has at most 256 entries, else uint16
    mse       mean squared error per channel over all frames (premultiplied with alpha)
    psnr      10 log10(255^2 / mse) in dB
    frames    (n, H, W, C) uint8, every frame's palette colours, computed on access
    """

    palettes: list
    labels: np.ndarray
    mse: float
    psnr: float
    grey: bool = field(default=False, repr=False)

    @property
    def n_frames(self):
        return self.labels.shape[0]

    @property
    def shared(self):
        """True when every frame uses the same palette."""
        return len(self.palettes) == 1

    @property
    def n_colors(self):
        """Entries of the largest palette."""
        return max(palette.shape[0] for palette in self.palettes)

    @property
    def frames(self):
        if self.shared:
            quantized = self.palettes[0][self.labels]
        else:
            quantized = np.stack([palette[labels] for palette, labels in zip(self.palettes, self.labels)])
        return quantized[..., 0] if self.grey else quantized


def _frame_stack(frames):
    """Frames as one (n, H, W, C) uint8 array; all frames must have one shape."""
    if isinstance(frames, (str, os.PathLike)):  # not a sequence of one-letter frames
        raise FastkmError(
            f"frames is a file name ({os.fspath(frames)!r}), expected its pixels: pass "
            f"fastkm.io.read_animation({os.fspath(frames)!r}).frames, which decodes every frame"
        )
    _refuse_file_name(frames, "frames")  # the bytes of a file
    if isinstance(frames, np.ndarray):
        _check_uint8(frames.dtype, "frames")
        if frames.ndim == 3:
            frames = frames[..., None]  # grey frames
        if frames.ndim != 4:
            raise FastkmError(f"frames have shape {frames.shape}, expected (n, H, W) grey or (n, H, W, C)")
        for frame in frames[:1]:
            _check_image_shape(frame.shape, alpha=True)
        stack = frames
    else:
        frames = [_as_uint8(frame, f"frame {i}") for i, frame in enumerate(frames)]
        for i, frame in enumerate(frames):
            _check_image_shape(frame.shape, alpha=True)
            if frame.shape != frames[0].shape:
                raise FastkmError(
                    f"frame {i} has shape {frame.shape}, frame 0 {frames[0].shape}: every frame of an animation "
                    "needs the same size and channels"
                )
        stack = np.stack([frame if frame.ndim == 3 else frame[..., None] for frame in frames]) if frames else None
    if stack is None or stack.shape[0] == 0:
        raise FastkmError("quantize_frames needs at least one frame")
    return np.ascontiguousarray(stack)


def quantize_frames(
    frames: Any,
    n_colors: int = 256,
    *,
    per_frame: bool = False,
    palette: Any = None,
    seed: Optional[int] = 0,
    dither: Union[bool, float] = 0.0,
    space: Space = "rgb",
    sample_size: Optional[int] = DEFAULT_SAMPLE_SIZE,
    n_init: Optional[int] = DEFAULT_N_INIT,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> "FramesResult":
    """Quantize the frames of an animation: one palette fitted over all frames (the
    default, so colours do not jump between frames), then every frame mapped onto it.

    frames      (n, H, W) grey or (n, H, W, C) uint8 with C = 2, 3 or 4 (alpha last), or
                a sequence of n such images of one shape
    n_colors    palette size, 1..65536 (GIF holds 256; fastkm.io.gif_palette_size says
                how many to ask for so that a GIF can leave unchanged pixels transparent)
    per_frame   fit a palette of its own to every frame instead
    palette     optional (m, C) uint8 palette to map every frame onto instead of fitting
    dither      Floyd-Steinberg strength 0..1 (or True).  With a shared palette, pixels
                equal to the same pixel of the previous frame keep its palette index and
                only the others are dithered, so a still background never flickers
    seed, space, sample_size, n_init, max_iter, tol: as for ``quantize``
    returns     FramesResult (palettes, labels (n, H, W), frames, mse, psnr)
    """
    stack = _frame_stack(frames)
    n_frames, height, width, n_channels = stack.shape
    dither = _check_dither(dither)
    options: dict[str, Any] = {"seed": seed, "space": space, "sample_size": sample_size, "n_init": n_init, "max_iter": max_iter,
               "tol": tol}
    if per_frame:
        if palette is not None:
            raise FastkmError("per_frame fits a palette to every frame; it cannot go with palette=")
        results = [quantize(frame, n_colors, dither=dither, **options) for frame in stack]
        palettes = [result.palette for result in results]
        squared_error = sum(result.mse for result in results) * height * width * n_channels
        dtype = np.uint8 if max(p.shape[0] for p in palettes) <= 256 else np.uint16
        labels = np.stack([result.labels.astype(dtype) for result in results])
    else:
        if palette is None:
            palette = shared_palette(stack, n_colors, **options)
        palette = _as_uint8(palette, "palette")
        if palette.ndim == 2 and palette.shape[1] == n_channels - 1 and n_channels in (2, 4):
            if not np.all(stack[..., -1] == 255):
                raise FastkmError(f"palette has {palette.shape[1]} channels, without the alpha these frames need")
            stack = stack[..., :-1]  # every frame opaque: fitted (or given) without alpha
        palette = _check_palette(palette, stack.shape[3])
        labels, squared_error = _map_frames(stack, palette, _check_space(space, stack.shape[3] in (2, 4)), dither)
        palettes = [palette]
    mse = squared_error / (n_frames * height * width * n_channels)
    return FramesResult(palettes, labels, mse, psnr_from_mse(mse), grey=n_channels == 1)


def _map_frames(stack, palette, space, dither):
    """Labels (n, H, W) of frames (n, H, W, C) mapped onto palette, and the summed squared
    error.  One histogram (and table) serves all frames; with dither, a pixel equal to
    the previous frame's keeps its label."""
    n_frames, height, width, n_channels = stack.shape
    labels_dtype = np.uint8 if palette.shape[0] <= 256 else np.uint16
    rng = np.random.default_rng(0)  # nothing is fitted: the stages' draws go unused
    prepared = _pipeline.prepare(stack.reshape(-1, n_channels), alpha=n_channels in (2, 4), space=space,
                                 n_colors=palette.shape[0], rng=rng, sample_size=None, reserve_transparent=False)
    prepared = _sized_for(prepared, palette)
    fitted = _pipeline.map_onto(prepared, palette)
    if dither > 0:
        labels = _pipeline.dithered_frame_labels(prepared, fitted, n_frames, width, dither, labels_dtype)
        squared_error = _pipeline.pixel_squared_error(prepared, fitted.palette, labels)
    else:
        labels = _pipeline.pixel_labels(prepared, fitted, labels_dtype)
        squared_error = fitted.squared_error
    return labels.reshape(n_frames, height, width), squared_error


class KMeans:
    """K-means on uint8 points, following scikit-learn's estimator conventions.

    Parameters are stored by ``__init__`` untouched; ``fit`` sets the fitted attributes
    (ending in ``_``):
      cluster_centers_ (n_clusters, d) float64
      labels_          (n,) int32, nearest centre of each training point
      inertia_         float, sum of (weighted) squared distances to the nearest centre
      n_iter_          int, Lloyd iterations run

    ``X`` is (n, d) uint8 with d <= 4 (integers in 0..255 are accepted too), or an
    image (H, W, C) uint8 or Pillow image, taken as (H*W, C) pixels.  A grey image
    (H, W) must be passed as X.reshape(-1, 1): wider X is refused.
    Without sample weights, identical points are merged (weighted by multiplicity) for
    d <= 3, which leaves the objective unchanged and makes photos far cheaper to fit.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Union[Literal["k-means++", "random"], npt.ArrayLike] = "k-means++",
        n_init: Union[int, Literal["auto"]] = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: Union[int, np.random.RandomState, np.random.Generator, None] = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> "KMeans":
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise FastkmError(f"invalid parameter {name!r} for KMeans; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"KMeans({params})"

    # scikit-learn's estimator protocol, written out so that scikit-learn stays optional:
    # it asks for these only once it is imported itself.
    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags

        tags = Tags(estimator_type="clusterer", target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=[]))
        tags.input_tags.positive_only = True  # uint8 points: 0..255
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "cluster_centers_")

    @staticmethod
    def _points(X):
        if hasattr(X, "tocsr") and hasattr(X, "nnz"):
            raise FastkmError("X is a sparse matrix: sparse input is not supported; pass X.toarray()")
        X = _pillow_pixels(X) if _is_pillow_image(X) else _as_uint8(X, "X")
        if X.ndim == 3:
            X = X.reshape(-1, X.shape[2])
        if X.ndim != 2:
            raise FastkmError(f"X has shape {X.shape}, expected (n_samples, n_features) or (H, W, C)")
        if X.shape[1] > MAX_FEATURES:
            # Most likely a grey image (H, W), whose rows would be taken as points.
            raise FastkmError(
                f"X has shape {X.shape}: {X.shape[1]} features per point, expected at most {MAX_FEATURES} "
                "(colour channels); a grey image (H, W) is X.reshape(-1, 1), an image (H, W, C) can be passed as "
                "it is; for other data use sklearn.cluster.KMeans"
            )
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise FastkmError(f"X has shape {X.shape}: it holds no data")
        return np.ascontiguousarray(X)

    def _check_fitted(self, X=None):
        if not hasattr(self, "cluster_centers_"):
            raise _not_fitted_error("this KMeans instance is not fitted yet; call fit(X) first")
        if X is not None and X.shape[1] != self.cluster_centers_.shape[1]:
            raise FastkmError(
                f"X has {X.shape[1]} features, but KMeans is expecting {self.cluster_centers_.shape[1]} features as input"
            )

    def _init_and_n_init(self, n_clusters, n_features):
        """(initial centres or None, number of starts), as scikit-learn reads init and
        n_init: 'auto' is 10 starts for init='random', else 1; an array is one start."""
        init = self.init
        if isinstance(init, str):
            if init not in ("k-means++", "random"):
                raise FastkmError(f"init={init!r} must be 'k-means++', 'random' or an array (n_clusters, n_features)")
            if isinstance(self.n_init, str) and self.n_init == "auto":
                return None, 10 if init == "random" else 1
            return None, _check_positive_int(self.n_init, "n_init")
        if not (isinstance(self.n_init, str) and self.n_init == "auto"):
            _check_positive_int(self.n_init, "n_init")
        centres = np.asarray(init, dtype=np.float64)
        if centres.shape != (n_clusters, n_features):
            raise FastkmError(f"init has shape {centres.shape}, expected {(n_clusters, n_features)}")
        if not np.all(np.isfinite(centres)):
            raise FastkmError("init holds NaN or infinite values")
        return centres, 1

    @_announces_compiles
    def fit(self, X: ImageLike, y: object = None, sample_weight: Optional[npt.ArrayLike] = None) -> "KMeans":
        """Fit on X (n, d) uint8 with optional non-negative sample_weight (n,)."""
        data = self._points(X)
        n_clusters = _check_n_colors(self.n_clusters, "n_clusters")
        max_iter = _check_positive_int(self.max_iter, "max_iter")
        tol = _check_tol(self.tol)
        n_points, n_features = data.shape
        init_centres, n_init = self._init_and_n_init(n_clusters, n_features)
        if n_points < n_clusters:
            raise FastkmError(f"n_samples={n_points} should be >= n_clusters={n_clusters}")
        if isinstance(self.random_state, np.random.RandomState):
            # scikit-learn style: draw our seed from the caller's legacy generator.
            rng = np.random.default_rng(self.random_state.randint(2**31))
        elif isinstance(self.random_state, np.random.Generator):
            rng = self.random_state
        else:
            if self.random_state is not None and (
                isinstance(self.random_state, bool) or not isinstance(self.random_state, (int, np.integer))
                or self.random_state < 0
            ):
                raise FastkmError(
                    f"random_state={self.random_state!r} must be None, a non-negative integer, "
                    "a numpy Generator or a RandomState"
                )
            rng = np.random.default_rng(self.random_state)

        if sample_weight is None:
            if n_features <= _kmeans.MAX_PACKED_CHANNELS:
                points, weights = _kmeans.distinct_colours(data)
                merged = True
            else:
                points, inverse, weights = np.unique(data, axis=0, return_inverse=True, return_counts=True)
                points, weights, inverse = np.ascontiguousarray(points), weights.astype(np.int64), inverse.ravel()
                merged = True
        else:
            weights = np.asarray(sample_weight, dtype=np.float64)
            if weights.shape != (n_points,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise FastkmError(f"sample_weight must be {n_points} finite non-negative numbers")
            if weights.sum() <= 0:
                raise FastkmError("sample_weight sums to zero: at least one point needs a positive weight")
            points, merged = data, False

        tol_abs = _kmeans.tolerance(points, weights, tol)
        point_set = _kmeans.PointSet(points, weights, n_clusters)
        if init_centres is not None:
            best = point_set.lloyd(init_centres, max_iter=max_iter, tol_abs=tol_abs)
        elif self.init == "random":
            best = None
            for _ in range(n_init):
                centres = _kmeans.random_centres(point_set.points, point_set.weights, n_clusters, rng)
                run = point_set.lloyd(centres, max_iter=max_iter, tol_abs=tol_abs, overrelax=True)
                if best is None or run.inertia < best.inertia:
                    best = run
        else:
            best = _kmeans.best_of_inits(point_set, n_clusters, rng, n_init=n_init, max_iter=max_iter, tol_abs=tol_abs)

        best.labels = point_set.original_order(best.labels)
        self.cluster_centers_ = best.centres
        self.n_features_in_ = n_features
        self.inertia_ = best.inertia
        self.n_iter_ = best.n_iter
        if not merged:
            self.labels_ = best.labels
        elif n_features <= _kmeans.MAX_PACKED_CHANNELS and n_points >= TABLE_REMAP_MIN_POINTS:
            self.labels_ = np.empty(n_points, dtype=np.int32)
            _kernels.remap_through_table(data, _kmeans.label_table(points, best.labels), self.labels_)
        elif n_features <= _kmeans.MAX_PACKED_CHANNELS:
            # Few points: assigning them directly is cheaper than a 256**d table, and
            # gives the same labels (the same arithmetic on the same colour values).
            self.labels_ = np.empty(n_points, dtype=np.int32)
            _kernels.assign_labels(data, best.centres.astype(np.float32), self.labels_, np.empty(n_points, np.float32))
        else:
            self.labels_ = best.labels[inverse]
        return self

    @_announces_compiles
    def predict(self, X: ImageLike) -> np.ndarray:
        """Index (n,) int32 of the nearest cluster centre of each point of X (n, d) uint8."""
        self._check_fitted()
        data = self._points(X)
        self._check_fitted(data)
        labels = np.empty(data.shape[0], dtype=np.int32)
        min_dist = np.empty(data.shape[0], dtype=np.float32)
        _kernels.assign_labels(data, self.cluster_centers_.astype(np.float32), labels, min_dist)
        return labels

    def fit_predict(self, X: ImageLike, y: object = None, sample_weight: Optional[npt.ArrayLike] = None) -> np.ndarray:
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X: ImageLike) -> np.ndarray:
        """Euclidean distances (n, n_clusters) float64 from each point to each centre."""
        self._check_fitted()
        data = self._points(X)
        self._check_fitted(data)
        x = data.astype(np.float64)
        centres = self.cluster_centers_
        squared = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
        return np.sqrt(np.maximum(squared, 0.0))

    def fit_transform(self, X: ImageLike, y: object = None, sample_weight: Optional[npt.ArrayLike] = None) -> np.ndarray:
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X: ImageLike, y: object = None, sample_weight: Optional[npt.ArrayLike] = None) -> float:
        """Opposite of the (weighted) sum of squared distances of X to the nearest centre."""
        distances = self.transform(X).min(axis=1) ** 2
        if sample_weight is not None:
            distances = distances * np.asarray(sample_weight, dtype=np.float64)
        return -float(distances.sum())


def _warmup_calls():
    """(what, call) pairs: every kind of call with kernels (or kernel types) of its own."""
    rng = np.random.default_rng(0)
    # Noise: more distinct colours than any palette below, in every layout.
    rgb = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    alpha = rng.choice(np.array([0, 128, 255], np.uint8), size=(48, 64, 1))
    grey, rgba, grey_alpha = rgb[..., 0], np.dstack([rgb, alpha]), np.dstack([rgb[..., :1], alpha])
    points = rgb.reshape(-1, 3)
    # From TABLE_REMAP_MIN_POINTS points on, KMeans labels through a colour table.
    many_points = np.repeat(points[:64], TABLE_REMAP_MIN_POINTS // 64, axis=0)

    def every_option(image):
        # A sample smaller than the image: the sampled stages run too.
        quantize(image, 16, sample_size=1024).delta_e
        quantize(image, 300).delta_e
        quantize(image, 16, dither=True).delta_e
        quantize(image, 300, dither=True).delta_e
        quantize(image, palette=quantize(image, 8).palette)
        quantize(image, 64, min_psnr=20.0)

    def oklab():
        quantize(rgb, 16, space="oklab").delta_e
        quantize(rgb, 16, space="oklab", dither=True).delta_e
        quantize(rgb, 300, space="oklab", dither=True)

    def estimator():
        for data in (points, rgba.reshape(-1, 4), many_points):
            KMeans(8, random_state=0).fit(data).predict(data)
        for data in (points, rgba.reshape(-1, 4)):
            KMeans(8, random_state=0).fit(data, sample_weight=np.ones(data.shape[0]))

    return (
        ("RGB images", lambda: every_option(rgb)),
        ("grey images", lambda: every_option(grey)),
        ("RGBA images", lambda: every_option(rgba)),
        ("grey + alpha images", lambda: every_option(grey_alpha)),
        ("OKLab fits", oklab),
        ("shared palettes", lambda: shared_palette([rgb, grey], 16)),
        ("the KMeans estimator", estimator),
    )


def warmup(progress=None):
    """Compile every kernel of every kind of call now, or load it from numba's disk cache.

    For container images and CI: run once at build time (``fastkm warmup`` on the
    command line) and no later call compiles, or warns with CompileWarning.  Kernels are
    cached where numba caches them (beside the installed package, or in
    NUMBA_CACHE_DIR), for the same CPU and numba version.

    progress    optional callable, called with (name, seconds) as each kind is done
    returns     list of (name, seconds) in the order run
    """
    timings = []
    with _kernels.compile_notices(lambda: None):
        for what, call in _warmup_calls():
            start = time.perf_counter()
            call()
            timings.append((what, time.perf_counter() - start))
            if progress is not None:
                progress(*timings[-1])
    return timings
