"""Which output positions each task computes, and which input positions it reads.

Pure arithmetic on one spatial axis at a time, no Dask: the graphs of
``_graph`` are drawn from these ranges. Positions are unpadded input
indices; a window ``o`` of a convolution starts at padded position
``o * stride``, so a block of windows ``[a, b)`` reads the padded range
``[a * stride, (b - 1) * stride + extent)``, which is
`ConvGeometry.band`. Pooling takes a symmetric padding only, so its
blocks read from a start aligned on the stride instead (`pool_slab`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from ..geometry import ConvGeometry

__all__ = [
    "PoolAxis",
    "Slab",
    "block_indices",
    "chunk_bounds",
    "conv_slabs",
    "merge_bounds",
    "pieces",
    "pool_slab",
    "window_bounds",
]


def chunk_bounds(chunks: Sequence[int]) -> tuple[int, ...]:
    """Cumulative boundaries ``(0, c0, c0 + c1, ..., total)`` of a Dask chunk tuple."""
    return tuple(itertools.accumulate(chunks, initial=0))


def window_bounds(input_bounds: Sequence[int], windows: int, stride: int, before: int) -> tuple[int, ...]:
    """Output boundaries that follow the input's chunks.

    Output block ``j`` holds the windows whose first (unpadded) position
    ``o * stride - before`` falls in input chunk ``j``, so every task reads
    about one input chunk plus the reach of its last window.
    """
    starts = {0, windows}
    for c in input_bounds[1:-1]:
        starts.add(min(max(-(-(c + before) // stride), 0), windows))
    return tuple(sorted(starts))


def merge_bounds(bounds: Sequence[int], minimum: int) -> tuple[int, ...]:
    """Drop boundaries until every block but a lone one holds at least ``minimum`` positions.

    Blocks shorter than the overlap of their neighbours' reads would read
    mostly halo; merging them bounds each task's halo by its own part.
    """
    kept = [bounds[0]]
    for b in bounds[1:-1]:
        if b - kept[-1] >= minimum:
            kept.append(b)
    if len(kept) > 1 and bounds[-1] - kept[-1] < minimum:
        kept.pop()
    kept.append(bounds[-1])
    return tuple(kept)


def halo_minimum(stride: int, extent: int) -> int:
    """Windows per block for which the read overlap ``extent - stride`` is at most the block's part."""
    return max(1, -(-(extent - stride) // stride))


class Slab(NamedTuple):
    """What one block of windows reads along one axis.

    Attributes
    ----------
    lo, hi : int
        Unpadded input positions ``[lo, hi)`` read.
    padding : tuple of int
        For a convolution, the ``(before, after)`` padding of the block's own
        call; for pooling, ``(first, count)``: the block's windows are
        windows ``first`` to ``first + count`` of its call.
    """

    lo: int
    hi: int
    padding: tuple[int, int]


def conv_slabs(geometry: ConvGeometry, bounds: Sequence[Sequence[int]]) -> list[list[Slab]]:
    """Per axis, the slab of each block of windows ``[bounds[i][j], bounds[i][j + 1])``."""
    slabs = []
    for axis, edges in enumerate(bounds):
        row = []
        for a, b in itertools.pairwise(edges):
            rows, band = geometry.band(slice(a, b), axis)
            row.append(Slab(rows.start, rows.stop, band.padding[axis]))
        slabs.append(row)
    return slabs


class PoolAxis(NamedTuple):
    """One spatial axis of a pooling call."""

    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    ceil_mode: bool

    @property
    def extent(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    def windows(self, size: int | None = None) -> int:
        """Output size for an input of ``size`` positions (default the axis's own)."""
        n = self.size if size is None else size
        span = n + 2 * self.padding - self.extent
        count = (-(-span // self.stride) if self.ceil_mode else span // self.stride) + 1
        # A last window must start inside the input or the left padding.
        if self.ceil_mode and (count - 1) * self.stride >= n + self.padding:
            count -= 1
        return max(count, 0)


def pool_slab(axis: PoolAxis, a: int, b: int) -> Slab:
    """The slab of pooling windows ``[a, b)``: a call on it, same padding, computes them.

    The call pads its slab on both sides, so the slab starts on a multiple of
    the stride early enough that the windows kept never read the padding its
    call adds inside the input: window ``o`` of the whole input is window
    ``o - lo // stride`` of the call. It reads fewer than ``stride`` positions
    more than the windows reach.
    """
    s, p = axis.stride, axis.padding
    hi = min((b - 1) * s - p + axis.extent, axis.size)
    shift = max(a - -(-p // s), 0)
    # The call's own output must not be empty (a short last slab in ceil mode).
    while shift > 0 and axis.windows(hi - shift * s) < b - shift:
        shift -= 1
    return Slab(shift * s, hi, (a - shift, b - a))


def pieces(bounds: Sequence[int], lo: int, hi: int) -> list[tuple[int, slice]]:
    """The chunks of ``bounds`` that ``[lo, hi)`` overlaps: ``(chunk index, slice in the chunk)``.

    An empty range gives one empty slice, so that a slab of no positions
    still has its shape.
    """
    if hi <= lo:
        index = min(max(next((i for i, b in enumerate(bounds) if b > lo), 1) - 1, 0), len(bounds) - 2)
        return [(index, slice(0, 0))]
    found = []
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        if start < hi and lo < stop:
            found.append((index, slice(max(lo, start) - start, min(hi, stop) - start)))
    return found


def block_indices(counts: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every block index of a grid with ``counts`` blocks per axis."""
    return itertools.product(*(range(c) for c in counts))
