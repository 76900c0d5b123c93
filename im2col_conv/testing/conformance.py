"""Conformance checking: prove that *your* convolution computes exactly the reference maps.

`assert_conv_equivalent` reads the coefficient
tensors of a forward
and/or backward callable with place-value probes
(`im2col_conv.equivalence.tagging`) and compares them, coefficient by
coefficient, with the explicit 0/1 maps of
`im2col_conv.equivalence.reference`. Passing means the callable agrees
with the reference on every input of each geometry tried, for the batch size
and dtype probed, provided it is bilinear (linear in the bias) and treats
the samples independently; both premises are checked on a random signed
batch.

Float-only implementations are probed in float64 (or float32): every
coefficient of a convolution is 0 or 1 and every probe value a sum of
distinct powers of 4 below ``2 ** 52`` (``2 ** 23`` for float32), so any
implementation that only adds and multiplies these non-negative numbers,
in any order (BLAS, FFT-free loops, GPU reductions), computes them exactly.
An FFT or Winograd implementation rounds and will be reported as wrong.

Examples
--------
>>> import numpy as np
>>> import im2col_conv
>>> assert_conv_equivalent(forward=im2col_conv.conv, geometries=[ConvCase(5, 3, stride=2)])
>>> def wrong(x, weight, bias=None, **kw):     # forgets the last output position
...     y = im2col_conv.conv(x, weight, bias, **kw)
...     y[..., -1] = 0
...     return y
>>> assert_conv_equivalent(forward=wrong, geometries=[ConvCase(5, 3)])  # doctest: +ELLIPSIS
Traceback (most recent call last):
AssertionError: forward (4) of ConvCase(...): coefficient of weight[0, 0, 0] * x[0, 2] in y[0, 2]: ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..equivalence.comparison import Describer, entry_describer, pair_describer
from ..equivalence.probing import ProbeError
from ..equivalence.reference import Layout, ReferenceMaps
from ..equivalence.tagging import Tags, most_terms, read_per_sample, read_summed
from ..geometry import ConvGeometry, IntOrTuple, PaddingLike
from .adapters import gradient_triple

__all__ = ["ConvCase", "assert_conv_equivalent"]


@dataclass(frozen=True)
class ConvCase:
    """One geometry to check, with channel counts and batch size.

    Parameters
    ----------
    input_size, kernel_size : int or tuple of int
    stride, padding, dilation, groups
        As for `im2col_conv.conv`; ``padding`` is passed to the
        implementation as given.
    in_channels, out_channels : int, optional
        Default ``2 * groups`` each.
    batch : int, optional
        Most samples per call (default 3).
    """

    input_size: IntOrTuple
    kernel_size: IntOrTuple
    stride: IntOrTuple = 1
    padding: PaddingLike = 0
    dilation: IntOrTuple = 1
    groups: int = 1
    in_channels: int | None = None
    out_channels: int | None = None
    batch: int = field(default=3, compare=False)

    def layout(self) -> Layout:
        """Sizes and ``(before, after)`` pairs of this case."""
        g = ConvGeometry.create(self.input_size, self.kernel_size, self.stride, self.padding, self.dilation)
        c_in = 2 * self.groups if self.in_channels is None else self.in_channels
        c_out = 2 * self.groups if self.out_channels is None else self.out_channels
        return Layout(g.input_size, g.kernel_size, g.stride, g.padding, g.dilation, c_in, c_out, self.groups)

    def keywords(self) -> dict[str, Any]:
        """``stride``, ``padding``, ``dilation`` and ``groups`` for the implementation."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }


def _item(pair: tuple[NDArray[Any], NDArray[Any]], index: int) -> NDArray[Any]:
    return pair[index]


class _Probe:
    """The user's callables on flat probe arrays of one case."""

    def __init__(self, case: ConvCase, dtype: np.dtype[Any]) -> None:
        self.case, self.layout, self.dtype = case, case.layout(), dtype

    def _batch(self, shape: tuple[int, ...], indices: list[int], phase: complex) -> NDArray[Any]:
        batch = np.zeros((len(indices), math.prod(shape)), dtype=self.dtype)
        batch[np.arange(len(indices)), indices] = phase
        return batch.reshape(len(indices), *shape)

    def forward(self, fn: Callable[..., Any], tags: Tags, w: NDArray[Any], idx: list[int]) -> NDArray[Any]:
        x = self._batch(self.layout.x_shape, idx, tags.phase)
        y = fn(x, w.reshape(self.layout.w_shape), None, **self.case.keywords())
        return np.asarray(y).reshape(len(idx), -1)

    def input_gradient(
        self, fn: Callable[..., Any], tags: Tags, w: NDArray[Any], idx: list[int]
    ) -> NDArray[Any]:
        g = self._batch(self.layout.y_shape, idx, tags.phase)
        x = np.zeros((len(idx), *self.layout.x_shape), dtype=self.dtype)
        # Gradients conjugate their second operand (PyTorch's convention for complex data).
        grads = gradient_triple(fn(g, x, np.conj(w.reshape(self.layout.w_shape)), **self.case.keywords()))
        return np.asarray(grads[0]).reshape(len(idx), -1)

    def parameters(self, fn: Callable[..., Any], u: NDArray[Any], v: NDArray[Any]) -> tuple[Any, Any]:
        lay = self.layout
        w = np.zeros(lay.w_shape, dtype=self.dtype)
        x = np.conj(v.reshape(len(v), *lay.x_shape))
        grads = gradient_triple(fn(u.reshape(len(u), *lay.y_shape), x, w, **self.case.keywords()))
        return np.asarray(grads[1]), np.asarray(grads[2])


def _first_difference(
    what: str, case: ConvCase, expected: NDArray[Any], got: NDArray[Any], describe: Describer
) -> str:
    flat_e, flat_g = expected.reshape(expected.shape[0], -1), got.reshape(got.shape[0], -1)
    row, col = (int(i[0]) for i in np.nonzero(flat_e != flat_g))
    return f"{what} of {case}: {describe(row, col)}: expected {flat_e[row, col]}, got {flat_g[row, col]}"


def _check(
    what: str, case: ConvCase, expected: NDArray[Any], read: Callable[[], NDArray[Any]], describe: Describer
) -> None:
    try:
        got = read()
    except ProbeError as exc:
        raise AssertionError(f"{what} of {case}: {exc}") from None
    if got.shape != expected.shape:
        raise AssertionError(
            f"{what} of {case}: coefficient tensor of shape {got.shape}, expected {expected.shape}"
        )
    if not np.array_equal(got, expected):
        raise AssertionError(_first_difference(what, case, expected, got, describe))


def _premises(
    case: ConvCase, probe: _Probe, forward: Callable[..., Any] | None, backward: Callable[..., Any] | None
) -> None:
    lay, maps, rng = probe.layout, ReferenceMaps(probe.layout), np.random.default_rng(0)
    n = max(2, case.batch)
    x = rng.integers(-3, 4, (n, *lay.x_shape)).astype(probe.dtype)
    g = rng.integers(-3, 4, (n, *lay.y_shape)).astype(probe.dtype)
    w = rng.integers(-3, 4, lay.w_shape).astype(probe.dtype)
    b = rng.integers(-3, 4, lay.out_channels).astype(probe.dtype)
    flat_x, flat_g = x.reshape(n, -1), g.reshape(n, -1)
    problems = []
    if forward is not None:
        want = np.einsum("rab,a,nb->nr", maps.forward(), w.ravel(), flat_x) + maps.bias_term() @ b
        got = np.asarray(forward(x, w, b, **case.keywords())).reshape(n, -1)
        problems += [] if np.array_equal(got, want) else ["forward with bias"]
    if backward is not None:
        # Real-valued samples: conjugating them changes nothing, whatever the convention.
        grads = gradient_triple(backward(g, x, w, **case.keywords()))
        wants = (
            np.einsum("rab,a,nb->nr", maps.input_gradient(), w.ravel(), flat_g),
            np.einsum("rab,na,nb->r", maps.weight_gradient(), flat_g, flat_x),
            maps.bias_gradient() @ flat_g.sum(axis=0),
        )
        for name, got_part, want in zip(("grad_input", "grad_weight", "grad_bias"), grads, wants):
            if not np.array_equal(np.asarray(got_part).reshape(want.shape), want):
                problems.append(name)
    if problems:
        raise AssertionError(
            f"premises of {case}: on a random signed batch the results differ from the reference maps "
            f"({', '.join(problems)}): not bilinear, samples not independent, or a coefficient out of range"
        )


def assert_conv_equivalent(
    *,
    forward: Callable[..., Any] | None = None,
    backward: Callable[..., Any] | None = None,
    geometries: Iterable[ConvCase],
    dtype: str = "float64",
) -> None:
    """Prove a convolution implementation exactly against the reference maps, or raise.

    Parameters
    ----------
    forward : callable, optional
        ``forward(x, weight, bias, *, stride, padding, dilation, groups)`` on
        NumPy arrays ``(N, C_in, *spatial)`` and ``(C_out, C_in/groups, *kernel)``,
        returning ``(N, C_out, *out_spatial)``; ``bias`` may be None.
    backward : callable, optional
        ``backward(grad_output, x, weight, *, stride, padding, dilation, groups)``
        returning ``(grad_input, grad_weight, grad_bias)`` (or an object with
        those attributes, such as `im2col_conv.ConvGrads`), gradients
        of the summed loss.
    geometries : iterable of ConvCase
    dtype : str, optional
        Probing dtype: ``"float64"`` (default), ``"float32"``, ``"int64"`` or ``"complex128"``.
        With ``"complex128"`` the gradients must follow PyTorch's convention
        for complex data: ``grad_input`` conjugates the kernel and
        ``grad_weight`` the input (the conjugate Wirtinger derivative).

    Raises
    ------
    AssertionError
        Naming the map, the case and the first differing coefficient, e.g.
        ``coefficient of weight[0, 0, 0] * grad_output[0, 0, 2] in grad_input[0, 0, 2]: expected 1, got 0``.
    """
    if forward is None and backward is None:
        raise TypeError("assert_conv_equivalent needs forward=, backward= or both")
    np_dtype = np.dtype(dtype)
    for case in geometries:
        probe, lay = _Probe(case, np_dtype), case.layout()
        tags = Tags(np_dtype, terms=most_terms(lay, case.batch))
        maps = ReferenceMaps(lay)
        size = {k: math.prod(s) for k, s in (("x", lay.x_shape), ("w", lay.w_shape), ("y", lay.y_shape))}
        names = {"x": ("x", lay.x_shape), "w": ("weight", lay.w_shape), "y": ("y", lay.y_shape)}
        if forward is not None:
            read = partial(
                read_per_sample,
                partial(probe.forward, forward, tags),
                size["y"],
                size["w"],
                size["x"],
                tags,
                case.batch,
                "forward",
            )
            _check(
                "forward (4)", case, maps.forward(), read, pair_describer(names["y"], names["w"], names["x"])
            )
        if backward is not None:
            g_name, dx_name = ("grad_output", lay.y_shape), ("grad_input", lay.x_shape)
            read = partial(
                read_per_sample,
                partial(probe.input_gradient, backward, tags),
                size["x"],
                size["w"],
                size["y"],
                tags,
                case.batch,
                "input gradient",
            )
            _check(
                "input gradient (8)",
                case,
                maps.input_gradient(),
                read,
                pair_describer(dx_name, names["w"], g_name),
            )
            try:
                summed = read_summed(
                    partial(probe.parameters, backward),
                    size["w"],
                    lay.out_channels,
                    size["y"],
                    size["x"],
                    tags,
                    case.batch,
                    "weight gradient",
                )
            except ProbeError as exc:
                raise AssertionError(f"weight and bias gradients of {case}: {exc}") from None
            _check(
                "weight gradient (5)",
                case,
                maps.weight_gradient(),
                partial(_item, summed, 0),
                pair_describer(("grad_weight", lay.w_shape), g_name, names["x"]),
            )
            _check(
                "bias gradient (6)",
                case,
                maps.bias_gradient(),
                partial(_item, summed, 1),
                entry_describer(("grad_bias", (lay.out_channels,)), g_name),
            )
        _premises(case, probe, forward, backward)
