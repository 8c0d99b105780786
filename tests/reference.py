"""Plain-NumPy references: slow, obviously correct versions of every kernel.

Each function mirrors one kernel of ``fastkm._kernels`` and is what the tests compare
the kernels against.  All arithmetic here is float64 or integer, so the references are
exact whenever the inputs are integer-valued.
"""

import numpy as np


def assign_labels(points, centres):
    """Nearest centre (lowest index on ties) and its squared distance, float64."""
    diff = points.astype(np.float64)[:, None, :] - centres.astype(np.float64)[None, :, :]
    dist = (diff * diff).sum(axis=2)
    labels = dist.argmin(axis=1)
    return labels, dist[np.arange(len(points)), labels]


def cluster_sums(points, weights, labels, n_clusters):
    sums = np.zeros((n_clusters, points.shape[1]), dtype=weights.dtype)
    counts = np.zeros(n_clusters, dtype=weights.dtype)
    np.add.at(sums, labels, weights[:, None] * points.astype(weights.dtype))
    np.add.at(counts, labels, weights)
    return sums, counts


def _draw(potential, target):
    """First index whose running sum of potential exceeds target (zero potentials skipped)."""
    running = np.cumsum(potential)
    index = int(np.searchsorted(running, target, side="right"))
    positive = np.flatnonzero(potential > 0)
    if index >= len(potential):
        return int(positive[-1])
    return index


def kmeans_plusplus(points, weights, first_uniform, trial_uniforms):
    """Greedy k-means++ exactly as the kernel documents it; returns chosen indices."""
    x = points.astype(np.float64)
    w = weights.astype(np.float64)
    n_centres = trial_uniforms.shape[0] + 1
    chosen = [_draw(w, first_uniform * w.sum())]
    closest = ((x - x[chosen[0]]) ** 2).sum(axis=1)
    heaviest = int(np.argmax(weights))
    for c in range(1, n_centres):
        potential = w * closest
        current = potential.sum()
        if current <= 0:
            chosen.append(heaviest)
            continue
        candidates = [_draw(potential, u * current) for u in trial_uniforms[c - 1]]
        best, best_total, best_dist = None, np.inf, None
        for candidate in candidates:
            dist = np.minimum(closest, ((x - x[candidate]) ** 2).sum(axis=1))
            total = (w * dist).sum()
            if total < best_total:
                best, best_total, best_dist = candidate, total, dist
        chosen.append(best)
        closest = best_dist
    return np.array(chosen, dtype=np.int64)


def colour_histogram(pixels):
    """Distinct rows and counts, sorted lexicographically."""
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    return colours, counts.astype(np.int64)


def sort_colours(colours, counts):
    """Colours and counts reordered lexicographically, to compare histograms."""
    order = np.lexsort(colours.T[::-1])
    return colours[order], counts[order]


def squared_error(points, weights, palette, labels):
    diff = points.astype(np.int64) - palette[labels].astype(np.int64)
    return int((weights * (diff * diff).sum(axis=1)).sum())


def lloyd_step(points, weights, centres):
    """One Lloyd iteration: labels for the given centres and the new centres."""
    labels, _ = assign_labels(points, centres)
    sums, counts = cluster_sums(points, weights, labels, len(centres))
    new = centres.astype(np.float64).copy()
    filled = counts > 0
    new[filled] = sums[filled] / counts[filled, None]
    return labels, new


def quantized_mse(image, palette):
    """MSE per channel of an image mapped to its nearest palette entries (chunked)."""
    pixels = image.reshape(-1, image.shape[-1] if image.ndim == 3 else 1)
    total = 0
    for start in range(0, len(pixels), 8192):
        chunk = pixels[start : start + 8192]
        labels, dist = assign_labels(chunk, palette)
        total += int(dist.sum())
    return total / pixels.size
