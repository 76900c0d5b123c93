"""The named array operations of the direct method: dilate, pad, crop, rotate, correlate.

Each is one step of the reference derivation, on plain arrays whose trailing
axes are spatial. `im2col_conv.direct.formulas` composes them into the
forward pass and the gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._dtypes import result_dtype
from .._validation import as_int, as_numeric_array, int_tuple, is_sequence, weight_rank
from ..geometry import IntOrTuple

__all__ = ["correlate", "crop", "dilate", "pad", "rot180", "subsample"]


def _spatial_steps(a: NDArray[Any], step: IntOrTuple, ndim: int | None, name: str) -> tuple[int, ...]:
    """Per-dimension steps for the trailing ``ndim`` axes of ``a``."""
    if ndim is None:
        ndim = len(step) if is_sequence(step) else a.ndim  # type: ignore[arg-type]
    if not 0 <= ndim <= a.ndim:
        raise ValueError(f"cannot apply {name} to {ndim} trailing axes of an array of shape {a.shape}")
    return int_tuple(step, ndim, name, minimum=1)


def dilate(a: ArrayLike, stride: IntOrTuple, *, ndim: int | None = None) -> NDArray[Any]:
    """Insert ``stride - 1`` zeros between neighbouring entries of the trailing axes.

    This is the document's ``delta^{l_padding}``: the output gradient with
    ``s1 - 1`` zero rows between its rows and ``s2 - 1`` zero columns between
    its columns. The same operation dilates a kernel (kernel dilation is a
    kernel with zeros between its taps).

    Parameters
    ----------
    a : array_like, shape (..., *spatial)
        The array to dilate; leading axes are kept as they are.
    stride : int or sequence of int
        Step between the original entries in the result, per trailing axis.
    ndim : int, optional
        Number of trailing axes to dilate. Defaults to ``len(stride)`` if
        ``stride`` is a sequence, otherwise every axis of ``a``.

    Returns
    -------
    ndarray, shape (..., *((spatial - 1) * stride + 1))
        ``out[..., *(p * stride)] == a[..., *p]``; every other entry is zero.
        A new array of ``a``'s dtype.

    Examples
    --------
    The output gradient of the document's example (2x2, stride 2) becomes 3x3:

    >>> import numpy as np
    >>> dilate(np.array([[1, -2], [3, 4]]), 2)
    array([[ 1,  0, -2],
           [ 0,  0,  0],
           [ 3,  0,  4]])
    >>> dilate(np.ones((2, 1, 3), dtype=int), (3,))
    array([[[1, 0, 0, 1, 0, 0, 1]],
           [[1, 0, 0, 1, 0, 0, 1]]])
    """
    array = as_numeric_array(a, "a")
    steps = _spatial_steps(array, stride, ndim, "stride")
    d = len(steps)
    lead = array.shape[: array.ndim - d]
    size = tuple((n - 1) * s + 1 if n else 0 for n, s in zip(array.shape[array.ndim - d :], steps))
    out = np.zeros(lead + size, dtype=array.dtype)
    out[(Ellipsis,) + tuple(slice(None, None, s) for s in steps)] = array
    return out


def subsample(a: ArrayLike, step: IntOrTuple, *, ndim: int | None = None) -> NDArray[Any]:
    """Keep every ``step``-th entry of the trailing axes, starting with the first.

    The left inverse of `dilate`: ``subsample(dilate(a, s), s) == a``.
    A strided correlation is a stride-1 correlation subsampled this way.

    Parameters
    ----------
    a : array_like, shape (..., *spatial)
    step : int or sequence of int
        Per trailing axis.
    ndim : int, optional
        Number of trailing axes; defaults as for `dilate`.

    Returns
    -------
    ndarray, shape (..., *ceil(spatial / step))
        A new array of ``a``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> subsample(np.arange(7), 3)
    array([0, 3, 6])
    >>> subsample(dilate(np.array([[1, -2], [3, 4]]), 2), 2)
    array([[ 1, -2],
           [ 3,  4]])
    """
    array = as_numeric_array(a, "a")
    steps = _spatial_steps(array, step, ndim, "step")
    kept: NDArray[Any] = array[(Ellipsis,) + tuple(slice(None, None, s) for s in steps)].copy()
    return kept


def _pairs(padding: Sequence[Sequence[int]], a: NDArray[Any], name: str) -> tuple[tuple[int, int], ...]:
    if not is_sequence(padding) or not all(is_sequence(p) and len(p) == 2 for p in padding):
        raise TypeError(f"{name} must be a sequence of (before, after) pairs, got {padding!r}")
    pairs = tuple((as_int(b, name), as_int(e, name)) for b, e in padding)
    if len(pairs) > a.ndim or any(b < 0 or e < 0 for b, e in pairs):
        raise ValueError(
            f"{name} must be non-negative (before, after) pairs for at most {a.ndim} trailing axes, "
            f"got {padding!r}"
        )
    return pairs


def pad(a: ArrayLike, padding: Sequence[Sequence[int]]) -> NDArray[Any]:
    """Surround the trailing axes with zeros: ``(before, after)`` per axis.

    Parameters
    ----------
    a : array_like, shape (..., *spatial)
    padding : sequence of (int, int)
        One ``(before, after)`` pair per trailing axis; ``len(padding)`` axes
        are padded.

    Returns
    -------
    ndarray, shape (..., *(spatial + before + after))
        A new array of ``a``'s dtype.

    Examples
    --------
    The dilated gradient of the document's example, padded by ``k - 1 = 2``:

    >>> import numpy as np
    >>> pad(np.array([[1, 0, -2], [0, 0, 0], [3, 0, 4]]), [(2, 2), (2, 2)])
    array([[ 0,  0,  0,  0,  0,  0,  0],
           [ 0,  0,  0,  0,  0,  0,  0],
           [ 0,  0,  1,  0, -2,  0,  0],
           [ 0,  0,  0,  0,  0,  0,  0],
           [ 0,  0,  3,  0,  4,  0,  0],
           [ 0,  0,  0,  0,  0,  0,  0],
           [ 0,  0,  0,  0,  0,  0,  0]])
    >>> pad(np.ones((1, 2), dtype=int), [(0, 1)])
    array([[1, 1, 0]])
    """
    array = as_numeric_array(a, "a")
    pairs = _pairs(padding, array, "padding")
    d = len(pairs)
    lead, spatial = array.shape[: array.ndim - d], array.shape[array.ndim - d :]
    out = np.zeros(lead + tuple(n + b + e for n, (b, e) in zip(spatial, pairs)), dtype=array.dtype)
    out[(Ellipsis,) + tuple(slice(b, b + n) for n, (b, _) in zip(spatial, pairs))] = array
    return out


def crop(a: ArrayLike, padding: Sequence[Sequence[int]]) -> NDArray[Any]:
    """Remove ``(before, after)`` entries from each trailing axis: the inverse of
    `pad`.

    Parameters
    ----------
    a : array_like, shape (..., *spatial)
    padding : sequence of (int, int)
        One ``(before, after)`` pair per trailing axis.

    Returns
    -------
    ndarray, shape (..., *(spatial - before - after))
        A new array of ``a``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> crop(np.arange(6), [(1, 2)])
    array([1, 2, 3])
    >>> crop(pad(np.ones((2, 2), dtype=int), [(1, 0), (0, 3)]), [(1, 0), (0, 3)])
    array([[1, 1],
           [1, 1]])
    """
    array = as_numeric_array(a, "a")
    pairs = _pairs(padding, array, "crop")
    spatial = array.shape[array.ndim - len(pairs) :]
    if any(b + e > n for (b, e), n in zip(pairs, spatial)):
        raise ValueError(f"cannot crop {pairs} from trailing axes of size {spatial}")
    keep = tuple(slice(b, n - e) for (b, e), n in zip(pairs, spatial))
    cropped: NDArray[Any] = array[(Ellipsis,) + keep].copy()
    return cropped


def rot180(weight: ArrayLike) -> NDArray[Any]:
    """Turn every kernel slice by 180 degrees: reverse all its spatial axes.

    The document's ``rot_{180} W[:, :, c, d]`` for every ``(c, d)``; in any
    number of dimensions, the point reflection ``k -> kernel_size - 1 - k``.

    Parameters
    ----------
    weight : array_like, shape (C_out, C_in/groups, *kernel)

    Returns
    -------
    ndarray, shape (C_out, C_in/groups, *kernel)
        ``out[d, c, *k] == weight[d, c, *(kernel_size - 1 - k)]``; a new array.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]]).reshape(1, 1, 3, 3)
    >>> rot180(w)[0, 0]
    array([[-1,  0,  1],
           [-2,  0,  2],
           [-1,  0,  1]])
    >>> rot180(np.arange(3).reshape(1, 1, 3))
    array([[[2, 1, 0]]])
    """
    array = as_numeric_array(weight, "weight")
    weight_rank(array, "C_out, C_in/groups")
    rotated: NDArray[Any] = np.flip(array, axis=tuple(range(2, array.ndim))).copy()
    return rotated


def correlate(a: ArrayLike, kernel: ArrayLike) -> NDArray[Any]:
    """Stride-1 "valid" cross-correlation, summed over the shared channel axis.

    ``out[n, o, *p] = sum over c, k of kernel[o, c, *k] * a[n, c, *(p + k)]``,
    computed as one accumulation per kernel offset ``k`` over the whole
    un-lowered input. Only multiplications and additions in the common dtype
    are used, so integer inputs give exact results.

    Parameters
    ----------
    a : array_like, shape (N, C, *spatial)
    kernel : array_like, shape (O, C, *kernel_size)
        ``kernel_size <= spatial`` in every dimension.

    Returns
    -------
    ndarray, shape (N, O, *(spatial - kernel_size + 1))
        Sums of integers accumulate in 64 bits (see `im2col_conv.conv`).

    Raises
    ------
    ValueError
        If the channel counts or numbers of dimensions differ, or the kernel
        does not fit.

    Examples
    --------
    >>> import numpy as np
    >>> correlate(np.arange(5).reshape(1, 1, 5), np.array([[[1, 10]]]))
    array([[[10, 21, 32, 43]]])
    """
    x = as_numeric_array(a, "a")
    w = as_numeric_array(kernel, "kernel")
    if x.ndim != w.ndim or x.ndim < 3 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"a (N, C, *spatial) and kernel (O, C, *kernel_size) must share C and the number of "
            f"spatial dimensions, got shapes {x.shape} and {w.shape}"
        )
    spatial, size = x.shape[2:], w.shape[2:]
    if any(k > n for k, n in zip(size, spatial)):
        raise ValueError(f"kernel of spatial size {size} does not fit in input of spatial size {spatial}")
    out_size = tuple(n - k + 1 for n, k in zip(spatial, size))
    total = np.zeros((x.shape[0], w.shape[0], *out_size), dtype=result_dtype(x.dtype, w.dtype))
    every = (slice(None), slice(None))
    spatial_axes = list(range(2, x.ndim))
    if math.prod(out_size) < math.prod(size):
        # A kernel larger than its output (the weight gradient, whose "kernel" is
        # the dilated output gradient): loop over the few output positions instead.
        for position in np.ndindex(*out_size):
            window = tuple(slice(p, p + k) for p, k in zip(position, size))
            # out[n, o, *position] = sum_c sum_k kernel[o, c, *k] * a[n, c, *(position + k)]
            total[every + position] = np.tensordot(
                x[every + window], w, axes=([1, *spatial_axes], [1, *spatial_axes])
            )
        return total
    for offset in np.ndindex(*size):
        window = tuple(slice(k, k + m) for k, m in zip(offset, out_size))
        # out[n, o, *p] += sum_c kernel[o, c, *offset] * a[n, c, *(p + offset)]
        total += np.moveaxis(np.tensordot(x[every + window], w[every + offset], axes=([1], [1])), -1, 1)
    return total
