"""Turn a saved pytest-benchmark run of bench/test_peers.py into a table and a chart.

    python bench/report.py .benchmarks/<machine>/0001_<name>.json \
        --markdown bench/results/peers.md --chart bench/figures/peers.png

For every photo and k: each method's best time, its ratio to fastkm's time in the same
run (how many times slower than fastkm), its MSE (summed over channels) and fastkm's
MSE over it.  The chart has one row of panels (time, MSE) per photo.  A table this script
wrote can be charted again, for some photos only:

    python bench/report.py bench/results/peers.md --photo 012mp-bus.jpg --chart bench/figures/peers_12mp.png
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path


def load(path):
    """(rows, machine, when): rows[(photo, megapixels)][k][method] = (best seconds, MSE), photos in run order."""
    data = json.loads(Path(path).read_text())
    rows = defaultdict(lambda: defaultdict(dict))
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "method" not in info:
            continue
        photo = (info.get("image", "?"), info.get("megapixels", "?"))
        rows[photo][info["n_colors"]][info["method"]] = (bench["stats"]["min"], info["mse"])
    commit = data.get("commit_info", {})
    when = f"{data.get('datetime', '')[:19]}, commit {commit.get('id', '?')[:7]}{' (dirty)' if commit.get('dirty') else ''}"
    return rows, data.get("machine_info", {}), when


def load_markdown(path):
    """The rows of a table written by markdown(): each photo and k is named on its first row only."""
    rows = defaultdict(lambda: defaultdict(dict))
    photo = k = None
    for line in Path(path).read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[3].endswith(" s"):
            continue
        if cells[0]:
            image, megapixels = cells[0].rsplit(" (", 1)
            photo = (image, float(megapixels.split()[0]))
        if cells[1]:
            k = int(cells[1])
        rows[photo][k][cells[2].strip("*")] = (float(cells[3].split()[0]), float(cells[5]))
    return rows


def _methods(per_k):
    return sorted({m for per_method in per_k.values() for m in per_method}, key=lambda m: (m != "fastkm", m))


def markdown(rows, machine, when):
    cpu = machine.get("cpu", {})
    lines = [
        f"{cpu.get('brand_raw', 'unknown CPU')}, {cpu.get('count', '?')} cores; run {when}.",
        "Time is the best of the measured rounds; 'x fastkm' is that time over fastkm's in the same run",
        "(how many times longer than fastkm); MSE is summed over R, G, B against the original (lower is",
        "better); 'fastkm / it' is fastkm's MSE over the method's (below 1: fastkm's is lower).",
        "",
        "| photo | k | method | time | x fastkm | MSE | fastkm / it |",
        "|---|---|---|---|---|---|---|",
    ]
    for (image, megapixels), per_k in rows.items():
        photo_cell = f"{image} ({megapixels} MP)"
        for k in sorted(per_k):
            k_cell = str(k)
            base_seconds, base_mse = per_k[k].get("fastkm", (None, None))
            for method in _methods({k: per_k[k]}):
                seconds, mse = per_k[k][method]
                ratio = f"{seconds / base_seconds:.1f}" if base_seconds else "–"
                quality = f"{base_mse / mse:.3f}" if base_mse is not None and mse else "–"
                name = f"**{method}**" if method == "fastkm" else method
                lines.append(
                    f"| {photo_cell} | {k_cell} | {name} | {seconds:.3f} s | {ratio} | {mse:.2f} | {quality} |"
                )
                photo_cell = k_cell = ""  # each photo and k named once: the rows below belong to it
    return "\n".join(lines) + "\n"


def chart(rows, path):
    """One row of panels per photo: time and MSE of every method at every k (log scales)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 4.5 * len(rows)), squeeze=False)
    for (image, megapixels), (ax_time, ax_mse) in zip(rows, axes):
        per_k = rows[(image, megapixels)]
        ks = sorted(per_k)
        methods = _methods(per_k)
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            present = [k for k in ks if method in per_k[k]]
            xs = [ks.index(k) + i * width for k in present]
            ax_time.bar(xs, [per_k[k][method][0] for k in present], width, label=method)
            ax_mse.bar(xs, [per_k[k][method][1] for k in present], width, label=method)
        for ax, title in ((ax_time, "time (s, log scale)"), (ax_mse, "MSE, summed over RGB (log scale)")):
            ax.set_yscale("log")
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ks))])
            ax.set_xticklabels([f"k={k}" for k in ks])
            ax.set_title(f"{image} ({megapixels} MP): {title}")
        ax_time.legend(fontsize=8)
    fig.suptitle("Colour quantization, the same decoded array for every method")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved_run", type=Path, help="a pytest-benchmark JSON, or a table this script wrote (.md)")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--chart", type=Path)
    parser.add_argument("--photo", action="append", help="only this photo (repeatable)")
    args = parser.parse_args()
    if args.saved_run.suffix == ".md":
        rows = load_markdown(args.saved_run)
        if args.photo:
            rows = {photo: per_k for photo, per_k in rows.items() if photo[0] in args.photo}
        if args.chart and rows:
            chart(rows, args.chart)
        if not rows:
            parser.exit(1, f"{args.saved_run}: no rows for {args.photo or 'any photo'}\n")
        return
    rows, machine, when = load(args.saved_run)
    if args.photo:
        rows = {photo: per_k for photo, per_k in rows.items() if photo[0] in args.photo}
    if not rows:
        parser.exit(1, f"{args.saved_run}: no results of bench/test_peers.py in this run\n")
    table = markdown(rows, machine, when)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    if args.chart:
        chart(rows, args.chart)


if __name__ == "__main__":
    main()
