"""Where a call spends its time: the engine's phases, timed on request.

The engines mark their kinds of work (the lowering copy, the matrix
products, the col2im additions, and pooling's reductions over the kernel
offsets) with `phase`. Nothing is timed unless
a `record_phases` block is open in the calling thread or task, so the
marks cost one check of a module-level count otherwise.

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

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

__all__ = ["PHASES", "phase", "record_phases", "recording"]

#: The phases the engine reports.
PHASES = ("lowering", "matmul", "col2im", "reduction")

_recording: ContextVar[dict[str, float] | None] = ContextVar("im2col_conv_phases", default=None)

#: Number of `record_phases` blocks open in any thread or task. While it is 0,
#: `phase` returns at once without reading the context variable or making a
#: generator; a block open elsewhere only sends `phase` on to that look-up.
_open_blocks = 0
_open_lock = threading.Lock()


class _Nothing:
    """A context manager that does nothing, shared by every unrecorded phase."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING = _Nothing()


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
    global _open_blocks
    spent: dict[str, float] = {}
    token = _recording.set(spent)
    with _open_lock:
        _open_blocks += 1
    try:
        yield spent
    finally:
        with _open_lock:
            _open_blocks -= 1
        _recording.reset(token)


def recording() -> bool:
    """True when a `record_phases` block is open in the calling thread or task.

    For a loop that would otherwise open a `phase` per step: it asks once.
    """
    return bool(_open_blocks) and _recording.get() is not None


def phase(name: str) -> AbstractContextManager[None]:
    """Attribute the time of the block to phase ``name`` if recording, else do nothing.

    Parameters
    ----------
    name : str
        The phase the block's time is added to.

    Returns
    -------
    context manager
        Times the ``with`` block while a recording is open; otherwise costs
        nothing.
    """
    if not _open_blocks:
        return _NOTHING
    spent = _recording.get()
    if spent is None:
        return _NOTHING
    return _timed(name, spent)


@contextmanager
def _timed(name: str, spent: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
