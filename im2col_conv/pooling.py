"""Max and average pooling on the column matrix, N-D, with a col2im backward.

Pooling reads the same windows as a convolution: the column matrix of
`im2col`. Instead of multiplying it by a weight, max pooling takes the
maximum of every column over the kernel rows of each channel, and average
pooling their mean; the backward passes send each output gradient back
through the rows it came from with the convolution's col2im. The column
matrix is never materialised: its rows are strided slices of the input,
reduced one offset at a time (`_pool_engine`).

The functions follow PyTorch's ``torch.nn.functional`` pooling functions,
argument for argument, in any number of spatial dimensions. The number of
spatial dimensions ``d`` is ``len(kernel_size)`` when ``kernel_size`` is a
sequence, which also allows an unbatched ``(C, *spatial)`` input; with an
int ``kernel_size`` the input is taken as batched and ``d = input.ndim - 2``
(the rule of `im2col`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _pool_engine as engine
from ._dask_dispatch import chunked, is_dask
from ._pool_windows import pool_geometry
from ._validation import (
    as_flag,
    as_int,
    as_numeric_array,
    batch_view,
    check_grad_output,
    check_workspace,
    int_tuple,
    is_sequence,
    nonempty_spatial,
    nonzero_int,
    pool_padding,
)
from .geometry import ConvGeometry, IntOrTuple
from .workspace import DEFAULT_WORKSPACE

__all__ = ["avg_pool", "avg_pool_backward", "max_pool", "max_pool_backward"]


class _Call(NamedTuple):
    """A checked pooling call: the batched input (or its shape) and the windows."""

    shape: tuple[int, ...]  # batched (N, C, *spatial)
    unbatched: bool
    geometry: ConvGeometry


def _spatial_dims(kernel_size: object, ndim: int) -> int:
    d = len(kernel_size) if is_sequence(kernel_size) else ndim - 2  # type: ignore[arg-type]
    if d < 1:
        raise ValueError(
            f"input must have at least one spatial dimension: with an int kernel_size it is "
            f"(N, C, *spatial), got {ndim} dimension(s)"
        )
    return d


def _windows(
    shape: tuple[int, ...],
    kernel_size: object,
    stride: object,
    padding: object,
    dilation: object,
    ceil_mode: object,
    name: str,
) -> _Call:
    """Check every argument of a pooling call against an input of ``shape``."""
    d = _spatial_dims(kernel_size, len(shape))
    batched, unbatched = batch_view(np.broadcast_to(np.int8(0), shape), d, name)
    nonempty_spatial(batched.shape, d, name)
    kernel = int_tuple(kernel_size, d, "kernel_size", minimum=1)
    strides = kernel if stride is None else int_tuple(stride, d, "stride", minimum=1)
    pads = pool_padding(padding, kernel)
    dilations = int_tuple(dilation, d, "dilation", minimum=1)
    ceil = as_flag(ceil_mode, "ceil_mode")
    geometry = pool_geometry(batched.shape[2:], kernel, strides, pads, dilations, ceil)
    return _Call(batched.shape, unbatched, geometry)


def _input(value: ArrayLike, name: str, *, ordered: bool) -> NDArray[Any]:
    array = as_numeric_array(value, name)
    if ordered and array.dtype.kind == "c":
        raise TypeError(f"{name} must be real to take a maximum, got dtype {array.dtype}")
    return array


def _result(array: NDArray[Any], unbatched: bool) -> NDArray[Any]:
    return array[0] if unbatched else array


def max_pool(
    input: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    workspace: int = DEFAULT_WORKSPACE,
) -> NDArray[Any] | tuple[NDArray[Any], NDArray[Any]]:
    """Maximum of every window: ``torch.nn.functional.max_pool1d/2d/3d`` in any dimension.

    Parameters
    ----------
    input : array_like, shape (N, C, *spatial) or (C, *spatial)
        Integer or floating input; the result keeps its dtype exactly. The
        unbatched form needs a sequence ``kernel_size``.
    kernel_size : int or sequence of int
        Window size; a sequence fixes the number of spatial dimensions.
    stride : int or sequence of int, optional
        Step between windows (default None, meaning ``kernel_size``:
        non-overlapping windows).
    padding : int or sequence of int, optional
        Implicit padding on both sides, at most ``kernel_size // 2``
        (default 0). Padded positions never win: they act as ``-inf``, or
        the dtype's minimum for integers.
    dilation : int or sequence of int, optional
        Spacing between the elements of a window (default 1).
    ceil_mode : bool, optional
        Round the output size up instead of down (default False), keeping a
        last, partial window when it starts inside the input or the left
        padding.
    return_indices : bool, optional
        Also return where each maximum was found (default False).
    workspace : int, optional
        Bound in bytes on the call's temporary memory (default 64 MiB).

    Returns
    -------
    output : ndarray, shape (N, C, *out) or (C, *out)
    indices : ndarray of int64, same shape, only with return_indices
        Flat index of the winner in its input plane (row-major over
        ``spatial``), as PyTorch's. Ties go to the first maximum in window
        order (row-major); a NaN beats every number, and the last NaN of
        a window wins; a window whose inputs are all ``-inf`` (or the
        integer minimum) points at its first input position. A window that
        reads only padding (possible with dilation) is ``-inf`` (the
        minimum) with index -1, where PyTorch's index is undefined.

    Raises
    ------
    TypeError
        If ``input`` is not real and numeric, or an argument has the wrong type.
    ValueError
        If a size is out of range, ``padding`` exceeds half the kernel, or
        the output would be empty.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1, 5, 2, 2, 0]]])
    >>> max_pool(x, 2)
    array([[[5, 2]]])

    With ``ceil_mode`` the last, partial window is kept; the tie in the
    second window goes to its first element:

    >>> max_pool(x, 2, ceil_mode=True, return_indices=True)
    (array([[[5, 2, 0]]]), array([[[1, 2, 4]]]))
    """
    if is_dask(input):  # the same arguments, by name, to the chunked version
        return chunked().max_pool(**locals())  # type: ignore[no-any-return]
    array = _input(input, "input", ordered=True)
    call = _windows(array.shape, kernel_size, stride, padding, dilation, ceil_mode, "input")
    want = as_flag(return_indices, "return_indices")
    y, indices = engine.max_forward(
        array.reshape(call.shape), call.geometry, check_workspace(workspace), "indices" if want else None
    )
    if indices is None:
        return _result(y, call.unbatched)
    return _result(y, call.unbatched), _result(indices, call.unbatched)


def max_pool_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    *,
    indices: ArrayLike | None = None,
    workspace: int = DEFAULT_WORKSPACE,
) -> NDArray[Any]:
    """Gradient of `max_pool` with respect to its input.

    Each window's output gradient goes to the position that won its
    maximum; positions that win several overlapping windows receive the
    sum. PyTorch computes the same in ``max_pool*d``'s backward.

    Parameters
    ----------
    grad_output : array_like, shape of the forward output
        ``dL/dy``; the result has its dtype.
    input : array_like
        The forward input. Its values are read only when ``indices`` is not
        given, to find every window's winner again.
    kernel_size : int or sequence of int
        Window size, as in the forward call.
    stride : int or sequence of int, optional
        As in the forward call (default None, meaning ``kernel_size``).
    padding : int or sequence of int, optional
        As in the forward call (default 0).
    dilation : int or sequence of int, optional
        As in the forward call (default 1).
    ceil_mode : bool, optional
        As in the forward call (default False).
    indices : array_like of int, shape of the forward output, optional
        The forward's ``return_indices`` result (default None); skips
        finding the winners. Each entry must be -1 or a position its window
        reads.
    workspace : int, optional
        Bound in bytes on the call's temporary memory (default 64 MiB).

    Returns
    -------
    ndarray, shape of input
        ``dL/dinput``, of ``grad_output``'s dtype.

    Raises
    ------
    TypeError, ValueError
        As `max_pool`; also if ``grad_output`` or ``indices`` has the
        wrong shape, or an index is not in its window.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1.0, 5.0, 2.0, 3.0]]])
    >>> max_pool_backward(np.ones((1, 1, 3)), x, 2, stride=1)
    array([[[0., 2., 0., 1.]]])
    """
    if is_dask(grad_output, input, indices):  # the same arguments, by name, to the chunked version
        return chunked().max_pool_backward(**locals())  # type: ignore[no-any-return]
    array = _input(input, "input", ordered=True)
    call = _windows(array.shape, kernel_size, stride, padding, dilation, ceil_mode, "input")
    space = check_workspace(workspace)
    expected = (*call.shape[:2], *call.geometry.output_size)
    grad = check_grad_output(as_numeric_array(grad_output, "grad_output"), expected, call.unbatched)
    if indices is None:
        source = engine.offsets_by_recomputing(array.reshape(call.shape), call.geometry)
        extra = array.dtype.itemsize + 2
    else:
        given = as_numeric_array(indices, "indices")
        if given.dtype.kind not in "iu":
            raise TypeError(f"indices must have an integer dtype, got dtype {given.dtype}")
        if given.shape != np.shape(grad_output):
            raise ValueError(
                f"indices must have grad_output's shape {np.shape(grad_output)}, got {given.shape}"
            )
        source = engine.offsets_from_flat(given.reshape(expected), call.geometry)
        extra = 48
    grad_x = engine.max_backward(grad, call.shape, call.geometry, source, space, extra_bytes=extra)
    return _result(grad_x, call.unbatched)


def _average_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def _divisor(divisor_override: object) -> int | None:
    return None if divisor_override is None else nonzero_int(divisor_override, "divisor_override")


def avg_pool(
    input: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    workspace: int = DEFAULT_WORKSPACE,
) -> NDArray[Any]:
    """Mean of every window: ``torch.nn.functional.avg_pool1d/2d/3d`` in any dimension.

    Parameters
    ----------
    input : array_like, shape (N, C, *spatial) or (C, *spatial)
        Floating, complex or integer input. Integers are averaged in
        float64 and give a float64 result (PyTorch refuses most integer
        dtypes and rounds int64 means towards zero).
    kernel_size : int or sequence of int
        Window size; a sequence fixes the number of spatial dimensions.
    stride : int or sequence of int, optional
        Step between windows (default None, meaning ``kernel_size``).
    padding : int or sequence of int, optional
        Implicit zero padding on both sides, at most ``kernel_size // 2``
        (default 0).
    ceil_mode : bool, optional
        Round the output size up instead of down (default False), as for
        `max_pool`.
    count_include_pad : bool, optional
        Divide by the number of window positions in the input and its
        padding (default True) or in the input only. A ``ceil_mode``
        window's part past the padding is never counted.
    divisor_override : int, optional
        Divide every window's sum by this non-zero int instead (default
        None; ``avg_pool2d``/``avg_pool3d``'s argument, offered here in 1-D
        too).
    workspace : int, optional
        Bound in bytes on the call's temporary memory (default 64 MiB).

    Returns
    -------
    ndarray, shape (N, C, *out) or (C, *out)
        Of ``input``'s dtype, or float64 for integer input.

    Raises
    ------
    TypeError, ValueError
        As `max_pool`, and for a zero ``divisor_override``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1, 5, 2, 2, 0]]])
    >>> avg_pool(x, 2, ceil_mode=True)  # the partial last window divides by 1
    array([[[3., 2., 0.]]])
    >>> avg_pool(x, 3, stride=2, padding=1)
    array([[[2.        , 3.        , 0.66666667]]])
    >>> avg_pool(x, 3, stride=2, padding=1, count_include_pad=False)
    array([[[3., 3., 1.]]])
    """
    if is_dask(input):  # the same arguments, by name, to the chunked version
        return chunked().avg_pool(**locals())  # type: ignore[no-any-return]
    array = _input(input, "input", ordered=False)
    call = _windows(array.shape, kernel_size, stride, padding, 1, ceil_mode, "input")
    include = as_flag(count_include_pad, "count_include_pad")
    override = _divisor(divisor_override)
    dtype = _average_dtype(array.dtype)
    y = engine.avg_forward(
        array.reshape(call.shape), call.geometry, include, override, dtype, check_workspace(workspace)
    )
    return _result(y, call.unbatched)


def avg_pool_backward(
    grad_output: ArrayLike,
    input_shape: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    workspace: int = DEFAULT_WORKSPACE,
) -> NDArray[Any]:
    """Gradient of `avg_pool` with respect to its input.

    Average pooling is linear, so its gradient needs the input's shape
    only: every position receives, from each window that reads it, that
    window's output gradient over its divisor. PyTorch computes the same
    in ``avg_pool*d``'s backward.

    Parameters
    ----------
    grad_output : array_like, shape of the forward output
        ``dL/dy``.
    input_shape : sequence of int
        Shape of the forward input, ``(N, C, *spatial)`` or ``(C, *spatial)``.
    kernel_size : int or sequence of int
        Window size, as in the forward call.
    stride : int or sequence of int, optional
        As in the forward call (default None, meaning ``kernel_size``).
    padding : int or sequence of int, optional
        As in the forward call (default 0).
    ceil_mode : bool, optional
        As in the forward call (default False).
    count_include_pad : bool, optional
        As in the forward call (default True).
    divisor_override : int, optional
        As in the forward call (default None).
    workspace : int, optional
        Bound in bytes on the call's temporary memory (default 64 MiB).

    Returns
    -------
    ndarray, shape input_shape
        ``dL/dinput``, of ``grad_output``'s dtype, or float64 if it is integer.

    Raises
    ------
    TypeError, ValueError
        As `avg_pool`; also if ``grad_output`` has the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool_backward(np.ones((1, 1, 2)), (1, 1, 4), 3, stride=1)
    array([[[0.33333333, 0.66666667, 0.66666667, 0.33333333]]])
    """
    if is_dask(grad_output):  # the same arguments, by name, to the chunked version
        return chunked().avg_pool_backward(**locals())  # type: ignore[no-any-return]
    if not is_sequence(input_shape):
        raise TypeError(f"input_shape must be a sequence of ints, got {input_shape!r}")
    shape = tuple(as_int(n, "input_shape") for n in input_shape)  # type: ignore[union-attr]
    if any(n < 0 for n in shape):
        raise ValueError(f"input_shape must not hold negative sizes, got {input_shape!r}")
    call = _windows(shape, kernel_size, stride, padding, 1, ceil_mode, "input_shape")
    include = as_flag(count_include_pad, "count_include_pad")
    override = _divisor(divisor_override)
    space = check_workspace(workspace)
    expected = (*call.shape[:2], *call.geometry.output_size)
    grad = check_grad_output(as_numeric_array(grad_output, "grad_output"), expected, call.unbatched)
    dtype = _average_dtype(grad.dtype)
    grad_x = engine.avg_backward(grad, call.shape, call.geometry, include, override, dtype, space)
    return _result(grad_x, call.unbatched)
