"""Convolution, its gradients and the transposed convolution over Dask arrays.

The output is cut along the batch and every spatial axis; each block of
windows reads its slab of the input (`ConvGeometry.band`: the positions its
windows reach, with the padding of the array's edges as its own padding) and
is one call of the NumPy function. The gradient with respect to the input
and the transposed convolution scatter: each block's call returns the values
its windows send to its slab, and the chunks of the result add up the slabs
that overlap them. The weight and bias gradients are sums over blocks, a
tree of partial sums.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import check_workspace
from ..convolution import ConvGrads
from ..convolution import conv as numpy_conv
from ..convolution import conv_backward as numpy_conv_backward
from ..convolution import conv_transpose as numpy_conv_transpose
from ..geometry import ConvGeometry, IntOrTuple, PaddingLike
from ._graph import Graph
from ._inputs import as_dask, batched, grad_like, small
from ._plan import (
    block_indices,
    chunk_bounds,
    conv_slabs,
    halo_minimum,
    merge_bounds,
    window_bounds,
)

__all__ = ["conv", "conv_backward", "conv_transpose"]


def _weight(weight: ArrayLike) -> NDArray[Any]:
    w = small(weight, "weight")
    assert w is not None
    return w


def _output_bounds(x: da.Array, geometry: ConvGeometry) -> list[tuple[int, ...]]:
    """Per spatial axis, the output blocks: one per input chunk, merged while shorter than the halo."""
    return [
        merge_bounds(
            window_bounds(chunk_bounds(x.chunks[2 + i]), m, s, pads[0]),
            halo_minimum(s, e),
        )
        for i, (m, s, pads, e) in enumerate(
            zip(geometry.output_size, geometry.stride, geometry.padding, geometry.kernel_extent)
        )
    ]


def _sizes(bounds: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    return [tuple(np.diff(b).tolist()) for b in bounds]


def _forward_block(
    slab: NDArray[Any], weight: NDArray[Any], bias: NDArray[Any] | None, **kwargs: Any
) -> NDArray[Any]:
    return numpy_conv(slab, weight, bias, **kwargs)


def conv(
    input: object,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntOrTuple,
    padding: PaddingLike,
    dilation: IntOrTuple,
    groups: int,
    *,
    workspace: int,
) -> da.Array:
    """`conv` of a Dask array: a lazy Dask array, chunked along batch and spatial axes.

    Parameters
    ----------
    input : dask.array.Array, shape (N, C_in, *spatial) or (C_in, *spatial)
        Chunked in any way; the channel axis is rechunked to one chunk.
    weight, bias, stride, padding, dilation, groups, workspace
        As for `conv`; ``workspace`` bounds the temporaries of each task.

    Returns
    -------
    dask.array.Array, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Along each spatial axis, block ``j`` holds the windows that start in
        input chunk ``j`` (merged while shorter than their halo).
    """
    check_workspace(workspace)
    w, b = _weight(weight), small(bias, "bias")
    x = as_dask(input, "input")

    def call(sample: NDArray[Any]) -> NDArray[Any]:
        return numpy_conv(sample, w, b, stride, padding, dilation, groups, workspace=workspace)

    x, unbatched, empty = batched(x, w.ndim - 2, call)
    dtype = call(empty).dtype
    geometry = ConvGeometry.create(x.shape[2:], w.shape[2:], stride, padding, dilation)
    x = x.rechunk({1: -1})
    bounds = _output_bounds(x, geometry)
    slabs = conv_slabs(geometry, bounds)
    graph = Graph("conv", x, w, b, geometry, groups, workspace)
    weight_key = graph.constant("weight", w)
    bias_key = None if b is None else graph.constant("bias", b)
    name = graph.name("output")
    for n in range(len(x.chunks[0])):
        for block in block_indices([len(row) for row in slabs]):
            parts = [row[j] for row, j in zip(slabs, block)]
            run = partial(
                _forward_block,
                stride=geometry.stride,
                padding=tuple(p.padding for p in parts),
                dilation=geometry.dilation,
                groups=groups,
                workspace=workspace,
            )
            read = graph.slab(x, (n, 0), [(p.lo, p.hi) for p in parts])
            graph.add((name, n, 0, *block), (run, read, weight_key, bias_key))
    y = graph.array(name, [x.chunks[0], (w.shape[0],), *_sizes(bounds)], dtype)
    return y[0] if unbatched else y


def _backward_block(
    grad: NDArray[Any], slab: NDArray[Any], weight: NDArray[Any], **kwargs: Any
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    grads = numpy_conv_backward(grad, slab, weight, **kwargs)
    return grads.input, grads.weight, grads.bias


def conv_backward(
    grad_output: object,
    input: object,
    weight: ArrayLike,
    stride: IntOrTuple,
    padding: PaddingLike,
    dilation: IntOrTuple,
    groups: int,
    *,
    columns: object,
    workspace: int,
) -> ConvGrads:
    """`conv_backward` with Dask arrays: three lazy Dask arrays, computed together by `dask.compute`.

    Parameters
    ----------
    grad_output : dask.array.Array or array_like, shape of the forward output
        Rechunked to the blocks of the forward output.
    input : dask.array.Array or array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
    weight, stride, padding, dilation, groups, workspace
        As for `conv_backward`.
    columns : None
        Only None: the column matrix is never kept whole.

    Returns
    -------
    ConvGrads of dask.array.Array
        The input gradient chunked like ``input`` (one channel chunk), and the
        weight and bias gradients in one chunk each, tree sums over the blocks.

    Raises
    ------
    TypeError
        If ``columns`` is given.
    """
    if columns is not None:
        raise TypeError("columns cannot be given with Dask arrays: the column matrix is never kept whole")
    check_workspace(workspace)
    w = _weight(weight)
    x = as_dask(input, "input")

    def call(sample: NDArray[Any]) -> object:
        return numpy_conv_backward(sample, sample, w, stride, padding, dilation, groups, workspace=workspace)

    x, unbatched, empty = batched(x, w.ndim - 2, call)
    geometry = ConvGeometry.create(x.shape[2:], w.shape[2:], stride, padding, dilation)
    expected = (x.shape[0], w.shape[0], *geometry.output_size)
    gy = grad_like(grad_output, expected, unbatched)
    probe = numpy_conv_backward(
        np.zeros((0, *expected[1:]), gy.dtype),
        empty,
        w,
        stride,
        padding,
        dilation,
        groups,
        workspace=workspace,
    )
    x = x.rechunk({1: -1})
    bounds = _output_bounds(x, geometry)
    gy = gy.rechunk((x.chunks[0], -1, *_sizes(bounds)))
    slabs = conv_slabs(geometry, bounds)
    graph = Graph("conv-backward", gy, x, w, geometry, groups, workspace)
    weight_key = graph.constant("weight", w)
    blocks = graph.name("blocks")
    parts: dict[tuple[int, ...], Any] = {}
    for n in range(len(x.chunks[0])):
        for block in block_indices([len(row) for row in slabs]):
            pieces = [row[j] for row, j in zip(slabs, block)]
            run = partial(
                _backward_block,
                stride=geometry.stride,
                padding=tuple(p.padding for p in pieces),
                dilation=geometry.dilation,
                groups=groups,
                workspace=workspace,
            )
            read = graph.slab(x, (n, 0), [(p.lo, p.hi) for p in pieces])
            graph.add((blocks, n, *block), (run, (gy.name, n, 0, *block), read, weight_key))
            key = (n, 0, *block)
            parts[key] = (blocks, n, *block)
    keys = list(parts.values())
    target = [chunk_bounds(c) for c in x.chunks[2:]]
    inputs = {k: (operator.getitem, v, 0) for k, v in parts.items()}
    grad_x = graph.scatter(graph.name("input"), inputs, slabs, x.chunks[:2], target, probe.input.dtype)
    grad_w = graph.tree_sum("weight", [(operator.getitem, k, 1) for k in keys], w.shape, probe.weight.dtype)
    grad_b = graph.tree_sum("bias", [(operator.getitem, k, 2) for k in keys], (w.shape[0],), probe.bias.dtype)
    # The gradients are lazy Dask arrays where the NumPy version holds ndarrays.
    return ConvGrads(grad_x[0] if unbatched else grad_x, grad_w, grad_b)  # type: ignore[arg-type]


def _transpose_block(block: NDArray[Any], weight: NDArray[Any], *, empty: bool, **kwargs: Any) -> Any:
    """The values one block of the input sends to its slab of the output (None if the slab is empty)."""
    if empty:
        return None
    return numpy_conv_transpose(block, weight, None, **kwargs)


def conv_transpose(
    input: object,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntOrTuple,
    padding: PaddingLike,
    output_padding: IntOrTuple,
    groups: int,
    dilation: IntOrTuple,
    *,
    workspace: int,
) -> da.Array:
    """`conv_transpose` of a Dask array: a lazy Dask array, chunked along batch and spatial axes.

    Parameters
    ----------
    input : dask.array.Array, shape (N, C_in, *spatial) or (C_in, *spatial)
        Its spatial chunks are the blocks (merged while shorter than their halo).
    weight, bias, stride, padding, output_padding, groups, dilation, workspace
        As for `conv_transpose`.

    Returns
    -------
    dask.array.Array, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Its chunks start where the blocks' slabs start; each adds the slabs
        that overlap it.
    """
    check_workspace(workspace)
    w, b = _weight(weight), small(bias, "bias")
    x = as_dask(input, "input")

    def call(sample: NDArray[Any]) -> NDArray[Any]:
        return numpy_conv_transpose(
            sample, w, b, stride, padding, output_padding, groups, dilation, workspace=workspace
        )

    x, unbatched, empty = batched(x, w.ndim - 2, call)
    probe = call(empty)
    frame = ConvGeometry.for_transpose(x.shape[2:], w.shape[2:], stride, padding, output_padding, dilation)
    # The input is the window grid of the convolution whose input gradient this is.
    bounds = [
        merge_bounds(chunk_bounds(c), halo_minimum(s, e))
        for c, s, e in zip(x.chunks[2:], frame.stride, frame.kernel_extent)
    ]
    x = x.rechunk((x.chunks[0], -1, *_sizes(bounds)))
    slabs = conv_slabs(frame, bounds)
    graph = Graph("conv-transpose", x, w, b, frame, groups, workspace)
    weight_key = graph.constant("weight", w)
    name = graph.name("blocks")
    parts: dict[tuple[int, ...], Any] = {}
    for n in range(len(x.chunks[0])):
        for block in block_indices([len(row) for row in slabs]):
            pieces = [row[j] for row, j in zip(slabs, block)]
            run = partial(
                _transpose_block,
                empty=any(p.hi <= p.lo for p in pieces),
                stride=frame.stride,
                padding=tuple(p.padding for p in pieces),
                output_padding=0,
                groups=groups,
                dilation=frame.dilation,
                workspace=workspace,
            )
            graph.add((name, n, *block), (run, (x.name, n, 0, *block), weight_key))
            key = (n, 0, *block)
            parts[key] = (name, n, *block)
    target = [
        tuple(sorted({0, size} | {p.lo for p in row if p.lo < size}))
        for row, size in zip(slabs, frame.input_size)
    ]
    lead = [x.chunks[0], (probe.shape[1],)]
    base = None if b is None else b.astype(probe.dtype)
    y = graph.scatter(graph.name("output"), parts, slabs, lead, target, probe.dtype, base=base)
    return y[0] if unbatched else y
