"""Draw the performance page's figure from a benchmark JSON file.

Usage::

    python benchmarks/bench.py --json benchmarks/results/latest.json
    python docs/plot_benchmark.py benchmarks/results/latest.json [--out FILE]

Writes ``docs/figures/performance.svg``: for every layer of the suite, the
forward and backward time as a multiple of the ideal matrix-product time
(the roofline ratio; 1.0 is the ceiling), the ratio to PyTorch when the JSON
has it, and the speed-up over the textbook method. Reruns on the same JSON
give the same file. Prints the short table of ``docs/performance.md``, then
the table of every measured column (``benchmarks/results/history.md``).

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


def _label(row: dict[str, Any]) -> str:
    """A layer's short name: channels in and out, size, kernel and stride."""
    _, c_in, h, w, c_out, k, stride, _pad = row["shape"]
    step = f" /{stride}" if stride > 1 else ""
    return f"{c_in}\u2192{c_out}\n{h}\u00d7{w}\n{k}\u00d7{k}{step}"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Sized to be shown at the page's full width (about 8 inches) with labels of
    # the body text's size.
    plt.rcParams.update({"svg.hashsalt": "im2col_conv", "font.size": 11, "font.family": "DejaVu Sans"})
    dtypes = sorted({row["dtype"] for row in results["rows"]})
    has_torch = any("total_vs_torch" in row for row in results["rows"])
    panels = [
        (dtype, kind) for dtype in dtypes for kind in (("ratios",) if has_torch else ()) + ("roofline",)
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.0, 3.3 * len(panels)), squeeze=False)
    for ax, (dtype, kind) in zip(axes[:, 0], panels):
        rows = [row for row in results["rows"] if row["dtype"] == dtype]
        positions = list(range(len(rows)))
        if kind == "roofline":
            bars = [
                ("forward", "forward_roofline"),
                ("backward", "backward_roofline"),
                ("matrix products alone", "shape_gemm_roofline"),
            ]
            for shift, (label, key) in zip((-0.27, 0.0, 0.27), bars):
                values = [row.get(key, float("nan")) for row in rows]
                ax.bar([p + shift for p in positions], values, 0.27, label=label)
            ax.set_yscale("log")
            top = max(row.get(key, 1.0) for row in rows for _, key in bars)
            ax.set_ylim(0.8, top * 5)  # room for the legend above the bars
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_title(f"{dtype}: time over a large matrix product's time for the same FLOPs")
            ax.set_ylabel("ratio (log scale)")
        else:
            ratios = [row.get("total_vs_torch", float("nan")) for row in rows]
            textbook = [
                (row["forward_ms"] + row["backward_ms"])
                / (row["textbook_forward_ms"] + row["textbook_backward_ms"])
                if "textbook_forward_ms" in row
                else float("nan")
                for row in rows
            ]
            ax.bar([p - 0.2 for p in positions], ratios, 0.4, color="tab:green", label="ours / PyTorch")
            ax.bar([p + 0.2 for p in positions], textbook, 0.4, color="tab:purple", label="ours / textbook")
            ax.set_ylim(0, max(ratios + textbook) * 1.35)  # room for the legend
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_title(f"{dtype}: forward + backward time, ratio (below 1: ours is faster)")
            ax.set_ylabel("time ratio")
        ax.set_xticks(positions, [_label(row) for row in rows], fontsize=9.5)
        ax.legend(fontsize=9.5, loc="upper center", ncol=3, framealpha=0.9)
        ax.margins(x=0.01)
    fig.text(
        0.01, 0.005, "layers: input channels \u2192 output channels, image size, kernel, stride", fontsize=9
    )
    fig.tight_layout(rect=(0, 0.015, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def summary_table(results: dict[str, Any]) -> str:
    """The results as the short Markdown table the performance page opens with."""
    lines = [
        "| layer | N | dtype | ours f+b ms | PyTorch f+b ms | ours / PyTorch | ours / textbook "
        "| peak MiB (columns) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        n, c_in, h, w, c_out, k, stride, _ = row["shape"]
        ours = row["forward_ms"] + row["backward_ms"]
        torch = row.get("torch_forward_ms", 0.0) + row.get("torch_backward_ms", 0.0)
        vs_torch = f"{row['total_vs_torch']:.2f}" if "total_vs_torch" in row else "-"
        textbook = "-"
        if "textbook_forward_ms" in row:
            textbook = f"{ours / (row['textbook_forward_ms'] + row['textbook_backward_ms']):.2f}"
        peak = max(row["forward_peak_bytes"], row["backward_peak_bytes"]) / 2**20
        layer = f"{c_in}\u2192{c_out}, {h}\u00d7{w}, {k}\u00d7{k}" + (f" /{stride}" if stride > 1 else "")
        lines.append(
            f"| {layer} | {n} | {row['dtype']} | {ours:.1f} | {f'{torch:.1f}' if torch else '-'} "
            f"| {vs_torch} | {textbook} | {peak:.1f} ({row['column_matrix_bytes'] / 2**20:.0f}) |"
        )
    return "\n".join(lines)


def markdown_table(results: dict[str, Any]) -> str:
    """Every measured column as one Markdown table (the results file's)."""
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
    print(summary_table(results))
    print()
    print(markdown_table(results))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
