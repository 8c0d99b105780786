"""Animated GIF against ffmpeg's two-pass palettegen/paletteuse and gifski.

    python bench/animation.py                     # writes bench/results/animation.md
    python bench/animation.py --frames 8 --out /tmp/animation.md   # a quick look
    python bench/animation.py --threads 1         # fastkm on one thread (a busy machine)
    python bench/animation.py --chart-only        # redraw the chart from the saved table

Three animations are made from real photos (in ../shared/images when present, else
the bundled sample images):
  pan     a camera pan across the 12 MP bus photo scaled down (sub-pixel steps, resampled)
  object  a still Kodak scene with a moving object (a disc cut from another photo)
  zoom    a slow zoom into a Kodak photo (every pixel changes in every frame)

Every tool gets the same PNG frames and writes a GIF at 64 and 256 colours, plain and
dithered (ffmpeg: its default sierra2_4a dither; fastkm: Floyd-Steinberg at strength
0.8, `--dither --dither-strength 0.8`, and at the default full strength, static pixels
kept; gifski always dithers and picks its own colours, up to 256).  At 256, ffmpeg and
gifski keep one index for transparency, and fastkm fits 255 colours for the same reason
(``gif_palette_size``), as its command line does.  Figures:
mean SSIMULACRA2 over all frames (each input frame against the output frame shown at
its time, composited), file bytes, wall time (fastkm: reading the PNG frames, fitting,
mapping and writing in this process, kernels compiled beforehand; the others: the
commands, process start included).  A second table measures what cropping frames to
the changed area and making unchanged pixels transparent save in fastkm's GIFs.
"""

import argparse
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import fastkm
from fastkm.io import gif_palette_size, read_animation, read_image, write_animation
from fastkm.io.animation import _gif_bytes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "images"
FPS = 10
# fastkm's dither strength in the comparison (full strength is measured beside it).
DITHER = 0.8


def _source(name):
    """A shared image when present (a developer's checkout), else a bundled sample."""
    shared = {"bus": SHARED / "large" / "012mp-bus.jpg", "kodim05": SHARED / "kodak" / "kodim05.png",
              "kodim23": SHARED / "kodak" / "kodim23.png", "kodim21": SHARED / "kodak" / "kodim21.png"}[name]
    if shared.exists():
        return shared
    fallback = {"bus": "kodim03.png", "kodim05": "kodim03.png", "kodim23": "kodim23.png", "kodim21": "kodim23.png"}
    return ROOT / "sample_images" / fallback[name]


def make_pan(n_frames, size=(400, 300)):
    """A pan across the bus photo scaled to 1/5: 3.4 px a frame, resampled (bicubic)."""
    photo = Image.open(_source("bus")).convert("RGB")
    photo = photo.resize((photo.width // 5, photo.height // 5), Image.Resampling.LANCZOS)
    width, height = size
    frames = []
    for i in range(n_frames):
        x, y = 40 + 3.4 * i, 60 + 0.7 * i
        frame = photo.transform(size, Image.Transform.AFFINE, (1, 0, x, 0, 1, y), Image.Resampling.BICUBIC)
        frames.append(np.asarray(frame))
    return np.stack(frames)


def make_object(n_frames, size=(384, 256)):
    """A Kodak scene (scaled to half) with a disc from another photo moving across it."""
    scene = np.asarray(Image.open(_source("kodim05")).convert("RGB").resize(size, Image.Resampling.LANCZOS))
    donor = np.asarray(Image.open(_source("kodim23")).convert("RGB"))
    radius = 28
    disc = donor[180 : 180 + 2 * radius, 330 : 330 + 2 * radius]
    yy, xx = np.mgrid[-radius:radius, -radius:radius]
    inside = xx**2 + yy**2 < radius**2
    frames = []
    for i in range(n_frames):
        frame = scene.copy()
        x = 20 + int(round(i * (size[0] - 2 * radius - 40) / max(n_frames - 1, 1)))
        y = 120 + int(round(40 * np.sin(i / 3)))
        frame[y : y + 2 * radius, x : x + 2 * radius][inside] = disc[inside]
        frames.append(frame)
    return np.stack(frames)


def make_zoom(n_frames, size=(384, 256)):
    """A slow zoom (1 % a frame) towards the centre of a Kodak photo."""
    photo = Image.open(_source("kodim21")).convert("RGB")
    width, height = size
    frames = []
    for i in range(n_frames):
        scale = photo.width / width / (1.01**i)
        x = (photo.width - width * scale) / 2
        y = (photo.height - height * scale) / 2
        frame = photo.transform(size, Image.Transform.AFFINE, (scale, 0, x, 0, scale, y), Image.Resampling.BICUBIC)
        frames.append(np.asarray(frame))
    return np.stack(frames)


def ssimulacra2(reference, distorted):
    from ssimulacra2 import compute_ssimulacra2

    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG", compress_level=0)
        buffer.seek(0)
        return buffer

    return compute_ssimulacra2(png(reference), png(distorted))


def shown_frames(gif_path, n_frames):
    """The output frame on screen at each input frame's start (identical frames may merge)."""
    animation = read_animation(gif_path)
    starts = np.concatenate([[0], np.cumsum(animation.durations)[:-1]])
    wanted = np.arange(n_frames) * (1000 // FPS)
    index = np.searchsorted(starts, wanted, side="right") - 1
    frames = animation.frames[np.clip(index, 0, animation.n_frames - 1)]
    return frames[..., :3] if frames.shape[3] == 4 else frames


def run_fastkm(folder, out, n_colors, dither):
    start = time.perf_counter()
    frames = np.stack([read_image(path) for path in sorted(folder.glob("*.png"))])
    result = fastkm.quantize_frames(frames, gif_palette_size(n_colors, False), dither=dither)
    write_animation(out, None, [1000 // FPS] * len(frames), 0, palettes=result.palettes, labels=result.labels)
    return time.perf_counter() - start


def run_ffmpeg(folder, out, n_colors, dither):
    palette = out.with_suffix(".palette.png")
    pattern = str(folder / "%03d.png")
    use = "paletteuse" + ("" if dither else "=dither=none")
    start = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", str(FPS), "-i", pattern,
                    "-vf", f"palettegen=max_colors={n_colors}:stats_mode=full", str(palette)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", str(FPS), "-i", pattern, "-i", str(palette),
                    "-lavfi", use, str(out)], check=True)
    return time.perf_counter() - start


def run_gifski(folder, out, gifski):
    start = time.perf_counter()
    subprocess.run([gifski, "--quiet", "--fps", str(FPS), "-o", str(out), *map(str, sorted(folder.glob("*.png")))],
                   check=True)
    return time.perf_counter() - start


def find_gifski():
    for candidate in (shutil.which("gifski"), "/tmp/wt16_gifski/package/bin/debian/gifski"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames per animation")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "animation.md")
    parser.add_argument("--gifski", default=find_gifski(), help="path of the gifski binary")
    parser.add_argument("--threads", type=int, default=None, help="numba threads for fastkm (default: all)")
    parser.add_argument("--chart", type=Path, default=HERE / "figures" / "animation.png")
    parser.add_argument("--chart-only", action="store_true", help="redraw the chart from the table in --out")
    args = parser.parse_args()
    if args.chart_only:
        draw_chart(read_rows(args.out), args.chart)
        return
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is needed: apt-get install ffmpeg")

    # Compile the kernels outside the timed runs.
    warm = make_object(2)
    fastkm.quantize_frames(warm, 8, dither=True)
    rows, size_rows = [], []
    work = Path(tempfile.mkdtemp(prefix="fastkm-animation-"))
    try:
        for name, make in (("pan", make_pan), ("object", make_object), ("zoom", make_zoom)):
            frames = make(args.frames)
            folder = work / name
            folder.mkdir()
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / f"{i:03d}.png", compress_level=1)
            runs = []
            for n_colors in (64, 256):
                for dither in (False, True):
                    how = f"{n_colors}, {'dithered' if dither else 'plain'}"
                    runs.append(("fastkm", how, lambda out, k=n_colors, d=dither: run_fastkm(folder, out, k, DITHER * d)))
                    runs.append(("ffmpeg", how, lambda out, k=n_colors, d=dither: run_ffmpeg(folder, out, k, d)))
                    if dither:
                        runs.append(("fastkm, full-strength dither", how,
                                     lambda out, k=n_colors: run_fastkm(folder, out, k, 1.0)))
            if args.gifski:
                runs.append(("gifski", "256, dithered", lambda out: run_gifski(folder, out, args.gifski)))
            for index, (tool, how, run) in enumerate(runs):
                out = work / f"{name}-{index}-{tool}.gif"
                seconds = run(out)
                shown = shown_frames(out, len(frames))
                scores = [ssimulacra2(frames[i], shown[i]) for i in range(len(frames))]
                rows.append((name, how, tool, float(np.mean(scores)), float(np.min(scores)), out.stat().st_size,
                             seconds))
                print(*rows[-1], flush=True)
            # What cropping and transparent unchanged pixels save, fastkm's frames as they are.
            durations = np.full(len(frames), 1000 // FPS)
            for n_colors, dither in ((64, False), (64, DITHER), (255, False), (255, DITHER), (256, False)):
                result = fastkm.quantize_frames(frames, n_colors, dither=dither)
                sizes = [len(_gif_bytes(result.palettes, result.labels, durations, 0, crop=c, see_through=t))
                         for c, t in ((False, False), (True, False), (True, True))]
                size_rows.append((name, f"{n_colors}, {'dithered' if dither else 'plain'}", *sizes))
                print(*size_rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(args, rows, size_rows)
    draw_chart(rows, args.chart)


def read_rows(path):
    """The first table of a saved report: (animation, colours, tool, mean, worst, bytes, seconds)."""
    rows = []
    for line in path.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 7 and cells[3].replace(".", "").isdigit():
            name, how, tool, mean, worst, n_bytes, seconds = cells
            rows.append((name, how, tool, float(mean), float(worst), int(n_bytes.replace(",", "")), float(seconds)))
        elif rows and not line.startswith("|"):
            break
    return rows


def draw_chart(rows, path):
    """Mean SSIMULACRA2 against bytes, one panel per animation: up and left is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row[0] for row in rows))
    styles = {"fastkm": ("tab:blue", "o"), "ffmpeg": ("tab:orange", "s"), "gifski": ("tab:green", "^"),
              "fastkm, full-strength dither": ("tab:blue", "x")}
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    for axis, name in zip(axes[0], names):
        for tool, (colour, marker) in styles.items():
            points = [(row[5] / 1e6, row[3], row[1]) for row in rows if row[0] == name and row[2] == tool]
            if not points:
                continue
            axis.scatter([p[0] for p in points], [p[1] for p in points], color=colour, marker=marker, label=tool)
            for x, y, how in points:
                if tool in ("fastkm", "ffmpeg"):
                    axis.annotate(how.replace(", dithered", " d").replace(", plain", " p"), (x, y), fontsize=7,
                                  xytext=(3, 3), textcoords="offset points")
        axis.set_title(name)
        axis.set_xlabel("GIF size (MB)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean SSIMULACRA2 (higher is better)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    figure.suptitle("Animated GIF, 64 and 256 colours, plain (p) and dithered (d): fastkm, ffmpeg, gifski")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def write_report(args, rows, size_rows):
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    gifski_version = (subprocess.run([args.gifski, "--version"], capture_output=True, text=True).stdout.strip()
                      if args.gifski else "not run")
    import numba

    threads = numba.get_num_threads()
    lines = [
        "# Animated GIF: fastkm against ffmpeg (palettegen + paletteuse) and gifski",
        "",
        f"`python bench/animation.py --frames {args.frames}"
        f"{f' --threads {args.threads}' if args.threads else ''}` at {commit}; {platform.processor() or platform.machine()}"
        f" ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.0f} at the end), Python "
        f"{platform.python_version()}, fastkm on {threads} numba thread{'s' if threads > 1 else ''}, "
        f"{ffmpeg_version.split(' Copyright')[0]}, {gifski_version}.",
        f"{args.frames} frames per animation at {FPS} fps.  SSIMULACRA2: higher is better (90 = visually lossless,"
        " 70 = high quality, 50 = medium); mean and worst over the frames.  Seconds: wall time on a shared machine.",
        "",
        "| animation | colours | tool | SSIMULACRA2 mean | worst frame | bytes | seconds |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, how, tool, mean, worst, n_bytes, seconds in rows:
        lines.append(f"| {name} | {how} | {tool} | {mean:.2f} | {worst:.2f} | {n_bytes:,} | {seconds:.2f} |")
    lines += ["", "## fastkm against ffmpeg, setting by setting", "",
              "| animation | colours | SSIMULACRA2 fastkm - ffmpeg | bytes fastkm / ffmpeg | target met |",
              "|---|---|---:|---:|---|"]
    by_key = {(r[0], r[1], r[2]): r for r in rows}
    for name, how, tool, mean, _, n_bytes, _ in rows:
        if not tool.startswith("fastkm"):
            continue
        other = by_key[(name, how, "ffmpeg")]
        met = mean >= other[3] and n_bytes <= other[5]
        shown = how if tool == "fastkm" else f"{how} ({tool[8:]})"
        lines.append(f"| {name} | {shown} | {mean - other[3]:+.2f} | {n_bytes / other[5]:.3f} | "
                     f"{'yes' if met else 'no'} |")
    lines += ["", "## fastkm GIF bytes: whole frames, cropped to the changed box, and unchanged pixels transparent",
              "", "Dithered: strength 0.8.  At 256 colours no index is left for transparency: only cropping "
              "applies, which is why GIFs are fitted with 255.", "",
              "| animation | colours | whole frames | cropped | cropped + transparent (smaller of the two "
              "per frame) |", "|---|---|---:|---:|---:|"]
    for name, how, whole, cropped, see_through in size_rows:
        lines.append(f"| {name} | {how} | {whole:,} | {cropped:,} ({cropped / whole:.3f}) | "
                     f"{see_through:,} ({see_through / whole:.3f}) |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
