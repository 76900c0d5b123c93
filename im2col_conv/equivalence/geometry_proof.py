"""Proof, for one geometry, that the im2col formulation equals a candidate (by default the direct method).

`prove_geometry` checks six identities, each by comparing exact integer
coefficient matrices: im2col against the selection matrix ``P``, col2im
against ``P^T``, and the forward pass (4), the input gradient (8), the weight
gradient (5) and the bias gradient (6) against the candidate.
"""

from __future__ import annotations

from functools import partial

import scipy.sparse as sp

from .. import direct
from .._validation import check_groups, positive_int
from ..convolution import conv as lowered_conv
from ..convolution import conv_backward as lowered_backward
from ..geometry import ConvGeometry, IntOrTuple, PaddingLike
from .comparison import (
    Describer,
    bilinear_matrix,
    compare,
    entry_describer,
    pair_describer,
)
from .matrices import col2im_matrix, im2col_matrix, selection_matrix
from .probing import (
    BackwardFn,
    ForwardFn,
    ProbeCase,
    ProbeError,
    forward_tensor,
    input_gradient_tensor,
    parameter_gradient_tensors,
)
from .results import Identity, Proof

__all__ = ["prove_geometry"]

_Matrix = tuple[sp.csr_array, Describer]


def _column_shape(case: ProbeCase) -> tuple[int, int]:
    g = case.geometry
    return (case.in_channels * g.kernel_volume, g.output_volume)


def _gather(case: ProbeCase, selection: sp.csr_array, side: int) -> _Matrix:
    """Side 0: the selection matrix ``P``; side 1: the matrix of ``im2col``."""
    matrix = selection if side == 0 else im2col_matrix(case.geometry, case.in_channels, case.padding)
    return matrix, entry_describer(("cols", _column_shape(case)), ("x", case.x_shape))


def _scatter(case: ProbeCase, selection: sp.csr_array, side: int) -> _Matrix:
    """Side 0: ``P^T``; side 1: the matrix of ``col2im``."""
    if side == 0:
        matrix = selection.T.tocsr()
    else:
        matrix = col2im_matrix(case.geometry, case.in_channels, case.padding)
    return matrix, entry_describer(("image", case.x_shape), ("cols", _column_shape(case)))


def _forward(
    case: ProbeCase, sides: tuple[ForwardFn, ForwardFn], labels: tuple[str, str], side: int
) -> _Matrix:
    tensor = forward_tensor(sides[side], case, labels[side])
    describe = pair_describer(("y", case.y_shape), ("weight", case.w_shape), ("x", case.x_shape))
    return bilinear_matrix(tensor), describe


def _input_gradient(
    case: ProbeCase, sides: tuple[BackwardFn, BackwardFn], labels: tuple[str, str], side: int
) -> _Matrix:
    tensor = input_gradient_tensor(sides[side], case, labels[side])
    describe = pair_describer(
        ("grad_input", case.x_shape), ("weight", case.w_shape), ("grad_output", case.y_shape)
    )
    return bilinear_matrix(tensor), describe


class _ParameterProbes:
    """Weight and bias gradient coefficients of both sides; one pass of probes serves both."""

    def __init__(
        self, case: ProbeCase, sides: tuple[BackwardFn, BackwardFn], labels: tuple[str, str]
    ) -> None:
        self.case, self.sides, self.labels = case, sides, labels
        self._cache: dict[int, tuple[object, object]] = {}

    def _read(self, side: int, which: int) -> object:
        if side not in self._cache:
            self._cache[side] = parameter_gradient_tensors(self.sides[side], self.case, self.labels[side])
        result = self._cache[side][which]
        if isinstance(result, ProbeError):
            raise result
        return result

    def weight(self, side: int) -> _Matrix:
        case = self.case
        describe = pair_describer(
            ("grad_weight", case.w_shape), ("grad_output", case.y_shape), ("x", case.x_shape)
        )
        return bilinear_matrix(self._read(side, 0)), describe  # type: ignore[arg-type]

    def bias(self, side: int) -> _Matrix:
        case = self.case
        describe = entry_describer(("grad_bias", (case.out_channels,)), ("grad_output", case.y_shape))
        return sp.csr_array(self._read(side, 1)), describe


def _make_case(
    geometry: ConvGeometry,
    padding: PaddingLike,
    groups: int,
    in_channels: int | None,
    out_channels: int | None,
) -> ProbeCase:
    g = positive_int(groups, "groups")
    default = max(2, g)
    c_in = default if in_channels is None else positive_int(in_channels, "in_channels")
    c_out = default if out_channels is None else positive_int(out_channels, "out_channels")
    check_groups(g, {"input": c_in, "output": c_out}, (c_out, c_in // g, *geometry.kernel_size))
    return ProbeCase(geometry, padding, c_in, c_out, g)


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

    Checks six identities, comparing [`im2col_conv.conv`][im2col_conv.convolution.conv] and
    [`im2col_conv.conv_backward`][im2col_conv.convolution.conv_backward] (the im2col/col2im formulation)
    with a
    candidate, by default the document's direct method
    ([`im2col_conv.direct`][im2col_conv.direct]). All arithmetic is int64, so a held identity
    is a proof for this geometry, for one sample at the default workspace.

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
    case = _make_case(geometry, padding, groups, in_channels, out_channels)
    labels = ("im2col", candidate_name)
    selection = selection_matrix(geometry, case.in_channels)
    forwards: tuple[ForwardFn, ForwardFn] = (lowered_conv, candidate_conv)
    backwards: tuple[BackwardFn, BackwardFn] = (lowered_backward, candidate_backward)
    parameters = _ParameterProbes(case, backwards, labels)
    identities: tuple[Identity, ...] = (
        compare(
            "im2col == P",
            "im2col is the 0/1 selection matrix P",
            ("P", "im2col"),
            partial(_gather, case, selection),
        ),
        compare(
            "col2im == P^T",
            "col2im is the transpose of P",
            ("P^T", "col2im"),
            partial(_scatter, case, selection),
        ),
        compare(
            "forward, formula (4)",
            "W @ im2col(x) == sliding-window correlation",
            labels,
            partial(_forward, case, forwards, labels),
        ),
        compare(
            "input gradient, formula (8)",
            "col2im(W^T @ delta) == correlate(pad(dilate(delta)), rot180(W))",
            labels,
            partial(_input_gradient, case, backwards, labels),
        ),
        compare(
            "weight gradient, formula (5)",
            "delta @ im2col(x)^T == correlate(x, dilate(delta))",
            labels,
            parameters.weight,
        ),
        compare(
            "bias gradient, formula (6)", "delta summed over positions, both ways", labels, parameters.bias
        ),
    )
    return Proof(geometry, case.in_channels, case.out_channels, groups, identities)
