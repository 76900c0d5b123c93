"""Convolution forward, backward and transposed, as matrix products over im2col columns.

With the input lowered to columns ``cols`` of shape
``(groups, C_in/groups * prod(kernel), N * L)`` and the weight reshaped to
``W`` of shape ``(groups, C_out/groups, C_in/groups * prod(kernel))``
(the loops, tiled to bound memory, are in ``_engine``):

* forward: ``y = W @ cols`` (+ bias);
* weight gradient: ``dW = sum over the batch of delta @ cols^T``;
* bias gradient: ``db = delta`` summed over batch and positions;
* input gradient: ``dx = col2im(W^T @ delta)``.

A transposed convolution is the input-gradient map of a convolution, applied
to its input.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._dask_dispatch import chunked, is_dask
from ._dtypes import compute_dtype, convert, max_abs
from ._engine import Engine
from ._operands import (
    ConvGrads,
    ConvOperands,
    conv_operands,
    grad_output_operand,
    transpose_operands,
)
from ._products import row_sums
from ._validation import check_workspace
from .geometry import ConvGeometry, IntOrTuple, PaddingLike
from .workspace import DEFAULT_WORKSPACE

__all__ = ["Columns", "ConvGrads", "conv", "conv_backward", "conv_forward", "conv_transpose"]


class Columns(NamedTuple):
    """The column matrix of one forward pass, kept so the backward pass need not rebuild it.

    Returned by `conv_forward` and accepted by `conv_backward`. Holding it
    costs ``prod(kernel)`` times the memory of the input.

    Attributes
    ----------
    data : ndarray, shape (groups, C_in/groups * prod(kernel), N * L)
        im2col of the input, grouped, the batch inside the column index
        (column ``n * L + l`` is output position ``l`` of sample ``n``); read-only.
    input_shape : tuple of int
        Batched shape ``(N, C_in, *spatial)`` of the input it was built from.
    geometry : ConvGeometry
        The geometry it was built with.
    groups : int
    """

    data: NDArray[Any]
    input_shape: tuple[int, ...]
    geometry: ConvGeometry
    groups: int


def _finish(y: NDArray[Any], ops: ConvOperands, bias: NDArray[Any] | None = None) -> NDArray[Any]:
    """Add the bias, convert to the result dtype (exact for integers) and drop a batch axis not given."""
    if bias is not None:
        y += bias.reshape((-1,) + (1,) * (y.ndim - 2))
    if y.dtype != ops.dtype:
        y = convert(y, ops.dtype)
    return y[0] if ops.unbatched else y


def _engine(ops: ConvOperands, workspace: object, grid_size: tuple[int, ...] | None = None) -> Engine:
    return Engine(ops.geometry, ops.groups, ops.compute, check_workspace(workspace), grid_size=grid_size)


def _has_products(ops: ConvOperands) -> bool:
    """False when a channel count is zero: every sum is empty and no product is formed."""
    return ops.weight.size > 0


def conv(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    *,
    workspace: int = DEFAULT_WORKSPACE,
) -> NDArray[Any]:
    """N-D convolution (cross-correlation, as in deep learning) by im2col and one matrix product.

    ``y[n, o, *p] = bias[o] + sum over i, k of
    weight[o, i, *k] * x_padded[n, g*C_in/g + i, *(p * stride + k * dilation)]``
    where ``g = o // (C_out / groups)``.

    Parameters
    ----------
    input : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        Input. The number of spatial dimensions ``d`` is ``weight.ndim - 2``.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        Kernel, in PyTorch's layout.
    bias : array_like, shape (C_out,), optional
        Added to every output position of its channel (default None: no bias).
    stride : int or sequence of int, optional
        Per-dimension stride (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"`` (output ``ceil(in / stride)``, the odd
        element after), symmetric amounts or ``(before, after)`` pairs
        (default 0).
    dilation : int or sequence of int, optional
        Per-dimension kernel dilation (default 1).
    groups : int, optional
        Split channels into this many independent convolutions (default 1).
    workspace : int, optional
        Bound in bytes on the temporary memory of the call (default 64 MiB):
        the batch is lowered a few samples, or a band of output rows, at a
        time (see the docs page "Dtypes, exactness and memory").

    Returns
    -------
    ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        ``out_spatial`` is given by `output_size`. Integers and bools
        give exact results accumulated in 64 bits (``int64``, or ``uint64``
        for unsigned operands); floats and complex numbers follow
        `numpy.result_type`; ``float16`` is computed in ``float32``.

    Raises
    ------
    TypeError
        For non-numeric or masked arrays, or arguments of the wrong type.
    ValueError
        For shapes that do not fit together or an invalid geometry.
    OverflowError
        If an integer result could exceed its 64-bit type.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(25).reshape(1, 1, 5, 5)
    >>> w = np.ones((1, 1, 3, 3), dtype=int)
    >>> conv(x, w, stride=2)
    array([[[[ 54,  72],
             [144, 162]]]])
    """
    if is_dask(input):  # the same arguments, by name, to the chunked version
        return chunked().conv(**locals())  # type: ignore[no-any-return]
    ops = conv_operands(input, weight, bias, stride, padding, dilation, groups)
    engine = _engine(ops, workspace)
    if not _has_products(ops):
        return _finish(np.zeros(ops.output_shape, ops.compute), ops, ops.bias)
    y, _ = engine.forward(ops.x, ops.weight)
    return _finish(y, ops, ops.bias)


def conv_forward(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> tuple[NDArray[Any], Columns]:
    """`conv`, also returning the column matrix for `conv_backward`.

    The whole column matrix, ``prod(kernel)`` times the size of ``input``, is
    kept: no workspace limit applies.

    Parameters
    ----------
    input : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        Input, as for `conv`.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        Kernel, in PyTorch's layout.
    bias : array_like, shape (C_out,), optional
        Added to every output position of its channel (default None: no bias).
    stride : int or sequence of int, optional
        Per-dimension stride (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        As for `conv` (default 0).
    dilation : int or sequence of int, optional
        Per-dimension kernel dilation (default 1).
    groups : int, optional
        Number of independent channel groups (default 1).

    Returns
    -------
    y : ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Same as ``conv(input, weight, bias, ...)``.
    columns : Columns
        The im2col of ``input``; pass it as ``conv_backward(..., columns=columns)``
        to skip rebuilding it.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(25).reshape(1, 1, 5, 5)
    >>> w = np.ones((1, 1, 3, 3), dtype=int)
    >>> y, columns = conv_forward(x, w, stride=2)
    >>> columns.data.shape  # (groups, C_in/groups * 3 * 3, N * L)
    (1, 9, 4)
    >>> conv_backward(np.ones_like(y), x, w, stride=2, columns=columns).bias
    array([4])
    """
    ops = conv_operands(input, weight, bias, stride, padding, dilation, groups)
    if _has_products(ops):
        y, cols = _engine(ops, DEFAULT_WORKSPACE).forward(ops.x, ops.weight, keep_columns=True)
        assert cols is not None
    else:
        y = np.zeros(ops.output_shape, ops.compute)
        rows = ops.weight.shape[1] * ops.geometry.kernel_volume
        cols = np.zeros((ops.groups, rows, ops.x.shape[0] * ops.geometry.output_volume), ops.compute)
    cols.setflags(write=False)
    return _finish(y, ops, ops.bias), Columns(cols, ops.x.shape, ops.geometry, ops.groups)


def _check_columns(columns: Columns, ops: ConvOperands) -> NDArray[Any]:
    if not isinstance(columns, Columns):
        raise TypeError(f"columns must be the Columns returned by conv_forward, got {type(columns).__name__}")
    if (columns.input_shape, columns.geometry, columns.groups) != (ops.x.shape, ops.geometry, ops.groups):
        raise ValueError(
            f"columns were built for input shape {columns.input_shape}, {columns.geometry}, "
            f"groups={columns.groups}; this call has input shape {ops.x.shape}, {ops.geometry}, "
            f"groups={ops.groups}"
        )
    return columns.data.astype(ops.compute, copy=False)


def _bias_gradient(gy: NDArray[Any], ops: ConvOperands) -> NDArray[Any]:
    """``gy`` summed over the batch and every position, shape ``(C_out,)``, of the result dtype.

    Integers are summed in the 64-bit result type itself, exactly, after a
    bound on every partial sum is checked (the compute dtype's float64 would
    round sums past ``2**53``).
    """
    axes = (0, *range(2, gy.ndim))
    if ops.dtype.kind in "iu":
        terms = gy.size // gy.shape[1] if gy.shape[1] else 0
        compute_dtype(ops.dtype, max_abs(gy) * terms, f"the bias gradient sums {terms} grad_output entries")
        exact: NDArray[Any] = np.add.reduce(gy, axis=axes, dtype=ops.dtype)
        return exact
    dtype = ops.compute
    if gy.dtype == dtype and dtype.kind in "fc" and gy.flags.c_contiguous:
        n, c = gy.shape[:2]
        # Every (sample, channel) row at once, then the samples: two BLAS matrix-vector products.
        per_sample = row_sums(gy.reshape(n * c, math.prod(gy.shape[2:]))).reshape(n, c)
        return row_sums(per_sample.T).astype(ops.dtype, copy=False)
    total: NDArray[Any] = np.add.reduce(gy, axis=axes, dtype=dtype)
    return total.astype(ops.dtype, copy=False)


def conv_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    weight: ArrayLike,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    *,
    columns: Columns | None = None,
    workspace: int = DEFAULT_WORKSPACE,
) -> ConvGrads:
    """Gradients of a convolution, by matrix products and a col2im scatter-add.

    For a loss ``L`` with ``grad_output = dL/dy`` where ``y = conv(input, weight, ...)``:
    ``dL/dweight = delta @ cols^T`` summed over the batch,
    ``dL/dbias = delta`` summed over batch and positions, and
    ``dL/dx = col2im(weight^T @ delta)``. Gradients are those of the summed
    loss: nothing is divided by the batch size.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Gradient of the loss with respect to the convolution's output; its
        shape must be exactly the forward output's.
    input : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        The forward input.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        The forward kernel.
    stride : int or sequence of int, optional
        As given to `conv` (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        As given to `conv` (default 0).
    dilation : int or sequence of int, optional
        As given to `conv` (default 1).
    groups : int, optional
        As given to `conv` (default 1).
    columns : Columns, optional
        The column matrix returned by `conv_forward` for this ``input``
        (default None); if given, ``input`` is not lowered again.
    workspace : int, optional
        Bound in bytes on the call's temporary memory (default 64 MiB).

    Returns
    -------
    ConvGrads
        ``(input, weight, bias)`` gradients, shaped like ``input``, ``weight``
        and ``(C_out,)``, of the dtype `conv` gives for the operands. Complex
        ones follow PyTorch: ``grad_input = col2im(conj(W)^T @ delta)``,
        ``grad_weight = delta @ conj(cols)^T``.

    Raises
    ------
    TypeError, ValueError, OverflowError
        As for `conv`, and if ``grad_output`` does not have the forward output's shape.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(25).reshape(1, 1, 5, 5)
    >>> w = np.ones((1, 1, 3, 3), dtype=int)
    >>> grads = conv_backward(np.ones((1, 1, 2, 2), dtype=int), x, w, stride=2)
    >>> grads.input[0, 0]
    array([[1, 1, 2, 1, 1],
           [1, 1, 2, 1, 1],
           [2, 2, 4, 2, 2],
           [1, 1, 2, 1, 1],
           [1, 1, 2, 1, 1]])
    >>> grads.bias
    array([4])
    """
    if is_dask(grad_output, input):  # the same arguments, by name, to the chunked version
        return chunked().conv_backward(**locals())  # type: ignore[no-any-return]
    ops = conv_operands(input, weight, None, stride, padding, dilation, groups, grad_output=grad_output)
    gy = grad_output_operand(grad_output, ops)
    engine = _engine(ops, workspace)
    cols = None if columns is None else _check_columns(columns, ops)
    grad_b = _bias_gradient(gy, ops)
    if not _has_products(ops):
        grad_w = np.zeros(ops.weight.shape, ops.dtype)
        return ConvGrads(_finish(np.zeros(ops.x.shape, ops.compute), ops), grad_w, grad_b)
    grad_x, grad_w = engine.backward(gy, ops.x, ops.weight, cols, conjugate=ops.compute.kind == "c")
    grad_w = convert(grad_w.reshape(ops.weight.shape), ops.dtype)
    return ConvGrads(_finish(grad_x, ops), grad_w, grad_b)


def conv_transpose(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
    *,
    workspace: int = DEFAULT_WORKSPACE,
) -> NDArray[Any]:
    """Transposed convolution: the input-gradient map of `conv`, applied to ``input``.

    Follows PyTorch's ``conv_transpose{1,2,3}d``: each spatial output size is
    ``(in - 1) * stride - pad_before - pad_after + dilation * (k - 1) + output_padding + 1``.
    Arguments and their order are PyTorch's (``groups`` before ``dilation``).
    Computed as ``col2im(weight^T @ input)``, the same GEMM and scatter-add as the
    input gradient of `conv_backward`.

    Parameters
    ----------
    input : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        Input of the transposed convolution.
    weight : array_like, shape (C_in, C_out // groups, *kernel)
        PyTorch's layout for transposed convolutions.
    bias : array_like, shape (C_out,), optional
        Added to every output position of its channel (default None).
    stride : int or sequence of int, optional
        Per-dimension stride (default 1).
    padding : int, sequence of int or of (int, int), or "valid", optional
        Amount removed from each side of the full output (default 0).
        ``"same"`` is not defined for a transposed convolution.
    output_padding : int or sequence of int, optional
        Extra size after the output in each dimension (default 0), each
        smaller than the stride or the dilation of its dimension.
    groups : int, optional
        Number of independent channel groups (default 1).
    dilation : int or sequence of int, optional
        Per-dimension kernel dilation (default 1).
    workspace : int, optional
        Bound in bytes on the temporary memory of the call (default 64 MiB).

    Returns
    -------
    ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Of the dtype `conv` gives for the same operands.

    Raises
    ------
    TypeError, ValueError, OverflowError
        For malformed arrays or geometry, or an integer result that could
        exceed its 64-bit type.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 1, 2, 2), dtype=int)
    >>> w = np.ones((1, 1, 3, 3), dtype=int)
    >>> conv_transpose(x, w, stride=2)[0, 0]
    array([[1, 1, 2, 1, 1],
           [1, 1, 2, 1, 1],
           [2, 2, 4, 2, 2],
           [1, 1, 2, 1, 1],
           [1, 1, 2, 1, 1]])
    """
    if is_dask(input):  # the same arguments, by name, to the chunked version
        return chunked().conv_transpose(**locals())  # type: ignore[no-any-return]
    ops = transpose_operands(input, weight, bias, stride, padding, output_padding, groups, dilation)
    if not _has_products(ops):
        size = (ops.x.shape[0], ops.weight.shape[1] * ops.groups, *ops.geometry.input_size)
        return _finish(np.zeros(size, ops.compute), ops, ops.bias)
    engine = _engine(ops, workspace, grid_size=ops.x.shape[2:])
    return _finish(engine.input_gradient(ops.x, ops.weight), ops, ops.bias)
