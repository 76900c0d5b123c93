"""The engines' matrix products, timed as the ``"matmul"`` phase.

Every product of the im2col path goes through here, so that `record_phases`
counts it in one phase and one place picks the BLAS: NumPy's, behind
`np.matmul`. (SciPy's BLAS keeps a thread pool of its own, whose threads wait
busily after a product: products alternating between the two libraries slowed
each other by 2x and more on the benchmark host, ``docs/performance.md``.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .profiling import phase, recording

__all__ = ["matmul", "row_sums"]


def matmul(a: NDArray[Any], b: NDArray[Any], out: NDArray[Any] | None = None) -> NDArray[Any]:
    """``np.matmul(a, b, out=out)``, its time attributed to the ``"matmul"`` phase."""
    if not recording():  # the common case, without entering a context manager
        return np.matmul(a, b, out=out)
    with phase("matmul"):
        return np.matmul(a, b, out=out)


def row_sums(a: NDArray[Any]) -> NDArray[Any]:
    """The sum of each row (last axis) of ``a``, as one matrix-vector product.

    BLAS reads each row once, with vector instructions, where NumPy's pairwise
    sum over many rows of a few dozen to a few thousand entries took 1.4 to 7x
    as long (``docs/performance.md``); the additions are in BLAS's order. Not a
    phase of its own: callers count it in theirs.
    """
    sums: NDArray[Any] = np.matmul(a, np.ones(a.shape[-1], a.dtype))
    return sums
