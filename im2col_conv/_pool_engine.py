"""The tiled loops of max and average pooling.

Pooling reduces the column matrix over its kernel rows instead of
multiplying it by a weight: the maximum of each column for max pooling,
the sum divided by the window's divisor for average pooling. Row block
``k`` of the column matrix (kernel offset ``k``) is a strided slice of the
input, so the forward pass folds the rows in one slice at a time into the
output (:func:`~im2col_conv._pool_windows.offset_boxes` says where each
reads), and never copies the column matrix or pads the input.

The backward pass is the transposed map: build the gradient of each row
block (for max pooling the output gradient where that offset won, else 0;
for average pooling the output gradient over the divisor, the same for
every row) and add it back onto the input with the convolution's col2im,
:func:`~im2col_conv._lowering.scatter_blocks`, one offset at a time.

Work is cut into tiles by :func:`~im2col_conv.workspace.plan_tiles`, as for
the convolution, so that the temporaries of a call stay within its
workspace whatever the batch and image size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._lowering import scatter_blocks
from ._pool_windows import (
    divisors,
    first_inside,
    offset_boxes,
    offset_dtype,
    offsets_from_indices,
    to_flat_indices,
)
from .geometry import ConvGeometry
from .profiling import phase
from .workspace import Scratch, Tile, plan_tiles

__all__ = ["avg_backward", "avg_forward", "lowest", "max_backward", "max_forward"]

_EVERY = (slice(None), slice(None))

#: ``offsets_for(tile, out)``: write the winning kernel offset of every window of a tile into ``out``.
OffsetSource = Callable[[Tile, NDArray[Any]], None]

#: ``block(index, offset)``: the gradient of one row block of the column matrix, as for ``scatter_blocks``.
Block = Callable[[int, tuple[int, ...]], NDArray[Any]]


def lowest(dtype: np.dtype[Any]) -> Any:
    """The value no input loses to: ``-inf`` for floats, the minimum for integers."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _tile(array: NDArray[Any], tile: Tile, *, inputs: bool = False) -> NDArray[Any]:
    return array[tile.batch][_EVERY + (tile.input_window if inputs else tile.window)]


def _running_max(x: NDArray[Any], best: NDArray[Any], geometry: ConvGeometry) -> None:
    """``best`` = the maximum of every window, NaN if it holds one; no offsets kept."""
    best.fill(lowest(best.dtype))
    with phase("reduction"):
        for box in offset_boxes(geometry):
            view = best[_EVERY + box.outputs]
            np.maximum(view, x[_EVERY + box.inputs], out=view)


def _running_argmax(
    x: NDArray[Any], best: NDArray[Any], offsets: NDArray[Any], geometry: ConvGeometry, masks: Scratch
) -> None:
    """Maximum and winning offset of every window, with PyTorch's order.

    A later element wins only if it is strictly larger or NaN: the first
    maximum wins ties, and the last NaN wins once there is one. Windows
    whose inputs never beat the start keep offset -1.
    """
    best.fill(lowest(best.dtype))
    offsets.fill(-1)
    floating = best.dtype.kind == "f"
    with phase("reduction"):
        for box in offset_boxes(geometry):
            top, value = best[_EVERY + box.outputs], x[_EVERY + box.inputs]
            wins = masks.get("wins", top.shape)
            np.greater(value, top, out=wins)
            if floating:
                nan = masks.get("nan", top.shape)
                np.isnan(value, out=nan)
                np.logical_or(wins, nan, out=wins)
            np.copyto(top, value, where=wins)
            np.copyto(offsets[_EVERY + box.outputs], box.flat, where=wins)


def _settle(offsets: NDArray[Any], geometry: ConvGeometry, tile: Tile, masks: Scratch) -> None:
    """Point windows that nothing beat (all ``-inf``, or all the integer minimum) at their first input."""
    unset = masks.get("unset", offsets.shape)
    np.less(offsets, 0, out=unset)
    if unset.any():
        np.copyto(offsets, first_inside(geometry)[tile.window], where=unset)


def max_forward(
    x: NDArray[Any], geometry: ConvGeometry, workspace: int, keep: str | None = None
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Max pooling of a batch ``(N, C, *input_size)`` in its own dtype.

    Parameters
    ----------
    keep : {None, "offsets", "indices"}
        Also return the winning kernel offset of every window (the smallest
        signed dtype that holds them), or the flat input-plane index of the
        winner (int64, PyTorch's ``indices``).
    """
    n, c = x.shape[:2]
    y = np.empty((n, c, *geometry.output_size), x.dtype)
    small = offset_dtype(geometry.kernel_volume)
    kept = None if keep is None else np.empty(y.shape, small if keep == "offsets" else np.int64)
    per_output = x.dtype.itemsize + (0 if keep is None else small.itemsize + 3)
    masks, scratch = Scratch(np.dtype(bool)), Scratch(small)
    for tile in plan_tiles(n, geometry, lambda s, out: s * c * math.prod(out) * per_output, workspace):
        x_t, y_t = _tile(x, tile, inputs=True), _tile(y, tile)
        if kept is None:
            _running_max(x_t, y_t, tile.geometry)
            continue
        offsets = _tile(kept, tile) if keep == "offsets" else scratch.get("offsets", y_t.shape)
        _running_argmax(x_t, y_t, offsets, tile.geometry, masks)
        _settle(offsets, geometry, tile, masks)
        if keep == "indices":
            to_flat_indices(geometry, tile.window, offsets, _tile(kept, tile))
    return y, kept


def avg_forward(
    x: NDArray[Any],
    geometry: ConvGeometry,
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: np.dtype[Any],
    workspace: int,
) -> NDArray[Any]:
    """Average pooling of a batch ``(N, C, *input_size)``, summed and divided in ``dtype``."""
    n, c = x.shape[:2]
    y = np.empty((n, c, *geometry.output_size), dtype)
    divisor = divisors(geometry, count_include_pad, divisor_override, dtype.type(0).real.dtype)
    for tile in plan_tiles(n, geometry, lambda s, out: s * c * math.prod(out) * dtype.itemsize, workspace):
        x_t, y_t = _tile(x, tile, inputs=True), _tile(y, tile)
        y_t.fill(0)
        with phase("reduction"):
            for box in offset_boxes(tile.geometry):
                view = y_t[_EVERY + box.outputs]
                np.add(view, x_t[_EVERY + box.inputs], out=view)
            np.divide(y_t, divisor[tile.window], out=y_t)
    return y


def _scatter_bytes(c: int, geometry: ConvGeometry, samples: int, out: tuple[int, ...], itemsize: int) -> int:
    """Bytes of a tile's col2im buffer and of a band's gradient."""
    read = math.prod((o - 1) * s + e for o, s, e in zip(out, geometry.stride, geometry.kernel_extent))
    return 2 * samples * c * max(read, math.prod(geometry.input_size)) * itemsize


def _scatter_tile(
    grad_x: NDArray[Any],
    block: Block,
    tile: Tile,
    scratch: Scratch,
) -> None:
    """col2im of one tile's row blocks onto ``grad_x``, as the convolution's backward does."""
    nb, c = tile.batch.stop - tile.batch.start, grad_x.shape[1]
    if tile.whole:
        target = grad_x[tile.batch]
    else:
        target = scratch.get("band", (nb, c, *tile.geometry.input_size))
    scatter_blocks(
        block,
        (nb, c),
        grad_x.dtype,
        tile.geometry,
        out=target,
        allocate=lambda shape: scratch.get("scatter", shape),
    )
    if not tile.whole:
        _tile(grad_x, tile, inputs=True)[...] += target  # windows of neighbouring bands overlap


def _same_block(spread: NDArray[Any]) -> Block:
    """Row blocks that are all ``spread``: average pooling's."""
    return lambda index, offset: spread


def _winner_blocks(g: NDArray[Any], offsets: NDArray[Any], hits: NDArray[Any], spread: NDArray[Any]) -> Block:
    """Row block ``k``: ``g`` where offset ``k`` won, else 0, written into ``spread``.

    Selected with ``copyto``, not multiplied by a mask, so that an infinite
    or NaN gradient reaches its winner only.
    """

    def block(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
        np.equal(offsets, index, out=hits)
        spread.fill(0)
        np.copyto(spread, g, where=hits)
        return spread

    return block


def _gradient(shape: tuple[int, ...], dtype: np.dtype[Any], tiles: list[Tile]) -> NDArray[Any]:
    whole = all(tile.whole for tile in tiles)
    return (np.empty if whole else np.zeros)(shape, dtype)


def avg_backward(
    grad_output: NDArray[Any],
    input_shape: tuple[int, ...],
    geometry: ConvGeometry,
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: np.dtype[Any],
    workspace: int,
) -> NDArray[Any]:
    """Input gradient of average pooling: every row block is ``grad_output / divisor``."""
    n, c = input_shape[:2]
    divisor = divisors(geometry, count_include_pad, divisor_override, dtype.type(0).real.dtype)

    def tile_bytes(samples: int, out: tuple[int, ...]) -> int:
        block = samples * c * math.prod(out) * dtype.itemsize
        return block + _scatter_bytes(c, geometry, samples, out, dtype.itemsize)

    tiles = plan_tiles(n, geometry, tile_bytes, workspace)
    grad_x = _gradient(input_shape, dtype, tiles)
    scratch = Scratch(dtype)
    for tile in tiles:
        g_t = _tile(grad_output, tile)
        spread = scratch.get("block", g_t.shape)
        np.divide(g_t, divisor[tile.window], out=spread)
        _scatter_tile(grad_x, _same_block(spread), tile, scratch)
    return grad_x


def offsets_by_recomputing(x: NDArray[Any], geometry: ConvGeometry) -> OffsetSource:
    """Winning offsets of a tile found again from the input."""
    values, masks = Scratch(x.dtype), Scratch(np.dtype(bool))

    def write(tile: Tile, out: NDArray[Any]) -> None:
        best = values.get("best", out.shape)
        _running_argmax(_tile(x, tile, inputs=True), best, out, tile.geometry, masks)
        _settle(out, geometry, tile, masks)

    return write


def offsets_from_kept(kept: NDArray[Any]) -> OffsetSource:
    """Winning offsets of a tile read from those :func:`max_forward` kept."""

    def write(tile: Tile, out: NDArray[Any]) -> None:
        np.copyto(out, _tile(kept, tile))

    return write


def offsets_from_flat(indices: NDArray[Any], geometry: ConvGeometry) -> OffsetSource:
    """Winning offsets of a tile decoded from PyTorch-style flat indices."""

    def write(tile: Tile, out: NDArray[Any]) -> None:
        offsets_from_indices(geometry, tile.window, _tile(indices, tile), out)

    return write


def max_backward(
    grad_output: NDArray[Any],
    input_shape: tuple[int, ...],
    geometry: ConvGeometry,
    offsets_for: OffsetSource,
    workspace: int,
    *,
    extra_bytes: int = 0,
) -> NDArray[Any]:
    """Input gradient of max pooling: row block ``k`` is ``grad_output`` where offset ``k`` won, else 0.

    ``extra_bytes`` is what ``offsets_for`` needs per output element.
    """
    n, c = input_shape[:2]
    dtype = grad_output.dtype
    small = offset_dtype(geometry.kernel_volume)

    def tile_bytes(samples: int, out: tuple[int, ...]) -> int:
        per_output = dtype.itemsize + small.itemsize + 1 + extra_bytes
        return samples * c * math.prod(out) * per_output + _scatter_bytes(
            c, geometry, samples, out, dtype.itemsize
        )

    tiles = plan_tiles(n, geometry, tile_bytes, workspace)
    grad_x = _gradient(input_shape, dtype, tiles)
    scratch, offset_scratch, masks = Scratch(dtype), Scratch(small), Scratch(np.dtype(bool))
    for tile in tiles:
        g_t = _tile(grad_output, tile)
        offsets = offset_scratch.get("offsets", g_t.shape)
        offsets_for(tile, offsets)
        hits, spread = masks.get("hits", g_t.shape), scratch.get("block", g_t.shape)
        _scatter_tile(grad_x, _winner_blocks(g_t, offsets, hits, spread), tile, scratch)
    return grad_x
