"""The chunked im2col + GEMM engine behind conv, conv_backward and conv_transpose.

The public functions validate their arguments and hand plain arrays and a
:class:`~im2col_conv.geometry.ConvGeometry` to the three loops here.

Layout. Within a chunk of ``nb`` samples the columns are stored as
``(groups, C_in/groups * prod(kernel), nb * L)``: the batch sits inside the
column index. Each of the three products (forward, weight gradient, column
gradient) is then one matrix product per group over the whole chunk, instead
of ``nb`` small ones, and the weight gradient needs no per-sample sum. The
price is one transpose of the (small) output chunk at the boundary.

Memory. Chunks are sized by :func:`~im2col_conv.workspace.batch_chunks` from
the bytes each sample needs in them, and their buffers are allocated once per
call and reused, so the temporaries of a call stay within the workspace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .geometry import ConvGeometry
from .lowering import lower, scatter_blocks
from .workspace import batch_chunks

__all__ = ["FUSED_MIN_CHANNELS", "backward", "forward", "input_gradient"]

#: From this many input channels per group on, the column gradient is made one
#: kernel offset at a time and added at once, while it is in cache: one
#: ``(C_in/g, C_out/g) @ (C_out/g, nb * L)`` product per offset instead of one
#: tall product whose ``prod(kernel)`` times larger result has left the cache
#: before col2im reads it. With fewer channels the small products lose more
#: than the cache gains (measured in ``benchmarks/``).
FUSED_MIN_CHANNELS = 64


class _Scratch:
    """Flat buffers reused by every chunk of one call; later chunks may be smaller."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype
        self._buffers: dict[str, NDArray[Any]] = {}

    def get(self, name: str, shape: tuple[int, ...], *, zeroed: bool = False) -> NDArray[Any]:
        """A ``shape`` view of buffer ``name``; ``zeroed`` buffers start as zeros.

        Views of one buffer with the same trailing shape share the layout of
        their leading samples, so zeros that a caller never overwrites (the
        border of a padded input) stay zero from chunk to chunk.
        """
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = (np.zeros if zeroed else np.empty)(size, self.dtype)
        return buffer[:size].reshape(shape)


def _is_pointwise(geometry: ConvGeometry) -> bool:
    """True when im2col is the identity: a 1x1 kernel, stride 1, no padding."""
    return geometry.kernel_volume == 1 and set(geometry.stride) == {1} and not any(map(any, geometry.padding))


def _lowering_bytes(channels: int, geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes per sample to lower one sample: its padded copy and its columns."""
    padded = channels * math.prod(geometry.padded_size) if any(map(any, geometry.padding)) else 0
    return itemsize * (padded + channels * geometry.kernel_volume * geometry.output_volume)


def _chunk_columns(
    x: NDArray[Any], geometry: ConvGeometry, groups: int, dtype: np.dtype[Any], scratch: _Scratch | None
) -> NDArray[Any]:
    """Columns of a chunk ``x`` of shape ``(nb, C, *spatial)`` as ``(g, C/g * K, nb * L)``."""
    nb, c = x.shape[:2]
    shape = (groups, c // groups * geometry.kernel_volume, nb * geometry.output_volume)
    if nb == 1 and _is_pointwise(geometry):
        return x.astype(dtype, copy=False).reshape(shape)  # im2col is the identity here: no copy
    out = (
        None
        if scratch is None
        else scratch.get("columns", (c, *geometry.kernel_size, nb, *geometry.output_size))
    )
    return lower(x, geometry, out=out, dtype=dtype, batch_inner=True).reshape(shape)


def forward(
    x: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    groups: int,
    dtype: np.dtype[Any],
    workspace: int,
    *,
    keep_columns: bool = False,
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """``y = W @ cols`` chunk by chunk.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, *spatial)
        Any dtype; cast to ``dtype`` while it is lowered.
    weight : ndarray, shape (C_out, C_in/groups, *kernel), of ``dtype``
    geometry, groups, dtype, workspace
        Validated by the caller.
    keep_columns : bool
        Lower the whole batch at once and return its columns.

    Returns
    -------
    y : ndarray, shape (N, C_out, L)
    columns : ndarray, shape (groups, C_in/groups * K, N * L), or None
    """
    n, c_in = x.shape[:2]
    c_out, length = weight.shape[0], geometry.output_volume
    w = weight.reshape(groups, c_out // groups, -1)
    if _is_pointwise(geometry) and not keep_columns:
        return _pointwise_forward(x, w, dtype, workspace), None
    y = np.empty((n, c_out, length), dtype)
    if keep_columns:
        cols = _chunk_columns(x, geometry, groups, dtype, None)
        if cols.base is not None and np.shares_memory(cols, x):
            cols = cols.copy()  # the caller may change x before backward
        chunks, scratch = [slice(0, n)], _Scratch(dtype)
    else:
        per_sample = _lowering_bytes(c_in, geometry, dtype.itemsize) + dtype.itemsize * c_out * length
        chunks, scratch = batch_chunks(n, per_sample, workspace), _Scratch(dtype)
    for chunk in chunks:
        nb = chunk.stop - chunk.start
        if not keep_columns:
            cols = _chunk_columns(x[chunk], geometry, groups, dtype, scratch)
        assert scratch is not None
        if nb == 1:
            np.matmul(w, cols, out=y[chunk].reshape(groups, c_out // groups, length))
            continue
        product = np.matmul(w, cols, out=scratch.get("product", (groups, c_out // groups, nb * length)))
        np.copyto(y[chunk].reshape(nb, c_out, length), product.reshape(c_out, nb, length).swapaxes(0, 1))
    return y, (cols if keep_columns and n else None)


def _pointwise_forward(
    x: NDArray[Any], w: NDArray[Any], dtype: np.dtype[Any], workspace: int
) -> NDArray[Any]:
    """A 1x1 kernel at stride 1 without padding: im2col is the identity.

    Each sample's input is already its column matrix, so ``y[n] = W @ x[n]``
    runs on ``x`` itself: no lowering copy and no transpose of the result.
    """
    n, c_in = x.shape[:2]
    groups, c_out_g, c_in_g = w.shape
    length = math.prod(x.shape[2:])
    y = np.empty((n, groups * c_out_g, length), dtype)
    for chunk in batch_chunks(n, dtype.itemsize * c_in * length, workspace):
        nb = chunk.stop - chunk.start
        columns = x[chunk].astype(dtype, copy=False).reshape(nb, groups, c_in_g, length)
        np.matmul(w, columns, out=y[chunk].reshape(nb, groups, c_out_g, length))
    return y


def _pointwise_backward(
    delta: NDArray[Any], x: NDArray[Any] | None, w: NDArray[Any], dtype: np.dtype[Any], workspace: int
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Gradients of :func:`_pointwise_forward`, sample by sample on the arrays themselves.

    ``delta`` is ``(N, g, C_out/g, L)`` and ``w`` ``(g, C_out/g, C_in/g)``.
    """
    n, groups, c_out_g, length = delta.shape
    c_in_g = w.shape[2]
    grad_x = np.empty((n, groups * c_in_g, length), dtype)
    grad_w_t = None if x is None else np.zeros((groups, c_in_g, c_out_g), dtype)
    per_sample = dtype.itemsize * ((groups * c_in_g + groups * c_out_g) * length + groups * c_in_g * c_out_g)
    for chunk in batch_chunks(n, per_sample, workspace):
        nb = chunk.stop - chunk.start
        delta_c = delta[chunk].astype(dtype, copy=False)
        np.matmul(w.swapaxes(1, 2), delta_c, out=grad_x[chunk].reshape(nb, groups, c_in_g, length))
        if grad_w_t is not None:
            assert x is not None
            columns = x[chunk].astype(dtype, copy=False).reshape(nb, groups, c_in_g, length)
            grad_w_t += np.matmul(columns, delta_c.swapaxes(2, 3)).sum(axis=0)
    return grad_x, None if grad_w_t is None else np.ascontiguousarray(grad_w_t.swapaxes(1, 2))


def input_gradient(
    delta: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    groups: int,
    dtype: np.dtype[Any],
    workspace: int,
    *,
    grid_size: tuple[int, ...] | None = None,
    target_size: tuple[int, ...] | None = None,
) -> NDArray[Any]:
    """``col2im(W^T @ delta)`` chunk by chunk; also the transposed convolution.

    Parameters
    ----------
    delta : ndarray, shape (N, C_out, *grid_size)
        Any dtype; cast chunk by chunk.
    weight : ndarray, shape (C_out, C_in/groups, *kernel), of ``dtype``
    geometry : ConvGeometry
        The forward convolution whose input gradient this is.
    grid_size, target_size : tuple of int, optional
        Window grid and result size, when they differ from the geometry's
        output and input sizes (a transposed convolution's ``output_padding``).

    Returns
    -------
    ndarray, shape (N, C_in, *target_size)
    """
    return _backward(delta, None, weight, geometry, groups, dtype, workspace, None, grid_size, target_size)[0]


def backward(
    delta: NDArray[Any],
    x: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    groups: int,
    dtype: np.dtype[Any],
    workspace: int,
    columns: NDArray[Any] | None = None,
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Input and weight gradients, chunk by chunk.

    Returns
    -------
    grad_x : ndarray, shape (N, C_in, *spatial)
    grad_w : ndarray, shape (groups, C_out/groups, C_in/groups * K)
    """
    grad_x, grad_w = _backward(delta, x, weight, geometry, groups, dtype, workspace, columns, None, None)
    assert grad_w is not None
    return grad_x, grad_w


Block = Callable[[int, tuple[int, ...]], NDArray[Any]]


def _offset_products(
    weights: NDArray[Any], delta: NDArray[Any], out: NDArray[Any], grid: tuple[int, ...]
) -> Block:
    """Column-gradient blocks computed one kernel offset at a time, into ``out``.

    ``weights`` is ``(K, g, C_in/g, C_out/g)``, ``delta`` ``(g, C_out/g, nb * L)``;
    block ``i`` is ``weights[i] @ delta`` viewed as ``(nb, C_in, *grid)``.
    """
    c_in = out.shape[0] * out.shape[1]
    nb = out.shape[2] // math.prod(grid)

    def block(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
        np.matmul(weights[index], delta, out=out)
        return np.moveaxis(out.reshape(c_in, nb, *grid), 1, 0)

    return block


def _stored_blocks(spread: NDArray[Any]) -> Block:
    """Column-gradient blocks read from a stored ``(nb, C_in, K, *grid)`` array."""

    def block(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
        return spread[:, :, index]

    return block


def _backward(
    delta: NDArray[Any],
    x: NDArray[Any] | None,
    weight: NDArray[Any],
    geometry: ConvGeometry,
    groups: int,
    dtype: np.dtype[Any],
    workspace: int,
    columns: NDArray[Any] | None,
    grid_size: tuple[int, ...] | None,
    target_size: tuple[int, ...] | None,
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    n, c_out = delta.shape[:2]
    c_in = weight.shape[1] * groups
    grid = geometry.output_size if grid_size is None else grid_size
    target = geometry.input_size if target_size is None else target_size
    length, volume = math.prod(grid), geometry.kernel_volume
    w = weight.reshape(groups, c_out // groups, -1)  # (g, C_out/g, C_in/g * K)
    w_t = w.swapaxes(1, 2)
    delta = delta.reshape(n, groups, c_out // groups, length)
    if _is_pointwise(geometry) and tuple(grid) == tuple(target) and columns is None:
        grad_x, grad_w = _pointwise_backward(delta, x, w, dtype, workspace)
        return grad_x.reshape(n, c_in, *target), grad_w

    need_weight = x is not None
    fused = c_in // groups >= FUSED_MIN_CHANNELS
    if fused:
        # (K, g, C_in/g, C_out/g): the transposed weight of each kernel offset. Stored
        # as (K, g, C_out/g, C_in/g), whose copy reads the weight nearly in order, and
        # handed to BLAS transposed.
        w_offsets = np.ascontiguousarray(
            weight.reshape(groups, c_out // groups, c_in // groups, volume).transpose(3, 0, 1, 2)
        ).swapaxes(2, 3)
    padded = math.prod(max(a, b) for a, b in zip(geometry.padded_size, target))
    grad_rows = c_in if fused else c_in * volume
    per_sample = dtype.itemsize * (grad_rows * length + c_out * length + c_in * padded)
    if need_weight and columns is None:
        per_sample += _lowering_bytes(c_in, geometry, dtype.itemsize)
    scratch = _Scratch(dtype)
    grad_w = np.zeros(w.shape, dtype) if need_weight else None
    grad_x = np.empty((n, c_in, *target), dtype)
    for chunk in batch_chunks(n, per_sample, workspace):
        nb = chunk.stop - chunk.start
        if nb == 1:
            delta_t = delta[chunk.start].reshape(groups, c_out // groups, length).astype(dtype, copy=False)
        else:
            delta_t = scratch.get("delta", (groups, c_out // groups, nb * length))
            np.copyto(
                delta_t.reshape(c_out, nb, length), delta[chunk].reshape(nb, c_out, length).swapaxes(0, 1)
            )
        if grad_w is not None:
            if columns is not None:
                cols = columns[:, :, chunk.start * length : chunk.stop * length]
            else:
                assert x is not None
                cols = _chunk_columns(x[chunk], geometry, groups, dtype, scratch)
            grad_w += np.matmul(delta_t, cols.swapaxes(1, 2))
        if fused:
            block = _offset_products(
                w_offsets, delta_t, scratch.get("grad_columns", (groups, c_in // groups, nb * length)), grid
            )
        else:
            grad_cols = scratch.get("grad_columns", (groups, c_in // groups * volume, nb * length))
            np.matmul(w_t, delta_t, out=grad_cols)
            # (C_in, K, nb, *grid) viewed batch-first for the scatter-add.
            block = _stored_blocks(np.moveaxis(grad_cols.reshape(c_in, volume, nb, *grid), 2, 0))
        scatter_blocks(
            block,
            (nb, c_in),
            dtype,
            geometry,
            grid_size=grid,
            target_size=target,
            out=grad_x[chunk],
            allocate=lambda shape: scratch.get("scatter", shape),
        )
    return grad_x, grad_w
