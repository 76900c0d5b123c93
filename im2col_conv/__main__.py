"""Self-demonstration: ``python -m im2col_conv``.

Runs the reference document's example (a 5x5 input, a 3x3 kernel, stride 2,
a 2x2 output) through the im2col forward and backward, prints every result,
and checks each one against the document's formulas written as plain loops.
Then runs the document's direct method (:mod:`im2col_conv.direct`) on the same
example, prints its dilated (3x3) and padded (7x7) gradient, and checks that
both backward formulations agree exactly.

Exit status: 0 when every check holds, 1 when one fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import conv, conv_backward, direct


def _formula_forward(z: NDArray[Any], w: NDArray[Any], b: NDArray[Any], s: int) -> NDArray[Any]:
    # Formula (4), one sample, PyTorch weight layout w[d, c, m, n] == W[m, n, c, d].
    c_out, c_in, k1, k2 = w.shape
    h = (z.shape[1] - k1) // s + 1
    wd = (z.shape[2] - k2) // s + 1
    out = np.zeros((c_out, h, wd), dtype=np.result_type(z, w))
    for d in range(c_out):
        for i in range(h):
            for j in range(wd):
                total = b[d]
                for c in range(c_in):
                    for m in range(k1):
                        for n in range(k2):
                            total += w[d, c, m, n] * z[c, i * s + m, j * s + n]
                out[d, i, j] = total
    return out


def _formula_gradients(
    delta: NDArray[Any], z: NDArray[Any], w: NDArray[Any], s: int
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    # Formulas (5) and (6), and the input gradient by the chain rule on (4).
    c_out, c_in, k1, k2 = w.shape
    grad_w = np.zeros_like(w)
    grad_z = np.zeros_like(z)
    for d in range(c_out):
        for i in range(delta.shape[1]):
            for j in range(delta.shape[2]):
                for c in range(c_in):
                    for m in range(k1):
                        for n in range(k2):
                            grad_w[d, c, m, n] += delta[d, i, j] * z[c, i * s + m, j * s + n]
                            grad_z[c, i * s + m, j * s + n] += delta[d, i, j] * w[d, c, m, n]
    grad_b = delta.sum(axis=(1, 2))
    return grad_z, grad_w, grad_b


def main(argv: Sequence[str] | None = None) -> int:
    """Print the worked example and check it; return the exit status."""
    argparse.ArgumentParser(
        prog="python -m im2col_conv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    z = np.arange(25, dtype=np.int64).reshape(1, 5, 5)
    w = np.array([[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]]], dtype=np.int64)
    b = np.array([3], dtype=np.int64)
    delta = np.array([[[1, -2], [3, 4]]], dtype=np.int64)
    stride = 2

    y = conv(z, w, b, stride=stride)
    grads = conv_backward(delta, z, w, stride=stride)
    expected_y = _formula_forward(z, w, b, stride)
    expected = _formula_gradients(delta, z, w, stride)

    print("im2col_conv: the reference example, 5x5 input, 3x3 kernel, stride 2 (exact int64)")
    print("\ninput z[0]:\n", z[0], sep="")
    print("\nkernel w[0, 0]:\n", w[0, 0], sep="")
    print("\nbias b:", b)
    print(f"\nforward y = W @ im2col(z) + b, shape {y.shape}:\n", y[0], sep="")
    print("\noutput gradient delta[0]:\n", delta[0], sep="")
    print("\ninput gradient col2im(W^T @ delta):\n", grads.input[0], sep="")
    print("\nweight gradient delta @ cols^T:\n", grads.weight[0, 0], sep="")
    print("\nbias gradient:", grads.bias)

    # The document's direct method on the same example: dilate, pad, rotate, correlate.
    k = w.shape[-1]
    dilated = direct.dilate(delta[0], stride)
    padded = direct.pad(dilated, [(k - 1, k - 1)] * 2)
    direct_grads = direct.conv_backward(delta, z, w, stride=stride)
    print("\ndirect method, formula (8):")
    print(
        f"  dilated gradient ({stride - 1} zero between entries), shape {dilated.shape}:\n", dilated, sep=""
    )
    print(f"  padded by k - 1 = {k - 1} on each side, shape {padded.shape}:\n", padded, sep="")
    print("  kernel rotated by 180 degrees:\n", direct.rot180(w)[0, 0], sep="")
    print("  correlated at stride 1, the input gradient:\n", direct_grads.input[0], sep="")

    checks = {
        "forward, formula (4)": np.array_equal(y, expected_y),
        "input gradient (chain rule of (4))": np.array_equal(grads.input, expected[0]),
        "weight gradient, formula (5)": np.array_equal(grads.weight, expected[1]),
        "bias gradient, formula (6)": np.array_equal(grads.bias, expected[2]),
        "direct method == im2col backward (input, weight, bias)": all(
            np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(direct_grads, grads)
        ),
    }
    print()
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
