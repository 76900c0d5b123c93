"""col2im in whole rows: the column gradient on the wide grid of the input's phases.

The plain col2im adds each kernel offset's block of the column gradient
into a strided window of the input gradient: one short, strided run per
output row, channel and sample. Here each run spans a whole sample.

Layout. The padded input splits into its stride phases, each a grid of
``q = ceil(padded / stride)`` positions per axis, as in the shifted strategy
(`im2col_conv._shifted.ShiftedLayout`, which also says where each kernel
offset reads: a phase and a shift). The *wide* grid has ``q`` positions
along every axis but the first, which keeps the output's length. The output
gradient is written at the output positions of that grid and is zero at its
extra positions; the column gradient ``W^T @ delta`` is then computed on the
wide grid too, channel-first: ``(C_in, rows)``, one column per wide position
of every sample of the tile. An output position and the phase position that
a kernel offset reads from it are then a constant shift apart, so each
offset's block is added to its phase as one contiguous run per channel and
sample. The extra positions carry zeros (``W^T @ 0``), so what they add
where the shift makes them overlap real positions is nothing; this needs a
finite weight, since ``inf * 0`` is NaN, and the engine takes the plain
col2im otherwise. A last pass writes each phase's input positions back into
the input gradient.

This is still col2im: every entry of the column gradient is added onto the
input position its column read, in the same order of kernel offsets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._shifted import ShiftedLayout
from .geometry import ConvGeometry
from .profiling import phase

__all__ = ["WideCol2im", "wide_elements"]

_EVERY = (slice(None), slice(None))

# A layout takes a tenth of a millisecond to make; the same few tiles recur from call to call.
_layout = lru_cache(maxsize=64)(ShiftedLayout)


def wide_elements(geometry: ConvGeometry, out: tuple[int, ...]) -> tuple[int, int, int]:
    """Sizes of the buffers of a tile with output grid ``out``, per input channel.

    Returns the wide positions of one sample (the columns of its column
    gradient and of its output gradient), the phases' positions of one sample,
    and the slack after a tile's phases. Upper bounds for a band of output
    rows, exact for whole samples.
    """
    grid = []
    for o, full, padded, s, e in zip(
        out, geometry.output_size, geometry.padded_size, geometry.stride, geometry.kernel_extent
    ):
        extent = padded if o == full else (o - 1) * s + e
        grid.append(-(-extent // s))
    phases = math.prod(geometry.stride)
    slack_rows = [(e - 1) // s for e, s in zip(geometry.kernel_extent, geometry.stride)]
    slack = sum(r * math.prod(grid[d + 1 :]) for d, r in enumerate(slack_rows))
    return out[0] * math.prod(grid[1:]), phases * math.prod(grid), phases * slack


class WideCol2im:
    """The col2im of one tile in the wide layout.

    Parameters
    ----------
    geometry, samples
        The tile's convolution and its number of samples, as for `ShiftedLayout`.
    get : callable
        ``get(name, shape, zeroed_for=None)``, the engine's scratch buffers.
    """

    def __init__(self, geometry: ConvGeometry, samples: int, get: Callable[..., NDArray[Any]]) -> None:
        self.layout = _layout(geometry, samples)
        self.samples = samples
        self._get = get
        # Along the first axis no extra positions are needed: the rows of one
        # sample and the next stay apart in the phases, whatever the block's length.
        self.grid = (geometry.output_size[0], *self.layout.grid[1:])
        self.rows = samples * math.prod(self.grid)

    def gradient(self, delta: NDArray[Any], groups: int) -> NDArray[Any]:
        """The tile's output gradient on the wide grid, ``(groups, C_out/groups, rows)``.

        ``delta`` is ``(samples, C_out, *output_size)``, any dtype; the
        buffer's extra positions stay zero from one tile to the next, as
        only output positions are ever written.
        """
        layout = self.layout
        c_out = delta.shape[1]
        wide = self._get("delta_wide", (groups, c_out // groups, self.rows), zeroed_for=layout.geometry)
        crop = tuple(slice(0, o) for o in layout.geometry.output_size)
        target = wide.reshape(c_out, self.samples, *self.grid)[_EVERY + crop]
        with phase("lowering"):
            np.copyto(target, delta.swapaxes(0, 1))
        return wide

    def add(self, block: Callable[[int], NDArray[Any]], target: NDArray[Any]) -> None:
        """Add every kernel offset's block into the phases, then write ``target``.

        Parameters
        ----------
        block : callable
            ``block(index)`` is the column gradient of kernel offset
            ``index`` (row-major), shape ``(C_in, rows)``, on the wide grid.
        target : ndarray, shape (samples, C_in, *geometry.input_size)
            Overwritten with the input gradient.
        """
        layout, samples = self.layout, self.samples
        c_in = target.shape[1]
        block_size, phase_size = math.prod(self.grid), math.prod(layout.grid)
        sums = self._get("wide_sums", (len(layout.phases), c_in, layout.rows + layout.slack))
        sums.fill(0)
        for index, (phase_index, shift) in enumerate(layout.taps):
            columns = block(index).reshape(c_in, samples, block_size)
            with phase("col2im"):
                window = sums[phase_index, :, shift : shift + layout.rows].reshape(c_in, samples, phase_size)
                window = window[:, :, :block_size]
                window += columns
        with phase("col2im"):
            for phase_index, grid_part, input_part in layout.input_phases():
                source = sums[phase_index, :, : layout.rows].reshape(c_in, samples, *layout.grid)
                np.copyto(target[(Ellipsis,) + input_part], source[_EVERY + grid_part].swapaxes(0, 1))
