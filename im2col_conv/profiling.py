"""Where a call spends its time: the engine's phases, timed on request.

The engines mark their kinds of work (the lowering copy, the matrix
products, the col2im additions, and pooling's reductions over the kernel
offsets) with [`phase`][im2col_conv.profiling.phase]. Nothing is timed unless
a [`record_phases`][im2col_conv.profiling.record_phases] block is open in the calling thread or task, so the
marks cost one context-variable look-up each otherwise.

Examples
--------
>>> import numpy as np
>>> import im2col_conv as ic
>>> from im2col_conv.profiling import record_phases
>>> with record_phases() as seconds:
...     _ = ic.conv(np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3)))
>>> sorted(seconds)
['lowering', 'matmul']
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["PHASES", "phase", "record_phases"]

#: The phases the engine reports.
PHASES = ("lowering", "matmul", "col2im", "reduction")

_recording: ContextVar[dict[str, float] | None] = ContextVar("im2col_conv_phases", default=None)


@contextmanager
def record_phases() -> Iterator[dict[str, float]]:
    """Accumulate seconds per phase for every call made inside the block.

    Yields
    ------
    dict of str to float
        Filled as the calls run: seconds spent in each of `PHASES`
        that occurred. Time outside the phases (checks, allocation, the
        batch-first transposes) is the call's total minus their sum.
    """
    spent: dict[str, float] = {}
    token = _recording.set(spent)
    try:
        yield spent
    finally:
        _recording.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Attribute the time of the block to phase ``name`` if recording, else do nothing."""
    spent = _recording.get()
    if spent is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
