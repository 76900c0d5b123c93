"""The lowering: every receptive field of a batch copied into a column array.

`lower` makes one read-only strided view of the (padded) input (`window_view`)
and one copy of it, from a validated `ConvGeometry` and plain arrays; the
public `im2col` and the convolution engine are built on it. Its adjoint,
col2im, is `im2col_conv._col2im`.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import DTypeLike, NDArray

from .geometry import ConvGeometry
from .profiling import phase

__all__ = ["lower", "lowering_elements", "window_view"]


def window_view(padded: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Read-only view ``(..., *kernel_size, *output_size)`` of every receptive field.

    ``view[..., *k, *o] == padded[..., *(o * stride + k * dilation)]`` for an
    already padded input ``(..., *geometry.padded_size)``; nothing is copied.
    """
    d = geometry.ndim
    spatial_strides = padded.strides[-d:]
    kernel_strides = tuple(map(operator.mul, spatial_strides, geometry.dilation))
    # A single window needs no step: any stride then reads the same, and a huge one overflows.
    steps = zip(spatial_strides, geometry.stride, geometry.output_size)
    output_strides = tuple(s * t if o != 1 else 0 for s, t, o in steps)
    shape = padded.shape[:-d] + geometry.kernel_size + geometry.output_size
    strides = padded.strides[:-d] + kernel_strides + output_strides
    if padded.flags.c_contiguous and padded.size:
        # A contiguous array is its own buffer, from its first element: a view
        # of it is made at a fraction of the cost of `as_strided`.
        view: NDArray[Any] = np.ndarray(shape, padded.dtype, padded, 0, strides)
        view.setflags(write=False)
        return view
    return as_strided(padded, shape=shape, strides=strides, writeable=False)


def lower(
    x: NDArray[Any],
    geometry: ConvGeometry,
    *,
    out: NDArray[Any] | None = None,
    dtype: DTypeLike | None = None,
    batch_inner: bool = False,
    padded: NDArray[Any] | None = None,
) -> NDArray[Any]:
    """Copy the receptive fields of a batch into a column array.

    Parameters
    ----------
    x : ndarray, shape (N, *channels, *geometry.input_size)
        Any memory layout; ``channels`` is one axis or more.
    geometry : ConvGeometry
    out : ndarray, optional
        C-contiguous array of the result's shape to fill.
    dtype : data-type, optional
        dtype of the columns (default ``x.dtype``), cast during the copy.
    batch_inner : bool, optional
        Put the batch axis after the kernel axes, so that the columns of all
        samples form one matrix ``(C * prod(kernel), N * L)``.
    padded : ndarray, shape (N, *channels, *geometry.padded_size), optional
        Buffer for the padded input whose border is already zero (reused
        from an earlier call with the same padding): only its interior is
        written, which spares zeroing and first touching fresh memory.

    Returns
    -------
    ndarray, C-contiguous
        ``(N, *channels, *kernel_size, *output_size)``, or with ``batch_inner``
        ``(*channels, *kernel_size, N, *output_size)``; ``out`` if given.
    """
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    with phase("lowering"):
        source = x
        if geometry.has_padding:
            if padded is None:
                padded = np.zeros(x.shape[: x.ndim - geometry.ndim] + geometry.padded_size, dtype)
            interior = tuple(slice(b, b + n) for n, (b, _) in zip(geometry.input_size, geometry.padding))
            padded[(Ellipsis,) + interior] = x
            source = padded
        view = window_view(source.astype(dtype, copy=False), geometry)
        if batch_inner:  # the batch moved after the channel and kernel axes
            view = view.transpose(*range(1, x.ndim), 0, *range(x.ndim, x.ndim + geometry.ndim))
        if out is None:
            out = np.empty(view.shape, dtype)
        if out.dtype == dtype:
            out[...] = view  # no cast to check: a plain copy spares copyto's dispatch
        else:
            np.copyto(out, view)
    return out


def lowering_elements(geometry: ConvGeometry, channels: int, samples: int, grid: tuple[int, ...]) -> int:
    """Elements `lower` holds for a tile of output grid ``grid``.

    Its columns, and if padded its padded input: the tile's read extent ``geometry.reach(grid)``.
    """
    columns = geometry.kernel_volume * math.prod(grid)
    padded = math.prod(geometry.reach(grid)) if geometry.has_padding else 0
    return samples * channels * (columns + padded)
