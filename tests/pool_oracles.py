"""Plain-loop pooling references, written from PyTorch's documented definitions.

Nothing here imports or mirrors ``im2col_conv``: every window is visited
element by element with explicit index arithmetic, padding is a bounds
check, and the output size, the ``ceil_mode`` rule and the average's
divisor are spelled out from the definitions:

- ``out = floor_or_ceil((in + 2 p - d (k - 1) - 1) / s) + 1``, and with
  ``ceil_mode`` a last window starting at or after ``in + p`` is dropped;
- max: the window's elements inside the input, visited in row-major order,
  starting from ``-inf`` (the integer minimum) and the first inside
  position; an element replaces the current one if it is larger or NaN;
- average: the sum of the window's elements inside the input, divided by
  ``divisor_override``, or by the window's size clipped to ``in + p`` per
  dimension (``count_include_pad``), or by the number of inside elements.

All functions take batched ``(N, C, *spatial)`` arrays; keep sizes small.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "loop_avg_pool",
    "loop_max_pool",
    "loop_max_pool_backward",
    "loop_pool_size",
]


def loop_pool_size(n, k, s, p, d, ceil_mode):
    """Output size of one dimension."""
    numerator = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(numerator / s) if ceil_mode else math.floor(numerator / s)) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _positions(sizes):
    return itertools.product(*(range(v) for v in sizes))


def loop_max_pool(x, kernel, stride, padding, dilation, ceil_mode):
    """``(values, indices)`` of max pooling; indices are flat within each input plane (-1: none)."""
    x = np.asarray(x)
    spatial = x.shape[2:]
    out = [loop_pool_size(*a, ceil_mode) for a in zip(spatial, kernel, stride, padding, dilation)]
    values = np.empty((*x.shape[:2], *out), x.dtype)
    indices = np.empty(values.shape, np.int64)
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    for n, c in _positions(x.shape[:2]):
        for o in _positions(out):
            best, where = low, None
            for k in _positions(kernel):
                pos = [o[i] * stride[i] - padding[i] + k[i] * dilation[i] for i in range(len(o))]
                if any(q < 0 or q >= spatial[i] for i, q in enumerate(pos)):
                    continue
                flat = int(np.ravel_multi_index(pos, spatial))
                value = x[(n, c, *pos)]
                if where is None:
                    where = flat  # PyTorch starts at the first inside position with -inf
                if value > best or (x.dtype.kind == "f" and np.isnan(value)):
                    best, where = value, flat
            values[(n, c, *o)] = best
            indices[(n, c, *o)] = -1 if where is None else where
    return values, indices


def loop_max_pool_backward(g, x_shape, indices):
    """Send every output gradient to the flat position its index names, summing collisions."""
    grad = np.zeros(x_shape, np.result_type(g))
    spatial = x_shape[2:]
    for n, c in _positions(x_shape[:2]):
        for o in _positions(g.shape[2:]):
            flat = indices[(n, c, *o)]
            if flat >= 0:
                grad[(n, c, *np.unravel_index(flat, spatial))] += g[(n, c, *o)]
    return grad


def loop_avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Average pooling in float64 (complex stays complex)."""
    x = np.asarray(x)
    spatial = x.shape[2:]
    dims = len(kernel)
    out = [loop_pool_size(*a, 1, ceil_mode) for a in zip(spatial, kernel, stride, padding)]
    dtype = np.complex128 if x.dtype.kind == "c" else np.float64
    y = np.empty((*x.shape[:2], *out), dtype)
    for n, c in _positions(x.shape[:2]):
        for o in _positions(out):
            start = [o[i] * stride[i] - padding[i] for i in range(dims)]
            total, inside = 0, 0
            for k in _positions(kernel):
                pos = [start[i] + k[i] for i in range(dims)]
                if all(0 <= q < spatial[i] for i, q in enumerate(pos)):
                    total += x[(n, c, *pos)]
                    inside += 1
            if divisor_override is not None:
                divisor = divisor_override
            elif count_include_pad:
                divisor = 1
                for i in range(dims):
                    divisor *= min(start[i] + kernel[i], spatial[i] + padding[i]) - start[i]
            else:
                divisor = inside
            y[(n, c, *o)] = total / divisor
    return y
