"""Convolution as matrix products: im2col forward, GEMM + col2im backward.

The public API works on NumPy arrays laid out batch-first, channels-first
(``(N, C, *spatial)``) with PyTorch's weight layout ``(C_out, C_in/groups, *kernel)``,
for any number of spatial dimensions. Max and average pooling reduce the same
column matrix and share the convolution's col2im backward.
"""

from .convolution import Columns, ConvGrads, conv, conv_backward, conv_forward, conv_transpose
from .geometry import ConvGeometry, output_size
from .layer import Conv
from .lowering import col2im, im2col
from .pool_layers import AvgPool, MaxPool
from .pooling import avg_pool, avg_pool_backward, max_pool, max_pool_backward

__all__ = [
    "AvgPool",
    "Columns",
    "Conv",
    "ConvGeometry",
    "ConvGrads",
    "MaxPool",
    "avg_pool",
    "avg_pool_backward",
    "col2im",
    "conv",
    "conv_backward",
    "conv_forward",
    "conv_transpose",
    "im2col",
    "max_pool",
    "max_pool_backward",
    "output_size",
]

__version__ = "0.1.0"
