"""Fixed cost of a call against the work of a small layer.

A call's fixed cost is everything that is not the lowering copy, the matrix
product or the col2im: checking the arguments, the geometry, the tile plan,
allocating. It is measured as the time of the same call on an input with no
work in it, ``(1, 1, 3, 3)`` against a ``(1, 1, 3, 3)`` kernel, and compared
with the forward of the MNIST layer, a ``(128, 1, 28, 28)`` float32 batch
against an ``(8, 1, 3, 3)`` kernel at stride 1 without padding, for
``conv``, ``conv_backward`` and the ``Conv`` layer's forward. Each time is the
median of many calls, the minimum over rounds (other processes on the
machine only ever add time).

Usage: ``python benchmarks/overhead.py [--rounds R] [--calls C] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workers import median_of

import im2col_conv as ic
from im2col_conv.layer import Conv

#: (batch, in channels, height, width, out channels, kernel) of the MNIST layer.
MNIST = (128, 1, 28, 28, 8, 3)


def _median_seconds(fn: Callable[[], object], calls: int) -> float:
    fn()  # the first call allocates what later calls reuse
    return median_of(fn, calls)


def _calls(n: int, c_in: int, h: int, w: int, c_out: int, k: int) -> dict[str, Callable[[], object]]:
    """The three calls measured, on operands of these sizes."""
    # The float64 temporaries made and freed here are larger than any buffer of
    # the calls, which raises glibc's threshold for mapping fresh pages: later
    # buffers come from its heap, as in a long-running program, and the times
    # do not include first-touch page faults.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    weight = rng.standard_normal((c_out, c_in, k, k)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    grad = rng.standard_normal(ic.conv(x, weight).shape).astype(np.float32)
    layer = Conv(c_in, c_out, k, rng=0)
    return {
        "conv": lambda: ic.conv(x, weight, bias),
        "conv_backward": lambda: ic.conv_backward(grad, x, weight),
        "Conv.forward": lambda: layer(x),
    }


def measure(rounds: int, calls: int) -> dict[str, tuple[float, float]]:
    """Per call: the minimum over rounds of the median work-free and MNIST times, in seconds."""
    free = _calls(1, 1, 3, 3, 1, 3)
    mnist = _calls(*MNIST)
    best = {name: (float("inf"), float("inf")) for name in free}
    for _ in range(rounds):
        for name in free:
            empty = _median_seconds(free[name], calls)
            full = _median_seconds(mnist[name], max(calls // 40, 5))
            best[name] = (min(best[name][0], empty), min(best[name][1], full))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 after the run, 2 for bad arguments.",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds, the minimum is kept (default 5)")
    parser.add_argument(
        "--calls", type=int, default=2000, help="work-free calls per median (default 2000; MNIST: 1/40)"
    )
    parser.add_argument("--quick", action="store_true", help="two rounds of 400 calls")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")
    rounds, calls = (2, 400) if args.quick else (args.rounds, args.calls)
    print("| call | work-free us | MNIST ms | work-free / MNIST |")
    print("| --- | --- | --- | --- |")
    for name, (empty, full) in measure(rounds, calls).items():
        print(f"| {name} | {1e6 * empty:.1f} | {1e3 * full:.2f} | {100 * empty / full:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
