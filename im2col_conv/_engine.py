"""The chunked im2col + GEMM engine behind conv, conv_backward and conv_transpose.

The public functions validate their arguments and hand plain arrays and a
:class:`~im2col_conv.geometry.ConvGeometry` to the three loops here.

Layout. Within a chunk of ``nb`` samples the columns are stored as
``(groups, C_in/groups * prod(kernel), nb * L)``: the batch sits inside the
column index. Each of the three products (forward, weight gradient, column
gradient) is then one matrix product per group over the whole chunk, instead
of ``nb`` small ones, and the weight gradient needs no per-sample sum. The
price is one transpose of the (small) output chunk at the boundary.

Memory. Work is cut into tiles by :func:`~im2col_conv.workspace.plan_tiles`:
groups of whole samples, or, for a sample too large on its own, bands of
output rows along the first spatial axis. A band is itself a convolution, of
the input rows it reads with the padding that falls inside it
(:func:`_band`). Buffers are allocated once per call and reused, so the
temporaries of a call stay within the workspace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .geometry import ConvGeometry
from .lowering import lower, scatter_blocks
from .workspace import batch_chunks, plan_tiles

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
        self._layouts: dict[str, object] = {}

    def get(self, name: str, shape: tuple[int, ...], *, zeroed_for: object = None) -> NDArray[Any]:
        """A ``shape`` view of buffer ``name``.

        With ``zeroed_for`` the view is all zeros whenever ``(shape, zeroed_for)``
        differs from the previous request: zeros that the caller never
        overwrites (the border of a padded input, whose layout ``zeroed_for``
        names) then stay zero from one tile to the next without refilling.
        """
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        fresh = buffer is None or buffer.size < size
        if buffer is None or fresh:
            buffer = self._buffers[name] = np.empty(size, self.dtype)
        view = buffer[:size].reshape(shape)
        if zeroed_for is not None and (fresh or self._layouts.get(name) != (shape, zeroed_for)):
            view.fill(0)
            self._layouts[name] = (shape, zeroed_for)
        return view


def _is_pointwise(geometry: ConvGeometry) -> bool:
    """True when im2col is the identity: a 1x1 kernel, stride 1, no padding."""
    return geometry.kernel_volume == 1 and set(geometry.stride) == {1} and not any(map(any, geometry.padding))


class _Tile(NamedTuple):
    """Samples ``batch`` and output rows ``rows`` (first spatial axis) of a call."""

    batch: slice
    rows: slice
    whole: bool  # every output row: the tile's geometry is the call's
    input_rows: slice  # unpadded input rows the tile reads
    geometry: ConvGeometry  # the tile as a convolution of those rows


def _band(geometry: ConvGeometry, rows: slice) -> tuple[slice, ConvGeometry]:
    """The input rows that output rows ``rows`` read, and their geometry.

    In padded coordinates the band reads rows ``[rows.start * s, (rows.stop - 1) * s + e)``
    (``e`` the dilated kernel extent); whatever of that lies in the padding
    becomes the band's own padding.
    """
    stride, extent = geometry.stride[0], geometry.kernel_extent[0]
    before, size = geometry.padding[0][0], geometry.input_size[0]
    start, stop = rows.start * stride, (rows.stop - 1) * stride + extent
    low = min(max(start - before, 0), size)
    high = max(min(stop - before, size), low)
    pad_before = min(max(before - start, 0), stop - start)
    pad_after = (stop - start) - pad_before - (high - low)
    band = ConvGeometry(
        (high - low, *geometry.input_size[1:]),
        geometry.kernel_size,
        geometry.stride,
        ((pad_before, pad_after), *geometry.padding[1:]),
        geometry.dilation,
    )
    return slice(low, high), band


def _tiles(
    n: int,
    geometry: ConvGeometry,
    tile_bytes: Callable[[int, int], int],
    workspace: int,
    *,
    bands: bool = True,
) -> list[_Tile]:
    rows = geometry.output_size[0]
    tiles = []
    for batch, band_rows in plan_tiles(n, rows, tile_bytes, workspace, bands=bands):
        if band_rows == slice(0, rows):
            tiles.append(_Tile(batch, band_rows, True, slice(0, geometry.input_size[0]), geometry))
        else:
            tiles.append(_Tile(batch, band_rows, False, *_band(geometry, band_rows)))
    return tiles


def _row_elements(geometry: ConvGeometry) -> tuple[int, int]:
    """Elements per output row and per padded input row (a row: fixed first spatial index)."""
    return math.prod(geometry.output_size[1:]), math.prod(geometry.padded_size[1:])


def _band_input_rows(geometry: ConvGeometry, rows: int) -> int:
    """Padded input rows read by ``rows`` consecutive output rows."""
    return (rows - 1) * geometry.stride[0] + geometry.kernel_extent[0]


def _chunk_columns(
    x: NDArray[Any], geometry: ConvGeometry, groups: int, dtype: np.dtype[Any], scratch: _Scratch | None
) -> NDArray[Any]:
    """Columns of a tile ``x`` of shape ``(nb, C, *spatial)`` as ``(g, C/g * K, nb * L)``."""
    nb, c = x.shape[:2]
    shape = (groups, c // groups * geometry.kernel_volume, nb * geometry.output_volume)
    if nb == 1 and _is_pointwise(geometry):
        return x.astype(dtype, copy=False).reshape(shape)  # im2col is the identity here: no copy
    if scratch is None:
        return lower(x, geometry, dtype=dtype, batch_inner=True).reshape(shape)
    out = scratch.get("columns", (c, *geometry.kernel_size, nb, *geometry.output_size))
    padded = None
    if any(map(any, geometry.padding)):
        padded = scratch.get("padded", (nb, c, *geometry.padded_size), zeroed_for=geometry.padding)
    return lower(x, geometry, out=out, dtype=dtype, batch_inner=True, padded=padded).reshape(shape)


def _lowering_bytes(c_in: int, geometry: ConvGeometry, samples: int, rows: int) -> int:
    """Elements a tile's lowering needs: its columns and its padded input."""
    out_row, padded_row = _row_elements(geometry)
    padded = c_in * _band_input_rows(geometry, rows) * padded_row if any(map(any, geometry.padding)) else 0
    return samples * (c_in * geometry.kernel_volume * rows * out_row + padded)


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
    """``y = W @ cols`` tile by tile.

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
    scratch = _Scratch(dtype)
    out_row = _row_elements(geometry)[0]
    if keep_columns:
        cols = _chunk_columns(x, geometry, groups, dtype, None)
        if cols.base is not None and np.shares_memory(cols, x):
            cols = cols.copy()  # the caller may change x before backward
        tiles = [_Tile(slice(0, n), slice(0, geometry.output_size[0]), True, slice(None), geometry)]
    else:

        def tile_bytes(samples: int, rows: int) -> int:
            product = samples * c_out * rows * out_row
            return int(dtype.itemsize * (_lowering_bytes(c_in, geometry, samples, rows) + product))

        tiles = _tiles(n, geometry, tile_bytes, workspace)
    for tile in tiles:
        nb = tile.batch.stop - tile.batch.start
        if not keep_columns:
            x_tile = x[tile.batch] if tile.whole else x[tile.batch, :, tile.input_rows]
            cols = _chunk_columns(x_tile, tile.geometry, groups, dtype, scratch)
        band_length = tile.geometry.output_volume
        if nb == 1:
            # One sample's band of rows is contiguous within each channel: write in place.
            band = slice(tile.rows.start * out_row, tile.rows.stop * out_row)
            np.matmul(w, cols, out=y[tile.batch.start].reshape(groups, c_out // groups, length)[:, :, band])
            continue
        product = scratch.get("product", (groups, c_out // groups, nb * band_length))
        np.matmul(w, cols, out=product)
        target = y[tile.batch].reshape(nb, c_out, geometry.output_size[0], out_row)[:, :, tile.rows]
        np.copyto(target, product.reshape(c_out, nb, *target.shape[2:]).swapaxes(0, 1))
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
    """``col2im(W^T @ delta)`` tile by tile; also the transposed convolution.

    Parameters
    ----------
    delta : ndarray, shape (N, C_out, *grid_size)
        Any dtype; cast tile by tile.
    weight : ndarray, shape (C_out, C_in/groups, *kernel), of ``dtype``
    geometry : ConvGeometry
        The forward convolution whose input gradient this is.
    grid_size, target_size : tuple of int, optional
        Window grid and result size, when they differ from the geometry's
        output and input sizes (a transposed convolution's ``output_padding``);
        the work is then cut into whole samples only.

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
    """Input and weight gradients, tile by tile.

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
    delta = delta.reshape(n, groups, c_out // groups, length)
    if _is_pointwise(geometry) and tuple(grid) == tuple(target):
        # x is its own column matrix here, so kept columns have nothing to save.
        grad_x, grad_w = _pointwise_backward(delta, x, w, dtype, workspace)
        return grad_x.reshape(n, c_in, *target), grad_w

    fused = c_in // groups >= FUSED_MIN_CHANNELS
    if fused:
        # (K, g, C_in/g, C_out/g): the transposed weight of each kernel offset. Stored
        # as (K, g, C_out/g, C_in/g), whose copy reads the weight nearly in order, and
        # handed to BLAS transposed.
        w_offsets = np.ascontiguousarray(
            weight.reshape(groups, c_out // groups, c_in // groups, volume).transpose(3, 0, 1, 2)
        ).swapaxes(2, 3)
    reshaped = grid_size is not None or target_size is not None
    out_row = math.prod(grid[1:])
    in_row = math.prod(max(p, t) for p, t in zip(geometry.padded_size[1:], target[1:]))

    def tile_bytes(samples: int, rows: int) -> int:
        read_rows = max(_band_input_rows(geometry, rows), target[0] if reshaped else 0)
        elements = samples * (
            (c_in if fused else c_in * volume) * rows * out_row  # column gradient
            + c_out * rows * out_row  # delta, batch-inner
            + 2 * c_in * read_rows * in_row  # scatter buffer, and a band's gradient
        )
        if x is not None and columns is None:
            elements += _lowering_bytes(c_in, geometry, samples, rows)
        return int(dtype.itemsize * elements)

    scratch = _Scratch(dtype)
    grad_w = np.zeros(w.shape, dtype) if x is not None else None
    tiles = _tiles(n, geometry, tile_bytes, workspace, bands=not reshaped)
    whole = all(tile.whole for tile in tiles)
    grad_x = (np.empty if whole else np.zeros)((n, c_in, *target), dtype)
    for tile in tiles:
        nb = tile.batch.stop - tile.batch.start
        tile_grid = grid if tile.whole else tile.geometry.output_size
        band_length = math.prod(tile_grid)
        rows_delta = delta[tile.batch].reshape(nb, c_out, grid[0], out_row)[:, :, tile.rows]
        if nb == 1:
            delta_t = rows_delta[0].reshape(groups, c_out // groups, band_length).astype(dtype, copy=False)
        else:
            delta_t = scratch.get("delta", (groups, c_out // groups, nb * band_length))
            np.copyto(delta_t.reshape(c_out, nb, *rows_delta.shape[2:]), rows_delta.swapaxes(0, 1))
        if grad_w is not None:
            if columns is not None:
                start = tile.batch.start * length + tile.rows.start * out_row
                cols = columns[:, :, start : start + nb * band_length]
            else:
                assert x is not None
                x_tile = x[tile.batch] if tile.whole else x[tile.batch, :, tile.input_rows]
                cols = _chunk_columns(x_tile, tile.geometry, groups, dtype, scratch)
            grad_w += np.matmul(delta_t, cols.swapaxes(1, 2))
        if fused:
            products = scratch.get("grad_columns", (groups, c_in // groups, nb * band_length))
            block = _offset_products(w_offsets, delta_t, products, tile_grid)
        else:
            grad_cols = scratch.get("grad_columns", (groups, c_in // groups * volume, nb * band_length))
            np.matmul(w.swapaxes(1, 2), delta_t, out=grad_cols)
            # (C_in, K, nb, *grid) viewed batch-first for the scatter-add.
            block = _stored_blocks(np.moveaxis(grad_cols.reshape(c_in, volume, nb, *tile_grid), 2, 0))

        def allocate(shape: tuple[int, ...]) -> NDArray[Any]:
            return scratch.get("scatter", shape)

        if tile.whole:
            scatter_blocks(
                block,
                (nb, c_in),
                dtype,
                geometry,
                grid_size=grid,
                target_size=target,
                out=grad_x[tile.batch],
                allocate=allocate,
            )
        else:
            # Bands overlap where windows do: add each band's gradient to the rows it read.
            band = scatter_blocks(
                block,
                (nb, c_in),
                dtype,
                tile.geometry,
                out=scratch.get("band", (nb, c_in, *tile.geometry.input_size)),
                allocate=allocate,
            )
            grad_x[tile.batch, :, tile.input_rows] += band
    return grad_x, grad_w
