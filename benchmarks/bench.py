"""Time im2col_conv's forward and backward against PyTorch and the textbook method.

For every layer shape and dtype it reports milliseconds, the *roofline
ratio* (time over the time the same FLOPs take in one large ``np.matmul``,
measured in the same run), the speed-up over the textbook method (an
untiled im2col + one matrix product + slice-add col2im, ``textbook.py``),
the ratio to PyTorch's CPU convolution when torch is installed, and the peak
temporary memory of a call next to the column matrix it did not build.

Usage::

    python benchmarks/bench.py                 # full suite, float32 and float64
    python benchmarks/bench.py --quick         # three shapes, two rounds (about two minutes)
    python benchmarks/bench.py --json out.json --rounds 4
    python benchmarks/bench.py --pool-only     # the pooling shapes alone

Honest numbers on a small shared machine: each library runs in its own
process (no shared thread pool or cache), the libraries alternate A, B, C,
A, B, C over the rounds, every measurement is the median of several warmed
calls, and each row keeps the minimum of its rounds' medians. PyTorch's own
roofline ratio and the spread of its rounds are printed as a noise flag: its
code does not change between runs, so when its rounds disagree by more than
:data:`NOISY` the run says it is too noisy to trust.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workers import LIBRARIES, THREADS, run_library

import im2col_conv as ic

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
QUICK = [SHAPES[2], SHAPES[3], SHAPES[4]]
# Pooling: (kind, (N, C, H, W), kernel, stride, padding)
POOL_SHAPES = [
    ("max", (32, 64, 112, 112), 3, 2, 1),
    ("avg", (32, 512, 7, 7), 7, 7, 0),
]

#: Largest spread (slowest over fastest round) of PyTorch's times that a run may show and be trusted.
NOISY = 1.25


def layer_flops(shape: tuple[int, ...]) -> int:
    """Multiply-adds times two of the forward GEMM; backward does twice this."""
    n, c_in, h, w, c_out, k, s, p = shape
    ho, wo = ic.output_size((h, w), k, s, p)
    return 2 * n * c_out * ho * wo * c_in * k * k


def _spawn(library: str, args: argparse.Namespace, extras: bool) -> dict[str, Any]:
    """Run one library's sweep in a fresh process and read the JSON it prints."""
    command = [sys.executable, __file__, "--worker", library, "--repeats", str(args.repeats)]
    command += ["--dtypes", *args.dtypes] + (["--quick"] if args.quick else [])
    command += ["--extras"] if extras else []
    command += ["--pool-only"] if args.pool_only else [] if args.pool else ["--no-pool"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{library} worker failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _conv_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["dtype"], tuple(row["shape"]))


def _pool_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["dtype"], row["kind"], tuple(row["shape"]), row["kernel"], row["stride"], row["padding"])


def _combine(per_round: dict[str, list[dict[str, Any]]], table: str, key: tuple[Any, ...]) -> dict[str, Any]:
    """One row: each library's min-of-medians over the rounds and the spread of its rounds."""
    identify = _conv_key if table == "rows" else _pool_key
    row: dict[str, Any] = {}
    for library, rounds in per_round.items():
        found = [r for sweep in rounds for r in sweep[table] if identify(r) == key]
        prefix = "" if library == "im2col_conv" else f"{library}_"
        for r in found:
            row.update({k: v for k, v in r.items() if not k.endswith("_ms") and k != "version"})
        for phase in {k for r in found for k in r if k.endswith("_ms")}:
            row[prefix + phase] = min(r[phase] for r in found if phase in r)
        totals = [r["forward_ms"] + r["backward_ms"] for r in found]
        row[f"{library}_spread"] = max(totals) / min(totals)
    return row


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Every library in its own process, alternating A, B, C, A, B, C over the rounds."""
    libraries = ["im2col_conv", "textbook"] + (["torch"] if args.torch and _torch_available() else [])
    per_round: dict[str, list[dict[str, Any]]] = {library: [] for library in libraries}
    for round_index in range(args.rounds):
        for library in libraries:
            extras = round_index == 0 and library == "im2col_conv"
            per_round[library].append(_spawn(library, args, extras))
            print(f"round {round_index + 1}/{args.rounds}: {library} done", file=sys.stderr)
    first = per_round["im2col_conv"][0]
    rates = {d: max(s["gemm_rate"][d] for runs in per_round.values() for s in runs) for d in args.dtypes}
    rows = [_combine(per_round, "rows", _conv_key(r)) for r in first["rows"]]
    for row in rows:
        _derive(row, rates[row["dtype"]])
    pool_rows = [_combine(per_round, "pool_rows", _pool_key(r)) for r in first["pool_rows"]]
    for row in pool_rows:
        row["speedup_textbook"] = (row["textbook_forward_ms"] + row["textbook_backward_ms"]) / (
            row["forward_ms"] + row["backward_ms"]
        )
        if "torch_forward_ms" in row:
            row["total_vs_torch"] = (row["forward_ms"] + row["backward_ms"]) / (
                row["torch_forward_ms"] + row["torch_backward_ms"]
            )
    results = {
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
            "threads": THREADS,
            "platform": platform.platform(),
            "blas": first["blas"],
            "openblas_environment": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        },
        "rounds": args.rounds,
        "libraries": libraries,
        "gemm_gflops": {d: r / 1e9 for d, r in rates.items()},
        "rows": rows,
        "pool_rows": pool_rows,
    }
    if "torch" in libraries:
        torch_rows = per_round["torch"][0]["rows"] or per_round["torch"][0]["pool_rows"]
        results["torch_version"] = torch_rows[0]["version"]
    return results


def _derive(row: dict[str, Any], rate: float) -> None:
    """Rooflines and ratios of one combined row."""
    flops = layer_flops(tuple(row["shape"]))
    ideal_ms = 1e3 * flops / rate
    row.update(
        gflop=flops / 1e9,
        gemm_gflops=rate / 1e9,
        forward_roofline=row["forward_ms"] / ideal_ms,
        backward_roofline=row["backward_ms"] / (2 * ideal_ms),
        forward_speedup_textbook=row["textbook_forward_ms"] / row["forward_ms"],
        backward_speedup_textbook=row["textbook_backward_ms"] / row["backward_ms"],
    )
    if "step_ms" in row:
        row["step_over_passes"] = row["step_ms"] / (row["forward_ms"] + row["backward_ms"])
    if "forward_gemm_only_ms" in row:
        row["shape_gemm_roofline"] = row["forward_gemm_only_ms"] / ideal_ms
    if "backward_gemm_only_ms" in row and "torch_forward_ms" in row:
        # The matrix products alone, with no lowering, col2im or call at all: a floor for the method.
        gemms = row["forward_gemm_only_ms"] + row["backward_gemm_only_ms"]
        row["gemm_floor_vs_torch"] = gemms / (row["torch_forward_ms"] + row["torch_backward_ms"])
    if "torch_forward_ms" in row:
        row["torch_roofline"] = (row["torch_forward_ms"] + row["torch_backward_ms"]) / (3 * ideal_ms)
        row["forward_vs_torch"] = row["forward_ms"] / row["torch_forward_ms"]
        row["backward_vs_torch"] = row["backward_ms"] / row["torch_backward_ms"]
        row["total_vs_torch"] = (row["forward_ms"] + row["backward_ms"]) / (
            row["torch_forward_ms"] + row["torch_backward_ms"]
        )


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


def _noise(results: dict[str, Any]) -> str:
    """One line on how far the run can be trusted, from PyTorch's round-to-round spread."""
    if "torch" not in results["libraries"]:
        return "noise: PyTorch not installed, no noise flag"
    if results["rounds"] < 2:
        return "noise: one round only, no noise flag"
    worst = max(results["rows"] + results.get("pool_rows", []), key=lambda r: r["torch_spread"])
    verdict = "TOO NOISY TO TRUST" if worst["torch_spread"] > NOISY else "ok"
    layer = ",".join(map(str, worst["shape"])) + (f" {worst['kind']} pool" if "kind" in worst else "")
    return (
        f"noise: {verdict} (PyTorch's rounds differ by up to {worst['torch_spread']:.2f}x, "
        f"{worst['dtype']} {layer}; limit {NOISY})"
    )


Column = tuple[str, int, Callable[[dict[str, Any]], str]]


def _cell(key: str, fmt: str) -> Callable[[dict[str, Any]], str]:
    """A column's cell: ``row[key]`` formatted, or ``-`` when the row lacks it."""
    return lambda row: format(row[key], fmt) if key in row else "-"


def _peak_mib(row: dict[str, Any]) -> str:
    return f"{max(row['forward_peak_bytes'], row['backward_peak_bytes']) / 2**20:.1f}"


def _render(columns: list[Column], rows: list[dict[str, Any]]) -> list[str]:
    """A header, a rule and one right-aligned line per row."""
    header = " ".join(f"{name:>{width}}" for name, width, _ in columns)
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(" ".join(f"{cell(row):>{width}}" for _, width, cell in columns))
    return lines


def format_table(results: dict[str, Any]) -> str:
    """One line per layer and dtype; times in ms, ratios unitless, memory in MiB."""

    columns: list[Column] = [
        ("dtype", 7, lambda r: r["dtype"]),
        ("N,Cin,H,W,Cout,k,s,p", 24, lambda r: ",".join(map(str, r["shape"]))),
        ("fwd", 7, _cell("forward_ms", ".1f")),
        ("bwd", 7, _cell("backward_ms", ".1f")),
        ("roof f", 6, _cell("forward_roofline", ".2f")),
        ("roof b", 6, _cell("backward_roofline", ".2f")),
        ("text f", 7, _cell("textbook_forward_ms", ".1f")),
        ("text b", 7, _cell("textbook_backward_ms", ".1f")),
        ("xtxt f", 6, _cell("forward_speedup_textbook", ".2f")),
        ("xtxt b", 6, _cell("backward_speedup_textbook", ".2f")),
        ("torch f", 7, _cell("torch_forward_ms", ".1f")),
        ("torch b", 7, _cell("torch_backward_ms", ".1f")),
        ("/t f", 5, _cell("forward_vs_torch", ".2f")),
        ("/t b", 5, _cell("backward_vs_torch", ".2f")),
        ("/t f+b", 6, _cell("total_vs_torch", ".2f")),
        ("step", 5, _cell("step_over_passes", ".2f")),
        ("t roof", 6, _cell("torch_roofline", ".2f")),
        ("gemm/t", 6, _cell("gemm_floor_vs_torch", ".2f")),
        ("t sprd", 6, _cell("torch_spread", ".2f")),
        ("peak", 6, _peak_mib),
        ("cols", 6, lambda r: f"{r['column_matrix_bytes'] / 2**20:.1f}"),
    ]
    lines = _render(columns, results["rows"])
    rates = ", ".join(f"{d} {g:.0f}" for d, g in results["gemm_gflops"].items())
    lines.append(f"large-GEMM rate (GFLOP/s): {rates}; min of {results['rounds']} rounds' medians")
    lines.append(_noise(results))
    lines.append(
        "fwd/bwd: conv / conv_backward (ms); roof: time over the large-GEMM time of the same FLOPs; "
        "text: the textbook method (ms); xtxt: its time over ours (speed-up); torch: PyTorch (ms); "
        "/t: our time over PyTorch's; step: a forward then a backward, back to back, over fwd + bwd "
        "(above 1: one pass slows the other down); t roof: PyTorch's own roofline ratio (f+b); "
        "t sprd: slowest over fastest round of PyTorch; gemm/t: the three matrix products alone "
        "(whole-batch columns, no lowering or col2im) over PyTorch's f+b, a floor for any im2col "
        "method; peak: temporary MiB of a call; cols: the column matrix it avoided"
    )
    return "\n".join(lines)


def format_pool_table(results: dict[str, Any]) -> str:
    """One line per pooling shape and dtype; times in ms, ratios unitless, memory in MiB."""

    columns: list[Column] = [
        ("dtype", 7, lambda r: r["dtype"]),
        ("pool", 4, lambda r: r["kind"]),
        ("N,C,H,W", 16, lambda r: ",".join(map(str, r["shape"]))),
        ("k,s,p", 7, lambda r: f"{r['kernel']},{r['stride']},{r['padding']}"),
        ("fwd", 7, _cell("forward_ms", ".1f")),
        ("bwd", 7, _cell("backward_ms", ".1f")),
        ("fn f", 7, _cell("function_forward_ms", ".1f")),
        ("fn b", 7, _cell("function_backward_ms", ".1f")),
        ("text f", 7, _cell("textbook_forward_ms", ".1f")),
        ("text b", 7, _cell("textbook_backward_ms", ".1f")),
        ("xtxt", 5, _cell("speedup_textbook", ".2f")),
        ("torch f", 7, _cell("torch_forward_ms", ".1f")),
        ("torch b", 7, _cell("torch_backward_ms", ".1f")),
        ("/t f+b", 6, _cell("total_vs_torch", ".2f")),
        ("t sprd", 6, _cell("torch_spread", ".2f")),
        ("peak", 6, _peak_mib),
        ("input", 6, lambda r: f"{r['input_bytes'] / 2**20:.1f}"),
    ]
    lines = _render(columns, results["pool_rows"])
    lines.append(
        "pooling fwd/bwd: MaxPool layer (winners kept) or avg_pool/avg_pool_backward; fn f/fn b: "
        "max_pool without indices, max_pool_backward finding the winners again; text: the textbook "
        "method; xtxt: its (f + b) over ours; /t f+b: (fwd + bwd) over PyTorch's (input requiring "
        "grad); peak: temporary MiB of a call"
    )
    return "\n".join(lines)


def format_results(results: dict[str, Any]) -> str:
    """The convolution table, the pooling table, or both."""
    parts = []
    if results["rows"]:
        parts.append(format_table(results))
    if results.get("pool_rows"):
        parts.append(format_pool_table(results))
    if not results["rows"]:
        parts.append(_noise(results))
    return "\n\n".join(parts)


def table_from_json(path: str) -> str:
    """Format a results file written by ``--json`` again, e.g. for the docs."""
    with open(path) as handle:
        return format_results(json.load(handle))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Exit status: 0 after the run, 2 for bad arguments."
    )
    parser.add_argument("--quick", action="store_true", help="three small shapes, two rounds")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3, quick 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip PyTorch")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--show", default=None, metavar="JSON", help="print the table of a results file")
    parser.add_argument(
        "--breakdown", action="store_true", help="time the phases (lowering, GEMM, col2im) of each layer"
    )
    parser.add_argument("--no-pool", dest="pool", action="store_false", help="skip the pooling shapes")
    parser.add_argument("--pool-only", action="store_true", help="only the pooling shapes")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shapes = [] if args.pool_only else QUICK if args.quick else SHAPES
    pool_shapes = POOL_SHAPES if args.pool or args.pool_only else []
    if args.worker:
        found = run_library(args.worker, shapes, pool_shapes, args.dtypes, args.repeats, args.extras)
        print(json.dumps(found))
        return 0
    if args.show:
        print(table_from_json(args.show))
        return 0
    if args.breakdown:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(THREADS):
            for dtype in args.dtypes:
                for shape in shapes:
                    phases = phase_breakdown(shape, np.dtype(dtype), max(args.repeats, 3))
                    text = "  ".join(f"{name} {ms:.1f}" for name, ms in phases.items())
                    print(f"{dtype} {','.join(map(str, shape))}: {text}")
        return 0
    if args.rounds is None:
        args.rounds = 2 if args.quick else 3
    results = sweep(args)
    print(format_results(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
