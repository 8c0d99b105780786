"""Adapters that run peer colour quantizers on the same decoded image array.

Every adapter has the signature ``fn(image, n_colors, seed) -> (palette, labels)``:

* ``image``: ``(H, W, 3)`` uint8 C-contiguous RGB array (as decoded by imageio).
* ``palette``: ``(m, 3)`` uint8 array with ``m <= n_colors``.
* ``labels``: ``(H, W)`` integer array (uint8 when ``m <= 256``, else int32) such
  that ``palette[labels]`` is the quantized image.

Each adapter imports its library lazily, inside the function, so that a missing
peer does not break ``import peers``; :func:`available_peers` tells which ones
import.  No adapter changes thread settings: each library runs with its own
default (see the notes on each adapter).

The k-means peers (sklearn, sklearn-minibatch, opencv) return
``palette = clip(round(float centres))`` and ``labels`` = the exact nearest
palette entry for each pixel (squared RGB distance, ties to the lowest index),
computed by :func:`nearest_labels`.  faiss does the same final assignment with
a faiss ``IndexFlatL2`` search over the rounded palette.  imagequant and Pillow
return their own palette and indices unchanged (no dithering).
"""

from __future__ import annotations

import importlib
from typing import Callable

import numpy as np

__all__ = [
    "PEERS",
    "PEER_MODULES",
    "available_peers",
    "mse",
    "nearest_labels",
    "validate_output",
]

Adapter = Callable[[np.ndarray, int, int], "tuple[np.ndarray, np.ndarray]"]

# cv2.kmeans stopping rule: (type, max_iter, epsilon).  OpenCV compares the
# largest *squared* centre shift with epsilon**2, so 1e-4 runs k-means nearly to
# full convergence (stricter than sklearn's default tol).
OPENCV_CRITERIA_MAX_ITER = 300
OPENCV_CRITERIA_EPS = 1e-4

MINIBATCH_BATCH_SIZE = 4096
FAISS_NITER = 25


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _check_image(image: np.ndarray, n_colors: int) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if n_colors < 1:
        raise ValueError("n_colors must be >= 1")


def _pixels_f32(image: np.ndarray) -> np.ndarray:
    """(H*W, 3) float32 C-contiguous copy of the pixels."""
    return image.reshape(-1, 3).astype(np.float32)


def _round_palette(centres: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(centres, dtype=np.float64)), 0, 255).astype(np.uint8)


def _label_dtype(m: int):
    return np.uint8 if m <= 256 else np.int32


def nearest_labels(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Exact nearest-palette-entry labels, shape (H, W).

    Works on the distinct colours of the image only: pixels are packed to
    24-bit keys, the set of distinct keys is found with a 2**24 presence table
    (O(N), no sort), those colours are assigned in chunks with one float32
    GEMM each, and a 2**24 lookup table maps every pixel back.  The float32
    arithmetic is exact here (all terms are integers below 2**24), so the
    result is the true argmin of squared RGB distance, ties to the lowest index.
    """
    h, w, _ = image.shape
    palette = np.ascontiguousarray(palette, dtype=np.uint8).reshape(-1, 3)
    m = palette.shape[0]
    dtype = _label_dtype(m)
    pix = image.reshape(-1, 3)
    key = pix[:, 0].astype(np.int32)
    key <<= 8
    key |= pix[:, 1]
    key <<= 8
    key |= pix[:, 2]

    present = np.zeros(1 << 24, dtype=bool)
    present[key] = True
    uniq = np.flatnonzero(present).astype(np.int32)
    del present
    cols = np.empty((uniq.size, 3), dtype=np.float32)
    cols[:, 0] = uniq >> 16
    cols[:, 1] = (uniq >> 8) & 255
    cols[:, 2] = uniq & 255

    pal = palette.astype(np.float32)
    pal_t2 = np.ascontiguousarray(-2.0 * pal.T)  # (3, m)
    pal_n = (pal * pal).sum(axis=1)  # (m,)
    ulab = np.empty(uniq.size, dtype=dtype)
    step = max(1, (1 << 22) // max(m, 1))  # ~16 MiB distance block
    for s in range(0, uniq.size, step):
        d = cols[s : s + step] @ pal_t2  # -2 x.c
        d += pal_n  # + |c|^2   (|x|^2 is constant per row)
        ulab[s : s + step] = d.argmin(axis=1)

    lut = np.empty(1 << 24, dtype=dtype)
    lut[uniq] = ulab
    return lut[key].reshape(h, w)


def mse(image: np.ndarray, palette: np.ndarray, labels: np.ndarray) -> float:
    """Mean over pixels and channels of the squared error of palette[labels] vs image."""
    img = image.reshape(-1, 3)
    lab = np.asarray(labels).reshape(-1)
    if lab.size != img.shape[0]:
        raise ValueError("labels and image have different pixel counts")
    pal = np.asarray(palette).reshape(-1, 3).astype(np.int32)
    total = 0
    step = 1 << 20
    for s in range(0, img.shape[0], step):
        diff = img[s : s + step].astype(np.int32)
        diff -= pal[lab[s : s + step]]
        total += int(np.einsum("ij,ij->", diff, diff, dtype=np.int64))
    return float(np.float64(total) / np.float64(img.size))


def validate_output(image: np.ndarray, n_colors: int, palette, labels) -> None:
    """Raise AssertionError unless (palette, labels) follow the adapter contract."""
    h, w, _ = image.shape
    assert isinstance(palette, np.ndarray) and palette.dtype == np.uint8, palette.dtype
    assert palette.ndim == 2 and palette.shape[1] == 3, palette.shape
    assert 1 <= palette.shape[0] <= n_colors, (palette.shape, n_colors)
    assert isinstance(labels, np.ndarray) and labels.shape == (h, w), labels.shape
    assert np.issubdtype(labels.dtype, np.integer), labels.dtype
    lo, hi = int(labels.min()), int(labels.max())
    assert 0 <= lo and hi < palette.shape[0], (lo, hi, palette.shape[0])


# --------------------------------------------------------------------------
# adapters
# --------------------------------------------------------------------------


def sklearn_kmeans(image: np.ndarray, n_colors: int, seed: int):
    """sklearn KMeans (Lloyd, k-means++ init, n_init=1, default tol/max_iter) on float32.

    Threads: sklearn's OpenMP Lloyd loop uses all cores by default (2 here).
    Final labels: nearest_labels() against the rounded uint8 palette.
    """
    _check_image(image, n_colors)
    from sklearn.cluster import KMeans

    x = _pixels_f32(image)
    km = KMeans(n_clusters=n_colors, init="k-means++", n_init=1, random_state=seed)
    km.fit(x)
    palette = _round_palette(km.cluster_centers_)
    return palette, nearest_labels(image, palette)


def sklearn_minibatch(image: np.ndarray, n_colors: int, seed: int):
    """sklearn MiniBatchKMeans (batch_size=4096, n_init=1, other defaults) on float32.

    Note fit() also runs a full-data label pass at the end (sklearn computes
    labels_ / inertia_); that cost is inherent to the peer and is included.
    """
    _check_image(image, n_colors)
    from sklearn.cluster import MiniBatchKMeans

    x = _pixels_f32(image)
    km = MiniBatchKMeans(
        n_clusters=n_colors,
        init="k-means++",
        n_init=1,
        batch_size=MINIBATCH_BATCH_SIZE,
        random_state=seed,
    )
    km.fit(x)
    palette = _round_palette(km.cluster_centers_)
    return palette, nearest_labels(image, palette)


def imagequant_quantize(image: np.ndarray, n_colors: int, seed: int):
    """libimagequant via the `imagequant` PyPI package, dithering off.

    max_colors=n_colors (2..256), quality 0-100, speed left at the library
    default (4).  Deterministic, so ``seed`` is unused.  Single-threaded (the
    bundled C library is built without OpenMP).

    Uses the package's cffi handle (``imagequant._libimagequant``) directly so
    that the numpy buffers are passed without copies and the true palette size
    (liq_palette.count) is known; the public ``quantize_raw_rgba_bytes`` needs a
    bytes copy, returns ``bytes`` indices and always a 256-entry palette.
    Falls back to that public function if the cffi handle is not importable.
    """
    _check_image(image, n_colors)
    if not 1 <= n_colors <= 256:
        raise ValueError("imagequant supports 1..256 colours")
    h, w, _ = image.shape
    rgba = np.empty((h, w, 4), dtype=np.uint8)
    rgba[..., :3] = image
    rgba[..., 3] = 255

    try:
        from imagequant._libimagequant import ffi, lib
    except ImportError:  # pragma: no cover - only for a differently built package
        import imagequant

        data, pal = imagequant.quantize_raw_rgba_bytes(
            rgba.tobytes(), w, h, dithering_level=0.0, max_colors=n_colors,
            min_quality=0, max_quality=100,
        )
        labels = np.frombuffer(data, dtype=np.uint8).reshape(h, w).copy()
        m = int(labels.max()) + 1
        palette = np.asarray(pal, dtype=np.uint8).reshape(-1, 4)[:m, :3].copy()
        return palette, labels

    def check(code, what):
        if code != lib.LIQ_OK:
            raise RuntimeError(f"libimagequant {what} failed with code {code}")

    attr = lib.liq_attr_create()
    if attr == ffi.NULL:
        raise MemoryError("liq_attr_create failed")
    img = ffi.NULL
    res = ffi.new("liq_result**")
    try:
        if n_colors >= 2:
            check(lib.liq_set_max_colors(attr, n_colors), "liq_set_max_colors")
        else:  # liq_set_max_colors rejects 1; the attribute itself accepts it
            attr.max_colors = 1
        check(lib.liq_set_quality(attr, 0, 100), "liq_set_quality")
        rgba_buf = ffi.from_buffer(rgba)  # not copied: rgba must outlive img
        img = lib.liq_image_create_rgba(attr, rgba_buf, w, h, 0)
        if img == ffi.NULL:
            raise RuntimeError("liq_image_create_rgba failed")
        check(lib.liq_image_quantize(img, attr, res), "liq_image_quantize")
        check(lib.liq_set_dithering_level(res[0], 0.0), "liq_set_dithering_level")
        labels = np.empty((h, w), dtype=np.uint8)
        out_buf = ffi.from_buffer(labels, require_writable=True)
        check(lib.liq_write_remapped_image(res[0], img, out_buf, labels.size),
              "liq_write_remapped_image")
        # the palette must be read after remapping (remapping may refine it)
        pal = lib.liq_get_palette(res[0])
        m = int(pal.count)
        raw = np.frombuffer(ffi.buffer(pal.entries, 4 * m), dtype=np.uint8)
        palette = raw.reshape(m, 4)[:, :3].copy()
        del rgba_buf, out_buf
    finally:
        if res[0] != ffi.NULL:
            lib.liq_result_destroy(res[0])
        if img != ffi.NULL:
            lib.liq_image_destroy(img)
        lib.liq_attr_destroy(attr)
    return palette, labels


def _pillow(image: np.ndarray, n_colors: int, method_name: str):
    _check_image(image, n_colors)
    if not 1 <= n_colors <= 256:
        raise ValueError("Pillow quantize supports 1..256 colours")
    from PIL import Image

    method = getattr(Image.Quantize, method_name)
    # (H, W, 3) uint8 is read as RGB; fromarray's mode= argument is deprecated
    q = Image.fromarray(image).quantize(colors=n_colors, method=method, dither=Image.Dither.NONE)
    labels = np.asarray(q, dtype=np.uint8)
    pal = np.asarray(q.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)
    m = min(pal.shape[0], n_colors)
    if int(labels.max()) >= m:  # should not happen; keep the contract honest
        raise RuntimeError("Pillow returned an index beyond the palette")
    return pal[:m].copy(), labels


def pillow_mediancut(image: np.ndarray, n_colors: int, seed: int):
    """PIL Image.quantize(method=MEDIANCUT, dither=NONE); single-threaded, seed unused."""
    return _pillow(image, n_colors, "MEDIANCUT")


def pillow_fastoctree(image: np.ndarray, n_colors: int, seed: int):
    """PIL Image.quantize(method=FASTOCTREE, dither=NONE); single-threaded, seed unused."""
    return _pillow(image, n_colors, "FASTOCTREE")


def faiss_kmeans(image: np.ndarray, n_colors: int, seed: int):
    """faiss.Kmeans(d=3, k, niter=25, seed) on float32 pixels.

    faiss subsamples the training set to max_points_per_centroid*k = 256*k
    points (default kept).  The full assignment is a faiss IndexFlatL2 search
    of all pixels against the rounded uint8 palette.  Threads: OpenMP, all
    cores by default (2 here).
    """
    _check_image(image, n_colors)
    import faiss

    x = _pixels_f32(image)
    km = faiss.Kmeans(3, n_colors, niter=FAISS_NITER, seed=seed, verbose=False)
    km.train(x)
    palette = _round_palette(km.centroids)
    index = faiss.IndexFlatL2(3)
    index.add(palette.astype(np.float32))
    _, idx = index.search(x, 1)
    labels = idx.reshape(image.shape[:2]).astype(_label_dtype(palette.shape[0]))
    return palette, labels


def opencv_kmeans(image: np.ndarray, n_colors: int, seed: int):
    """cv2.kmeans, KMEANS_PP_CENTERS, attempts=1, criteria (EPS+MAX_ITER, 300, 1e-4).

    Seeded with cv2.setRNGSeed(seed).  Very slow at large k.  Threads: OpenCV's
    parallel_for uses cv2.getNumThreads() (all cores, 2 here).
    Final labels: nearest_labels() against the rounded uint8 palette (OpenCV's
    own labels come from the assignment before its last centre update).
    """
    _check_image(image, n_colors)
    import cv2

    x = _pixels_f32(image)
    cv2.setRNGSeed(int(seed))
    criteria = (
        cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER,
        OPENCV_CRITERIA_MAX_ITER,
        OPENCV_CRITERIA_EPS,
    )
    _compactness, _labels, centres = cv2.kmeans(
        x, n_colors, None, criteria, 1, cv2.KMEANS_PP_CENTERS
    )
    palette = _round_palette(centres)
    return palette, nearest_labels(image, palette)


PEERS: dict[str, Adapter] = {
    "sklearn-kmeans": sklearn_kmeans,
    "sklearn-minibatch": sklearn_minibatch,
    "imagequant": imagequant_quantize,
    "pillow-mediancut": pillow_mediancut,
    "pillow-fastoctree": pillow_fastoctree,
    "faiss": faiss_kmeans,
    "opencv-kmeans": opencv_kmeans,
}

# module(s) each peer needs; available_peers() imports them
PEER_MODULES: dict[str, tuple[str, ...]] = {
    "sklearn-kmeans": ("sklearn.cluster",),
    "sklearn-minibatch": ("sklearn.cluster",),
    "imagequant": ("imagequant",),
    "pillow-mediancut": ("PIL.Image",),
    "pillow-fastoctree": ("PIL.Image",),
    "faiss": ("faiss",),
    "opencv-kmeans": ("cv2",),
}


def available_peers() -> list[str]:
    """Names in PEERS whose libraries import in this interpreter."""
    ok: dict[str, bool] = {}
    names = []
    for name in PEERS:
        mods = PEER_MODULES[name]
        good = True
        for mod in mods:
            if mod not in ok:
                try:
                    importlib.import_module(mod)
                    ok[mod] = True
                except Exception:  # ImportError, or a broken binary wheel
                    ok[mod] = False
            good = good and ok[mod]
        if good:
            names.append(name)
    return names
