"""Exact proof that the im2col/col2im backward equals the document's direct method.

Every map compared here is linear or bilinear with integer coefficients, so
two implementations of it are equal exactly when their coefficients are; the
coefficients are read off by applying each implementation to basis vectors
in int64, so there is no tolerance and no rounding anywhere. For one geometry
(input size, kernel size, stride, padding, dilation, groups and channel
counts) `prove_geometry` checks six identities:

1. ``im2col`` is the 0/1 selection matrix ``P`` whose row ``(c, k, l)`` picks
   input entry ``(c, l * stride + k * dilation - pad_before)``, written down
   here from index arithmetic alone (`selection_matrix`);
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

from .cli import COVERAGE, main
from .engine_proof import DEFAULT_PATHS, EnginePath, prove_engine
from .engine_sweep import EngineCase, default_cases, exhaustive_cases
from .floats import FloatComparison, compare_float64
from .geometry_proof import prove_geometry
from .matrices import col2im_matrix, im2col_matrix, selection_matrix
from .normalisation import check_normalisation
from .probing import BackwardFn, ForwardFn
from .reference import Layout, ReferenceMaps
from .results import Identity, Proof
from .sweep import SweepCase, sweep_grid
from .tagging import Tags

__all__ = [
    "COVERAGE",
    "DEFAULT_PATHS",
    "BackwardFn",
    "EngineCase",
    "EnginePath",
    "FloatComparison",
    "ForwardFn",
    "Identity",
    "Layout",
    "Proof",
    "ReferenceMaps",
    "SweepCase",
    "Tags",
    "check_normalisation",
    "col2im_matrix",
    "compare_float64",
    "default_cases",
    "exhaustive_cases",
    "im2col_matrix",
    "main",
    "prove_engine",
    "prove_geometry",
    "selection_matrix",
    "sweep_grid",
]
