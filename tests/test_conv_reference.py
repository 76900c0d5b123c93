"""Forward convolution, transposed convolution and im2col against the plain-loop oracles."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
from oracles import loop_conv, loop_conv_transpose, loop_im2col, resolve_padding

from im2col_conv import col2im, conv, conv_forward, conv_transpose, im2col

# Non-square sizes everywhere so that a swapped axis cannot go unnoticed.
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 6, 4)}
KERNEL = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}
STRIDES = {
    1: [1, 2, 3, (3,)],
    2: [1, 2, 3, (1, 3)],
    3: [1, 2, 3, (3, 1, 2)],
}
PADDINGS = {
    1: [0, 2, (1,), [(2, 0)], "same", "valid"],
    2: [0, 1, (1, 2), [(0, 2), (1, 3)], "same", "valid"],
    3: [0, 1, (1, 0, 2), [(1, 0), (0, 2), (2, 1)], "same", "valid"],
}
DILATIONS = [1, 2]
GROUPS = ["1", "2", "depthwise"]


def _channels(d, groups):
    """(C_in, C_out, groups) for a named grouping; smaller channel counts in 3-D."""
    c_in = 4 if d < 3 else 2
    if groups == "1":
        return c_in, 3, 1
    if groups == "2":
        return c_in, 4, 2
    return c_in, 2 * c_in, c_in  # depthwise with channel multiplier 2


def _sweep():
    for d in (1, 2, 3):
        for i, (stride, padding, dilation, groups) in enumerate(
            itertools.product(STRIDES[d], PADDINGS[d], DILATIONS, GROUPS)
        ):
            yield pytest.param(d, stride, padding, dilation, groups, i % 2 == 0, id=f"d{d}-{i}")


def _randint(rng, shape):
    return rng.integers(-9, 10, size=shape, dtype=np.int64)


@pytest.mark.parametrize(("d", "stride", "padding", "dilation", "groups", "use_bias"), list(_sweep()))
def test_conv_matches_loop_oracle_int64(d, stride, padding, dilation, groups, use_bias):
    rng = np.random.default_rng(zlib.crc32(repr((d, stride, padding, dilation, groups)).encode()))
    c_in, c_out, g = _channels(d, groups)
    n = 2 if d < 3 else 1
    x = _randint(rng, (n, c_in, *SPATIAL[d]))
    w = _randint(rng, (c_out, c_in // g, *KERNEL[d]))
    b = _randint(rng, (c_out,)) if use_bias else None
    pads = resolve_padding(padding, SPATIAL[d], KERNEL[d], stride, dilation)
    expected = loop_conv(x, w, b, stride, pads, dilation, g)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=g)
    assert y.dtype == np.int64
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y, expected)


FLOAT_CASES = [
    # (d, stride, padding, dilation, groups)
    (1, 2, [(2, 1)], 1, 1),
    (1, 3, "same", 2, 2),
    (2, (2, 3), [(0, 1), (2, 0)], (1, 2), 1),
    (2, 1, "same", 1, 4),
    (2, 3, 1, 2, 2),
    (3, 2, [(1, 0), (0, 2), (1, 1)], 1, 2),
    (3, (1, 2, 3), "same", (2, 1, 1), 1),
]


@pytest.mark.parametrize(("d", "stride", "padding", "dilation", "groups"), FLOAT_CASES)
def test_conv_matches_loop_oracle_float64(d, stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    c_in = 4 if d < 3 else 2
    c_out = 2 * groups
    x = rng.standard_normal((2, c_in, *SPATIAL[d]))
    w = rng.standard_normal((c_out, c_in // groups, *KERNEL[d]))
    b = rng.standard_normal(c_out)
    pads = resolve_padding(padding, SPATIAL[d], KERNEL[d], stride, dilation)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, loop_conv(x, w, b, stride, pads, dilation, groups), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("d", "stride", "padding", "dilation", "groups"), FLOAT_CASES)
def test_conv_complex128_is_correlation_without_conjugation(d, stride, padding, dilation, groups):
    rng = np.random.default_rng(2)
    c_in = 4 if d < 3 else 2
    c_out = 2 * groups
    shape_x, shape_w = (2, c_in, *SPATIAL[d]), (c_out, c_in // groups, *KERNEL[d])
    x = rng.standard_normal(shape_x) + 1j * rng.standard_normal(shape_x)
    w = rng.standard_normal(shape_w) + 1j * rng.standard_normal(shape_w)
    b = rng.standard_normal(c_out) + 1j * rng.standard_normal(c_out)
    pads = resolve_padding(padding, SPATIAL[d], KERNEL[d], stride, dilation)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert y.dtype == np.complex128
    expected = loop_conv(x, w, b, stride, pads, dilation, groups)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    conjugated = loop_conv(x, np.conj(w), b, stride, pads, dilation, groups)
    assert not np.allclose(y, conjugated)


def test_conv_complex_exact_gaussian_integers():
    rng = np.random.default_rng(3)
    x = _randint(rng, (1, 2, 6, 5)) + 1j * _randint(rng, (1, 2, 6, 5))
    w = _randint(rng, (3, 2, 2, 3)) + 1j * _randint(rng, (3, 2, 2, 3))
    y = conv(x, w, stride=(2, 1), padding=[(1, 0), (0, 2)])
    np.testing.assert_array_equal(y, loop_conv(x, w, None, (2, 1), [(1, 0), (0, 2)], 1, 1))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_unbatched_matches_oracle(d):
    rng = np.random.default_rng(4)
    x = _randint(rng, (2, *SPATIAL[d]))
    w = _randint(rng, (3, 2, *KERNEL[d]))
    b = _randint(rng, (3,))
    y = conv(x, w, b, stride=2, padding=1, dilation=1)
    expected = loop_conv(x[None], w, b, 2, [(1, 1)] * d, 1, 1)[0]
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_empty_batch(d):
    rng = np.random.default_rng(5)
    x = np.zeros((0, 2, *SPATIAL[d]), dtype=np.int64)
    w = _randint(rng, (4, 1, *KERNEL[d]))
    b = _randint(rng, (4,))
    y = conv(x, w, b, stride=2, padding="same", groups=2)
    expected = loop_conv(x, w, b, 2, resolve_padding("same", SPATIAL[d], KERNEL[d], 2, 1), 1, 2)
    assert y.shape == expected.shape
    assert y.shape[:2] == (0, 4)
    assert y.dtype == np.int64


def test_conv_forward_first_result_equals_conv():
    rng = np.random.default_rng(6)
    x, w, b = _randint(rng, (2, 4, 7, 6)), _randint(rng, (6, 2, 3, 2)), _randint(rng, (6,))
    y, _ = conv_forward(x, w, b, stride=(2, 3), padding=[(0, 1), (2, 0)], dilation=(1, 2), groups=2)
    np.testing.assert_array_equal(
        y, conv(x, w, b, stride=(2, 3), padding=[(0, 1), (2, 0)], dilation=(1, 2), groups=2)
    )
    np.testing.assert_array_equal(y, loop_conv(x, w, b, (2, 3), [(0, 1), (2, 0)], (1, 2), 2))


def test_conv_formula_4_worked_example():
    """The reference's picture: 5x5 input, 3x3 kernel, stride 2 -> 2x2 output, formula (4) by hand."""
    x = np.arange(25, dtype=np.int64).reshape(1, 1, 5, 5)
    w = np.arange(9, dtype=np.int64).reshape(1, 1, 3, 3) - 4
    expected = np.zeros((1, 1, 2, 2), dtype=np.int64)
    for i, j in itertools.product(range(2), range(2)):
        expected[0, 0, i, j] = sum(
            w[0, 0, m, n] * x[0, 0, 2 * i + m, 2 * j + n] for m in range(3) for n in range(3)
        )
    y = conv(x, w, np.array([7]), stride=2)
    np.testing.assert_array_equal(y, expected + 7)


# --- conv_transpose -------------------------------------------------------------------------------

TRANSPOSE_CASES = [
    # (d, in_size, kernel, stride, padding, output_padding, dilation, groups)
    (1, (5,), (3,), 2, 1, 1, 1, 1),
    (1, (4,), (2,), 3, 0, 2, 1, 2),
    (1, (4,), (3,), 1, [(2, 0)], 1, 2, 1),
    (1, (3,), (3,), 3, (2,), 0, 2, 3),
    (2, (3, 4), (3, 2), (2, 3), (1, 0), (1, 2), 1, 1),
    (2, (4, 3), (2, 3), 2, [(0, 1), (2, 1)], 0, (2, 1), 2),
    (2, (3, 3), (3, 3), 1, 1, (1, 0), 2, 1),
    (2, (3, 4), (2, 2), (3, 2), "valid", (2, 1), (1, 2), 3),
    (3, (2, 3, 2), (2, 2, 3), (2, 1, 2), (1, 0, 1), (1, 0, 1), 1, 1),
    (3, (3, 2, 2), (2, 1, 2), 2, [(0, 1), (0, 0), (1, 0)], 0, (1, 1, 2), 2),
]


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize(
    ("d", "in_size", "kernel", "stride", "padding", "output_padding", "dilation", "groups"), TRANSPOSE_CASES
)
def test_conv_transpose_matches_scatter_oracle(
    d, in_size, kernel, stride, padding, output_padding, dilation, groups, use_bias
):
    rng = np.random.default_rng(7)
    c_in, c_out_per_group = 2 * groups, 2
    x = _randint(rng, (2, c_in, *in_size))
    w = _randint(rng, (c_in, c_out_per_group, *kernel))
    b = _randint(rng, (c_out_per_group * groups,)) if use_bias else None
    pads = resolve_padding(padding, in_size, kernel)
    expected = loop_conv_transpose(x, w, b, stride, pads, output_padding, dilation, groups)
    y = conv_transpose(
        x,
        w,
        b,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
    )
    assert y.dtype == np.int64
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y, expected)
    # unbatched gives the first sample
    y0 = conv_transpose(
        x[0],
        w,
        b,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
    )
    np.testing.assert_array_equal(y0, expected[0])


def test_conv_transpose_float64_and_complex():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 3, 4)) + 1j * rng.standard_normal((2, 4, 3, 4))
    w = rng.standard_normal((4, 3, 3, 2)) + 1j * rng.standard_normal((4, 3, 3, 2))
    y = conv_transpose(x, w, stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2), groups=2)
    expected = loop_conv_transpose(x, w, None, (2, 3), [(1, 1), (0, 0)], (1, 2), (1, 2), 2)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    y = conv_transpose(x.real, w.real, stride=2, padding=1)
    np.testing.assert_allclose(
        y, loop_conv_transpose(x.real, w.real, None, 2, [(1, 1)] * 2, 0, 1, 1), rtol=1e-12, atol=1e-12
    )


def test_conv_transpose_pad_after_larger_than_output_padding_crops_end():
    x = np.arange(1, 5, dtype=np.int64).reshape(1, 1, 4)
    w = np.array([[[1, 10, 100]]], dtype=np.int64)
    y = conv_transpose(x, w, stride=2, padding=[(0, 3)], output_padding=1)
    # full output: length (4-1)*2 + 3 = 9; cropped by 3 at the end, extended by 1 -> 7
    full = np.zeros(9, dtype=np.int64)
    for i in range(4):
        for k in range(3):
            full[2 * i + k] += x[0, 0, i] * w[0, 0, k]
    np.testing.assert_array_equal(y[0, 0], full[:7])


# --- im2col ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "stride", "padding", "dilation"), [
    (d, s, p, dl)
    for d in (1, 2, 3)
    for s, p, dl in itertools.product(STRIDES[d], PADDINGS[d], DILATIONS)
])  # fmt: skip
def test_im2col_matches_loop_oracle(d, stride, padding, dilation):
    rng = np.random.default_rng(9)
    x = _randint(rng, (2, 3, *SPATIAL[d]))
    pads = resolve_padding(padding, SPATIAL[d], KERNEL[d], stride, dilation)
    cols = im2col(x, KERNEL[d], stride=stride, padding=padding, dilation=dilation)
    expected = loop_im2col(x, KERNEL[d], stride, pads, dilation)
    assert cols.dtype == x.dtype
    assert cols.shape == expected.shape
    np.testing.assert_array_equal(cols, expected)
    np.testing.assert_array_equal(
        im2col(x[1], KERNEL[d], stride=stride, padding=padding, dilation=dilation), expected[1]
    )


def test_im2col_layout_by_hand_2d():
    x = np.arange(18, dtype=np.int64).reshape(1, 2, 3, 3)
    expected = np.array(
        [
            # channel 0: kernel offsets (0,0), (0,1), (1,0), (1,1); columns: positions (0,0),(0,1),(1,0),(1,1)
            [0, 1, 3, 4],
            [1, 2, 4, 5],
            [3, 4, 6, 7],
            [4, 5, 7, 8],
            # channel 1
            [9, 10, 12, 13],
            [10, 11, 13, 14],
            [12, 13, 15, 16],
            [13, 14, 16, 17],
        ]
    )
    np.testing.assert_array_equal(im2col(x, (2, 2)), expected[None])
    np.testing.assert_array_equal(im2col(x[0], (2, 2)), expected)


def test_im2col_layout_by_hand_2d_padding_stride():
    x = np.arange(1, 10, dtype=np.int64).reshape(1, 1, 3, 3)
    # padded 5x5, 2x2 windows at stride 2 -> 2x2 positions
    expected = np.array(
        [
            [0, 0, 0, 5],  # kernel offset (0, 0)
            [0, 0, 4, 6],  # (0, 1)
            [0, 2, 0, 8],  # (1, 0)
            [1, 3, 7, 9],  # (1, 1)
        ]
    )
    np.testing.assert_array_equal(im2col(x, (2, 2), stride=2, padding=1), expected[None])


def test_im2col_layout_by_hand_2d_dilation_asymmetric():
    x = np.arange(1, 13, dtype=np.int64).reshape(1, 1, 3, 4)
    # kernel (1, 2) dilated by 2 along columns; padding rows (0, 0), columns (1, 0)
    # padded row r: [0, x[r, 0], x[r, 1], x[r, 2], x[r, 3]]; windows at columns 0, 1, 2 read c and c+2
    expected = np.array(
        [
            [0, 1, 2, 0, 5, 6, 0, 9, 10],  # offset (0, 0)
            [2, 3, 4, 6, 7, 8, 10, 11, 12],  # offset (0, 1)
        ]
    )
    cols = im2col(x, (1, 2), padding=[(0, 0), (1, 0)], dilation=(1, 2))
    np.testing.assert_array_equal(cols, expected[None])


def test_col2im_layout_by_hand_2d():
    cols = np.zeros((1, 4, 4), dtype=np.int64)
    cols[0, 3, 0] = 1  # kernel offset (1, 1) of position (0, 0) -> x[1, 1]
    cols[0, 1, 3] = 10  # kernel offset (0, 1) of position (1, 1) -> x[1, 2]
    cols[0, 2, 1] = 100  # kernel offset (1, 0) of position (0, 1) -> x[1, 1]
    expected = np.zeros((1, 1, 3, 3), dtype=np.int64)
    expected[0, 0, 1, 1] = 101
    expected[0, 0, 1, 2] = 10
    np.testing.assert_array_equal(col2im(cols, (3, 3), (2, 2)), expected)
