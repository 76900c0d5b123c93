"""Draw the performance page's figure from a benchmark JSON file.

Usage::

    python benchmarks/bench.py --json benchmarks/results/latest.json
    python docs/plot_benchmark.py benchmarks/results/latest.json [--out FILE]

Writes ``docs/figures/performance.svg``: for every layer of the suite, the
forward and backward time as a multiple of the ideal matrix-product time
(the roofline ratio; 1.0 is the ceiling), the ratio to PyTorch when the JSON
has it, and the speed-up over the textbook method. Reruns on the same JSON
give the same file. Prints the results as the Markdown table of
``docs/performance.md``.

Exit status: 0 when the figure is written, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIGURE = Path(__file__).parent / "figures" / "performance.svg"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "im2col_conv"
    dtypes = sorted({row["dtype"] for row in results["rows"]})
    has_torch = any("total_vs_torch" in row for row in results["rows"])
    columns = 2 if has_torch else 1
    fig, axes = plt.subplots(len(dtypes), columns, figsize=(6.5 * columns, 3.2 * len(dtypes)), squeeze=False)
    for i, dtype in enumerate(dtypes):
        rows = [row for row in results["rows"] if row["dtype"] == dtype]
        labels = [",".join(map(str, row["shape"])) for row in rows]
        positions = range(len(rows))
        ax = axes[i][0]
        bars = [("forward", "forward_roofline"), ("backward", "backward_roofline")]
        bars.append(("matrix product alone", "shape_gemm_roofline"))
        for shift, (label, key) in zip((-0.27, 0.0, 0.27), bars):
            values = [row.get(key, float("nan")) for row in rows]
            ax.bar([p + shift for p in positions], values, 0.27, label=label)
        ax.set_yscale("log")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(1.3, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(f"{dtype}: time / large-GEMM time of the same FLOPs (log scale)")
        ax.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=7)
        ax.legend(fontsize=8)
        if has_torch:
            ax = axes[i][1]
            ratios = [row.get("total_vs_torch", float("nan")) for row in rows]
            ax.bar([p - 0.2 for p in positions], ratios, 0.4, color="tab:green", label="our time / PyTorch's")
            textbook = [
                (row["textbook_forward_ms"] + row["textbook_backward_ms"])
                / (row["forward_ms"] + row["backward_ms"])
                if "textbook_forward_ms" in row
                else float("nan")
                for row in rows
            ]
            ax.bar(
                [p + 0.2 for p in positions], textbook, 0.4, color="tab:purple", label="textbook time / ours"
            )
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.axhline(1.15, color="grey", linewidth=0.8, linestyle="--")
            ax.set_title(f"{dtype}: forward + backward, ratios")
            ax.legend(fontsize=8)
            ax.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=7)
    fig.text(0.01, 0.01, "layers: N,C_in,H,W,C_out,k,stride,pad", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def markdown_table(results: dict[str, Any]) -> str:
    """The results as the Markdown table of the performance page."""
    lines = [
        "| dtype | layer (N, C_in, H, W, C_out, k, s, p) | forward ms | backward ms | roofline f / b "
        "| textbook f / b ms | speed-up over textbook f / b | PyTorch f / b ms | ours / PyTorch f / b / f+b "
        "| step / passes | PyTorch roofline | products alone / PyTorch | peak MiB / columns MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def pair(row: dict[str, Any], a: str, b: str, fmt: str) -> str:
        return f"{row[a]:{fmt}} / {row[b]:{fmt}}" if a in row and b in row else "-"

    for row in results["rows"]:
        torch = pair(row, "torch_forward_ms", "torch_backward_ms", ".1f")
        ratio = "-"
        if "total_vs_torch" in row:
            parts = (row["forward_vs_torch"], row["backward_vs_torch"], row["total_vs_torch"])
            ratio = " / ".join(f"{part:.2f}" for part in parts)
        roof = f"{row['torch_roofline']:.2f}" if "torch_roofline" in row else "-"
        floor = f"{row['gemm_floor_vs_torch']:.2f}" if "gemm_floor_vs_torch" in row else "-"
        step = f"{row['step_over_passes']:.2f}" if "step_over_passes" in row else "-"
        peak = max(row["forward_peak_bytes"], row["backward_peak_bytes"]) / 2**20
        lines.append(
            f"| {row['dtype']} | {', '.join(map(str, row['shape']))} | {row['forward_ms']:.1f} "
            f"| {row['backward_ms']:.1f} | {row['forward_roofline']:.2f} / {row['backward_roofline']:.2f} "
            f"| {pair(row, 'textbook_forward_ms', 'textbook_backward_ms', '.1f')} "
            f"| {pair(row, 'forward_speedup_textbook', 'backward_speedup_textbook', '.2f')} "
            f"| {torch} | {ratio} | {step} | {roof} | {floor} "
            f"| {peak:.1f} / {row['column_matrix_bytes'] / 2**20:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path, help="benchmark JSON written by benchmarks/bench.py --json")
    parser.add_argument("--out", type=Path, default=FIGURE, help=f"SVG file to write (default {FIGURE})")
    args = parser.parse_args(argv)
    with open(args.results) as handle:
        results = json.load(handle)
    plot(results, args.out)
    print(markdown_table(results))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
