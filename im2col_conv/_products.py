"""The engines' matrix products, timed as the ``"matmul"`` phase.

Every product of the im2col path, whichever module makes it, goes through
this module, so that `record_phases` counts it in one phase, and so that one
place decides which BLAS runs it: NumPy's, behind `np.matmul`. (SciPy's BLAS
keeps a thread pool of its own, whose threads wait busily after a product:
products alternating between the two libraries slowed each other by 2x and
more on the benchmark host, ``docs/performance.md``.)
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

    BLAS reads each row once, with vector instructions, where NumPy's
    pairwise sum over many rows of a few dozen to a few thousand entries took
    1.4 to 7x as long (``docs/performance.md``); the order of the additions is
    BLAS's, not NumPy's. Not timed as a phase of its own: callers count it in
    theirs.
    """
    sums: NDArray[Any] = np.matmul(a, np.ones(a.shape[-1], a.dtype))
    return sums
