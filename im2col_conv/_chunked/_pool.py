"""Max and average pooling over Dask arrays.

Pooling pads both sides alike, so a block's call cannot be given the
one-sided padding of a band. Instead each block of windows reads a slab that
starts on a multiple of the stride (`_plan.pool_slab`): the call, with the
pooling's own padding, computes the block's windows exactly, the windows
before them are dropped. For the gradients the block's output gradient is
placed among zeros at the same windows, the call sends it to the slab, and
the slabs that overlap a chunk of the input gradient are added up.
"""

from __future__ import annotations

import itertools
import operator
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import NDArray

from .._validation import as_int, int_tuple, is_sequence
from ..pooling import avg_pool as numpy_avg_pool
from ..pooling import max_pool as numpy_max_pool
from ._graph import Graph
from ._inputs import as_dask, batched
from ._plan import PoolAxis, Slab, block_indices, chunk_bounds, halo_minimum, merge_bounds, pool_slab

__all__ = ["avg_pool", "max_pool"]


def _spatial(kernel_size: object, ndim: int) -> int:
    return len(kernel_size) if is_sequence(kernel_size) else ndim - 2  # type: ignore[arg-type]


def _axes(
    shape: tuple[int, ...],
    kernel_size: object,
    stride: object,
    padding: object,
    dilation: object,
    ceil: object,
) -> list[PoolAxis]:
    """Per spatial axis of a batched ``shape``, arguments the NumPy call has already accepted."""
    d = len(shape) - 2
    kernel = int_tuple(kernel_size, d, "kernel_size", minimum=1)
    strides = kernel if stride is None else int_tuple(stride, d, "stride", minimum=1)
    pads = int_tuple(padding, d, "padding", minimum=0)
    dilations = int_tuple(dilation, d, "dilation", minimum=1)
    return [PoolAxis(*values, bool(ceil)) for values in zip(shape[2:], kernel, strides, pads, dilations)]


def _slabs(axes: list[PoolAxis], bounds: list[tuple[int, ...]]) -> list[list[Slab]]:
    return [
        [pool_slab(axis, a, b) for a, b in itertools.pairwise(edges)] for axis, edges in zip(axes, bounds)
    ]


def _bounds(
    chunks: tuple[tuple[int, ...], ...], axes: list[PoolAxis], follow_input: bool
) -> list[tuple[int, ...]]:
    """Output blocks per axis, from the input's chunks or the output gradient's."""
    found = []
    for c, axis in zip(chunks, axes):
        edges = chunk_bounds(c)
        if follow_input:
            starts = {0, axis.windows()} | {
                min(max(-(-(e + axis.padding) // axis.stride), 0), axis.windows()) for e in edges[1:-1]
            }
            edges = tuple(sorted(starts))
        found.append(merge_bounds(edges, halo_minimum(axis.stride, axis.extent)))
    return found


def _sizes(bounds: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    return [tuple(np.diff(b).tolist()) for b in bounds]


def _kept(slabs: list[Slab]) -> tuple[Any, ...]:
    """The block's own windows among those of its call."""
    return (Ellipsis, *(slice(s.padding[0], s.padding[0] + s.padding[1]) for s in slabs))


def _flat_to_global(
    indices: NDArray[Any], slabs: list[Slab], local: tuple[int, ...], whole: tuple[int, ...]
) -> Any:
    """Flat indices in a slab's plane as flat indices in the whole input's plane (-1 kept)."""
    found = indices >= 0
    coords = np.unravel_index(np.where(found, indices, 0), local)
    shifted = tuple(c + s.lo for c, s in zip(coords, slabs))
    return np.where(found, np.ravel_multi_index(shifted, whole), -1).astype(indices.dtype)


def _max_block(slab: NDArray[Any], *, slabs: list[Slab], whole: tuple[int, ...], **kwargs: Any) -> Any:
    result: Any = numpy_max_pool(slab, **kwargs)
    keep = _kept(slabs)
    if not kwargs["return_indices"]:
        return result[keep]
    values, indices = result
    return values[keep], _flat_to_global(indices[keep], slabs, slab.shape[2:], whole)


def _forward(
    label: str, x: da.Array, axes: list[PoolAxis], dtype: np.dtype[Any], block: Any, outputs: int
) -> list[da.Array]:
    """The blocks' calls on their slabs, as ``outputs`` arrays (a call returning a tuple of them if 2)."""
    bounds = _bounds(x.chunks[2:], axes, follow_input=True)
    slabs = _slabs(axes, bounds)
    graph = Graph(label, x, axes, block)
    names = [graph.name(f"output{i}") for i in range(outputs)]
    for lead in itertools.product(range(len(x.chunks[0])), range(len(x.chunks[1]))):
        for j in block_indices([len(row) for row in slabs]):
            own = [row[i] for row, i in zip(slabs, j)]
            task = (partial(block, slabs=own), graph.slab(x, lead, [(s.lo, s.hi) for s in own]))
            if outputs == 1:
                graph.add((names[0], *lead, *j), task)
            else:
                graph.add((graph.name("blocks"), *lead, *j), task)
                for i, name in enumerate(names):
                    graph.add((name, *lead, *j), (operator.getitem, (graph.name("blocks"), *lead, *j), i))
    chunks = [*x.chunks[:2], *_sizes(bounds)]
    return [graph.array(name, chunks, np.dtype(np.int64) if i else dtype) for i, name in enumerate(names)]


def max_pool(
    input: object,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
    return_indices: Any,
    *,
    workspace: int,
) -> Any:
    """`max_pool` of a Dask array: lazy Dask arrays chunked like the input (batch, channels, space).

    Parameters
    ----------
    input : dask.array.Array, shape (N, C, *spatial) or (C, *spatial)
    kernel_size, stride, padding, dilation, ceil_mode, return_indices, workspace
        As for `max_pool`.

    Returns
    -------
    output : dask.array.Array, shape (N, C, *out) or (C, *out)
    indices : dask.array.Array of int64, only with return_indices
        Flat indices in the whole input's plane, as one call gives.
    """
    x = as_dask(input, "input")
    args = (kernel_size, stride, padding, dilation, ceil_mode, return_indices)

    def call(sample: NDArray[Any]) -> Any:
        return numpy_max_pool(sample, *args, workspace=workspace)

    x, unbatched, empty = batched(x, _spatial(kernel_size, x.ndim), call)
    probe = call(empty)
    axes = _axes(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    whole = tuple(x.shape[2:])
    block = partial(
        _max_block,
        whole=whole,
        kernel_size=tuple(a.kernel for a in axes),
        stride=tuple(a.stride for a in axes),
        padding=tuple(a.padding for a in axes),
        dilation=tuple(a.dilation for a in axes),
        ceil_mode=bool(ceil_mode),
        return_indices=bool(return_indices),
        workspace=workspace,
    )
    dtype = probe[0].dtype if return_indices else probe.dtype
    results = _forward("max-pool", x, axes, dtype, block, 2 if return_indices else 1)
    if unbatched:
        results = [r[0] for r in results]
    return tuple(results) if return_indices else results[0]


def _avg_block(slab: NDArray[Any], *, slabs: list[Slab], **kwargs: Any) -> NDArray[Any]:
    result: NDArray[Any] = numpy_avg_pool(slab, **kwargs)[_kept(slabs)]
    return result


def _avg_arguments(axes: list[PoolAxis], ceil: object, include: object, divisor: object) -> dict[str, Any]:
    return {
        "kernel_size": tuple(a.kernel for a in axes),
        "stride": tuple(a.stride for a in axes),
        "padding": tuple(a.padding for a in axes),
        "ceil_mode": bool(ceil),
        "count_include_pad": bool(include),
        "divisor_override": None if divisor is None else as_int(divisor, "divisor_override"),
    }


def avg_pool(
    input: object,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: Any,
    count_include_pad: Any,
    divisor_override: Any,
    *,
    workspace: int,
) -> da.Array:
    """`avg_pool` of a Dask array: a lazy Dask array chunked like the input (batch, channels, space).

    Parameters
    ----------
    input : dask.array.Array, shape (N, C, *spatial) or (C, *spatial)
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, workspace
        As for `avg_pool`.

    Returns
    -------
    dask.array.Array, shape (N, C, *out) or (C, *out)
    """
    x = as_dask(input, "input")
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)

    def call(sample: NDArray[Any]) -> NDArray[Any]:
        return numpy_avg_pool(sample, *args, workspace=workspace)

    x, unbatched, empty = batched(x, _spatial(kernel_size, x.ndim), call)
    dtype = call(empty).dtype
    axes = _axes(x.shape, kernel_size, stride, padding, 1, ceil_mode)
    named = _avg_arguments(axes, ceil_mode, count_include_pad, divisor_override)
    block = partial(_avg_block, workspace=workspace, **named)
    (y,) = _forward("avg-pool", x, axes, dtype, block, 1)
    return y[0] if unbatched else y
