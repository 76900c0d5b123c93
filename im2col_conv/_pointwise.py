"""Convolutions with a 1x1 kernel at stride 1 without padding: no lowering at all.

Here im2col is the identity: each sample's input ``(C_in, L)`` is its column
matrix, and its output gradient the column gradient that col2im would add back
unchanged. Both passes multiply the arrays themselves, one product per sample
and group, writing the output in its final layout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._products import matmul
from .workspace import batch_chunks

__all__ = ["backward", "forward"]


def forward(x: NDArray[Any], w: NDArray[Any], dtype: np.dtype[Any], workspace: int) -> NDArray[Any]:
    """``y[n] = W @ x[n]`` ``(N, C_out, *spatial)`` group by group, ``w`` ``(g, C_out/g, C_in/g)``.

    ``x`` ``(N, C_in, *spatial)`` of any dtype is cast a chunk of samples at a
    time, the chunks' copies within ``workspace`` bytes.
    """
    n, c_in = x.shape[:2]
    groups, c_out_g, c_in_g = w.shape
    length = math.prod(x.shape[2:])
    y = np.empty((n, groups * c_out_g, *x.shape[2:]), dtype)
    for chunk in batch_chunks(n, dtype.itemsize * c_in * length, workspace):
        nb = chunk.stop - chunk.start
        columns = x[chunk].astype(dtype, copy=False).reshape(nb, groups, c_in_g, length)
        matmul(w, columns, out=y[chunk].reshape(nb, groups, c_out_g, length))
    return y


def backward(
    delta: NDArray[Any],
    x: NDArray[Any] | None,
    w: NDArray[Any],
    dtype: np.dtype[Any],
    workspace: int,
    *,
    conjugate: bool = False,
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Input gradient ``W^T @ delta[n]`` and weight gradient ``sum_n delta[n] @ x[n]^T``.

    ``delta`` ``(N, C_out, *spatial)``, ``x`` ``(N, C_in, *spatial)`` or None for
    the input gradient alone, ``w`` ``(g, C_out/g, C_in/g)``; returns ``grad_x``
    ``(N, C_in, *spatial)`` and ``grad_w`` ``(g, C_out/g, C_in/g)`` or None.
    ``conjugate`` uses ``conj(delta)`` and conjugates both results, as `Engine.backward`.
    """
    n, c_out = delta.shape[:2]
    groups, c_out_g, c_in_g = w.shape
    length = math.prod(delta.shape[2:])
    grad_x = np.empty((n, groups * c_in_g, *delta.shape[2:]), dtype)
    grad_w_t = None if x is None else np.zeros((groups, c_in_g, c_out_g), dtype)
    per_sample = dtype.itemsize * ((groups * c_in_g + 2 * c_out) * length + groups * c_in_g * c_out_g)
    for chunk in batch_chunks(n, per_sample, workspace):
        nb = chunk.stop - chunk.start
        delta_c = delta[chunk].astype(dtype, copy=False)
        if conjugate:
            delta_c = np.conjugate(delta_c)
        delta_c = delta_c.reshape(nb, groups, c_out_g, length)
        matmul(w.swapaxes(1, 2), delta_c, out=grad_x[chunk].reshape(nb, groups, c_in_g, length))
        if grad_w_t is not None:
            assert x is not None
            columns = x[chunk].astype(dtype, copy=False).reshape(nb, groups, c_in_g, length)
            grad_w_t += matmul(columns, delta_c.swapaxes(2, 3)).sum(axis=0)
    grad_w = None if grad_w_t is None else np.ascontiguousarray(grad_w_t.swapaxes(1, 2))
    if conjugate:
        np.conjugate(grad_x, out=grad_x)
        if grad_w is not None:
            np.conjugate(grad_w, out=grad_w)
    return grad_x, grad_w
