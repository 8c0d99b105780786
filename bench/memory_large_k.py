"""Peak memory at large k, and of a tiny GIF with a huge transparent canvas, each in a
fresh process.

    python bench/memory_large_k.py [IMAGE] [-k 16 4096 65536] [--canvas 14000] [--write]

For each k: decodes IMAGE (default: the bundled 768x512 parrots photo), resets the
process's peak resident memory (Linux: writing 5 to /proc/self/clear_refs resets
VmHWM), runs fastkm.quantize once (kernels loaded beforehand on a small image) and
reports the peak and how far it rose above the memory before the call.  Nothing may
grow with k squared: a (k, k) float64 matrix would be 134 MB at k = 4096 and 34 GB at
k = 65536.

--canvas SIDE builds a 53-byte GIF whose 2x2 frame (one transparent pixel) sits on a
SIDE x SIDE canvas (14000: 196 megapixels, under the default --max-pixels) and
measures read_image and quantize together, from before the read.  --write appends the
table to bench/results/memory_large_k.md.
"""

import argparse
import json
import platform
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = ROOT / "sample_images" / "kodim23.png"
RESULTS = ROOT / "bench" / "results" / "memory_large_k.md"

CHILD = """
import gc, json, time
import numpy as np
import fastkm
from fastkm.io import read_image

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

def reset_peak():
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")

fastkm.quantize(np.random.default_rng(0).integers(0, 256, (64, 64, 4), dtype=np.uint8), 16)
if {canvas}:
    reset_peak()
    before = status_kb("VmRSS")
    start = time.perf_counter()
    image = read_image({path!r}, max_pixels=10**9)
else:
    image = read_image({path!r})
    reset_peak()
    before = status_kb("VmRSS")
    start = time.perf_counter()
result = fastkm.quantize(image, {k})
seconds = time.perf_counter() - start
print(json.dumps({{"image_bytes": image.nbytes, "shape": image.shape, "n_colors": result.n_colors,
                  "before_kb": before, "peak_kb": status_kb("VmHWM"), "seconds": seconds}}))
"""


def canvas_gif(path, side):
    """A GIF of a 2x2 frame (one pixel transparent) on a side x side canvas."""
    from PIL import Image

    frame = Image.new("RGBA", (2, 2), (255, 0, 0, 255))
    frame.putpixel((0, 0), (0, 0, 0, 0))
    frame.save(path)
    data = bytearray(path.read_bytes())
    data[6:10] = struct.pack("<HH", side, side)  # the logical screen: the canvas
    path.write_bytes(bytes(data))
    return path


def measure(path, n_colors, canvas=False):
    output = subprocess.run(
        [sys.executable, "-c", CHILD.format(path=str(path), k=n_colors, canvas=canvas)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def row(name, data):
    grown = (data["peak_kb"] - data["before_kb"]) * 1024
    height, width = data["shape"][:2]
    return (
        f"| {name} | {width}x{height}x{data['shape'][2] if len(data['shape']) > 2 else 1} | {data['n_colors']} "
        f"| {data['image_bytes'] / 1e6:.1f} | {data['peak_kb'] / 1e3:.0f} | {grown / 1e6:.0f} "
        f"| {grown / data['image_bytes']:.2f} | {data['seconds']:.1f} |"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("-k", type=int, nargs="*", default=[16, 4096, 65536])
    parser.add_argument("--canvas", type=int, default=0, metavar="SIDE")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    lines = [
        "| case | pixels x channels | k | image MB | peak RSS MB | peak rise MB | rise / image | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for n_colors in args.k:
        lines.append(row(f"{args.image.name}, quantize", measure(args.image, n_colors)))
        print(lines[-1], flush=True)
    if args.canvas:
        with tempfile.TemporaryDirectory() as folder:
            gif = canvas_gif(Path(folder) / "canvas.gif", args.canvas)
            name = f"{gif.stat().st_size}-byte GIF, {args.canvas}x{args.canvas} canvas, read + quantize"
            lines.append(row(name, measure(gif, 16, canvas=True)))
            print(lines[-1], flush=True)
    if args.write:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        header = (f"\n## {time.strftime('%Y-%m-%d')} at {commit}: `python bench/memory_large_k.py "
                  f"{' '.join(sys.argv[1:])}`\n\n{platform.machine()}, {platform.python_version()}; peak RSS is "
                  "VmHWM of a fresh process (numba, NumPy and Pillow loaded: about 100 MB before any image).\n\n")
        new_file = not RESULTS.exists()
        with open(RESULTS, "a") as results:
            if new_file:
                results.write("# Peak memory at large k and on a huge transparent canvas\n")
            results.write(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
