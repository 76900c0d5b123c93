"""Strided windows without strided inner loops: the input split by residue along its last axis.

With stride ``s > 1`` along the last axis, each column-matrix row reads every
``s``-th input element, and NumPy's element-wise loops run several times slower
on such a stride than on contiguous memory (no SIMD). Split into its ``s``
residue classes ("phases"), ``phase[r][..., j] = x[..., j * s + r]``, every
read is contiguous: offset ``k`` reads ``o * s + k * d - p``, phase
``(k * d - p) mod s`` at ``o + floor((k * d - p) / s)``. The split costs one
strided pass; the reductions and col2im additions, one per offset, then run
at full speed. For col2im (`_col2im.by_phase`) each phase is the target of its
own stride-1 convolution, whose kernel is that residue's offsets
(`phase_geometries`). Pooling splits from ``phase_split_min_windows`` windows on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import tuning
from .geometry import ConvGeometry

__all__ = ["Buffers", "Reader", "phase_geometries", "splits"]

#: ``get(name, shape)``: a reusable buffer, as `Scratch.get`.
Buffers = Callable[[str, tuple[int, ...]], NDArray[Any]]


def splits(geometry: ConvGeometry) -> bool:
    """True when the last axis is worth splitting: stride above 1 and long rows of windows."""
    minimum = tuning.current().phase_split_min_windows
    return geometry.stride[-1] > 1 and geometry.output_size[-1] >= minimum


class Reader:
    """Reads the column-matrix rows of a tile ``x`` ``(nb, C, *input_size)``, from its phases if `splits`.

    The phases' buffer is asked for as the windows' whole reach, so that every
    band of a call fits in the buffer made for the first.
    """

    def __init__(self, x: NDArray[Any], geometry: ConvGeometry, buffers: Buffers) -> None:
        self.x = x
        self.stride = geometry.stride[-1]
        self.phases: NDArray[Any] | None = None
        if splits(geometry) and x.size:
            s, width = self.stride, x.shape[-1]
            extent = tuple(max(n, r) for n, r in zip(x.shape[2:], geometry.reach()))
            room = buffers("phases", (s, *x.shape[:2], *extent[:-1], -(-extent[-1] // s)))
            phases = room[(slice(None),) * 3 + tuple(map(slice, (*x.shape[2:-1], -(-width // s))))]
            for r in range(s):
                np.copyto(phases[r, ..., : len(range(r, width, s))], x[..., r::s])
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
    """The col2im onto phase ``residue`` (positions ``j * s + r``) of the last axis.

    ``geometry`` is a stride-1 convolution there of phase positions ``start:``
    (earlier ones get nothing), whose kernel is the call's last-axis kernel
    ``offsets`` of this residue, over the call's output grid.
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
        size = len(range(residue, width, s)) - start
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
