"""col2im, the max pooling backward and the bias gradient are exact integers up to the bound.

Each sums in 64 bits (``int64``, or ``uint64`` when every operand is
unsigned) after checking a bound on every partial sum: at the bound the
result equals Python's own integer arithmetic, one past it the call raises
``OverflowError`` instead of wrapping around.
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_conv as ic

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def _as_python(array):
    return np.asarray(array).astype(object)


@pytest.mark.parametrize(("dtype", "largest"), [(np.int64, INT64_MAX), (np.uint64, UINT64_MAX)])
def test_col2im_is_exact_at_its_bound_and_raises_past_it(dtype, largest):
    # A 1-D image of 3, kernel 2, stride 1: the middle position sums two column entries.
    edge = largest // 2
    cols = np.array([[[edge, edge], [edge, edge]]], dtype=dtype)
    got = ic.col2im(cols, 3, 2)
    assert got.dtype == dtype
    assert got[0, 0].tolist() == [edge, 2 * edge, edge]
    with pytest.raises(OverflowError, match=str(dtype.__name__)):
        ic.col2im(np.array([[[edge + 1, edge + 1], [edge + 1, edge + 1]]], dtype=dtype), 3, 2)


def test_col2im_of_small_integers_sums_in_64_bits():
    cols = np.full((1, 4, 4), 100, dtype=np.int8)  # 2x2 kernel over a 3x3 image: the centre sums 4
    got = ic.col2im(cols, (3, 3), (2, 2))
    assert got.dtype == np.int64
    assert got[0, 0, 1, 1] == 400


def _shared_winner():
    """1-D input whose maximum wins three windows (kernel 3, stride 1, padding 1)."""
    return np.array([[[1, 9, 1, 1]]], dtype=np.int64)


def test_max_pool_backward_sums_integers_without_wrapping():
    x = _shared_winner()
    gy = np.full((1, 1, 4), 100, dtype=np.int8)
    got = ic.max_pool_backward(gy, x, 3, stride=1, padding=1)
    assert got.dtype == np.int64
    want = [0, 0, 0, 0]
    windows = [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]]  # positions each window reads
    for window in windows:
        winner = max(window, key=lambda i: (x[0, 0, i], -i))
        want[winner] += 100
    assert got[0, 0].tolist() == want


def test_max_pool_backward_is_exact_at_its_bound_and_raises_past_it():
    x = _shared_winner()
    # A position may win min(kernel, windows) = 3 windows: the bound is 3 * max|grad|.
    edge = INT64_MAX // 3
    got = ic.max_pool_backward(np.full((1, 1, 4), edge), x, 3, stride=1, padding=1)
    assert _as_python(got)[0, 0, 1] == 3 * edge
    with pytest.raises(OverflowError):
        ic.max_pool_backward(np.full((1, 1, 4), edge + 1), x, 3, stride=1, padding=1)
    indices = ic.max_pool(x, 3, stride=1, padding=1, return_indices=True)[1]
    with pytest.raises(OverflowError):
        ic.max_pool_backward(np.full((1, 1, 4), edge + 1), x, 3, stride=1, padding=1, indices=indices)


def test_the_bias_gradient_is_exact_past_two_to_the_53():
    x = np.zeros((1, 1, 2), dtype=np.int64)
    w = np.zeros((1, 1, 1), dtype=np.int64)
    gy = np.array([[[2**53, 1]]], dtype=np.int64)
    assert _as_python(ic.conv_backward(gy, x, w).bias)[0] == 2**53 + 1


def test_the_bias_gradient_is_exact_at_its_bound_and_raises_past_it():
    x = np.zeros((1, 1, 2), dtype=np.int64)
    w = np.zeros((1, 1, 1), dtype=np.int64)
    edge = INT64_MAX // 2
    assert _as_python(ic.conv_backward(np.full((1, 1, 2), edge), x, w).bias)[0] == 2 * edge
    with pytest.raises(OverflowError, match="bias gradient"):
        ic.conv_backward(np.full((1, 1, 2), edge + 1), x, w)
