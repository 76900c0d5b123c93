"""im2col and col2im: receptive fields to columns and back, in PyTorch's layouts.

`im2col` copies every receptive field of the (padded) input into one
column of a matrix, so that a convolution becomes a single matrix product
(``torch.nn.functional.unfold``). `col2im` is its adjoint: it adds every
entry of a column matrix back onto the input position it was read from
(``torch.nn.functional.fold``). Both work for any number of spatial
dimensions; the kernels they run are in `im2col_conv._lowering`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._col2im import array_blocks, scatter_add
from ._dtypes import compute_dtype, max_abs, result_dtype
from ._lowering import lower
from ._validation import as_numeric_array, batch_view, is_sequence
from .geometry import ConvGeometry, IntOrTuple, PaddingLike

__all__ = ["col2im", "im2col"]


def im2col(
    input: ArrayLike,
    kernel_size: IntOrTuple,
    dilation: IntOrTuple = 1,
    padding: PaddingLike = 0,
    stride: IntOrTuple = 1,
) -> NDArray[Any]:
    """Lower every receptive field of ``input`` into a column of a matrix.

    The arguments and their order are those of ``torch.nn.functional.unfold``
    (``dilation`` before ``padding`` before ``stride``).

    Parameters
    ----------
    input : array_like, shape (N, C, *spatial) or (C, *spatial)
        The unbatched form needs ``kernel_size`` given as a sequence, which
        fixes the number of spatial dimensions ``d``; with an int
        ``kernel_size``, ``input`` is taken as batched and ``d = input.ndim - 2``.
    kernel_size : int or sequence of int
        Spatial size of the kernel.
    dilation : int or sequence of int, optional
        Per-dimension kernel dilation (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"``, symmetric amounts or ``(before, after)``
        pairs (default 0).
    stride : int or sequence of int, optional
        Per-dimension stride (default 1).

    Returns
    -------
    cols : ndarray, shape (N, C * prod(kernel_size), L) or (C * prod(kernel_size), L)
        ``L = prod(output_size)``. Rows are ordered channel-major, then by
        kernel offset in row-major order; columns are output positions in
        row-major order (the layout of ``torch.nn.functional.unfold``).
        A new C-contiguous array of ``input``'s dtype.

    Raises
    ------
    TypeError
        If ``input`` is not numeric or an argument has the wrong type.
    ValueError
        If ``input`` has the wrong number of dimensions or the geometry is invalid.

    Notes
    -----
    Memory: the result itself, ``prod(kernel_size)`` times the (strided)
    output positions of ``input``, plus, when there is padding, one padded
    copy of ``input``. There is no ``workspace`` argument: the result is the
    whole point of the call; the convolution functions never build it whole.

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
    array = as_numeric_array(input, "input")
    if is_sequence(kernel_size):
        d = len(kernel_size)  # type: ignore[arg-type]
        if d < 1:
            raise ValueError(f"kernel_size must have at least one spatial dimension, got {kernel_size!r}")
    else:
        d = array.ndim - 2
        if d < 1:
            raise ValueError(
                f"input must have shape (N, C, *spatial) with at least one spatial dimension when "
                f"kernel_size is an int, got shape {array.shape}"
            )
    batched, unbatched = batch_view(array, d, "input")
    geometry = ConvGeometry.create(batched.shape[2:], kernel_size, stride, padding, dilation)
    n, c = batched.shape[:2]
    cols = lower(batched, geometry).reshape(n, c * geometry.kernel_volume, geometry.output_volume)
    return cols[0] if unbatched else cols


def col2im(
    input: ArrayLike,
    output_size: IntOrTuple,
    kernel_size: IntOrTuple,
    dilation: IntOrTuple = 1,
    padding: PaddingLike = 0,
    stride: IntOrTuple = 1,
) -> NDArray[Any]:
    """Scatter-add columns back onto the image positions they were read from.

    The arguments and their order are those of ``torch.nn.functional.fold``.
    The exact adjoint of `im2col`: for every ``x`` and ``c`` of matching
    shapes, ``sum(im2col(x, ...) * c) == sum(x * col2im(c, ...))``. Entries
    that several windows share receive the sum of their columns' values.

    Parameters
    ----------
    input : array_like, shape (N, C * prod(kernel_size), L) or (C * prod(kernel_size), L)
        Column matrix in `im2col`'s layout.
    output_size : int or sequence of int
        Spatial size of the image to rebuild (without padding).
    kernel_size : int or sequence of int
        Spatial size of the kernel. The number of spatial dimensions is the
        length of whichever of ``output_size``/``kernel_size`` is a sequence
        (1 if both are ints).
    dilation : int or sequence of int, optional
        Per-dimension kernel dilation (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        As for `im2col` (default 0); padded positions are discarded.
    stride : int or sequence of int, optional
        Per-dimension stride (default 1).

    Returns
    -------
    ndarray, shape (N, C, *output_size) or (C, *output_size)
        A new array. Sums of integers and bools are exact: they accumulate in
        ``int64`` (``uint64`` for unsigned inputs), like `numpy.sum`;
        ``float16`` sums in ``float32`` and is rounded once.

    Raises
    ------
    TypeError
        If ``input`` is not numeric or an argument has the wrong type.
    ValueError
        If the shape of ``input`` does not match the geometry.
    OverflowError
        If an integer sum could exceed its 64-bit type.

    Notes
    -----
    Memory: the result, plus one padded image when there is padding or the
    windows reach past it. There is no ``workspace`` argument: the columns
    given are already larger than anything the call makes.

    Examples
    --------
    >>> import numpy as np
    >>> cols = np.ones((1, 4, 4), dtype=int)  # 2x2 kernel, stride 1, 3x3 image
    >>> col2im(cols, (3, 3), (2, 2))
    array([[[[1, 2, 1],
             [2, 4, 2],
             [1, 2, 1]]]])
    """
    array = as_numeric_array(input, "input")
    geometry = ConvGeometry.create(output_size, kernel_size, stride, padding, dilation)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"input must have shape (N, C*prod(kernel), L) or (C*prod(kernel), L), got shape {array.shape}"
        )
    batched = array if array.ndim == 3 else array[np.newaxis]
    n, rows, length = batched.shape
    k, expected_length = geometry.kernel_volume, geometry.output_volume
    if rows % k or length != expected_length:
        raise ValueError(
            f"input has shape {array.shape}, but kernel_size {geometry.kernel_size} and output size "
            f"{geometry.output_size} need C*{k} rows and {expected_length} columns"
        )
    dtype = result_dtype(array.dtype)
    accumulate = np.float32 if dtype == np.float16 else dtype
    if dtype.kind in "iu":
        # A position receives at most one column entry per window and per kernel offset.
        terms = min(k, expected_length)
        compute_dtype(dtype, max_abs(batched) * terms, f"each position sums at most {terms} column entries")
    columns = batched.reshape(n, rows // k, *geometry.kernel_size, *geometry.output_size)
    blocks = array_blocks(columns.astype(accumulate, copy=False), geometry.ndim)
    image = scatter_add(blocks, (n, rows // k), accumulate, geometry).astype(dtype, copy=False)
    return image[0] if array.ndim == 2 else image
