"""The lowering: every receptive field of a batch copied into a column array.

`lower` makes one read-only strided view of the (padded) input
(`window_view`) and one copy of it. It takes a validated `ConvGeometry` and
plain arrays; the public `im2col` and the convolution engine are built on
it. Its adjoint, col2im, is `im2col_conv._col2im`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import DTypeLike, NDArray

from .geometry import ConvGeometry
from .profiling import phase

__all__ = ["lower", "lowering_elements", "pad_input", "window_view"]


def pad_input(
    x: NDArray[Any],
    padding: Sequence[tuple[int, int]],
    dtype: DTypeLike | None = None,
    *,
    out: NDArray[Any] | None = None,
) -> NDArray[Any]:
    """Zero-pad the trailing spatial axes of ``x``, casting to ``dtype``.

    Parameters
    ----------
    x : ndarray, shape (..., *spatial)
    padding : sequence of (int, int)
        ``(before, after)`` per trailing spatial axis.
    dtype : data-type, optional
        Default ``x.dtype``.
    out : ndarray, shape (..., *padded), optional
        A buffer whose border is already zero, for instance one reused from
        an earlier call with the same padding: only its interior is written,
        which spares zeroing (and first touching) fresh memory every time.

    Returns
    -------
    ndarray, shape (..., *padded)
        ``x`` itself when there is no padding and no cast to do, so the
        caller must not write to the result.
    """
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    if not any(b or a for b, a in padding):
        return x.astype(dtype, copy=False)
    lead = x.shape[: x.ndim - len(padding)]
    spatial = x.shape[len(lead) :]
    if out is None:
        out = np.zeros(lead + tuple(n + b + a for n, (b, a) in zip(spatial, padding)), dtype)
    interior = tuple(slice(b, b + n) for n, (b, _) in zip(spatial, padding))
    out[(Ellipsis,) + interior] = x
    return out


def window_view(padded: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Read-only view of every receptive field of an already padded input.

    Parameters
    ----------
    padded : ndarray, shape (..., *geometry.padded_size)
        The padded input; leading axes are kept as they are.
    geometry : ConvGeometry

    Returns
    -------
    ndarray, shape (..., *kernel_size, *output_size)
        ``view[..., *k, *o] == padded[..., *(o * stride + k * dilation)]``.
        No data is copied and the view cannot be written to.
    """
    d = geometry.ndim
    lead = padded.shape[:-d]
    every_stride = padded.strides
    lead_strides, spatial_strides = every_stride[:-d], every_stride[-d:]
    kernel_strides = tuple(map(operator.mul, spatial_strides, geometry.dilation))
    output_strides = tuple(map(operator.mul, spatial_strides, geometry.stride))
    if 1 in geometry.output_size:
        # A single window needs no step: any stride then reads the same, and a huge one overflows.
        output_strides = tuple(s if o > 1 else 0 for s, o in zip(output_strides, geometry.output_size))
    shape = lead + geometry.kernel_size + geometry.output_size
    strides = lead_strides + kernel_strides + output_strides
    if padded.flags.c_contiguous and padded.size:
        # A contiguous array is its own buffer, from its first element: a view
        # of it is made at a fraction of the cost of `as_strided`.
        view: NDArray[Any] = np.ndarray(shape, padded.dtype, padded, 0, strides)
        view.setflags(write=False)
        return view
    return as_strided(padded, shape=shape, strides=strides, writeable=False)


@lru_cache(maxsize=16)
def _batch_inner_axes(lead: int, ndim: int) -> tuple[int, ...]:
    """The axes of a ``(N, *channels, *kernel, *out)`` window view, the batch moved after the kernel's."""
    inner = lead + ndim
    return (*range(1, inner), 0, *range(inner, inner + ndim))


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
        Any memory layout; ``channels`` is one axis or more (the engine
        passes ``(groups, C/groups)``).
    geometry : ConvGeometry
    out : ndarray, optional
        C-contiguous array of the result's shape to fill; allocated when not given.
    dtype : data-type, optional
        dtype of the columns (default ``x.dtype``); the cast happens during
        the copy, so no cast copy of ``x`` is made.
    batch_inner : bool, optional
        Put the batch axis after the kernel axes, so that the columns of all
        samples form one matrix ``(C * prod(kernel), N * L)``.
    padded : ndarray, shape (N, *channels, *geometry.padded_size), optional
        Zero-bordered buffer for the padded input (see `pad_input`).

    Returns
    -------
    ndarray, C-contiguous
        Shape ``(N, *channels, *kernel_size, *output_size)``, or with
        ``batch_inner`` ``(*channels, *kernel_size, N, *output_size)``;
        ``out`` if given.
    """
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    with phase("lowering"):
        source = pad_input(x, geometry.padding, dtype, out=padded) if geometry.has_padding else x
        view = window_view(source.astype(dtype, copy=False), geometry)
        if batch_inner:
            view = view.transpose(_batch_inner_axes(x.ndim - geometry.ndim, geometry.ndim))
        if out is None:
            out = np.empty(view.shape, dtype)
        if out.dtype == dtype:
            out[...] = view  # no cast to check: a plain copy spares copyto's dispatch
        else:
            np.copyto(out, view)
    return out


def lowering_elements(geometry: ConvGeometry, channels: int, samples: int, grid: tuple[int, ...]) -> int:
    """Elements `lower` holds for a tile: its columns, and its padded input if padded.

    ``grid`` is the tile's output grid; the padded input is the tile's read
    extent, ``geometry.reach(grid)``.
    """
    columns = geometry.kernel_volume * math.prod(grid)
    padded = math.prod(geometry.reach(grid)) if geometry.has_padding else 0
    return samples * channels * (columns + padded)
