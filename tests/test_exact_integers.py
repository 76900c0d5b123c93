"""Integer and bool convolutions are exact, at BLAS speed under 2**53, and never wrap.

The oracle is the loop convolution of tests/oracles.py run on Python ints
(object arrays), which cannot overflow. The cases sit at and just beyond the
bounds that choose how a call computes: below 2**53 the float64 products are
exact; above, the integer products are; past the 64-bit range the call
refuses with OverflowError.
"""

from __future__ import annotations

import numpy as np
import pytest
from oracles import loop_col2im, loop_conv, loop_conv_grads, loop_conv_transpose

import im2col_conv as ic
from im2col_conv import direct
from im2col_conv._dtypes import EXACT_FLOAT_BOUND, compute_dtype

BIG = 2**53


def _exact(fn, arrays, *args):
    """``fn`` on Python ints: the arrays as object arrays, which cannot overflow."""
    return fn(*(None if a is None else np.asarray(a).astype(object) for a in arrays), *args)


def test_int8_values_of_100_do_not_wrap():
    x = np.full((1, 1, 3, 3), 100, np.int8)
    w = np.full((1, 1, 3, 3), 100, np.int8)
    for fn in (ic.conv, direct.conv):
        y = fn(x, w)
        assert y.dtype == np.int64
        assert y.item() == 90_000


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32])
def test_small_integer_types_are_exact_in_every_map(dtype):
    info = np.iinfo(dtype)
    # 32-bit extremes could truly leave int64 in a sum of 12 products: stay at 2**28 there.
    low, high = max(int(info.min), -(2**28)), min(int(info.max), 2**28)
    rng = np.random.default_rng(high % 97)
    x = rng.integers(low, high, size=(2, 4, 5, 6), endpoint=True).astype(dtype)
    w = rng.integers(low, high, size=(6, 2, 3, 2), endpoint=True).astype(dtype)
    b = rng.integers(low, high, size=6, endpoint=True).astype(dtype)
    kw = dict(stride=(2, 1), padding=1, groups=2)
    y = ic.conv(x, w, b, **kw)
    pads = [(1, 1), (1, 1)]
    np.testing.assert_array_equal(y.astype(object), _exact(loop_conv, (x, w, b), (2, 1), pads, 1, 2))
    gy = rng.integers(low, high, size=y.shape, endpoint=True).astype(dtype)
    expected = _exact(loop_conv_grads, (gy, x, w), (2, 1), pads, 1, 2)
    for got, want in zip(ic.conv_backward(gy, x, w, **kw), expected):
        np.testing.assert_array_equal(got.astype(object), want)
    for got, want in zip(direct.conv_backward(gy, x, w, **kw), expected):
        np.testing.assert_array_equal(got.astype(object), want)


def test_bools_count():
    x = np.array([[[True, False, True, True]]])
    w = np.array([[[True, True]]])
    y = ic.conv(x, w)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [[[1, 1, 2]]])


def test_unsigned_with_signed_gives_int64_exactly():
    x = np.array([[[3, 2**40, 7]]], np.uint64)
    w = np.array([[[-2, 5]]], np.int64)
    y = ic.conv(x, w)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [[[-6 + 5 * 2**40, -(2**41) + 35]]])


def test_the_float_path_is_chosen_below_the_bound_and_left_above():
    assert EXACT_FLOAT_BOUND == BIG
    assert compute_dtype(np.dtype(np.int64), BIG - 1, "") == np.float64
    assert compute_dtype(np.dtype(np.int64), BIG, "") == np.int64
    assert compute_dtype(np.dtype(np.uint64), 2**64 - 1, "") == np.uint64
    with pytest.raises(OverflowError, match="partial sums can reach 9223372036854775808"):
        compute_dtype(np.dtype(np.int64), 2**63, "x")


@pytest.mark.parametrize(
    ("values", "kernel"),
    [
        ([BIG - 1], [1]),  # at the bound: one product, exact in float64
        ([BIG + 1], [1]),  # just beyond: 2**53 + 1 has no float64, so only the integer path gets it
        ([2**52, 2**52 + 1], [1, 1]),  # a sum that crosses 2**53
        ([2**62 - 1], [1]),
    ],
)
@pytest.mark.parametrize("fn", [ic.conv, direct.conv], ids=["im2col", "direct"])
def test_results_at_and_beyond_two_to_the_53_are_exact(values, kernel, fn):
    x = np.array(values, np.int64).reshape(1, 1, -1)
    w = np.array(kernel, np.int64).reshape(1, 1, -1)
    y = fn(x, w)
    assert y.dtype == np.int64
    assert y.ravel().tolist() == [sum(values)]


@pytest.mark.parametrize(
    "call",
    [
        lambda x, w: ic.conv(x, w),
        lambda x, w: direct.conv(x, w),
        lambda x, w: ic.conv_backward(np.full((1, 1, 1), 2, np.int64), x, w),
        lambda x, w: ic.conv_transpose(x, w),
    ],
)
def test_sums_that_may_leave_int64_raise_instead_of_wrapping(call):
    x = np.array([[[2**62, 2**62]]], np.int64)
    w = np.array([[[2, 2]]], np.int64)
    with pytest.raises(OverflowError, match=r"int64 maximum 9223372036854775807"):
        call(x, w)


def test_overflow_message_names_the_bound_and_its_terms():
    x = np.full((1, 3, 4), 2**31, np.int64)
    w = np.full((1, 3, 4), 2**31, np.int64)
    with pytest.raises(OverflowError, match=r"reach 55340232221128654848 \(output: 12 products"):
        ic.conv(x, w)


def test_weight_gradient_bound_counts_batch_and_positions():
    # Each weight-gradient entry sums N * L = 12 products: of 2**29 * 2**29 it passes 2**53
    # (the integer path) and stays exact; of 2**31 * 2**31 it could leave int64.
    x = np.full((4, 1, 5), 2**29, np.int64)
    gy = np.full((4, 1, 3), 2**29, np.int64)
    grads = ic.conv_backward(gy, x, np.ones((1, 1, 3), np.int64))
    assert grads.weight.ravel().tolist() == [12 * 2**58] * 3
    with pytest.raises(OverflowError, match=r"grad_weight: 12 products of \|grad_output\| <= 2147483648"):
        ic.conv_backward(gy * 4, x * 4, np.ones((1, 1, 3), np.int64))


def test_transpose_and_col2im_are_exact_for_int8():
    x = np.full((1, 2, 3), 127, np.int8)
    w = np.full((2, 1, 3), 127, np.int8)
    y = ic.conv_transpose(x, w, stride=1)
    np.testing.assert_array_equal(y.astype(object), _exact(loop_conv_transpose, (x, w)))
    cols = np.full((1, 6, 4), 100, np.int8)
    image = ic.col2im(cols, 6, 3)
    assert image.dtype == np.int64
    np.testing.assert_array_equal(image.astype(object), _exact(loop_col2im, (cols,), (6,), (3,)))


def test_float16_is_computed_in_float32_and_rounded_once():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float16)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    y = ic.conv(x, w, padding=1)
    assert y.dtype == np.float16
    once = ic.conv(x.astype(np.float32), w.astype(np.float32), padding=1).astype(np.float16)
    np.testing.assert_array_equal(y, once)


def test_direct_and_im2col_agree_exactly_on_int64_near_the_bound():
    rng = np.random.default_rng(9)
    x = rng.integers(-(2**40), 2**40, size=(2, 2, 6, 5))
    w = rng.integers(-(2**10), 2**10, size=(3, 2, 2, 3))
    np.testing.assert_array_equal(ic.conv(x, w, padding=1), direct.conv(x, w, padding=1))
