"""col2im: every column entry added back onto the input position it was read from.

The adjoint of the lowering and the package's one scatter-add: the public
`col2im`, the convolution's input gradient, the transposed convolution and
the pooling backwards all add their columns with `scatter_add`, tile by tile
with `add_tile`. Columns ``(*lead, *kernel, *grid)`` are added in the shorter
of two loops: a strided slice-add per kernel offset over every window (offset
``k`` lands on ``o * stride + k * dilation``), or, for kernels larger than
their output grid (global pooling), a slice-add per window over its receptive
field. They come as `Blocks`, made one offset or window at a time as they are
added, so a caller can compute each block while it is in cache. A strided last
axis can be added phase by phase (`by_phase`, contiguous; see `_polyphase`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._polyphase import Buffers, phase_geometries
from .geometry import ConvGeometry
from .profiling import phase
from .workspace import Tile

__all__ = ["Blocks", "add_tile", "array_blocks", "col2im_elements", "scatter_add"]


class Blocks(NamedTuple):
    """A column matrix ``(*lead, *kernel, *grid)`` handed out a block at a time.

    ``by_offset(index, offset)`` gives kernel offset ``offset``'s columns ``(*lead, *grid)``
    (``index`` its row-major flat index); ``by_window(position)``, if not None, the columns
    of the window at output ``position``, broadcastable to ``(*lead, *kernel)``.
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

    ``blocks`` are columns ``(*lead, *kernel_size, *grid_size)`` (``grid_size``
    default ``geometry.output_size``); the result ``(*lead, *target_size)``
    (default ``geometry.input_size``) is ``out[..., *x] = sum of columns[..., *k, *o]``
    over ``o * stride + k * dilation - pad_before == x``, zero past every window's
    reach, in ``dtype``. It overwrites ``out`` (any layout) if given. ``allocate(shape)``
    gives scratch memory when the sums cannot be made in ``out`` (padding, or windows
    reaching past the target); by default a new array.
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
    with phase("col2im"):
        if blocks.by_window is not None and buffer_size == geometry.kernel_size and math.prod(grid) == 1:
            # One window reads every position once (global pooling): written, with no zeros to add to.
            np.copyto(buffer, blocks.by_window((0,) * geometry.ndim))
        elif blocks.by_window is not None and math.prod(grid) < geometry.kernel_volume:
            buffer.fill(0)
            for position in itertools.product(*map(range, grid)):
                sums = buffer[_receptive_field(geometry, position)]
                sums += blocks.by_window(position)  # in place: no write-back of a copy
        else:
            buffer.fill(0)
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
    """`scatter_add` into ``out`` (overwritten) phase by phase along its strided last axis.

    Each phase ``r`` (positions ``j * s + r``) is the target of its own stride-1
    convolution there (`phase_geometries`), whose additions are contiguous; the
    phases are then written back into ``out`` in one strided pass.
    """
    s, width = geometry.stride[-1], out.shape[-1]
    lead = out.shape[: out.ndim - geometry.ndim]
    phases = buffers("phases", (s, *out.shape[:-1], -(-width // s)))
    read = {part.residue: part for part in phase_geometries(geometry)}
    for r in range(s):
        phases[r, ..., : read[r].start if r in read else None].fill(0)  # what no window reaches
    scratch, grid = partial(buffers, "scatter"), geometry.output_size
    for part in read.values():

        def local(
            index: int, offset: tuple[int, ...], offsets: tuple[int, ...] = part.offsets
        ) -> NDArray[Any]:
            whole = offset[:-1] + (offsets[offset[-1]],)
            return blocks.by_offset(int(np.ravel_multi_index(whole, geometry.kernel_size)), whole)

        target = phases[part.residue][..., part.start : part.start + part.geometry.input_size[-1]]
        scatter_add(
            Blocks(local), lead, out.dtype, part.geometry, grid_size=grid, out=target, allocate=scratch
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

    Whole samples are written into ``grad``; a band of output rows is scattered
    into a buffer of the input rows it read, then added there, since neighbouring
    bands' windows overlap (``grad`` must start as zeros). ``split`` uses `by_phase`.
    """
    lead = grad[tile.batch].shape[: grad.ndim - tile.geometry.ndim]
    target = grad[tile.batch] if tile.whole else buffers("band", lead + tile.geometry.input_size)
    if split:
        by_phase(blocks, target, tile.geometry, buffers)
    else:
        allocate = partial(buffers, "scatter")
        scatter_add(
            blocks, lead, grad.dtype, tile.geometry, grid_size=tile.grid(grid), out=target, allocate=allocate
        )
    if not tile.whole:
        every = (slice(None),) * (len(lead) - 1)
        key: tuple[Any, ...] = (tile.batch, *every, *tile.input_window)
        grad[key] += target
