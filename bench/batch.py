"""A folder of small photos, end to end on the command line: fastkm against pngquant.

    python bench/batch.py [FOLDER] [--rounds 5] [-k 16] [--out bench/results/batch_kodak.md]

FOLDER defaults to the 24 Kodak photos (../shared/images/kodak, 0.39 MP each; not in a
user's clone).  Each round times, in turn and in fresh processes, ``fastkm quantize
FOLDER -o OUT -k K`` with ``--jobs 1`` and with the default (one file per core), and
pngquant over the same files (plain: no dithering, --nofs, as fastkm's default;
pngquant's own speed setting), once as one ``pngquant K`` process per file, as a
shell loop over a folder runs it (the reference), and once as one process given every
file.  Times are wall seconds of the whole commands (start-up included); the table
gives each one's median and its ratio to the median of pngquant's one-process-per-file
run, measured in the same run.  Needs pngquant on PATH (``pip install pngquant-cli``).
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "images" / "kodak"


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=KODAK)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        sys.exit("error: pngquant is not on PATH; pip install pngquant-cli")
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() == ".png")
    fastkm = [sys.executable, "-m", "fastkm.cli", "quantize", str(args.folder), "-k", str(args.k), "--force"]
    times = {"fastkm --jobs 1": [], "fastkm (default jobs)": [], "pngquant, one process per file": [],
             "pngquant, one process": []}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        subprocess.run(fastkm + ["-o", str(scratch / "warm")], check=True, capture_output=True)  # compiles, if needed
        for _ in range(args.rounds):
            times["fastkm --jobs 1"].append(timed(fastkm + ["-o", str(scratch / "serial"), "--jobs", "1"]))
            times["fastkm (default jobs)"].append(timed(fastkm + ["-o", str(scratch / "pooled")]))
            pngquant_args = [pngquant, str(args.k), "--nofs", "--force", "--output"]
            times["pngquant, one process per file"].append(
                sum(timed(pngquant_args + [str(scratch / f"pq-{p.name}"), str(p)]) for p in files)
            )
            times["pngquant, one process"].append(
                timed([pngquant, str(args.k), "--nofs", "--force", "--ext", "-pq.png"] + [str(p) for p in files])
            )
            for made in args.folder.glob("*-pq.png"):
                made.unlink()
    reference = statistics.median(times["pngquant, one process per file"])
    lines = [
        f"# {len(files)} photos of {args.folder.name}, k = {args.k}, whole commands",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.rounds} rounds, "
        f"`python bench/batch.py {' '.join(sys.argv[1:])}`.",
        "",
        "| command | median s | min s | / pngquant (one process per file) |",
        "|---|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.2f} | {min(values):.2f} | {median / reference:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
