"""The tiled im2col + GEMM engine behind conv, conv_backward and conv_transpose.

The public functions check their arguments and hand plain arrays to an
`Engine`, which holds what every loop of one call shares: the geometry, the
groups, the dtype, the workspace and the scratch buffers.

Layout. Within a tile of ``nb`` samples the columns are stored as
``(groups, C_in/groups * prod(kernel), nb * L)``: the batch sits inside the
column index, so each product is one matrix product per group per tile and
the weight gradient needs no per-sample sum; the output tile is transposed.

Memory. Work is cut into tiles by `plan_tiles`: groups of whole samples, for
a sample too large on its own windows of output rows (a window is itself a
convolution, of the input rows it reads, `ConvGeometry.band`), and for a
single output position too large, blocks of input channels. The bytes a
tile holds come from one function per pass (`Engine._forward_bytes`,
`Engine._backward_bytes`), built from the lowering's and col2im's own
counts, so the temporaries of a call stay within its workspace.

Paths (which layer shape takes which, ``docs/architecture.md``): the forward
multiplies in place, per sample or tile-wide; the backward's column gradient
is one tall product or, fused, one kernel offset at a time.
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

    def _tile_input(self, x: NDArray[Any], tile: Tile) -> NDArray[Any]:
        return x[tile.batch][_EVERY + tile.input_window] if tile.input_window else x[tile.batch]

    def _by_group(self, array: NDArray[Any]) -> NDArray[Any]:
        """``(N, C, *spatial)`` viewed as ``(N, groups, C/groups, *spatial)``."""
        n, c = array.shape[:2]
        return array.reshape(n, self.groups, c // self.groups, *array.shape[2:])

    def columns(
        self, x: NDArray[Any], geometry: ConvGeometry, channels: slice, *, reuse: bool = True
    ) -> NDArray[Any]:
        """Columns of channels ``channels`` (per group) of a tile ``x`` ``(nb, C, *spatial)``.

        Shape ``(g, channels * K, nb * L)``.
        """
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
        return lower(grouped, geometry, out=out, dtype=self.dtype, batch_inner=True, padded=padded).reshape(
            shape
        )

    def _weight_block(self, w: NDArray[Any], tile: Tile) -> NDArray[Any]:
        """``w`` ``(g, C_out/g, C_in/g * K)`` restricted to the tile's input channels."""
        if tile.all_channels:
            return w
        g, c_out_g = w.shape[:2]
        rows = w.reshape(g, c_out_g, -1, self.geometry.kernel_volume)[:, :, tile.channels]
        return rows.reshape(g, c_out_g, -1)

    def _bytes(self, elements: int) -> int:
        return int(self.dtype.itemsize * elements)

    # -- forward -----------------------------------------------------------------------------------

    def _forward_bytes(self, c_out: int) -> TileBytes:
        """Temporary bytes of a forward tile: its lowering and its product."""
        geometry, g = self.geometry, self.groups

        def tile_bytes(samples: int, out: tuple[int, ...], channels: int) -> int:
            lowering = lowering_elements(geometry, g * channels, samples, out)
            return self._bytes(lowering + samples * c_out * math.prod(out))

        return tile_bytes

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
        if keep_columns:
            cols = self.columns(x, geometry, slice(None), reuse=False)
            if cols.base is not None and np.shares_memory(cols, x):
                cols = cols.copy()  # the caller may change x before backward
            self._forward_tile(y, w, cols, Tile(slice(0, n), (), (), geometry, slice(None), True))
            return y, cols
        tiles = plan_tiles(n, geometry, self._forward_bytes(c_out), self.workspace, c_in // g)
        for tile in tiles:
            cols = self.columns(self._tile_input(x, tile), tile.geometry, tile.channels)
            self._forward_tile(y, self._weight_block(w, tile), cols, tile)
        return y, None

    def _forward_tile(self, y: NDArray[Any], w: NDArray[Any], cols: NDArray[Any], tile: Tile) -> None:
        g, c_out = self.groups, y.shape[1]
        nb = tile.batch.stop - tile.batch.start
        tile_out = tile.geometry.output_size
        if tile.all_channels and nb == 1 and len(tile.window) <= 1:
            # One sample's band along the first axis is contiguous in each channel: write in place.
            row = math.prod(tile_out[1:])
            rows = tile.window[0] if tile.window else slice(0, tile_out[0])
            flat = y[tile.batch.start].reshape(g, c_out // g, -1)
            _matmul(w, cols, out=flat[:, :, rows.start * row : rows.stop * row])
            return
        if tile.all_channels and not tile.window and self._per_sample(w[0].size, math.prod(tile_out)):
            # One product per sample, each written where it belongs: no transposing copy.
            length = math.prod(tile_out)
            per_sample = cols.reshape(g, w.shape[2], nb, length).transpose(0, 2, 1, 3)
            y_t = y[tile.batch].reshape(nb, g, c_out // g, length).transpose(1, 0, 2, 3)
            _matmul(w[:, None], per_sample, out=y_t)
            return
        product = self.scratch.get("product", (g, c_out // g, nb * math.prod(tile_out)))
        _matmul(w, cols, out=product)
        target = y[tile.batch][_EVERY + tile.window]
        result = product.reshape(c_out, nb, *tile_out).swapaxes(0, 1)
        if tile.channels.start:
            target += result  # a later block of input channels adds to the sums of the first
        else:
            np.copyto(target, result)

    @staticmethod
    def _per_sample(weights_per_group: int, positions: int) -> bool:
        return weights_per_group * positions <= tuning.current().per_sample_max_product

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
        """Input and weight gradients, tile by tile.

        Parameters
        ----------
        delta : ndarray, shape (N, C_out, *output_size)
        x : ndarray, shape (N, C_in, *spatial)
        weight : ndarray, shape (C_out, C_in/groups, *kernel), of the engine's dtype
        columns : ndarray, shape (groups, C_in/groups * K, N * L), optional
            Kept columns of ``x``.
        conjugate : bool
            Return ``col2im(conj(W)^T @ delta)`` and ``delta @ conj(cols)^T``
            (PyTorch's convention for complex operands), computed as the
            conjugates of the products with ``conj(delta)``, which is
            conjugated tile by tile: no copy of ``x`` or ``W`` is made.

        Returns
        -------
        grad_x : ndarray, shape (N, C_in, *spatial)
        grad_w : ndarray, shape (groups, C_out/groups, C_in/groups * K)
        """
        grad_x, grad_w = self._backward(delta, x, weight, columns, conjugate)
        assert grad_w is not None
        return grad_x, grad_w

    def _fused(self, weight: NDArray[Any], positions: int) -> bool:
        """Whether the column gradient is made one kernel offset at a time (see `tuning`).

        Only while the weight's copy by offset takes at most a quarter of the
        tile budget: a larger one would leave the tiles too little room.
        """
        tuned = tuning.current()
        c_in_g = weight.shape[1]
        sample_bytes = self._bytes(self.groups * c_in_g * self.geometry.kernel_volume * positions)
        small = 4 * self._bytes(weight.size) <= tuned.tile_budget(self.workspace)
        return c_in_g >= tuned.fused_min_channels and sample_bytes >= tuned.fused_min_sample_bytes and small

    def _backward_bytes(
        self, batch: int, weight: NDArray[Any], fused: bool, weights: bool, lowers: bool
    ) -> TileBytes:
        """Temporary bytes of a backward tile.

        Its output gradient, column gradient and col2im (and fused, the weight
        by offset); with ``weights`` the weight gradient's product, unless one
        tile holds the whole call, with ``lowers`` the lowering too.
        """
        geometry, g, grid = self.geometry, self.groups, self.grid
        volume, c_out = geometry.kernel_volume, weight.shape[0]
        offsets = weight.size if fused else 0

        def tile_bytes(samples: int, out: tuple[int, ...], channels: int) -> int:
            positions = math.prod(out)
            c_in = g * channels
            elements = samples * (c_out + c_in * (1 if fused else volume)) * positions
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
        # Fewer windows than kernel offsets: col2im loops over windows, from the whole column gradient.
        fused = math.prod(grid) >= geometry.kernel_volume and self._fused(weight, math.prod(grid))
        w_offsets = self._offset_weights(weight) if fused else None
        tile_bytes = self._backward_bytes(n, weight, fused, x is not None, x is not None and columns is None)
        tiles = plan_tiles(n, geometry, tile_bytes, self.workspace, c_in_g, grid_size=grid)
        grad_w = None if x is None else np.zeros(w.shape, self.dtype)
        grad_x = (np.empty if tiles.whole else np.zeros)((n, g * c_in_g, *geometry.input_size), self.dtype)
        by_group = self._by_group(grad_x)
        delta_t = delta
        for tile in tiles:
            if not tile.channels.start:  # the output gradient is shared by the tile's channel blocks
                rows = delta[tile.batch][_EVERY + tile.window] if tile.window else delta[tile.batch]
                delta_t = self._tile_delta(rows, conjugate)
            w_block = self._weight_block(w, tile)
            if grad_w is not None:
                cols = self._tile_columns(x, columns, tile)
                first = tile.batch.start == 0 and not any(rows.start for rows in tile.window)
                self._add_weight_gradient(grad_w, delta_t, cols, tile, first)
            blocks = self._column_gradient(delta_t, w_block, w_offsets, tile)
            add_tile(by_group[:, :, tile.channels], blocks, tile, self.scratch.get, grid=grid, split=False)
        if conjugate:
            np.conjugate(grad_x, out=grad_x)
            if grad_w is not None:
                np.conjugate(grad_w, out=grad_w)
        return grad_x, grad_w

    def _add_weight_gradient(
        self, grad_w: NDArray[Any], delta_t: NDArray[Any], cols: NDArray[Any], tile: Tile, first: bool
    ) -> None:
        """``grad_w[..., tile's channels] (+)= delta_t @ cols^T``: written by the first tile, then added."""
        target = grad_w
        if not tile.all_channels:
            g, c_out_g = grad_w.shape[:2]
            volume = self.geometry.kernel_volume
            target = grad_w.reshape(g, c_out_g, -1, volume)[:, :, tile.channels].reshape(g, c_out_g, -1)
        if first:
            _matmul(delta_t, cols.swapaxes(1, 2), out=target)
            return
        part = self.scratch.get("grad_weight", target.shape)
        _matmul(delta_t, cols.swapaxes(1, 2), out=part)
        target += part

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

    def _tile_delta(self, rows: NDArray[Any], conjugate: bool) -> NDArray[Any]:
        """A tile's output gradient ``(nb, C_out, *tile_grid)`` as ``(g, C_out/g, nb * L_tile)``."""
        g, c_out = self.groups, rows.shape[1]
        nb = rows.shape[0]
        if nb == 1 and not conjugate:
            single: NDArray[Any] = rows[0].reshape(g, c_out // g, -1).astype(self.dtype, copy=False)
            return single
        delta_t = self.scratch.get("delta", (g, c_out // g, rows[0, 0].size * nb))
        target = delta_t.reshape(c_out, *rows.shape[:1], *rows.shape[2:])
        if conjugate:
            np.conjugate(rows.swapaxes(0, 1), out=target)
        else:
            np.copyto(target, rows.swapaxes(0, 1))
        return delta_t

    def _tile_columns(self, x: NDArray[Any] | None, columns: NDArray[Any] | None, tile: Tile) -> NDArray[Any]:
        if columns is None:
            assert x is not None
            return self.columns(self._tile_input(x, tile), tile.geometry, tile.channels)
        g = columns.shape[0]
        n = columns.shape[2] // self.geometry.output_volume
        volume, out = self.geometry.kernel_volume, self.geometry.output_size
        kept = columns.reshape(g, -1, volume, n, *out)[:, tile.channels, :, tile.batch]
        key: tuple[Any, ...] = (*_EVERY, slice(None), slice(None), *tile.window)
        block: NDArray[Any] = kept[key].reshape(g, kept.shape[1] * volume, -1)
        return block

    def _column_gradient(
        self, delta_t: NDArray[Any], w: NDArray[Any], w_offsets: NDArray[Any] | None, tile: Tile
    ) -> Blocks:
        """The column gradient ``W^T @ delta_t`` of a tile, as ``(nb, g, C_in/g, *kernel, *grid)`` blocks.

        Fused (``w_offsets`` given), each kernel offset's block is its own
        product, made when col2im asks for it, so that it is added while
        still in cache; otherwise one tall product makes every block at once.
        """
        g, columns = self.groups, delta_t.shape[2]
        geometry = self.geometry
        nb = tile.batch.stop - tile.batch.start
        grid = tile.grid(self.grid)
        c_in_g = w.shape[2] // geometry.kernel_volume
        if w_offsets is not None:
            offsets = w_offsets[:, :, tile.channels]
            products = self.scratch.get("grad_columns", (g, c_in_g, columns))
            batch_first = products.reshape(g, c_in_g, nb, *grid).transpose(2, 0, 1, *range(3, 3 + len(grid)))

            def made(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
                _matmul(offsets[index], delta_t, out=products)
                made_block: NDArray[Any] = batch_first
                return made_block

            return Blocks(made)
        grad_cols = self.scratch.get("grad_columns", (g, c_in_g * geometry.kernel_volume, columns))
        _matmul(w.swapaxes(1, 2), delta_t, out=grad_cols)
        d = geometry.ndim
        laid = grad_cols.reshape(g, c_in_g, *geometry.kernel_size, nb, *grid)
        batch_first = laid.transpose(2 + d, 0, 1, *range(2, 2 + d), *range(3 + d, 3 + 2 * d))
        return array_blocks(batch_first, d)
