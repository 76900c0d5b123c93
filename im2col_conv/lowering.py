"""im2col and col2im: lowering receptive fields to columns and back.

``im2col`` copies every receptive field of the (padded) input into one column
of a matrix, so that a convolution becomes a single matrix product.
``col2im`` is its adjoint: it adds every entry of a column matrix back onto
the input position it was read from.

Both work for any number of spatial dimensions. ``im2col`` is one read-only
strided view and one copy; ``col2im`` loops over kernel offsets only, each
iteration one strided slice-add over the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._arrays import as_numeric_array, batch_view
from .geometry import ConvGeometry, IntOrTuple, PaddingLike, is_sequence

__all__ = ["col2im", "im2col"]


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
    lead_strides = padded.strides[:-d]
    spatial_strides = padded.strides[-d:]
    kernel_strides = tuple(s * dl for s, dl in zip(spatial_strides, geometry.dilation))
    output_strides = tuple(s * st for s, st in zip(spatial_strides, geometry.stride))
    return as_strided(
        padded,
        shape=lead + geometry.kernel_size + geometry.output_size,
        strides=lead_strides + kernel_strides + output_strides,
        writeable=False,
    )


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
        Zero-bordered buffer for the padded input (see :func:`pad_input`).

    Returns
    -------
    ndarray, C-contiguous
        Shape ``(N, C, *kernel_size, *output_size)``, or with ``batch_inner``
        ``(C, *kernel_size, N, *output_size)``; ``out`` if given.
    """
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    view = window_view(pad_input(x, geometry.padding, dtype, out=padded), geometry)
    if batch_inner:
        view = np.moveaxis(view, 0, 1 + geometry.ndim)
    if out is None:
        out = np.empty(view.shape, dtype)
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
    """Add every column entry onto the position it was read from (the adjoint of :func:`lower`).

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
    """:func:`scatter_add` with the columns of each kernel offset made on demand.

    ``block(index, offset)`` returns the columns of kernel offset ``offset``
    (flat index ``index`` in row-major order), shape ``(*lead, *grid_size)``.
    Asking for one offset at a time lets the caller compute each block right
    before it is added, while it is still in cache, instead of materialising
    all ``prod(kernel)`` of them. Other parameters as for :func:`scatter_add`.
    """
    grid = tuple(geometry.output_size if grid_size is None else grid_size)
    target = tuple(geometry.input_size if target_size is None else target_size)
    before = tuple(b for b, _ in geometry.padding)
    # The buffer covers both every window position and the requested crop, so
    # that positions no window reaches simply stay zero.
    reach = tuple((g - 1) * s + e for g, s, e in zip(grid, geometry.stride, geometry.kernel_extent))
    buffer_size = tuple(max(r, b + t) for r, b, t in zip(reach, before, target))
    if buffer_size == target and out is not None:
        buffer = out
    elif allocate is not None:
        buffer = allocate(lead + buffer_size)
    else:
        buffer = np.empty(lead + buffer_size, dtype=dtype)
    buffer.fill(0)
    for index, offset in enumerate(np.ndindex(*geometry.kernel_size)):
        window = tuple(
            slice(k * dl, k * dl + (g - 1) * s + 1, s)
            for k, dl, g, s in zip(offset, geometry.dilation, grid, geometry.stride)
        )
        buffer[(Ellipsis,) + window] += block(index, offset)
    if buffer is out or (buffer_size == target and out is None):
        return buffer
    crop = tuple(slice(b, b + t) for b, t in zip(before, target))
    if out is None:
        return np.ascontiguousarray(buffer[(Ellipsis,) + crop])
    np.copyto(out, buffer[(Ellipsis,) + crop])
    return out


def im2col(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
) -> NDArray[Any]:
    """Lower every receptive field of ``x`` into a column of a matrix.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
        Input. The unbatched form needs ``kernel_size`` given as a sequence,
        which fixes the number of spatial dimensions ``d``; with an int
        ``kernel_size``, ``x`` is taken as batched and ``d = x.ndim - 2``.
    kernel_size : int or sequence of int
        Spatial size of the kernel.
    stride, dilation : int or sequence of int, optional
        Per-dimension stride and kernel dilation (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"``, symmetric amounts or ``(before, after)``
        pairs (default 0).

    Returns
    -------
    cols : ndarray, shape (N, C * prod(kernel_size), L) or (C * prod(kernel_size), L)
        ``L = prod(output_size)``. Rows are ordered channel-major, then by
        kernel offset in row-major order; columns are output positions in
        row-major order (the layout of ``torch.nn.functional.unfold``).
        A new C-contiguous array of ``x``'s dtype.

    Raises
    ------
    TypeError
        If ``x`` is not numeric or an argument has the wrong type.
    ValueError
        If ``x`` has the wrong number of dimensions or the geometry is invalid.

    See Also
    --------
    col2im : the adjoint scatter-add.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16).reshape(1, 1, 4, 4)
    >>> im2col(x, (2, 2), stride=2)
    array([[[ 0,  2,  8, 10],
            [ 1,  3,  9, 11],
            [ 4,  6, 12, 14],
            [ 5,  7, 13, 15]]])
    """
    array = as_numeric_array(x, "x")
    d = len(kernel_size) if is_sequence(kernel_size) else array.ndim - 2  # type: ignore[arg-type]
    if d < 1:
        raise ValueError(f"x must have at least one spatial dimension, got shape {array.shape}")
    batched, unbatched = batch_view(array, d, "x")
    geometry = ConvGeometry.create(batched.shape[2:], kernel_size, stride, padding, dilation)
    n, c = batched.shape[:2]
    cols = lower(batched, geometry).reshape(n, c * geometry.kernel_volume, geometry.output_volume)
    return cols[0] if unbatched else cols


def col2im(
    cols: ArrayLike,
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
) -> NDArray[Any]:
    """Scatter-add columns back onto the input positions they were read from.

    The exact adjoint of :func:`im2col`: for every ``x`` and ``c`` of matching
    shapes, ``sum(im2col(x, ...) * c) == sum(x * col2im(c, ...))``. Entries
    that several windows share receive the sum of their columns' values.

    Parameters
    ----------
    cols : array_like, shape (N, C * prod(kernel_size), L) or (C * prod(kernel_size), L)
        Column matrix in :func:`im2col`'s layout.
    input_size : int or sequence of int
        Spatial size of the image to rebuild (without padding).
    kernel_size : int or sequence of int
        Spatial size of the kernel. The number of spatial dimensions is the
        length of whichever of ``input_size``/``kernel_size`` is a sequence
        (1 if both are ints).
    stride, dilation : int or sequence of int, optional
        Per-dimension stride and kernel dilation (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        As for :func:`im2col`; padded positions are discarded.

    Returns
    -------
    ndarray, shape (N, C, *input_size) or (C, *input_size)
        New array of ``cols``'s dtype.

    Raises
    ------
    TypeError
        If ``cols`` is not numeric or an argument has the wrong type.
    ValueError
        If the shape of ``cols`` does not match the geometry.

    Examples
    --------
    >>> import numpy as np
    >>> cols = np.ones((1, 4, 4), dtype=int)  # 2x2 kernel, stride 1, 3x3 image
    >>> col2im(cols, (3, 3), (2, 2))
    array([[[[1, 2, 1],
             [2, 4, 2],
             [1, 2, 1]]]])
    """
    array = as_numeric_array(cols, "cols")
    geometry = ConvGeometry.create(input_size, kernel_size, stride, padding, dilation)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"cols must have shape (N, C*prod(kernel), L) or (C*prod(kernel), L), got shape {array.shape}"
        )
    batched = array if array.ndim == 3 else array[np.newaxis]
    n, rows, length = batched.shape
    k, expected_length = geometry.kernel_volume, geometry.output_volume
    if rows % k or length != expected_length:
        raise ValueError(
            f"cols has shape {array.shape}, but kernel_size {geometry.kernel_size} and output size "
            f"{geometry.output_size} need C*{k} rows and {expected_length} columns"
        )
    blocks = batched.reshape(n, rows // k, *geometry.kernel_size, *geometry.output_size)
    image = scatter_add(blocks, geometry)
    return image[0] if array.ndim == 2 else image
