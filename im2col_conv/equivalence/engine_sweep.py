"""The geometries proved by `prove_engine` from the command line.

`default_cases` is the standing sweep (over a thousand geometries, every
engine path); `exhaustive_cases` enumerates whole boxes of small
geometries for ``--exhaustive``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from .. import _strategy
from ..geometry import PaddingLike
from .engine_proof import DEFAULT_PATHS, EnginePath, prove_engine
from .probing import strategies_at_small_sizes
from .reference import Layout
from .results import Proof

__all__ = ["FUSED_CHANNELS", "EngineCase", "default_cases", "exhaustive_cases", "same_pairs"]

#: Input channels per group from which the engine makes the column gradient one
#: kernel offset at a time (the "fused" path); the sweep proves that path too.
FUSED_CHANNELS: int = _strategy.FUSED_MIN_CHANNELS

#: Channel settings ``(groups, C_in, C_out)``.
_CHANNELS = ((1, 1, 1), (1, 2, 3), (2, 2, 2), (2, 4, 2), (2, 2, 4))


@dataclass(frozen=True)
class EngineCase:
    """One geometry of an engine sweep, with the category it is counted under.

    Attributes
    ----------
    category : str
        Row of the summary table, e.g. ``"1-D"`` or ``"pointwise, N > 1"``.
    layout : Layout
    padding : padding argument
        As passed to the functions (``"same"`` or the pairs).
    paths : tuple of EnginePath
    small_strategies : bool
        Prove it with the thresholds of the shape-chosen strategies lowered
        (`strategies_at_small_sizes`), so that it takes them.
    shifted : bool
        Prove it with every pass on the shifted strategy.
    wide : bool
        Prove it with every backward's col2im on the wide grid (`im2col_conv._wide`).
    """

    category: str
    layout: Layout
    padding: PaddingLike
    paths: tuple[EnginePath, ...]
    small_strategies: bool = False
    shifted: bool = False
    wide: bool = False

    def prove(self) -> Proof:
        """Run `prove_engine` on this case."""
        if not (self.small_strategies or self.shifted or self.wide):
            return prove_engine(self.layout, self.padding, self.paths)
        with strategies_at_small_sizes(shifted=self.shifted, wide=self.wide):
            return prove_engine(self.layout, self.padding, self.paths)


def same_pairs(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """``"same"`` padding as documented (TensorFlow's rule): output ``ceil(n / s)``, odd element after.

    Examples
    --------
    >>> same_pairs(7, 3, 2, 1)
    (1, 1)
    >>> same_pairs(6, 4, 1, 1)
    (1, 2)
    """
    total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def _fits(
    size: tuple[int, ...], kernel: tuple[int, ...], pads: tuple[tuple[int, int], ...], dil: tuple[int, ...]
) -> bool:
    return all(d * (k - 1) + 1 <= n + b + a for n, k, (b, a), d in zip(size, kernel, pads, dil))


def _paths(index: int) -> tuple[EnginePath, ...]:
    # Every geometry: int64 at the default workspace, and one tiled path in turn.
    return (DEFAULT_PATHS[0], DEFAULT_PATHS[1 + index % (len(DEFAULT_PATHS) - 1)])


def _one_d() -> Iterator[EngineCase]:
    pads = ((0, 0), (1, 0), (0, 2), (2, 1), (3, 3))
    grid = itertools.product(range(1, 8), (1, 2, 3, 4), (1, 2, 3), (1, 2), pads, range(len(_CHANNELS)))
    for n, k, s, d, pad, c in grid:
        if _fits((n,), (k,), (pad,), (d,)) and (n + k + s + d + c) % 4 == 0:
            g, c_in, c_out = _CHANNELS[c]
            yield EngineCase("1-D", Layout((n,), (k,), (s,), (pad,), (d,), c_in, c_out, g), (pad,), ())


def _same() -> Iterator[EngineCase]:
    for n, k, s, d in itertools.product(range(2, 8), (1, 2, 3, 4), (1, 2, 3), (1, 2)):
        pair = same_pairs(n, k, s, d)
        if (n * k + s + d) % 2 == 0:
            yield EngineCase('padding "same"', Layout((n,), (k,), (s,), (pair,), (d,), 2, 2, 1), "same", ())


def _multi_d(count: int, ndim: int, seed: int) -> Iterator[EngineCase]:
    rng = np.random.default_rng(seed)
    made = 0
    while made < count:
        size = tuple(int(v) for v in rng.integers(1, 5 if ndim == 2 else 4, ndim))
        kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
        stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
        dil = tuple(int(v) for v in rng.integers(1, 3, ndim))
        pads = tuple((int(b), int(a)) for b, a in rng.integers(0, 3, (ndim, 2)))
        g, c_in, c_out = _CHANNELS[int(rng.integers(len(_CHANNELS)))]
        if _fits(size, kernel, pads, dil):
            made += 1
            yield EngineCase(f"{ndim}-D", Layout(size, kernel, stride, pads, dil, c_in, c_out, g), pads, ())


def _special() -> Iterator[EngineCase]:
    for size, g, c_in, c_out in (((5,), 1, 3, 2), ((3, 4), 2, 4, 2), ((2, 2, 3), 1, 2, 2), ((6,), 2, 2, 4)):
        ndim = len(size)
        one = (1,) * ndim
        layout = Layout(size, one, one, ((0, 0),) * ndim, one, c_in, c_out, g)
        yield EngineCase("pointwise (1x1, stride 1), N > 1", layout, layout.padding, ())
    for size, k, s, pad, g in (((4,), 2, 1, (0, 1), 1), ((5,), 3, 2, (1, 1), 1), ((3,), 2, 1, (1, 0), 2)):
        layout = Layout(size, (k,), (s,), (pad,), (1,), FUSED_CHANNELS * g, g, g)
        category = f"fused column gradient (>= {FUSED_CHANNELS} channels)"
        yield EngineCase(category, layout, (pad,), (), small_strategies=True)
    # Bands wholly inside the after-padding: more padding after than the kernel spans.
    for n, k, s, after in ((2, 1, 1, 3), (3, 2, 1, 4), (2, 2, 2, 5), (1, 1, 1, 3)):
        for width in (1, 3):
            size = (n, width) if width > 1 else (n,)
            pads = ((0, after), (1, 1)) if width > 1 else ((0, after),)
            kernel = (k, 2) if width > 1 else (k,)
            ones = (1,) * len(size)
            layout = Layout(size, kernel, (s, 1)[: len(size)], pads, ones, 2, 2, 1)
            yield EngineCase("bands in the after-padding", layout, pads, ())


def _strategies() -> Iterator[EngineCase]:
    """The strategies chosen by layer shape, at small sizes (col2im by phases, wide), and the shifted one."""
    split = "col2im into phases (strided axis)"
    for size, k, s, pad, dil in (((9,), 3, 2, (1, 1), 1), ((12,), 2, 3, (0, 2), 2)):
        layout = Layout(size, (k,), (s,), (pad,), (dil,), 2, 2, 1)
        yield EngineCase(split, layout, (pad,), (), small_strategies=True)
    layout = Layout((3, 8), (2, 3), (1, 2), ((1, 0), (1, 1)), (1, 1), 2, 2, 2)
    yield EngineCase(split, layout, layout.padding, (), small_strategies=True)
    shifted = "shifted strategy (on request)"
    for n, stride, pair, g in ((7, 1, (1, 1), 1), (8, 2, (1, 0), 2)):
        layout = Layout((n,), (3,), (stride,), (pair,), (1,), 2 * g, 2, g)
        yield EngineCase(shifted, layout, (pair,), DEFAULT_PATHS, shifted=True)
    layout = Layout((3, 4), (2, 2), (1, 2), ((0, 1), (1, 1)), (1, 1), 2, 3, 1)
    yield EngineCase(shifted, layout, layout.padding, DEFAULT_PATHS, shifted=True)


def _wide() -> Iterator[EngineCase]:
    """col2im on the wide grid, forced on every backward pass, fused or not."""
    category = "col2im on the wide grid (whole rows)"
    one_d = (((9,), 3, 2, (1, 1), 1, 1), ((12,), 2, 3, (0, 2), 2, 2), ((6,), 4, 5, (0, 0), 1, 1))
    for size, k, s, pad, dil, g in one_d:
        layout = Layout(size, (k,), (s,), (pad,), (dil,), 2 * g, 2, g)
        yield EngineCase(category, layout, (pad,), DEFAULT_PATHS, wide=True)
    for size2, kernel, stride, pads, g in (
        ((3, 8), (2, 3), (1, 2), ((1, 0), (1, 1)), 2),
        ((4, 5), (3, 2), (2, 1), ((0, 2), (1, 0)), 1),
    ):
        layout = Layout(size2, kernel, stride, pads, (1, 1), 2, 2 * g, g)
        yield EngineCase(category, layout, pads, DEFAULT_PATHS, wide=True)
    for size, k, s, pad, _, _ in one_d[:2]:
        layout = Layout(size, (k,), (s,), (pad,), (1,), FUSED_CHANNELS, 1, 1)
        yield EngineCase(f"{category}, fused", layout, (pad,), (), small_strategies=True, wide=True)


def default_cases() -> list[EngineCase]:
    """The standing sweep: over a thousand geometries, every engine path.

    Returns
    -------
    list of EngineCase
        1-D geometries (sizes 1-7, kernels 1-4, strides 1-3, dilation 1-2,
        five paddings, five channel settings), ``"same"`` padding, random
        2-D and 3-D geometries, pointwise kernels with several samples, the
        fused column gradient, row bands lying in the after-padding, and the
        strategies chosen by layer shape (phase-split col2im, col2im on the
        wide grid), and the shifted strategy, which runs only on request. Each is proved at int64 with the
        default workspace and on one of the tiled paths (workspace 1 byte, a
        few samples or rows per tile in float64, complex128) in turn; the
        shifted cases on every path.

    Examples
    --------
    >>> len(default_cases()) >= 1000
    True
    """
    cases = [*_one_d(), *_same(), *_multi_d(80, 2, 11), *_multi_d(20, 3, 13), *_special()]
    cases += [*_strategies(), *_wide()]
    return [replace(c, paths=c.paths or _paths(i)) for i, c in enumerate(cases)]


def exhaustive_cases(ndim: int) -> list[EngineCase]:
    """Every geometry of a box, proved on every path of `DEFAULT_PATHS` in turn.

    Parameters
    ----------
    ndim : int
        1: input 1-10, kernel 1-5, stride 1-4, dilation 1-3, padding 0-3 on
        each side, five channel settings (groups up to 2, channels up to 4).
        2: input 1-4 per dimension, kernel 1-3, stride 1-2, dilation 1,
        padding 0-1 on each side; one channel, or two groups of one, in turn.

    Returns
    -------
    list of EngineCase
    """
    cases: list[EngineCase] = []
    if ndim == 1:
        pads: list[tuple[int, int]] = [(b, a) for b in range(4) for a in range(4)]
        grid = itertools.product(range(1, 11), range(1, 6), range(1, 5), range(1, 4), pads, _CHANNELS)
        for n, k, s, d, pad, (g, c_in, c_out) in grid:
            if _fits((n,), (k,), (pad,), (d,)):
                layout = Layout((n,), (k,), (s,), (pad,), (d,), c_in, c_out, g)
                cases.append(EngineCase("1-D box", layout, (pad,), ()))
    else:
        sides = [(b, a) for b in range(2) for a in range(2)]
        dims = list(itertools.product(range(1, 5), range(1, 4), range(1, 3), sides))
        for index, (first, second) in enumerate(itertools.product(dims, dims)):
            size, kernel = (first[0], second[0]), (first[1], second[1])
            stride = (first[2], second[2])
            pairs = (first[3], second[3])
            if _fits(size, kernel, pairs, (1, 1)):
                g = 1 + index % 2
                layout = Layout(size, kernel, stride, pairs, (1, 1), g, g, g)
                cases.append(EngineCase("2-D box", layout, pairs, ()))
    return [
        EngineCase(c.category, c.layout, c.padding, (DEFAULT_PATHS[i % len(DEFAULT_PATHS)],))
        for i, c in enumerate(cases)
    ]
