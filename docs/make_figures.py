"""Draw the figures of the documentation from the library's own functions.

Run from the repository root (needs the ``docs`` extra)::

    python docs/make_figures.py [--out DIR]

Every figure is computed, not drawn by hand: the column picture comes from
``im2col``, the dilated and padded gradient from ``direct.dilate`` and
``direct.pad``, the two input-gradient computations from ``col2im`` and from
``direct.rot180`` plus a stride-1 correlation; the generalisations (padding,
dilation, groups, a 3-D rotation) from ``conv_backward``, ``direct.dilate``,
``direct.rot180`` and a grouped ``conv``. The SVG files are written to
``docs/figures/`` (or ``--out DIR``) and are byte-identical from one run to
the next.

Exit status: 0 when the figures are written, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIGURES = Path(__file__).resolve().parent / "figures"

# The reference derivation's example: 5x5 input, 3x3 kernel, stride 2 -> 2x2 output.
SIZE, KERNEL, STRIDE = 5, 3, 2
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
GREY = "#f2f2f2"
# Typographic signs for the labels, spelled as escapes to keep the source ASCII.
TIMES, MINUS = "\u00d7", "\u2212"


def _setup() -> Any:
    """Import matplotlib with a file-only backend and reproducible SVG output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.hashsalt": "im2col_conv-docs",
            "svg.fonttype": "path",
            "font.family": "DejaVu Sans",
            "font.size": 10,
        }
    )
    return plt


_output = FIGURES


def _save(fig: Any, name: str) -> Path:
    path = _output / name
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    return path


def _grid(
    ax: Any,
    values: np.ndarray,
    *,
    origin: tuple[float, float] = (0.0, 0.0),
    fill: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    title: str | None = None,
    fontsize: float = 10,
) -> None:
    """Draw a 2-D array as a grid of labelled cells; row 0 on top."""
    from matplotlib.patches import Rectangle

    rows, cols = values.shape
    x0, y0 = origin
    for i in range(rows):
        for j in range(cols):
            colour = GREY if fill is None else fill[i, j]
            ax.add_patch(
                Rectangle((x0 + j, y0 - i - 1), 1, 1, facecolor=colour, edgecolor="#555555", linewidth=0.8)
            )
            text = str(values[i, j]) if labels is None else str(labels[i, j])
            ax.text(x0 + j + 0.5, y0 - i - 0.5, text, ha="center", va="center", fontsize=fontsize)
    if title:
        ax.text(x0 + cols / 2, y0 + 0.35, title, ha="center", va="bottom", fontsize=fontsize + 1)


def _outline(
    ax: Any,
    top: int,
    left: int,
    height: int,
    width: int,
    colour: str,
    origin: tuple[float, float] = (0.0, 0.0),
    inset: float = 0.0,
) -> None:
    """Draw a rectangle around cells ``[top:top+height, left:left+width]`` of a grid."""
    from matplotlib.patches import Rectangle

    x0, y0 = origin
    ax.add_patch(
        Rectangle(
            (x0 + left + inset, y0 - top - height + inset),
            width - 2 * inset,
            height - 2 * inset,
            fill=False,
            edgecolor=colour,
            linewidth=2.4,
        )
    )


def columns_figure(plt: Any) -> Path:
    """Which 3x3 patch of the 5x5 input becomes which column of ``im2col``."""
    from im2col_conv import im2col

    x = np.arange(SIZE * SIZE).reshape(1, 1, SIZE, SIZE)
    cols = im2col(x, KERNEL, stride=STRIDE)[0]  # (9, 4): entries are input indices
    n_rows, n_cols = cols.shape
    out = (SIZE - KERNEL) // STRIDE + 1

    fig, ax = plt.subplots(figsize=(8.6, 4.4))
    ax.set_axis_off()
    ax.set_aspect("equal")

    # Left: the input, each window outlined in its colour (slightly inset so
    # overlapping windows stay visible).
    _grid(ax, x[0, 0], origin=(0, 0), title=f"input x (5{TIMES}5)")
    for p in range(n_cols):
        flat = cols[:, p]
        top, left = divmod(int(flat[0]), SIZE)
        _outline(ax, top, left, KERNEL, KERNEL, COLOURS[p], inset=0.06 + 0.07 * p)

    # Right: the column matrix; each column filled with its window's colour.
    ox = SIZE + 5.5
    fill = np.empty(cols.shape, dtype=object)
    for p in range(n_cols):
        fill[:, p] = COLOURS[p] + "40"  # translucent
    _grid(ax, cols, origin=(ox, 0), fill=fill, title=f"cols (9{TIMES}4)")
    for p in range(n_cols):
        i, j = divmod(p, out)
        ax.text(ox + p + 0.5, -n_rows - 0.3, f"({i},{j})", ha="center", va="top", fontsize=8)
    ax.text(ox - 0.2, -n_rows - 0.3, "output o", ha="right", va="top", fontsize=8)
    for r in range(n_rows):
        m, n = divmod(r, KERNEL)
        ax.text(ox - 0.2, -r - 0.5, f"({m},{n})", ha="right", va="center", fontsize=8)
    ax.text(ox - 0.2, 0.35, "offset k", ha="right", va="bottom", fontsize=8)

    ax.annotate(
        "",
        xy=(ox - 1.5, -2.5),
        xytext=(SIZE + 0.3, -2.5),
        arrowprops={"arrowstyle": "->", "linewidth": 1.4, "color": "#333333"},
    )
    ax.text((SIZE + ox - 1.2) / 2, -2.3, "im2col\nstride 2", ha="center", va="bottom", fontsize=9)
    ax.set_xlim(-0.3, ox + n_cols + 0.3)
    ax.set_ylim(-n_rows - 1.2, 1.2)
    path = _save(fig, "columns_5x5_k3_s2.svg")
    plt.close(fig)
    return path


def _example() -> tuple[np.ndarray, np.ndarray]:
    """The worked example's output gradient (2x2) and kernel (1..9), batched."""
    delta = np.array([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    kernel = np.arange(1, KERNEL * KERNEL + 1).reshape(1, 1, KERNEL, KERNEL)
    return delta, kernel


def dilate_pad_figure(plt: Any) -> Path:
    """The output gradient, dilated by the stride, then padded by k - 1."""
    from im2col_conv import direct

    delta, _ = _example()
    dilated = direct.dilate(delta, (STRIDE, STRIDE))
    padded = direct.pad(dilated, [(KERNEL - 1, KERNEL - 1)] * 2)

    out = delta.shape[-1]
    real = np.zeros(padded.shape[-2:], dtype=object)
    real[:] = "white"
    for p in range(out * out):
        i, j = divmod(p, out)
        real[KERNEL - 1 + i * STRIDE, KERNEL - 1 + j * STRIDE] = COLOURS[p] + "55"
    pad_fill = real.copy()
    pad_fill[pad_fill == "white"] = GREY
    inner = slice(KERNEL - 1, KERNEL - 1 + dilated.shape[-1])
    pad_fill[inner, inner] = np.where(real[inner, inner] == "white", "white", real[inner, inner])

    fig, ax = plt.subplots(figsize=(9.0, 3.6))
    ax.set_axis_off()
    ax.set_aspect("equal")
    y0 = -2.5
    _grid(
        ax, delta[0, 0], origin=(0, y0), fill=real[inner, inner][::STRIDE, ::STRIDE], title=f"δ (2{TIMES}2)"
    )
    _grid(
        ax,
        dilated[0, 0],
        origin=(4.5, y0 + 0.5),
        fill=real[inner, inner],
        title=f"dilated by s = 2 (3{TIMES}3)",
    )
    _grid(ax, padded[0, 0], origin=(11.0, 1.0), fill=pad_fill, title=f"padded by k {MINUS} 1 = 2 (7{TIMES}7)")
    _outline(ax, KERNEL - 1, KERNEL - 1, 3, 3, "#333333", origin=(11.0, 1.0))
    for x_from, x_to, y, text in ((2.3, 4.2, y0 - 1.0, "dilate"), (7.8, 10.7, y0 - 0.5, "pad")):
        ax.annotate(
            "",
            xy=(x_to, y),
            xytext=(x_from, y),
            arrowprops={"arrowstyle": "->", "linewidth": 1.4, "color": "#333333"},
        )
        ax.text((x_from + x_to) / 2, y + 0.2, text, ha="center", va="bottom", fontsize=9)
    ax.set_xlim(-0.3, 18.3)
    ax.set_ylim(-6.3, 2.0)
    path = _save(fig, "dilate_pad_5x5_k3_s2.svg")
    plt.close(fig)
    return path


def side_by_side_figure(plt: Any) -> Path:
    """col2im of the scaled kernels next to formula (8), both giving the same input gradient."""
    import im2col_conv as ic
    from im2col_conv import direct

    delta, kernel = _example()
    w_t_delta = kernel.reshape(1, -1).T @ delta.reshape(1, -1)  # (9, 4): one column per output position
    via_columns = ic.col2im(w_t_delta, (SIZE, SIZE), KERNEL, stride=STRIDE)[0]
    padded = direct.pad(direct.dilate(delta, (STRIDE, STRIDE)), [(KERNEL - 1, KERNEL - 1)] * 2)
    rotated = direct.rot180(kernel)
    via_formula_8 = direct.correlate(padded, rotated)[0, 0]
    if not np.array_equal(via_columns, via_formula_8):
        raise AssertionError("col2im(W^T delta) and formula (8) differ on the worked example")

    fig, ax = plt.subplots(figsize=(12.5, 6.4))
    ax.set_axis_off()
    ax.set_aspect("equal")
    arrow = {"arrowstyle": "->", "linewidth": 1.4, "color": "#333333"}
    out = delta.shape[-1]

    # Left: every column of W^T delta is the kernel scaled by one gradient entry;
    # col2im adds it onto the window it came from.
    top = -1.0
    ax.text(7.0, 2.4, "im2col_conv.conv_backward:  col2im(Wᵀ δ)", ha="center", fontsize=12)
    for p in range(out * out):
        i, j = divmod(p, out)
        block = w_t_delta[:, p].reshape(KERNEL, KERNEL)
        fill = np.full(block.shape, COLOURS[p] + "40", dtype=object)
        _grid(ax, block, origin=(j * 4.0, top - i * 4.4), fill=fill, title=f"δ[{i},{j}] · W", fontsize=9)
    ax.annotate("", xy=(8.9, top - 4.0), xytext=(7.4, top - 4.0), arrowprops=arrow)
    ax.text(8.15, top - 3.8, "add onto\nwindows", ha="center", va="bottom", fontsize=9)
    result = (9.3, top - 1.5)
    _grid(ax, via_columns, origin=result, title=f"input gradient (5{TIMES}5)")
    for p in range(out * out):
        i, j = divmod(p, out)
        _outline(ax, i * STRIDE, j * STRIDE, KERNEL, KERNEL, COLOURS[p], origin=result, inset=0.04 + 0.05 * p)

    ax.plot([15.2, 15.2], [-11.5, 2.5], color="#bbbbbb", linewidth=1.0)

    # Right: the rotated kernel slides over the padded, dilated gradient with stride 1.
    rx = 16.0
    ax.text(rx + 7.0, 2.4, "im2col_conv.direct:  formula (8)", ha="center", fontsize=12)
    _grid(ax, rotated[0, 0], origin=(rx, -0.5), title="rot180(W)", fontsize=9)
    fill = np.full(padded.shape[-2:], GREY, dtype=object)
    for p in range(out * out):
        i, j = divmod(p, out)
        fill[KERNEL - 1 + i * STRIDE, KERNEL - 1 + j * STRIDE] = COLOURS[p] + "55"
    grid_origin = (rx + 4.0, 1.0)
    _grid(ax, padded[0, 0], origin=grid_origin, fill=fill, title=f"padded, dilated δ (7{TIMES}7)", fontsize=9)
    # Two of the 25 windows: the one giving entry (0, 0) and the one giving (2, 2).
    _outline(ax, 0, 0, KERNEL, KERNEL, "#333333", origin=grid_origin, inset=0.05)
    _outline(ax, 2, 2, KERNEL, KERNEL, "#9467bd", origin=grid_origin, inset=0.05)
    ax.annotate("", xy=(rx + 7.5, -6.9), xytext=(rx + 7.5, -6.2), arrowprops=arrow)
    ax.text(rx + 7.8, -6.55, "correlate, stride 1", ha="left", va="center", fontsize=9)
    result = (rx + 5.0, -7.3)
    _grid(ax, via_formula_8, origin=result)
    _outline(ax, 0, 0, 1, 1, "#333333", origin=result, inset=0.05)
    _outline(ax, 2, 2, 1, 1, "#9467bd", origin=result, inset=0.05)
    ax.text(rx + 10.3, -9.8, f"input gradient (5{TIMES}5)", ha="left", va="center", fontsize=11)
    ax.set_xlim(-0.3, rx + 14.5)
    ax.set_ylim(-12.6, 3.0)
    path = _save(fig, "side_by_side_5x5_k3_s2.svg")
    plt.close(fig)
    return path


def _strip(
    ax: Any,
    values: Sequence[Any],
    y: float,
    *,
    fill: Sequence[str] | None = None,
    x0: float = 0.0,
    label: str | None = None,
    fontsize: float = 10,
) -> None:
    """One row of cells at height ``y`` (1-D arrays), with a label on the left."""
    row = np.array([list(values)], dtype=object)
    colours = None if fill is None else np.array([list(fill)], dtype=object)
    _grid(ax, row, origin=(x0, y), fill=colours, fontsize=fontsize)
    if label:
        ax.text(x0 - 0.3, y - 0.5, label, ha="right", va="center", fontsize=fontsize)


def _window(ax: Any, start: int, taps: Sequence[int], y: float, colour: str, x0: float = 0.0) -> None:
    """Dots under the cells a window reads, joined by a line: its taps."""
    xs = [x0 + start + t + 0.5 for t in taps]
    ax.plot(xs, [y] * len(xs), color=colour, linewidth=1.6, marker="o", markersize=5)


def _new(plt: Any, width: float, height: float) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_axis_off()
    ax.set_aspect("equal")
    return fig, ax


def padding_figure(plt: Any) -> Path:
    """Padding: formula (8) gives the gradient of the padded input; the padding is cropped."""
    import im2col_conv as ic
    from im2col_conv import direct

    n, k, s, p = 5, 3, 2, 1
    ones = np.ones((1, 1, ic.output_size(n, k, stride=s, padding=p)[0]), dtype=int)
    x, w = np.zeros((1, 1, n), dtype=int), np.ones((1, 1, k), dtype=int)
    via_columns = ic.conv_backward(ones, x, w, stride=s, padding=p).input[0, 0]
    # Formula (8) on the padded input, before the crop: the same call with no padding.
    padded = direct.conv_backward(ones, np.zeros((1, 1, n + 2 * p), dtype=int), w, stride=s).input[0, 0]
    if not np.array_equal(padded[p:-p], via_columns):
        raise AssertionError("cropping the padded input's gradient does not give the input gradient")
    fig, ax = _new(plt, 7.4, 3.3)
    grey = [GREY if i < p or i >= n + p else "white" for i in range(n + 2 * p)]
    labels = ["0"] * p + [f"x{i}" for i in range(n)] + ["0"] * p
    _strip(ax, labels, 0, fill=grey, label="padded input")
    for o in range(ones.shape[-1]):
        _window(ax, o * s, range(k), -1.3 - 0.3 * o, COLOURS[o])
    ax.text(n + 2 * p + 0.3, -1.6, "windows of the\nthree outputs", ha="left", va="center", fontsize=9)
    _strip(ax, padded, -2.4, fill=grey, label="(8) on the padded input")
    _strip(ax, via_columns, -4.0, x0=p, label="cropped: input gradient")
    for edge in (0, n + 2 * p - 1):
        ax.plot([edge + 0.15, edge + 0.85], [-3.25, -2.55], color="#d62728", linewidth=1.4)
    ax.set_xlim(-5.2, n + 2 * p + 2.6)
    ax.set_ylim(-5.3, 1.0)
    path = _save(fig, "padding_1d_n5_k3_s2_p1.svg")
    plt.close(fig)
    return path


def dilation_figure(plt: Any) -> Path:
    """Dilation: the taps spread out, and formula (8) uses the dilated, rotated kernel."""
    import im2col_conv as ic
    from im2col_conv import direct

    n, k, s, d = 7, 3, 1, 2
    out = ic.output_size(n, k, stride=s, dilation=d)[0]
    kernel = np.arange(1, k + 1).reshape(1, 1, k)
    rotated = direct.rot180(direct.dilate(kernel, d))[0, 0]
    extent = d * (k - 1) + 1
    fig, ax = _new(plt, 7.4, 3.4)
    _strip(ax, [f"x{i}" for i in range(n)], 0, label="input")
    for o in range(out):
        _window(ax, o * s, [t * d for t in range(k)], -1.3 - 0.3 * o, COLOURS[o % len(COLOURS)])
    ax.text(n + 0.3, -1.7, f"window o reads\no, o + {d}, o + {2 * d}", ha="left", va="center", fontsize=9)
    _strip(ax, [f"w{t}" for t in range(k)], -3.0, label="kernel")
    labels = ["0" if v == 0 else f"w{v - 1}" for v in rotated]
    fill = [GREY if v == 0 else COLOURS[1] + "40" for v in rotated]
    _strip(ax, labels, -4.4, fill=fill, label="dilated, rotated")
    ax.text(
        extent + 0.3,
        -4.9,
        f"span d(k {MINUS} 1) + 1 = {extent}:\npad the gradient by {extent - 1}",
        ha="left",
        va="center",
        fontsize=9,
    )
    ax.set_xlim(-4.0, n + 3.2)
    ax.set_ylim(-5.8, 1.0)
    path = _save(fig, "dilation_1d_n7_k3_d2.svg")
    plt.close(fig)
    return path


def groups_figure(plt: Any) -> Path:
    """Groups: the kernel matrix over all channels is block-diagonal."""
    import im2col_conv as ic

    c_in, c_out, k, groups = 4, 4, 3, 2
    x = np.arange(1, c_in * 5 + 1).reshape(1, c_in, 5)
    weight = np.ones((c_out, c_in // groups, k), dtype=int)
    # The grouped layer's kernel over all channels: each output channel's weights on its
    # group's input channels, zeros elsewhere; checked against the library's grouped forward.
    dense = np.zeros((c_out, c_in * k), dtype=int)
    per = c_in // groups
    for d in range(c_out):
        g = d // (c_out // groups)
        dense[d, g * per * k : (g + 1) * per * k] = weight[d].ravel()
    full = np.zeros((c_out, c_in, k), dtype=int)
    full.reshape(c_out, -1)[:] = dense
    if not np.array_equal(ic.conv(x, weight, groups=groups), ic.conv(x, full)):
        raise AssertionError("the block-diagonal kernel is not the grouped layer")
    fig, ax = _new(plt, 7.4, 2.9)
    fill = np.where(
        dense != 0, np.array([COLOURS[d // 2] + "55" for d in range(c_out)], dtype=object)[:, None], "white"
    )
    labels = np.where(dense != 0, "w", "0")
    _grid(ax, dense, fill=fill, labels=labels, fontsize=9)
    for c in range(c_in):
        ax.text(c * k + k / 2, 0.3, f"input channel {c}", ha="center", va="bottom", fontsize=8)
    for d in range(c_out):
        ax.text(-0.3, -d - 0.5, f"out {d}", ha="right", va="center", fontsize=8)
    ax.text(
        c_in * k / 2,
        -c_out - 0.4,
        f"W: {c_out} {TIMES} ({c_in} channels {TIMES} {k} offsets), groups = 2",
        ha="center",
        va="top",
        fontsize=9,
    )
    ax.set_xlim(-2.0, c_in * k + 0.3)
    ax.set_ylim(-c_out - 1.4, 1.2)
    path = _save(fig, "groups_1d_c4_g2.svg")
    plt.close(fig)
    return path


def nd_figure(plt: Any) -> Path:
    """N-D: the rotation flips every spatial axis; a 2x2x2 kernel as two slices."""
    from im2col_conv import direct

    kernel = np.arange(1, 9).reshape(1, 1, 2, 2, 2)
    rotated = direct.rot180(kernel)
    fig, ax = _new(plt, 7.4, 2.4)
    for side, (array, name) in enumerate(((kernel, "kernel"), (rotated, "rot180(kernel)"))):
        x0 = side * 7.0
        ax.text(x0 + 2.5, 1.3, name, ha="center", va="bottom", fontsize=11)
        for depth in range(2):
            _grid(ax, array[0, 0, depth], origin=(x0 + depth * 3.0, 0.0), title=f"slice {depth}", fontsize=9)
    ax.annotate(
        "",
        xy=(6.6, -1.0),
        xytext=(5.4, -1.0),
        arrowprops={"arrowstyle": "->", "linewidth": 1.4, "color": "#333333"},
    )
    ax.text(
        6.5, -2.6, "slices in reverse order, each turned by 180 degrees", ha="center", va="top", fontsize=9
    )
    ax.set_xlim(-0.3, 12.3)
    ax.set_ylim(-3.2, 2.2)
    path = _save(fig, "rot180_3d_k2.svg")
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    global _output
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=FIGURES, help=f"folder for the SVG files (default {FIGURES})"
    )
    _output = parser.parse_args(argv).out
    sys.path.insert(0, str(ROOT))
    plt = _setup()
    _output.mkdir(parents=True, exist_ok=True)
    makers = (columns_figure, dilate_pad_figure, side_by_side_figure, padding_figure, dilation_figure)
    for make in (*makers, groups_figure, nd_figure):
        print(make(plt))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
