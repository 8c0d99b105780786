"""Selective Floyd-Steinberg error diffusion onto a palette, in parallel strips."""

import numpy as np
from llvmlite import ir  # numba's own code generator (installed with it)
from numba import njit, types
from numba.extending import intrinsic

from ._threads import readonly, run_blocks_dynamic

# Rows of one strip: strips are dithered at once (one range of strips per thread), each from zero error WARMUP_ROWS
# rows above its first (whose labels it does not write), so the seam between strips
# does not show.  Fixed sizes: the labels are the same for any number of threads.
STRIP_ROWS = 64
WARMUP_ROWS = 8
# A diffused error whose squared length (over channels) is below this is not applied:
# it would flip few pixels, and the file is smaller where flat areas stay flat.
MIN_DIFFUSED = np.float32(2.0)
# A target may leave the 0..255 cube by this much before the error is scaled down.
GAMUT_SLACK = np.float32(25.5)
# Slack of the nearest-entry search's stopping test (relative and absolute): float32
# distances are compared with float32 sums, which may differ in the last bits.
SEARCH_SLACK = np.float32(1.001)
SEARCH_SLACK_ABSOLUTE = np.float32(1e-3)
# The search tries a guess's nearest ALWAYS_TRIED - 1 neighbours before its stopping test
# may end it: an exit after a varying number of them is a mispredicted branch, which
# costs more than the few distances (on the 12 MP photo, one thread, four alternating
# runs: 3-10 % less dithering time at 256 colours, RGB and OKLab; no change at 16).
ALWAYS_TRIED = 8
# The 3-channel kernel compares a target with its guess's BLOCK nearest entries (the
# guess first) at once, in one vector of BLOCK float32 distances: exact, without the
# branches of a walk whose length varies by pixel (palettes of up to BLOCK entries need
# nothing else).  A vector's minimum takes log2(BLOCK) steps that the next pixel waits
# for, so each thread dithers LANES strips in step, whose pixels do not wait on each
# other.  On four captured 12 MP inputs (RGB and OKLab, 16 and 256 colours), one thread,
# the same labels: 0.38 -> 0.26 s, 0.44 -> 0.32 s, 0.46 -> 0.31 s and 0.36 -> 0.29 s
# against the neighbour walk one strip at a time (3 or 4 lanes: slower than 2).
BLOCK = 16
LANES = 2


_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_BLOCK_F32 = ir.VectorType(_F32, BLOCK)
_BLOCK_I32 = ir.VectorType(_I32, BLOCK)


def _splat(builder, value):
    vector = builder.insert_element(ir.Constant(_BLOCK_F32, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(vector, ir.Constant(_BLOCK_F32, ir.Undefined), ir.Constant(_BLOCK_I32, [0] * BLOCK))


@intrinsic
def _nearest_in_block(typingctx, t0, t1, t2, block_points, first):
    """(squared distance, position, n_positions) of the point nearest to (t0, t1, t2)
    float32 among the BLOCK points of block_points (1-D float32) from index 3 * first:
    BLOCK values of channel 0, then of 1, then of 2.  position is the lowest position at
    that distance, n_positions how many are at it.  Each distance is summed in channel
    order, in float32, as _squared_distance_3 does: the same values.
    """
    signature = types.Tuple((types.float32, types.int32, types.int32))(t0, t1, t2, block_points, first)

    def codegen(context, builder, signature, args):
        target, points, start = args[:3], args[3], args[4]
        data = context.make_array(signature.args[3])(context, builder, points).data
        start = builder.mul(start, ir.Constant(start.type, 3))
        distances = None
        for j, value in enumerate(target):
            offset = builder.add(start, ir.Constant(start.type, j * BLOCK))
            address = builder.bitcast(builder.gep(data, [offset], inbounds=True), _BLOCK_F32.as_pointer())
            gap = builder.fsub(_splat(builder, value), builder.load(address, align=4))
            square = builder.fmul(gap, gap)
            distances = square if distances is None else builder.fadd(distances, square)
        # The minimum by halving: each step compares the vector with itself rotated.
        smallest = distances
        shift = BLOCK // 2
        while shift >= 1:
            rotation = ir.Constant(_BLOCK_I32, [(j + shift) % BLOCK for j in range(BLOCK)])
            rotated = builder.shuffle_vector(smallest, ir.Constant(_BLOCK_F32, ir.Undefined), rotation)
            smallest = builder.select(builder.fcmp_ordered("<", rotated, smallest), rotated, smallest)
            shift //= 2
        smallest = builder.extract_element(smallest, ir.Constant(_I32, 0))
        at_smallest = builder.fcmp_ordered("==", distances, _splat(builder, smallest))
        mask = builder.zext(builder.bitcast(at_smallest, ir.IntType(BLOCK)), _I32)
        module = builder.module
        lowest_bit = module.declare_intrinsic("llvm.cttz", [_I32], ir.FunctionType(_I32, [_I32, ir.IntType(1)]))
        bit_count = module.declare_intrinsic("llvm.ctpop", [_I32], ir.FunctionType(_I32, [_I32]))
        position = builder.call(lowest_bit, [mask, ir.Constant(ir.IntType(1), 0)])
        n_positions = builder.call(bit_count, [mask])
        return context.make_tuple(builder, signature.return_type, [smallest, position, n_positions])

    return signature, codegen


def neighbour_blocks(palette, neighbours):
    """For every entry g of palette (m, 3) float32, its BLOCK nearest entries (the first
    BLOCK of neighbours[g], (m, L) int32) as the vectors _nearest_in_block reads.

    Returns block_points (m * 3 * BLOCK,) float32 (entry g's block from 3 * BLOCK * g:
    channel 0 of each entry, then 1, then 2) and block_entries (m * BLOCK,) int32, the
    entries.  A list shorter than BLOCK is padded with points 1e9 away, never nearest.
    """
    n_entries, n_listed = neighbours.shape[0], min(BLOCK, neighbours.shape[1])
    block_entries = np.zeros((n_entries, BLOCK), dtype=np.int32)
    block_entries[:, :n_listed] = neighbours[:, :n_listed]
    block_points = np.full((n_entries, 3, BLOCK), 1e9, dtype=np.float32)
    block_points[:, :, :n_listed] = np.transpose(palette[neighbours[:, :n_listed]], (0, 2, 1))
    return block_points.ravel(), block_entries.ravel()


@njit(cache=True, nogil=True)
def _squared_distance(target, palette, c):
    dist = np.float32(0.0)
    for j in range(target.shape[0]):
        t = target[j] - palette[c, j]
        dist += t * t
    return dist


@njit(cache=True, nogil=True)
def _nearest_entry(target, palette):
    """Index of the palette row (m, d) float32 nearest to target (d,) float32; lowest on ties."""
    best = 0
    best_dist = np.inf
    for c in range(palette.shape[0]):
        dist = _squared_distance(target, palette, c)
        if dist < best_dist:
            best_dist = dist
            best = c
    return best


@njit(cache=True, nogil=True)
def _nearest_from(target, palette, guess, neighbours, neighbour_gaps, guess_radius):
    """The entry nearest to target (lowest index on ties), searched from a guess.

    The guess g is kept when within its guess radius (then it is strictly nearest).
    Otherwise g's neighbours are tried in order of their distance from g: an entry c
    further than |t - g| + |t - best| from g is further from t than the best found
    (triangle inequality), and so are all after it (the test starts at the
    ALWAYS_TRIED-th).  When g's list ends before that test stops the search, every
    entry is tried.
    """
    best_dist = _squared_distance(target, palette, np.int64(guess))  # one signature for any index type
    if best_dist < guess_radius[guess]:
        return guess
    best = guess
    from_guess = np.sqrt(best_dist)
    bound = SEARCH_SLACK * (from_guess + from_guess) + SEARCH_SLACK_ABSOLUTE
    n_listed = neighbours.shape[1]
    for r in range(1, n_listed):
        if r >= ALWAYS_TRIED and neighbour_gaps[guess, r] > bound:
            return best
        c = neighbours[guess, r]
        dist = _squared_distance(target, palette, np.int64(c))
        if dist < best_dist or (dist == best_dist and c < best):
            best_dist = dist
            best = c
            bound = SEARCH_SLACK * (from_guess + np.sqrt(best_dist)) + SEARCH_SLACK_ABSOLUTE
    if n_listed == palette.shape[0]:
        return best
    return _nearest_entry(target, palette)


def floyd_steinberg(
    points, width, palette, level, strength_map, max_error, skip, guesses, neighbours, neighbour_gaps, guess_radius,
    labels, rows=None, squared_error=False,
):
    """Selective Floyd-Steinberg error diffusion onto a palette, serpentine, in strips.

    points         IN  (n, D) uint8, the pixels of an image n / width rows high, row-major,
                   their d channels first (D >= d; the others are not read)
    palette        IN  (m, d) float32, in the same space as points
    level          IN  0..1, the share of the error received that a pixel applies
    strength_map   IN  (n,) uint8, a further share (0..255 = none..all) per pixel, or
                   (0,) for all everywhere
    max_error      IN  squared error length above which an error is damped
    skip           IN  (n,) bool: pixels left alone (their labels are kept, they pass on
                   no error and the error sent to them is dropped); (0,) for none
    guesses        IN  (n,) integer, each pixel's undithered label: where its search
                   starts, and its label when it applies no error
    neighbours     IN  (m, L) int32, for every entry the L <= m entries nearest to it,
                   nearest first (itself); neighbour_gaps IN (m, L) float32 their
                   distances (not squared) from it
    guess_radius   IN  (m,) float32: a squared distance below which an entry is surely
                   the nearest (under a quarter of its squared distance to the nearest
                   other entry)
    labels         OUT (n,) integer, palette index of every pixel
    rows           IN  (n,) uint32: the row of points that holds each pixel's value (points
                   are then the image's distinct values, e.g. its colours' OKLab codes),
                   or None when points has a row per pixel
    squared_error  IN  whether to return the summed squared distance, over the pixels not
                   skipped, from each pixel's value to its entry (not to its target): the
                   result's squared error when points and palette are the space errors
                   are measured in (an RGB or grey fit), without a pass of its own

    Returns the squared error (float, summed per strip, then over strips in order: the
    same for any number of threads) when asked, else None.

    A pixel's target is its value plus the error it received times level and its
    strength; a received error shorter than sqrt(MIN_DIFFUSED) is not applied, and the
    pixel keeps its guess (the label the plain mapping gives it), with no search: 55 %
    of a 12 MP photo's pixels at 256 OKLab colours, 20 % at 256 RGB ones.  When the target
    would leave the cube 0..255 by more than GAMUT_SLACK, the whole error is scaled
    down until it does not (its direction, the hue, is kept), and an error longer than
    sqrt(max_error) applies 0.8 of itself.  The target takes its nearest entry, and its
    remaining error (times 0.75 when longer than sqrt(max_error)) goes
    to the unvisited neighbours: 7/16 ahead, 3/16 behind below, 5/16 below, 1/16
    ahead below.  Rows alternate direction by their index in the image.
    """
    rows = np.zeros(0, dtype=np.uint32) if rows is None else rows
    points, palette, strength_map, skip, guesses, rows = (
        readonly(points), readonly(palette), readonly(strength_map), readonly(skip), readonly(guesses),
        readonly(rows.astype(np.uint32, copy=False)),
    )
    neighbours, neighbour_gaps, guess_radius = readonly(neighbours), readonly(neighbour_gaps), readonly(guess_radius)
    n_pixels = labels.shape[0]
    n_strips = (n_pixels // width + STRIP_ROWS - 1) // STRIP_ROWS
    if points.shape[1] < palette.shape[1]:
        raise ValueError(f"points have {points.shape[1]} channels, the palette {palette.shape[1]}")
    # Three channels (RGB, OKLab, grey padded) take a kernel whose per-pixel values are
    # scalars and whose search is a vector compare (BLOCK, LANES): the same float32
    # operations in the same order, so the same labels, in about a third of the time.
    strip_errors = np.zeros(n_strips if squared_error else 0, dtype=np.float64)
    if palette.shape[1] == 3:
        block_points, block_entries = neighbour_blocks(palette, neighbours)
        run_blocks_dynamic(_dither_strips_3, (n_strips + LANES - 1) // LANES, points, rows, width, palette, level,
                           strength_map, max_error, skip, guesses, neighbours, neighbour_gaps, block_points,
                           block_entries, labels, strip_errors)
    else:
        run_blocks_dynamic(_dither_strips, n_strips, points, rows, width, palette, level, strength_map, max_error,
                           skip, guesses, neighbours, neighbour_gaps, guess_radius, labels, strip_errors)
    if not squared_error:
        return None
    total = 0.0
    for strip_error in strip_errors:
        total += float(strip_error)
    return total


@njit(cache=True, nogil=True)
def _squared_distance_3(t0, t1, t2, palette, c):
    """|t - palette[c]|^2 in float32, summed in channel order (small: LLVM inlines it)."""
    dist = np.float32(0.0)
    e = t0 - palette[c, 0]
    dist += e * e
    e = t1 - palette[c, 1]
    dist += e * e
    e = t2 - palette[c, 2]
    dist += e * e
    return dist


# error_model="numpy": the gamut's divisions need no zero test (a target leaves the cube
# only along a non-zero error), and Python's would add a branch to each.
@njit(cache=True, nogil=True, error_model="numpy")
def _dither_strips_3(first_group, stop_group, points, rows, width, palette, level, strength_map, max_error, skip,
                     guesses, neighbours, neighbour_gaps, block_points, block_entries, labels, strip_errors):
    """_dither_strips for 3-channel points on groups of LANES strips (group g: strips
    g * LANES ...), the strips of a group in step, every per-pixel value a scalar.

    A strip's row at step `off` is strip * STRIP_ROWS - WARMUP_ROWS + off: the same
    parity, so the same direction, in every lane; a lane whose row is above or below
    the image sits that row out.  Each lane's error rows and carried errors are its own,
    and each of its cells sums its terms in the order _dither_strips does: the same
    floats, the same labels.
    """
    n_listed = neighbours.shape[1]
    n_entries = palette.shape[0]
    n_points = labels.shape[0]
    use_rows = rows.shape[0] > 0
    height = n_points // width
    n_strips = (height + STRIP_ROWS - 1) // STRIP_ROWS
    use_map = strength_map.shape[0] > 0
    use_skip = skip.shape[0] > 0
    full = np.float32(level)
    map_scale = np.float32(level) / np.float32(255.0)
    low = -GAMUT_SLACK
    high = np.float32(255.0) + GAMUT_SLACK
    zero = np.float32(0.0)
    error_row = np.empty((LANES, width + 2, 3), dtype=np.float32)
    error_below = np.empty((LANES, width + 2, 3), dtype=np.float32)
    # Per lane: the next pixel's error (7/16), then the two cells of the row below still
    # to receive some (below[x] and below[x + step]), 3 channels each.
    carried = np.empty((LANES, 9), dtype=np.float32)
    lane_rows = np.empty(LANES, dtype=np.int64)
    use_errors = strip_errors.shape[0] > 0
    lane_errors = np.empty(LANES, dtype=np.float64)
    for group in range(first_group, stop_group):
        # A lane that starts late (the image's first strip has no warm-up) starts from
        # zero error too: a row it sits out writes only its padding.
        error_row[:] = 0.0
        error_below[:] = 0.0
        lane_errors[:] = 0.0
        for off in range(WARMUP_ROWS + STRIP_ROWS):
            step = 1 if off % 2 == 0 else -1
            for lane in range(LANES):
                strip = group * LANES + lane
                y = strip * STRIP_ROWS - WARMUP_ROWS + off
                lane_rows[lane] = y if strip < n_strips and 0 <= y < height else -1
            carried[:] = 0.0
            for s in range(width):
                x = s if step == 1 else width - 1 - s
                column = np.uint64(x + 1)  # the error rows have a column of padding each side
                behind = np.uint64(x + 1 - step)
                for lane in range(LANES):
                    y = lane_rows[lane]
                    if y < 0:
                        continue
                    i = np.uint64(y * width + x)
                    if use_skip and skip[i]:
                        # Left alone: it passes on no error, and the error sent to it is dropped.
                        e0, e1, e2 = zero, zero, zero
                    else:
                        share = map_scale * np.float32(strength_map[i]) if use_map else full
                        row = np.uint64(rows[i]) if use_rows else i
                        v0 = np.float32(points[row, np.uint64(0)])
                        v1 = np.float32(points[row, np.uint64(1)])
                        v2 = np.float32(points[row, np.uint64(2)])
                        d0 = (error_row[lane, column, 0] + carried[lane, 0]) * share
                        d1 = (error_row[lane, column, 1] + carried[lane, 1]) * share
                        d2 = (error_row[lane, column, 2] + carried[lane, 2]) * share
                        length = zero
                        length += d0 * d0
                        length += d1 * d1
                        length += d2 * d2
                        if length < MIN_DIFFUSED:
                            # No error applied: the pixel keeps its undithered label, no search.
                            t0, t1, t2 = v0, v1, v2
                            label = np.int64(guesses[i])
                        else:
                            # The common case (target inside the gamut) takes no multiply
                            # by a ratio of 1: the same floats (d * 1 is d), sooner.
                            t0 = v0 + d0
                            t1 = v1 + d1
                            t2 = v2 + d2
                            if (low <= t0 <= high) and (low <= t1 <= high) and (low <= t2 <= high):
                                if length > max_error:
                                    t0 = v0 + d0 * np.float32(0.8)
                                    t1 = v1 + d1 * np.float32(0.8)
                                    t2 = v2 + d2 * np.float32(0.8)
                            else:
                                ratio = np.float32(1.0)
                                if t0 > high:
                                    ratio = min(ratio, (high - v0) / d0)
                                elif t0 < low:
                                    ratio = min(ratio, (low - v0) / d0)
                                if t1 > high:
                                    ratio = min(ratio, (high - v1) / d1)
                                elif t1 < low:
                                    ratio = min(ratio, (low - v1) / d1)
                                if t2 > high:
                                    ratio = min(ratio, (high - v2) / d2)
                                elif t2 < low:
                                    ratio = min(ratio, (low - v2) / d2)
                                if length > max_error:
                                    ratio *= np.float32(0.8)
                                t0 = v0 + d0 * ratio
                                t1 = v1 + d1 * ratio
                                t2 = v2 + d2 * ratio
                            # The nearest of the guess's block; past a block, _nearest_from's
                            # walk through the guess's neighbours from the BLOCK-th, which
                            # its stopping test usually ends at once.  Written out: as a
                            # call (7 arrays) it took 1.3-1.7 times as long.
                            guess = np.int64(guesses[i])
                            first = guess * BLOCK
                            best_dist, position, n_positions = _nearest_in_block(t0, t1, t2, block_points, first)
                            label = np.int64(block_entries[first + position])
                            if n_positions > 1:  # ties: the lowest index, not the nearest to the guess
                                for r in range(position + 1, BLOCK):
                                    c = np.int64(block_entries[first + r])
                                    if c < label and _squared_distance_3(t0, t1, t2, palette, c) == best_dist:
                                        label = c
                            stopped = False
                            if n_listed > BLOCK:
                                from_guess = np.sqrt(_squared_distance_3(t0, t1, t2, palette, guess))
                                bound = SEARCH_SLACK * (from_guess + np.sqrt(best_dist)) + SEARCH_SLACK_ABSOLUTE
                                for r in range(BLOCK, n_listed):
                                    if neighbour_gaps[guess, r] > bound:
                                        stopped = True
                                        break
                                    c = np.int64(neighbours[guess, r])
                                    dist = _squared_distance_3(t0, t1, t2, palette, c)
                                    if dist < best_dist or (dist == best_dist and c < label):
                                        best_dist = dist
                                        label = c
                                        bound = SEARCH_SLACK * (from_guess + np.sqrt(best_dist)) + SEARCH_SLACK_ABSOLUTE
                            if not stopped and n_listed < n_entries:
                                # The list ended before the stopping test did: every entry.
                                best_dist = np.float32(np.inf)
                                for c in range(n_entries):
                                    dist = _squared_distance_3(t0, t1, t2, palette, c)
                                    if dist < best_dist:
                                        best_dist = dist
                                        label = c
                        if off >= WARMUP_ROWS:
                            labels[i] = label
                            if use_errors:
                                g0 = v0 - palette[label, 0]
                                g1 = v1 - palette[label, 1]
                                g2 = v2 - palette[label, 2]
                                lane_errors[lane] += np.float64(g0 * g0) + np.float64(g1 * g1) + np.float64(g2 * g2)
                        e0 = t0 - palette[label, 0]
                        e1 = t1 - palette[label, 1]
                        e2 = t2 - palette[label, 2]
                        length = zero
                        length += e0 * e0
                        length += e1 * e1
                        length += e2 * e2
                        # e * damping / 16 as one multiply (by a power of two: the same float).
                        scale = np.float32(0.75 / 16.0) if length > max_error else np.float32(1.0 / 16.0)
                        e0 = e0 * scale
                        e1 = e1 * scale
                        e2 = e2 * scale
                    # Each cell's terms in the order they were added in memory before.
                    carried[lane, 0] = np.float32(7.0) * e0
                    carried[lane, 1] = np.float32(7.0) * e1
                    carried[lane, 2] = np.float32(7.0) * e2
                    error_below[lane, behind, 0] = carried[lane, 3] + np.float32(3.0) * e0
                    error_below[lane, behind, 1] = carried[lane, 4] + np.float32(3.0) * e1
                    error_below[lane, behind, 2] = carried[lane, 5] + np.float32(3.0) * e2
                    carried[lane, 3] = carried[lane, 6] + np.float32(5.0) * e0
                    carried[lane, 4] = carried[lane, 7] + np.float32(5.0) * e1
                    carried[lane, 5] = carried[lane, 8] + np.float32(5.0) * e2
                    carried[lane, 6] = e0
                    carried[lane, 7] = e1
                    carried[lane, 8] = e2
            # The row's last column, then the padding beyond it: every column of the row
            # below has then been written, and needs no zeroing.
            last = np.uint64(width if step == 1 else 1)
            beyond = np.uint64(width + 1 if step == 1 else 0)
            for lane in range(LANES):
                for j in range(3):
                    error_below[lane, last, j] = carried[lane, 3 + j]
                    error_below[lane, beyond, j] = carried[lane, 6 + j]
            error_row, error_below = error_below, error_row
        if use_errors:
            for lane in range(LANES):
                if group * LANES + lane < n_strips:
                    strip_errors[group * LANES + lane] = lane_errors[lane]


@njit(cache=True, nogil=True)
def _dither_strips(first_strip, stop_strip, points, rows, width, palette, level, strength_map, max_error, skip,
                   guesses, neighbours, neighbour_gaps, guess_radius, labels, strip_errors):
    """floyd_steinberg on strips first_strip..stop_strip-1."""
    n_points = labels.shape[0]
    use_rows = rows.shape[0] > 0
    n_channels = palette.shape[1]
    height = n_points // width
    use_map = strength_map.shape[0] > 0
    use_skip = skip.shape[0] > 0
    full = np.float32(level)
    map_scale = np.float32(level) / np.float32(255.0)
    low = -GAMUT_SLACK
    high = np.float32(255.0) + GAMUT_SLACK
    use_errors = strip_errors.shape[0] > 0
    for strip in range(first_strip, stop_strip):
        first = strip * STRIP_ROWS
        strip_error = 0.0
        error_row = np.zeros((width + 2, n_channels), dtype=np.float32)
        error_below = np.zeros((width + 2, n_channels), dtype=np.float32)
        value = np.empty(n_channels, dtype=np.float32)
        diffused = np.empty(n_channels, dtype=np.float32)
        target = np.empty(n_channels, dtype=np.float32)
        for y in range(max(0, first - WARMUP_ROWS), min(first + STRIP_ROWS, height)):
            step = 1 if y % 2 == 0 else -1
            for s in range(width):
                x = s if step == 1 else width - 1 - s
                i = y * width + x
                if use_skip and skip[i]:
                    continue
                share = map_scale * np.float32(strength_map[i]) if use_map else full
                row = np.uint64(rows[i]) if use_rows else np.uint64(i)
                length = np.float32(0.0)
                for j in range(n_channels):
                    value[j] = np.float32(points[row, j])
                    diffused[j] = error_row[x + 1, j] * share
                    length += diffused[j] * diffused[j]
                if length < MIN_DIFFUSED:
                    # No error applied: the pixel keeps its undithered label, no search.
                    for j in range(n_channels):
                        target[j] = value[j]
                    label = np.int64(guesses[i])
                else:
                    ratio = np.float32(1.0)
                    for j in range(n_channels):
                        v = value[j] + diffused[j]
                        if v > high:
                            ratio = min(ratio, (high - value[j]) / diffused[j])
                        elif v < low:
                            ratio = min(ratio, (low - value[j]) / diffused[j])
                    if length > max_error:
                        ratio *= np.float32(0.8)
                    for j in range(n_channels):
                        target[j] = value[j] + diffused[j] * ratio
                    label = _nearest_from(target, palette, guesses[i], neighbours, neighbour_gaps, guess_radius)
                if y >= first:
                    labels[i] = label
                    if use_errors:
                        for j in range(n_channels):
                            g = value[j] - palette[label, j]
                            strip_error += np.float64(g * g)
                length = np.float32(0.0)
                for j in range(n_channels):
                    diffused[j] = target[j] - palette[label, j]
                    length += diffused[j] * diffused[j]
                damping = np.float32(0.75) if length > max_error else np.float32(1.0)
                for j in range(n_channels):
                    e = diffused[j] * damping / np.float32(16.0)
                    error_row[x + 1 + step, j] += np.float32(7.0) * e
                    error_below[x + 1 - step, j] += np.float32(3.0) * e
                    error_below[x + 1, j] += np.float32(5.0) * e
                    error_below[x + 1 + step, j] += e
            error_row, error_below = error_below, error_row
            error_below[:] = 0.0
        if use_errors:
            strip_errors[strip] = strip_error
