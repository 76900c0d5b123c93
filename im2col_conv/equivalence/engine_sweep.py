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

from .. import tuning
from ..geometry import PaddingLike
from .engine_proof import DEFAULT_PATHS, EnginePath, prove_engine
from .probing import strategies_at_small_sizes
from .reference import Layout
from .results import Proof

__all__ = ["FUSED_CHANNELS", "EngineCase", "default_cases", "exhaustive_cases", "same_pairs"]

#: Input channels per group from which the engine makes the column gradient one
#: kernel offset at a time (the "fused" path); the sweep proves that path too.
FUSED_CHANNELS: int = tuning.Tuning().fused_min_channels

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
        Prove it with the thresholds of the shape-chosen paths lowered
        (`strategies_at_small_sizes`), so that it takes them.
    """

    category: str
    layout: Layout
    padding: PaddingLike
    paths: tuple[EnginePath, ...]
    small_strategies: bool = False

    def prove(self) -> Proof:
        """Run `prove_engine` on this case."""
        if not self.small_strategies:
            return prove_engine(self.layout, self.padding, self.paths)
        with strategies_at_small_sizes():
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
        # Fused only while the weight's copy fits a quarter of the tiles' budget: a workspace of
        # several rows per tile (the 1-byte path's single positions and channels are proved elsewhere).
        paths = (DEFAULT_PATHS[0], EnginePath("float64", (128 << 10) + 16384))
        yield EngineCase(category, layout, (pad,), paths, small_strategies=True)
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
    """The paths chosen by layer shape at small sizes: the tile-wide forward, large kernels."""
    wide = "tile-wide forward product"
    for size, k, s, pad, dil in (((9,), 3, 2, (1, 1), 1), ((12,), 2, 3, (0, 2), 2)):
        layout = Layout(size, (k,), (s,), (pad,), (dil,), 2, 2, 1)
        yield EngineCase(wide, layout, (pad,), (), small_strategies=True)
    layout = Layout((3, 8), (2, 3), (1, 2), ((1, 0), (1, 1)), (1, 1), 2, 2, 2)
    yield EngineCase(wide, layout, layout.padding, (), small_strategies=True)
    large = "kernel larger than its output (col2im by windows)"
    boxes = (
        ((6,), (5,), (1,), ((0, 0),), 1),
        ((7,), (4,), (2,), ((1, 2),), 2),
        ((4, 5), (4, 3), (1, 2), ((0, 1), (1, 0)), 1),
        ((3, 3, 4), (3, 2, 4), (1, 1, 1), ((0, 0), (1, 0), (0, 0)), 2),
    )
    for shape, kernel, stride, pads, g in boxes:
        layout = Layout(shape, kernel, stride, pads, (1,) * len(shape), 2 * g, 2, g)
        yield EngineCase(large, layout, pads, DEFAULT_PATHS)


def default_cases() -> list[EngineCase]:
    """The standing sweep: over a thousand geometries, every engine path.

    Returns
    -------
    list of EngineCase
        1-D geometries (sizes 1-7, kernels 1-4, strides 1-3, dilation 1-2,
        five paddings, five channel settings), ``"same"`` padding, random
        2-D and 3-D geometries, pointwise kernels with several samples, the
        fused column gradient, row bands lying in the after-padding, the
        tile-wide forward product, and kernels larger than their output
        (col2im by windows). Each is proved at int64 with the default
        workspace and on one of the tiled paths (workspace 1 byte: single
        positions and one channel at a time; a few samples or rows per tile
        in float64, complex128) in turn; the large kernels on every path.

    Examples
    --------
    >>> len(default_cases()) >= 1000
    True
    """
    cases = [*_one_d(), *_same(), *_multi_d(80, 2, 11), *_multi_d(20, 3, 13), *_special()]
    cases += [*_strategies()]
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
