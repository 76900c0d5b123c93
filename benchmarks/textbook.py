"""The textbook method, as the yardstick the engine must beat.

A plain, untiled im2col + one matrix product + slice-add col2im, for 2-D
inputs, one group, symmetric padding: the whole column matrix of the batch
is materialised, ``C_in * k * k`` rows by ``N * L`` columns. Pooling the
same way: the whole batch's windows copied out, reduced along the kernel
axis, and the gradient added back slice by slice. It shares no
code with ``im2col_conv``, so that the benchmark compares the engine with
an independent implementation of the method it refines.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

__all__ = [
    "textbook_avg_pool",
    "textbook_avg_pool_backward",
    "textbook_backward",
    "textbook_forward",
    "textbook_max_pool",
    "textbook_max_pool_backward",
]


def _columns(x: NDArray[Any], k: int, stride: int, padding: int) -> tuple[NDArray[Any], int, int]:
    """im2col of the whole batch as ``(C * k * k, N * Ho * Wo)``."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - k) // stride + 1
    wo = (w + 2 * padding - k) // stride + 1
    sn, sc, sh, sw = xp.strides
    windows = as_strided(
        xp, (c, k, k, n, ho, wo), (sc, sh, sw, sn, sh * stride, sw * stride), writeable=False
    )
    return windows.reshape(c * k * k, n * ho * wo), ho, wo


def textbook_forward(
    x: NDArray[Any], weight: NDArray[Any], bias: NDArray[Any], stride: int, padding: int
) -> NDArray[Any]:
    """``y = W @ im2col(x) + b``, shape ``(N, C_out, Ho, Wo)``."""
    n = x.shape[0]
    c_out, _, k, _ = weight.shape
    cols, ho, wo = _columns(x, k, stride, padding)
    y = weight.reshape(c_out, -1) @ cols
    y += bias[:, None]
    return np.ascontiguousarray(y.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3))


def textbook_backward(
    grad_y: NDArray[Any], x: NDArray[Any], weight: NDArray[Any], stride: int, padding: int
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Input, weight and bias gradients: ``col2im(W^T @ delta)``, ``delta @ cols^T``, ``sum delta``."""
    n, c, h, w = x.shape
    c_out, _, k, _ = weight.shape
    cols, ho, wo = _columns(x, k, stride, padding)
    delta = grad_y.transpose(1, 0, 2, 3).reshape(c_out, -1)
    grad_w = (delta @ cols.T).reshape(weight.shape)
    grad_cols = (weight.reshape(c_out, -1).T @ delta).reshape(c, k, k, n, ho, wo)
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), x.dtype)
    for i in range(k):
        for j in range(k):
            rows = slice(i, i + (ho - 1) * stride + 1, stride)
            cols_ = slice(j, j + (wo - 1) * stride + 1, stride)
            padded[:, :, rows, cols_] += grad_cols[:, i, j].transpose(1, 0, 2, 3)
    grad_x = np.ascontiguousarray(padded[:, :, padding : padding + h, padding : padding + w])
    return grad_x, grad_w, grad_y.sum(axis=(0, 2, 3))


def _pool_windows(x: NDArray[Any], k: int, stride: int, padding: int, fill: float) -> NDArray[Any]:
    """Every window of every channel, copied out as ``(N, C, Ho, Wo, k * k)``."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    ho = (h + 2 * padding - k) // stride + 1
    wo = (w + 2 * padding - k) // stride + 1
    sn, sc, sh, sw = xp.strides
    windows = as_strided(
        xp, (n, c, ho, wo, k, k), (sn, sc, sh * stride, sw * stride, sh, sw), writeable=False
    )
    return windows.reshape(n, c, ho, wo, k * k)


def _add_windows(
    grad: NDArray[Any], shape: tuple[int, ...], k: int, stride: int, padding: int
) -> NDArray[Any]:
    """Slice-add col2im of ``grad`` of shape ``(N, C, Ho, Wo, k * k)`` into an input of ``shape``."""
    n, c, h, w = shape
    ho, wo = grad.shape[2:4]
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), grad.dtype)
    for i in range(k):
        for j in range(k):
            rows = slice(i, i + (ho - 1) * stride + 1, stride)
            cols = slice(j, j + (wo - 1) * stride + 1, stride)
            padded[:, :, rows, cols] += grad[..., i * k + j]
    return np.ascontiguousarray(padded[:, :, padding : padding + h, padding : padding + w])


def textbook_max_pool(x: NDArray[Any], k: int, stride: int, padding: int) -> NDArray[Any]:
    """Largest value of each window, padding read as ``-inf``."""
    return _pool_windows(x, k, stride, padding, -np.inf).max(axis=-1)


def textbook_max_pool_backward(
    grad_y: NDArray[Any], x: NDArray[Any], k: int, stride: int, padding: int
) -> NDArray[Any]:
    """Each window's gradient to its first largest value."""
    winners = _pool_windows(x, k, stride, padding, -np.inf).argmax(axis=-1)
    grad = np.zeros((*grad_y.shape, k * k), grad_y.dtype)
    np.put_along_axis(grad, winners[..., None], grad_y[..., None], axis=-1)
    return _add_windows(grad, x.shape, k, stride, padding)


def textbook_avg_pool(x: NDArray[Any], k: int, stride: int, padding: int) -> NDArray[Any]:
    """Mean of each window, padding counted as zeros."""
    return _pool_windows(x, k, stride, padding, 0.0).mean(axis=-1)


def textbook_avg_pool_backward(
    grad_y: NDArray[Any], shape: tuple[int, ...], k: int, stride: int, padding: int
) -> NDArray[Any]:
    """Each window's gradient spread evenly over its ``k * k`` elements."""
    grad = np.broadcast_to((grad_y / (k * k))[..., None], (*grad_y.shape, k * k))
    return _add_windows(grad, shape, k, stride, padding)
