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


def cell_sort(points, weights, cell_bits):
    """Points sorted by grid cell in Morton order (stable): sorted points, weights, the
    original index of each, and sum of weight * |point|^2."""
    grid = (points >> (8 - cell_bits)).astype(np.int64)
    codes = np.zeros(len(points), dtype=np.int64)
    for t in range(cell_bits - 1, -1, -1):
        for j in range(3):
            codes = (codes << 1) | ((grid[:, j] >> t) & 1)
    order = np.argsort(codes, kind="stable")
    norms = (points.astype(np.int64) ** 2).sum(axis=1)
    return points[order], weights[order], order, float((norms * weights).sum())


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



def weighted_scatter(points, weights, members):
    """sum_i w_i (x_i - mean)(x_i - mean)^T over the member points."""
    x = points[members].astype(np.float64)
    w = weights[members]
    centred = x - w @ x / w.sum()
    return (w[:, None] * centred).T @ centred


def split_in_two(points, weights, members, axis, n_iter):
    """The 2-means split as the kernel documents it: halves (2, d), or None."""
    x = points[members].astype(np.float64)
    w = weights[members]
    total_weight = w.sum()
    total_sum = w @ x
    first = (x - total_sum / total_weight) @ axis > 0
    halves = None
    for _ in range(n_iter):
        first_weight = w[first].sum()
        if not 0 < first_weight < total_weight:
            break
        first_sum = w[first] @ x[first]
        halves = np.stack([first_sum / first_weight, (total_sum - first_sum) / (total_weight - first_weight)])
        first = ((x - halves[0]) ** 2).sum(axis=1) < ((x - halves[1]) ** 2).sum(axis=1)
    return halves


def point_errors(points, weights, centres, labels):
    """w_i |x_i - centres[labels[i]]|^2, and its per-cluster sums with the weights'."""
    errors = weights * ((points.astype(np.float64) - centres[labels]) ** 2).sum(axis=1)
    n_clusters = centres.shape[0]
    return (
        errors,
        np.bincount(labels, weights=weights, minlength=n_clusters),
        np.bincount(labels, weights=errors, minlength=n_clusters),
    )

def quantized_mse(image, palette):
    """MSE per channel of an image mapped to its nearest palette entries (chunked)."""
    pixels = image.reshape(-1, image.shape[-1] if image.ndim == 3 else 1)
    total = 0
    for start in range(0, len(pixels), 8192):
        chunk = pixels[start : start + 8192]
        labels, dist = assign_labels(chunk, palette)
        total += int(dist.sum())
    return total / pixels.size


def weighted_colour_histogram(pixels, weights):
    """Distinct rows, their counts and summed weights, sorted lexicographically."""
    colours, inverse, counts = np.unique(pixels, axis=0, return_inverse=True, return_counts=True)
    sums = np.zeros(len(colours), np.int64)
    np.add.at(sums, inverse.ravel(), weights.astype(np.int64))
    return colours, counts.astype(np.int64), sums


def _padded(image):
    return np.pad(image, [(1, 1), (1, 1)] + [(0, 0)] * (image.ndim - 2), mode="edge").astype(np.int64)


def contrast_map(pixels, width, importance_of_contrast):
    """Importance (n,) uint8 of every pixel: the table at h + v, the largest second
    differences over channels along the row (h) and the column (v), borders repeated."""
    image = _padded(pixels.reshape(-1, width, pixels.shape[1]))
    centre = image[1:-1, 1:-1]
    h = np.abs(image[1:-1, :-2] + image[1:-1, 2:] - 2 * centre).max(axis=2)
    v = np.abs(image[:-2, 1:-1] + image[2:, 1:-1] - 2 * centre).max(axis=2)
    return importance_of_contrast[(h + v).ravel()]


def cross_filter(source, width, take_max):
    """Max or min over each pixel and its 4 neighbours (borders repeated)."""
    image = _padded(source.reshape(-1, width))
    stack = np.stack([image[1:-1, 1:-1], image[1:-1, :-2], image[1:-1, 2:], image[:-2, 1:-1], image[2:, 1:-1]])
    return (stack.max(axis=0) if take_max else stack.min(axis=0)).astype(np.uint8).ravel()


def dither_map(labels, width, importance, strength_of_agreement):
    """Dither strength (n,) uint8 from runs of equal labels, pixel by pixel."""
    grid = labels.reshape(-1, width)
    height = grid.shape[0]
    strength = np.zeros(grid.shape, np.uint8)
    for y in range(height):
        x = 0
        while x < width:
            stop = x
            while stop < width and grid[y, stop] == grid[y, x]:
                stop += 1
            score = 10 * (stop - x)
            for column in range(x, stop):
                score += 15 * (y > 0 and grid[y - 1, column] == grid[y, x])
                score += 15 * (y + 1 < height and grid[y + 1, column] == grid[y, x])
            value = int(strength_of_agreement[min(score, len(strength_of_agreement) - 1)])
            for column in range(x, stop):
                scale = 383 if importance is None else int(importance[y * width + column]) + 128
                strength[y, column] = value * scale // 383
            x = stop
    return strength.ravel()


def floyd_steinberg(points, width, palette, level, strength_map, max_error, skip, guesses, strip_rows, warmup_rows):
    """Selective serpentine Floyd-Steinberg in plain Python, float32 as the kernel, strip
    by strip: each strip of strip_rows rows starts from zero error warmup_rows above it.

    points (n, d) uint8 row-major, palette (m, d) float32, guesses (n,) the label a
    pixel that applies no error keeps; returns labels (n,) int64 (-1 where skipped).
    """
    f32 = np.float32
    n_points, n_channels = points.shape
    height = n_points // width
    palette = palette.astype(np.float32)
    labels = np.full(n_points, -1, np.int64)
    for first in range(0, height, strip_rows):
        error_row = np.zeros((width + 2, n_channels), np.float32)
        error_below = np.zeros((width + 2, n_channels), np.float32)
        for y in range(max(0, first - warmup_rows), min(first + strip_rows, height)):
            step = 1 if y % 2 == 0 else -1
            for x in range(width) if step == 1 else range(width - 1, -1, -1):
                i = y * width + x
                if skip is not None and skip[i]:
                    continue
                share = f32(level) if strength_map is None else f32(level) / f32(255) * f32(strength_map[i])
                value = points[i].astype(np.float32)
                diffused = error_row[x + 1] * share
                length = f32(0)
                for e in diffused:
                    length += e * e
                target = value
                label = int(guesses[i])
                if length >= f32(2):
                    ratio = f32(1)
                    for j in range(n_channels):
                        if value[j] + diffused[j] > f32(280.5):
                            ratio = min(ratio, (f32(280.5) - value[j]) / diffused[j])
                        elif value[j] + diffused[j] < f32(-25.5):
                            ratio = min(ratio, (f32(-25.5) - value[j]) / diffused[j])
                    if length > f32(max_error):
                        ratio *= f32(0.8)
                    target = value + diffused * ratio
                    dist = ((target[None, :] - palette) ** 2).sum(axis=1, dtype=np.float32)
                    label = int(np.argmin(dist))
                if y >= first:
                    labels[i] = label
                error = target - palette[label]
                if (error * error).sum(dtype=np.float32) > f32(max_error):
                    error = error * f32(0.75)
                error = error / f32(16)
                error_row[x + 1 + step] += f32(7) * error
                error_below[x + 1 - step] += f32(3) * error
                error_below[x + 1] += f32(5) * error
                error_below[x + 1 + step] += error
            error_row, error_below = error_below, error_row
            error_below[:] = 0
    return labels


def oklab(colours):
    """OKLab of uint8 sRGB colours (n, 3), straight from Ottosson's published formulas."""
    c = colours.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = linear.T
    l_ = np.cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b)
    m_ = np.cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b)
    s_ = np.cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b)
    return np.stack(
        [
            0.2104542553 * l_ + 0.7936177850 * m_ - 0.0040720468 * s_,
            1.9779984951 * l_ - 2.4285922050 * m_ + 0.4505937099 * s_,
            0.0259040371 * l_ + 0.7827717662 * m_ - 0.8086757660 * s_,
        ],
        axis=1,
    )


def oklab_distance_sum(pixels, labels, palette_lab):
    rgb = np.repeat(pixels, 3, axis=1) if pixels.shape[1] == 1 else pixels
    return float(np.sqrt(((oklab(rgb) - palette_lab[labels]) ** 2).sum(axis=1)).sum())


def indexed_distance_sum(index, labels, colour_points, palette_points):
    return float(np.sqrt(((colour_points[index] - palette_points[labels]) ** 2).sum(axis=1)).sum())
