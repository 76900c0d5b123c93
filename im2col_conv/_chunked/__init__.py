"""Convolutions and pooling over Dask arrays, chunk by chunk.

The public functions of `im2col_conv.convolution` and `im2col_conv.pooling`
hand a call here when an array argument is a ``dask.array.Array``; the
result is a lazy Dask array. Every task calls the NumPy function on one
block of outputs and the slab of inputs its windows reach, with the call's
``workspace``; the weights travel once per graph. Importing this package
imports Dask, which ``import im2col_conv`` never does.
"""

from ._conv import conv, conv_backward, conv_transpose
from ._pool import avg_pool, max_pool
from ._pool_backward import avg_pool_backward, max_pool_backward

__all__ = [
    "avg_pool",
    "avg_pool_backward",
    "conv",
    "conv_backward",
    "conv_transpose",
    "max_pool",
    "max_pool_backward",
]
