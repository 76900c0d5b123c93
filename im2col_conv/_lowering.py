"""The two kernels behind every window operation: lowering and scatter-adding.

`lower` copies every receptive field of a (padded) batch into a column
array: one read-only strided view (`window_view`) and one copy.
`scatter_add` is its adjoint: it adds every column entry back onto the
position it was read from, one strided slice-add per kernel offset over the
whole batch. Both take a validated [`ConvGeometry`][im2col_conv.geometry.ConvGeometry]
and plain arrays; the public [`im2col`][im2col_conv.lowering.im2col] and
[`col2im`][im2col_conv.lowering.col2im], the convolution engine and pooling are built on
them.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import DTypeLike, NDArray

from .geometry import ConvGeometry
from .profiling import phase, recording

__all__ = ["lower", "pad_input", "scatter_add", "scatter_blocks", "window_view"]


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


@lru_cache(maxsize=8)
def _batch_inner_axes(ndim: int) -> tuple[int, ...]:
    """The axes of a ``(N, C, *kernel, *out)`` window view with the batch moved after the kernel's."""
    return (*range(1, 2 + ndim), 0, *range(2 + ndim, 2 + 2 * ndim))


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
    x : ndarray, shape (N, C, *geometry.input_size)
        Any memory layout.
    geometry : ConvGeometry
    out : ndarray, optional
        C-contiguous array of the result's shape to fill; allocated when not given.
    dtype : data-type, optional
        dtype of the columns (default ``x.dtype``); the cast happens during
        the copy, so no cast copy of ``x`` is made.
    batch_inner : bool, optional
        Put the batch axis after the kernel axes, so that the columns of all
        samples form one matrix ``(C * prod(kernel), N * L)``.
    padded : ndarray, shape (N, C, *geometry.padded_size), optional
        Zero-bordered buffer for the padded input (see `pad_input`).

    Returns
    -------
    ndarray, C-contiguous
        Shape ``(N, C, *kernel_size, *output_size)``, or with ``batch_inner``
        ``(C, *kernel_size, N, *output_size)``; ``out`` if given.
    """
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    with phase("lowering"):
        source = pad_input(x, geometry.padding, dtype, out=padded) if geometry.has_padding else x
        view = window_view(source.astype(dtype, copy=False), geometry)
        if batch_inner:
            view = view.transpose(_batch_inner_axes(geometry.ndim))
        if out is None:
            out = np.empty(view.shape, dtype)
        if out.dtype == dtype:
            out[...] = view  # no cast to check: a plain copy spares copyto's dispatch
        else:
            np.copyto(out, view)
    return out


def scatter_add(
    cols: NDArray[Any],
    geometry: ConvGeometry,
    *,
    grid_size: Sequence[int] | None = None,
    target_size: Sequence[int] | None = None,
    out: NDArray[Any] | None = None,
    allocate: Callable[[tuple[int, ...]], NDArray[Any]] | None = None,
) -> NDArray[Any]:
    """Add every column entry onto the position it was read from (the adjoint of `lower`).

    Parameters
    ----------
    cols : ndarray, shape (N, C, *kernel_size, *grid_size)
        Column entries, any memory layout.
    geometry : ConvGeometry
        Supplies kernel size, stride, dilation and the leading padding.
    grid_size : sequence of int, optional
        Number of window positions per dimension; defaults to
        ``geometry.output_size``. A transposed convolution passes its input size.
    target_size : sequence of int, optional
        Size of the returned spatial axes; defaults to ``geometry.input_size``.
        Positions past the reach of every window are zero.
    out : ndarray, shape (N, C, *target_size), optional
        Where to write the result (overwritten, not added to).
    allocate : callable, optional
        ``allocate(shape)`` returns scratch memory for the accumulation when
        it cannot happen in ``out`` (padding, or windows reaching past the
        target); by default a new array.

    Returns
    -------
    ndarray, shape (N, C, *target_size)
        ``out[n, c, *x] = sum of cols[n, c, *k, *o]`` over all ``k, o`` with
        ``o * stride + k * dilation - pad_before == x``.
    """
    every_position = (slice(None),) * geometry.ndim

    def block(index: int, offset: tuple[int, ...]) -> NDArray[Any]:
        return cols[(Ellipsis,) + offset + every_position]

    return scatter_blocks(
        block,
        cols.shape[:2],
        cols.dtype,
        geometry,
        grid_size=grid_size,
        target_size=target_size,
        out=out,
        allocate=allocate,
    )


@lru_cache(maxsize=256)
def _scatter_layout(
    geometry: ConvGeometry, grid: tuple[int, ...], target: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[tuple[tuple[int, ...], tuple[Any, ...]], ...], tuple[Any, ...]]:
    """Where `scatter_blocks` adds: its buffer's size, each kernel offset's windows, the crop.

    The same few geometries recur from call to call (a hashable, frozen
    `ConvGeometry` each): their layouts are made once.
    """
    before = tuple(b for b, _ in geometry.padding)
    # The buffer covers both every window position and the requested crop, so
    # that positions no window reaches simply stay zero.
    reach = geometry.reach(grid)
    buffer_size = tuple(max(r, b + t) for r, b, t in zip(reach, before, target))
    windows = []
    for offset in itertools.product(*(range(k) for k in geometry.kernel_size)):
        steps = zip(offset, geometry.dilation, grid, geometry.stride)
        window = tuple(slice(k * dl, k * dl + (g - 1) * s + 1, s) for k, dl, g, s in steps)
        windows.append((offset, (Ellipsis, *window)))
    crop = (Ellipsis, *(slice(b, b + t) for b, t in zip(before, target)))
    return buffer_size, tuple(windows), crop


def scatter_blocks(
    block: Callable[[int, tuple[int, ...]], NDArray[Any]],
    lead: tuple[int, ...],
    dtype: DTypeLike,
    geometry: ConvGeometry,
    *,
    grid_size: Sequence[int] | None = None,
    target_size: Sequence[int] | None = None,
    out: NDArray[Any] | None = None,
    allocate: Callable[[tuple[int, ...]], NDArray[Any]] | None = None,
) -> NDArray[Any]:
    """`scatter_add` with the columns of each kernel offset made on demand.

    ``block(index, offset)`` returns the columns of kernel offset ``offset``
    (flat index ``index`` in row-major order), shape ``(*lead, *grid_size)``.
    Asking for one offset at a time lets the caller compute each block right
    before it is added, while it is still in cache, instead of materialising
    all ``prod(kernel)`` of them. Other parameters as for `scatter_add`.
    """
    grid = tuple(geometry.output_size if grid_size is None else grid_size)
    target = tuple(geometry.input_size if target_size is None else target_size)
    buffer_size, windows, crop = _scatter_layout(geometry, grid, target)
    if buffer_size == target and out is not None:
        buffer = out
    elif allocate is not None:
        buffer = allocate(lead + buffer_size)
    else:
        buffer = np.empty(lead + buffer_size, dtype=dtype)
    buffer.fill(0)
    timed = recording()
    for index, (offset, window) in enumerate(windows):
        columns = block(index, offset)
        sums = buffer[window]  # added to in place, spared the write-back of buffer[window] += columns
        if timed:
            with phase("col2im"):
                sums += columns
        else:
            sums += columns
    if buffer is out or (buffer_size == target and out is None):
        return buffer
    if out is None:
        return np.ascontiguousarray(buffer[crop])
    np.copyto(out, buffer[crop])
    return out
