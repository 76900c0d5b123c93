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

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _engine
from ._arrays import as_numeric_array, batch_view
from .geometry import ConvGeometry, IntOrTuple, PaddingLike, normalize_padding, normalize_tuple
from .workspace import DEFAULT_WORKSPACE, check_workspace

__all__ = ["Columns", "ConvGrads", "conv", "conv_backward", "conv_forward", "conv_transpose"]


class ConvGrads(NamedTuple):
    """Gradients of a summed loss with respect to a convolution's operands.

    Attributes
    ----------
    input : ndarray, shape like ``x``
    weight : ndarray, shape like ``weight``
    bias : ndarray, shape (C_out,)
    """

    input: NDArray[Any]
    weight: NDArray[Any]
    bias: NDArray[Any]


class Columns(NamedTuple):
    """The column matrix of one forward pass, kept so the backward pass need not rebuild it.

    Returned by :func:`conv_forward` and accepted by :func:`conv_backward`.
    Holding it costs ``prod(kernel)`` times the memory of the input.

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


class _Operands(NamedTuple):
    x: NDArray[Any]  # batched (N, C_in, *spatial); cast chunk by chunk, never whole
    weight: NDArray[Any]  # cast to dtype
    geometry: ConvGeometry
    groups: int
    unbatched: bool
    dtype: np.dtype[Any]


def _check_groups(groups: object, c_in: int, c_out: int | None, weight_shape: tuple[int, ...]) -> int:
    """Validate ``groups``; ``c_out=None`` when the output channels are a multiple by construction."""
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {groups!r}")
    g = int(groups)
    if g < 1:
        raise ValueError(f"groups must be >= 1, got {g}")
    if c_out is None and c_in % g:
        raise ValueError(f"groups={g} must divide the input channels ({c_in}); weight shape {weight_shape}")
    if c_out is not None and (c_in % g or c_out % g):
        raise ValueError(
            f"groups={g} must divide both the input channels ({c_in}) and the output channels "
            f"({c_out}); weight shape {weight_shape}"
        )
    return g


def _prepare(
    x: ArrayLike,
    weight: ArrayLike,
    extra: dict[str, ArrayLike | None],
    stride: IntOrTuple,
    padding: PaddingLike,
    dilation: IntOrTuple,
    groups: int,
) -> _Operands:
    """Validate a convolution's operands and build its geometry."""
    x_arr = as_numeric_array(x, "x")
    w_arr = as_numeric_array(weight, "weight")
    extra_arrays = [as_numeric_array(v, k) for k, v in extra.items() if v is not None]
    if w_arr.ndim < 3:
        raise ValueError(
            f"weight must have shape (C_out, C_in/groups, *kernel) with at least one spatial "
            f"dimension, got shape {w_arr.shape}"
        )
    d = w_arr.ndim - 2
    batched, unbatched = batch_view(x_arr, d, "x")
    c_out, c_in_per_group = w_arr.shape[:2]
    g = _check_groups(groups, batched.shape[1], c_out, w_arr.shape)
    if batched.shape[1] != c_in_per_group * g:
        raise ValueError(
            f"x has {batched.shape[1]} channels but weight of shape {w_arr.shape} with groups={g} "
            f"expects {c_in_per_group * g}"
        )
    geometry = ConvGeometry.create(batched.shape[2:], w_arr.shape[2:], stride, padding, dilation)
    dtype = np.result_type(x_arr, w_arr, *extra_arrays)
    return _Operands(batched, w_arr.astype(dtype, copy=False), geometry, g, unbatched, dtype)


def _check_bias(bias: ArrayLike | None, c_out: int, dtype: np.dtype[Any]) -> NDArray[Any] | None:
    if bias is None:
        return None
    b = as_numeric_array(bias, "bias")
    if b.shape != (c_out,):
        raise ValueError(
            f"bias must have shape ({c_out},) (one entry per output channel), got shape {b.shape}"
        )
    return b.astype(dtype, copy=False)


def _add_bias(y: NDArray[Any], bias: NDArray[Any] | None) -> NDArray[Any]:
    if bias is not None:
        y += bias.reshape((-1,) + (1,) * (y.ndim - 2))
    return y


def conv(
    x: ArrayLike,
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
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        Input. The number of spatial dimensions ``d`` is ``weight.ndim - 2``.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        Kernel, in PyTorch's layout.
    bias : array_like, shape (C_out,), optional
        Added to every output position of its channel.
    stride, dilation : int or sequence of int, optional
        Per-dimension stride and kernel dilation (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"`` (output ``ceil(in / stride)``, the odd
        element after), symmetric amounts or ``(before, after)`` pairs.
    groups : int, optional
        Split channels into this many independent convolutions (default 1).
    workspace : int, optional
        Bound in bytes on the temporary memory of the call (default 64 MiB).
        The batch is lowered a few samples at a time to stay within it; a
        single sample whose column matrix is larger still forms one chunk.

    Returns
    -------
    ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Of dtype ``np.result_type(x, weight, bias)``; integer inputs give
        exact integer results. ``out_spatial`` is given by :func:`output_size`.

    Raises
    ------
    TypeError
        For non-numeric arrays or arguments of the wrong type.
    ValueError
        For shapes that do not fit together or an invalid geometry.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(25).reshape(1, 1, 5, 5)
    >>> w = np.ones((1, 1, 3, 3), dtype=int)
    >>> conv(x, w, stride=2)
    array([[[[ 54,  72],
             [144, 162]]]])
    """
    ops = _prepare(x, weight, {"bias": bias}, stride, padding, dilation, groups)
    b = _check_bias(bias, ops.weight.shape[0], ops.dtype)
    y, _ = _engine.forward(ops.x, ops.weight, ops.geometry, ops.groups, ops.dtype, check_workspace(workspace))
    y = _add_bias(y.reshape(y.shape[:2] + ops.geometry.output_size), b)
    return y[0] if ops.unbatched else y


def conv_forward(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> tuple[NDArray[Any], Columns]:
    """:func:`conv`, also returning the column matrix for :func:`conv_backward`.

    Parameters are those of :func:`conv`. The whole column matrix is kept,
    ``prod(kernel)`` times the size of ``x``, so no workspace limit applies.

    Returns
    -------
    y : ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Same as ``conv(x, weight, bias, ...)``.
    columns : Columns
        The im2col of ``x``; pass it as ``conv_backward(..., columns=columns)``
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
    ops = _prepare(x, weight, {"bias": bias}, stride, padding, dilation, groups)
    b = _check_bias(bias, ops.weight.shape[0], ops.dtype)
    y, cols = _engine.forward(
        ops.x, ops.weight, ops.geometry, ops.groups, ops.dtype, DEFAULT_WORKSPACE, keep_columns=True
    )
    if cols is None:  # an empty batch has no columns
        cols = np.zeros((ops.groups, ops.x.shape[1] // ops.groups * ops.geometry.kernel_volume, 0), ops.dtype)
    cols.flags.writeable = False
    y = _add_bias(y.reshape(y.shape[:2] + ops.geometry.output_size), b)
    columns = Columns(cols, ops.x.shape, ops.geometry, ops.groups)
    return (y[0] if ops.unbatched else y), columns


def _check_grad_output(grad_output: ArrayLike, ops: _Operands) -> NDArray[Any]:
    """``grad_output`` as a batched array, checked against the forward output's shape."""
    given = as_numeric_array(grad_output, "grad_output")
    batched = given[np.newaxis] if ops.unbatched else given
    expected = (ops.x.shape[0], ops.weight.shape[0], *ops.geometry.output_size)
    if batched.shape != expected:
        shown = expected[1:] if ops.unbatched else expected
        raise ValueError(f"grad_output must have the forward output's shape {shown}, got {given.shape}")
    return batched


def _check_columns(columns: Columns, ops: _Operands) -> NDArray[Any]:
    if not isinstance(columns, Columns):
        raise TypeError(f"columns must be the Columns returned by conv_forward, got {type(columns).__name__}")
    if (columns.input_shape, columns.geometry, columns.groups) != (ops.x.shape, ops.geometry, ops.groups):
        raise ValueError(
            f"columns were built for input shape {columns.input_shape}, {columns.geometry}, "
            f"groups={columns.groups}; this call has input shape {ops.x.shape}, {ops.geometry}, "
            f"groups={ops.groups}"
        )
    return columns.data.astype(ops.dtype, copy=False)


def conv_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
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

    For a loss ``L`` with ``grad_output = dL/dy`` where ``y = conv(x, weight, ...)``:
    ``dL/dweight = delta @ cols^T`` summed over the batch,
    ``dL/dbias = delta`` summed over batch and positions, and
    ``dL/dx = col2im(weight^T @ delta)``. Gradients are those of the summed
    loss: nothing is divided by the batch size.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Gradient of the loss with respect to the convolution's output; its
        shape must be exactly the forward output's.
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        The forward input.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        The forward kernel.
    stride, padding, dilation, groups
        As given to :func:`conv`.
    columns : Columns, optional
        The column matrix returned by :func:`conv_forward` for this ``x``; if
        given, ``x`` is not lowered again.
    workspace : int, optional
        Bound in bytes on the temporary memory of the call (default 64 MiB),
        as for :func:`conv`.

    Returns
    -------
    ConvGrads
        ``(input, weight, bias)`` gradients, shaped like ``x``, ``weight`` and
        ``(C_out,)``, of dtype ``np.result_type(grad_output, x, weight)``.

    Raises
    ------
    TypeError, ValueError
        As for :func:`conv`, and if ``grad_output`` does not have the forward
        output's shape.

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
    ops = _prepare(x, weight, {"grad_output": grad_output}, stride, padding, dilation, groups)
    geometry, g = ops.geometry, ops.groups
    gy = _check_grad_output(grad_output, ops)
    space = check_workspace(workspace)
    cols = None if columns is None else _check_columns(columns, ops)
    grad_x, grad_w = _engine.backward(gy, ops.x, ops.weight, geometry, g, ops.dtype, space, cols)
    grad_b = gy.sum(axis=(0, *range(2, gy.ndim)), dtype=ops.dtype)
    return ConvGrads(grad_x[0] if ops.unbatched else grad_x, grad_w.reshape(ops.weight.shape), grad_b)


def conv_transpose(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    *,
    workspace: int = DEFAULT_WORKSPACE,
) -> NDArray[Any]:
    """Transposed convolution: the input-gradient map of :func:`conv`, applied to ``x``.

    Follows PyTorch's ``conv_transpose{1,2,3}d``: each spatial output size is
    ``(in - 1) * stride - pad_before - pad_after + dilation * (k - 1) + output_padding + 1``.
    Computed as ``col2im(weight^T @ x)``, the same GEMM and scatter-add as the
    input gradient of :func:`conv_backward`.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
    weight : array_like, shape (C_in, C_out // groups, *kernel)
        PyTorch's layout for transposed convolutions.
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or sequence of int, optional
        Default 1.
    padding : int, sequence of int or of (int, int), or "valid", optional
        Amount removed from each side of the full output (default 0).
        ``"same"`` is not defined for a transposed convolution.
    output_padding : int or sequence of int, optional
        Extra size added after the output in each dimension; every entry
        must be smaller than the stride or the dilation of its dimension.
    groups : int, optional
        Default 1.
    workspace : int, optional
        Bound in bytes on the temporary memory of the call (default 64 MiB).

    Returns
    -------
    ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Of dtype ``np.result_type(x, weight, bias)``.

    Raises
    ------
    TypeError, ValueError
        For malformed arrays or geometry.

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
    x_arr = as_numeric_array(x, "x")
    w_arr = as_numeric_array(weight, "weight")
    if w_arr.ndim < 3:
        raise ValueError(
            f"weight must have shape (C_in, C_out/groups, *kernel) with at least one spatial "
            f"dimension, got shape {w_arr.shape}"
        )
    d = w_arr.ndim - 2
    batched, unbatched = batch_view(x_arr, d, "x")
    c_in = batched.shape[1]
    if c_in != w_arr.shape[0]:
        raise ValueError(f"x has {c_in} channels but weight of shape {w_arr.shape} expects {w_arr.shape[0]}")
    g = _check_groups(groups, c_in, None, w_arr.shape)
    c_out = w_arr.shape[1] * g
    kernel = tuple(w_arr.shape[2:])
    strides = normalize_tuple(stride, d, "stride", minimum=1)
    dilations = normalize_tuple(dilation, d, "dilation", minimum=1)
    if isinstance(padding, str) and padding.lower() != "valid":
        raise ValueError(f"padding must be 'valid', an int or a tuple for conv_transpose, got {padding!r}")
    pads = normalize_padding(padding, kernel, kernel, strides, dilations)
    out_pad = normalize_tuple(output_padding, d, "output_padding", minimum=0)
    for op, s, dl in zip(out_pad, strides, dilations):
        if op >= s and op >= dl:
            raise ValueError(
                f"output_padding {out_pad} must be smaller than either stride {strides} or "
                f"dilation {dilations} in every dimension"
            )
    # The forward convolution whose input gradient this is maps our output
    # back to our input: its geometry drives the scatter-add.
    extent = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilations))
    in_size = batched.shape[2:]
    out_size = tuple(
        (i - 1) * s - b - a + e + op for i, s, (b, a), e, op in zip(in_size, strides, pads, extent, out_pad)
    )
    if any(o < 1 for o in out_size):
        raise ValueError(
            f"conv_transpose output size {out_size} is empty: input size {in_size}, stride {strides}, "
            f"padding {pads}, kernel extent {extent}"
        )
    geometry = ConvGeometry(out_size, kernel, strides, pads, dilations)
    dtype = np.result_type(x_arr, w_arr, *([] if bias is None else [as_numeric_array(bias, "bias")]))
    b = _check_bias(bias, c_out, dtype)
    space = check_workspace(workspace)
    w = w_arr.astype(dtype, copy=False)
    y = _engine.input_gradient(batched, w, geometry, g, dtype, space, grid_size=in_size, target_size=out_size)
    y = _add_bias(y, b)
    return y[0] if unbatched else y
