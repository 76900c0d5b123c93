"""im2col and col2im written down as explicit sparse 0/1 matrices.

`selection_matrix` builds the gather from the index relation
``s = l * stride + k * dilation - pad_before`` alone; `im2col_matrix`
and `col2im_matrix` read the library's functions off by applying them
to every basis array.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ..geometry import ConvGeometry, PaddingLike
from ..lowering import col2im, im2col

__all__ = ["col2im_matrix", "im2col_matrix", "selection_matrix"]

_INT = np.int64


def selection_matrix(geometry: ConvGeometry, channels: int = 1) -> sp.csr_array:
    """The im2col gather as a 0/1 matrix, from index arithmetic alone.

    Row ``(c, k, l)`` (channel, kernel offset, output position, each
    row-major) has a single 1 in column ``(c, s)`` where, per dimension,
    ``s = l * stride + k * dilation - pad_before``, or no entry at all when
    that position lies in the zero padding.

    Parameters
    ----------
    geometry : ConvGeometry
    channels : int, optional
        Number of channels ``C`` (default 1); the matrix is block diagonal.

    Returns
    -------
    scipy.sparse.csr_array of int64, shape (C * prod(kernel) * L, C * prod(input_size))
        ``L = prod(output_size)``. Applied to a flattened image ``(C, *input_size)``
        it gives the flattened column matrix ``(C * prod(kernel), L)``.

    Examples
    --------
    >>> g = ConvGeometry.create(3, 2)  # 1-D: 3 inputs, kernel 2, 2 windows
    >>> selection_matrix(g).toarray()
    array([[1, 0, 0],
           [0, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    d = geometry.ndim
    k_count, l_count = geometry.kernel_volume, geometry.output_volume
    size = math.prod(geometry.input_size)
    offsets = np.indices(geometry.kernel_size).reshape(d, k_count, 1)
    windows = np.indices(geometry.output_size).reshape(d, 1, l_count)
    stride = np.array(geometry.stride).reshape(d, 1, 1)
    dilation = np.array(geometry.dilation).reshape(d, 1, 1)
    before = np.array([b for b, _ in geometry.padding]).reshape(d, 1, 1)
    position = windows * stride + offsets * dilation - before  # (d, K, L)
    extent = np.array(geometry.input_size).reshape(d, 1, 1)
    inside = np.all((position >= 0) & (position < extent), axis=0)  # (K, L)
    k_idx, l_idx = np.nonzero(inside)
    flat = np.ravel_multi_index(tuple(position[:, k_idx, l_idx]), geometry.input_size)
    rows = [(c * k_count + k_idx) * l_count + l_idx for c in range(channels)]
    cols = [c * size + flat for c in range(channels)]
    row, col = np.concatenate(rows), np.concatenate(cols)
    shape = (channels * k_count * l_count, channels * size)
    return sp.csr_array((np.ones(row.size, dtype=_INT), (row, col)), shape=shape)


def im2col_matrix(
    geometry: ConvGeometry, channels: int = 1, padding: PaddingLike | None = None
) -> sp.csr_array:
    """The matrix of [`im2col_conv.im2col`][im2col_conv.lowering.im2col], read off by applying it to the
    identity.

    Parameters
    ----------
    geometry : ConvGeometry
    channels : int, optional
    padding : padding argument, optional
        Passed to ``im2col`` as given (e.g. ``"same"``); defaults to the
        geometry's ``(before, after)`` pairs.

    Returns
    -------
    scipy.sparse.csr_array of int64, shape (C * prod(kernel) * L, C * prod(input_size))
        Column ``a`` is ``im2col`` of the ``a``-th basis image, flattened.

    Examples
    --------
    >>> g = ConvGeometry.create(3, 2)
    >>> (im2col_matrix(g) != selection_matrix(g)).nnz
    0
    """
    size = math.prod(geometry.input_size)
    basis = np.eye(channels * size, dtype=_INT).reshape(channels * size, channels, *geometry.input_size)
    pads = geometry.padding if padding is None else padding
    cols = im2col(
        basis, geometry.kernel_size, stride=geometry.stride, padding=pads, dilation=geometry.dilation
    )
    return sp.csr_array(cols.reshape(channels * size, -1).T)


def col2im_matrix(
    geometry: ConvGeometry, channels: int = 1, padding: PaddingLike | None = None
) -> sp.csr_array:
    """The matrix of [`im2col_conv.col2im`][im2col_conv.lowering.col2im], read off by applying it to the
    identity.

    Parameters
    ----------
    geometry : ConvGeometry
    channels : int, optional
    padding : padding argument, optional
        As for `im2col_matrix`.

    Returns
    -------
    scipy.sparse.csr_array of int64, shape (C * prod(input_size), C * prod(kernel) * L)
        Column ``b`` is ``col2im`` of the ``b``-th basis column matrix, flattened.

    Examples
    --------
    >>> g = ConvGeometry.create(3, 2)
    >>> (col2im_matrix(g) != selection_matrix(g).T).nnz
    0
    """
    rows = channels * geometry.kernel_volume
    count = rows * geometry.output_volume
    basis = np.eye(count, dtype=_INT).reshape(count, rows, geometry.output_volume)
    pads = geometry.padding if padding is None else padding
    image = col2im(
        basis,
        geometry.input_size,
        geometry.kernel_size,
        stride=geometry.stride,
        padding=pads,
        dilation=geometry.dilation,
    )
    return sp.csr_array(image.reshape(count, -1).T)
