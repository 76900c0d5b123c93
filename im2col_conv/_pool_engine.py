"""The tiled loops of max and average pooling.

Pooling reduces the column matrix over its kernel rows instead of multiplying
it by a weight: each column's maximum, or its sum over the window's divisor.
Row block ``k`` (kernel offset ``k``) is a strided slice of the input
(`offset_boxes`), so the forward pass folds it into the output one slice at a
time, never copying the column matrix or padding the input. The backward pass
builds each row block's gradient (max: the output gradient where that offset
won, else 0; average: the output gradient over the divisor) and adds it back
with the convolution's col2im (`im2col_conv._col2im`). Work is cut into tiles
by `plan_tiles`, from the bytes `_forward_bytes` and `_backward_bytes` count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._col2im import Blocks, add_tile, col2im_elements
from ._dtypes import compute_dtype, max_abs, result_dtype
from ._polyphase import Reader, splits
from ._pool_windows import (
    divisors,
    offset_boxes,
    offset_dtype,
    offsets_from_indices,
    to_flat_indices,
    window_boxes,
)
from ._products import row_sums
from .geometry import ConvGeometry
from .profiling import phase
from .workspace import Scratch, Tile, TileBytes, TilePlan, plan_tiles

__all__ = [
    "avg_backward",
    "avg_forward",
    "max_backward",
    "max_forward",
    "offsets_by_recomputing",
    "offsets_from_flat",
    "offsets_from_kept",
]

_EVERY = (slice(None), slice(None))

#: ``offsets_for(tile, out)``: write the winning kernel offset of every window of a tile into ``out``.
OffsetSource = Callable[[Tile, NDArray[Any]], None]


def lowest(dtype: np.dtype[Any]) -> Any:
    """The value no input loses to: ``-inf`` for floats, the minimum for integers, False for bools."""
    if dtype.kind == "b":
        return False
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _tile(array: NDArray[Any], tile: Tile, *, inputs: bool = False) -> NDArray[Any]:
    """The tile's samples, channels and (input or output) positions of ``array``."""
    key: tuple[Any, ...] = (tile.batch, tile.channels, *(tile.input_window if inputs else tile.window))
    part: NDArray[Any] = array[key]
    return part


def _forward_bytes(geometry: ConvGeometry, per_output: int, itemsize: int) -> TileBytes:
    """Temporary bytes of a forward tile: ``per_output`` bytes per output, and its input's phases."""

    def tile_bytes(samples: int, out: tuple[int, ...], channels: int) -> int:
        phases = math.prod(geometry.reach(out)) * itemsize if splits(geometry) else 0
        return samples * channels * (math.prod(out) * per_output + phases)

    return tile_bytes


def _backward_bytes(geometry: ConvGeometry, per_output: int, itemsize: int) -> TileBytes:
    """Temporary bytes of a backward tile: ``per_output`` bytes per output, and its col2im.

    With fewer windows than kernel offsets, col2im adds a kernel-sized block and its mask per window.
    """
    by_window = geometry.output_volume < geometry.kernel_volume

    def tile_bytes(samples: int, out: tuple[int, ...], channels: int) -> int:
        whole = out == geometry.output_size
        scatter = col2im_elements(geometry, channels, samples, out, whole, splits(geometry))
        window = geometry.kernel_volume * (itemsize + 9) if by_window else 0
        return samples * channels * (math.prod(out) * per_output + window) + scatter * itemsize

    return tile_bytes


def _running_max(x: Reader, best: NDArray[Any], geometry: ConvGeometry) -> None:
    """``best`` = the maximum of every window, NaN if it holds one; no offsets kept."""
    best.fill(lowest(best.dtype))
    with phase("reduction"):
        for box in offset_boxes(geometry):
            view = best[_EVERY + box.outputs]
            np.maximum(view, x(box.inputs), out=view)


class _Marks:
    """Scratch for finding winners: 0/1 masks, and codes in the offsets' dtype."""

    def __init__(self, offsets: np.dtype[Any]) -> None:
        self.masks, self.codes = Scratch(np.dtype(bool)), Scratch(offsets)


def _winners(
    x: Reader, best: NDArray[Any], offsets: NDArray[Any], geometry: ConvGeometry, scratch: _Marks
) -> None:
    """Maximum and winning kernel offset of every window, in PyTorch's order.

    The first element equal to the maximum wins (a window of ``-inf`` or the
    integer minimum: its first input); of a NaN maximum, the last NaN; a
    window reading only padding gets -1. Arithmetic, not masked assignment,
    picks the winner (masked copies mispredict a branch per element): ``K - k``
    is kept by a running maximum, so the first match is largest.
    """
    _running_max(x, best, geometry)
    k = geometry.kernel_volume
    small = offsets.dtype.type
    offsets.fill(0)
    with phase("reduction"):
        for box in offset_boxes(geometry):
            top, code = best[_EVERY + box.outputs], offsets[_EVERY + box.outputs]
            equal, hit = scratch.masks.get("equal", top.shape), scratch.codes.get("hit", top.shape)
            np.equal(x(box.inputs), top, out=equal)
            np.multiply(equal, small(k - box.flat), out=hit)
            np.maximum(code, hit, out=code)
        np.subtract(small(k), offsets, out=offsets)
        np.copyto(offsets, -1, where=offsets == k)
        if best.dtype.kind == "f":
            _nan_winners(x, best, offsets, geometry, scratch)


def _nan_winners(
    x: Reader, best: NDArray[Any], offsets: NDArray[Any], geometry: ConvGeometry, scratch: _Marks
) -> None:
    """Point every window whose maximum is NaN at its last NaN (no work without NaN)."""
    undecided = np.isnan(best)
    if not undecided.any():
        return
    last = np.zeros_like(offsets)
    small = offsets.dtype.type
    for box in offset_boxes(geometry):
        shape = last[_EVERY + box.outputs].shape
        nan, hit = scratch.masks.get("equal", shape), scratch.codes.get("hit", shape)
        np.isnan(x(box.inputs), out=nan)
        np.multiply(nan, small(box.flat + 1), out=hit)
        np.maximum(last[_EVERY + box.outputs], hit, out=last[_EVERY + box.outputs])
    np.copyto(offsets, last - 1, where=undecided)


def max_forward(
    x: NDArray[Any], geometry: ConvGeometry, workspace: int, keep: str | None = None
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Max pooling of a batch ``(N, C, *input_size)`` in its own dtype.

    ``keep`` ``"offsets"`` also returns every window's winning kernel offset
    (in `offset_dtype`), ``"indices"`` its flat input-plane index (int64, PyTorch's).
    """
    n, c = (int(size) for size in x.shape[:2])
    y = np.empty((n, c, *geometry.output_size), x.dtype)
    small = offset_dtype(geometry.kernel_volume)
    kept = None if keep is None else np.empty(y.shape, small if keep == "offsets" else np.int64)
    # The winners' search holds offsets, a mask and codes per output; flat indices need int64 more.
    per_output = 0 if keep is None else 3 * small.itemsize + 1 + (24 if keep == "indices" else 0)
    tile_bytes = _forward_bytes(geometry, per_output, x.dtype.itemsize)
    scratch, values, marks = Scratch(small), Scratch(x.dtype), _Marks(small)
    for tile in plan_tiles(n, geometry, tile_bytes, workspace, c):
        x_t, y_t = Reader(_tile(x, tile, inputs=True), tile.geometry, values.get), _tile(y, tile)
        if kept is None:
            _running_max(x_t, y_t, tile.geometry)
            continue
        offsets = _tile(kept, tile) if keep == "offsets" else scratch.get("offsets", y_t.shape)
        _winners(x_t, y_t, offsets, tile.geometry, marks)
        if keep == "indices":
            to_flat_indices(geometry, tile.window, offsets, _tile(kept, tile))
    return y, kept


def _sum_windows(x: NDArray[Any], y: NDArray[Any], geometry: ConvGeometry) -> None:
    """``y`` = the sum of every (undilated) window, one window at a time."""
    spatial = tuple(range(2, 2 + geometry.ndim))
    boxes = window_boxes(geometry)
    one = len(boxes) == 1 and all(box == slice(0, n) for box, n in zip(boxes[0][1], x.shape[2:]))
    with phase("reduction"):
        if x.dtype == y.dtype and y.dtype.kind in "fc" and one:
            # Global pooling: one BLAS matrix-vector product sums every (sample, channel) row.
            y[...] = row_sums(x.reshape(x.shape[0] * x.shape[1], -1)).reshape(y.shape)
            return
        for position, inputs in boxes:
            np.sum(x[_EVERY + inputs], axis=spatial, dtype=y.dtype, out=y[_EVERY + position])


def avg_forward(
    x: NDArray[Any],
    geometry: ConvGeometry,
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: np.dtype[Any],
    workspace: int,
) -> NDArray[Any]:
    """Average pooling of a batch ``(N, C, *input_size)``, summed and divided in ``dtype``."""
    n, c = (int(size) for size in x.shape[:2])
    y = np.empty((n, c, *geometry.output_size), dtype)
    real = dtype.type(0).real.dtype
    values = Scratch(x.dtype)
    tile_bytes = _forward_bytes(geometry, real.itemsize, x.dtype.itemsize)
    by_window = geometry.dilation == (1,) * geometry.ndim and geometry.output_volume < geometry.kernel_volume
    for tile in plan_tiles(n, geometry, tile_bytes, workspace, c):
        y_t = _tile(y, tile)
        divisor = divisors(geometry, count_include_pad, divisor_override, real, tile.window)
        if tile.whole and by_window:
            # Fewer windows than kernel offsets (global pooling): sum window by window.
            _sum_windows(_tile(x, tile, inputs=True), y_t, tile.geometry)
            np.divide(y_t, divisor, out=y_t)
            continue
        x_t = Reader(_tile(x, tile, inputs=True), tile.geometry, values.get)
        y_t.fill(0)
        with phase("reduction"):
            for box in offset_boxes(tile.geometry):
                view = y_t[_EVERY + box.outputs]
                np.add(view, x_t(box.inputs), out=view)
            np.divide(y_t, divisor, out=y_t)
    return y


def _add(grad_x: NDArray[Any], blocks: Blocks, tile: Tile, scratch: Scratch, grid: tuple[int, ...]) -> None:
    """col2im of a tile's row blocks into its channels of ``grad_x``."""
    add_tile(grad_x[:, tile.channels], blocks, tile, scratch.get, grid=grid, split=splits(tile.geometry))


def _backward_plan(
    shape: tuple[int, ...], geometry: ConvGeometry, per_output: int, dtype: np.dtype[Any], workspace: int
) -> tuple[TilePlan, NDArray[Any]]:
    """The tiles of a backward call and its gradient ``shape`` ``(N, C, *input_size)``."""
    tile_bytes = _backward_bytes(geometry, per_output, dtype.itemsize)
    tiles = plan_tiles(shape[0], geometry, tile_bytes, workspace, shape[1])
    # Whole-sample tiles overwrite every entry; cut samples add their overlapping bands.
    return tiles, (np.empty if tiles.whole else np.zeros)(shape, dtype)


def _broadcast_windows(spread: NDArray[Any], ndim: int) -> Blocks:
    """Row blocks that are all ``spread`` ``(nb, C, *grid)``: average pooling's."""
    kernel_axes = (np.newaxis,) * ndim

    def by_window(position: tuple[int, ...]) -> NDArray[Any]:
        key: tuple[Any, ...] = (Ellipsis, *position, *kernel_axes)
        block: NDArray[Any] = spread[key]
        return block

    return Blocks(lambda index, offset: spread, by_window)


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
    real = dtype.type(0).real.dtype
    tiles, grad_x = _backward_plan(input_shape, geometry, dtype.itemsize + real.itemsize, dtype, workspace)
    scratch = Scratch(dtype)
    for tile in tiles:
        g_t = _tile(grad_output, tile)
        spread = scratch.get("block", g_t.shape)
        np.divide(g_t, divisors(geometry, count_include_pad, divisor_override, real, tile.window), out=spread)
        _add(grad_x, _broadcast_windows(spread, geometry.ndim), tile, scratch, geometry.output_size)
    return grad_x


def offsets_by_recomputing(x: NDArray[Any], geometry: ConvGeometry) -> OffsetSource:
    """Winning offsets of a tile found again from the input."""
    values, marks = Scratch(x.dtype), _Marks(offset_dtype(geometry.kernel_volume))

    def write(tile: Tile, out: NDArray[Any]) -> None:
        best = values.get("best", out.shape)
        reader = Reader(_tile(x, tile, inputs=True), tile.geometry, values.get)
        _winners(reader, best, out, tile.geometry, marks)

    return write


def offsets_from_kept(kept: NDArray[Any]) -> OffsetSource:
    """Winning offsets of a tile read from those `max_forward` kept."""

    def write(tile: Tile, out: NDArray[Any]) -> None:
        np.copyto(out, _tile(kept, tile))

    return write


def offsets_from_flat(indices: NDArray[Any], geometry: ConvGeometry) -> OffsetSource:
    """Winning offsets of a tile decoded from PyTorch-style flat indices."""

    def write(tile: Tile, out: NDArray[Any]) -> None:
        offsets_from_indices(geometry, tile.window, _tile(indices, tile), out)

    return write


def _winner_blocks(
    g: NDArray[Any], offsets: NDArray[Any], kernel_size: tuple[int, ...], scratch: Scratch, masks: Scratch
) -> Blocks:
    """Row block ``k``: ``g`` where offset ``k`` won, else 0; or one window's block.

    A finite gradient is multiplied by the 0/1 mask (branch-free); one holding
    ``inf`` or NaN is copied where the mask is set (``inf * 0`` would be NaN).
    """
    finite = g.dtype.kind in "biu" or bool(np.isfinite(g).all())
    hits, spread = masks.get("hits", g.shape), scratch.get("block", g.shape)
    every_offset = np.arange(math.prod(kernel_size), dtype=offsets.dtype)

    def by_offset(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
        np.equal(offsets, index, out=hits)
        if finite:
            np.multiply(g, hits, out=spread)
        else:
            spread.fill(0)
            np.copyto(spread, g, where=hits)
        return spread

    def by_window(position: tuple[int, ...]) -> NDArray[Any]:
        at: tuple[Any, ...] = (Ellipsis, *position)
        won = masks.get("won", (*g.shape[:2], every_offset.size))
        np.equal(offsets[at][..., np.newaxis], every_offset, out=won)
        window = scratch.get("window", won.shape)
        window.fill(0)
        np.copyto(window, g[at][..., np.newaxis], where=won)
        return window.reshape(*g.shape[:2], *kernel_size)

    return Blocks(by_offset, by_window)


def max_backward(
    grad_output: NDArray[Any],
    input_shape: tuple[int, ...],
    geometry: ConvGeometry,
    offsets_for: OffsetSource,
    workspace: int,
    *,
    extra_bytes: int = 0,
) -> NDArray[Any]:
    """Input gradient of max pooling: row block ``k`` is ``grad_output`` where offset ``k`` won.

    Integer and bool gradients are summed exactly in 64 bits (`result_dtype`);
    ``extra_bytes`` is what ``offsets_for`` needs per output.

    Raises
    ------
    OverflowError
        If an integer sum could exceed its 64-bit type.
    """
    dtype = grad_output.dtype
    if dtype.kind in "biu":
        dtype = result_dtype(dtype)
        # A position wins at most one window per kernel offset, and at most every window.
        terms = min(geometry.kernel_volume, geometry.output_volume)
        compute_dtype(dtype, max_abs(grad_output) * terms, f"a position may win {terms} windows")
    small = offset_dtype(geometry.kernel_volume)
    per_output = grad_output.dtype.itemsize + dtype.itemsize + small.itemsize + 1 + extra_bytes
    tiles, grad_x = _backward_plan(input_shape, geometry, per_output, dtype, workspace)
    scratch, offset_scratch, masks = Scratch(dtype), Scratch(small), Scratch(np.dtype(bool))
    for tile in tiles:
        g_t = _tile(grad_output, tile)
        if g_t.dtype != dtype:
            cast = scratch.get("gradient", g_t.shape)
            np.copyto(cast, g_t)
            g_t = cast
        offsets = offset_scratch.get("offsets", g_t.shape)
        offsets_for(tile, offsets)
        blocks = _winner_blocks(g_t, offsets, geometry.kernel_size, scratch, masks)
        _add(grad_x, blocks, tile, scratch, geometry.output_size)
    return grad_x
