"""Dask graphs of blocks: gathering slabs with their halo, adding overlapping pieces, tree sums.

Each function adds tasks to a graph dictionary; the tasks call the small,
picklable functions of this module on NumPy blocks. Static arguments travel
inside `functools.partial` objects, so the graph never mistakes them for
keys or tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from numpy.typing import NDArray

from ._plan import Slab, chunk_bounds, pieces

__all__ = [
    "Graph",
    "add_pieces",
    "concatenate_nested",
    "exact_sum",
    "take",
]

#: Partial sums added by one task of a tree reduction.
FAN_IN = 8


def concatenate_nested(nested: Any, axis: int = 0) -> NDArray[Any]:
    """Join a nested list of blocks: the outer list along ``axis``, the next along ``axis + 1``, ..."""
    if not isinstance(nested, list):
        return np.asarray(nested)
    parts = [concatenate_nested(part, axis + 1) for part in nested]
    joined: NDArray[Any] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)
    return joined


def take(block: NDArray[Any], where: tuple[Any, ...]) -> NDArray[Any]:
    """``block[where]``."""
    part: NDArray[Any] = block[where]
    return part


def _checked_add(total: NDArray[Any], part: NDArray[Any]) -> None:
    """``total += part``, refusing a 64-bit integer sum that wraps around."""
    if total.dtype.kind == "i":
        result = total + part
        wrapped = ((total ^ result) & (part ^ result)) < 0
    elif total.dtype.kind == "u":
        result = total + part
        wrapped = result < total
    else:
        total += part
        return
    if wrapped.any():
        raise OverflowError(
            f"an exact {total.dtype} sum of overlapping chunks leaves the {total.dtype} range"
        )
    total[...] = result


def add_pieces(
    parts: list[NDArray[Any] | None],
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    placements: Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]],
    base: NDArray[Any] | None = None,
) -> NDArray[Any]:
    """A chunk that is the sum of the overlapping parts of ``parts`` (``(source, target)`` slices)."""
    total = np.zeros(shape, dtype)
    if base is not None:
        total += base.reshape((1, -1) + (1,) * (len(shape) - 2)).astype(dtype)
    for part, (source, target) in zip(parts, placements):
        if part is not None:
            _checked_add(total[target], part[source].astype(dtype, copy=False))
    return total


def exact_sum(parts: list[NDArray[Any]], dtype: np.dtype[Any] | None = None) -> NDArray[Any]:
    """The sum of ``parts``; integers in Python ints, converted to ``dtype`` only when given.

    Raises
    ------
    OverflowError
        If an integer sum does not fit ``dtype``.
    """
    if parts[0].dtype.kind in "iuO":
        total = np.add.reduce([p.astype(object) for p in parts])
        if dtype is None:
            return np.asarray(total, dtype=object)
        info = np.iinfo(dtype)
        flat = np.asarray(total, dtype=object).reshape(-1)
        if flat.size and (min(flat) < info.min or max(flat) > info.max):
            raise OverflowError(f"the exact gradient, summed over chunks, leaves the {dtype} range")
        return np.asarray(total, dtype=object).astype(dtype)
    # float16 partial sums are added in float32 and rounded once, as one call does.
    wide = np.result_type(parts[0].dtype, np.float32)
    result: NDArray[Any] = np.add.reduce([p.astype(wide, copy=False) for p in parts])
    return result if dtype is None else result.astype(dtype, copy=False)


class Graph:
    """A graph under construction, whose arrays share one name prefix."""

    def __init__(self, label: str, *inputs: object) -> None:
        self.token = tokenize(label, *inputs)
        self.label = label
        self.tasks: dict[Any, Any] = {}
        self.dependencies: list[da.Array] = [x for x in inputs if isinstance(x, da.Array)]

    def name(self, what: str) -> str:
        return f"{self.label}-{what}-{self.token}"

    def add(self, key: tuple[Any, ...], task: Any) -> None:
        """Put ``task`` in the graph under ``key``."""
        self.tasks[key] = task

    def constant(self, what: str, value: object) -> str:
        """Put ``value`` (a weight, say) in the graph once; tasks name it by the returned key."""
        key = self.name(what)
        self.tasks[key] = value
        return key

    def array(self, name: str, chunks: Sequence[Sequence[int]], dtype: np.dtype[Any]) -> da.Array:
        graph = HighLevelGraph.from_collections(name, dict(self.tasks), dependencies=self.dependencies)
        return da.Array(graph, name, chunks=tuple(tuple(c) for c in chunks), dtype=dtype)

    def slab(self, x: da.Array, lead: tuple[int, ...], ranges: Sequence[tuple[int, int]]) -> Any:
        """A task building ``x[lead block][..., lo:hi, ...]`` from the chunks it spans."""
        per_axis = [
            pieces(chunk_bounds(x.chunks[len(lead) + i]), lo, hi) for i, (lo, hi) in enumerate(ranges)
        ]

        def nest(axis: int, index: tuple[int, ...], where: tuple[slice, ...]) -> Any:
            if axis == len(per_axis):
                return (partial(take, where=(Ellipsis, *where)), (x.name, *lead, *index))
            return [nest(axis + 1, (*index, i), (*where, s)) for i, s in per_axis[axis]]

        return (partial(concatenate_nested, axis=len(lead)), nest(0, (), ()))

    def scatter(
        self,
        name: str,
        parts: dict[tuple[int, ...], Any],
        slabs: Sequence[Sequence[Slab]],
        lead_chunks: Sequence[Sequence[int]],
        target: Sequence[Sequence[int]],
        dtype: np.dtype[Any],
        base: NDArray[Any] | None = None,
    ) -> da.Array:
        """An array chunked as ``lead_chunks`` and ``target`` (boundaries) summing overlapping parts.

        ``parts[(*lead, *j)]`` is a task for the values block ``j`` adds on its
        slabs ``slabs[axis][j]``; a part may be None (it adds nothing).
        """
        lead_counts = [len(c) for c in lead_chunks]
        sizes = [np.diff(t).tolist() for t in target]
        for lead in np.ndindex(*lead_counts):
            for chunk in np.ndindex(*(len(s) for s in sizes)):
                tlo = [t[k] for t, k in zip(target, chunk)]
                thi = [t[k + 1] for t, k in zip(target, chunk)]
                touching = [
                    [(j, s) for j, s in enumerate(row) if s.lo < h and low < s.hi]
                    for row, low, h in zip(slabs, tlo, thi)
                ]
                keys, placements = [], []
                for combo in np.ndindex(*(len(t) for t in touching)):
                    picked = [touching[a][i] for a, i in enumerate(combo)]
                    source, where = [], []
                    for (_, s), low, h in zip(picked, tlo, thi):
                        start, stop = max(s.lo, low), min(s.hi, h)
                        source.append(slice(start - s.lo, stop - s.lo))
                        where.append(slice(start - low, stop - low))
                    key = (*lead, *(j for j, _ in picked))
                    keys.append(parts[key])
                    placements.append(((Ellipsis, *source), (Ellipsis, *where)))
                shape = (*(c[i] for c, i in zip(lead_chunks, lead)), *(s[k] for s, k in zip(sizes, chunk)))
                call = partial(add_pieces, shape=shape, dtype=dtype, placements=placements, base=base)
                self.add((name, *lead, *chunk), (call, keys))
        return self.array(name, [*lead_chunks, *sizes], dtype)

    def tree_sum(self, name: str, parts: list[Any], shape: tuple[int, ...], dtype: np.dtype[Any]) -> da.Array:
        """A one-chunk array: the sum of the tasks ``parts``, FAN_IN at a time (exact for integers)."""
        level, depth = parts, 0
        while len(level) > FAN_IN:
            keys = []
            for i in range(0, len(level), FAN_IN):
                key = (self.name(f"{name}-partial"), depth, i // FAN_IN)
                self.tasks[key] = (exact_sum, level[i : i + FAN_IN])
                keys.append(key)
            level, depth = keys, depth + 1
        root = self.name(name)
        self.add((root,) + (0,) * len(shape), (partial(exact_sum, dtype=dtype), level))
        return self.array(root, [(n,) for n in shape], dtype)
