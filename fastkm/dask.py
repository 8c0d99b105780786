"""Quantize images held as dask arrays: larger than memory, or spread over a cluster.

    >>> import dask.array as da
    >>> import fastkm.dask
    >>> image = da.from_zarr("mosaic.zarr")            # (H, W, 3) uint8, any chunks
    >>> result = fastkm.dask.quantize(image, n_colors=16)
    >>> result.palette, result.mse                     # NumPy palette and exact error, known now
    >>> result.labels.to_zarr("mosaic-k16.zarr")       # lazy (H, W) uint8, computed on store

Needs the ``fastkm[dask]`` extra; ``import fastkm`` never loads this module.  The work
runs on whatever scheduler dask uses at the time: a ``distributed.Client`` when one is
active, else dask's local threads.
"""

from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np

from . import _kernels, _kmeans
from .api import (
    DEFAULT_N_INIT,
    FastkmError,
    _check_image_shape,
    _check_n_colors,
    _check_positive_int,
    _check_seed,
    _check_uint8,
    psnr_from_mse,
)

# Pixels sampled for the fit.  In memory, the fit on a sample is refined on every pixel
# until it converges; here each refinement is a pass over the whole array, so the
# sample carries more of the quality.  On a 110 MP mosaic of the 12 MP photo, MSE over
# fastkm.quantize's after one pass, k=16 / 64: 1.000 / 1.002 with the in-memory
# sample of 262,144 pixels, 0.974 / 0.991 with 4x that, for 0.2-0.4 s more of fit.
DEFAULT_SAMPLE_SIZE = 1 << 20
# Passes over the array after the fit: the first measures the sample's palette, each
# further one the palette moved by one Lloyd step of the last.  Each pass reads every
# chunk (on 1 core, 1.6 s of that mosaic's 4.3 s fit with 2 passes, mostly colour
# histograms), and further passes lowered the error by 0.03 % there and by at most
# 0.07 % on 3x3 mosaics of the bundled photos (k = 16, 64, 256): by default the
# palette is measured, not moved.
DEFAULT_PASSES = 1
# Block results merged by one task of the reduction tree.
MERGE_FAN_IN = 8
# The sample fit's iteration limit and tolerance, as in fastkm.quantize.
_FIT_MAX_ITER = 100
_FIT_TOL = 1e-4


@dataclass
class DaskQuantizeResult:
    """The outcome of ``fastkm.dask.quantize``.

    palette   (m, C) uint8 NumPy array, m <= n_colors
    labels    lazy dask array (H, W), uint8 when m <= 256 else uint16: the palette index
              of every pixel, chunked as the input's rows and columns; store it
              (``labels.to_zarr(...)``) or compute it
    mse       mean squared error per channel of palette[labels] against the input,
              measured on every pixel during the call (float)
    psnr      10 log10(255^2 / mse) in dB (inf when exact)
    n_passes  passes over the array that measured and refined the palette
    image     lazy (H, W, C) uint8 = palette[labels] ((H, W) for a grey input)
    """

    palette: np.ndarray
    labels: da.Array
    mse: float
    psnr: float
    n_passes: int
    grey: bool = field(default=False, repr=False)

    @property
    def n_colors(self):
        return self.palette.shape[0]

    @property
    def image(self):
        quantized = self.labels.map_blocks(
            _lookup_block, palette=self.palette, new_axis=2, chunks=self.labels.chunks + ((self.palette.shape[1],),),
            dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8),
        )
        return quantized[:, :, 0] if self.grey else quantized


def quantize(array, n_colors=16, *, seed=0, sample_size=DEFAULT_SAMPLE_SIZE, passes=DEFAULT_PASSES):
    """Reduce a dask array image to ``n_colors`` colours with k-means.

    array       dask array (H, W, 3) RGB or (H, W) grey, uint8, any chunks (a chunk
                that splits the channels is merged with its neighbours); a NumPy
                array is accepted too
    n_colors    palette size, 1..65536
    seed        the same seed gives the same palette and labels for any chunking,
                scheduler, number of workers and threads
    sample_size pixels drawn uniformly from the whole array (every chunk in proportion
                to its pixels) to fit the palette, as fastkm.quantize fits its sample
    passes      passes over the array (>= 1) after the fit: each measures the
                palette's exact error on every pixel and moves it one Lloyd step (the
                per-chunk sums reduced on the cluster) for the next pass to measure;
                the best palette measured is returned, and passes stop early when the
                palette no longer moves
    returns     DaskQuantizeResult: palette and mse computed now, labels and image lazy

    The array is read once for the sample and once per pass, then once more when the
    labels are computed.  An image with no more distinct colours than n_colors gets
    exactly its own colours (MSE 0), found in the first pass.
    """
    image, grey = _image_array(array)
    n_colors = _check_n_colors(n_colors)
    seed = _check_seed(seed)
    sample_size = _check_positive_int(sample_size, "sample_size")
    passes = _check_positive_int(passes, "passes")
    rng = np.random.default_rng(seed)

    sample = _draw_sample(image, sample_size, rng)
    fit = _kmeans.fit_palette(
        sample, n_colors, rng, sample_size=None, n_init=DEFAULT_N_INIT, max_iter=_FIT_MAX_ITER, tol=_FIT_TOL
    )
    palette, squared_error, n_passes = _refine(image, fit.palette, n_colors, passes)

    labels_dtype = np.uint8 if palette.shape[0] <= 256 else np.uint16
    labels = image.map_blocks(
        _remap_block, palette=palette, labels_dtype=labels_dtype, drop_axis=2, dtype=labels_dtype,
        meta=np.empty((0, 0), labels_dtype),
    )
    mse = squared_error / (image.shape[0] * image.shape[1] * image.shape[2])
    return DaskQuantizeResult(palette, labels, mse, psnr_from_mse(mse), n_passes, grey)


def _image_array(array):
    """Validate a lazy image and view it as (H, W, C) with whole pixels in every chunk."""
    image = array if isinstance(array, da.Array) else da.asarray(array)
    _check_uint8(image.dtype, "image", convert="array.astype(np.uint8)")
    if any(np.isnan(size) for size in image.shape):
        raise FastkmError(f"image has unknown chunk sizes {image.shape}; call image.compute_chunk_sizes() first")
    _check_image_shape(image.shape)
    grey = image.ndim == 2 or image.shape[2] == 1
    if image.ndim == 2:
        image = image[:, :, None]
    if image.numblocks[2] > 1:
        # The kernels read whole pixels: merge chunks that split the channels.
        image = image.rechunk({2: -1})
    return image, grey


def _block_pixels(block):
    """A chunk (h, w, C) uint8 as contiguous pixels (h*w, C)."""
    return np.ascontiguousarray(block).reshape(-1, block.shape[2])


def _blocks(image):
    """Delayed chunks of an (H, W, C) image with whole pixels, in row-major order."""
    return list(image.to_delayed().ravel())


def _draw_sample(image, sample_size, rng):
    """``sample_size`` pixels (m, C) uint8 drawn uniformly with replacement from the image.

    The pixel positions are drawn here, then each chunk gathers its own: the sample, in
    the order drawn, is the same for any chunking and scheduler.  An image of at most
    ``sample_size`` pixels is taken whole (row-major), as fastkm.quantize takes it.
    """
    height, width, n_channels = image.shape
    n_pixels = height * width
    if n_pixels <= sample_size:
        return np.ascontiguousarray(image.compute()).reshape(n_pixels, n_channels)
    rows, cols = np.divmod(rng.integers(0, n_pixels, size=sample_size), width)
    row_starts = np.cumsum((0,) + image.chunks[0])
    col_starts = np.cumsum((0,) + image.chunks[1])
    block_rows = np.searchsorted(row_starts, rows, side="right") - 1
    block_cols = np.searchsorted(col_starts, cols, side="right") - 1
    n_block_cols = image.numblocks[1]
    block_ids = block_rows * n_block_cols + block_cols
    # Draws grouped by chunk, in the order drawn within each chunk.
    order = np.argsort(block_ids, kind="stable")
    bounds = np.searchsorted(block_ids[order], np.arange(image.numblocks[0] * n_block_cols + 1))
    parts = []
    for block_id, block in enumerate(_blocks(image)):
        drawn = order[bounds[block_id] : bounds[block_id + 1]]
        if drawn.size == 0:
            continue  # nothing drawn here: the chunk is not even read
        i, j = divmod(block_id, n_block_cols)
        local = (rows[drawn] - row_starts[i]) * image.chunks[1][j] + (cols[drawn] - col_starts[j])
        parts.append(dask.delayed(_gather_block, pure=True)(block, local))
    sample = np.empty((sample_size, n_channels), dtype=np.uint8)
    sample[order] = np.concatenate(dask.compute(*parts))
    return sample


def _gather_block(block, indices):
    """Pixels ``indices`` (m,) int64 of a chunk (h, w, C) uint8, as (m, C) uint8."""
    return _kernels.gather_rows(_block_pixels(block), indices)


def _refine(image, palette, n_colors, passes):
    """Measure and move the palette over the whole image; returns the best palette measured,
    its exact squared error and the number of passes run.

    Each pass sums every chunk's pixels per nearest palette entry (int64, exact) and
    merges the sums in a fixed tree on the cluster: the same result for any scheduler.
    """
    blocks = _blocks(image)
    best_palette, best_error = palette, None
    n_passes = 0
    for n_passes in range(1, passes + 1):
        parts = [dask.delayed(_block_sums, pure=True)(block, palette, n_colors) for block in blocks]
        (sums, counts, error, few_colours), = dask.compute(_merge_tree(parts, n_colors))
        if few_colours is not None:
            # The whole image has no more distinct colours than the palette: keep them all.
            return np.unique(few_colours, axis=0), 0, n_passes
        if best_error is None or error < best_error:
            best_palette, best_error = palette, error
        filled = counts > 0  # an entry nearest to no pixel stays where it is
        centres = palette.astype(np.float64)
        centres[filled] = sums[filled] / counts[filled, None]
        moved = _kmeans.round_palette(centres)
        if np.array_equal(moved, palette):
            break
        palette = moved
    return best_palette, best_error, n_passes


def _block_sums(block, palette, n_colors):
    """One chunk's palette_sums, with its distinct colours when it has at most n_colors."""
    colours, counts = _kmeans.distinct_colours(_block_pixels(block))
    sums, cluster_counts, error = _kmeans.palette_sums(colours, counts, palette)
    return sums, cluster_counts, error, colours if colours.shape[0] <= n_colors else None


def _merge_sums(n_colors, *parts):
    """Add the results of _block_sums (or of earlier merges) in the order given."""
    sums = sum(part[0] for part in parts)
    counts = sum(part[1] for part in parts)
    error = sum(part[2] for part in parts)
    few = [part[3] for part in parts]
    colours = None
    if all(part is not None for part in few):
        colours = np.unique(np.concatenate(few), axis=0)
        colours = colours if colours.shape[0] <= n_colors else None
    return sums, counts, error, colours


def _merge_tree(parts, n_colors):
    """One delayed result merging ``parts`` in a fixed tree of MERGE_FAN_IN per task."""
    while len(parts) > 1:
        parts = [
            dask.delayed(_merge_sums, pure=True)(n_colors, *parts[start : start + MERGE_FAN_IN])
            for start in range(0, len(parts), MERGE_FAN_IN)
        ]
    return parts[0]


def _remap_block(block, palette, labels_dtype):
    """Labels (h, w) of a chunk (h, w, C) uint8: its nearest palette entries."""
    pixels = _block_pixels(block)
    labels = _kmeans.remap(pixels, _kmeans.map_to_palette(pixels, palette), labels_dtype)
    return labels.reshape(block.shape[:2])


def _lookup_block(labels, palette):
    """palette[labels]: (h, w, C) uint8."""
    return palette[labels]
