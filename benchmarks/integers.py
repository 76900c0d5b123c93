"""Integer convolution against float64: the exact-float path costs little.

For each layer, times ``conv`` forward + ``conv_backward`` on int32 and int64
operands whose partial sums stay below 2**53 (so the call computes in float64
and converts back exactly), and on the same values in float64, alternating
the dtypes round by round. Prints the ratio of the minimum medians; the
documented target is at most 1.5.

Usage: ``python benchmarks/integers.py [--rounds R] [--quick]``. Exit code 0,
or 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workers import median_of

import im2col_conv as ic

LAYERS = {
    # name: (N, C_in, H, W, C_out, k, stride, padding)
    "MNIST 1->32 3x3": (64, 1, 28, 28, 32, 3, 1, 1),
    "CIFAR 3->64 5x5/2": (64, 3, 32, 32, 64, 5, 2, 2),
    "64->64 3x3 on 28x28": (16, 64, 28, 28, 64, 3, 1, 1),
}


def measure(shape: tuple[int, ...], rounds: int, repeats: int) -> dict[str, float]:
    """Min over rounds of the median time of forward + backward, per dtype."""
    n, c_in, h, w, c_out, k, s, p = shape
    rng = np.random.default_rng(0)
    x = rng.integers(-100, 101, size=(n, c_in, h, w))
    weight = rng.integers(-100, 101, size=(c_out, c_in, k, k))
    gy = rng.integers(-100, 101, size=ic.conv(x, weight, stride=s, padding=p).shape)
    operands = {
        dtype: (x.astype(dtype), weight.astype(dtype), gy.astype(dtype))
        for dtype in ("float64", "int32", "int64")
    }
    best = {dtype: float("inf") for dtype in operands}
    for _ in range(rounds):
        for dtype, (xd, wd, gd) in operands.items():

            def step(xd=xd, wd=wd, gd=gd) -> None:
                ic.conv(xd, wd, stride=s, padding=p)
                ic.conv_backward(gd, xd, wd, stride=s, padding=p)

            best[dtype] = min(best[dtype], median_of(step, repeats))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per layer (default 4)")
    parser.add_argument("--quick", action="store_true", help="one layer, two rounds")
    args = parser.parse_args(argv)
    layers = dict(list(LAYERS.items())[:1]) if args.quick else LAYERS
    rounds = 2 if args.quick else args.rounds
    print("| layer | float64 ms | int32 / float64 | int64 / float64 |")
    print("| --- | --- | --- | --- |")
    for name, shape in layers.items():
        best = measure(shape, rounds, repeats=3)
        print(
            f"| {name} | {1e3 * best['float64']:.1f} | {best['int32'] / best['float64']:.2f} "
            f"| {best['int64'] / best['float64']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
