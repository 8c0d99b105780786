"""Moments, two-way splits and per-point errors: the pieces of the swap proposals."""

import numpy as np
from numba import njit



@njit(cache=True, nogil=True, fastmath={"reassoc"})
def weighted_moments(points, weights):
    """Per channel, sum of weight * value and of weight * value^2.

    points  IN (n, d) uint8
    weights IN (n,) int64 or float64
    returns (2, d) float64: row 0 the first moments, row 1 the second (exact for
            integer weights while the sums stay below 2^53)

    A channel at a time into local sums, which reassociation lets run as SIMD lanes
    (12 MP photo's 389k colours: 1.6 -> 1.3 ms).  The order of the additions is fixed
    when compiled; with integer weights every partial sum is an exact integer, so any
    order gives the same moments.
    """
    moments = np.empty((2, points.shape[1]), dtype=np.float64)
    moments[:] = 0
    for j in range(points.shape[1]):
        first = 0.0
        second = 0.0
        for i in range(points.shape[0]):
            weighted = np.float64(weights[i]) * np.float64(points[i, j])
            first += weighted
            second += weighted * np.float64(points[i, j])
        moments[0, j] = first
        moments[1, j] = second
    return moments


@njit(cache=True, nogil=True)
def _weighted_member_sum(points, weights, members, out):
    """out[:] = sum of weight * point over the members (in member order); returns the
    weights' sum."""
    out[:] = 0.0
    total = 0.0
    for i in members:
        w = weights[i]
        total += w
        for j in range(points.shape[1]):
            out[j] += w * np.float64(points[i, j])
    return total


@njit(cache=True, nogil=True)
def weighted_scatter(points, weights, members):
    """Weighted scatter matrix of the member points about their weighted mean.

    points  IN (n, d) uint8
    weights IN (n,) float64
    members IN (m,) int64, indices into points (one cluster)
    returns (d, d) float64: sum_i w_i (x_i - mean)(x_i - mean)^T over the members
    """
    n_channels = points.shape[1]
    mean = np.empty(n_channels, dtype=np.float64)
    total = _weighted_member_sum(points, weights, members, mean)
    scatter = np.empty((n_channels, n_channels), dtype=np.float64)
    scatter[:] = 0
    if total <= 0.0:
        return scatter
    mean /= total
    centred = np.empty(n_channels, dtype=np.float64)
    for i in members:
        w = weights[i]
        for j in range(n_channels):
            centred[j] = np.float64(points[i, j]) - mean[j]
        for a in range(n_channels):
            for b in range(n_channels):
                scatter[a, b] += w * centred[a] * centred[b]
    return scatter


@njit(cache=True, nogil=True)
def split_in_two(points, weights, members, axis, n_iter, halves):
    """A 2-means of the member points: cut across ``axis`` through their weighted mean,
    then ``n_iter`` rounds of means and reassignment.

    points  IN  (n, d) uint8
    weights IN  (n,) float64
    members IN  (m,) int64, indices into points
    axis    IN  (d,) float64, the direction of the first cut
    halves  OUT (2, d) float64: the two means, of the last assignment the rounds
                compared (the first half is where points lie past the cut)
    returns True, or False when every point falls on one side (halves is then unset)

    Serial and in member order, so the split never depends on the thread count.
    """
    n_channels = points.shape[1]
    n_members = members.shape[0]
    total_sum = np.empty(n_channels, dtype=np.float64)
    total = _weighted_member_sum(points, weights, members, total_sum)
    first = np.empty(n_members, dtype=np.bool_)
    for m in range(n_members):
        i = members[m]
        along = 0.0
        for j in range(n_channels):
            along += (np.float64(points[i, j]) - total_sum[j] / total) * axis[j]
        first[m] = along > 0.0
    first_sum = np.empty(n_channels, dtype=np.float64)
    direction = np.empty(n_channels, dtype=np.float64)
    split = False
    for _ in range(n_iter):
        first_weight = 0.0
        first_sum[:] = 0.0
        for m in range(n_members):
            if first[m]:
                i = members[m]
                w = weights[i]
                first_weight += w
                for j in range(n_channels):
                    first_sum[j] += w * np.float64(points[i, j])
        if not (0.0 < first_weight < total):
            break
        split = True
        # Nearer the first half: x.(b - a) < (|b|^2 - |a|^2) / 2.
        threshold = 0.0
        for j in range(n_channels):
            halves[0, j] = first_sum[j] / first_weight
            halves[1, j] = (total_sum[j] - first_sum[j]) / (total - first_weight)
            direction[j] = halves[1, j] - halves[0, j]
            threshold += 0.5 * (halves[1, j] * halves[1, j] - halves[0, j] * halves[0, j])
        for m in range(n_members):
            i = members[m]
            along = 0.0
            for j in range(n_channels):
                along += np.float64(points[i, j]) * direction[j]
            first[m] = along < threshold
    return split


@njit(cache=True, nogil=True)
def point_errors(points, weights, centres, labels, errors, cluster_weights, cluster_errors):
    """Each point's weighted squared distance to its centre, and per-cluster totals.

    points          IN  (n, d) uint8
    weights         IN  (n,) float64
    centres         IN  (k, d) float64
    labels          IN  (n,) int32, each point's centre
    errors          OUT (n,) float64: w_i |x_i - centres[labels[i]]|^2
    cluster_weights OUT (k,) float64: the weights of each centre's points, summed
    cluster_errors  OUT (k,) float64: their errors, summed

    Serial, in point order: the sums never depend on the thread count.
    """
    cluster_weights[:] = 0.0
    cluster_errors[:] = 0.0
    for i in range(points.shape[0]):
        label = labels[i]
        distance = 0.0
        for j in range(points.shape[1]):
            gap = np.float64(points[i, j]) - centres[label, j]
            distance += gap * gap
        error = weights[i] * distance
        errors[i] = error
        cluster_weights[label] += weights[i]
        cluster_errors[label] += error
