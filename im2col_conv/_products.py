"""The engines' matrix product, timed as the ``"matmul"`` phase.

One function so that every product of the im2col path, whichever module
makes it, is counted in the same phase by
[`record_phases`][im2col_conv.profiling.record_phases].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .profiling import phase, recording

__all__ = ["matmul"]


def matmul(a: NDArray[Any], b: NDArray[Any], out: NDArray[Any] | None = None) -> NDArray[Any]:
    """``np.matmul(a, b, out=out)``, its time attributed to the ``"matmul"`` phase."""
    if not recording():  # the common case, without entering a context manager
        return np.matmul(a, b, out=out)
    with phase("matmul"):
        return np.matmul(a, b, out=out)
