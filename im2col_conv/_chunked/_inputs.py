"""Arguments of a chunked call: Dask arrays in, small NumPy arrays for everything broadcast.

Every argument is checked by the NumPy function itself, called once on a
batch of zero samples before any graph is built: it raises the same errors
with the same messages, costs no memory, and returns the dtype and shape of
the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import as_numeric_array, check_grad_output

__all__ = ["as_dask", "batched", "grad_like", "small"]


def as_dask(value: object, name: str) -> da.Array:
    """``value`` as a Dask array; NumPy input is chunked by Dask's automatic rule.

    Raises
    ------
    TypeError
        For a dtype that is not a number's.
    """
    if isinstance(value, da.Array):
        if value.dtype.kind not in "biufc":
            raise TypeError(
                f"{name} must have a bool, integer, floating or complex dtype, got dtype {value.dtype}"
            )
        return value
    return da.from_array(as_numeric_array(value, name))  # type: ignore[arg-type]


def small(value: ArrayLike | None, name: str) -> NDArray[Any] | None:
    """A weight or bias as a NumPy array (computed if given lazily), or None."""
    if value is None:
        return None
    if isinstance(value, da.Array):
        value = np.asarray(value.compute())
    return as_numeric_array(value, name)


def batched(
    x: da.Array, spatial: int, refuse: Callable[[NDArray[Any]], object]
) -> tuple[da.Array, bool, NDArray[Any]]:
    """``x`` as ``(N, C, *spatial)``, whether it had no batch axis, and an empty sample of it.

    ``refuse`` is the NumPy call, which raises the library's message for an
    input of the wrong number of dimensions.
    """
    if spatial >= 1 and x.ndim == spatial + 2:
        x, unbatched = x, False
    elif spatial >= 1 and x.ndim == spatial + 1:
        x, unbatched = x[np.newaxis], True
    else:
        refuse(np.broadcast_to(np.zeros((), x.dtype), x.shape))
        raise ValueError(f"input of shape {x.shape} does not fit {spatial} spatial dimension(s)")
    return x, unbatched, np.zeros((0, *x.shape[1:]), x.dtype)


def grad_like(grad_output: object, expected: tuple[int, ...], unbatched: bool) -> da.Array:
    """``grad_output`` as a batched Dask array of the forward output's shape ``expected``.

    Raises
    ------
    ValueError
        Naming both shapes, if they differ.
    """
    gy = as_dask(grad_output, "grad_output")
    check_grad_output(np.broadcast_to(np.int8(0), gy.shape), expected, unbatched)
    return gy[np.newaxis] if unbatched else gy
