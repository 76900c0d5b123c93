"""Checks shared by every public entry point that takes arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["as_numeric_array", "batch_view"]


def as_numeric_array(value: ArrayLike, name: str) -> NDArray[Any]:
    """Return ``value`` as an ndarray, refusing dtypes that are not numbers.

    Booleans, strings, objects and datetimes have no meaningful
    multiply-accumulate, so they are rejected rather than silently cast.

    Raises
    ------
    TypeError
        If the dtype is not integer, floating or complex.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}: {exc}") from exc
    if array.dtype.kind not in "iufc":
        raise TypeError(f"{name} must have an integer, floating or complex dtype, got dtype {array.dtype}")
    return array


def batch_view(x: NDArray[Any], spatial_ndim: int, name: str) -> tuple[NDArray[Any], bool]:
    """View ``x`` as batched ``(N, C, *spatial)``; report whether it was unbatched.

    Raises
    ------
    ValueError
        If ``x.ndim`` is neither ``spatial_ndim + 2`` nor ``spatial_ndim + 1``.
    """
    if x.ndim == spatial_ndim + 2:
        return x, False
    if x.ndim == spatial_ndim + 1:
        return x[np.newaxis], True
    raise ValueError(
        f"{name} must have shape (N, C, *spatial) or (C, *spatial) with {spatial_ndim} spatial "
        f"dimension(s), i.e. ndim {spatial_ndim + 2} or {spatial_ndim + 1}; got shape {x.shape}"
    )
