"""Do the colours a viewer shows survive quantization?  P3- and Adobe-RGB-tagged photos
through ``fastkm quantize`` into every output format.

For each photo, its colours are converted (LittleCMS, relative colorimetric) into
Display P3 and into Adobe RGB (1998) values and saved as tagged PNG and JPEG (quality
95) files: the 24 Kodak photos (sRGB) of ``../shared/images/kodak`` and the 12 MP photo
of ``../shared/images/large`` (already Display P3: its own file and profile are used for
P3).  Each tagged file is quantized by the command line to .png .gif .bmp .tif .webp and
.jpg.  "shift" is the mean OKLab ΔE between the sRGB renderings (through each file's
profile, as a colour-managed viewer on an sRGB display shows them) of output and input;
"own" is the ΔE the command reports, the quantization's own error.  The target:
shift <= 1.25 x own (2 x for .jpg outputs).  "dropped" is the same ratio for the PNG
output read without its profile, as fastkm wrote it before it kept profiles.

    python bench/colour.py                      # Kodak + 12 MP, k = 256
    python bench/colour.py -k 64 --limit 4      # quicker
    python bench/colour.py --write              # also write bench/results/colour.md
"""

import argparse
import io
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from fastkm import _spaces
from fastkm.api import DEFAULT_SAMPLE_SIZE
from fastkm.cli import _fit, _read_input
from fastkm.io import DEFAULT_MAX_PIXELS, carries_profile, encode_quantized, profiles

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "images" / "kodak"
LARGE = ROOT.parent / "shared" / "images" / "large" / "012mp-bus.jpg"
RESULTS = ROOT / "bench" / "results" / "colour.md"
OUTPUTS = (".png", ".gif", ".bmp", ".tif", ".webp", ".jpg")
SPACES = {
    "Display P3": profiles.rgb_profile(profiles.PRIMARIES["display-p3"], description="Display P3"),
    "Adobe RGB": profiles.rgb_profile(
        profiles.PRIMARIES["adobe-rgb"], gamma=profiles.ADOBE_RGB_GAMMA, description="Adobe RGB (1998)"
    ),
}
FORMAT_OF = {".png": "PNG", ".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".webp": "WEBP", ".jpg": "JPEG"}


def rendered(path):
    """sRGB pixels a colour-managed viewer shows for an image file, (n, 3) uint8."""
    with Image.open(path) as image:
        profile = image.info.get("icc_profile")
        pixels = np.asarray(image.convert("RGB"))
    return profiles.to_srgb(pixels, profile).reshape(-1, 3)


def mean_delta_e(a, b):
    return float(np.linalg.norm(_spaces.oklab(a) - _spaces.oklab(b), axis=1).mean())


def convert(pixels, source_profile, target_profile):
    """Pixels (H, W, 3) from one profile (None = sRGB) into another's values."""
    source = profiles.srgb_profile() if source_profile is None else profiles._open(source_profile)
    converted = ImageCms.profileToProfile(
        Image.fromarray(pixels), source, profiles._open(target_profile),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB",
    )
    return np.asarray(converted)


def tagged_files(photo, folder):
    """(space name, source suffix, path) of the photo's tagged PNG and JPEG files."""
    with Image.open(photo) as image:
        source_profile = image.info.get("icc_profile")
        pixels = np.asarray(image.convert("RGB"))
    for space, profile in SPACES.items():
        if source_profile is not None and profiles.describe(source_profile) == space:
            values, profile = pixels, source_profile  # already in this space: its own profile
        else:
            values = convert(pixels, source_profile, profile)
        for suffix, options in ((".png", {"compress_level": 1}), (".jpg", {"quality": 95})):
            path = folder / f"{photo.stem}-{space.replace(' ', '')}{suffix}"
            if photo.suffix == suffix and values is pixels:
                path.write_bytes(photo.read_bytes())
            else:
                Image.fromarray(values).save(path, icc_profile=profile, **options)
            yield space, suffix, path


def measure(photo, n_colors, folder):
    """Ratios for every tagged file of the photo and every output format.  Each file is
    quantized as the command line does (``cli._read_input`` and ``cli._fit``: read,
    convert to sRGB where the format needs it, quantize) once for the formats that keep the profile and
    once for those that convert, and encoded into each format."""
    rows = []
    options = {"n_colors": n_colors, "seed": 0, "sample_size": DEFAULT_SAMPLE_SIZE, "max_pixels": DEFAULT_MAX_PIXELS,
               "dither": 0.0, "space": "rgb"}
    for space, source_suffix, path in tagged_files(photo, folder):
        shown = rendered(path)
        fits = {}
        for suffix in OUTPUTS:
            file_format = FORMAT_OF[suffix]
            kept = carries_profile(file_format)
            if kept not in fits:
                image_file, image, profile = _read_input(path, options, file_format, echo=lambda message: None)
                fits[kept] = image_file, profile, _fit(image, options)[0]
            image_file, profile, result = fits[kept]
            output = folder / f"out{suffix}"
            output.write_bytes(encode_quantized(result.palette, result.labels, file_format, icc_profile=profile,
                                                metadata=image_file.metadata))
            own = result.delta_e
            ratio = mean_delta_e(rendered(output), shown) / own
            dropped = None
            if suffix == ".png":
                with Image.open(output) as written:
                    dropped = mean_delta_e(np.asarray(written.convert("RGB")).reshape(-1, 3), shown) / own
            rows.append((photo.name, space, source_suffix, suffix, own, ratio, dropped))
    # The JPEG output of the photo as it is, sRGB for Kodak: what JPEG compression alone costs.
    image_file, image, profile = _read_input(photo, options, "JPEG", echo=lambda message: None)
    result = _fit(image, options)[0]
    output = folder / "baseline.jpg"
    output.write_bytes(encode_quantized(result.palette, result.labels, "JPEG", icc_profile=profile))
    baseline = mean_delta_e(rendered(output), rendered(photo)) / result.delta_e
    rows.append((photo.name, "as it is", photo.suffix, ".jpg", result.delta_e, baseline, None))
    return rows


def summary(rows):
    """Markdown: the worst and mean ratio per (photo set, space, source, output)."""
    lines = [
        "| photos | tagged | input | " + " | ".join(OUTPUTS) + " | dropped (.png) | untouched photo to .jpg |",
        "|---|---|---|" + "---:|" * (len(OUTPUTS) + 2),
    ]
    worst_all = {suffix: 0.0 for suffix in OUTPUTS}
    for group in ("Kodak (24)", "12 MP"):
        for space in SPACES:
            for source in (".png", ".jpg"):
                chosen = [r for r in rows if r[1] == space and r[2] == source
                          and ((r[0] == LARGE.name) == (group == "12 MP"))]
                if not chosen:
                    continue
                cells = []
                for suffix in OUTPUTS:
                    ratios = [r[5] for r in chosen if r[3] == suffix]
                    worst_all[suffix] = max(worst_all[suffix], max(ratios))
                    cells.append(f"{max(ratios):.2f} ({np.mean(ratios):.2f})")
                dropped = [r[6] for r in chosen if r[6] is not None]
                cells.append(f"{min(dropped):.2f}-{max(dropped):.2f}")
                names = {r[0] for r in chosen}
                baseline = [r[5] for r in rows if r[1] == "as it is" and r[0] in names]
                cells.append(f"{max(baseline):.2f} ({np.mean(baseline):.2f})")
                n_photos = len({r[0] for r in chosen})
                name = group if group == "12 MP" else f"Kodak ({n_photos})"
                lines.append(f"| {name} | {space} | {source} | " + " | ".join(cells) + " |")
    limits = {suffix: 2.0 if suffix == ".jpg" else 1.25 for suffix in OUTPUTS}
    met = all(worst_all[s] <= limits[s] for s in OUTPUTS)
    return lines, met, worst_all


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--colors", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None, help="Only the first N Kodak photos.")
    parser.add_argument("--no-large", action="store_true", help="Leave out the 12 MP photo.")
    parser.add_argument("--write", action="store_true", help=f"Write {RESULTS.relative_to(ROOT)}.")
    args = parser.parse_args()
    photos = sorted(KODAK.glob("*.png"))[: args.limit] if KODAK.is_dir() else sorted((ROOT / "sample_images").glob("*.png"))
    if LARGE.exists() and not args.no_large:
        photos.insert(0, LARGE)  # first: the one photo taken in Display P3
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for photo in photos:
            rows += measure(photo, args.colors, Path(folder))
            worst_here = {s: max(r[5] for r in rows if r[0] == photo.name and r[3] == s and r[1] in SPACES)
                          for s in OUTPUTS}
            print(f"{photo.name}: worst ratios " + ", ".join(f"{s} {v:.3f}" for s, v in worst_here.items()), flush=True)
            if args.write:  # as it goes: a long run stopped early still leaves its table
                write_report(args, photos, rows, time.perf_counter() - start, RESULTS)
    print(write_report(args, photos, rows, time.perf_counter() - start, RESULTS if args.write else None))


def write_report(args, photos, rows, seconds, path):
    """The markdown report of the rows so far; written to ``path`` unless None."""
    lines, met, worst = summary([r for r in rows if r[1] in SPACES or r[1] == "as it is"])
    n_done = len({r[0] for r in rows})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    report = io.StringIO()
    print(f"# Colours shown, kept through quantization (k = {args.colors})\n", file=report)
    print(f"`python bench/colour.py -k {args.colors}` at {commit.strip()} on {platform.machine()} "
          f"({platform.python_version()}), {n_done} of {len(photos)} photos, {seconds:.0f} s.\n", file=report)
    print("Shift of the colours shown (mean OKLab ΔE between sRGB renderings of output and input) over the "
          "quantization's own mean ΔE: worst (mean) per group.  Target: at most 1.25 (2 for .jpg outputs). "
          "\"dropped\": the .png output read without its profile (fastkm before it kept profiles). "
          "\"untouched photo to .jpg\": the photo as it is (sRGB for Kodak), quantized into a .jpg, no profile "
          "converted: what JPEG compression (fastkm's JPEG settings) alone adds over the quantization's error.\n", file=report)
    print("\n".join(lines), file=report)
    over = [r for r in rows if r[1] in SPACES and r[5] > (2.0 if r[3] == ".jpg" else 1.25)]
    if over:
        print("\nOver the target: " + "; ".join(
            f"{r[0]} {r[1]} {r[2]} -> {r[3]} {r[5]:.2f} (own ΔE {r[4]:.4f}; untouched to .jpg "
            + ", ".join(f"{b[5]:.2f}" for b in rows if b[1] == "as it is" and b[0] == r[0]) + ")"
            for r in over) + ".", file=report)
    verdict = "met" if met else "NOT met"
    print(f"\nTarget {verdict}: worst ratios " + ", ".join(f"{s} {worst[s]:.3f}" for s in OUTPUTS) + ".", file=report)
    if path is not None:
        path.write_text(report.getvalue())
    return report.getvalue()


if __name__ == "__main__":
    main()
