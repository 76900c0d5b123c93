"""Convolution as matrix products: im2col forward, GEMM + col2im backward.

The public API works on NumPy arrays laid out batch-first, channels-first
(``(N, C, *spatial)``) with PyTorch's weight layout ``(C_out, C_in/groups, *kernel)``,
for any number of spatial dimensions.
"""

from .convolution import Columns, ConvGrads, conv, conv_backward, conv_forward, conv_transpose
from .geometry import ConvGeometry, output_size
from .layer import Conv
from .lowering import col2im, im2col

__all__ = [
    "Columns",
    "Conv",
    "ConvGeometry",
    "ConvGrads",
    "col2im",
    "conv",
    "conv_backward",
    "conv_forward",
    "conv_transpose",
    "im2col",
    "output_size",
]

__version__ = "0.1.0"
