"""Exact proof that the im2col/col2im backward equals the document's direct method.

Every map compared here is linear or bilinear with integer coefficients, so
two implementations of it are equal exactly when their coefficients are; the
coefficients are read off by applying each implementation to basis vectors
in int64, so there is no tolerance and no rounding anywhere. For one geometry
(input size, kernel size, stride, padding, dilation, groups and channel
counts) [`prove_geometry`][im2col_conv.equivalence.prove_geometry] checks six identities:

1. ``im2col`` is the 0/1 selection matrix ``P`` whose row ``(c, k, l)`` picks
   input entry ``(c, l * stride + k * dilation - pad_before)``, written down
   here from index arithmetic alone ([`selection_matrix`][im2col_conv.equivalence.selection_matrix]);
2. ``col2im`` is ``P^T``: scatter-add is the adjoint of the gather;
3. forward, formula (4): the coefficient of every
   ``weight[o, i, *k] * x[c, *s]`` in every ``y[o, *p]`` is the same for
   ``W @ im2col(x)`` and for the sliding-window correlation;
4. input gradient, formula (8): the coefficient of every
   ``weight[o, i, *k] * grad_output[o, *p]`` in every ``grad_input[c, *s]``
   is the same for ``col2im(W^T @ delta)`` and for
   dilate-pad-rot180-correlate;
5. weight gradient, formula (5): the coefficient of every
   ``grad_output[o, *p] * x[c, *s]`` in every ``grad_weight[o, i, *k]`` is
   the same for ``delta @ im2col(x)^T`` and for the correlation of the input
   with the dilated gradient;
6. bias gradient, formula (6): the coefficient of every ``grad_output[o, *p]``
   in every ``grad_bias[o]``.

Each map is held as an explicit ``scipy.sparse`` integer matrix: rows are the
entries of the result, columns the entries (or pairs of entries) of the
operands. The tensors are those of one sample: forward and input gradient are
probed with a batch whose samples are the basis vectors; the weight and bias
gradients sum over the batch, so they are probed one basis pair at a time
(which makes the weight gradient the costly part of a proof).

``python -m im2col_conv.equivalence`` proves a grid of geometries and also
compares the two formulations in float64 on realistic random data.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from . import direct
from .convolution import ConvGrads
from .convolution import conv as lowered_conv
from .convolution import conv_backward as lowered_backward
from .geometry import ConvGeometry, IntOrTuple, PaddingLike
from .lowering import col2im, im2col

__all__ = [
    "BackwardFn",
    "FloatComparison",
    "ForwardFn",
    "Identity",
    "Proof",
    "SweepCase",
    "col2im_matrix",
    "compare_float64",
    "im2col_matrix",
    "main",
    "prove_geometry",
    "selection_matrix",
    "sweep_grid",
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


# ---------------------------------------------------------------------------
# im2col and col2im as explicit matrices
# ---------------------------------------------------------------------------


def selection_matrix(geometry: ConvGeometry, channels: int = 1) -> sp.csr_array:
    """The im2col gather as a 0/1 matrix, from index arithmetic alone.

    Row ``(c, k, l)`` (channel, kernel offset, output position, each
    row-major) has a single 1 in column ``(c, s)`` where, per dimension,
    ``s = l * stride + k * dilation - pad_before``, or no entry at all when
    that position lies in the zero padding.

    Parameters
    ----------
    geometry : ConvGeometry
    channels : int, optional
        Number of channels ``C`` (default 1); the matrix is block diagonal.

    Returns
    -------
    scipy.sparse.csr_array of int64, shape (C * prod(kernel) * L, C * prod(input_size))
        ``L = prod(output_size)``. Applied to a flattened image ``(C, *input_size)``
        it gives the flattened column matrix ``(C * prod(kernel), L)``.

    Examples
    --------
    >>> g = ConvGeometry.create(3, 2)  # 1-D: 3 inputs, kernel 2, 2 windows
    >>> selection_matrix(g).toarray()
    array([[1, 0, 0],
           [0, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    d = geometry.ndim
    k_count, l_count = geometry.kernel_volume, geometry.output_volume
    size = math.prod(geometry.input_size)
    offsets = np.indices(geometry.kernel_size).reshape(d, k_count, 1)
    windows = np.indices(geometry.output_size).reshape(d, 1, l_count)
    stride = np.array(geometry.stride).reshape(d, 1, 1)
    dilation = np.array(geometry.dilation).reshape(d, 1, 1)
    before = np.array([b for b, _ in geometry.padding]).reshape(d, 1, 1)
    position = windows * stride + offsets * dilation - before  # (d, K, L)
    extent = np.array(geometry.input_size).reshape(d, 1, 1)
    inside = np.all((position >= 0) & (position < extent), axis=0)  # (K, L)
    k_idx, l_idx = np.nonzero(inside)
    flat = np.ravel_multi_index(tuple(position[:, k_idx, l_idx]), geometry.input_size)
    rows = [(c * k_count + k_idx) * l_count + l_idx for c in range(channels)]
    cols = [c * size + flat for c in range(channels)]
    row, col = np.concatenate(rows), np.concatenate(cols)
    shape = (channels * k_count * l_count, channels * size)
    return sp.csr_array((np.ones(row.size, dtype=_INT), (row, col)), shape=shape)


def im2col_matrix(
    geometry: ConvGeometry, channels: int = 1, padding: PaddingLike | None = None
) -> sp.csr_array:
    """The matrix of [`im2col_conv.im2col`][im2col_conv.lowering.im2col], read off by applying it to the
    identity.

    Parameters
    ----------
    geometry : ConvGeometry
    channels : int, optional
    padding : padding argument, optional
        Passed to ``im2col`` as given (e.g. ``"same"``); defaults to the
        geometry's ``(before, after)`` pairs.

    Returns
    -------
    scipy.sparse.csr_array of int64, shape (C * prod(kernel) * L, C * prod(input_size))
        Column ``a`` is ``im2col`` of the ``a``-th basis image, flattened.

    Examples
    --------
    >>> g = ConvGeometry.create(3, 2)
    >>> (im2col_matrix(g) != selection_matrix(g)).nnz
    0
    """
    size = math.prod(geometry.input_size)
    basis = np.eye(channels * size, dtype=_INT).reshape(channels * size, channels, *geometry.input_size)
    pads = geometry.padding if padding is None else padding
    cols = im2col(
        basis, geometry.kernel_size, stride=geometry.stride, padding=pads, dilation=geometry.dilation
    )
    return sp.csr_array(cols.reshape(channels * size, -1).T)


def col2im_matrix(
    geometry: ConvGeometry, channels: int = 1, padding: PaddingLike | None = None
) -> sp.csr_array:
    """The matrix of [`im2col_conv.col2im`][im2col_conv.lowering.col2im], read off by applying it to the
    identity.

    Parameters
    ----------
    geometry : ConvGeometry
    channels : int, optional
    padding : padding argument, optional
        As for [`im2col_matrix`][im2col_conv.equivalence.im2col_matrix].

    Returns
    -------
    scipy.sparse.csr_array of int64, shape (C * prod(input_size), C * prod(kernel) * L)
        Column ``b`` is ``col2im`` of the ``b``-th basis column matrix, flattened.

    Examples
    --------
    >>> g = ConvGeometry.create(3, 2)
    >>> (col2im_matrix(g) != selection_matrix(g).T).nnz
    0
    """
    rows = channels * geometry.kernel_volume
    count = rows * geometry.output_volume
    basis = np.eye(count, dtype=_INT).reshape(count, rows, geometry.output_volume)
    pads = geometry.padding if padding is None else padding
    image = col2im(
        basis,
        geometry.input_size,
        geometry.kernel_size,
        stride=geometry.stride,
        padding=pads,
        dilation=geometry.dilation,
    )
    return sp.csr_array(image.reshape(count, -1).T)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """One identity checked by [`prove_geometry`][im2col_conv.equivalence.prove_geometry].

    Attributes
    ----------
    name : str
        What was compared, e.g. ``"input gradient, formula (8)"``.
    statement : str
        The identity, e.g. ``"col2im(W^T delta) == dilate-pad-rot180-correlate"``.
    held : bool
        True if every coefficient is equal.
    coefficients : int
        Number of integer coefficients compared (the size of the matrix).
    mismatch : str
        Empty if the identity held; otherwise the first differing entry, or
        why the maps could not be compared (a shape error, an exception).
    """

    name: str
    statement: str
    held: bool
    coefficients: int
    mismatch: str = ""

    def __str__(self) -> str:
        mark = "held  " if self.held else "FAILED"
        text = f"{mark} {self.name}: {self.statement} ({self.coefficients} coefficients)"
        return text if self.held else f"{text}\n         {self.mismatch}"


@dataclass(frozen=True)
class Proof:
    """The outcome of [`prove_geometry`][im2col_conv.equivalence.prove_geometry] for one geometry.

    Attributes
    ----------
    geometry : ConvGeometry
    in_channels, out_channels, groups : int
    identities : tuple of Identity
        In the order im2col, col2im, forward (4), input gradient (8),
        weight gradient (5), bias gradient (6).
    """

    geometry: ConvGeometry
    in_channels: int
    out_channels: int
    groups: int
    identities: tuple[Identity, ...]

    @property
    def held(self) -> bool:
        """True if every identity held."""
        return all(i.held for i in self.identities)

    @property
    def coefficients(self) -> int:
        """Total number of coefficients compared."""
        return sum(i.coefficients for i in self.identities)

    def describe(self) -> str:
        """The geometry on one line."""
        g = self.geometry
        pad_text = ", ".join(str(b) if b == a else f"{b}/{a}" for b, a in g.padding)
        return (
            f"{g.ndim}-D in {_dims(g.input_size)} k {_dims(g.kernel_size)} s {_dims(g.stride)} "
            f"pad {pad_text} dil {_dims(g.dilation)} groups {self.groups} "
            f"C {self.in_channels}->{self.out_channels}"
        )

    def line(self) -> str:
        """One line: verdict, geometry, and the first failure if any."""
        held = sum(i.held for i in self.identities)
        verdict = "proved" if self.held else "FAILED"
        text = f"{verdict} {self.describe():<78} {held}/{len(self.identities)} identities"
        failed = [i for i in self.identities if not i.held]
        return text if not failed else f"{text}; {failed[0].name}: {failed[0].mismatch}"

    def __str__(self) -> str:
        head = f"{self.describe()}: " + ("every identity holds" if self.held else "NOT proved")
        return "\n".join([head, *(f"  {i}" for i in self.identities)])


def _dims(values: Sequence[int]) -> str:
    return "x".join(str(v) for v in values)


# ---------------------------------------------------------------------------
# Coefficient tensors of the bilinear maps, read off with basis vectors
# ---------------------------------------------------------------------------


class _ProbeError(Exception):
    """An implementation could not be probed (it raised, or returned a wrong shape)."""


@dataclass(frozen=True)
class _Case:
    geometry: ConvGeometry
    padding: PaddingLike  # as the caller gave it, passed through to both implementations
    in_channels: int
    out_channels: int
    groups: int

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.in_channels, *self.geometry.input_size)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.geometry.kernel_size)

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.out_channels, *self.geometry.output_size)

    @property
    def args(self) -> tuple[tuple[int, ...], PaddingLike, tuple[int, ...], int]:
        g = self.geometry
        return g.stride, self.padding, g.dilation, self.groups


def _basis(shape: tuple[int, ...]) -> NDArray[Any]:
    """Every basis array of ``shape``, stacked: ``(prod(shape), *shape)``."""
    count = math.prod(shape)
    return np.eye(count, dtype=_INT).reshape(count, *shape)


def _checked(value: object, shape: tuple[int, ...], who: str, what: str) -> NDArray[Any]:
    array = np.asarray(value)
    if array.shape != shape:
        raise _ProbeError(f"{who} returned shape {array.shape} for {what}, expected {shape}")
    if array.dtype.kind not in "iu":
        raise _ProbeError(f"{who} returned dtype {array.dtype} for {what} from int64 operands")
    return array


def _forward_tensor(fn: ForwardFn, case: _Case, who: str) -> NDArray[Any]:
    """``T[y, w, x]``: coefficient of ``weight[w] * x[x]`` in ``y[y]``."""
    xs = _basis(case.x_shape)  # the batch carries every basis image
    ws = _basis(case.w_shape)
    count_x, count_y = len(xs), math.prod(case.y_shape)
    tensor = np.zeros((count_y, len(ws), count_x), dtype=_INT)
    for index, w in enumerate(ws):
        y = _checked(fn(xs, w, None, *case.args), (count_x, *case.y_shape), who, "the forward pass")
        tensor[:, index, :] = y.reshape(count_x, count_y).T
    return tensor


def _input_gradient_tensor(fn: BackwardFn, case: _Case, who: str) -> NDArray[Any]:
    """``T[x, w, g]``: coefficient of ``weight[w] * grad_output[g]`` in ``grad_input[x]``."""
    gs = _basis(case.y_shape)  # the batch carries every basis output gradient
    ws = _basis(case.w_shape)
    count_g, count_x = len(gs), math.prod(case.x_shape)
    xs = np.zeros((count_g, *case.x_shape), dtype=_INT)
    tensor = np.zeros((count_x, len(ws), count_g), dtype=_INT)
    for index, w in enumerate(ws):
        grads = fn(gs, xs, w, *case.args)
        dx = _checked(grads.input, (count_g, *case.x_shape), who, "the input gradient")
        tensor[:, index, :] = dx.reshape(count_g, count_x).T
    return tensor


def _parameter_gradient_tensors(
    fn: BackwardFn, case: _Case, who: str
) -> tuple[NDArray[Any] | _ProbeError, NDArray[Any] | _ProbeError]:
    """``T[w, g, x]`` of the weight gradient and ``B[o, g]`` of the bias gradient.

    Both sum over the batch, so every pair of basis vectors needs its own call.
    An all-zero second sample rides along: it changes nothing in a sum, but a
    hidden division by the batch size would show.
    """

    def with_zero_sample(basis: NDArray[Any]) -> NDArray[Any]:
        return np.stack([basis, np.zeros_like(basis)], axis=1)

    gs = with_zero_sample(_basis(case.y_shape))
    xs = with_zero_sample(_basis(case.x_shape))
    w = np.zeros(case.w_shape, dtype=_INT)
    count_w = math.prod(case.w_shape)
    weight = np.zeros((count_w, len(gs), len(xs)), dtype=_INT)
    bias = np.zeros((case.out_channels, len(gs)), dtype=_INT)
    problems: dict[str, _ProbeError] = {}
    for (j, g), (a, x) in itertools.product(enumerate(gs), enumerate(xs)):
        grads = fn(g, x, w, *case.args)
        # A wrong weight gradient must not hide a right bias gradient, or the reverse.
        try:
            weight[:, j, a] = _checked(grads.weight, case.w_shape, who, "the weight gradient").ravel()
        except _ProbeError as exc:
            problems.setdefault("weight", exc)
        if a == 0:
            try:
                bias[:, j] = _checked(grads.bias, (case.out_channels,), who, "the bias gradient")
            except _ProbeError as exc:
                problems.setdefault("bias", exc)
    return (problems.get("weight") or weight), (problems.get("bias") or bias)


def _index_text(name: str, shape: tuple[int, ...], flat: int) -> str:
    return f"{name}[{', '.join(str(int(i)) for i in np.unravel_index(flat, shape))}]"


def _compare(
    name: str,
    statement: str,
    labels: tuple[str, str],
    compute: Callable[[int], tuple[sp.csr_array, Callable[[int, int], str]]],
) -> Identity:
    """Compare two sparse coefficient matrices; ``compute(side)`` builds side 0 or 1."""
    matrices = []
    describe: Callable[[int, int], str] | None = None
    for side in (0, 1):
        try:
            matrix, describe = compute(side)
        except _ProbeError as exc:
            return Identity(name, statement, False, 0, str(exc))
        except Exception as exc:
            return Identity(name, statement, False, 0, f"{labels[side]} raised {type(exc).__name__}: {exc}")
        matrices.append(matrix)
    first, second = matrices
    assert describe is not None
    size = first.shape[0] * first.shape[1]
    if first.shape != second.shape:
        return Identity(name, statement, False, 0, f"matrix shapes differ: {first.shape} and {second.shape}")
    difference = (first - second).tocoo()
    difference.eliminate_zeros()
    if difference.nnz == 0:
        return Identity(name, statement, True, size)
    order = np.lexsort((difference.col, difference.row))[0]
    row, col = int(difference.row[order]), int(difference.col[order])
    a, b = int(first[row, col]), int(second[row, col])
    detail = f"first difference: {describe(row, col)}: {labels[0]} {a}, {labels[1]} {b}"
    return Identity(name, statement, False, size, detail)


def _bilinear_matrix(tensor: NDArray[Any]) -> sp.csr_array:
    """``T[out, u, v]`` as a sparse matrix: rows ``out``, columns the pairs ``(u, v)``."""
    return sp.csr_array(tensor.reshape(tensor.shape[0], -1))


def prove_geometry(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    in_channels: int | None = None,
    out_channels: int | None = None,
    *,
    candidate_conv: ForwardFn = direct.conv,
    candidate_backward: BackwardFn = direct.conv_backward,
    candidate_name: str = "direct",
) -> Proof:
    """Prove, exactly, that both formulations compute the same maps for one geometry.

    Checks the six identities listed in the module docstring, comparing
    [`im2col_conv.conv`][im2col_conv.convolution.conv] and
    [`im2col_conv.conv_backward`][im2col_conv.convolution.conv_backward] (the
    im2col/col2im formulation) with a candidate, by default the document's
    direct method ([`im2col_conv.direct`][im2col_conv.direct]). All arithmetic is int64, so a
    held identity is a proof for this geometry.

    Parameters
    ----------
    input_size, kernel_size : int or sequence of int
        Spatial sizes; the number of dimensions is taken as by
        [`ConvGeometry.create`][im2col_conv.geometry.ConvGeometry.create].
    stride, padding, dilation : optional
        As for [`im2col_conv.conv`][im2col_conv.convolution.conv]; ``padding`` is passed to every
        function as given.
    groups : int, optional
        Default 1.
    in_channels, out_channels : int, optional
        Channel counts, multiples of ``groups``; both default to
        ``max(2, groups)`` so that every channel sum has two terms or more.
    candidate_conv, candidate_backward : callable, optional
        The implementation to compare with the im2col one; pass a variant to
        see how a wrong formula is rejected.
    candidate_name : str, optional
        Used in mismatch reports (default ``"direct"``).

    Returns
    -------
    Proof
        ``proof.held`` is True if every identity held; ``str(proof)`` lists
        them, with the first differing coefficient of any that failed.

    Raises
    ------
    TypeError, ValueError
        If the geometry itself is invalid.

    Examples
    --------
    The document's example, a 5x5 input, a 3x3 kernel and stride 2:

    >>> proof = prove_geometry((5, 5), (3, 3), stride=2, in_channels=1, out_channels=1)
    >>> proof.held
    True
    >>> print(proof)  # doctest: +ELLIPSIS
    2-D in 5x5 k 3x3 s 2x2 pad 0, 0 dil 1x1 groups 1 C 1->1: every identity holds
      held   im2col == P: ...
      held   col2im == P^T: ...
      held   forward, formula (4): ...
      held   input gradient, formula (8): ...
      held   weight gradient, formula (5): ...
      held   bias gradient, formula (6): ...
    """
    geometry = ConvGeometry.create(input_size, kernel_size, stride, padding, dilation)
    default = max(2, groups)
    case = _Case(
        geometry,
        padding,
        default if in_channels is None else in_channels,
        default if out_channels is None else out_channels,
        groups,
    )
    if case.in_channels % groups or case.out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide in_channels={case.in_channels} and out_channels={case.out_channels}"
        )
    labels = ("im2col", candidate_name)
    x_text = ("x", case.x_shape)
    w_text = ("weight", case.w_shape)
    g_text = ("grad_output", case.y_shape)

    def pair_describer(
        out: tuple[str, tuple[int, ...]], u: tuple[str, tuple[int, ...]], v: tuple[str, tuple[int, ...]]
    ) -> Callable[[int, int], str]:
        count_v = math.prod(v[1])

        def describe(row: int, col: int) -> str:
            return (
                f"coefficient of {_index_text(*u, col // count_v)} * {_index_text(*v, col % count_v)} "
                f"in {_index_text(*out, row)}"
            )

        return describe

    def entry_describer(
        out_name: str, out_shape: tuple[int, ...], in_name: str, in_shape: tuple[int, ...]
    ) -> Callable[[int, int], str]:
        def describe(row: int, col: int) -> str:
            return (
                f"coefficient of {_index_text(in_name, in_shape, col)} "
                f"in {_index_text(out_name, out_shape, row)}"
            )

        return describe

    c = case.in_channels
    col_shape = (c * geometry.kernel_volume, geometry.output_volume)
    selection = selection_matrix(geometry, c)

    def gather(side: int) -> tuple[sp.csr_array, Callable[[int, int], str]]:
        matrix = selection if side == 0 else im2col_matrix(geometry, c, padding)
        return matrix, entry_describer("cols", col_shape, "x", case.x_shape)

    def scatter(side: int) -> tuple[sp.csr_array, Callable[[int, int], str]]:
        matrix = selection.T.tocsr() if side == 0 else col2im_matrix(geometry, c, padding)
        return matrix, entry_describer("image", case.x_shape, "cols", col_shape)

    sides_forward: tuple[ForwardFn, ForwardFn] = (lowered_conv, candidate_conv)
    sides_backward: tuple[BackwardFn, BackwardFn] = (lowered_backward, candidate_backward)

    def forward(side: int) -> tuple[sp.csr_array, Callable[[int, int], str]]:
        tensor = _forward_tensor(sides_forward[side], case, labels[side])
        return _bilinear_matrix(tensor), pair_describer(("y", case.y_shape), w_text, x_text)

    def input_gradient(side: int) -> tuple[sp.csr_array, Callable[[int, int], str]]:
        tensor = _input_gradient_tensor(sides_backward[side], case, labels[side])
        return _bilinear_matrix(tensor), pair_describer(("grad_input", case.x_shape), w_text, g_text)

    parameter_cache: dict[int, tuple[NDArray[Any] | _ProbeError, NDArray[Any] | _ProbeError]] = {}

    def parameters(side: int, which: int) -> NDArray[Any]:
        # One pass of probes serves both the weight and the bias gradient.
        if side not in parameter_cache:
            parameter_cache[side] = _parameter_gradient_tensors(sides_backward[side], case, labels[side])
        result = parameter_cache[side][which]
        if isinstance(result, _ProbeError):
            raise result
        return result

    def weight_gradient(side: int) -> tuple[sp.csr_array, Callable[[int, int], str]]:
        tensor = parameters(side, 0)
        return _bilinear_matrix(tensor), pair_describer(("grad_weight", case.w_shape), g_text, x_text)

    def bias_gradient(side: int) -> tuple[sp.csr_array, Callable[[int, int], str]]:
        matrix = sp.csr_array(parameters(side, 1))
        return matrix, entry_describer("grad_bias", (case.out_channels,), "grad_output", case.y_shape)

    identities = (
        _compare("im2col == P", "im2col is the 0/1 selection matrix P", ("P", "im2col"), gather),
        _compare("col2im == P^T", "col2im is the transpose of P", ("P^T", "col2im"), scatter),
        _compare("forward, formula (4)", "W @ im2col(x) == sliding-window correlation", labels, forward),
        _compare(
            "input gradient, formula (8)",
            "col2im(W^T @ delta) == correlate(pad(dilate(delta)), rot180(W))",
            labels,
            input_gradient,
        ),
        _compare(
            "weight gradient, formula (5)",
            "delta @ im2col(x)^T == correlate(x, dilate(delta))",
            labels,
            weight_gradient,
        ),
        _compare(
            "bias gradient, formula (6)", "delta summed over positions, both ways", labels, bias_gradient
        ),
    )
    return Proof(geometry, case.in_channels, case.out_channels, groups, identities)


# ---------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepCase:
    """One geometry of the sweep: the arguments of
    [`prove_geometry`][im2col_conv.equivalence.prove_geometry]."""

    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    in_channels: int
    out_channels: int

    def prove(self) -> Proof:
        """Run [`prove_geometry`][im2col_conv.equivalence.prove_geometry] on this geometry."""
        return prove_geometry(
            self.input_size,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.in_channels,
            self.out_channels,
        )


def _fits(case: SweepCase) -> bool:
    padded = (n + b + a for n, (b, a) in zip(case.input_size, case.padding))
    return all(d * (k - 1) + 1 <= p for k, d, p in zip(case.kernel_size, case.dilation, padded))


def _cases_1d(
    kernels: Sequence[int], paddings: Sequence[tuple[int, int]], groups: int
) -> Iterator[SweepCase]:
    # Every stride from 1 to 3 and dilation 1 and 2 with each kernel and padding:
    # kernels both smaller and larger than the stride, and strides that do and do
    # not divide. One channel per group keeps each proof small; the channel sums
    # are covered by _channel_cases.
    for k, s, pad, dl in itertools.product(kernels, (1, 2, 3), paddings, (1, 2)):
        yield SweepCase((5,), (k,), (s,), (pad,), (dl,), groups, groups, groups)


def _cases_nd(count: int, ndim: int, sizes: Sequence[int], groups: int, seed: int) -> Iterator[SweepCase]:
    # Mixed per-dimension geometries drawn from a fixed seed: each dimension gets
    # its own kernel, stride, padding and dilation, so no symmetry hides an index slip.
    rng = np.random.default_rng(seed)

    def pick(options: Sequence[Any]) -> Any:
        return options[int(rng.integers(len(options)))]

    made = 0
    while made < count:
        case = SweepCase(
            tuple(pick(sizes) for _ in range(ndim)),
            tuple(pick((1, 2, 3)) for _ in range(ndim)),
            tuple(pick((1, 2, 3)) for _ in range(ndim)),
            tuple(pick(((0, 0), (1, 1), (0, 1), (2, 1))) for _ in range(ndim)),
            tuple(pick((1, 1, 2)) for _ in range(ndim)),
            groups,
            groups,
            groups,
        )
        if _fits(case):
            made += 1
            yield case


def _channel_cases(ndim: int, count: int) -> Iterator[SweepCase]:
    # Several channels per group: the sums over input channels in (4) and over
    # output channels in (8) have more than one term, and channel axes of
    # different lengths cannot be swapped unnoticed.
    size = ((5,), (3, 4), (2, 3, 2))[ndim - 1]
    kernel = ((3,), (2, 2), (2, 1, 2))[ndim - 1]
    settings = (
        # stride, padding, dilation, (groups, in_channels, out_channels)
        (2, (1, 1), 1, (1, 2, 3)),
        (3, (0, 2), 2, (2, 4, 2)),
        (1, (0, 0), 1, (1, 3, 2)),
        (2, (2, 1), 1, (2, 2, 4)),
    )
    for s, pad, dl, (g, c_in, c_out) in settings[:count]:
        yield SweepCase(size, kernel, (s,) * ndim, (pad,) * ndim, (dl,) * ndim, g, c_in, c_out)


def sweep_grid(quick: bool = False) -> list[SweepCase]:
    """The geometries proved by ``python -m im2col_conv.equivalence``.

    Parameters
    ----------
    quick : bool, optional
        A smaller grid (for the test suite) that still has 1-D, 2-D and 3-D
        cases, non-dividing strides, asymmetric padding, dilation and groups.

    Returns
    -------
    list of SweepCase
        Only geometries whose dilated kernel fits in the padded input.

    Examples
    --------
    >>> grid = sweep_grid(quick=True)
    >>> sorted({len(case.input_size) for case in grid})
    [1, 2, 3]
    """
    if quick:
        cases = [
            *_cases_1d((1, 4), ((0, 0), (2, 1)), groups=1),
            *_cases_1d((2,), ((0, 2),), groups=2),
            *_cases_nd(3, 2, (3, 4), groups=1, seed=2),
            *_cases_nd(1, 3, (2, 3), groups=1, seed=3),
            *_channel_cases(1, 2),
        ]
    else:
        cases = [
            *_cases_1d((1, 2, 3, 4), ((0, 0), (1, 1), (0, 2), (2, 1)), groups=1),
            *_cases_1d((3,), ((0, 0), (2, 1)), groups=2),
            *_cases_nd(20, 2, (3, 4), groups=1, seed=2),
            *_cases_nd(2, 2, (3,), groups=2, seed=5),
            *_cases_nd(5, 3, (2, 3), groups=1, seed=3),
            *_cases_nd(1, 3, (2,), groups=2, seed=7),
            *_channel_cases(1, 4),
            *_channel_cases(2, 2),
            *_channel_cases(3, 1),
        ]
    return [case for case in cases if _fits(case)]


# ---------------------------------------------------------------------------
# Floating point, at realistic sizes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FloatComparison:
    """Largest relative differences between the two formulations on random float64 data.

    Each error is ``max |im2col - direct| / max |direct|`` over one result.

    Attributes
    ----------
    description : str
        The sizes and geometry compared.
    forward, input, weight, bias : float
        Relative errors of the forward output and of the three gradients.
    """

    description: str
    forward: float
    input: float
    weight: float
    bias: float

    @property
    def worst(self) -> float:
        """The largest of the four errors."""
        return max(self.forward, self.input, self.weight, self.bias)

    def __str__(self) -> str:
        return (
            f"float64 {self.description}: max relative error forward {self.forward:.1e}, "
            f"input {self.input:.1e}, weight {self.weight:.1e}, bias {self.bias:.1e}"
        )


def _relative_error(a: NDArray[Any], b: NDArray[Any]) -> float:
    scale = float(np.max(np.abs(b)))
    return float(np.max(np.abs(a - b))) / scale if scale else float(np.max(np.abs(a - b)))


def compare_float64(
    batch: int = 8,
    in_channels: int = 16,
    out_channels: int = 32,
    size: tuple[int, ...] = (32, 32),
    kernel_size: tuple[int, ...] = (3, 3),
    stride: IntOrTuple = 1,
    padding: PaddingLike = 1,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    seed: int = 0,
) -> FloatComparison:
    """Run both formulations on the same random float64 data and measure how far apart they are.

    Parameters
    ----------
    batch, in_channels, out_channels : int, optional
        ``N``, ``C_in`` and ``C_out`` (default 8, 16 and 32).
    size, kernel_size : tuple of int, optional
        Spatial sizes of the input and the kernel (default 32x32 and 3x3).
    stride, padding, dilation, groups : optional
        As for [`im2col_conv.conv`][im2col_conv.convolution.conv].
    seed : int, optional
        Seed of the standard-normal data.

    Returns
    -------
    FloatComparison

    Examples
    --------
    >>> result = compare_float64(2, 2, 4, (8, 8), (3, 3), stride=2)
    >>> result.worst < 1e-13
    True
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, in_channels, *size))
    w = rng.standard_normal((out_channels, in_channels // groups, *kernel_size))
    b = rng.standard_normal(out_channels)
    args = (stride, padding, dilation, groups)
    y = lowered_conv(x, w, b, *args)
    y_direct = direct.conv(x, w, b, *args)
    delta = rng.standard_normal(y.shape)
    grads = lowered_backward(delta, x, w, *args)
    grads_direct = direct.conv_backward(delta, x, w, *args)
    geometry = ConvGeometry.create(size, kernel_size, stride, padding, dilation)
    description = (
        f"N={batch}, C {in_channels}->{out_channels}, {_dims(size)} input, {_dims(kernel_size)} kernel, "
        f"stride {_dims(geometry.stride)}, padding {padding}, dilation {_dims(geometry.dilation)}, "
        f"groups {groups}"
    )
    return FloatComparison(
        description,
        _relative_error(y, y_direct),
        _relative_error(grads.input, grads_direct.input),
        _relative_error(grads.weight, grads_direct.weight),
        _relative_error(grads.bias, grads_direct.bias),
    )


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Prove every geometry of the sweep; return 0 if all hold, 1 otherwise.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``): ``--quick`` for
        the smaller grid, ``--quiet`` to print failures and the total only,
        ``--no-float`` to skip the float64 comparison.

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m im2col_conv.equivalence",
        description="Prove exactly, geometry by geometry, that the im2col/col2im convolution "
        "and its backward pass equal the direct dilate-pad-rotate method.",
    )
    parser.add_argument("--quick", action="store_true", help="prove a smaller grid")
    parser.add_argument("--quiet", action="store_true", help="print only failures and the total")
    parser.add_argument("--no-float", action="store_true", help="skip the float64 comparison")
    options = parser.parse_args(argv)

    start = time.perf_counter()
    grid = sweep_grid(quick=options.quick)
    failed = 0
    coefficients = 0
    for number, case in enumerate(grid, 1):
        proof = case.prove()
        coefficients += proof.coefficients
        failed += not proof.held
        if not options.quiet or not proof.held:
            print(f"{number:4d} {proof.line()}")
    elapsed = time.perf_counter() - start
    proved = len(grid) - failed
    print(
        f"proved {proved} of {len(grid)} geometries exactly (6 identities each, "
        f"{coefficients} integer coefficients compared) in {elapsed:.1f} s"
    )
    if not options.no_float:
        worst = 0.0
        for setting in ({"stride": 1, "padding": 1}, {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}):
            comparison = compare_float64(**setting)  # type: ignore[arg-type]
            worst = max(worst, comparison.worst)
            print(comparison)
        if not worst < 1e-12:
            print(f"FAILED: float64 relative error {worst:.1e} is not below 1e-12")
            failed += 1
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
