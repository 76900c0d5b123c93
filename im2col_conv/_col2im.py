"""col2im: every column entry added back onto the input position it was read from.

The adjoint of the lowering, and the one scatter-add of the package: the
public `col2im`, the convolution's input gradient, the transposed
convolution and the pooling backwards all add their column matrices with
`scatter_add`, tile by tile with `add_tile`.

A column matrix ``(*lead, *kernel, *grid)`` can be added back in two
orders, and `scatter_add` takes the shorter loop:

* one strided slice-add per kernel offset over every window (offset ``k``
  lands on ``o * stride + k * dilation``): ``prod(kernel)`` additions of
  the size of the output grid, the usual case;
* one slice-add per window over its whole (dilated) receptive field:
  ``prod(grid)`` additions of the size of the kernel, for kernels larger
  than their output grid (global pooling, a kernel as large as its input).

The columns come as `Blocks`: functions that make the columns of one
offset, or of one window, when they are added, so that a caller can compute
each block right before it is added, while it is in cache, instead of
materialising all of them. A strided last axis can also be added phase by
phase (`by_phase`: contiguous additions, see `im2col_conv._polyphase`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._polyphase import phase_geometries
from .geometry import ConvGeometry
from .profiling import phase
from .workspace import Tile

__all__ = ["Blocks", "add_tile", "array_blocks", "col2im_elements", "scatter_add"]

#: ``get(name, shape)``: a reusable buffer, as `Scratch.get`.
Buffers = Callable[[str, tuple[int, ...]], NDArray[Any]]


class Blocks(NamedTuple):
    """A column matrix ``(*lead, *kernel, *grid)`` handed out a block at a time.

    Attributes
    ----------
    by_offset : callable
        ``by_offset(index, offset)``: the columns of kernel offset ``offset``
        (flat index ``index``, row-major), shape ``(*lead, *grid)``.
    by_window : callable or None
        ``by_window(position)``: the columns of the window at output position
        ``position``, broadcastable to ``(*lead, *kernel)``; None when only
        offsets can be made.
    """

    by_offset: Callable[[int, tuple[int, ...]], NDArray[Any]]
    by_window: Callable[[tuple[int, ...]], NDArray[Any]] | None = None


def array_blocks(columns: NDArray[Any], ndim: int) -> Blocks:
    """`Blocks` of a column array ``(*lead, *kernel, *grid)`` with ``ndim`` spatial axes."""
    every = (slice(None),) * ndim

    def by_offset(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
        key: tuple[Any, ...] = (Ellipsis, *offset, *every)
        block: NDArray[Any] = columns[key]
        return block

    def by_window(position: tuple[int, ...]) -> NDArray[Any]:
        key: tuple[Any, ...] = (Ellipsis, *position)
        block: NDArray[Any] = columns[key]
        return block

    return Blocks(by_offset, by_window)


@lru_cache(maxsize=256)
def _layout(
    geometry: ConvGeometry, grid: tuple[int, ...], target: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    """The accumulation buffer's size (every window, and the crop), and the crop."""
    before = tuple(b for b, _ in geometry.padding)
    buffer_size = tuple(max(r, b + t) for r, b, t in zip(geometry.reach(grid), before, target))
    crop = (Ellipsis, *(slice(b, b + t) for b, t in zip(before, target)))
    return buffer_size, crop


@lru_cache(maxsize=256)
def _offset_windows(geometry: ConvGeometry, grid: tuple[int, ...]) -> tuple[tuple[Any, ...], ...]:
    """For each kernel offset (row-major), the buffer positions its columns land on."""
    windows = []
    for offset in itertools.product(*(range(k) for k in geometry.kernel_size)):
        steps = zip(offset, geometry.dilation, grid, geometry.stride)
        windows.append((Ellipsis, *(slice(k * d, k * d + (g - 1) * s + 1, s) for k, d, g, s in steps)))
    return tuple(windows)


def _receptive_field(geometry: ConvGeometry, position: tuple[int, ...]) -> tuple[Any, ...]:
    """The buffer positions the window at ``position`` reads."""
    steps = zip(position, geometry.stride, geometry.kernel_extent, geometry.dilation)
    return (Ellipsis, *(slice(o * s, o * s + e, d) for o, s, e, d in steps))


def scatter_add(
    blocks: Blocks,
    lead: tuple[int, ...],
    dtype: DTypeLike,
    geometry: ConvGeometry,
    *,
    grid_size: tuple[int, ...] | None = None,
    target_size: tuple[int, ...] | None = None,
    out: NDArray[Any] | None = None,
    allocate: Callable[[tuple[int, ...]], NDArray[Any]] | None = None,
) -> NDArray[Any]:
    """Add every column entry onto the position it was read from.

    Parameters
    ----------
    blocks : Blocks
        The columns, shape ``(*lead, *kernel_size, *grid_size)``.
    lead : tuple of int
        Leading (batch and channel) axes.
    dtype : data-type
        dtype of the sums.
    geometry : ConvGeometry
        Supplies kernel size, stride, dilation and the leading padding.
    grid_size : tuple of int, optional
        Window positions per dimension; default ``geometry.output_size``.
        A transposed convolution passes its input size.
    target_size : tuple of int, optional
        Size of the returned spatial axes; default ``geometry.input_size``.
        Positions past the reach of every window are zero.
    out : ndarray, shape (*lead, *target_size), optional
        Where to write the result (overwritten, not added to); any layout.
    allocate : callable, optional
        ``allocate(shape)`` returns scratch memory for the accumulation when
        it cannot happen in ``out`` (padding, or windows reaching past the
        target); by default a new array.

    Returns
    -------
    ndarray, shape (*lead, *target_size)
        ``out[..., *x] = sum of columns[..., *k, *o]`` over all ``k, o`` with
        ``o * stride + k * dilation - pad_before == x``.
    """
    grid = geometry.output_size if grid_size is None else grid_size
    target = geometry.input_size if target_size is None else target_size
    buffer_size, crop = _layout(geometry, grid, target)
    if buffer_size == target and out is not None:
        buffer = out
    elif allocate is not None:
        buffer = allocate(lead + buffer_size)
    else:
        buffer = np.empty(lead + buffer_size, dtype=dtype)
    buffer.fill(0)
    with phase("col2im"):
        if blocks.by_window is not None and math.prod(grid) < geometry.kernel_volume:
            for position in itertools.product(*map(range, grid)):
                sums = buffer[_receptive_field(geometry, position)]
                sums += blocks.by_window(position)  # in place: no write-back of a copy
        else:
            for index, (offset, window) in enumerate(
                zip(itertools.product(*map(range, geometry.kernel_size)), _offset_windows(geometry, grid))
            ):
                sums = buffer[window]
                sums += blocks.by_offset(index, offset)
    if buffer is out or (buffer_size == target and out is None):
        return buffer
    if out is None:
        return np.ascontiguousarray(buffer[crop])
    np.copyto(out, buffer[crop])
    return out


def by_phase(blocks: Blocks, out: NDArray[Any], geometry: ConvGeometry, buffers: Buffers) -> None:
    """`scatter_add` into ``out`` phase by phase along its strided last axis.

    Each phase ``r`` (positions ``j * s + r``) is the target of its own
    convolution of stride 1 along that axis, whose kernel is the offsets of
    that residue (`phase_geometries`): its additions are contiguous. The
    phases are then written back into ``out`` (overwritten) in one strided
    pass.
    """
    s, width = geometry.stride[-1], out.shape[-1]
    lead = out.shape[: out.ndim - geometry.ndim]
    phases = buffers("phases", (s, *out.shape[:-1], -(-width // s)))
    read = {part.residue: part for part in phase_geometries(geometry)}
    for r in range(s):
        phases[r, ..., : read[r].start if r in read else None].fill(0)  # what no window reaches
    for part in read.values():

        def local(
            index: int, offset: tuple[int, ...], offsets: tuple[int, ...] = part.offsets
        ) -> NDArray[Any]:
            whole = offset[:-1] + (offsets[offset[-1]],)
            return blocks.by_offset(int(np.ravel_multi_index(whole, geometry.kernel_size)), whole)

        size = part.geometry.input_size[-1]
        scatter_add(
            Blocks(local),
            lead,
            out.dtype,
            part.geometry,
            grid_size=geometry.output_size,
            out=phases[part.residue][..., part.start : part.start + size],
            allocate=lambda shape: buffers("scatter", shape),
        )
    for r in range(s):
        out[..., r::s] = phases[r, ..., : len(range(r, width, s))]


def col2im_elements(
    geometry: ConvGeometry, channels: int, samples: int, grid: tuple[int, ...], whole: bool, split: bool
) -> int:
    """Elements `add_tile` holds for a tile of output grid ``grid``.

    Its accumulation buffer (the windows' reach, or the whole input), a cut
    sample's band gradient, and with ``split`` the phases.
    """
    reach = math.prod(geometry.reach(grid))
    buffer = max(reach, math.prod(geometry.input_size)) if whole else reach
    return samples * channels * (buffer * (2 if split else 1) + (0 if whole else reach))


def add_tile(
    grad: NDArray[Any], blocks: Blocks, tile: Tile, buffers: Buffers, *, grid: tuple[int, ...], split: bool
) -> None:
    """col2im of one tile's columns into ``grad`` ``(N, *channels, *input_size)``.

    A tile of whole samples is written into its samples of ``grad``; a band
    of output rows is scattered into a buffer of the input rows it read,
    then added there, since the windows of neighbouring bands overlap
    (``grad`` must then start as zeros). ``split`` adds by `by_phase`.
    """
    lead = grad[tile.batch].shape[: grad.ndim - tile.geometry.ndim]
    if tile.whole:
        target = grad[tile.batch]
    else:
        target = buffers("band", lead + tile.geometry.input_size)
    if split:
        by_phase(blocks, target, tile.geometry, buffers)
    else:
        scatter_add(
            blocks,
            lead,
            grad.dtype,
            tile.geometry,
            grid_size=tile.grid(grid),
            out=target,
            allocate=lambda shape: buffers("scatter", shape),
        )
    if not tile.whole:
        every = (slice(None),) * (len(lead) - 1)
        key: tuple[Any, ...] = (tile.batch, *every, *tile.input_window)
        grad[key] += target
