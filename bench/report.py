"""Turn a saved pytest-benchmark run of bench/test_peers.py into a table and a chart.

    python bench/report.py .benchmarks/<machine>/0001_<name>.json \
        --markdown bench/results/peers.md --chart bench/figures/peers.png

For every k: each method's best time, its ratio to fastkm's time in the same run
(how many times slower than fastkm), and its MSE (summed over channels).
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path


def load(path):
    data = json.loads(Path(path).read_text())
    rows = defaultdict(dict)  # n_colors -> method -> (seconds, mse)
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "method" not in info:
            continue
        rows[info["n_colors"]][info["method"]] = (bench["stats"]["min"], info["mse"])
    machine = data.get("machine_info", {})
    image = next((b["extra_info"].get("image") for b in data["benchmarks"] if "image" in b.get("extra_info", {})), "?")
    megapixels = next((b["extra_info"].get("megapixels") for b in data["benchmarks"] if "megapixels" in b.get("extra_info", {})), "?")
    return rows, machine, image, megapixels, data.get("datetime", "")


def markdown(rows, machine, image, megapixels, when):
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    lines = [
        f"Photo: {image} ({megapixels} MP); {cpu}, {machine.get('cpu', {}).get('count', '?')} cores; run {when[:19]}.",
        "Time is the best of the measured rounds; 'x fastkm' is that time over fastkm's in the same run;",
        "MSE is summed over R, G, B against the original (lower is better).",
        "",
    ]
    methods = sorted({m for per_k in rows.values() for m in per_k}, key=lambda m: (m != "fastkm", m))
    header = "| method | " + " | ".join(f"k={k} time | x fastkm | MSE" for k in sorted(rows)) + " |"
    lines += [header, "|---|" + "---|---|---|" * len(rows)]
    for method in methods:
        cells = []
        for k in sorted(rows):
            if method not in rows[k]:
                cells.append("– | – | –")
                continue
            seconds, mse = rows[k][method]
            base = rows[k].get("fastkm", (None,))[0]
            ratio = f"{seconds / base:.1f}x" if base else "–"
            cells.append(f"{seconds:.3f} s | {ratio} | {mse:.2f}")
        name = f"**{method}**" if method == "fastkm" else method
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(rows, image, megapixels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(rows)
    methods = sorted({m for per_k in rows.values() for m in per_k}, key=lambda m: (m != "fastkm", m))
    fig, (ax_time, ax_mse) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        xs = [j + i * width for j, k in enumerate(ks) if method in rows[k]]
        times = [rows[k][method][0] for k in ks if method in rows[k]]
        mses = [rows[k][method][1] for k in ks if method in rows[k]]
        ax_time.bar(xs, times, width, label=method)
        ax_mse.bar(xs, mses, width, label=method)
    for ax, title in ((ax_time, "time (s, log scale)"), (ax_mse, "MSE, summed over RGB (log scale)")):
        ax.set_yscale("log")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ks))])
        ax.set_xticklabels([f"k={k}" for k in ks])
        ax.set_title(title)
    ax_time.legend(fontsize=8)
    fig.suptitle(f"Colour quantization of {image} ({megapixels} MP), same decoded array for every method")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved_run", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--chart", type=Path)
    args = parser.parse_args()
    rows, machine, image, megapixels, when = load(args.saved_run)
    table = markdown(rows, machine, image, megapixels, when)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    if args.chart:
        chart(rows, image, megapixels, args.chart)


if __name__ == "__main__":
    main()
