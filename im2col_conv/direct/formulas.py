"""The direct method's formulas: (4) forward, (5) weight, (6) bias and (8) input gradient.

Built from the steps of `im2col_conv.direct.steps`; arguments are
checked by the same rules as `im2col_conv.conv`, so both formulations
accept and refuse the same calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._operands import ConvGrads, conv_operands, for_gradients, grad_output_operand
from ..geometry import ConvGeometry, IntOrTuple, PaddingLike
from .steps import correlate, crop, dilate, pad, rot180, subsample

__all__ = ["conv", "conv_backward"]


def _group_slices(channels: int, groups: int) -> list[slice]:
    per = channels // groups
    return [slice(g * per, (g + 1) * per) for g in range(groups)]


def _direct_forward(
    x: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry, groups: int
) -> NDArray[Any]:
    """Formula (4) on a batched, validated input (no bias)."""
    # Padding: the document pads nothing; zero padding is a larger input.
    x_padded = pad(x, geometry.padding)
    # Kernel dilation: a dilated kernel is the kernel with zeros between its taps.
    w_dilated = dilate(weight, geometry.dilation)
    # Groups: each group is an independent convolution of its own channels.
    blocks = [
        correlate(x_padded[:, ci], w_dilated[co])
        for ci, co in zip(_group_slices(x.shape[1], groups), _group_slices(weight.shape[0], groups))
    ]
    # Stride: formula (4) reads the window at i * s; that is every s-th window of stride 1.
    return subsample(np.concatenate(blocks, axis=1), geometry.stride)


def conv(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> NDArray[Any]:
    """Forward convolution by formula (4): a sliding-window correlation.

    ``z^l[d, i, j] = sum_c sum_m sum_n W[m, n, c, d] * z^{l-1}[c, i*s1 + m, j*s2 + n] + b[d]``,
    in any number of dimensions, computed as a stride-1 correlation of the
    padded input with the dilated kernel, of which every ``stride``-th window
    is kept. Same arguments, results and errors as `im2col_conv.conv`.

    Parameters
    ----------
    input : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        The layer's input ``z^{l-1}``.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        The kernel ``W``, in PyTorch's layout.
    bias : array_like, shape (C_out,), optional
        The bias ``b`` (default None: no bias).
    stride : int or sequence of int, optional
        Per-dimension stride (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"``, symmetric amounts or ``(before, after)``
        pairs (default 0).
    dilation : int or sequence of int, optional
        Per-dimension kernel dilation (default 1).
    groups : int, optional
        Number of independent channel groups (default 1).

    Returns
    -------
    ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Of the dtype `im2col_conv.conv` returns.

    Raises
    ------
    TypeError, ValueError
        As `im2col_conv.conv`.

    Examples
    --------
    The document's example, a 5x5 input, a 3x3 kernel, stride 2:

    >>> import numpy as np
    >>> x = np.arange(25).reshape(1, 1, 5, 5)
    >>> w = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]]).reshape(1, 1, 3, 3)
    >>> conv(x, w, bias=[3], stride=2)
    array([[[[-5, -5],
             [-5, -5]]]])
    """
    ops = conv_operands(input, weight, bias, stride, padding, dilation, groups)
    y = _direct_forward(ops.x.astype(ops.compute, copy=False), ops.weight, ops.geometry, ops.groups)
    if ops.bias is not None:
        # "+ b[d]": one bias per output channel, added at every position.
        y += ops.bias.reshape((-1,) + (1,) * ops.geometry.ndim)
    y = y.astype(ops.dtype, copy=False)
    return y[0] if ops.unbatched else y


def conv_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    weight: ArrayLike,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> ConvGrads:
    """Gradients of a convolution by formulas (5), (6) and (8) of the document.

    With ``delta = grad_output`` and ``delta_s = dilate(delta, stride)``:

    * weight, formula (5): ``dL/dW[m, n, c, d] = sum_i sum_j delta[d, i, j] *
      z[c, i*s1 + m, j*s2 + n]``, i.e. the padded input correlated with
      ``delta_s``, summed over the batch;
    * bias, formula (6): ``dL/db[d] = sum_i sum_j delta[d, i, j]``;
    * input, formula (8): ``dL/dz[c, i, j] = sum_d sum_m sum_n
      rot180(W)[m, n, c, d] * p_delta[d, i + m, j + n]``, where ``p_delta`` is
      ``delta_s`` padded by ``dilation * (k - 1)`` zeros before and
      ``dilation * (k - 1) + r`` after (``r`` rows past the last window, see
      below); the forward padding is cropped from the result.

    Gradients are those of the summed loss, as in
    `im2col_conv.conv_backward`:
    nothing is divided by the batch size.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        ``delta``, the gradient of the loss with respect to the forward output.
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

    Returns
    -------
    ConvGrads
        ``(input, weight, bias)``, shaped like ``x``, ``weight`` and
        ``(C_out,)``, of the dtype `im2col_conv.conv_backward`
        returns.

    Raises
    ------
    TypeError, ValueError
        As `im2col_conv.conv_backward`.

    Examples
    --------
    The document's example: 5x5 input, 3x3 kernel, stride 2, 2x2 output.

    >>> import numpy as np
    >>> x = np.arange(25).reshape(1, 1, 5, 5)
    >>> w = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]]).reshape(1, 1, 3, 3)
    >>> delta = np.array([[1, -2], [3, 4]]).reshape(1, 1, 2, 2)
    >>> grads = conv_backward(delta, x, w, stride=2)
    >>> grads.input[0, 0]
    array([[ 1,  0, -3,  0,  2],
           [ 2,  0, -6,  0,  4],
           [ 4,  0, -2,  0, -2],
           [ 6,  0,  2,  0, -8],
           [ 3,  0,  1,  0, -4]])
    >>> grads.weight[0, 0]
    array([[ 74,  80,  86],
           [104, 110, 116],
           [134, 140, 146]])
    >>> grads.bias
    array([6])
    """
    ops = conv_operands(input, weight, None, stride, padding, dilation, groups, grad_output=grad_output)
    geometry, g = ops.geometry, ops.groups
    delta = grad_output_operand(grad_output, ops).astype(ops.compute, copy=False)
    # Complex operands: the gradients of a real loss read the conjugated input and kernel.
    ops = for_gradients(ops)

    grad_x = _input_gradient(delta, ops.weight, geometry, g).astype(ops.dtype, copy=False)
    grad_w = _weight_gradient(delta, ops.x.astype(ops.compute, copy=False), geometry, g).astype(ops.dtype)
    grad_b = _bias_gradient(delta)
    return ConvGrads(grad_x[0] if ops.unbatched else grad_x, grad_w, grad_b.astype(ops.dtype, copy=False))


def _bias_gradient(delta: NDArray[Any]) -> NDArray[Any]:
    """Formula (6): ``dL/db[d] = sum_i sum_j delta[d, i, j]``, and over the batch."""
    total: NDArray[Any] = delta.sum(axis=(0, *range(2, delta.ndim)))
    return total


def _weight_gradient(
    delta: NDArray[Any], x: NDArray[Any], geometry: ConvGeometry, groups: int
) -> NDArray[Any]:
    """Formula (5): the padded input correlated with the dilated output gradient.

    ``dW[d, c, *m] = sum_n sum_q delta_s[n, d, *q] * x_padded[n, c, *(q + m * dilation)]``
    with ``delta_s = dilate(delta, stride)``: the stride moves into the
    gradient, which then slides over the input with step 1.
    """
    # Padding: the forward read the padded input, so (5) correlates the padded one.
    # The rows past the last window (a stride that does not divide) are read by
    # no window; cropping them leaves exactly (out - 1) * stride + extent rows, so
    # that the correlation has one result per dilated kernel tap.
    x_read = crop(
        pad(x, geometry.padding), [(0, p - r) for p, r in zip(geometry.padded_size, geometry.reach())]
    )
    delta_s = dilate(delta, geometry.stride)
    blocks = []
    for ci, co in zip(_group_slices(x.shape[1], groups), _group_slices(delta.shape[1], groups)):
        # The batch plays the role of the summed channel: dW sums over samples.
        per_tap = correlate(x_read[:, ci].swapaxes(0, 1), delta_s[:, co].swapaxes(0, 1))
        blocks.append(per_tap.swapaxes(0, 1))  # (C_out/g, C_in/g, *extent)
    # Kernel dilation: tap m of the kernel sat at m * dilation; keep those offsets.
    return subsample(np.concatenate(blocks, axis=0), geometry.dilation)


def _input_gradient(
    delta: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry, groups: int
) -> NDArray[Any]:
    """Formula (8): dilate, pad, correlate with the rotated kernel, sum over output channels."""
    # Step 1, dilate: zeros between the entries turn the strided forward into a stride-1 one.
    delta_s = dilate(delta, geometry.stride)
    # Step 2, pad by k - 1 each side (the extent of the dilated kernel, minus one).
    # A stride that does not divide leaves r = geometry.leftover padded rows after the
    # last window; they receive zero gradient, so they are extra zero rows at the end.
    full = tuple(e - 1 for e in geometry.kernel_extent)
    p_delta = pad(delta_s, [(f, f + r) for f, r in zip(full, geometry.leftover)])
    # Step 3, rotate: every kernel slice by 180 degrees (of the dilated kernel, whose
    # taps are where the forward read).
    w_rot = rot180(dilate(weight, geometry.dilation))
    # Step 4, correlate at stride 1 and sum over output channels d: correlate sums
    # over the channel axis it shares, so the kernel is indexed [c, d, *m].
    blocks = [
        correlate(p_delta[:, co], w_rot[co].swapaxes(0, 1)) for co in _group_slices(delta.shape[1], groups)
    ]
    grad_padded = np.concatenate(blocks, axis=1)  # (N, C_in, *padded_size)
    # Padding: the gradient of a padded input, with the padding cropped off.
    return crop(grad_padded, geometry.padding)
