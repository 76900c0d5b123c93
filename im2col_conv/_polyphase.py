"""Strided windows without strided inner loops: the input split by residue along its last axis.

With stride ``s > 1`` along the last spatial axis, every row of the column
matrix reads every ``s``-th element of the input rows, and NumPy's
element-wise loops run several times slower on such a stride than on
contiguous memory (they cannot use SIMD). Splitting the last axis into its
``s`` residue classes ("phases"), ``phase[r][..., j] = x[..., j * s + r]``,
makes every read contiguous: kernel offset ``k`` reads ``o * s + k * d - p``,
which is phase ``(k * d - p) mod s`` at ``o + floor((k * d - p) / s)``.

The split costs one strided pass over the input; the reductions and the
col2im additions that follow, one per kernel offset, then run at full
speed. For the col2im (`im2col_conv._col2im.by_phase`), each phase is the
target of its own convolution of stride 1 along the last axis, whose kernel
is the offsets of that residue (`phase_geometries`). Pooling takes the split
from ``tuning.current().phase_split_min_windows`` windows along the axis on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import tuning
from .geometry import ConvGeometry

__all__ = ["Phase", "Reader", "phase_geometries", "splits"]

#: ``get(name, shape)``: a reusable buffer, as `Scratch.get`.
Buffers = Callable[[str, tuple[int, ...]], NDArray[Any]]


def splits(geometry: ConvGeometry) -> bool:
    """True when the last axis is worth splitting: stride above 1 and long rows of windows."""
    minimum = tuning.current().phase_split_min_windows
    return geometry.stride[-1] > 1 and geometry.output_size[-1] >= minimum


def _length(size: int, residue: int, stride: int) -> int:
    return len(range(residue, size, stride))


class Reader:
    """Reads the rows of a tile's column matrix, from its phases when `splits`.

    Parameters
    ----------
    x : ndarray, shape (nb, C, *input_size)
    geometry : ConvGeometry
    buffers : callable
        ``buffers(name, shape)``; holds the phases: ``x.size`` elements
        (rounded up per row), asked for as the windows' whole reach, so that
        every band of a call fits in the buffer made for the first.
    """

    def __init__(self, x: NDArray[Any], geometry: ConvGeometry, buffers: Buffers) -> None:
        self.x = x
        self.stride = geometry.stride[-1]
        self.phases: NDArray[Any] | None = None
        if splits(geometry) and x.size:
            width = x.shape[-1]
            s = self.stride
            extent = tuple(max(n, r) for n, r in zip(x.shape[2:], geometry.reach()))
            room = buffers("phases", (s, *x.shape[:2], *extent[:-1], -(-extent[-1] // s)))
            phases = room[
                (slice(None),) * 3 + tuple(slice(0, n) for n in x.shape[2:-1]) + (slice(0, -(-width // s)),)
            ]
            for r in range(s):
                np.copyto(phases[r, ..., : _length(width, r, s)], x[..., r::s])
            self.phases = phases

    def __call__(self, inputs: tuple[slice, ...]) -> NDArray[Any]:
        """The input positions ``inputs`` (one slice per spatial axis) as a view."""
        lead = (slice(None), slice(None))
        if self.phases is None:
            return self.x[lead + inputs]
        last = inputs[-1]
        count = len(range(last.start, last.stop, self.stride))
        start = last.start // self.stride
        phase: NDArray[Any] = self.phases[last.start % self.stride]
        view: NDArray[Any] = phase[lead + inputs[:-1] + (slice(start, start + count),)]
        return view


class Phase(NamedTuple):
    """The col2im onto one phase of the last axis, as a convolution of stride 1 there.

    Attributes
    ----------
    residue : int
        The phase ``r``: input positions ``j * s + r``.
    start : int
        First phase position the windows read (earlier ones get nothing).
    geometry : ConvGeometry
        Its input is phase positions ``start:``; its kernel along the last
        axis is ``offsets``; stride 1 and the call's output grid there.
    offsets : tuple of int
        The call's kernel offsets along the last axis in this phase.
    """

    residue: int
    start: int
    geometry: ConvGeometry
    offsets: tuple[int, ...]


def phase_geometries(geometry: ConvGeometry) -> list[Phase]:
    """One `Phase` per residue that some kernel offset reads."""
    width, k = geometry.input_size[-1], geometry.kernel_size[-1]
    s, d, before = geometry.stride[-1], geometry.dilation[-1], geometry.padding[-1][0]
    by_residue: dict[int, list[int]] = {}
    for offset in range(k):
        by_residue.setdefault((offset * d - before) % s, []).append(offset)
    phases = []
    for residue, offsets in sorted(by_residue.items()):
        first = (offsets[0] * d - before) // s
        step = (offsets[1] - offsets[0]) * d // s if len(offsets) > 1 else 1
        start = max(first, 0)
        size = _length(width, residue, s) - start
        if size <= 0:
            continue
        last = (len(offsets),)
        phase = replace(
            geometry,
            input_size=geometry.input_size[:-1] + (size,),
            kernel_size=geometry.kernel_size[:-1] + last,
            stride=geometry.stride[:-1] + (1,),
            dilation=geometry.dilation[:-1] + (step,),
            padding=geometry.padding[:-1] + ((max(-first, 0), 0),),
        )
        phases.append(Phase(residue, start, phase, tuple(offsets)))
    return phases
