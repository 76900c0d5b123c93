"""im2col and col2im: receptive fields to columns and back, in PyTorch's layouts.

:func:`im2col` copies every receptive field of the (padded) input into one
column of a matrix, so that a convolution becomes a single matrix product
(``torch.nn.functional.unfold``). :func:`col2im` is its adjoint: it adds every
entry of a column matrix back onto the input position it was read from
(``torch.nn.functional.fold``). Both work for any number of spatial
dimensions; the kernels they run are in :mod:`im2col_conv._lowering`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._lowering import lower, scatter_add
from ._validation import as_numeric_array, batch_view, is_sequence
from .geometry import ConvGeometry, IntOrTuple, PaddingLike

__all__ = ["col2im", "im2col"]


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
