"""Reading the coefficient tensor of a bilinear map off an implementation, one basis array at a time.

A bilinear map ``F(u, v)`` has ``F(u, v)[r] = sum over a, b of T[r, a, b] * u[a] * v[b]``;
applied to the basis arrays ``u = e_a`` and ``v = e_b`` it returns the slice
``T[:, a, b]``. The forward pass and the input gradient treat the samples of a
batch independently, so one call with a batch of every basis array reads a
whole slice ``T[:, a, :]``; the weight and bias gradients sum over the batch,
so they are read one pair of basis arrays per call. All arithmetic is int64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .. import tuning
from .._operands import ConvGrads
from ..geometry import ConvGeometry, IntOrTuple, PaddingLike

__all__ = [
    "BackwardFn",
    "ForwardFn",
    "ProbeCase",
    "ProbeError",
    "basis",
    "forward_tensor",
    "input_gradient_tensor",
    "parameter_gradient_tensors",
    "strategies_at_small_sizes",
    "tiles_as_small_as",
]

_INT = np.int64


class ForwardFn(Protocol):
    """Signature shared by [`im2col_conv.conv`][im2col_conv.convolution.conv] and
    [`im2col_conv.direct.conv`][im2col_conv.direct.formulas.conv]."""

    def __call__(
        self,
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: IntOrTuple = 1,
        padding: PaddingLike = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
    ) -> NDArray[Any]: ...


class BackwardFn(Protocol):
    """Signature shared by the two ``conv_backward`` functions."""

    def __call__(
        self,
        grad_output: Any,
        input: Any,
        weight: Any,
        stride: IntOrTuple = 1,
        padding: PaddingLike = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
    ) -> ConvGrads: ...


class ProbeError(Exception):
    """An implementation could not be probed (it raised, or returned a wrong shape or dtype)."""


@dataclass(frozen=True)
class ProbeCase:
    """One geometry with its channel counts, as the probes need it.

    Attributes
    ----------
    geometry : ConvGeometry
    padding : padding argument
        As the caller gave it; passed through to every implementation.
    in_channels, out_channels, groups : int
    """

    geometry: ConvGeometry
    padding: PaddingLike
    in_channels: int
    out_channels: int
    groups: int

    @property
    def x_shape(self) -> tuple[int, ...]:
        """One sample of the input, ``(C_in, *input_size)``."""
        return (self.in_channels, *self.geometry.input_size)

    @property
    def w_shape(self) -> tuple[int, ...]:
        """The kernel, ``(C_out, C_in/groups, *kernel_size)``."""
        return (self.out_channels, self.in_channels // self.groups, *self.geometry.kernel_size)

    @property
    def y_shape(self) -> tuple[int, ...]:
        """One sample of the output, ``(C_out, *output_size)``."""
        return (self.out_channels, *self.geometry.output_size)

    @property
    def keywords(self) -> dict[str, Any]:
        """``stride``, ``padding``, ``dilation`` and ``groups`` as keyword arguments."""
        g = self.geometry
        return {"stride": g.stride, "padding": self.padding, "dilation": g.dilation, "groups": self.groups}


def basis(shape: tuple[int, ...]) -> NDArray[Any]:
    """Every basis array of ``shape``, stacked: int64, shape ``(prod(shape), *shape)``."""
    count = math.prod(shape)
    return np.eye(count, dtype=_INT).reshape(count, *shape)


def _checked(value: object, shape: tuple[int, ...], who: str, what: str) -> NDArray[Any]:
    array = np.asarray(value)
    if array.shape != shape:
        raise ProbeError(f"{who} returned shape {array.shape} for {what}, expected {shape}")
    if array.dtype.kind not in "iu":
        raise ProbeError(f"{who} returned dtype {array.dtype} for {what} from int64 operands")
    return array


def forward_tensor(fn: ForwardFn, case: ProbeCase, who: str) -> NDArray[Any]:
    """Coefficients of the forward pass.

    Returns
    -------
    ndarray of int64, shape (prod(y_shape), prod(w_shape), prod(x_shape))
        ``T[y, w, x]``: coefficient of ``weight[w] * x[x]`` in ``y[y]``.
    """
    xs = basis(case.x_shape)  # the batch carries every basis image
    ws = basis(case.w_shape)
    count_x, count_y = len(xs), math.prod(case.y_shape)
    tensor = np.zeros((count_y, len(ws), count_x), dtype=_INT)
    for index, w in enumerate(ws):
        y = _checked(fn(xs, w, None, **case.keywords), (count_x, *case.y_shape), who, "the forward pass")
        tensor[:, index, :] = y.reshape(count_x, count_y).T
    return tensor


def input_gradient_tensor(fn: BackwardFn, case: ProbeCase, who: str) -> NDArray[Any]:
    """Coefficients of the input gradient.

    Returns
    -------
    ndarray of int64, shape (prod(x_shape), prod(w_shape), prod(y_shape))
        ``T[x, w, g]``: coefficient of ``weight[w] * grad_output[g]`` in ``grad_input[x]``.
    """
    gs = basis(case.y_shape)  # the batch carries every basis output gradient
    ws = basis(case.w_shape)
    count_g, count_x = len(gs), math.prod(case.x_shape)
    xs = np.zeros((count_g, *case.x_shape), dtype=_INT)
    tensor = np.zeros((count_x, len(ws), count_g), dtype=_INT)
    for index, w in enumerate(ws):
        grads = fn(gs, xs, w, **case.keywords)
        dx = _checked(grads.input, (count_g, *case.x_shape), who, "the input gradient")
        tensor[:, index, :] = dx.reshape(count_g, count_x).T
    return tensor


def parameter_gradient_tensors(
    fn: BackwardFn, case: ProbeCase, who: str
) -> tuple[NDArray[Any] | ProbeError, NDArray[Any] | ProbeError]:
    """Coefficients of the weight and the bias gradient, or why they could not be read.

    Both sum over the batch, so every pair of basis arrays needs its own call.
    An all-zero second sample rides along: it changes nothing in a sum, but a
    hidden division by the batch size would show.

    Returns
    -------
    weight : ndarray of int64, shape (prod(w_shape), prod(y_shape), prod(x_shape)), or ProbeError
        ``T[w, g, x]``: coefficient of ``grad_output[g] * x[x]`` in ``grad_weight[w]``.
    bias : ndarray of int64, shape (C_out, prod(y_shape)), or ProbeError
        ``B[o, g]``: coefficient of ``grad_output[g]`` in ``grad_bias[o]``.
    """

    def with_zero_sample(stack: NDArray[Any]) -> NDArray[Any]:
        return np.stack([stack, np.zeros_like(stack)], axis=1)

    gs = with_zero_sample(basis(case.y_shape))
    xs = with_zero_sample(basis(case.x_shape))
    w = np.zeros(case.w_shape, dtype=_INT)
    count_w = math.prod(case.w_shape)
    weight = np.zeros((count_w, len(gs), len(xs)), dtype=_INT)
    bias = np.zeros((case.out_channels, len(gs)), dtype=_INT)
    problems: dict[str, ProbeError] = {}
    for (j, g), (a, x) in itertools.product(enumerate(gs), enumerate(xs)):
        grads = fn(g, x, w, **case.keywords)
        # A wrong weight gradient must not hide a right bias gradient, or the reverse.
        try:
            weight[:, j, a] = _checked(grads.weight, case.w_shape, who, "the weight gradient").ravel()
        except ProbeError as exc:
            problems.setdefault("weight", exc)
        if a == 0:
            try:
                bias[:, j] = _checked(grads.bias, (case.out_channels,), who, "the bias gradient")
            except ProbeError as exc:
                problems.setdefault("bias", exc)
    return (problems.get("weight") or weight), (problems.get("bias") or bias)


@contextmanager
def tiles_as_small_as(space: int | None) -> Iterator[None]:
    """Let an explicit workspace cut the proof's small samples as it cuts large ones.

    The engine never makes tiles smaller than ``min_tile_bytes``; the probe
    geometries are smaller than that, so with that floor a tiny workspace
    would not cut them at all. Lowering it for the call (through
    `tuning.override`, in this thread only) exercises the band, single
    position and channel-block code that a large sample reaches with the
    same workspace (the code does not depend on the floor's value).
    """
    if space is None:
        yield
        return
    with tuning.override(min_tile_bytes=1, reserved_bytes=128 << 10):
        yield


@contextmanager
def strategies_at_small_sizes() -> Iterator[None]:
    """Let the proof's small geometries take the paths chosen by layer shape.

    The engine fuses the column gradient with col2im only for samples of
    ``fused_min_sample_bytes`` or more; explicit maps of geometries that
    large cost minutes. Lowering the threshold for the call (through
    `tuning.override`, in this thread only) sends small geometries down the
    same code, which does not depend on the threshold's value. The forward's
    one-product-per-sample rule, which every small geometry takes, is
    switched off instead, so that these cases prove the tile-wide product
    and its transposing copy.
    """
    with tuning.override(fused_min_sample_bytes=0, per_sample_max_product=0):
        yield
