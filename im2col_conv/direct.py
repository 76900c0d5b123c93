"""The reference derivation's "direct" method: dilate, pad, rotate, correlate.

This module computes a convolution and its gradients the way the reference
document derives them, one named step per function, without lowering anything
to columns. It exists to be compared with the im2col/col2im formulation of
:mod:`im2col_conv.conv` (see :mod:`im2col_conv.equivalence`), and to be read
side by side with the document:

* forward, formula (4): a sliding-window correlation of the input with the
  kernel, keeping every ``stride``-th window (:func:`conv`);
* weight gradient, formula (5): the input correlated with the *dilated*
  output gradient (:func:`conv_backward`);
* bias gradient, formula (6): the output gradient summed over positions;
* input gradient, formula (8): the output gradient dilated by the stride,
  padded by ``k - 1`` on each side, correlated at stride 1 with the kernel
  rotated by 180 degrees, summed over output channels.

Index conventions. The document writes the kernel as ``W[m, n, c, d]`` (kernel
row, kernel column, input channel, output channel) and one sample
``z[c, i, j]``; here arrays follow the library's layout, ``x[n, c, *spatial]``
and ``weight[d, c, *kernel]``, so the document's ``W[m, n, c, d]`` is
``weight[d, c, m, n]``.

The document treats one sample, no padding, no kernel dilation, no groups and
strides that divide the input. Each generalisation is marked where it enters
with a comment saying why it takes the form it does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._arrays import as_numeric_array
from .conv import ConvGrads, _check_bias, _check_grad_output, _prepare
from .geometry import ConvGeometry, IntOrTuple, PaddingLike, is_sequence, normalize_tuple

__all__ = [
    "conv",
    "conv_backward",
    "correlate",
    "crop",
    "dilate",
    "pad",
    "rot180",
    "subsample",
]


def _spatial_steps(a: NDArray[Any], step: IntOrTuple, ndim: int | None, name: str) -> tuple[int, ...]:
    """Per-dimension steps for the trailing ``ndim`` axes of ``a``."""
    if ndim is None:
        ndim = len(step) if is_sequence(step) else a.ndim  # type: ignore[arg-type]
    if not 0 <= ndim <= a.ndim:
        raise ValueError(f"cannot apply {name} to {ndim} trailing axes of an array of shape {a.shape}")
    return normalize_tuple(step, ndim, name, minimum=1)


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

    The left inverse of :func:`dilate`: ``subsample(dilate(a, s), s) == a``.
    A strided correlation is a stride-1 correlation subsampled this way.

    Parameters
    ----------
    a : array_like, shape (..., *spatial)
    step : int or sequence of int
        Per trailing axis.
    ndim : int, optional
        Number of trailing axes; defaults as for :func:`dilate`.

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
    pairs = tuple((int(b), int(e)) for b, e in padding)
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
    """Remove ``(before, after)`` entries from each trailing axis: the inverse of :func:`pad`.

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
    if array.ndim < 3:
        raise ValueError(
            f"weight must have shape (C_out, C_in/groups, *kernel) with at least one spatial "
            f"dimension, got shape {array.shape}"
        )
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
        Of dtype ``np.result_type(a, kernel)``.

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
    total = np.zeros((x.shape[0], w.shape[0], *out_size), dtype=np.result_type(x, w))
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
    x: ArrayLike,
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
    is kept. Same arguments, results and errors as :func:`im2col_conv.conv`.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
    weight : array_like, shape (C_out, C_in // groups, *kernel)
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or sequence of int, optional
        Per-dimension stride and kernel dilation (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"``, symmetric amounts or ``(before, after)`` pairs.
    groups : int, optional
        Default 1.

    Returns
    -------
    ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Of dtype ``np.result_type(x, weight, bias)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`im2col_conv.conv`.

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
    ops = _prepare(x, weight, {"bias": bias}, stride, padding, dilation, groups)
    b = _check_bias(bias, ops.weight.shape[0], ops.dtype)
    y = _direct_forward(ops.x.astype(ops.dtype, copy=False), ops.weight, ops.geometry, ops.groups)
    if b is not None:
        # "+ b[d]": one bias per output channel, added at every position.
        y += b.reshape((-1,) + (1,) * ops.geometry.ndim)
    return y[0] if ops.unbatched else y


def conv_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
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

    Gradients are those of the summed loss, as in :func:`im2col_conv.conv_backward`:
    nothing is divided by the batch size.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        ``delta``, the gradient of the loss with respect to the forward output.
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        The forward input.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        The forward kernel.
    stride, padding, dilation, groups
        As given to :func:`conv`.

    Returns
    -------
    ConvGrads
        ``(input, weight, bias)``, shaped like ``x``, ``weight`` and
        ``(C_out,)``, of dtype ``np.result_type(grad_output, x, weight)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`im2col_conv.conv_backward`.

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
    ops = _prepare(x, weight, {"grad_output": grad_output}, stride, padding, dilation, groups)
    geometry, g = ops.geometry, ops.groups
    delta = _check_grad_output(grad_output, ops).astype(ops.dtype, copy=False)

    grad_x = _input_gradient(delta, ops.weight, geometry, g)
    grad_w = _weight_gradient(delta, ops.x.astype(ops.dtype, copy=False), geometry, g)
    grad_b = _bias_gradient(delta)
    return ConvGrads(grad_x[0] if ops.unbatched else grad_x, grad_w, grad_b)


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
    reach = tuple(
        (o - 1) * s + e for o, s, e in zip(geometry.output_size, geometry.stride, geometry.kernel_extent)
    )
    x_read = crop(pad(x, geometry.padding), [(0, p - r) for p, r in zip(geometry.padded_size, reach)])
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
