"""The reference derivation's "direct" method: dilate, pad, rotate, correlate.

This module computes a convolution and its gradients the way the reference
document derives them, one named step per function, without lowering anything
to columns. It exists to be compared with the im2col/col2im formulation of
`im2col_conv.convolution` (see
`im2col_conv.equivalence`), and to be read
side by side with the document:

* forward, formula (4): a sliding-window correlation of the input with the
  kernel, keeping every ``stride``-th window (`conv`);
* weight gradient, formula (5): the input correlated with the *dilated*
  output gradient (`conv_backward`);
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

The named array operations are in `im2col_conv.direct.steps`, the
formulas built from them in `im2col_conv.direct.formulas`. The package
imports only the argument checks and the geometry from the rest of the
library: it never runs the code it is compared with.
"""

from __future__ import annotations

from .formulas import conv, conv_backward
from .steps import correlate, crop, dilate, pad, rot180, subsample

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
