"""First runs after install: every path's compile, from an empty kernel cache.

    python bench/first_run.py [--commit REV] [--out bench/results/first_run.md]

Exports REV (default HEAD) of this repository into a fresh folder (a fresh copy of the
package: no kernel cache beside it), points NUMBA_CACHE_DIR at an empty folder, and
runs, each in a fresh process and in this order, the first command a user runs (RGB
photo, 16 colours) and then the first use of each other path.  Each row is the whole
process's wall time and CPU time (user + system; compiling is single-threaded, so CPU
time is the better figure on a busy machine), and the time of the same command once
its kernels are cached (its last row, "cached").

CPU time counts the compile-ahead helper process a fit may start (fastkm/_compile_ahead.py:
only where other work leaves cores idle; the 1-minute load average before each row is
listed).  --helper on / off starts it always / never (FASTKM_COMPILE_AHEAD=1 / 0).
"""

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "sample_images" / "kodim23.png"

SETUP = """
import sys, numpy as np, fastkm
assert fastkm.__file__.startswith(sys.argv[2]), fastkm.__file__
from fastkm.io import read_image
photo = read_image(sys.argv[1])
alpha = np.where(photo[..., :1] > 128, 255, 0).astype(np.uint8)
"""
# (what, code run after SETUP); the first one is the command line's first run.
PATHS = [
    ("first run: `fastkm quantize` RGB, k=16", None),
    ("grey photo", "fastkm.quantize(photo[..., 0], 16).delta_e"),
    ("--dither", "fastkm.quantize(photo, 16, dither=True).delta_e"),
    ("RGBA photo", "fastkm.quantize(np.dstack([photo, alpha]), 16)"),
    ("grey + alpha photo", "fastkm.quantize(np.dstack([photo[..., :1], alpha]), 16)"),
    ("--space oklab", "fastkm.quantize(photo, 16, space='oklab').delta_e"),
    ("k=300 (uint16 labels)", "fastkm.quantize(photo, 300).delta_e"),
    ("palette=", "fastkm.quantize(photo, palette=np.array([[0, 0, 0], [255, 255, 255]], np.uint8))"),
    ("KMeans estimator", "fastkm.KMeans(8, random_state=0).fit(photo.reshape(-1, 3)[:5000])"),
    ("cached: `fastkm quantize` RGB, k=16", None),
]


def run(command, env, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd outside the repository: `python -m` and `-c` put it first on sys.path, where a
    # checkout's fastkm would shadow the exported one.
    subprocess.run(command, env=env, check=True, capture_output=True, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--helper", choices=["auto", "on", "off"], default="auto",
                        help="the compile-ahead helper: as users get it, always, or never")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", args.commit], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        source, cache = scratch / "src", scratch / "cache"
        source.mkdir()
        cache.mkdir()
        archive = subprocess.run(["git", "archive", commit, "fastkm"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(source))
        if args.helper != "auto":
            env["FASTKM_COMPILE_AHEAD"] = "1" if args.helper == "on" else "0"
        for what, code in PATHS:
            if code is None:
                command = [sys.executable, "-m", "fastkm.cli", "quantize", str(PHOTO), "-o",
                           str(scratch / "out.png"), "-k", "16", "--force"]
            else:
                command = [sys.executable, "-c", SETUP + code, str(PHOTO), str(source)]
            load = os.getloadavg()[0]
            wall, cpu = run(command, env, scratch)
            rows.append((what, wall, cpu, load))
            print(f"{what}: {wall:.1f} s wall, {cpu:.1f} s CPU (load average {load:.2f} before)", flush=True)
    lines = [
        f"# First runs from an empty kernel cache, at {commit}",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, `python bench/first_run.py --commit {args.commit}"
        f"{'' if args.helper == 'auto' else ' --helper ' + args.helper}`; each row a fresh process, in this "
        "order, sharing one cache folder; CPU s includes the compile-ahead helper's.",
        "",
        "| path (first use) | wall s | CPU s | load average before |",
        "|---|---|---|---|",
    ]
    lines += [f"| {what} | {wall:.1f} | {cpu:.1f} | {load:.2f} |" for what, wall, cpu, load in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
