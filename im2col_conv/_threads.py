"""Splitting memory-bound copies over a few threads.

NumPy releases the GIL inside copies and element-wise additions, so the
im2col copy and the col2im additions, which run on one core, can be split
over channel ranges and run on all cores while BLAS is idle between matrix
products. Small pieces of work stay on the calling thread: a thread hand-off
costs more than copying a few hundred kilobytes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["PARALLEL_MIN_BYTES", "max_threads", "run_split"]

#: Below this many bytes of work per call, splitting over threads does not pay.
PARALLEL_MIN_BYTES = 1 << 20

_pool: ThreadPoolExecutor | None = None


@functools.cache
def max_threads() -> int:
    """Number of threads the copies may use: the machine's cores, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max_threads() - 1 or 1, thread_name_prefix="im2col_conv")
    return _pool


def run_split(work: Callable[[int, int], None], length: int, nbytes: int) -> None:
    """Call ``work(start, stop)`` over consecutive parts covering ``range(length)``.

    The parts run concurrently when ``nbytes`` (the size of the whole job) is
    large enough and there is more than one core; otherwise ``work(0, length)``
    runs on the calling thread. ``work`` must touch disjoint memory for
    disjoint ranges.
    """
    parts = min(max_threads(), length)
    if parts <= 1 or nbytes < PARALLEL_MIN_BYTES:
        work(0, length)
        return
    bounds = [length * i // parts for i in range(parts + 1)]
    futures = [_executor().submit(work, bounds[i], bounds[i + 1]) for i in range(1, parts)]
    work(bounds[0], bounds[1])
    for future in futures:
        future.result()
