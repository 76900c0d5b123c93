"""The gradients of max and average pooling over Dask arrays.

Each block's output gradient is placed among zeros at the same windows of
the call that computes the block in `_pool` (its slab, the pooling's own
padding); the call sends it to the slab, and every chunk of the input
gradient adds the slabs that overlap it.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import NDArray

from .._validation import as_int, check_workspace, is_sequence
from ..pooling import avg_pool as numpy_avg_pool
from ..pooling import avg_pool_backward as numpy_avg_pool_backward
from ..pooling import max_pool as numpy_max_pool
from ..pooling import max_pool_backward as numpy_max_pool_backward
from ._graph import Graph
from ._inputs import as_dask, batched, grad_like
from ._plan import PoolAxis, Slab, block_indices, chunk_bounds
from ._pool import _avg_arguments, _axes, _bounds, _kept, _sizes, _slabs, _spatial

__all__ = ["avg_pool_backward", "max_pool_backward"]


def _local_grad(block: NDArray[Any], slabs: list[Slab], axes: list[PoolAxis], fill: int = 0) -> NDArray[Any]:
    """The block's output gradient (or indices) among ``fill`` at every other window of its call."""
    windows = tuple(axis.windows(s.hi - s.lo) for axis, s in zip(axes, slabs))
    local = np.full((*block.shape[:2], *windows), fill, block.dtype)
    local[_kept(slabs)] = block
    return local


def _to_local(indices: NDArray[Any], slabs: list[Slab], whole: tuple[int, ...]) -> NDArray[Any]:
    """Flat indices in the whole input's plane as flat indices in a slab's plane (-1 kept).

    Raises
    ------
    ValueError
        For an index outside the slab its window reads.
    """
    found = indices >= 0
    size = int(np.prod(whole))
    if np.any(indices >= size):
        raise ValueError(f"indices must be -1 or a position its window reads, got an index >= {size}")
    coords = np.unravel_index(np.where(found, indices, 0), whole)
    local = tuple(c - s.lo for c, s in zip(coords, slabs))
    inside = np.all([(c >= 0) & (c < s.hi - s.lo) for c, s in zip(local, slabs)], axis=0)
    if np.any(found & ~inside):
        raise ValueError(
            "indices must be -1 or a position its window reads; an index lies outside its window"
        )
    shape = tuple(s.hi - s.lo for s in slabs)
    flat = np.ravel_multi_index(tuple(np.where(found, c, 0) for c in local), shape)
    return np.where(found, flat, -1)


def _max_backward_block(
    grad: NDArray[Any],
    slab: NDArray[Any],
    indices: NDArray[Any] | None,
    *,
    slabs: list[Slab],
    axes: list[PoolAxis],
    whole: tuple[int, ...],
    **kwargs: Any,
) -> NDArray[Any]:
    local = None
    if indices is not None:
        local = _local_grad(_to_local(indices, slabs, whole), slabs, axes, fill=-1)
    return numpy_max_pool_backward(_local_grad(grad, slabs, axes), slab, indices=local, **kwargs)


def _zeros_like_slab(block: NDArray[Any], shape: tuple[int, ...], dtype: np.dtype[Any]) -> NDArray[Any]:
    """A zero-stride stand-in for a slab whose values are not read (its shape, from a block's lead)."""
    return np.broadcast_to(np.zeros((), dtype), (*block.shape[:2], *shape))


def max_pool_backward(
    grad_output: object,
    input: object,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
    *,
    indices: object,
    workspace: int,
) -> da.Array:
    """`max_pool_backward` with Dask arrays: a lazy Dask array chunked like ``input``.

    With ``indices``, the input's values are never read; without, every
    block finds its windows' winners again in its slab.

    Parameters
    ----------
    grad_output : dask.array.Array or array_like, shape of the forward output
        Rechunked to the blocks of the forward output.
    input : dask.array.Array or array_like, shape (N, C, *spatial) or (C, *spatial)
    kernel_size, stride, padding, dilation, ceil_mode, indices, workspace
        As for `max_pool_backward`; ``indices`` may be a Dask array.

    Returns
    -------
    dask.array.Array, shape of input
    """
    check_workspace(workspace)
    x = as_dask(input, "input")

    def call(sample: NDArray[Any]) -> Any:
        return numpy_max_pool(sample, kernel_size, stride, padding, dilation, ceil_mode, workspace=workspace)

    x, unbatched, empty = batched(x, _spatial(kernel_size, x.ndim), call)
    y = call(empty)
    gy = grad_like(grad_output, (x.shape[0], *y.shape[1:]), unbatched)
    idx = None
    if indices is not None:
        idx = as_dask(indices, "indices")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must have an integer dtype, got dtype {idx.dtype}")
        given = gy.shape[1:] if unbatched else gy.shape
        if idx.shape != given:
            raise ValueError(f"indices must have grad_output's shape {given}, got {idx.shape}")
        idx = idx[np.newaxis] if unbatched else idx
    dtype = numpy_max_pool_backward(
        np.zeros(y.shape, gy.dtype),
        empty,
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        workspace=workspace,
    ).dtype
    axes = _axes(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    bounds = _bounds(x.chunks[2:], axes, follow_input=True)
    gy = gy.rechunk((*x.chunks[:2], *_sizes(bounds)))
    idx = None if idx is None else idx.rechunk(gy.chunks)
    slabs = _slabs(axes, bounds)
    whole = tuple(x.shape[2:])
    graph = Graph("max-pool-backward", gy, x, idx, axes, workspace)
    blocks = graph.name("blocks")
    parts: dict[tuple[int, ...], Any] = {}
    for lead in itertools.product(range(len(x.chunks[0])), range(len(x.chunks[1]))):
        for j in block_indices([len(row) for row in slabs]):
            own = [row[i] for row, i in zip(slabs, j)]
            run = partial(
                _max_backward_block,
                slabs=own,
                axes=axes,
                whole=whole,
                kernel_size=tuple(a.kernel for a in axes),
                stride=tuple(a.stride for a in axes),
                padding=tuple(a.padding for a in axes),
                dilation=tuple(a.dilation for a in axes),
                ceil_mode=bool(ceil_mode),
                workspace=workspace,
            )
            grad_key = (gy.name, *lead, *j)
            if idx is None:
                read = graph.slab(x, lead, [(s.lo, s.hi) for s in own])
                graph.add((blocks, *lead, *j), (run, grad_key, read, None))
            else:
                stand_in = partial(_zeros_like_slab, shape=tuple(s.hi - s.lo for s in own), dtype=x.dtype)
                task = (run, grad_key, (stand_in, grad_key), (idx.name, *lead, *j))
                graph.add((blocks, *lead, *j), task)
            key = (*lead, *j)
            parts[key] = (blocks, *key)
    target = [chunk_bounds(c) for c in x.chunks[2:]]
    grad_x = graph.scatter(graph.name("input"), parts, slabs, x.chunks[:2], target, dtype)
    return grad_x[0] if unbatched else grad_x


def _avg_backward_block(
    grad: NDArray[Any], *, slabs: list[Slab], axes: list[PoolAxis], **kwargs: Any
) -> NDArray[Any]:
    shape = (*grad.shape[:2], *(s.hi - s.lo for s in slabs))
    return numpy_avg_pool_backward(_local_grad(grad, slabs, axes), shape, **kwargs)


def _checked_shape(input_shape: object, spatial: int, refuse: Any) -> tuple[int, ...]:
    """``input_shape`` as ints, or the NumPy call's own error."""
    try:
        shape = tuple(as_int(n, "input_shape") for n in input_shape) if is_sequence(input_shape) else None  # type: ignore[attr-defined]
    except TypeError:
        shape = None
    if (
        shape is None
        or any(n < 0 for n in shape)
        or spatial < 1
        or len(shape) not in (spatial + 1, spatial + 2)
    ):
        refuse()
        raise ValueError(f"input_shape {input_shape!r} does not fit {spatial} spatial dimension(s)")
    return shape


def avg_pool_backward(
    grad_output: object,
    input_shape: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: Any,
    count_include_pad: Any,
    divisor_override: Any,
    *,
    workspace: int,
) -> da.Array:
    """`avg_pool_backward` of a Dask array: a lazy Dask array, its chunks following ``grad_output``'s.

    Parameters
    ----------
    grad_output : dask.array.Array, shape of the forward output
        Its chunks are the blocks (merged while shorter than their halo).
    input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, workspace
        As for `avg_pool_backward`.

    Returns
    -------
    dask.array.Array, shape input_shape
        Its chunks start where the blocks' slabs start.
    """
    check_workspace(workspace)
    gy = as_dask(grad_output, "grad_output")
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    spatial = (
        len(kernel_size)
        if is_sequence(kernel_size)
        else (len(input_shape) - 2 if is_sequence(input_shape) else 0)
    )
    shape = _checked_shape(
        input_shape,
        spatial,
        lambda: numpy_avg_pool_backward(np.zeros(0), input_shape, *args, workspace=workspace),
    )
    unbatched = len(shape) == spatial + 1
    batched_shape = (1, *shape) if unbatched else shape
    y = numpy_avg_pool(np.zeros((0, *batched_shape[1:])), *args, workspace=workspace)
    gy = grad_like(gy, (batched_shape[0], *y.shape[1:]), unbatched)
    dtype = numpy_avg_pool_backward(
        np.zeros(y.shape, gy.dtype), y.shape[:2] + batched_shape[2:], *args, workspace=workspace
    ).dtype
    axes = _axes(batched_shape, kernel_size, stride, padding, 1, ceil_mode)
    bounds = _bounds(gy.chunks[2:], axes, follow_input=False)
    gy = gy.rechunk((*gy.chunks[:2], *_sizes(bounds)))
    slabs = _slabs(axes, bounds)
    graph = Graph("avg-pool-backward", gy, axes, args, workspace)
    named = _avg_arguments(axes, ceil_mode, count_include_pad, divisor_override)
    parts: dict[tuple[int, ...], Any] = {}
    blocks = graph.name("blocks")
    for lead in itertools.product(range(len(gy.chunks[0])), range(len(gy.chunks[1]))):
        for j in block_indices([len(row) for row in slabs]):
            own = [row[i] for row, i in zip(slabs, j)]
            run = partial(_avg_backward_block, slabs=own, axes=axes, workspace=workspace, **named)
            graph.add((blocks, *lead, *j), (run, (gy.name, *lead, *j)))
            key = (*lead, *j)
            parts[key] = (blocks, *key)
    target = [tuple(sorted({0, axis.size} | {s.lo for s in row})) for row, axis in zip(slabs, axes)]
    grad_x = graph.scatter(graph.name("input"), parts, slabs, gy.chunks[:2], target, dtype)
    return grad_x[0] if unbatched else grad_x
