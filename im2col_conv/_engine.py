"""The tiled im2col + GEMM engine behind conv, conv_backward and conv_transpose.

The public functions check their arguments and hand plain arrays to an
`Engine`, which holds what every loop of one call shares: the
geometry, the groups, the dtype, the workspace and the scratch buffers.
Two strategies: im2col *columns*, the default, and the *shifted* one of
`im2col_conv._shifted`, taken when `im2col_conv._strategy.STRATEGY` asks.

Layout. Within a tile of ``nb`` samples the columns are stored as
``(groups, C_in/groups * prod(kernel), nb * L)``: the batch sits inside the
column index, so each product is one matrix product per group per tile and
the weight gradient needs no per-sample sum; the output tile is transposed.

Memory. Work is cut into tiles by [`plan_tiles`][im2col_conv.workspace.plan_tiles]:
groups of whole samples, or, for a sample too large on its own, windows of
output rows. A window is itself a convolution, of the input rows it reads
([`band`][im2col_conv.geometry.ConvGeometry.band]). Buffers are allocated once
per call and reused, so the temporaries of a call stay within the workspace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _pointwise, _shifted
from . import _strategy as strategy
from ._lowering import lower, scatter_blocks
from ._polyphase import scatter_by_phase
from ._products import matmul as _matmul
from ._wide import WideCol2im, wide_elements
from .geometry import ConvGeometry
from .workspace import Scratch, Tile, plan_tiles

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
        The window grid, when smaller than ``geometry.output_size`` (a
        transposed convolution whose ``output_padding`` reaches a new
        window's start).
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
        self.geometry = geometry
        self.groups = groups
        self.dtype = dtype
        self.workspace = workspace
        self.grid = geometry.output_size if grid_size is None else grid_size
        self.scratch = Scratch(dtype)

    # -- shared pieces -----------------------------------------------------------------------------

    def _bytes(self, elements: int) -> int:
        return int(self.dtype.itemsize * elements)

    def _lowering_elements(
        self, c_in: int, geometry: ConvGeometry, samples: int, out: tuple[int, ...]
    ) -> int:
        """Elements a tile's lowering holds: its columns and its padded input."""
        columns = c_in * geometry.kernel_volume * math.prod(out)
        padded = 0
        if geometry.has_padding:
            read = tuple((o - 1) * s + e for o, s, e in zip(out, geometry.stride, geometry.kernel_extent))
            padded = c_in * math.prod(read)
        return samples * (columns + padded)

    def _tile_input(self, x: NDArray[Any], tile: Tile) -> NDArray[Any]:
        return x[tile.batch][_EVERY + tile.input_window] if tile.input_window else x[tile.batch]

    def columns(self, x: NDArray[Any], geometry: ConvGeometry, *, reuse: bool = True) -> NDArray[Any]:
        """Columns of a tile ``x`` of shape ``(nb, C, *spatial)`` as ``(g, C/g * K, nb * L)``."""
        nb, c = x.shape[:2]
        g = self.groups
        shape = (g, c // g * geometry.kernel_volume, nb * geometry.output_volume)
        if nb == 1 and geometry.is_pointwise:
            return x.astype(self.dtype, copy=False).reshape(shape)  # im2col is the identity: no copy
        if not reuse:
            return lower(x, geometry, dtype=self.dtype, batch_inner=True).reshape(shape)
        out = self.scratch.get("columns", (c, *geometry.kernel_size, nb, *geometry.output_size))
        padded = None
        if geometry.has_padding:
            padded = self.scratch.get("padded", (nb, c, *geometry.padded_size), zeroed_for=geometry.padding)
        return lower(x, geometry, out=out, dtype=self.dtype, batch_inner=True, padded=padded).reshape(shape)

    # -- forward -----------------------------------------------------------------------------------

    def forward(
        self, x: NDArray[Any], weight: NDArray[Any], *, keep_columns: bool = False
    ) -> tuple[NDArray[Any], NDArray[Any] | None]:
        """``y = W @ cols`` tile by tile.

        Parameters
        ----------
        x : ndarray, shape (N, C_in, *spatial)
            Any dtype; cast while it is lowered.
        weight : ndarray, shape (C_out, C_in/groups, *kernel), of the engine's dtype
        keep_columns : bool
            Lower the whole batch at once and return its columns.

        Returns
        -------
        y : ndarray, shape (N, C_out, *output_size)
        columns : ndarray, shape (groups, C_in/groups * K, N * L), or None
        """
        geometry, g = self.geometry, self.groups
        n, c_in = x.shape[:2]
        c_out = weight.shape[0]
        w = weight.reshape(g, c_out // g, -1)
        if geometry.is_pointwise and not keep_columns:
            return _pointwise.forward(x, w, self.dtype, self.workspace), None
        y = np.empty((n, c_out, *geometry.output_size), self.dtype)
        if not keep_columns and strategy.shifted():
            shifted_bytes = _shifted.tile_bytes(geometry, c_in, c_out, self.dtype.itemsize, backward=False)
            tiles = plan_tiles(n, geometry, shifted_bytes, self.workspace)
            _shifted.convolve(x, self._offset_weights(weight).swapaxes(2, 3), y, tiles, self.scratch)
            return y, None
        if keep_columns:
            cols = self.columns(x, geometry, reuse=False)
            if cols.base is not None and np.shares_memory(cols, x):
                cols = cols.copy()  # the caller may change x before backward
            self._forward_tile(y, w, cols, Tile(slice(0, n), (), (), geometry))
            return y, cols

        def tile_bytes(samples: int, out: tuple[int, ...]) -> int:
            lowering = self._lowering_elements(c_in, geometry, samples, out)
            return self._bytes(lowering + samples * c_out * math.prod(out))

        for tile in plan_tiles(n, geometry, tile_bytes, self.workspace):
            self._forward_tile(y, w, self.columns(self._tile_input(x, tile), tile.geometry), tile)
        return y, None

    def _forward_tile(self, y: NDArray[Any], w: NDArray[Any], cols: NDArray[Any], tile: Tile) -> None:
        g, c_out = self.groups, y.shape[1]
        nb = tile.batch.stop - tile.batch.start
        tile_out = tile.geometry.output_size
        if nb == 1 and len(tile.window) <= 1:
            # One sample's band along the first axis is contiguous in each channel: write in place.
            row = math.prod(tile_out[1:])
            rows = tile.window[0] if tile.window else slice(0, tile_out[0])
            flat = y[tile.batch.start].reshape(g, c_out // g, -1)
            _matmul(w, cols, out=flat[:, :, rows.start * row : rows.stop * row])
            return
        if not tile.window and strategy.per_sample(w[0].size, math.prod(tile_out)):
            # One product per sample, each written where it belongs: no transposing copy.
            length = math.prod(tile_out)
            per_sample = cols.reshape(g, w.shape[2], nb, length).transpose(0, 2, 1, 3)
            y_t = y[tile.batch].reshape(nb, g, c_out // g, length).transpose(1, 0, 2, 3)
            _matmul(w[:, None], per_sample, out=y_t)
            return
        product = self.scratch.get("product", (g, c_out // g, nb * math.prod(tile_out)))
        _matmul(w, cols, out=product)
        target = y[tile.batch][_EVERY + tile.window]
        np.copyto(target, product.reshape(c_out, nb, *tile_out).swapaxes(0, 1))

    # -- backward ----------------------------------------------------------------------------------

    def input_gradient(self, delta: NDArray[Any], weight: NDArray[Any]) -> NDArray[Any]:
        """``col2im(W^T @ delta)`` tile by tile; also the transposed convolution.

        Parameters
        ----------
        delta : ndarray, shape (N, C_out, *grid)
            Any dtype; cast tile by tile.
        weight : ndarray, shape (C_out, C_in/groups, *kernel), of the engine's dtype

        Returns
        -------
        ndarray, shape (N, C_in, *geometry.input_size)
        """
        return self._backward(delta, None, weight, None)[0]

    def backward(
        self,
        delta: NDArray[Any],
        x: NDArray[Any],
        weight: NDArray[Any],
        columns: NDArray[Any] | None = None,
    ) -> tuple[NDArray[Any], NDArray[Any]]:
        """Input and weight gradients, tile by tile.

        Parameters
        ----------
        delta : ndarray, shape (N, C_out, *output_size)
        x : ndarray, shape (N, C_in, *spatial)
        weight : ndarray, shape (C_out, C_in/groups, *kernel), of the engine's dtype
        columns : ndarray, shape (groups, C_in/groups * K, N * L), optional
            Kept columns of ``x``.

        Returns
        -------
        grad_x : ndarray, shape (N, C_in, *spatial)
        grad_w : ndarray, shape (groups, C_out/groups, C_in/groups * K)
        """
        grad_x, grad_w = self._backward(delta, x, weight, columns)
        assert grad_w is not None
        return grad_x, grad_w

    def _backward(
        self,
        delta: NDArray[Any],
        x: NDArray[Any] | None,
        weight: NDArray[Any],
        columns: NDArray[Any] | None,
    ) -> tuple[NDArray[Any], NDArray[Any] | None]:
        geometry, g, grid = self.geometry, self.groups, self.grid
        n, c_out = delta.shape[:2]
        c_in = weight.shape[1] * g
        w = weight.reshape(g, c_out // g, -1)  # (g, C_out/g, C_in/g * K)
        if geometry.is_pointwise and grid == geometry.output_size:
            # x is its own column matrix here, so kept columns have nothing to save.
            return _pointwise.backward(delta, x, w, self.dtype, self.workspace)
        if columns is None and grid == geometry.output_size and strategy.shifted():
            return self._shifted_backward(delta, x, weight)
        fused = strategy.fused(c_in // g, self._bytes(c_in * geometry.kernel_volume * math.prod(grid)))
        w_offsets = self._offset_weights(weight) if fused else None
        # The wide grid's extra positions add W^T @ 0, which is zero only for a finite weight
        # (a finite sum proves it; one that overflows merely costs the faster col2im).
        wide = strategy.wide_col2im(
            grid, c_in // g * geometry.kernel_volume, c_out // g, grid == geometry.output_size
        ) and bool(np.isfinite(np.sum(weight)))

        def tile_bytes(samples: int, out: tuple[int, ...]) -> int:
            read = math.prod((o - 1) * s + e for o, s, e in zip(out, geometry.stride, geometry.kernel_extent))
            target = math.prod(geometry.input_size) if out == grid else 0
            positions, sums, slack = wide_elements(geometry, out) if wide else (math.prod(out), 0, 0)
            elements = samples * (
                (c_in if fused else c_in * geometry.kernel_volume) * positions  # column gradient
                + c_out * math.prod(out)  # delta, batch-inner
                + (c_out * positions + c_in * sums if wide else 0)  # delta and the sums, wide
                + 2 * c_in * max(read, target)  # scatter buffer, and a band's gradient
                + (c_in * read if not wide and strategy.phase_split(geometry, out) else 0)  # the phases
            )
            elements += c_in * slack
            if x is not None and columns is None:
                elements += self._lowering_elements(c_in, geometry, samples, out)
            return self._bytes(elements)

        tiles = plan_tiles(n, geometry, tile_bytes, self.workspace, grid_size=grid)
        grad_w = None if x is None else np.zeros(w.shape, self.dtype)
        grad_x = (np.empty if tiles.whole else np.zeros)((n, c_in, *geometry.input_size), self.dtype)
        for tile in tiles:
            rows = delta[tile.batch][_EVERY + tile.window] if tile.window else delta[tile.batch]
            delta_t = self._tile_delta(rows) if grad_w is not None or not wide else None
            if grad_w is not None:
                assert delta_t is not None
                grad_w += _matmul(delta_t, self._tile_columns(x, columns, tile).swapaxes(1, 2))
            target = grad_x[tile.batch] if tile.whole else self._band(grad_x, tile)
            if wide:
                self._wide_scatter(target, rows, w, w_offsets, tile)
            else:
                assert delta_t is not None
                self._scatter_tile(target, delta_t, w, w_offsets, tile)
            if not tile.whole:
                # Windows overlap where the kernel's reach does: add each one to the rows it read.
                grad_x[tile.batch][_EVERY + tile.input_window] += target
        return grad_x, grad_w

    def _shifted_backward(
        self, delta: NDArray[Any], x: NDArray[Any] | None, weight: NDArray[Any]
    ) -> tuple[NDArray[Any], NDArray[Any] | None]:
        n, c_out = delta.shape[:2]
        g, c_in_g = self.groups, weight.shape[1]
        taps = self._offset_weights(weight).swapaxes(2, 3)
        tile_bytes = _shifted.tile_bytes(self.geometry, g * c_in_g, c_out, self.dtype.itemsize, backward=True)
        tiles = plan_tiles(n, self.geometry, tile_bytes, self.workspace)
        whole = tiles.whole
        grad_x = (np.empty if whole else np.zeros)((n, g * c_in_g, *self.geometry.input_size), self.dtype)
        grad_taps = _shifted.gradients(delta, x, taps, grad_x, tiles, self.scratch)
        if grad_taps is None:
            return grad_x, None
        # (K, g, C_in/g, C_out/g) -> (g, C_out/g, C_in/g * K), the offset innermost.
        return grad_x, grad_taps.transpose(1, 3, 2, 0).reshape(g, c_out // g, -1)

    def _offset_weights(self, weight: NDArray[Any]) -> NDArray[Any]:
        """``(K, g, C_in/g, C_out/g)``: the transposed weight of each kernel offset.

        Stored as ``(K, g, C_out/g, C_in/g)``, whose copy reads the weight
        nearly in order, and handed to BLAS transposed.
        """
        c_out, c_in_g = weight.shape[:2]
        g = self.groups
        by_offset = weight.reshape(g, c_out // g, c_in_g, -1).transpose(3, 0, 1, 2)
        offsets: NDArray[Any] = np.ascontiguousarray(by_offset).swapaxes(2, 3)
        return offsets

    def _tile_delta(self, rows: NDArray[Any]) -> NDArray[Any]:
        """A tile's output gradient ``(nb, C_out, *tile_grid)`` as ``(g, C_out/g, nb * L_tile)``."""
        g, c_out = self.groups, rows.shape[1]
        nb = rows.shape[0]
        if nb == 1:
            single: NDArray[Any] = rows[0].reshape(g, c_out // g, -1).astype(self.dtype, copy=False)
            return single
        delta_t = self.scratch.get("delta", (g, c_out // g, rows[0, 0].size * nb))
        np.copyto(delta_t.reshape(c_out, *rows.shape[:1], *rows.shape[2:]), rows.swapaxes(0, 1))
        return delta_t

    def _tile_columns(self, x: NDArray[Any] | None, columns: NDArray[Any] | None, tile: Tile) -> NDArray[Any]:
        if columns is None:
            assert x is not None
            return self.columns(self._tile_input(x, tile), tile.geometry)
        g, rows = columns.shape[:2]
        n = columns.shape[2] // self.geometry.output_volume
        kept = columns.reshape(g, rows, n, *self.geometry.output_size)[:, :, tile.batch]
        return kept[_EVERY + (slice(None),) + tile.window].reshape(g, rows, -1)

    def _band(self, grad_x: NDArray[Any], tile: Tile) -> NDArray[Any]:
        """Scratch for the gradient of the input rows a band of output rows reads."""
        nb = tile.batch.stop - tile.batch.start
        return self.scratch.get("band", (nb, grad_x.shape[1], *tile.geometry.input_size))

    def _column_gradient(
        self, delta_t: NDArray[Any], w: NDArray[Any], w_offsets: NDArray[Any] | None, c_in: int
    ) -> Callable[[int], NDArray[Any]]:
        """Kernel offset ``index``'s block of the column gradient ``W^T @ delta_t``, ``(C_in, columns)``.

        Fused (``w_offsets`` given), each block is its own product, made when
        col2im asks for it, so that it is added while still in cache;
        otherwise one tall product makes every block at once.
        """
        g, columns = self.groups, delta_t.shape[2]
        if w_offsets is not None:
            products = self.scratch.get("grad_columns", (g, c_in // g, columns))

            def made(index: int) -> NDArray[Any]:
                _matmul(w_offsets[index], delta_t, out=products)
                return products.reshape(c_in, columns)

            return made
        volume = self.geometry.kernel_volume
        grad_cols = self.scratch.get("grad_columns", (g, c_in // g * volume, columns))
        _matmul(w.swapaxes(1, 2), delta_t, out=grad_cols)
        by_offset = grad_cols.reshape(c_in, volume, columns)

        def kept(index: int) -> NDArray[Any]:
            block: NDArray[Any] = by_offset[:, index]
            return block

        return kept

    def _scatter_tile(
        self,
        target: NDArray[Any],
        delta_t: NDArray[Any],
        w: NDArray[Any],
        w_offsets: NDArray[Any] | None,
        tile: Tile,
    ) -> None:
        """col2im of ``W^T @ delta_t`` into ``target`` ``(nb, C_in, *input)``, one short run at a time."""
        nb, c_in = target.shape[:2]
        tile_grid = tile.grid(self.grid)
        column_block = self._column_gradient(delta_t, w, w_offsets, c_in)

        def block(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
            # (C_in, nb * L) viewed batch-first, as col2im adds it.
            batch_first: NDArray[Any] = column_block(index).reshape(c_in, nb, *tile_grid).swapaxes(0, 1)
            return batch_first

        def allocate(shape: tuple[int, ...]) -> NDArray[Any]:
            return self.scratch.get("scatter", shape)

        if strategy.phase_split(tile.geometry, tile_grid):
            scatter_by_phase(scatter_blocks, block, target, tile.geometry, self.scratch.get)
        else:
            scatter_blocks(
                block,
                (nb, c_in),
                self.dtype,
                tile.geometry,
                grid_size=tile_grid,
                out=target,
                allocate=allocate,
            )

    def _wide_scatter(
        self,
        target: NDArray[Any],
        rows: NDArray[Any],
        w: NDArray[Any],
        w_offsets: NDArray[Any] | None,
        tile: Tile,
    ) -> None:
        """col2im of ``W^T @ delta`` into ``target`` in whole rows, on the wide grid (`_wide`)."""
        col2im = WideCol2im(tile.geometry, target.shape[0], self.scratch.get)
        delta_wide = col2im.gradient(rows, self.groups)
        col2im.add(self._column_gradient(delta_wide, w, w_offsets, target.shape[1]), target)
