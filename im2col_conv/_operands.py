"""A convolution's operands, checked once, and the gradients it returns.

Both formulations of a convolution, the im2col path of
[`im2col_conv.convolution`][im2col_conv.convolution] and the direct method of
[`im2col_conv.direct`][im2col_conv.direct], take their arrays through `conv_operands`
(or `transpose_operands`), so they accept and refuse exactly the same
calls with the same messages. Only `im2col_conv._validation` and
[`im2col_conv.geometry`][im2col_conv.geometry] sit below this module.
"""

from __future__ import annotations

import operator
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._dtypes import compute_dtype, max_abs, result_dtype
from ._validation import (
    as_numeric_array,
    batch_view,
    check_bias,
    check_grad_output,
    check_groups,
    plain_values,
    weight_rank,
)
from .geometry import ConvGeometry, IntOrTuple, PaddingLike

__all__ = [
    "ConvGrads",
    "ConvOperands",
    "conv_operands",
    "for_gradients",
    "grad_output_operand",
    "transpose_operands",
]


class ConvGrads(NamedTuple):
    """Gradients of a summed loss with respect to a convolution's operands.

    Attributes
    ----------
    input : ndarray of the shape of the input
    weight : ndarray of the shape of the weight
    bias : ndarray, shape (C_out,)
    """

    input: NDArray[Any]
    weight: NDArray[Any]
    bias: NDArray[Any]


class ConvOperands(NamedTuple):
    """Checked operands of one call.

    Attributes
    ----------
    x : ndarray, shape (N, C_in, *spatial)
        Batched view of the input, in its own dtype (cast tile by tile, never whole).
    weight : ndarray
        The kernel, cast to ``compute``.
    bias : ndarray of shape (C_out,), or None
        Cast to ``compute``.
    geometry : ConvGeometry
        For a transposed convolution, the geometry of the convolution whose
        input gradient it is (see
        [`ConvGeometry.for_transpose`][im2col_conv.geometry.ConvGeometry.for_transpose]).
    groups : int
    unbatched : bool
        Whether ``x`` was given without its batch axis.
    dtype : numpy.dtype
        The dtype of the results (see `im2col_conv._dtypes`).
    compute : numpy.dtype
        The dtype the call computes in; its results convert to ``dtype``
        exactly for integers.
    """

    x: NDArray[Any]
    weight: NDArray[Any]
    bias: NDArray[Any] | None
    geometry: ConvGeometry
    groups: int
    unbatched: bool
    dtype: np.dtype[Any]
    compute: np.dtype[Any]

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Batched shape of the forward output, ``(N, C_out, *output_size)``."""
        return (self.x.shape[0], self.weight.shape[0], *self.geometry.output_size)


# A layer calls with the same sizes and arguments again and again: its geometry,
# and the sizes the geometry derives, are then made once. Only arguments of
# plain ints and strings are remembered, whose equality is that of the
# geometries they make (True == 1, but stride=True is refused); the sizes are
# tuples of ints, from shapes.
_plain_geometry = lru_cache(maxsize=256)(ConvGeometry.create)
_plain_transpose = lru_cache(maxsize=256)(ConvGeometry.for_transpose)

_DTYPE = operator.attrgetter("dtype")


def _arrays(
    x: ArrayLike, weight: ArrayLike, others: dict[str, ArrayLike | None], layout: str
) -> tuple[NDArray[Any], NDArray[Any], bool, dict[str, NDArray[Any]]]:
    """Numeric arrays: the batched input, the weight, and the other operands given."""
    x_arr = as_numeric_array(x, "input")
    w_arr = as_numeric_array(weight, "weight")
    rest = {}
    for name, value in others.items():
        if value is not None:
            rest[name] = as_numeric_array(value, name)
    batched, unbatched = batch_view(x_arr, weight_rank(w_arr, layout), "input")
    return batched, w_arr, unbatched, rest


def _dtypes(
    x: NDArray[Any],
    weight: NDArray[Any],
    rest: dict[str, NDArray[Any]],
    bounds: dict[str, tuple[int, tuple[str, str]]],
) -> tuple[np.dtype[Any], np.dtype[Any]]:
    """Result and compute dtypes; ``bounds`` maps a product's name to ``(terms, operand name)``.

    For integer results the bound on a partial sum of the map named ``what``
    is ``terms * max|input or grad_output| * max|weight or input|`` (plus the
    bias): each sum has at most ``terms`` products.
    """
    result = result_dtype(x.dtype, weight.dtype, *map(_DTYPE, rest.values()))
    if result.kind not in "iu":
        return result, compute_dtype(result, 0, "")
    magnitude = {"input": max_abs(x), "weight": max_abs(weight), **{k: max_abs(a) for k, a in rest.items()}}
    worst, described = 0, ""
    for what, (terms, (left, right)) in bounds.items():
        bias = magnitude.get("bias", 0) if what == "output" else 0
        bound = terms * magnitude[left] * magnitude[right] + bias
        if bound >= worst:
            worst = bound
            described = f"{what}: {terms} products of |{left}| <= {magnitude[left]}"
            described += f" by |{right}| <= {magnitude[right]}"
    return result, compute_dtype(result, worst, described)


def conv_operands(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: object = 1,
    *,
    grad_output: ArrayLike | None = None,
) -> ConvOperands:
    """Check the operands of a convolution and build its geometry.

    ``grad_output``, when given, takes part in the dtypes (and the integer
    bounds of the gradients); check its shape with `grad_output_operand`.

    Raises
    ------
    TypeError, ValueError
        Naming the argument, the value and the rule, for any operand that
        does not fit.
    OverflowError
        If an integer result could exceed its 64-bit type.
    """
    batched, w_arr, unbatched, rest = _arrays(
        x, weight, {"bias": bias, "grad_output": grad_output}, "C_out, C_in/groups"
    )
    c_out, c_in_per_group = w_arr.shape[:2]
    c_in = batched.shape[1]
    if type(groups) is int and groups == 1:
        g = 1  # divides every count: the common case needs no check
    else:
        g = check_groups(groups, {"input": c_in, "output": c_out}, w_arr.shape)
    if c_in != c_in_per_group * g:
        raise ValueError(
            f"input has {c_in} channels but weight of shape {w_arr.shape} with groups={g} "
            f"expects {c_in_per_group * g}"
        )
    if plain_values(stride, padding, dilation):
        geometry = _plain_geometry(batched.shape[2:], w_arr.shape[2:], stride, padding, dilation)
    else:
        geometry = ConvGeometry.create(batched.shape[2:], w_arr.shape[2:], stride, padding, dilation)
    volume, positions = geometry.kernel_volume, batched.shape[0] * geometry.output_volume
    if grad_output is None:
        bounds = {"output": (c_in_per_group * volume, ("input", "weight"))}
    else:
        bounds = {
            "grad_input": (c_out // g * volume, ("grad_output", "weight")),
            "grad_weight": (positions, ("grad_output", "input")),
        }
    dtype, compute = _dtypes(batched, w_arr, rest, bounds)
    b = check_bias(bias, c_out, compute)
    return ConvOperands(batched, w_arr.astype(compute, copy=False), b, geometry, g, unbatched, dtype, compute)


def transpose_operands(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntOrTuple,
    padding: PaddingLike,
    output_padding: IntOrTuple,
    groups: object,
    dilation: IntOrTuple,
) -> ConvOperands:
    """Check the operands of a transposed convolution (weight ``(C_in, C_out/groups, *kernel)``).

    Raises
    ------
    TypeError, ValueError
        As `conv_operands`, and for an ``output_padding`` that is not
        smaller than the stride or the dilation, or an empty output.
    OverflowError
        If an integer result could exceed its 64-bit type.
    """
    batched, w_arr, unbatched, rest = _arrays(x, weight, {"bias": bias}, "C_in, C_out/groups")
    c_in = batched.shape[1]
    if c_in != w_arr.shape[0]:
        raise ValueError(
            f"input has {c_in} channels but weight of shape {w_arr.shape} expects {w_arr.shape[0]}"
        )
    g = check_groups(groups, {"input": c_in}, w_arr.shape)
    sizes = (batched.shape[2:], w_arr.shape[2:])
    if plain_values(stride, padding, output_padding, dilation):
        geometry = _plain_transpose(*sizes, stride, padding, output_padding, dilation)
    else:
        geometry = ConvGeometry.for_transpose(*sizes, stride, padding, output_padding, dilation)
    bounds = {"output": (c_in // g * geometry.kernel_volume, ("input", "weight"))}
    dtype, compute = _dtypes(batched, w_arr, rest, bounds)
    b = check_bias(bias, w_arr.shape[1] * g, compute)
    return ConvOperands(batched, w_arr.astype(compute, copy=False), b, geometry, g, unbatched, dtype, compute)


def for_gradients(ops: ConvOperands) -> ConvOperands:
    """The operands the gradient products read: conjugated when complex.

    For a real loss of complex values the gradients follow PyTorch's
    convention (the conjugate Wirtinger derivative): ``grad_input =
    col2im(conj(W)^T @ delta)`` and ``grad_weight = delta @ conj(cols)^T``,
    which is the plain transpose applied to the conjugated operands. Real
    operands are returned as they are.
    """
    if ops.compute.kind != "c":
        return ops
    return ops._replace(x=np.conj(ops.x), weight=np.conj(ops.weight))


def grad_output_operand(grad_output: ArrayLike, ops: ConvOperands) -> NDArray[Any]:
    """``grad_output`` as a batched array of the forward output's shape.

    Raises
    ------
    TypeError
        If it is not numeric.
    ValueError
        If its shape is not the forward output's.
    """
    given = as_numeric_array(grad_output, "grad_output")
    return check_grad_output(given, ops.output_shape, ops.unbatched)
