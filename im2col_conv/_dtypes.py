"""Which dtype a call returns, and which dtype it computes in.

The rules (the table on the docs page "Dtypes and exactness" is generated
from them):

* integers and bools accumulate in 64 bits, as `numpy.sum` does: the
  result is ``int64`` if any operand is a signed integer or a bool, and
  ``uint64`` if every operand is an unsigned integer;
* floating and complex operands follow `numpy.result_type`, except that
  ``float16`` is computed in ``float32`` and rounded once at the end (the
  matrix products of ``float16`` have no fast path);
* an integer result is computed in ``float64``, at the speed of its BLAS
  products, when a bound on every partial sum is below ``2**53``: every
  integer up to that size is a float64, so each product and sum is exact and
  the conversion back is too. Past that bound it is computed in the integer
  type itself (exact, slower); past the integer type's range the call raises
  `OverflowError` instead of wrapping around.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["CONVERT_SLICE", "EXACT_FLOAT_BOUND", "compute_dtype", "convert", "max_abs", "result_dtype"]

#: Integers of magnitude below this are exact in float64, and so are their sums.
EXACT_FLOAT_BOUND = 2**53


def result_dtype(*dtypes: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype of a sum of products of arrays of these dtypes.

    Examples
    --------
    >>> import numpy as np
    >>> result_dtype(np.dtype(np.int8), np.dtype(np.int8))
    dtype('int64')
    >>> result_dtype(np.dtype(np.uint8), np.dtype(np.uint16))
    dtype('uint64')
    >>> result_dtype(np.dtype(np.uint64), np.dtype(np.int64))
    dtype('int64')
    >>> result_dtype(np.dtype(np.int32), np.dtype(np.float32))
    dtype('float64')
    """
    for d in dtypes:
        if d.isbuiltin != 1:
            return _result_dtype(dtypes)
    return _builtin_result_dtype(dtypes)


def _result_dtype(dtypes: tuple[np.dtype[Any], ...]) -> np.dtype[Any]:
    if all(d.kind in "biu" for d in dtypes):
        unsigned = all(d.kind == "u" for d in dtypes)
        return np.dtype(np.uint64 if unsigned else np.int64)
    return np.result_type(*dtypes)


#: `_result_dtype` of NumPy's own native dtypes without metadata, which are
#: equal only when they are read alike, so that equal arguments may share a result.
_builtin_result_dtype = lru_cache(maxsize=512)(_result_dtype)


def max_abs(array: NDArray[Any]) -> int:
    """The largest magnitude in an integer or bool array, as a Python int (0 if empty)."""
    if array.size == 0:
        return 0
    # min and max as Python ints: abs(int64 minimum) overflows in int64 itself.
    return max(abs(int(array.max())), abs(int(array.min())))


def compute_dtype(result: np.dtype[Any], bound: int, what: str) -> np.dtype[Any]:
    """The dtype in which a call whose result dtype is ``result`` is computed exactly.

    Parameters
    ----------
    result : numpy.dtype
        From `result_dtype`.
    bound : int
        For integer results, an upper bound on the magnitude of every
        partial sum the call forms (ignored otherwise).
    what : str
        Describes the bound, for the error message.

    Raises
    ------
    OverflowError
        If ``bound`` does not fit in the integer result type.

    Examples
    --------
    >>> import numpy as np
    >>> compute_dtype(np.dtype(np.int64), 2**53 - 1, "")
    dtype('float64')
    >>> compute_dtype(np.dtype(np.int64), 2**53, "")
    dtype('int64')
    >>> compute_dtype(np.dtype(np.float16), 0, "")
    dtype('float32')
    """
    if result == np.float16:
        return np.dtype(np.float32)
    if result.kind not in "iu":
        return result
    if bound < EXACT_FLOAT_BOUND:
        return np.dtype(np.float64)
    largest = int(np.iinfo(result).max)
    if bound > largest:
        raise OverflowError(
            f"the exact {result} result cannot be guaranteed: partial sums can reach {bound} "
            f"({what}), more than the {result} maximum {largest}; use smaller values or a float dtype"
        )
    return result


def convert(y: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[Any]:
    """``y`` as ``dtype``; in place, a slice at a time, when the item sizes agree.

    An integer result computed in float64 holds exact integers: converting it
    in its own memory spares a second result-sized array.
    """
    if y.dtype == dtype or y.dtype.itemsize != dtype.itemsize or not y.flags.c_contiguous:
        return y.astype(dtype, copy=False)
    flat, converted = y.reshape(-1), y.reshape(-1).view(dtype)
    step = CONVERT_SLICE // y.dtype.itemsize
    for start in range(0, flat.size, step):
        converted[start : start + step] = flat[start : start + step].astype(dtype)
    return converted.reshape(y.shape)


#: Bytes converted at a time by `convert`.
CONVERT_SLICE = 64 << 10
