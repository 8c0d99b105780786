"""Public Python API: ``quantize`` and the scikit-learn style ``KMeans`` estimator."""

import inspect
import math
from dataclasses import dataclass, field

import numpy as np

from . import _kernels, _kmeans

# Pixels in the random sample that seeds and pre-fits the palette before the refinement
# on the full colour histogram (see bench/README.md for the measurement behind it).
DEFAULT_SAMPLE_SIZE = 1 << 18
# k-means++ starts on the sample: best of 4 keeps every Kodak photo within 1.5 % of
# scikit-learn's MSE where a single start is up to 10 % worse (bench/README.md).
DEFAULT_N_INIT = 4
MAX_COLORS = 65536
# From this many points on, KMeans labels its training points through a colour table.
TABLE_REMAP_MIN_POINTS = 1 << 20


class FastkmError(ValueError):
    """A problem with the caller's input; the message says what and how to fix it."""


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
            f"{what} has dtype {dtype}, expected uint8; convert 8-bit data with "
            f"{convert}, or scale other ranges to 0..255 first"
        )


def _as_uint8(array, what):
    array = np.asarray(array)
    _check_uint8(array.dtype, what)
    return array


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise FastkmError(f"seed={seed!r} must be a non-negative integer (or None for a fresh random seed)")
    return seed


def _check_image_shape(shape):
    """Accept (H, W) grey and (H, W, 1 or 3) images with at least one pixel."""
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)):
        raise FastkmError(
            f"image has shape {shape}, expected (H, W) grey or (H, W, 3) RGB; drop an alpha channel with image[..., :3]"
        )
    if shape[0] == 0 or shape[1] == 0:
        raise FastkmError(f"image has shape {shape}: it holds no pixels")


def _image_pixels(image):
    """Validate an image and view it as pixels (n, C) uint8, with its (H, W) shape."""
    image = _as_uint8(image, "image")
    _check_image_shape(image.shape)
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, n_channels = image.shape
    pixels = np.ascontiguousarray(image).reshape(height * width, n_channels)
    return pixels, (height, width), n_channels == 1


def psnr_from_mse(mse):
    """PSNR in dB of a mean squared error per channel on 0..255 data (inf for 0)."""
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@dataclass
class QuantizeResult:
    """The outcome of ``quantize``.

    palette  (m, C) uint8, m = min(n_colors, number of distinct colours in the image)
    labels   (H, W) uint8 when m <= 256, else uint16: palette index of every pixel
    mse      mean squared error per channel against the input (float)
    psnr     10 log10(255^2 / mse) in dB (inf when exact)
    n_distinct  number of distinct colours in the input
    n_iter   Lloyd iterations run
    image    (H, W, C) uint8 = palette[labels] (squeezed to (H, W) for grey input),
             computed on access
    """

    palette: np.ndarray
    labels: np.ndarray
    mse: float
    psnr: float
    n_distinct: int
    n_iter: int
    grey: bool = field(default=False, repr=False)

    @property
    def n_colors(self):
        return self.palette.shape[0]

    @property
    def image(self):
        quantized = self.palette[self.labels]
        return quantized[:, :, 0] if self.grey else quantized


def quantize(
    image,
    n_colors=16,
    *,
    palette=None,
    seed=0,
    sample_size=DEFAULT_SAMPLE_SIZE,
    n_init=DEFAULT_N_INIT,
    max_iter=100,
    tol=1e-4,
):
    """Reduce an image to ``n_colors`` colours with k-means.

    image       (H, W, 3) RGB or (H, W) grey, uint8
    n_colors    palette size, 1..65536 (an image with fewer distinct colours gets
                exactly its own colours)
    palette     optional (m, C) uint8 palette to map the image onto instead of fitting
                one (C = the image's channels; n_colors is then ignored)
    seed        seed of NumPy's random generator: the same seed gives the same result,
                for any number of threads
    sample_size pixels sampled to seed and pre-fit the palette before the exact
                refinement on all pixels (None: no sampling stage)
    n_init      k-means++ starts tried on the sample (or on small images); the best
                one is refined
    max_iter    Lloyd iterations per stage; tol: centre-shift tolerance relative to the
                pixels' variance
    returns     QuantizeResult (palette, labels, image, mse, psnr)
    """
    pixels, (height, width), grey = _image_pixels(image)
    n_colors = _check_n_colors(n_colors)
    seed = _check_seed(seed)
    sample_size = _check_positive_int(sample_size, "sample_size", allow_none=True)
    n_init = _check_positive_int(n_init, "n_init")
    max_iter = _check_positive_int(max_iter, "max_iter")
    tol = _check_tol(tol)
    rng = np.random.default_rng(seed)

    if palette is not None:
        palette = _as_uint8(palette, "palette")
        if palette.ndim != 2 or palette.shape[1] != pixels.shape[1] or not 1 <= palette.shape[0] <= MAX_COLORS:
            raise FastkmError(
                f"palette has shape {palette.shape}, expected (m, {pixels.shape[1]}) with 1 <= m <= {MAX_COLORS} "
                "(one row per colour, as many channels as the image)"
            )
        fit = _kmeans.map_to_palette(pixels, np.ascontiguousarray(palette))
    else:
        fit = _kmeans.fit_palette(
            pixels, n_colors, rng, sample_size=sample_size, n_init=n_init, max_iter=max_iter, tol=tol
        )
    labels_dtype = np.uint8 if fit.palette.shape[0] <= 256 else np.uint16
    labels = _kmeans.remap(pixels, fit, labels_dtype).reshape(height, width)
    mse = fit.squared_error / pixels.size
    return QuantizeResult(
        palette=fit.palette,
        labels=labels,
        mse=mse,
        psnr=psnr_from_mse(mse),
        n_distinct=int(fit.colours.shape[0]),
        n_iter=fit.n_iter,
        grey=grey,
    )


class KMeans:
    """K-means on uint8 points, following scikit-learn's estimator conventions.

    Parameters are stored by ``__init__`` untouched; ``fit`` sets the fitted attributes
    (ending in ``_``):
      cluster_centers_ (n_clusters, d) float64
      labels_          (n,) int32, nearest centre of each training point
      inertia_         float, sum of (weighted) squared distances to the nearest centre
      n_iter_          int, Lloyd iterations run

    ``X`` is (n, d) uint8, or an image (H, W, C) uint8, taken as (H*W, C) pixels.
    Without sample weights, identical points are merged (weighted by multiplicity) for
    d <= 3, which leaves the objective unchanged and makes photos far cheaper to fit.
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init=1, max_iter=300, tol=1e-4, random_state=None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def get_params(self, deep=True):
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params):
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise FastkmError(f"invalid parameter {name!r} for KMeans; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"KMeans({params})"

    @staticmethod
    def _points(X):
        X = _as_uint8(X, "X")
        if X.ndim == 3:
            X = X.reshape(-1, X.shape[2])
        if X.ndim != 2:
            raise FastkmError(f"X has shape {X.shape}, expected (n_samples, n_features) or (H, W, C)")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise FastkmError(f"X has shape {X.shape}: it holds no data")
        return np.ascontiguousarray(X)

    def _check_fitted(self, X):
        if not hasattr(self, "cluster_centers_"):
            raise FastkmError("this KMeans instance is not fitted yet; call fit(X) first")
        if X.shape[1] != self.cluster_centers_.shape[1]:
            raise FastkmError(
                f"X has {X.shape[1]} features, but KMeans was fitted with {self.cluster_centers_.shape[1]}"
            )

    def fit(self, X, y=None, sample_weight=None):
        """Fit on X (n, d) uint8 with optional non-negative sample_weight (n,)."""
        X = self._points(X)
        n_clusters = _check_n_colors(self.n_clusters, "n_clusters")
        max_iter = _check_positive_int(self.max_iter, "max_iter")
        n_init = _check_positive_int(self.n_init, "n_init")
        tol = _check_tol(self.tol)
        n_points, n_features = X.shape
        if n_points < n_clusters:
            raise FastkmError(f"n_samples={n_points} should be >= n_clusters={n_clusters}")
        if isinstance(self.random_state, np.random.RandomState):
            # scikit-learn style: draw our seed from the caller's legacy generator.
            rng = np.random.default_rng(self.random_state.randint(2**31))
        else:
            rng = np.random.default_rng(self.random_state)

        if sample_weight is None:
            if n_features <= _kmeans.MAX_PACKED_CHANNELS:
                points, weights = _kmeans.distinct_colours(X)
                merged = True
            else:
                points, inverse, weights = np.unique(X, axis=0, return_inverse=True, return_counts=True)
                points, weights, inverse = np.ascontiguousarray(points), weights.astype(np.int64), inverse.ravel()
                merged = True
        else:
            weights = np.asarray(sample_weight, dtype=np.float64)
            if weights.shape != (n_points,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise FastkmError(f"sample_weight must be {n_points} finite non-negative numbers")
            if weights.sum() <= 0:
                raise FastkmError("sample_weight sums to zero: at least one point needs a positive weight")
            points, merged = X, False

        if isinstance(self.init, str):
            if self.init != "k-means++":
                raise FastkmError(f"init={self.init!r} must be 'k-means++' or an array (n_clusters, n_features)")
            init_centres = None
        else:
            init_centres = np.asarray(self.init, dtype=np.float64)
            if init_centres.shape != (n_clusters, n_features):
                raise FastkmError(f"init has shape {init_centres.shape}, expected {(n_clusters, n_features)}")

        tol_abs = _kmeans.tolerance(points, weights, tol)
        if init_centres is None:
            best = _kmeans.best_of_inits(
                points, weights, n_clusters, rng, n_init=n_init, max_iter=max_iter, tol_abs=tol_abs
            )
        else:
            best = _kmeans.lloyd(points, weights, init_centres, max_iter=max_iter, tol_abs=tol_abs)

        self.cluster_centers_ = best.centres
        self.inertia_ = best.inertia
        self.n_iter_ = best.n_iter
        if not merged:
            self.labels_ = best.labels
        elif n_features <= _kmeans.MAX_PACKED_CHANNELS and n_points >= TABLE_REMAP_MIN_POINTS:
            self.labels_ = np.empty(n_points, dtype=np.int32)
            _kernels.remap_through_table(X, _kmeans.label_table(points, best.labels), self.labels_)
        elif n_features <= _kmeans.MAX_PACKED_CHANNELS:
            # Few points: assigning them directly is cheaper than a 256**d table, and
            # gives the same labels (the same arithmetic on the same colour values).
            self.labels_ = np.empty(n_points, dtype=np.int32)
            _kernels.assign_labels(X, best.centres.astype(np.float32), self.labels_, np.empty(n_points, np.float32))
        else:
            self.labels_ = best.labels[inverse]
        return self

    def predict(self, X):
        """Index (n,) int32 of the nearest cluster centre of each point of X (n, d) uint8."""
        X = self._points(X)
        self._check_fitted(X)
        labels = np.empty(X.shape[0], dtype=np.int32)
        min_dist = np.empty(X.shape[0], dtype=np.float32)
        _kernels.assign_labels(X, self.cluster_centers_.astype(np.float32), labels, min_dist)
        return labels

    def fit_predict(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Euclidean distances (n, n_clusters) float64 from each point to each centre."""
        X = self._points(X)
        self._check_fitted(X)
        x = X.astype(np.float64)
        centres = self.cluster_centers_
        squared = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
        return np.sqrt(np.maximum(squared, 0.0))

    def fit_transform(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the (weighted) sum of squared distances of X to the nearest centre."""
        distances = self.transform(X).min(axis=1) ** 2
        if sample_weight is not None:
            distances = distances * np.asarray(sample_weight, dtype=np.float64)
        return -float(distances.sum())
