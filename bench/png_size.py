"""How to write an indexed PNG: bytes and encoding time of each choice, on quantized photos.

    python bench/png_size.py                      # bundled photos, k = 8, 32, 128, 256, plain and dithered
    python bench/png_size.py --large -k 16 256    # the 12 MP photo (../shared), compression levels only

Every photo is quantized once per (k, plain / dithered); the same palette and labels are
then encoded every way: Pillow's PNG writer (zlib level 3, fastkm's former default, and
``optimize=True``), fastkm's encoder (``fastkm/io/png.py``: no row filter) over zlib and
over libdeflate at several levels, and (photos only) each PNG row filter - sub, up, Paeth,
and the usual adaptive per-row choice (smallest sum of absolute residuals) - in four
palette orders: as fitted, by popularity, by luminance, and a nearest-colour tour from the
darkest entry (neighbouring indices hold similar colours, which is what filters need).
Bytes are reported relative to Pillow level 3 per (k, mode), summed over photos; time is
the best of two encodings, summed.  Writes ``bench/results/png_size[_12mp].md``.
"""

import argparse
import io
import os
import platform
import struct
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import deflate
import numpy as np
from PIL import Image

import fastkm
from fastkm.io import png

ROOT = Path(__file__).resolve().parent.parent
LARGE_PHOTO = ROOT.parent / "shared" / "images" / "large" / "012mp-bus.jpg"
FILTERS = {"sub": 1, "up": 2, "paeth": 4}
LUMA = np.array([0.299, 0.587, 0.114])


def pillow_png(palette, labels, **options):
    image = Image.frombytes("P", labels.shape[::-1], np.ascontiguousarray(labels).tobytes())
    image.putpalette(np.ascontiguousarray(palette[:, :3]).tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def filtered(rows, kind):
    """PNG filter ``kind`` (0 none, 1 sub, 2 up, 4 Paeth; one byte per pixel unit) of packed rows."""
    x = rows.astype(np.int16)
    left = np.zeros_like(x)
    left[:, 1:] = x[:, :-1]
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    if kind == 0:
        return rows
    if kind == 1:
        return (x - left).astype(np.uint8)
    if kind == 2:
        return (x - up).astype(np.uint8)
    corner = np.zeros_like(x)
    corner[1:, 1:] = x[:-1, :-1]
    estimate = left + up - corner
    to_left, to_up, to_corner = np.abs(estimate - left), np.abs(estimate - up), np.abs(estimate - corner)
    predicted = np.where((to_left <= to_up) & (to_left <= to_corner), left, np.where(to_up <= to_corner, up, corner))
    return (x - predicted).astype(np.uint8)


def filtered_png(palette, labels, how, level):
    """An indexed PNG with row filter ``how`` (a FILTERS name or "adaptive") over libdeflate."""
    bits = png.bit_depth(len(palette))
    rows = png.packed_rows(labels, bits)
    if how == "adaptive":
        kinds = [0, 1, 2, 4]
        candidates = np.stack([filtered(rows, kind) for kind in kinds])
        cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
        choice = cost.argmin(axis=0)
        body = candidates[choice, np.arange(rows.shape[0])]
        kind_bytes = np.array(kinds, np.uint8)[choice]
    else:
        body = filtered(rows, FILTERS[how])
        kind_bytes = np.full(rows.shape[0], FILTERS[how], np.uint8)
    scanlines = np.concatenate([kind_bytes[:, None], body], axis=1)
    return assembled(palette, labels.shape, bits, deflate.zlib_compress(scanlines.tobytes(), level))


def assembled(palette, shape, bits, compressed):
    """PNG bytes around compressed scanlines (the layout of fastkm/io/png.py, opaque palette)."""
    height, width = shape
    header = struct.pack(">IIBBBBB", width, height, bits, png.COLOUR_TYPE_PALETTE, 0, 0, 0)
    return (png.PNG_SIGNATURE + png._chunk(b"IHDR", header) + png._chunk(b"PLTE", palette[:, :3].tobytes())
            + png._chunk(b"IDAT", compressed) + png._chunk(b"IEND", b""))


def zlib_png(palette, labels, level):
    """fastkm's layout (no filter) over the standard library's zlib instead of libdeflate."""
    bits = png.bit_depth(len(palette))
    scanlines = np.concatenate([np.zeros((labels.shape[0], 1), np.uint8), png.packed_rows(labels, bits)], axis=1)
    return assembled(palette, labels.shape, bits, zlib.compress(scanlines.tobytes(), level))


def reordered(palette, labels, order):
    """The same image with its palette in ``order``: as fitted, popularity, luminance, tour."""
    n_entries = len(palette)
    if order == "fitted":
        return palette, labels
    if order == "popularity":
        permutation = np.argsort(-np.bincount(labels.ravel(), minlength=n_entries), kind="stable")
    elif order == "luminance":
        permutation = np.argsort(palette[:, :3] @ LUMA, kind="stable")
    else:  # nearest-colour tour from the darkest entry
        colours = palette[:, :3].astype(np.float64)
        current = int(np.argmin(colours @ LUMA))
        permutation, left = [current], set(range(n_entries)) - {current}
        while left:
            candidates = np.array(sorted(left))
            current = int(candidates[np.argmin(((colours[candidates] - colours[current]) ** 2).sum(axis=1))])
            permutation.append(current)
            left.remove(current)
        permutation = np.array(permutation)
    new_index = np.empty(n_entries, np.int64)
    new_index[permutation] = np.arange(n_entries)
    return palette[permutation], new_index[labels].astype(np.uint8)


def encoders(with_filters):
    found = {
        "Pillow zlib 3 (former default)": lambda p, l: pillow_png(p, l, compress_level=3),
        "Pillow optimize (former --optimize)": lambda p, l: pillow_png(p, l, optimize=True),
        "no filter, zlib 6": lambda p, l: zlib_png(p, l, 6),
        "no filter, zlib 9": lambda p, l: zlib_png(p, l, 9),
    }
    for level in (1, 3, 6, 7, 9, 10, 11, 12):
        mark = {
            png.DEFAULT_LEVEL: " (default above 1 MiB of scanlines)",
            png.NEAR_OPTIMAL_LEVEL: f" (default up to {png.NEAR_OPTIMAL_MAX_BYTES >> 20} MiB of scanlines)",
            png.OPTIMIZE_LEVEL: " (--optimize)",
        }.get(level, "")
        found[f"no filter, libdeflate {level}{mark}"] = (
            lambda level: lambda p, l: png.indexed_png(p[:, :3], l, level=level))(level)
    if with_filters:
        for order in ("fitted", "popularity", "luminance", "tour"):
            for how in (*FILTERS, "adaptive"):
                found[f"{how} filter, {order} order, libdeflate {png.DEFAULT_LEVEL}"] = (
                    lambda order, how: lambda p, l: filtered_png(*reordered(p, l, order), how, png.DEFAULT_LEVEL)
                )(order, how)
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="*", type=Path, help="photos (default: the bundled PNGs)")
    parser.add_argument("--large", action="store_true", help="the 12 MP photo, compression levels only")
    parser.add_argument("-k", "--colors", type=int, nargs="+", default=[8, 32, 128, 256])
    args = parser.parse_args(argv)
    photos = args.photos or ([LARGE_PHOTO] if args.large else sorted((ROOT / "sample_images").glob("*.png")))
    found = encoders(with_filters=not args.large)
    size, seconds = defaultdict(int), defaultdict(float)
    groups = []
    for path in photos:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        for n_colors in args.colors:
            for dithered in (False, True):
                group = f"k={n_colors} {'dithered' if dithered else 'plain'}"
                groups += [group] if group not in groups else []
                result = fastkm.quantize(pixels, n_colors, dither=dithered)
                palette, labels = result.palette, result.labels
                for name, encode in found.items():
                    best = float("inf")
                    for _ in range(2):
                        start = time.perf_counter()
                        data = encode(palette, labels)
                        best = min(best, time.perf_counter() - start)
                    with Image.open(io.BytesIO(data)) as decoded:  # every variant holds the same pixels
                        assert np.array_equal(np.asarray(decoded.convert("RGB")), result.image), name
                    size[name, group] += len(data)
                    seconds[name, group] += best
                print(f"{path.name} {group}: done", flush=True)
    base = "Pillow zlib 3 (former default)"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Indexed PNG: bytes and encoding time of each way to write it", "",
        f"`python bench/png_size.py {' '.join(sys.argv[1:] if argv is None else argv)}`, run {when} at commit "
        f"{commit} on {platform.machine()}, {os.cpu_count()} cores (a shared machine: times are indicative; both "
        "columns are relative to Pillow zlib level 3 on the same palette and labels in the same run).",
        f"Photos: {', '.join(p.name for p in photos)}. Bytes: total over photos ÷ Pillow zlib 3's, per k and mode; "
        "time: total of the best of two encodings ÷ Pillow zlib 3's, over all groups "
        f"(Pillow zlib 3 total: {sum(seconds[base, g] for g in groups):.2f} s).", "",
        "| encoder | " + " | ".join(groups) + " | time |",
        "|---|" + "---|" * (len(groups) + 1),
    ]
    base_time = sum(seconds[base, g] for g in groups)
    for name in found:
        ratios = " | ".join(f"{size[name, g] / size[base, g]:.3f}" for g in groups)
        lines.append(f"| {name} | {ratios} | {sum(seconds[name, g] for g in groups) / base_time:.2f} |")
    lines += ["", "Bytes of Pillow zlib 3 per group: " + ", ".join(f"{g}: {size[base, g]:,}" for g in groups) + "."]
    target = ROOT / "bench" / "results" / f"png_size{'_12mp' if args.large else ''}.md"
    target.write_text("\n".join(lines) + "\n")
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
