"""The engines' matrix products, timed as the ``"matmul"`` phase.

Every product of the im2col path, whichever module makes it, goes through
this module, so that [`record_phases`][im2col_conv.profiling.record_phases]
counts it in one phase, and so that one place decides which BLAS runs it.

Two BLAS libraries are at hand: NumPy's, behind `np.matmul` (`matmul`),
which takes any strided matrix but only writes ``c = a @ b``; and SciPy's
wrappers (`gemm`), which also accumulate (``c += a @ b``, BLAS's ``beta = 1``)
but take only Fortran-ordered matrices without copying. Each keeps its own
pool of threads, which wait busily for a while after a product, so products
that alternate between the two slow each other down, by 2x and more on the
benchmark host; NumPy's was also the faster of the two on the layers'
products there (``docs/performance.md``). Every default path therefore
multiplies with `matmul`; `gemm` serves the shifted strategy, which needs
accumulation and is taken only on request (`im2col_conv._strategy.STRATEGY`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .profiling import phase, recording

__all__ = ["gemm", "matmul", "row_sums"]

try:
    from scipy.linalg import blas as _blas
except ImportError:  # pragma: no cover - SciPy is a dependency
    _blas = None

_GEMM = {} if _blas is None else {np.dtype(np.float32): _blas.sgemm, np.dtype(np.float64): _blas.dgemm}


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


def gemm(
    a: NDArray[Any],
    b: NDArray[Any],
    c: NDArray[Any],
    *,
    accumulate: bool,
    trans_a: bool = False,
    trans_b: bool = False,
) -> None:
    """``c = [c +] op(a) @ op(b)`` in place, ``op`` a transpose when asked.

    ``c`` must be Fortran-ordered for SciPy's BLAS to write it in place, and
    ``a`` and ``b`` should be, or they are copied first. Dtypes without BLAS
    use `np.matmul` and ``+=`` in the same order, which keeps integers exact.
    """
    routine = _GEMM.get(c.dtype)
    with phase("matmul"):
        if routine is not None and c.flags.f_contiguous:
            routine(1.0, a, b, 1.0 if accumulate else 0.0, c, int(trans_a), int(trans_b), 1)
            return
        result = np.matmul(a.T if trans_a else a, b.T if trans_b else b)
        if accumulate:
            c += result
        else:
            np.copyto(c, result)
