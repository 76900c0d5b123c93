"""Window arithmetic of pooling: PyTorch's output sizes, and where each kernel offset reads.

A pooling window is a convolution's receptive field, so a pooling call is a
`ConvGeometry`. Two of PyTorch's rules need care:

- ``ceil_mode`` rounds the output size up but drops a last window starting in
  the right padding. `pool_geometry` gives the extra windows extra
  *after*-padding: ``padding`` is ``(p, p + extra)`` and ``output_size`` is
  PyTorch's. Padding never wins a maximum and is never summed; only
  ``count_include_pad`` counts the real padding (never the extra) in a divisor.
- Kernel offset ``k`` reads ``x[o * stride + k * dilation - p]``: the outputs
  ``o`` for which that lies in the input form a box, and the inputs it reads
  a strided box. `offset_boxes` lists both per offset, so the kernels reduce
  the column matrix one row at a time, straight from the unpadded input.

Everything here depends on the geometry only, never on the data.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .geometry import ConvGeometry

__all__ = [
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

    Per dimension ``out = floor((in + 2 p - extent) / stride) + 1``; with
    ``ceil_mode`` the division rounds up and a last window starting at or past
    ``in + p`` is dropped. Windows reading past ``in + 2 p`` get that much
    extra after-padding.

    Raises
    ------
    ValueError
        If some dimension has no window, naming every argument.
    """
    base = ConvGeometry(input_size, kernel_size, stride, tuple((p, p) for p in padding), dilation)
    out = []
    for n, s, p, extent in zip(input_size, stride, padding, base.kernel_extent):
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
    extra = (max(r - n, 0) for r, n in zip(base.reach(out), base.padded_size))
    return replace(base, padding=tuple((p, p + e) for p, e in zip(padding, extra)))


class OffsetBox(NamedTuple):
    """Where one kernel offset reads the input.

    ``flat`` is its row-major index, ``outputs`` the output positions whose window reads the
    input there, ``inputs`` the (strided) input positions they read, in the same order.
    """

    flat: int
    outputs: tuple[slice, ...]
    inputs: tuple[slice, ...]


@functools.lru_cache(maxsize=64)
def offset_boxes(geometry: ConvGeometry) -> tuple[OffsetBox, ...]:
    """Every kernel offset that reads some input position (not only padding), with where it reads."""
    per_dim = []
    for axis, (n, s, d, out) in enumerate(
        zip(geometry.input_size, geometry.stride, geometry.dilation, geometry.output_size)
    ):
        boxes = []
        for offset in range(geometry.kernel_size[axis]):
            shift = offset * d - geometry.padding[axis][0]  # output o reads input o * s + shift
            low, high = max(0, -(shift // s)), min(out, (n - 1 - shift) // s + 1)
            start = low * s + shift
            boxes.append((slice(low, high), slice(start, start + (high - low - 1) * s + 1, s)))
        per_dim.append(boxes)
    found = []
    for index, offset in enumerate(np.ndindex(*geometry.kernel_size)):
        parts = [dims[k] for dims, k in zip(per_dim, offset)]
        if all(outputs.start < outputs.stop for outputs, _ in parts):
            found.append(OffsetBox(index, *map(tuple, zip(*parts))))
    return tuple(found)


def window_boxes(geometry: ConvGeometry) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Every output position with the input box its (undilated) window reads, padding left out.

    The transpose of `offset_boxes`, for fewer windows than kernel offsets (global pooling).
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


def _starts(geometry: ConvGeometry, axis: int, window: tuple[slice, ...]) -> NDArray[np.int64]:
    """Unpadded input position along ``axis`` of each window's first element, in ``window``."""
    starts = np.arange(geometry.output_size[axis], dtype=np.int64) * geometry.stride[axis]
    starts -= geometry.padding[axis][0]
    return starts[window[axis]] if axis < len(window) else starts


def _outer(parts: list[NDArray[Any]], combine: Any) -> NDArray[Any]:
    """One 1-D array per axis combined into the full grid, by ``np.add`` or ``np.multiply``."""
    return np.asarray(functools.reduce(combine.outer, parts))


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
    starts = [_starts(geometry, axis, window) for axis in range(geometry.ndim)]
    if divisor_override is not None:
        return np.full(tuple(map(len, starts)), divisor_override, dtype)
    parts = []
    for start, n, k, (p, _) in zip(starts, geometry.input_size, geometry.kernel_size, geometry.padding):
        if count_include_pad:
            parts.append(np.minimum(start + k, n + p) - start)
        else:
            parts.append(np.minimum(start + k, n) - np.maximum(start, 0))
    return _outer(parts, np.multiply).astype(dtype)


def to_flat_indices(
    geometry: ConvGeometry, window: tuple[slice, ...], offsets: NDArray[Any], out: NDArray[Any]
) -> None:
    """Write the flat input-plane index each offset index points at into ``out``; -1 stays -1.

    ``offsets`` covers the output positions ``window`` (leading axes, as in a `Tile`).
    """
    planes = [math.prod(geometry.input_size[axis + 1 :]) for axis in range(geometry.ndim)]  # row-major
    base = _outer([_starts(geometry, axis, window) * plane for axis, plane in enumerate(planes)], np.add)
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
        start = _starts(geometry, axis, window)
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
