"""The grid of geometries that ``python -m im2col_conv.equivalence`` proves with `prove_geometry`."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry_proof import prove_geometry
from .results import Proof

__all__ = ["SweepCase", "sweep_grid"]


@dataclass(frozen=True)
class SweepCase:
    """One geometry of the sweep: the arguments of `prove_geometry`."""

    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    in_channels: int
    out_channels: int

    def prove(self) -> Proof:
        """Run `prove_geometry` on this geometry."""
        return prove_geometry(
            self.input_size,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.in_channels,
            self.out_channels,
        )


def _fits(case: SweepCase) -> bool:
    padded = (n + b + a for n, (b, a) in zip(case.input_size, case.padding))
    return all(d * (k - 1) + 1 <= p for k, d, p in zip(case.kernel_size, case.dilation, padded))


def _cases_1d(
    kernels: Sequence[int], paddings: Sequence[tuple[int, int]], groups: int
) -> Iterator[SweepCase]:
    # Every stride from 1 to 3 and dilation 1 and 2 with each kernel and padding:
    # kernels both smaller and larger than the stride, and strides that do and do
    # not divide. One channel per group keeps each proof small; the channel sums
    # are covered by _channel_cases.
    for k, s, pad, dl in itertools.product(kernels, (1, 2, 3), paddings, (1, 2)):
        yield SweepCase((5,), (k,), (s,), (pad,), (dl,), groups, groups, groups)


def _cases_nd(count: int, ndim: int, sizes: Sequence[int], groups: int, seed: int) -> Iterator[SweepCase]:
    # Mixed per-dimension geometries drawn from a fixed seed: each dimension gets
    # its own kernel, stride, padding and dilation, so no symmetry hides an index slip.
    rng = np.random.default_rng(seed)

    def pick(options: Sequence[Any]) -> Any:
        return options[int(rng.integers(len(options)))]

    made = 0
    while made < count:
        case = SweepCase(
            tuple(pick(sizes) for _ in range(ndim)),
            tuple(pick((1, 2, 3)) for _ in range(ndim)),
            tuple(pick((1, 2, 3)) for _ in range(ndim)),
            tuple(pick(((0, 0), (1, 1), (0, 1), (2, 1))) for _ in range(ndim)),
            tuple(pick((1, 1, 2)) for _ in range(ndim)),
            groups,
            groups,
            groups,
        )
        if _fits(case):
            made += 1
            yield case


def _channel_cases(ndim: int, count: int) -> Iterator[SweepCase]:
    # Several channels per group: the sums over input channels in (4) and over
    # output channels in (8) have more than one term, and channel axes of
    # different lengths cannot be swapped unnoticed.
    size = ((5,), (3, 4), (2, 3, 2))[ndim - 1]
    kernel = ((3,), (2, 2), (2, 1, 2))[ndim - 1]
    settings = (
        # stride, padding, dilation, (groups, in_channels, out_channels)
        (2, (1, 1), 1, (1, 2, 3)),
        (3, (0, 2), 2, (2, 4, 2)),
        (1, (0, 0), 1, (1, 3, 2)),
        (2, (2, 1), 1, (2, 2, 4)),
    )
    for s, pad, dl, (g, c_in, c_out) in settings[:count]:
        yield SweepCase(size, kernel, (s,) * ndim, (pad,) * ndim, (dl,) * ndim, g, c_in, c_out)


def sweep_grid(quick: bool = False) -> list[SweepCase]:
    """The geometries proved by ``python -m im2col_conv.equivalence``.

    Parameters
    ----------
    quick : bool, optional
        A smaller grid (for the test suite) that still has 1-D, 2-D and 3-D
        cases, non-dividing strides, asymmetric padding, dilation and groups.

    Returns
    -------
    list of SweepCase
        Only geometries whose dilated kernel fits in the padded input.

    Examples
    --------
    >>> grid = sweep_grid(quick=True)
    >>> sorted({len(case.input_size) for case in grid})
    [1, 2, 3]
    """
    if quick:
        cases = [
            *_cases_1d((1, 4), ((0, 0), (2, 1)), groups=1),
            *_cases_1d((2,), ((0, 2),), groups=2),
            *_cases_nd(3, 2, (3, 4), groups=1, seed=2),
            *_cases_nd(1, 3, (2, 3), groups=1, seed=3),
            *_channel_cases(1, 2),
        ]
    else:
        cases = [
            *_cases_1d((1, 2, 3, 4), ((0, 0), (1, 1), (0, 2), (2, 1)), groups=1),
            *_cases_1d((3,), ((0, 0), (2, 1)), groups=2),
            *_cases_nd(20, 2, (3, 4), groups=1, seed=2),
            *_cases_nd(2, 2, (3,), groups=2, seed=5),
            *_cases_nd(5, 3, (2, 3), groups=1, seed=3),
            *_cases_nd(1, 3, (2,), groups=2, seed=7),
            *_channel_cases(1, 4),
            *_channel_cases(2, 2),
            *_channel_cases(3, 1),
        ]
    return [case for case in cases if _fits(case)]
