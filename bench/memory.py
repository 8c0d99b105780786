"""Peak memory of fastkm.quantize beyond its input, in a fresh process.

    python bench/memory.py [IMAGE] [-k 16 256] [--tile N]

--tile N repeats the decoded photo N x N times (with a different random offset per
tile so that the tiles are not identical) to build a larger test image: --tile 3 on
the 12 MP photo gives 110 MP.

Decodes the image, resets the process's peak resident memory (Linux: writing 5 to
/proc/self/clear_refs resets VmHWM), runs quantize once (kernels loaded beforehand by a
warm-up on a small image), and reports how far the peak rose above the resident memory
before the call, as a multiple of the decoded image's bytes.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = ROOT.parent / "shared" / "images" / "large" / "012mp-bus.jpg"

CHILD = """
import gc, json
import numpy as np
import fastkm
from fastkm.io import read_image

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

fastkm.quantize(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), {k})
image = read_image({path!r})
if {tile} > 1:
    rows = []
    rng = np.random.default_rng(0)
    for _ in range({tile}):
        row = [np.clip(image.astype(np.int16) + rng.integers(-3, 4), 0, 255).astype(np.uint8) for _ in range({tile})]
        rows.append(np.concatenate(row, axis=1))
        del row
    image = np.ascontiguousarray(np.concatenate(rows, axis=0))
    del rows
gc.collect()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before = status_kb("VmRSS")
result = fastkm.quantize(image, {k})
after = status_kb("VmHWM")
print(json.dumps({{"image_bytes": image.nbytes, "peak_before_kb": before, "peak_after_kb": after}}))
"""


def measure(path, n_colors, tile=1):
    output = subprocess.run(
        [sys.executable, "-c", CHILD.format(path=str(path), k=n_colors, tile=tile)],
        capture_output=True, text=True, check=True,
    ).stdout
    data = json.loads(output.strip().splitlines()[-1])
    grown = (data["peak_after_kb"] - data["peak_before_kb"]) * 1024
    return data["image_bytes"], grown


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("-k", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--tile", type=int, default=1)
    args = parser.parse_args()
    for n_colors in args.k:
        image_bytes, grown = measure(args.image, n_colors, args.tile)
        print(
            f"{args.image.name} x{args.tile * args.tile} ({image_bytes / 3e6:.0f} MP) k={n_colors}: "
            f"decoded {image_bytes / 1e6:.1f} MB, peak grew by "
            f"{grown / 1e6:.1f} MB = {grown / image_bytes:.2f}x the decoded bytes"
        )


if __name__ == "__main__":
    main()
