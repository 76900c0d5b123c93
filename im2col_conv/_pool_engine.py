"""The tiled loops of max and average pooling.

Pooling reduces the column matrix over its kernel rows instead of
multiplying it by a weight: the maximum of each column for max pooling,
the sum divided by the window's divisor for average pooling. Row block
``k`` of the column matrix (kernel offset ``k``) is a strided slice of the
input, so the forward pass folds the rows in one slice at a time into the
output (`offset_boxes` says where each
reads), and never copies the column matrix or pads the input.

The backward pass is the transposed map: build the gradient of each row
block (for max pooling the output gradient where that offset won, else 0;
for average pooling the output gradient over the divisor, the same for
every row) and add it back onto the input with the convolution's col2im,
`scatter_blocks`, one offset at a time.

Work is cut into tiles by [`plan_tiles`][im2col_conv.workspace.plan_tiles], as for
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
from ._polyphase import Reader, scatter_by_phase, splits
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
from .workspace import Scratch, Tile, TilePlan, plan_tiles

__all__ = ["avg_backward", "avg_forward", "lowest", "max_backward", "max_forward"]

_EVERY = (slice(None), slice(None))

#: ``offsets_for(tile, out)``: write the winning kernel offset of every window of a tile into ``out``.
OffsetSource = Callable[[Tile, NDArray[Any]], None]

#: ``block(index, offset)``: the gradient of one row block of the column matrix, as for ``scatter_blocks``.
Block = Callable[[int, tuple[int, ...]], NDArray[Any]]


def lowest(dtype: np.dtype[Any]) -> Any:
    """The value no input loses to: ``-inf`` for floats, the minimum for integers, False for bools."""
    if dtype.kind == "b":
        return False
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _tile(array: NDArray[Any], tile: Tile, *, inputs: bool = False) -> NDArray[Any]:
    return array[tile.batch][_EVERY + (tile.input_window if inputs else tile.window)]


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

    The winner is the first element (in window order) equal to the
    maximum: ties go to the first, and a window of ``-inf`` (or of the
    integer minimum) to its first input. Where the maximum is NaN, the last
    NaN wins. Windows that read only padding get -1.

    Arithmetic, not masked assignment, picks the winner (masked copies
    mispredict a branch per element): offsets are visited in order and
    ``K - k`` is kept by a running maximum, so the first match is largest.
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

    Parameters
    ----------
    keep : {None, "offsets", "indices"}
        Also return the winning kernel offset of every window (the smallest
        signed dtype that holds them), or the flat input-plane index of the
        winner (int64, PyTorch's ``indices``).
    """
    n, c = (int(size) for size in x.shape[:2])
    y = np.empty((n, c, *geometry.output_size), x.dtype)
    small = offset_dtype(geometry.kernel_volume)
    kept = None if keep is None else np.empty(y.shape, small if keep == "offsets" else np.int64)
    per_output = int(x.dtype.itemsize) + (0 if keep is None else int(small.itemsize) + 3)
    scratch, values, marks = Scratch(small), Scratch(x.dtype), _Marks(small)

    def tile_bytes(samples: int, out: tuple[int, ...]) -> int:
        return samples * c * math.prod(out) * per_output + _input_bytes(c, geometry, samples, out, x.dtype)

    for tile in plan_tiles(n, geometry, tile_bytes, workspace):
        x_t, y_t = Reader(_tile(x, tile, inputs=True), tile.geometry, values.get), _tile(y, tile)
        if kept is None:
            _running_max(x_t, y_t, tile.geometry)
            continue
        offsets = _tile(kept, tile) if keep == "offsets" else scratch.get("offsets", y_t.shape)
        _winners(x_t, y_t, offsets, tile.geometry, marks)
        if keep == "indices":
            to_flat_indices(geometry, tile.window, offsets, _tile(kept, tile))
    return y, kept


def _by_window(tile: Tile) -> bool:
    """Loop over windows rather than kernel offsets: fewer windows than offsets (global pooling)."""
    return tile.whole and tile.geometry.output_volume < tile.geometry.kernel_volume


def _single_box(
    boxes: list[tuple[tuple[int, ...], tuple[slice, ...]]], spatial: tuple[int, ...]
) -> tuple[int, ...] | None:
    """The one window's output position when one window reads the whole input, else None."""
    if len(boxes) != 1:
        return None
    position, inputs = boxes[0]
    whole = all(box == slice(0, n) for box, n in zip(inputs, spatial))
    return position if whole else None


def _sum_windows(x: NDArray[Any], y: NDArray[Any], geometry: ConvGeometry) -> None:
    """``y`` = the sum of every (undilated) window, one window at a time."""
    spatial = tuple(range(2, 2 + geometry.ndim))
    boxes = window_boxes(geometry)
    with phase("reduction"):
        if x.dtype == y.dtype and y.dtype.kind in "fc" and _single_box(boxes, x.shape[2:]) is not None:
            # Global pooling: one BLAS matrix-vector product sums every (sample, channel) row.
            y[...] = row_sums(x.reshape(x.shape[0] * x.shape[1], -1)).reshape(y.shape)
            return
        for position, inputs in boxes:
            np.sum(x[_EVERY + inputs], axis=spatial, dtype=y.dtype, out=y[_EVERY + position])


def _spread_windows(g: NDArray[Any], grad_x: NDArray[Any], geometry: ConvGeometry) -> None:
    """col2im a window at a time: every window's gradient added over the input box it read."""
    broadcast = (np.newaxis,) * geometry.ndim
    boxes = window_boxes(geometry)
    whole = _single_box(boxes, grad_x.shape[2:])
    with phase("col2im"):
        if whole is not None:
            # One window reads every position once: its gradient is written, with no zeros to add to.
            np.copyto(grad_x, g[_EVERY + whole + broadcast])
            return
        grad_x.fill(0)
        for position, inputs in boxes:
            grad_x[_EVERY + inputs] += g[_EVERY + position + broadcast]


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
    divisor = divisors(geometry, count_include_pad, divisor_override, dtype.type(0).real.dtype)
    values = Scratch(x.dtype)

    def tile_bytes(samples: int, out: tuple[int, ...]) -> int:
        return samples * c * math.prod(out) * int(dtype.itemsize) + _input_bytes(
            c, geometry, samples, out, x.dtype
        )

    for tile in plan_tiles(n, geometry, tile_bytes, workspace):
        if _by_window(tile):
            _sum_windows(_tile(x, tile, inputs=True), _tile(y, tile), tile.geometry)
            np.divide(_tile(y, tile), divisor[tile.window], out=_tile(y, tile))
            continue
        x_t, y_t = Reader(_tile(x, tile, inputs=True), tile.geometry, values.get), _tile(y, tile)
        y_t.fill(0)
        with phase("reduction"):
            for box in offset_boxes(tile.geometry):
                view = y_t[_EVERY + box.outputs]
                np.add(view, x_t(box.inputs), out=view)
            np.divide(y_t, divisor[tile.window], out=y_t)
    return y


def _read(geometry: ConvGeometry, out: tuple[int, ...]) -> int:
    """Padded input positions a tile of output grid ``out`` reads."""
    return math.prod((o - 1) * s + e for o, s, e in zip(out, geometry.stride, geometry.kernel_extent))


def _input_bytes(
    c: int, geometry: ConvGeometry, samples: int, out: tuple[int, ...], dtype: np.dtype[Any]
) -> int:
    """Bytes of a tile's input split into phases (`Reader`)."""
    return samples * c * _read(geometry, out) * dtype.itemsize if splits(geometry) else 0


def _scatter_bytes(c: int, geometry: ConvGeometry, samples: int, out: tuple[int, ...], itemsize: int) -> int:
    """Bytes of a tile's col2im buffer, its phases and a band's gradient."""
    whole = math.prod(geometry.input_size) if out == geometry.output_size else 0
    return 3 * samples * c * max(_read(geometry, out), whole) * itemsize


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
    if splits(tile.geometry):
        scatter_by_phase(scatter_blocks, block, target, tile.geometry, scratch.get)
    else:
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


def _winner_blocks(
    g: NDArray[Any], offsets: NDArray[Any], hits: NDArray[Any], spread: NDArray[Any], finite: bool
) -> Block:
    """Row block ``k``: ``g`` where offset ``k`` won, else 0, written into ``spread``.

    A finite gradient is multiplied by the 0/1 mask (branch-free); one
    holding ``inf`` or NaN is copied where the mask is set, so that it
    reaches its winner only (``inf * 0`` would be NaN).
    """

    def block(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
        np.equal(offsets, index, out=hits)
        if finite:
            np.multiply(g, hits, out=spread)
        else:
            spread.fill(0)
            np.copyto(spread, g, where=hits)
        return spread

    return block


def _gradient(shape: tuple[int, ...], dtype: np.dtype[Any], tiles: TilePlan) -> NDArray[Any]:
    # Whole-sample tiles overwrite every entry; cut samples add their overlapping bands.
    return (np.empty if tiles.whole else np.zeros)(shape, dtype)


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
        if _by_window(tile):
            _spread_windows(spread, grad_x[tile.batch], tile.geometry)
        else:
            _scatter_tile(grad_x, _same_block(spread), tile, scratch)
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
        finite = dtype.kind in "iu" or bool(np.isfinite(g_t).all())
        _scatter_tile(grad_x, _winner_blocks(g_t, offsets, hits, spread, finite), tile, scratch)
    return grad_x
