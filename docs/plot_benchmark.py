"""Draw the performance page's figure from a benchmark JSON file.

Usage::

    python benchmarks/bench.py --json benchmarks/results/latest.json
    python docs/plot_benchmark.py benchmarks/results/latest.json [--out FILE]

Writes ``docs/figures/performance.svg``: for every layer of the suite, the
forward and backward time as a multiple of the ideal matrix-product time
(the roofline ratio; 1.0 is the ceiling), and the ratio to PyTorch when the
JSON has it. Reruns on the same JSON give the same file. Prints the results
as the Markdown table of ``docs/performance.md``.

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
            ax.bar([p + shift for p in positions], [row[key] for row in rows], 0.27, label=label)
        ax.set_yscale("log")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(1.3, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(f"{dtype}: time / large-GEMM time of the same FLOPs (log scale)")
        ax.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=7)
        ax.legend(fontsize=8)
        if has_torch:
            ax = axes[i][1]
            ratios = [row.get("total_vs_torch", float("nan")) for row in rows]
            ax.bar(list(positions), ratios, 0.6, color="tab:green")
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_title(f"{dtype}: (forward + backward) / PyTorch")
            ax.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=7)
    fig.text(0.01, 0.01, "layers: N,C_in,H,W,C_out,k,stride,pad", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def markdown_table(results: dict[str, Any]) -> str:
    """The results as the Markdown table of the performance page."""
    lines = [
        "| dtype | layer (N, C_in, H, W, C_out, k, s, p) | forward ms | backward ms "
        "| backward ms, columns kept | forward GEMM alone ms | roofline f / b | PyTorch f / b ms "
        "| (f + b) / PyTorch | peak MiB / columns MiB | direct backward ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        torch = (
            f"{row['torch_forward_ms']:.1f} / {row['torch_backward_ms']:.1f}"
            if "torch_forward_ms" in row
            else "-"
        )
        ratio = f"{row['total_vs_torch']:.2f}" if "total_vs_torch" in row else "-"
        peak = max(row["forward_peak_bytes"], row["backward_peak_bytes"]) / 2**20
        direct = f"{row['direct_backward_ms']:.0f}" if "direct_backward_ms" in row else "-"
        lines.append(
            f"| {row['dtype']} | {', '.join(map(str, row['shape']))} | {row['forward_ms']:.1f} "
            f"| {row['backward_ms']:.1f} | {row['backward_with_columns_ms']:.1f} "
            f"| {row['forward_gemm_only_ms']:.1f} "
            f"| {row['forward_roofline']:.2f} / {row['backward_roofline']:.2f} | {torch} | {ratio} "
            f"| {peak:.1f} / {row['column_matrix_bytes'] / 2**20:.1f} | {direct} |"
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
