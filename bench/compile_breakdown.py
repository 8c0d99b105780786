"""Where a first run's compile time goes: each kernel's own compile time, from an empty cache.

    python bench/compile_breakdown.py [--out FILE] [--first-run] [--code CODE] [-- fastkm CLI arguments]

Runs one `fastkm quantize` (default: the bundled photo, 16 colours), or Python CODE, in
this process with NUMBA_CACHE_DIR pointed at an empty folder, and records numba's
compile events: for each kernel, the CPU seconds spent compiling it, excluding the
helpers it compiled in turn (those get their own rows), and how many signatures it
compiled.  With --first-run, the default command runs first in another process on the
same cache folder, so the table shows what CODE compiles beyond a first run's kernels.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "sample_images" / "kodim23.png"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--code", default=None, help="Python code to run instead of the command line")
    parser.add_argument("--first-run", action="store_true", help="cache the default command's kernels first")
    parser.add_argument("cli", nargs="*")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp()
    os.environ["NUMBA_CACHE_DIR"] = scratch
    if args.first_run:
        subprocess.run([sys.executable, "-m", "fastkm.cli", "quantize", str(PHOTO), "-o", str(Path(scratch) / "first.png"),
                        "-k", "16", "--force"], check=True, capture_output=True)
    start_cpu = time.process_time()
    import numba.core.event as event  # noqa: E402

    own = defaultdict(float)
    count = defaultdict(int)
    stack = []  # [name, start, child seconds]

    class Recorder(event.Listener):
        def on_start(self, ev):
            dispatcher = ev.data["dispatcher"]
            stack.append([f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}",
                          time.process_time(), 0.0])

        def on_end(self, ev):
            name, began, children = stack.pop()
            spent = time.process_time() - began
            own[name] += spent - children
            count[name] += 1
            if stack:
                stack[-1][2] += spent

    event.register("numba:compile", Recorder())
    import_start = time.process_time()
    import fastkm.cli  # noqa: E402
    imported = time.process_time() - import_start
    run_start = time.process_time()
    if args.code:
        exec(args.code, {})
    else:
        cli = args.cli or ["quantize", str(PHOTO), "-o", str(Path(scratch) / "out.png"), "-k", "16", "--force"]
        try:
            fastkm.cli.app(cli)
        except SystemExit as exit_:
            if exit_.code:
                raise
    total = time.process_time() - run_start
    compiled = sum(own.values())
    rows = sorted(own.items(), key=lambda item: -item[1])
    what = args.code or "fastkm " + " ".join(args.cli or ["quantize", "kodim23.png", "-k", "16"])
    cache = "a first run's kernels cached" if args.first_run else "empty cache"
    from fastkm import _compile_ahead

    if _compile_ahead._helpers:
        cache += ", with the compile-ahead helper (the table lists this process's compiles only)"
    else:
        cache += ", no compile-ahead helper"
    lines = [f"Compile breakdown of `{what.strip()}`, {cache}: import {imported:.1f} s CPU, "
             f"run {total:.1f} s CPU of which compiling {compiled:.1f} s "
             f"(process {time.process_time() - start_cpu:.1f} s).", "",
             "| kernel | own compile CPU s | signatures |", "|---|---|---|"]
    lines += [f"| {name.removeprefix('fastkm._kernels.')} | {seconds:.2f} | {count[name]} |" for name, seconds in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        with open(args.out, "a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
