"""The tiled im2col + GEMM engine behind conv, conv_backward and conv_transpose.

The public functions check their arguments and hand plain arrays to an
`Engine`, which holds what every loop of one call shares: geometry, groups,
dtype, workspace and scratch buffers.

Layout. A tile of ``nb`` samples has columns ``(groups, C_in/groups * K, nb * L)``:
the batch sits inside the column index, so each product is one matrix product
per group per tile and the weight gradient needs no per-sample sum.

Memory. `plan_tiles` cuts the work into groups of whole samples, a sample
too large into windows of output rows (themselves convolutions,
`ConvGeometry.band`), a position too large into blocks of input channels. A
tile's bytes come from one function per pass (`Engine._forward_bytes`,
`Engine._backward_bytes`), built from the lowering's and col2im's own counts.

Paths. Forward: a 1x1 convolution multiplies the input itself (`_pointwise`);
otherwise a sample's band is multiplied in place, or one sample at a time
while each product is small, else in one tile-wide product
(`Tuning.per_sample_max_product`). Input gradient: `_pointwise`, or the
column gradient in one tall product, or one kernel offset at a time while in
cache ("fused", `Tuning.fused_min_channels`), added by the one col2im.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _pointwise, tuning
from ._col2im import Blocks, add_tile, array_blocks, col2im_elements
from ._lowering import lower, lowering_elements
from ._products import matmul as _matmul
from .geometry import ConvGeometry
from .workspace import Scratch, Tile, TileBytes, plan_tiles

__all__ = ["Engine"]

_EVERY = (slice(None), slice(None))


class Engine:
    """The loops of one call.

    Parameters
    ----------
    geometry : ConvGeometry
        The convolution (for a transposed convolution, the one whose input
        gradient it is).
    groups : int
    dtype : numpy.dtype
        dtype of every product and result.
    workspace : int
        Bound in bytes on the call's temporaries.
    grid_size : tuple of int, optional
        The window grid, when smaller than ``geometry.output_size`` (a transposed
        convolution whose ``output_padding`` reaches a new window's start).
    """

    def __init__(
        self,
        geometry: ConvGeometry,
        groups: int,
        dtype: np.dtype[Any],
        workspace: int,
        *,
        grid_size: tuple[int, ...] | None = None,
    ) -> None:
        self.geometry, self.groups, self.dtype, self.workspace = geometry, groups, dtype, workspace
        self.grid = geometry.output_size if grid_size is None else grid_size
        self.scratch = Scratch(dtype)

    # -- shared pieces -----------------------------------------------------------------------------

    def _by_group(self, array: NDArray[Any]) -> NDArray[Any]:
        """``(N, C, *spatial)`` viewed as ``(N, groups, C/groups, *spatial)``."""
        n, c = array.shape[:2]
        return array.reshape(n, self.groups, c // self.groups, *array.shape[2:])

    def columns(
        self, x: NDArray[Any], geometry: ConvGeometry, channels: slice, *, reuse: bool = True
    ) -> NDArray[Any]:
        """Columns ``(g, channels * K, nb * L)`` of channels ``channels`` (per group) of ``x``."""
        grouped = self._by_group(x)[:, :, channels]
        nb, g, c = grouped.shape[:3]
        shape = (g, c * geometry.kernel_volume, nb * geometry.output_volume)
        if nb == 1 and geometry.is_pointwise:
            return grouped.astype(self.dtype, copy=False).reshape(shape)  # im2col is the identity
        if not reuse:
            return lower(grouped, geometry, dtype=self.dtype, batch_inner=True).reshape(shape)
        out = self.scratch.get("columns", (g, c, *geometry.kernel_size, nb, *geometry.output_size))
        padded = None
        if geometry.has_padding:
            size = (nb, g, c, *geometry.padded_size)
            padded = self.scratch.get("padded", size, zeroed_for=geometry.padding)
        cols = lower(grouped, geometry, out=out, dtype=self.dtype, batch_inner=True, padded=padded)
        return cols.reshape(shape)

    def _tile_columns(self, x: NDArray[Any], tile: Tile) -> NDArray[Any]:
        return self.columns(x[tile.batch][_EVERY + tile.input_window], tile.geometry, tile.channels)

    def _channel_block(self, w: NDArray[Any], tile: Tile) -> NDArray[Any]:
        """A ``(g, C_out/g, C_in/g * K)`` weight (or its gradient) at the tile's input channels."""
        if tile.all_channels:
            return w
        g, c_out_g = w.shape[:2]
        return w.reshape(g, c_out_g, -1, self.geometry.kernel_volume)[:, :, tile.channels].reshape(
            g, c_out_g, -1
        )

    def _bytes(self, elements: int) -> int:
        return int(self.dtype.itemsize * elements)

    # -- forward -----------------------------------------------------------------------------------

    def _forward_bytes(self, c_out: int) -> TileBytes:
        """Temporary bytes of a forward tile: its lowering and its product."""

        def tile_bytes(samples: int, out: tuple[int, ...], channels: int) -> int:
            lowering = lowering_elements(self.geometry, self.groups * channels, samples, out)
            return self._bytes(lowering + samples * c_out * math.prod(out))

        return tile_bytes

    def forward(
        self, x: NDArray[Any], weight: NDArray[Any], *, keep_columns: bool = False
    ) -> tuple[NDArray[Any], NDArray[Any] | None]:
        """``y = W @ cols`` tile by tile, and with ``keep_columns`` the whole batch's columns.

        ``x`` ``(N, C_in, *spatial)`` of any dtype (cast while lowered), ``weight``
        ``(C_out, C_in/groups, *kernel)``; returns ``y`` ``(N, C_out, *output_size)``
        and the columns ``(groups, C_in/groups * K, N * L)`` or None.
        """
        geometry, g = self.geometry, self.groups
        n, c_in = x.shape[:2]
        c_out = weight.shape[0]
        w = weight.reshape(g, c_out // g, -1)
        if geometry.is_pointwise and not keep_columns:
            return _pointwise.forward(x, w, self.dtype, self.workspace), None
        y = np.empty((n, c_out, *geometry.output_size), self.dtype)
        if keep_columns:
            cols = self.columns(x, geometry, slice(None), reuse=False)
            if cols.base is not None and np.shares_memory(cols, x):
                cols = cols.copy()  # the caller may change x before backward
            self._forward_tile(y, w, cols, Tile(slice(0, n), (), (), geometry, slice(None), True))
            return y, cols
        for tile in plan_tiles(n, geometry, self._forward_bytes(c_out), self.workspace, c_in // g):
            self._forward_tile(y, self._channel_block(w, tile), self._tile_columns(x, tile), tile)
        return y, None

    def _forward_tile(self, y: NDArray[Any], w: NDArray[Any], cols: NDArray[Any], tile: Tile) -> None:
        g, c_out = self.groups, y.shape[1]
        nb = tile.batch.stop - tile.batch.start
        tile_out = tile.geometry.output_size
        length = math.prod(tile_out)
        if tile.all_channels and nb == 1 and len(tile.window) <= 1:
            # One sample's band along the first axis is contiguous in each channel: write in place.
            row = math.prod(tile_out[1:])
            rows = tile.window[0] if tile.window else slice(0, tile_out[0])
            flat = y[tile.batch.start].reshape(g, c_out // g, -1)
            _matmul(w, cols, out=flat[:, :, rows.start * row : rows.stop * row])
            return
        small = w[0].size * length <= tuning.current().per_sample_max_product
        if tile.all_channels and not tile.window and small:
            # One product per sample, each written where it belongs: no transposing copy.
            per_sample = cols.reshape(g, w.shape[2], nb, length).transpose(0, 2, 1, 3)
            y_t = y[tile.batch].reshape(nb, g, c_out // g, length).transpose(1, 0, 2, 3)
            _matmul(w[:, None], per_sample, out=y_t)
            return
        product = self.scratch.get("product", (g, c_out // g, nb * length))
        _matmul(w, cols, out=product)
        target = y[tile.batch][_EVERY + tile.window]
        result = product.reshape(c_out, nb, *tile_out).swapaxes(0, 1)
        if tile.channels.start:
            target += result  # a later block of input channels adds to the sums of the first
        else:
            np.copyto(target, result)

    # -- backward ----------------------------------------------------------------------------------

    def input_gradient(self, delta: NDArray[Any], weight: NDArray[Any]) -> NDArray[Any]:
        """``col2im(W^T @ delta)`` ``(N, C_in, *input_size)`` of ``delta`` ``(N, C_out, *grid)``.

        Also the transposed convolution; ``delta`` of any dtype, cast tile by tile.
        """
        return self._backward(delta, None, weight, None, False)[0]

    def backward(
        self,
        delta: NDArray[Any],
        x: NDArray[Any],
        weight: NDArray[Any],
        columns: NDArray[Any] | None = None,
        *,
        conjugate: bool = False,
    ) -> tuple[NDArray[Any], NDArray[Any]]:
        """Input gradient ``(N, C_in, *spatial)`` and weight gradient ``(g, C_out/g, C_in/g * K)``.

        ``columns`` are kept columns of ``x``. With ``conjugate``,
        ``col2im(conj(W)^T @ delta)`` and ``delta @ conj(cols)^T`` (PyTorch's
        convention for complex operands), as the conjugates of the products with
        ``conj(delta)``, conjugated tile by tile: no copy of ``x`` or ``W``.
        """
        grad_x, grad_w = self._backward(delta, x, weight, columns, conjugate)
        assert grad_w is not None
        return grad_x, grad_w

    def _backward_bytes(
        self, batch: int, weight: NDArray[Any], fused: bool, weights: bool, lowers: bool
    ) -> TileBytes:
        """Temporary bytes of a backward tile.

        Its output gradient, column gradient and col2im (and fused, the weight by
        offset); with ``weights`` the weight gradient's product, unless one tile
        holds the whole call, with ``lowers`` the lowering too.
        """
        geometry, g, grid = self.geometry, self.groups, self.grid
        volume, c_out = geometry.kernel_volume, weight.shape[0]
        offsets = weight.size if fused else 0

        def tile_bytes(samples: int, out: tuple[int, ...], channels: int) -> int:
            c_in = g * channels
            elements = samples * (c_out + c_in * (1 if fused else volume)) * math.prod(out)
            elements += col2im_elements(geometry, c_in, samples, out, out == grid, False)
            alone = samples == batch and out == grid  # the product is written into the gradient itself
            elements += (0 if alone or not weights else c_out * channels * volume) + offsets
            if lowers:
                elements += lowering_elements(geometry, c_in, samples, out)
            return self._bytes(elements)

        return tile_bytes

    def _backward(
        self,
        delta: NDArray[Any],
        x: NDArray[Any] | None,
        weight: NDArray[Any],
        columns: NDArray[Any] | None,
        conjugate: bool,
    ) -> tuple[NDArray[Any], NDArray[Any] | None]:
        geometry, g, grid = self.geometry, self.groups, self.grid
        n, c_out = delta.shape[:2]
        c_in_g = weight.shape[1]
        w = weight.reshape(g, c_out // g, -1)  # (g, C_out/g, C_in/g * K)
        if geometry.is_pointwise and grid == geometry.output_size:
            # x is its own column matrix here, so kept columns have nothing to save.
            return _pointwise.backward(delta, x, w, self.dtype, self.workspace, conjugate=conjugate)
        tuned, positions = tuning.current(), math.prod(grid)
        sample_bytes = self._bytes(g * c_in_g * geometry.kernel_volume * positions)
        # Fewer windows than kernel offsets: col2im loops over windows, from the whole column gradient.
        fused = positions >= geometry.kernel_volume and c_in_g >= tuned.fused_min_channels
        fused = fused and sample_bytes >= tuned.fused_min_sample_bytes
        # ... and while the weight's copy by offset takes at most a quarter of the tile budget.
        fused = fused and 4 * self._bytes(weight.size) <= tuned.tile_budget(self.workspace)
        w_offsets = None
        if fused:
            # (K, g, C_in/g, C_out/g), stored as (K, g, C_out/g, C_in/g): its copy reads the weight
            # nearly in order, and BLAS takes it transposed.
            by_offset = weight.reshape(g, c_out // g, c_in_g, -1).transpose(3, 0, 1, 2)
            w_offsets = np.ascontiguousarray(by_offset).swapaxes(2, 3)
        tile_bytes = self._backward_bytes(n, weight, fused, x is not None, x is not None and columns is None)
        tiles = plan_tiles(n, geometry, tile_bytes, self.workspace, c_in_g, grid_size=grid)
        grad_w = None if x is None else np.zeros(w.shape, self.dtype)
        grad_x = (np.empty if tiles.whole else np.zeros)((n, g * c_in_g, *geometry.input_size), self.dtype)
        by_group = self._by_group(grad_x)
        delta_t = delta
        for tile in tiles:
            if not tile.channels.start:  # the output gradient is shared by the tile's channel blocks
                delta_t = self._tile_delta(delta[tile.batch][_EVERY + tile.window], conjugate)
            if grad_w is not None:
                assert x is not None
                cols = self._tile_columns(x, tile) if columns is None else self._kept(columns, tile)
                first = tile.batch.start == 0 and not any(rows.start for rows in tile.window)
                self._add_weight_gradient(self._channel_block(grad_w, tile), delta_t, cols, first)
            blocks = self._column_gradient(delta_t, self._channel_block(w, tile), w_offsets, tile)
            add_tile(by_group[:, :, tile.channels], blocks, tile, self.scratch.get, grid=grid, split=False)
        if conjugate:
            np.conjugate(grad_x, out=grad_x)
            if grad_w is not None:
                np.conjugate(grad_w, out=grad_w)
        return grad_x, grad_w

    def _add_weight_gradient(
        self, target: NDArray[Any], delta_t: NDArray[Any], cols: NDArray[Any], first: bool
    ) -> None:
        """``target (+)= delta_t @ cols^T``: written by the call's first tile, then added."""
        if first:
            _matmul(delta_t, cols.swapaxes(1, 2), out=target)
            return
        part = self.scratch.get("grad_weight", target.shape)
        _matmul(delta_t, cols.swapaxes(1, 2), out=part)
        target += part

    def _tile_delta(self, rows: NDArray[Any], conjugate: bool) -> NDArray[Any]:
        """A tile's output gradient ``(nb, C_out, *tile_grid)`` as ``(g, C_out/g, nb * L_tile)``."""
        nb, c_out = rows.shape[:2]
        g = self.groups
        if nb == 1 and not conjugate:
            single: NDArray[Any] = rows[0].reshape(g, c_out // g, -1).astype(self.dtype, copy=False)
            return single
        delta_t = self.scratch.get("delta", (g, c_out // g, rows[0, 0].size * nb))
        target = delta_t.reshape(c_out, nb, *rows.shape[2:])
        if conjugate:
            np.conjugate(rows.swapaxes(0, 1), out=target)
        else:
            np.copyto(target, rows.swapaxes(0, 1))
        return delta_t

    def _kept(self, columns: NDArray[Any], tile: Tile) -> NDArray[Any]:
        """The tile's part ``(g, channels * K, nb * L_tile)`` of kept columns ``(g, C_in/g * K, N * L)``."""
        g, volume = columns.shape[0], self.geometry.kernel_volume
        n = columns.shape[2] // self.geometry.output_volume
        kept = columns.reshape(g, -1, volume, n, *self.geometry.output_size)[:, tile.channels, :, tile.batch]
        key: tuple[Any, ...] = (*_EVERY, slice(None), slice(None), *tile.window)
        block: NDArray[Any] = kept[key].reshape(g, kept.shape[1] * volume, -1)
        return block

    def _column_gradient(
        self, delta_t: NDArray[Any], w: NDArray[Any], w_offsets: NDArray[Any] | None, tile: Tile
    ) -> Blocks:
        """The column gradient ``W^T @ delta_t`` of a tile as ``(nb, g, C_in/g, *kernel, *grid)`` blocks.

        Fused (``w_offsets`` given), each kernel offset's block is its own product,
        made when col2im asks for it so that it is added while in cache.
        """
        g, columns, geometry = self.groups, delta_t.shape[2], self.geometry
        nb = tile.batch.stop - tile.batch.start
        grid = tile.grid(self.grid)
        c_in_g = w.shape[2] // geometry.kernel_volume
        if w_offsets is not None:
            offsets = w_offsets[:, :, tile.channels]
            products = self.scratch.get("grad_columns", (g, c_in_g, columns))
            batch_first: NDArray[Any] = products.reshape(g, c_in_g, nb, *grid).transpose(
                2, 0, 1, *range(3, 3 + len(grid))
            )

            def made(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
                _matmul(offsets[index], delta_t, out=products)
                return batch_first

            return Blocks(made)
        grad_cols = self.scratch.get("grad_columns", (g, c_in_g * geometry.kernel_volume, columns))
        _matmul(w.swapaxes(1, 2), delta_t, out=grad_cols)
        d = geometry.ndim
        laid = grad_cols.reshape(g, c_in_g, *geometry.kernel_size, nb, *grid)
        return array_blocks(laid.transpose(2 + d, 0, 1, *range(2, 2 + d), *range(3 + d, 3 + 2 * d)), d)
