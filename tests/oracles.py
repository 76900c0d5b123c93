"""Plain-loop reference implementations, written straight from the formulas.

Nothing here imports or mirrors ``im2col_conv``: padding is handled by bounds
checks (never ``np.pad``), windows by explicit index arithmetic (never
``as_strided``), and every sum by an explicit loop over output positions and
kernel offsets. Formula (4) of the reference, generalised to N-D, padding,
dilation and groups, reads

    y[n, o, *p] = b[o] + sum_{ci, k} w[o, ci, *k] * x[n, g*Cg + ci, *(p*s + k*dl - pad_before)]

with out-of-range positions contributing zero. All functions take batched
arrays ``(N, C, *spatial)``; callers add/remove the batch axis themselves.
Loops over the batch axis are vectorised (``x[:, c, *pos]`` is a length-N
vector); everything else is a Python loop, so keep the sizes small.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "loop_col2im",
    "loop_conv",
    "loop_conv_grads",
    "loop_conv_transpose",
    "loop_im2col",
    "loop_output_size",
    "resolve_padding",
    "tup",
]


def tup(value, d):
    """An int or a length-``d`` sequence as a tuple of ``d`` Python ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * d
    out = tuple(int(v) for v in value)
    assert len(out) == d, (value, d)
    return out


def resolve_padding(padding, in_size, kernel, stride=1, dilation=1):
    """Any accepted padding form -> list of ``(before, after)`` pairs.

    ``"same"`` is TensorFlow's rule: ``out = ceil(in / stride)``; the total
    padding ``max((out - 1) * stride + dilation * (k - 1) + 1 - in, 0)`` is
    split with the odd element after.
    """
    d = len(kernel)
    stride, dilation = tup(stride, d), tup(dilation, d)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * d
        assert padding == "same", padding
        pairs = []
        for i in range(d):
            out = math.ceil(in_size[i] / stride[i])
            total = (out - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - in_size[i]
            total = max(total, 0)
            before = total // 2
            pairs.append((before, total - before))
        return pairs
    if isinstance(padding, (int, np.integer)):
        return [(int(padding), int(padding))] * d
    padding = list(padding)
    assert len(padding) == d
    if all(isinstance(p, (int, np.integer)) for p in padding):
        return [(int(p), int(p)) for p in padding]
    return [(int(p[0]), int(p[1])) for p in padding]


def loop_output_size(in_size, kernel, stride, pad_pairs, dilation):
    """``floor((in + before + after - dilation*(k-1) - 1) / stride) + 1`` per dimension."""
    d = len(kernel)
    stride, dilation = tup(stride, d), tup(dilation, d)
    sizes = []
    for i in range(d):
        span = dilation[i] * (kernel[i] - 1) + 1
        padded = in_size[i] + pad_pairs[i][0] + pad_pairs[i][1]
        sizes.append((padded - span) // stride[i] + 1)
    return tuple(sizes)


def _source(p, k, stride, dilation, pad_pairs, in_size):
    """Input position read by output ``p`` at kernel offset ``k``, or None if it is padding."""
    pos = []
    for i in range(len(p)):
        q = p[i] * stride[i] + k[i] * dilation[i] - pad_pairs[i][0]
        if q < 0 or q >= in_size[i]:
            return None
        pos.append(q)
    return tuple(pos)


def loop_conv(x, w, b=None, stride=1, pad_pairs=None, dilation=1, groups=1):
    """Direct N-D convolution (cross-correlation, no conjugation) by loops."""
    x, w = np.asarray(x), np.asarray(w)
    d = w.ndim - 2
    assert x.ndim == d + 2
    stride, dilation = tup(stride, d), tup(dilation, d)
    pad_pairs = [(0, 0)] * d if pad_pairs is None else [tuple(p) for p in pad_pairs]
    n, c_in = x.shape[:2]
    c_out, cg = w.shape[:2]
    assert c_in == cg * groups and c_out % groups == 0
    og = c_out // groups
    in_size, kernel = x.shape[2:], w.shape[2:]
    out_size = loop_output_size(in_size, kernel, stride, pad_pairs, dilation)
    dtype = np.result_type(x, w) if b is None else np.result_type(x, w, np.asarray(b))
    y = np.zeros((n, c_out, *out_size), dtype=dtype)
    for o in range(c_out):
        g = o // og
        for p in itertools.product(*(range(s) for s in out_size)):
            acc = np.zeros(n, dtype=dtype)
            for ci in range(cg):
                for k in itertools.product(*(range(s) for s in kernel)):
                    pos = _source(p, k, stride, dilation, pad_pairs, in_size)
                    if pos is None:
                        continue
                    acc = acc + w[(o, ci, *k)] * x[(slice(None), g * cg + ci, *pos)]
            if b is not None:
                acc = acc + np.asarray(b)[o]
            y[(slice(None), o, *p)] = acc
    return y


def loop_conv_grads(gy, x, w, stride=1, pad_pairs=None, dilation=1, groups=1):
    """Gradients of ``sum(loop_conv(x, w, b) * gy)`` by the chain rule, scatter form.

    Every term ``w[o, ci, *k] * x[n, c, *pos]`` of the forward sum that lands in
    ``y[n, o, *p]`` sends ``gy[n, o, *p] * w[o, ci, *k]`` to ``x[n, c, *pos]``,
    ``gy[n, o, *p] * x[n, c, *pos]`` to ``w[o, ci, *k]`` and ``gy[n, o, *p]`` to ``b[o]``.
    Returns ``(grad_x, grad_w, grad_b)``.
    """
    gy, x, w = np.asarray(gy), np.asarray(x), np.asarray(w)
    d = w.ndim - 2
    stride, dilation = tup(stride, d), tup(dilation, d)
    pad_pairs = [(0, 0)] * d if pad_pairs is None else [tuple(p) for p in pad_pairs]
    c_out, cg = w.shape[:2]
    og = c_out // groups
    in_size, kernel = x.shape[2:], w.shape[2:]
    out_size = loop_output_size(in_size, kernel, stride, pad_pairs, dilation)
    assert gy.shape == (x.shape[0], c_out, *out_size)
    dtype = np.result_type(gy, x, w)
    gx = np.zeros(x.shape, dtype=dtype)
    gw = np.zeros(w.shape, dtype=dtype)
    gb = np.zeros(c_out, dtype=dtype)
    every = slice(None)
    for o in range(c_out):
        g = o // og
        for p in itertools.product(*(range(s) for s in out_size)):
            delta = gy[(every, o, *p)]
            gb[o] += delta.sum()
            for ci in range(cg):
                for k in itertools.product(*(range(s) for s in kernel)):
                    pos = _source(p, k, stride, dilation, pad_pairs, in_size)
                    if pos is None:
                        continue
                    c = g * cg + ci
                    gx[(every, c, *pos)] += delta * w[(o, ci, *k)]
                    gw[(o, ci, *k)] += (delta * x[(every, c, *pos)]).sum()
    return gx, gw, gb


def loop_conv_transpose(x, w, b=None, stride=1, pad_pairs=None, output_padding=0, dilation=1, groups=1):
    """Transposed convolution by its scatter definition (PyTorch semantics).

    ``x``: ``(N, C_in, *in)``, ``w``: ``(C_in, C_out/groups, *kernel)``. Every
    ``x[n, ci, *i] * w[ci, co, *k]`` is added to the full output at
    ``i*stride + k*dilation``; the result is then cropped by ``pad_before`` at
    the start and ``pad_after`` at the end, and ``output_padding`` extends the
    end (positions no input reaches stay zero, plus the bias).
    """
    x, w = np.asarray(x), np.asarray(w)
    d = w.ndim - 2
    stride, dilation = tup(stride, d), tup(dilation, d)
    out_pad = tup(output_padding, d)
    pad_pairs = [(0, 0)] * d if pad_pairs is None else [tuple(p) for p in pad_pairs]
    n, c_in = x.shape[:2]
    assert w.shape[0] == c_in and c_in % groups == 0
    ig, og = c_in // groups, w.shape[1]
    c_out = og * groups
    in_size, kernel = x.shape[2:], w.shape[2:]
    out_size = tuple(
        (in_size[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        - pad_pairs[i][0] - pad_pairs[i][1] + out_pad[i]
        for i in range(d)
    )  # fmt: skip
    dtype = np.result_type(x, w) if b is None else np.result_type(x, w, np.asarray(b))
    y = np.zeros((n, c_out, *out_size), dtype=dtype)
    for ci in range(c_in):
        g = ci // ig
        for i in itertools.product(*(range(s) for s in in_size)):
            for co in range(og):
                for k in itertools.product(*(range(s) for s in kernel)):
                    j = tuple(i[t] * stride[t] + k[t] * dilation[t] - pad_pairs[t][0] for t in range(d))
                    if any(j[t] < 0 or j[t] >= out_size[t] for t in range(d)):
                        continue
                    y[(slice(None), g * og + co, *j)] += x[(slice(None), ci, *i)] * w[(ci, co, *k)]
    if b is not None:
        b = np.asarray(b)
        for co in range(c_out):
            y[:, co] += b[co]
    return y


def loop_im2col(x, kernel, stride=1, pad_pairs=None, dilation=1):
    """im2col by loops: row ``c * prod(kernel) + flat(k)``, column ``flat(p)`` (row-major)."""
    x = np.asarray(x)
    kernel = tuple(kernel)
    d = len(kernel)
    stride, dilation = tup(stride, d), tup(dilation, d)
    pad_pairs = [(0, 0)] * d if pad_pairs is None else [tuple(p) for p in pad_pairs]
    n, c = x.shape[:2]
    in_size = x.shape[2:]
    out_size = loop_output_size(in_size, kernel, stride, pad_pairs, dilation)
    kvol, length = math.prod(kernel), math.prod(out_size)
    cols = np.zeros((n, c * kvol, length), dtype=x.dtype)
    for ch in range(c):
        for kf, k in enumerate(itertools.product(*(range(s) for s in kernel))):
            for col, p in enumerate(itertools.product(*(range(s) for s in out_size))):
                pos = _source(p, k, stride, dilation, pad_pairs, in_size)
                if pos is not None:
                    cols[:, ch * kvol + kf, col] = x[(slice(None), ch, *pos)]
    return cols


def loop_col2im(cols, in_size, kernel, stride=1, pad_pairs=None, dilation=1):
    """col2im by loops: add every column entry onto the input position it was read from."""
    cols = np.asarray(cols)
    kernel, in_size = tuple(kernel), tuple(in_size)
    d = len(kernel)
    stride, dilation = tup(stride, d), tup(dilation, d)
    pad_pairs = [(0, 0)] * d if pad_pairs is None else [tuple(p) for p in pad_pairs]
    out_size = loop_output_size(in_size, kernel, stride, pad_pairs, dilation)
    kvol = math.prod(kernel)
    n, rows = cols.shape[:2]
    c = rows // kvol
    x = np.zeros((n, c, *in_size), dtype=cols.dtype)
    for ch in range(c):
        for kf, k in enumerate(itertools.product(*(range(s) for s in kernel))):
            for col, p in enumerate(itertools.product(*(range(s) for s in out_size))):
                pos = _source(p, k, stride, dilation, pad_pairs, in_size)
                if pos is not None:
                    x[(slice(None), ch, *pos)] += cols[:, ch * kvol + kf, col]
    return x
