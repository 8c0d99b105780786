"""Start-up of the command line against its floor, warm kernel cache.

    python bench/startup.py [PHOTO] [--runs 7] [--out bench/results/startup.md]

Times whole processes (median wall and CPU seconds over --runs, commands interleaved):
bare Python, `import numpy`, the command line's other imports (Pillow with its PNG
plugin, typer), `import numba`, numba loading one tiny kernel from its disk cache (the
floor of any command that quantizes), the library alone quantizing PHOTO's pixels from
a .npy file (numpy, numba, the kernels a quantize loads, the fit), `fastkm --help`, and a
warm `fastkm quantize` of PHOTO (default: the bundled parrots photo resized to 480x320,
0.15 MP) with the default threads and with NUMBA_NUM_THREADS=1.  The quantize command
runs once untimed first, so its kernels are cached; fastkm's bytecode is compiled first,
as an installed package has it (with PYTHONDONTWRITEBYTECODE set, a checkout would
otherwise compile its sources in every process).  The two floor processes run as the
command line's own process does: without SciPy's BLAS, objects frozen before exit.
"""

import argparse
import compileall
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def timed(command, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        photo = args.photo
        if photo is None:
            photo = scratch / "parrots-480.png"
            with Image.open(ROOT / "sample_images" / "kodim23.png") as image:
                image.resize((480, 320)).save(photo)
        quantize = [sys.executable, "-m", "fastkm.cli", "quantize", str(photo), "-o", str(scratch / "out.png"), "-f"]
        compileall.compile_dir(ROOT / "fastkm", quiet=1)
        env = dict(os.environ)
        one_thread = dict(env, NUMBA_NUM_THREADS="1")
        with Image.open(photo) as image:
            numpy.save(scratch / "pixels.npy", numpy.asarray(image.convert("RGB")))
        # As the command line's own process runs: no SciPy BLAS (numba imports it with
        # its compiler where SciPy is installed), objects frozen before Python's exit.
        as_the_cli = "import gc, sys; sys.modules.setdefault('scipy.linalg.cython_blas', None)\n"
        frozen_exit = "\ngc.freeze()"
        # The floor of any command that runs a kernel: numba imported, its runtime set up
        # and one tiny kernel loaded from its disk cache.
        (scratch / "tiny_kernel.py").write_text(
            "import numba\n\n\n@numba.njit(cache=True, nogil=True)\ndef total(a):\n    return a.sum()\n"
        )
        tiny = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(scratch), env.get("PYTHONPATH")])))
        load_one = [sys.executable, "-c", as_the_cli + "import numpy, tiny_kernel; tiny_kernel.total(numpy.zeros(3))"
                    + frozen_exit]
        library = [sys.executable, "-c", as_the_cli + "import numpy, fastkm\n"
                   f"fastkm.quantize(numpy.load({str(scratch / 'pixels.npy')!r}), 16)" + frozen_exit]
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            "python -c 'import numpy'": ([sys.executable, "-c", "import numpy"], env),
            "import numpy, PIL.Image, PIL.PngImagePlugin, typer": (
                [sys.executable, "-c", "import numpy, PIL.Image, PIL.PngImagePlugin, typer"], env),
            "python -c 'import numba'": ([sys.executable, "-c", "import numba"], env),
            "import numba, load one tiny cached kernel (floor)": (load_one, tiny),
            "library only: fastkm.quantize(pixels from .npy, 16)": (library, env),
            "fastkm --help": ([sys.executable, "-m", "fastkm.cli", "--help"], env),
            "fastkm quantize (warm)": (quantize, env),
            "fastkm quantize (warm), NUMBA_NUM_THREADS=1": (quantize, one_thread),
        }
        subprocess.run(quantize, check=True, capture_output=True)
        subprocess.run(load_one, env=tiny, check=True, capture_output=True)
        subprocess.run(library, env=env, check=True, capture_output=True)
        times = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (command, command_env) in commands.items():
                times[name].append(timed(command, command_env))
    lines = [
        f"# Start-up, warm kernel cache ({photo.name})",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end, "
        f"medians of {args.runs} runs each, interleaved; `python bench/startup.py {' '.join(sys.argv[1:])}`.",
        "",
        "| command | wall s | CPU s |",
        "|---|---|---|",
    ]
    for name, values in times.items():
        lines.append(f"| {name} | {statistics.median(w for w, _ in values):.2f} | "
                     f"{statistics.median(c for _, c in values):.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
