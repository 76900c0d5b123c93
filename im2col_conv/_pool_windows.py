"""Window arithmetic of pooling: PyTorch's output sizes, and where each kernel offset reads.

A pooling window is a convolution's receptive field, so a pooling call is
described by a [`ConvGeometry`][im2col_conv.geometry.ConvGeometry]. Two of PyTorch's
rules need care:

- ``ceil_mode`` rounds the output size up, but drops a last window that
  would start in the right padding. The extra windows read past the padded
  input; `pool_geometry` expresses them as extra *after*-padding, so
  the geometry's ``padding`` is ``(p, p + extra)`` per dimension and its
  ``output_size`` is PyTorch's. Padding, real or extra, never wins a
  maximum and is never summed; only ``count_include_pad`` counts the real
  padding (and never the extra) in an average's divisor.
- Row ``k`` of the column matrix (kernel offset ``k``) reads
  ``x[o * stride + k * dilation - p]``. The output positions ``o`` for which
  that lies in the input form a box, and the input positions it reads a
  strided box: `offset_boxes` lists both per offset, so the kernels
  reduce the column matrix one row at a time, straight from the input,
  without padding it.

Everything here depends on the geometry only, never on the data.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .geometry import ConvGeometry

__all__ = [
    "OffsetBox",
    "divisors",
    "offset_boxes",
    "offset_dtype",
    "offsets_from_indices",
    "pool_geometry",
    "to_flat_indices",
    "window_boxes",
]


def pool_geometry(
    input_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> ConvGeometry:
    """The windows of a pooling call with PyTorch's output size.

    Per dimension, with ``extent = dilation * (k - 1) + 1``,
    ``out = floor((in + 2 p - extent) / stride) + 1``; with ``ceil_mode`` the
    division rounds up, and a last window starting at or past ``in + p``
    (in the right padding) is dropped. Windows reading past ``in + 2 p``
    get that much extra after-padding.

    Raises
    ------
    ValueError
        If some dimension has no window, naming every argument.
    """
    out = []
    for n, k, s, p, d in zip(input_size, kernel_size, stride, padding, dilation):
        extent = d * (k - 1) + 1
        size = (n + 2 * p - extent + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (size - 1) * s >= n + p:
            size -= 1
        out.append(size)
    if min(out) < 1:
        raise ValueError(
            f"pooling output would be empty: output size {tuple(out)} for input size {input_size}, "
            f"kernel_size {kernel_size}, stride {stride}, padding {padding}, dilation {dilation}, "
            f"ceil_mode={ceil_mode}"
        )
    pads = []
    for n, k, s, p, d, o in zip(input_size, kernel_size, stride, padding, dilation, out):
        reach = (o - 1) * s + d * (k - 1) + 1
        pads.append((p, p + max(reach - n - 2 * p, 0)))
    return ConvGeometry(input_size, kernel_size, stride, tuple(pads), dilation)


class OffsetBox(NamedTuple):
    """Where one kernel offset (one row block of the column matrix) reads inside the input.

    Attributes
    ----------
    flat : int
        Flat index of the offset, row-major over ``kernel_size``.
    outputs : tuple of slice
        Output positions whose window reads the input at this offset.
    inputs : tuple of slice
        The input positions they read, in the same order (strided).
    """

    flat: int
    outputs: tuple[slice, ...]
    inputs: tuple[slice, ...]


def _dimension_boxes(
    n: int, k: int, s: int, before: int, d: int, out: int
) -> list[tuple[slice, slice] | None]:
    boxes: list[tuple[slice, slice] | None] = []
    for offset in range(k):
        shift = offset * d - before  # output o reads input o * s + shift
        low = max(0, -(shift // s) if shift < 0 else 0)
        high = min(out, (n - 1 - shift) // s + 1) if n - 1 - shift >= 0 else 0
        if low >= high:
            boxes.append(None)
            continue
        start = low * s + shift
        boxes.append((slice(low, high), slice(start, start + (high - low - 1) * s + 1, s)))
    return boxes


@functools.lru_cache(maxsize=64)
def offset_boxes(geometry: ConvGeometry) -> tuple[OffsetBox, ...]:
    """Every kernel offset that reads some input position, with where it reads.

    Offsets whose every read lies in the padding are left out.
    """
    per_dim = [
        _dimension_boxes(n, k, s, b, d, o)
        for n, k, s, (b, _), d, o in zip(
            geometry.input_size,
            geometry.kernel_size,
            geometry.stride,
            geometry.padding,
            geometry.dilation,
            geometry.output_size,
        )
    ]
    boxes = []
    for index, offset in enumerate(np.ndindex(*geometry.kernel_size)):
        parts = [dims[k] for dims, k in zip(per_dim, offset)]
        if all(part is not None for part in parts):
            outputs = tuple(part[0] for part in parts if part is not None)
            inputs = tuple(part[1] for part in parts if part is not None)
            boxes.append(OffsetBox(index, outputs, inputs))
    return tuple(boxes)


def window_boxes(geometry: ConvGeometry) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Every output position with the input box its (undilated) window reads, padding left out.

    The transposed view of `offset_boxes`, for calls with fewer
    windows than kernel offsets (global pooling), where a loop over windows
    is the shorter one.
    """
    boxes = []
    for position in np.ndindex(*geometry.output_size):
        inputs = []
        for o, s, (before, _), e, n in zip(
            position, geometry.stride, geometry.padding, geometry.kernel_extent, geometry.input_size
        ):
            start = o * s - before
            inputs.append(slice(max(start, 0), max(min(start + e, n), 0)))
        boxes.append((position, tuple(inputs)))
    return boxes


def offset_dtype(kernel_volume: int) -> np.dtype[Any]:
    """Smallest signed integer dtype holding every offset index and -1."""
    for dtype in (np.int8, np.int16, np.int32):
        if kernel_volume <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _starts(geometry: ConvGeometry, axis: int) -> NDArray[np.int64]:
    """Unpadded input position of each window's first element along ``axis``."""
    return (
        np.arange(geometry.output_size[axis], dtype=np.int64) * geometry.stride[axis]
        - (geometry.padding[axis][0])
    )


def _outer(parts: list[NDArray[Any]], combine: Any) -> NDArray[Any]:
    """Combine one 1-D array per axis into the full grid, e.g. by ``np.add`` or ``np.multiply``."""
    grid = parts[0]
    for part in parts[1:]:
        grid = combine.outer(grid, part)
    return np.asarray(grid)


def divisors(
    geometry: ConvGeometry,
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: DTypeLike,
    window: tuple[slice, ...] = (),
) -> NDArray[Any]:
    """The divisor of every window of an average pooling, shape ``output_size``.

    PyTorch's rule: the window's elements inside the input, or with
    ``count_include_pad`` inside the input and its (real) padding; a window's
    part past ``in + p`` (``ceil_mode``) is never counted. ``window`` (leading
    axes, as in a `Tile`) restricts the result to those output positions.
    """
    cut = window + (slice(None),) * (geometry.ndim - len(window))
    if divisor_override is not None:
        sizes = tuple(len(range(o)[part]) for o, part in zip(geometry.output_size, cut))
        return np.full(sizes, divisor_override, dtype)
    parts = []
    for axis, (n, k, (p, _)) in enumerate(zip(geometry.input_size, geometry.kernel_size, geometry.padding)):
        start = _starts(geometry, axis)[cut[axis]]
        if count_include_pad:
            parts.append(np.minimum(start + k, n + p) - start)
        else:
            parts.append(np.minimum(start + k, n) - np.maximum(start, 0))
    return _outer(parts, np.multiply).astype(dtype)


def _planes(geometry: ConvGeometry) -> list[int]:
    """Row-major strides, in elements, of one input plane."""
    return [math.prod(geometry.input_size[axis + 1 :]) for axis in range(geometry.ndim)]


def to_flat_indices(
    geometry: ConvGeometry, window: tuple[slice, ...], offsets: NDArray[Any], out: NDArray[Any]
) -> None:
    """Write the flat input-plane index each offset index points at into ``out``.

    ``offsets`` covers the output positions ``window`` (leading axes, as in
    a [`Tile`][im2col_conv.workspace.Tile]) of the call's ``geometry``; -1
    stays -1.
    """
    planes = _planes(geometry)
    cut = window + (slice(None),) * (geometry.ndim - len(window))
    base = _outer([_starts(geometry, axis)[cut[axis]] * plane for axis, plane in enumerate(planes)], np.add)
    table = np.zeros(geometry.kernel_volume + 1, np.int64)
    table[:-1] = _outer(
        [np.arange(k) * d * plane for k, d, plane in zip(geometry.kernel_size, geometry.dilation, planes)],
        np.add,
    ).ravel()
    np.take(table, offsets, out=out, mode="wrap")  # -1 wraps to the sentinel
    out += base
    np.copyto(out, -1, where=offsets < 0)


def offsets_from_indices(
    geometry: ConvGeometry, window: tuple[slice, ...], indices: NDArray[Any], out: NDArray[Any]
) -> None:
    """Inverse of `to_flat_indices`: the kernel offset at which each window reads its index.

    Raises
    ------
    ValueError
        If an index is neither -1 nor a position its window reads.
    """
    rest = indices.astype(np.int64)
    valid = (rest >= 0) & (rest < math.prod(geometry.input_size))
    offset = np.zeros(indices.shape, np.int64)
    lead = indices.ndim - geometry.ndim
    for axis in reversed(range(geometry.ndim)):
        rest, coordinate = np.divmod(rest, geometry.input_size[axis])
        start = _starts(geometry, axis)
        if axis < len(window):
            start = start[window[axis]]
        shape = [1] * indices.ndim
        shape[lead + axis] = -1
        step, k = np.divmod(coordinate - start.reshape(shape), geometry.dilation[axis])
        valid &= (k == 0) & (step >= 0) & (step < geometry.kernel_size[axis])
        offset += step * math.prod(geometry.kernel_size[axis + 1 :])
    missing = indices == -1
    if not np.all(valid | missing):
        bad = indices[~(valid | missing)].ravel()[0]
        raise ValueError(
            f"indices must hold, for every output position, -1 or the flat index of an input "
            f"position its window reads; found {int(bad)}, which that window does not read"
        )
    np.copyto(out, np.where(missing, -1, offset), casting="unsafe")
