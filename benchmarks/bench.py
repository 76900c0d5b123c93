"""Time im2col_conv's forward and backward on a suite of layer shapes.

For every shape and dtype it reports milliseconds, GFLOP/s, the *roofline
ratio* (time over the time the same FLOPs take in one large ``np.matmul``,
measured in the same run), PyTorch's time and our ratio to it when torch is
installed, the peak temporary memory of a call next to the column matrix it
did not materialise, and the time of the direct (dilate-pad-rotate) method.

Usage::

    python benchmarks/bench.py                 # full suite, float32 and float64
    python benchmarks/bench.py --quick         # three shapes, one round
    python benchmarks/bench.py --json out.json --rounds 3

Honest numbers on a small shared machine: every measurement is warmed up and
is the median of several runs; the whole sweep is repeated and the better
round kept; NumPy and PyTorch are never timed in the same loop, since each
one's thread pool keeps spinning for a while after a call and slows the other.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

import im2col_conv as ic

THREADS = 2
# (N, C_in, H, W, C_out, k, stride, pad)
SHAPES = [
    (32, 64, 56, 56, 64, 3, 1, 1),
    (32, 128, 28, 28, 128, 3, 1, 1),
    (64, 3, 32, 32, 32, 5, 2, 2),
    (8, 256, 14, 14, 256, 3, 2, 1),
    (128, 1, 28, 28, 8, 3, 1, 0),
    (16, 32, 64, 64, 32, 1, 1, 0),
    (8, 3, 224, 224, 64, 7, 2, 3),
]
QUICK = [SHAPES[0], SHAPES[2], SHAPES[4]]
# Pooling: (kind, (N, C, H, W), kernel, stride, padding)
POOL_SHAPES = [
    ("max", (32, 64, 112, 112), 3, 2, 1),
    ("avg", (32, 512, 7, 7), 7, 7, 0),
]


def median_time(fn: Callable[[], object], repeats: int, budget: float = 2.0) -> float:
    """Median wall time of ``fn`` after one warm-up call, in seconds.

    Fewer repeats are taken when one call is slow, so the sweep stays short.
    """
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    count = max(1, min(repeats, int(budget / max(first, 1e-9))))
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_rate(dtype: np.dtype[Any], repeats: int) -> float:
    """FLOP/s of one large square ``np.matmul``: the ceiling for every layer."""
    rng = np.random.default_rng(0)
    size = 2048
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    return 2 * size**3 / median_time(lambda: a @ b, repeats)


def layer_flops(shape: tuple[int, ...]) -> int:
    """Multiply-adds times two of the forward GEMM; backward does twice this."""
    n, c_in, h, w, c_out, k, s, p = shape
    ho, wo = ic.output_size((h, w), k, s, p)
    return 2 * n * c_out * ho * wo * c_in * k * k


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak memory allocated during ``fn`` beyond what it returns, by tracemalloc."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak - base - (current - base)


def run_numpy(
    shape: tuple[int, ...], dtype: np.dtype[Any], repeats: int, with_direct: bool
) -> dict[str, Any]:
    n, c_in, h, w, c_out, k, s, p = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    y = ic.conv(x, weight, bias, stride=s, padding=p)
    gy = rng.standard_normal(y.shape).astype(dtype)

    def forward() -> object:
        return ic.conv(x, weight, bias, stride=s, padding=p)

    def backward() -> object:
        return ic.conv_backward(gy, x, weight, stride=s, padding=p)

    # The column matrix of the whole batch, as conv_forward keeps it, and the
    # forward's one matrix product on it alone: the best the method can do with
    # this BLAS at this shape, copies and col2im aside.
    _, columns = ic.conv_forward(x, weight, stride=s, padding=p)
    grouped = weight.reshape(1, c_out, -1)

    def backward_with_columns() -> object:
        return ic.conv_backward(gy, x, weight, stride=s, padding=p, columns=columns)

    row = {
        "forward_ms": 1e3 * median_time(forward, repeats),
        "backward_ms": 1e3 * median_time(backward, repeats),
        "backward_with_columns_ms": 1e3 * median_time(backward_with_columns, repeats),
        "forward_gemm_only_ms": 1e3 * median_time(lambda: np.matmul(grouped, columns.data), repeats),
        "forward_peak_bytes": peak_bytes(forward),
        "backward_peak_bytes": peak_bytes(backward),
        "column_matrix_bytes": c_in * k * k * y.shape[2] * y.shape[3] * n * np.dtype(dtype).itemsize,
    }
    if with_direct:
        from im2col_conv import direct

        row["direct_backward_ms"] = 1e3 * median_time(
            lambda: direct.conv_backward(gy, x, weight, stride=s, padding=p), 1, budget=0.0
        )
    return row


def run_torch(shape: tuple[int, ...], dtype: np.dtype[Any], repeats: int) -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    n, c_in, h, w, c_out, k, s, p = shape
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, c_in, h, w, dtype=tdtype, generator=gen, requires_grad=True)
    weight = torch.randn(c_out, c_in, k, k, dtype=tdtype, generator=gen, requires_grad=True)
    bias = torch.randn(c_out, dtype=tdtype, generator=gen, requires_grad=True)
    y = torch.nn.functional.conv2d(x, weight, bias, stride=s, padding=p)
    gy = torch.randn(y.shape, dtype=tdtype, generator=gen)

    def forward() -> object:
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, weight, bias, stride=s, padding=p)

    def backward() -> object:
        return torch.autograd.grad(y, (x, weight, bias), gy, retain_graph=True)

    return {
        "torch_version": torch.__version__,
        "torch_forward_ms": 1e3 * median_time(forward, repeats),
        "torch_backward_ms": 1e3 * median_time(backward, repeats),
    }


def better(a: dict[str, Any] | None, b: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Keep, for each timing key, the faster of two rounds."""
    if a is None:
        return b
    merged = dict(a)
    for key in keys:
        if key in b and key in a:
            merged[key] = min(a[key], b[key])
    return merged


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    shapes = QUICK if args.quick else SHAPES
    dtypes = [np.dtype(d) for d in args.dtypes]
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
            "threads": THREADS,
            "platform": platform.platform(),
        },
        "rows": [],
    }
    numpy_keys = (
        "forward_ms",
        "backward_ms",
        "backward_with_columns_ms",
        "forward_gemm_only_ms",
        "direct_backward_ms",
    )
    torch_keys = ("torch_forward_ms", "torch_backward_ms")
    for dtype in dtypes:
        rate = None
        best: dict[tuple[int, ...], dict[str, Any]] = {}
        for round_index in range(args.rounds):
            # Each library in its own phase, so neither's spinning threads slow the other.
            round_rate = gemm_rate(dtype, args.repeats)
            rate = round_rate if rate is None else max(rate, round_rate)
            for shape in shapes:
                with_direct = args.direct and round_index == 0
                best[shape] = better(
                    best.get(shape), run_numpy(shape, dtype, args.repeats, with_direct), numpy_keys
                )
            if args.torch:
                for shape in shapes:
                    torch_row = run_torch(shape, dtype, args.repeats)
                    if torch_row is not None:
                        best[shape] = better(best[shape], torch_row, torch_keys) | {
                            k: v for k, v in torch_row.items() if k not in best[shape]
                        }
        assert rate is not None
        for shape in shapes:
            row = best[shape]
            flops = layer_flops(shape)
            ideal_ms = 1e3 * flops / rate
            row.update(
                shape=list(shape),
                dtype=dtype.name,
                gflop=flops / 1e9,
                gemm_gflops=rate / 1e9,
                forward_gflops=flops / row["forward_ms"] / 1e6,
                backward_gflops=2 * flops / row["backward_ms"] / 1e6,
                forward_roofline=row["forward_ms"] / ideal_ms,
                backward_roofline=row["backward_ms"] / (2 * ideal_ms),
                shape_gemm_roofline=row["forward_gemm_only_ms"] / ideal_ms,
            )
            if "torch_forward_ms" in row:
                row["forward_vs_torch"] = row["forward_ms"] / row["torch_forward_ms"]
                row["backward_vs_torch"] = row["backward_ms"] / row["torch_backward_ms"]
                row["total_vs_torch"] = (row["forward_ms"] + row["backward_ms"]) / (
                    row["torch_forward_ms"] + row["torch_backward_ms"]
                )
            results["rows"].append(row)
    return results


def run_numpy_pool(shape: tuple[Any, ...], dtype: np.dtype[Any], repeats: int) -> dict[str, Any]:
    """Forward and backward of a pooling layer as training runs it.

    Max pooling is timed through the ``MaxPool`` layer, whose forward keeps
    each window's winner (as PyTorch's forward keeps indices when the input
    needs a gradient), and also as the functions alone: ``max_pool`` without
    indices, then ``max_pool_backward`` finding the winners again.
    """
    kind, size, k, s, p = shape
    x = np.random.default_rng(1).standard_normal(size).astype(dtype)
    if kind == "max":
        layer = ic.MaxPool(k, s, p)
        gy = np.random.default_rng(2).standard_normal(layer(x).shape).astype(dtype)
        forward: Callable[[], object] = lambda: layer(x)  # noqa: E731
        backward: Callable[[], object] = lambda: layer.backward(gy)  # noqa: E731
        extra = {
            "function_forward_ms": 1e3 * median_time(lambda: ic.max_pool(x, k, s, p), repeats),
            "function_backward_ms": 1e3 * median_time(lambda: ic.max_pool_backward(gy, x, k, s, p), repeats),
        }
    else:
        gy = np.random.default_rng(2).standard_normal(ic.avg_pool(x, k, s, p).shape).astype(dtype)
        forward = lambda: ic.avg_pool(x, k, s, p)  # noqa: E731
        backward = lambda: ic.avg_pool_backward(gy, x.shape, k, s, p)  # noqa: E731
        extra = {}
    layer_forward_ms = 1e3 * median_time(forward, repeats)
    return {
        "forward_ms": layer_forward_ms,
        "backward_ms": 1e3 * median_time(backward, repeats),
        "forward_peak_bytes": peak_bytes(forward),
        "backward_peak_bytes": peak_bytes(backward),
        "input_bytes": x.nbytes,
        **extra,
    }


def run_torch_pool(shape: tuple[Any, ...], dtype: np.dtype[Any], repeats: int) -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    kind, size, k, s, p = shape
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    x = torch.randn(*size, dtype=tdtype, generator=torch.Generator().manual_seed(1), requires_grad=True)
    pool = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    y = pool(x, k, s, p)
    gy = torch.randn(y.shape, dtype=tdtype)
    return {
        "torch_forward_ms": 1e3 * median_time(lambda: pool(x, k, s, p), repeats),
        "torch_backward_ms": 1e3
        * median_time(lambda: torch.autograd.grad(y, x, gy, retain_graph=True), repeats),
    }


def pool_sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The pooling rows, NumPy and PyTorch in alternate phases, the better round kept."""
    rows = []
    keys = ("forward_ms", "backward_ms", "function_forward_ms", "function_backward_ms")
    for dtype in (np.dtype(d) for d in args.dtypes):
        best: dict[tuple[Any, ...], dict[str, Any]] = {}
        for _ in range(args.rounds):
            for shape in POOL_SHAPES:
                best[shape] = better(best.get(shape), run_numpy_pool(shape, dtype, args.repeats), keys)
            if args.torch:
                for shape in POOL_SHAPES:
                    torch_row = run_torch_pool(shape, dtype, args.repeats)
                    if torch_row is not None:
                        best[shape] = best[shape] | {
                            key: min(value, best[shape].get(key, value)) for key, value in torch_row.items()
                        }
        for shape, row in best.items():
            kind, size, k, s, p = shape
            row.update(kind=kind, shape=list(size), kernel=k, stride=s, padding=p, dtype=dtype.name)
            if "torch_forward_ms" in row:
                row["total_vs_torch"] = (row["forward_ms"] + row["backward_ms"]) / (
                    row["torch_forward_ms"] + row["torch_backward_ms"]
                )
            rows.append(row)
    return rows


def format_pool_table(rows: list[dict[str, Any]]) -> str:
    """One line per pooling shape and dtype; times in ms, memory in MiB."""
    lines = [
        f"{'dtype':>7} {'pool':>4} {'N,C,H,W':>16} {'k,s,p':>7} {'fwd':>7} {'bwd':>7} {'fn f':>7} "
        f"{'fn b':>7} {'torch f':>7} {'torch b':>7} {'vs t':>5} {'peak':>6} {'input':>6}"
    ]
    for r in rows:
        cells = [
            r["dtype"],
            r["kind"],
            ",".join(map(str, r["shape"])),
            f"{r['kernel']},{r['stride']},{r['padding']}",
            f"{r['forward_ms']:.1f}",
            f"{r['backward_ms']:.1f}",
            f"{r['function_forward_ms']:.1f}" if "function_forward_ms" in r else "-",
            f"{r['function_backward_ms']:.1f}" if "function_backward_ms" in r else "-",
            f"{r['torch_forward_ms']:.1f}" if "torch_forward_ms" in r else "-",
            f"{r['torch_backward_ms']:.1f}" if "torch_backward_ms" in r else "-",
            f"{r['total_vs_torch']:.2f}" if "total_vs_torch" in r else "-",
            f"{max(r['forward_peak_bytes'], r['backward_peak_bytes']) / 2**20:.1f}",
            f"{r['input_bytes'] / 2**20:.1f}",
        ]
        widths = (7, 4, 16, 7, 7, 7, 7, 7, 7, 7, 5, 6, 6)
        lines.append(" ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths)))
    lines.append(
        "pooling fwd/bwd: MaxPool layer (winners kept) or avg_pool/avg_pool_backward; fn f/fn b: "
        "max_pool without indices, max_pool_backward finding the winners again; vs t: (fwd + bwd) / "
        "PyTorch's forward (input requiring grad) + backward; peak: temporary MiB of a call"
    )
    return "\n".join(lines)


def phase_breakdown(shape: tuple[int, ...], dtype: np.dtype[Any], repeats: int) -> dict[str, float]:
    """Milliseconds spent in each phase of conv and conv_backward (best of ``repeats``).

    The engine reports its lowering copies, matrix products and col2im
    additions through :func:`im2col_conv.profiling.record_phases`; "other" is
    the rest of the call (checks, allocation, the batch-first transposes).
    """
    from im2col_conv.profiling import record_phases

    n, c_in, h, w, c_out, k, s, p = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    gy = rng.standard_normal(ic.conv(x, weight, stride=s, padding=p).shape).astype(dtype)
    result: dict[str, float] = {}
    for label, call in (
        ("forward", lambda: ic.conv(x, weight, stride=s, padding=p)),
        ("backward", lambda: ic.conv_backward(gy, x, weight, stride=s, padding=p)),
    ):
        best: tuple[float, dict[str, float]] | None = None
        for _ in range(repeats):
            with record_phases() as spent:
                start = time.perf_counter()
                call()
                total = time.perf_counter() - start
            if best is None or total < best[0]:
                best = (total, dict(spent))
        assert best is not None
        total, parts = best
        phases = {
            "lowering": parts.get("lowering", 0.0),
            "matmul": parts.get("matmul", 0.0),
            "col2im adds": parts.get("col2im", 0.0),
        }
        phases["other"] = total - sum(phases.values())
        result.update({f"{label} {name}": 1e3 * value for name, value in phases.items()})
        result[f"{label} total"] = 1e3 * total
    return result


def format_table(results: dict[str, Any]) -> str:
    """One line per layer and dtype; times in ms, ratios unitless, memory in MiB."""
    columns = [
        ("dtype", 7, lambda r: r["dtype"]),
        ("N,Cin,H,W,Cout,k,s,p", 24, lambda r: ",".join(map(str, r["shape"]))),
        ("fwd", 7, lambda r: f"{r['forward_ms']:.1f}"),
        ("bwd", 7, lambda r: f"{r['backward_ms']:.1f}"),
        ("bwd+c", 7, lambda r: f"{r['backward_with_columns_ms']:.1f}"),
        ("gemm", 7, lambda r: f"{r['forward_gemm_only_ms']:.1f}"),
        ("roof f", 6, lambda r: f"{r['forward_roofline']:.2f}"),
        ("roof b", 6, lambda r: f"{r['backward_roofline']:.2f}"),
        ("roof g", 6, lambda r: f"{r['shape_gemm_roofline']:.2f}"),
        ("torch f", 7, lambda r: f"{r['torch_forward_ms']:.1f}" if "torch_forward_ms" in r else "-"),
        ("torch b", 7, lambda r: f"{r['torch_backward_ms']:.1f}" if "torch_backward_ms" in r else "-"),
        ("vs t", 5, lambda r: f"{r['total_vs_torch']:.2f}" if "total_vs_torch" in r else "-"),
        ("peak", 6, lambda r: f"{max(r['forward_peak_bytes'], r['backward_peak_bytes']) / 2**20:.1f}"),
        ("cols", 6, lambda r: f"{r['column_matrix_bytes'] / 2**20:.1f}"),
        ("direct", 7, lambda r: f"{r['direct_backward_ms']:.0f}" if "direct_backward_ms" in r else "-"),
    ]
    header = " ".join(f"{name:>{width}}" for name, width, _ in columns)
    lines = [header, "-" * len(header)]
    for row in results["rows"]:
        lines.append(" ".join(f"{cell(row):>{width}}" for _, width, cell in columns))
    rates = sorted({(r["dtype"], round(r["gemm_gflops"])) for r in results["rows"]})
    lines.append("large-GEMM rate (GFLOP/s): " + ", ".join(f"{d} {g}" for d, g in rates))
    lines.append(
        "fwd/bwd: conv/conv_backward; bwd+c: conv_backward given conv_forward's columns; gemm: the "
        "forward's matrix product alone; roof: time over the large-GEMM time of the same FLOPs; "
        "vs t: (fwd + bwd) / PyTorch's; peak: temporary MiB of a call; cols: the column matrix it "
        "avoided; direct: im2col_conv.direct.conv_backward"
    )
    return "\n".join(lines)


def table_from_json(path: str) -> str:
    """Format a results file written by ``--json`` again, e.g. for the docs."""
    with open(path) as handle:
        return format_table(json.load(handle))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Exit status: 0 after the run, 2 for bad arguments."
    )
    parser.add_argument("--quick", action="store_true", help="three shapes only")
    parser.add_argument("--rounds", type=int, default=2, help="repeat the sweep, keep the better round")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip PyTorch")
    parser.add_argument("--no-direct", dest="direct", action="store_false", help="skip the direct method")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--show", default=None, metavar="JSON", help="print the table of a results file")
    parser.add_argument("--no-pool", dest="pool", action="store_false", help="skip the pooling shapes")
    parser.add_argument("--pool-only", action="store_true", help="only the pooling shapes")
    parser.add_argument(
        "--breakdown", action="store_true", help="time the phases (lowering, GEMM, col2im) of each layer"
    )
    args = parser.parse_args(argv)
    if args.show:
        print(table_from_json(args.show))
        return 0
    if args.breakdown:
        for dtype in args.dtypes:
            for shape in QUICK if args.quick else SHAPES:
                phases = phase_breakdown(shape, np.dtype(dtype), max(args.repeats, 3))
                text = "  ".join(f"{name} {ms:.1f}" for name, ms in phases.items())
                print(f"{dtype} {','.join(map(str, shape))}: {text}")
        return 0
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limit: Any = contextlib.nullcontext
    else:
        limit = threadpool_limits
    with limit(THREADS):
        results = {"rows": []} if args.pool_only else sweep(args)
        if args.pool or args.pool_only:
            results["pool_rows"] = pool_sweep(args)
    if results["rows"]:
        print(format_table(results))
    if results.get("pool_rows"):
        print(format_pool_table(results["pool_rows"]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
