"""Convolution as accumulating matrix products on shifted views of the input.

The column matrix of a convolution repeats every input entry once per kernel
offset. Stored channel-last, the input *is* the column block of one offset,
and the block of every other offset is the same matrix read a few rows
further on. This module stores a tile's padded input that way and lets BLAS
accumulate one product per kernel offset into the result (``beta = 1``), so
that no column matrix is built and col2im's additions happen inside the
products (the approach of kn2row and of the "shifted pointer" convolutions).

Layout. With stride ``s``, the padded input splits into ``prod(s)`` *phases*
(the positions with the same remainder modulo the stride); a kernel offset
reads one phase, shifted. Each phase of each group is stored as a matrix
``(rows, C_in/g)``: one row per position of the phase grid
``q = ceil(padded / stride)`` of every sample of the tile, then ``slack``
zero rows so that the largest shift stays inside. Results are computed on
that whole grid, a little larger than the output grid (the *wide* grid); the
extra positions are never read back, and in the backward pass the output
gradient is zero there, so they add nothing.

Every product reads and writes Fortran-ordered views, which SciPy's BLAS
wrappers take without a copy (`im2col_conv._products.gemm`); dtypes without
BLAS use ``np.matmul`` and ``+=`` in the same order, which keeps integers exact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._products import gemm
from .geometry import ConvGeometry
from .profiling import phase

__all__ = [
    "ShiftedLayout",
    "backward_tile",
    "convolve",
    "forward_tile",
    "gradients",
    "tile_bytes",
]

_EVERY = (slice(None), slice(None))


class ShiftedLayout:
    """Where each kernel offset reads in the phase-split, channel-last tile.

    Parameters
    ----------
    geometry : ConvGeometry
        The tile's convolution.
    samples : int
        Samples in the tile.
    """

    def __init__(self, geometry: ConvGeometry, samples: int) -> None:
        self.geometry = geometry
        self.samples = samples
        self.grid = tuple(-(-p // s) for p, s in zip(geometry.padded_size, geometry.stride))
        self.phases = list(itertools.product(*(range(s) for s in geometry.stride)))
        strides = [math.prod(self.grid[d + 1 :]) for d in range(geometry.ndim)]
        self.taps: list[tuple[int, int]] = []
        for offset in np.ndindex(*geometry.kernel_size):
            reach = [k * dl for k, dl in zip(offset, geometry.dilation)]
            phase_index = self.phases.index(tuple(r % s for r, s in zip(reach, geometry.stride)))
            shift = sum((r // s) * st for r, s, st in zip(reach, geometry.stride, strides))
            self.taps.append((phase_index, shift))
        self.rows = samples * math.prod(self.grid)
        self.slack = max(shift for _, shift in self.taps)

    def input_shape(self, groups: int, c_in: int) -> tuple[int, ...]:
        """Shape of the phase-split input: ``(groups, phases, rows + slack, C_in/groups)``."""
        return (groups, len(self.phases), self.rows + self.slack, c_in // groups)

    def _phase_slices(self, phase_index: int) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
        """Phase-grid positions of a phase that hold input, and the input positions they hold."""
        grid_part, input_part = [], []
        for a, s, (before, _), size, q in zip(
            self.phases[phase_index],
            self.geometry.stride,
            self.geometry.padding,
            self.geometry.input_size,
            self.grid,
        ):
            first = max(0, -(-(before - a) // s))
            stop = min(q, (size - 1 + before - a) // s + 1)
            if stop <= first:
                return None
            grid_part.append(slice(first, stop))
            start = a + s * first - before
            input_part.append(slice(start, start + s * (stop - first - 1) + 1, s))
        return tuple(grid_part), tuple(input_part)

    def input_phases(self) -> Iterator[tuple[int, tuple[slice, ...], tuple[slice, ...]]]:
        """Each phase holding input positions: its index, those positions in its grid and in the input."""
        for index in range(len(self.phases)):
            found = self._phase_slices(index)
            if found is not None:
                yield (index, *found)

    def _phase_view(self, split: NDArray[Any], phase_index: int) -> NDArray[Any]:
        """``(groups, samples, *grid, C_in/groups)`` view of one phase of a split input."""
        g, _, _, c_g = split.shape
        return split[:, phase_index, : self.rows].reshape(g, self.samples, *self.grid, c_g)

    def split(self, x: NDArray[Any], out: NDArray[Any]) -> NDArray[Any]:
        """Copy a tile ``x`` of shape ``(samples, C_in, *input_size)`` into ``out``, phase by phase.

        ``out`` must be zero wherever no input lands (padding, slack); a buffer
        reused with the same shape stays so, since only input positions are written.
        """
        g, _, _, c_g = out.shape
        with phase("lowering"):
            for index, grid_part, input_part in self.input_phases():
                source = x[(Ellipsis,) + input_part]
                source = source.reshape(self.samples, g, c_g, *source.shape[2:])
                target = self._phase_view(out, index)[_EVERY + grid_part]
                np.copyto(target, np.moveaxis(np.moveaxis(source, 2, -1), 1, 0), casting="unsafe")
        return out

    def merge(self, split: NDArray[Any], out: NDArray[Any]) -> None:
        """The adjoint of `split`: write every input position's entry into ``out``.

        Each input position lies in exactly one phase, so this assigns; the
        padding and the slack are dropped.
        """
        g, _, _, c_g = split.shape
        target_all = out.reshape(self.samples, g, c_g, *out.shape[2:])
        with phase("col2im"):
            for index, grid_part, input_part in self.input_phases():
                source = self._phase_view(split, index)[_EVERY + grid_part]
                target = target_all[(Ellipsis,) + input_part]
                np.copyto(target, np.moveaxis(np.moveaxis(source, -1, 2), 0, 1))

    def output(self, wide: NDArray[Any]) -> NDArray[Any]:
        """The output positions of a channel-first wide result ``(groups, C/groups, rows)``.

        Returns a ``(samples, C, *output_size)`` view.
        """
        crop = tuple(slice(0, o) for o in self.geometry.output_size)
        grid = wide.reshape(wide.shape[0] * wide.shape[1], self.samples, *self.grid)
        view: NDArray[Any] = grid[_EVERY + crop].swapaxes(0, 1)
        return view

    def put_gradient(self, delta: NDArray[Any], out: NDArray[Any]) -> NDArray[Any]:
        """Copy ``delta`` ``(samples, C, *output_size)`` into a channel-last wide ``out``.

        ``out`` has shape ``(groups, rows, C/groups)`` and must be zero at
        the wide grid's extra positions, which are never written.
        """
        g, _, c_g = out.shape
        crop = tuple(slice(0, o) for o in self.geometry.output_size)
        target = out.reshape(g, self.samples, *self.grid, c_g)[_EVERY + crop]
        source = delta.reshape(self.samples, g, c_g, *delta.shape[2:])
        with phase("lowering"):
            np.copyto(target, np.moveaxis(np.moveaxis(source, 2, -1), 1, 0), casting="unsafe")
        return out


def forward_tile(
    layout: ShiftedLayout, split: NDArray[Any], taps: NDArray[Any], out: NDArray[Any]
) -> NDArray[Any]:
    """``out = sum over offsets of W_k @ shifted block_k``, on the wide grid.

    Parameters
    ----------
    split : ndarray, shape (groups, phases, rows + slack, C_in/groups)
        The tile's input after `ShiftedLayout.split`.
    taps : ndarray, shape (K, groups, C_out/groups, C_in/groups)
        The weight of each kernel offset.
    out : ndarray, shape (groups, C_out/groups, rows), C-contiguous

    Returns
    -------
    ndarray, shape (samples, C_out, *output_size)
        A view of ``out`` at the output positions.
    """
    rows = layout.rows
    for index, (phase_index, shift) in enumerate(layout.taps):
        for group in range(split.shape[0]):
            block = split[group, phase_index, shift : shift + rows]
            gemm(block.T, taps[index, group].T, out[group].T, accumulate=index > 0, trans_a=True)
    return layout.output(out)


def backward_tile(
    layout: ShiftedLayout,
    split: NDArray[Any] | None,
    delta: NDArray[Any],
    taps: NDArray[Any],
    grad_split: NDArray[Any],
    grad_taps: NDArray[Any] | None,
) -> None:
    """Accumulate the weight gradient and form the input gradient of one tile.

    Parameters
    ----------
    split : ndarray, shape (groups, phases, rows + slack, C_in/groups), or None
        The tile's split input; None when only the input gradient is wanted.
    delta : ndarray, shape (groups, rows, C_out/groups)
        The output gradient, channel-last on the wide grid (`ShiftedLayout.put_gradient`).
    taps : ndarray, shape (K, groups, C_out/groups, C_in/groups)
    grad_split : ndarray like ``split``
        Receives the input gradient, split; overwritten.
    grad_taps : ndarray, shape (K, groups, C_in/groups, C_out/groups), or None
        Weight gradient of each offset, transposed; added to.
    """
    rows = layout.rows
    grad_split.fill(0)
    for index, (phase_index, shift) in enumerate(layout.taps):
        for group in range(delta.shape[0]):
            gradient = delta[group].T
            if grad_taps is not None:
                assert split is not None
                block = split[group, phase_index, shift : shift + rows]
                gemm(gradient, block.T, grad_taps[index, group].T, accumulate=True, trans_b=True)
            target = grad_split[group, phase_index, shift : shift + rows]
            gemm(taps[index, group].T, gradient, target.T, accumulate=True)


def tile_bytes(geometry: ConvGeometry, c_in: int, c_out: int, itemsize: int, backward: bool) -> Any:
    """``tile_bytes(samples, output_size)`` of the shifted strategy, for the tile plan."""
    phases = math.prod(geometry.stride)

    def tile_bytes(samples: int, out: tuple[int, ...]) -> int:
        grid = math.prod(o - 1 + -(-e // s) for o, s, e in zip(out, geometry.stride, geometry.kernel_extent))
        split = phases * c_in * (samples + 1) * grid  # the slack is less than one sample's grid
        if not backward:
            return itemsize * (split + c_out * samples * grid)
        band = 0 if out == geometry.output_size else samples * c_in * phases * grid
        return itemsize * (2 * split + c_out * samples * grid + band)

    return tile_bytes


def convolve(
    x: NDArray[Any],
    taps: NDArray[Any],
    y: NDArray[Any],
    tiles: Iterable[Any],
    scratch: Any,
) -> None:
    """The forward convolution of ``x`` into ``y``, tile by tile.

    ``taps`` is ``(K, groups, C_out/groups, C_in/groups)``; ``y`` is
    ``(N, C_out, *output_size)``; ``tiles`` the plan's tiles, ``scratch``
    the engine's `Scratch`.
    """
    c_in = x.shape[1]
    groups, c_out = taps.shape[1], y.shape[1]
    for tile in tiles:
        layout = ShiftedLayout(tile.geometry, tile.batch.stop - tile.batch.start)
        split = scratch.get("split", layout.input_shape(groups, c_in), zeroed_for=tile.geometry)
        layout.split(x[tile.batch][_EVERY + tile.input_window], split)
        product = scratch.get("product", (groups, c_out // groups, layout.rows))
        np.copyto(y[tile.batch][_EVERY + tile.window], forward_tile(layout, split, taps, product))


def gradients(
    delta: NDArray[Any],
    x: NDArray[Any] | None,
    taps: NDArray[Any],
    grad_x: NDArray[Any],
    tiles: Iterable[Any],
    scratch: Any,
) -> NDArray[Any] | None:
    """Input gradient into ``grad_x`` (zeros unless whole samples), and the weight gradient.

    Returns
    -------
    ndarray, shape (K, groups, C_in/groups, C_out/groups), or None
        The weight gradient of each offset, transposed; None when ``x`` is None.
    """
    c_out = delta.shape[1]
    k, groups, _, c_in_g = taps.shape
    c_in = groups * c_in_g
    grad_taps = None if x is None else np.zeros((k, groups, c_in_g, c_out // groups), taps.dtype)
    for tile in tiles:
        layout = ShiftedLayout(tile.geometry, tile.batch.stop - tile.batch.start)
        split = None
        if x is not None:
            split = scratch.get("split", layout.input_shape(groups, c_in), zeroed_for=tile.geometry)
            layout.split(x[tile.batch][_EVERY + tile.input_window], split)
        wide = scratch.get("delta", (groups, layout.rows, c_out // groups), zeroed_for=tile.geometry)
        layout.put_gradient(delta[tile.batch][_EVERY + tile.window], wide)
        grad_split = scratch.get("grad_split", layout.input_shape(groups, c_in))
        backward_tile(layout, split, wide, taps, grad_split, grad_taps)
        _merge_tile(layout, grad_split, grad_x, tile, scratch)
    return grad_taps


def _merge_tile(
    layout: ShiftedLayout, grad_split: NDArray[Any], grad_x: NDArray[Any], tile: Any, scratch: Any
) -> None:
    if tile.whole:
        layout.merge(grad_split, grad_x[tile.batch])
        return
    band = scratch.get("band", (layout.samples, grad_x.shape[1], *tile.geometry.input_size))
    layout.merge(grad_split, band)
    # Bands overlap where the kernel's reach does: add each one to the rows it read.
    grad_x[tile.batch][_EVERY + tile.input_window] += band
