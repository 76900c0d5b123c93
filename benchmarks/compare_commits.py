"""Compare two commits of im2col_conv on the benchmark layers, pass by pass.

Each commit is checked out into a temporary tree (``git worktree``) and timed
in processes of its own, the two alternating A, B, B, A, A, B ... over the
rounds, so that a host that speeds up or slows down during the run weighs on
both alike. Every process runs on one BLAS thread and measures CPU time
(``time.thread_time``): on a shared 2-core host the wall clock of a thread pool
drifts by up to 2x between runs, while the CPU time of one thread resolves
differences of a few percent. A row keeps each commit's minimum over the
rounds of its median call, and the ratio ``head / base`` is what the run
reports; above 1 the head commit is slower.

Usage::

    python benchmarks/compare_commits.py 310a4d1 HEAD            # every layer, f32 and f64
    python benchmarks/compare_commits.py 310a4d1 HEAD --rounds 3 --json out.json
    python benchmarks/compare_commits.py HEAD HEAD --tiny         # a smoke run of the machinery
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent

# Layers of bench.py, written out so that both commits time the same list:
# (N, C_in, H, W, C_out, k, stride, pad).
CONV_LAYERS = [
    (32, 64, 56, 56, 64, 3, 1, 1),
    (32, 128, 28, 28, 128, 3, 1, 1),
    (64, 3, 32, 32, 32, 5, 2, 2),
    (8, 256, 14, 14, 256, 3, 2, 1),
    (128, 1, 28, 28, 8, 3, 1, 0),
    (16, 32, 64, 64, 32, 1, 1, 0),
    (8, 3, 224, 224, 64, 7, 2, 3),
]
# (kind, (N, C, H, W), kernel, stride, padding)
POOL_LAYERS = [
    ("max", (32, 64, 112, 112), 3, 2, 1),
    ("avg", (32, 512, 7, 7), 7, 7, 0),
]
TINY_CONV = [(2, 3, 9, 9, 4, 3, 2, 1)]
TINY_POOL = [("max", (2, 3, 9, 9), 3, 2, 1), ("avg", (2, 3, 8, 8), 2, 2, 0)]
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def cpu_median(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def _conv_passes(ic: Any, np: Any, shape: tuple[int, ...], dtype: str) -> dict[str, Callable[[], object]]:
    n, c_in, h, w, c_out, k, s, p = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    gy = rng.standard_normal(ic.conv(x, weight, bias, stride=s, padding=p).shape).astype(dtype)
    return {
        "forward": lambda: ic.conv(x, weight, bias, stride=s, padding=p),
        "backward": lambda: ic.conv_backward(gy, x, weight, stride=s, padding=p),
    }


def _pool_passes(ic: Any, np: Any, layer: tuple[Any, ...], dtype: str) -> dict[str, Callable[[], object]]:
    kind, size, k, s, p = layer
    x = np.random.default_rng(1).standard_normal(size).astype(dtype)
    pool = ic.max_pool if kind == "max" else ic.avg_pool
    gy = np.random.default_rng(2).standard_normal(pool(x, k, s, p).shape).astype(dtype)
    if kind == "max":
        return {"forward": lambda: pool(x, k, s, p), "backward": lambda: ic.max_pool_backward(gy, x, k, s, p)}
    return {
        "forward": lambda: pool(x, k, s, p),
        "backward": lambda: ic.avg_pool_backward(gy, x.shape, k, s, p),
    }


def _rows(
    name: str, passes: dict[str, Callable[[], object]], dtype: str, repeats: int
) -> list[dict[str, Any]]:
    return [
        {"layer": name, "dtype": dtype, "pass": key, "s": cpu_median(fn, repeats)}
        for key, fn in passes.items()
    ]


def worker(tree: str, tiny: bool, dtypes: list[str], repeats: int) -> list[dict[str, Any]]:
    """Time every layer with the ``im2col_conv`` of ``tree``; runs inside a fresh process."""
    sys.path.insert(0, tree)
    import numpy as np

    import im2col_conv as ic

    if not Path(ic.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise RuntimeError(f"imported {ic.__file__}, not the tree {tree}")
    conv_layers, pool_layers = (TINY_CONV, TINY_POOL) if tiny else (CONV_LAYERS, POOL_LAYERS)
    rows = []
    for dtype in dtypes:
        for shape in conv_layers:
            rows += _rows(f"conv {shape}", _conv_passes(ic, np, shape, dtype), dtype, repeats)
        for layer in pool_layers:
            kind, size, k, s, p = layer
            rows += _rows(
                f"{kind}_pool {size} k={k} s={s} p={p}", _pool_passes(ic, np, layer, dtype), dtype, repeats
            )
    return rows


def _spawn(tree: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    command = [sys.executable, __file__, "--worker", str(tree), "--repeats", str(args.repeats)]
    command += ["--dtypes", *args.dtypes] + (["--tiny"] if args.tiny else [])
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=tree)
    if done.returncode != 0:
        raise RuntimeError(f"worker on {tree} failed:\n{done.stderr}")
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def _checkout(commit: str, into: Path) -> None:
    subprocess.run(
        ["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", str(into), commit],
        check=True,
        capture_output=True,
    )


def compare(base: str, head: str, args: argparse.Namespace) -> dict[str, Any]:
    """Alternate the two commits' workers over ``args.rounds`` rounds and combine their rows."""
    times: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"base": Path(scratch) / "base", "head": Path(scratch) / "head"}
        _checkout(base, trees["base"])
        _checkout(head, trees["head"])
        try:
            for round_ in range(args.rounds):
                order = ("base", "head") if round_ % 2 == 0 else ("head", "base")
                for side in order:
                    for row in _spawn(trees[side], args):
                        key = (row["layer"], row["dtype"], row["pass"])
                        times.setdefault(key, {"base": [], "head": []})[side].append(row["s"])
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(tree)], check=False
                )
    rows = []
    for (layer, dtype, pass_), both in times.items():
        base_s, head_s = min(both["base"]), min(both["head"])
        rows.append(
            {
                "layer": layer,
                "dtype": dtype,
                "pass": pass_,
                "base_ms": 1e3 * base_s,
                "head_ms": 1e3 * head_s,
                "ratio": head_s / base_s,
            }
        )
    return {"base": base, "head": head, "rounds": args.rounds, "repeats": args.repeats, "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a fixed-width table, slowest ratio flagged."""
    lines = [
        f"head {result['head']} over base {result['base']}: CPU time of one BLAS thread, "
        f"min over {result['rounds']} alternating rounds of the median of {result['repeats']} calls",
        f"{'layer':44} {'dtype':8} {'pass':9} {'base ms':>9} {'head ms':>9} {'ratio':>6}",
    ]
    for row in result["rows"]:
        flag = "  <- slower by more than 5 %" if row["ratio"] > 1.05 else ""
        lines.append(
            f"{row['layer']:44} {row['dtype']:8} {row['pass']:9} {row['base_ms']:9.2f} "
            f"{row['head_ms']:9.2f} {row['ratio']:6.2f}{flag}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 after the run, 1 when a worker fails, 2 for bad arguments.",
    )
    parser.add_argument("base", nargs="?")
    parser.add_argument("head", nargs="?")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument(
        "--tiny", action="store_true", help="one tiny layer of each kind: checks the machinery"
    )
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.tiny, args.dtypes, args.repeats)))
        return 0
    if not (args.base and args.head):
        parser.error("give the base and the head commit")
    result = compare(args.base, args.head, args)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
