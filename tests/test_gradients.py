"""Gradients of conv: finite differences, exact integer chain rule, cached columns, adjointness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from oracles import loop_conv, loop_conv_grads, loop_output_size, resolve_padding, tup

from im2col_conv import conv, conv_backward, conv_forward, conv_transpose

GEOMETRIES = [
    # (x shape, weight shape, stride, padding, dilation, groups)
    pytest.param((2, 2, 7), (3, 2, 3), 2, 0, 1, 1, id="1d-stride-not-dividing"),
    pytest.param((1, 4, 8), (4, 2, 2), 3, [(2, 1)], 2, 2, id="1d-asym-dilated-groups"),
    pytest.param((2, 2, 5, 5), (2, 2, 3, 3), 2, 0, 1, 1, id="2d-reference-5x5-stride2"),
    pytest.param((1, 2, 6, 7), (3, 2, 3, 2), (2, 3), [(0, 2), (1, 0)], 1, 1, id="2d-asym-pad-stride"),
    pytest.param((2, 4, 6, 5), (4, 2, 2, 3), 1, "same", (2, 1), 2, id="2d-same-dilated-groups"),
    pytest.param((1, 3, 5, 6), (6, 1, 3, 3), 2, "same", 1, 3, id="2d-depthwise-same-stride"),
    pytest.param(
        (1, 2, 4, 5, 4), (2, 1, 2, 3, 2), (1, 2, 3), [(1, 0), (0, 1), (2, 1)], (2, 1, 1), 2, id="3d"
    ),
]


def _make_loss(r, stride, padding, dilation, groups):
    def loss(xx, ww, bb):
        return float(
            np.sum(conv(xx, ww, bb, stride=stride, padding=padding, dilation=dilation, groups=groups) * r)
        )

    return loss


def _central_difference(f, a, eps=1e-3):
    grad = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += eps
        down[idx] -= eps
        grad[idx] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "dilation", "groups"), GEOMETRIES)
def test_gradients_match_central_finite_differences(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(10)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    r = rng.standard_normal(y.shape)
    loss = _make_loss(r, stride, padding, dilation, groups)

    grads = conv_backward(r, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert grads.input.shape == x.shape
    assert grads.weight.shape == w.shape
    assert grads.bias.shape == b.shape

    num_x = _central_difference(lambda a: loss(a, w, b), x)
    num_w = _central_difference(lambda a: loss(x, a, b), w)
    num_b = _central_difference(lambda a: loss(x, w, a), b)
    np.testing.assert_allclose(grads.input, num_x, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grads.weight, num_w, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grads.bias, num_b, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "dilation", "groups"), GEOMETRIES)
def test_gradients_match_integer_chain_rule(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(11)
    x = rng.integers(-9, 10, size=x_shape, dtype=np.int64)
    w = rng.integers(-9, 10, size=w_shape, dtype=np.int64)
    pads = resolve_padding(padding, x_shape[2:], w_shape[2:], stride, dilation)
    out = loop_output_size(x_shape[2:], w_shape[2:], stride, pads, dilation)
    gy = rng.integers(-9, 10, size=(x_shape[0], w_shape[0], *out), dtype=np.int64)
    gx, gw, gb = loop_conv_grads(gy, x, w, stride, pads, dilation, groups)
    grads = conv_backward(gy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    for got, want in zip(grads, (gx, gw, gb)):
        assert got.dtype == np.int64
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    # unbatched: the gradients of the first sample alone
    gx0, gw0, gb0 = loop_conv_grads(gy[:1], x[:1], w, stride, pads, dilation, groups)
    g0 = conv_backward(gy[0], x[0], w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_array_equal(g0.input, gx0[0])
    np.testing.assert_array_equal(g0.weight, gw0)
    np.testing.assert_array_equal(g0.bias, gb0)


def test_reference_formulas_5_6_8_on_the_worked_example():
    """5x5 input, 3x3 kernel, stride 2: dilate-pad-rotate (8), and (5), (6), written out literally."""
    rng = np.random.default_rng(12)
    c_prev, c_next, s = 2, 3, 2
    z = rng.integers(-9, 10, size=(c_prev, 5, 5), dtype=np.int64)
    w_doc = rng.integers(-9, 10, size=(3, 3, c_prev, c_next), dtype=np.int64)  # W[m, n, c, d]
    delta = rng.integers(-9, 10, size=(c_next, 2, 2), dtype=np.int64)
    w = np.transpose(w_doc, (3, 2, 0, 1))  # PyTorch layout w[d, c, m, n]

    # (5) and (6)
    dw_doc = np.zeros_like(w_doc)
    for m, n, c, d in itertools.product(range(3), range(3), range(c_prev), range(c_next)):
        dw_doc[m, n, c, d] = sum(
            delta[d, i, j] * z[c, i * s + m, j * s + n] for i in range(2) for j in range(2)
        )
    db = delta.sum(axis=(1, 2))

    # (8): dilate, pad by k-1, rotate, correlate with stride 1
    dilated = np.zeros((c_next, 3, 3), dtype=np.int64)
    dilated[:, ::s, ::s] = delta
    p_delta = np.zeros((c_next, 3 + 4, 3 + 4), dtype=np.int64)
    p_delta[:, 2:5, 2:5] = dilated
    rot = w_doc[::-1, ::-1]
    dz = np.zeros((c_prev, 5, 5), dtype=np.int64)
    for c, i, j in itertools.product(range(c_prev), range(5), range(5)):
        dz[c, i, j] = sum(
            rot[m, n, c, d] * p_delta[d, i + m, j + n]
            for d in range(c_next)
            for m in range(3)
            for n in range(3)
        )

    grads = conv_backward(delta, z, w, stride=s)
    np.testing.assert_array_equal(grads.input, dz)
    np.testing.assert_array_equal(grads.weight, np.transpose(dw_doc, (3, 2, 0, 1)))
    np.testing.assert_array_equal(grads.bias, db)


def test_rows_no_window_reaches_get_zero_gradient():
    x = np.ones((1, 1, 8), dtype=np.int64)
    w = np.ones((1, 1, 3), dtype=np.int64)
    gy = np.ones((1, 1, 2), dtype=np.int64)  # windows at 0..2 and 3..5; 6, 7 are never read
    grads = conv_backward(gy, x, w, stride=3)
    np.testing.assert_array_equal(grads.input[0, 0], [1, 1, 1, 1, 1, 1, 0, 0])


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "dilation", "groups"), GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_backward_with_cached_columns_equals_without(
    x_shape, w_shape, stride, padding, dilation, groups, dtype
):
    rng = np.random.default_rng(13)
    x = rng.integers(-9, 10, size=x_shape).astype(dtype)
    w = rng.integers(-9, 10, size=w_shape).astype(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y, columns = conv_forward(x, w, **kw)
    gy = rng.integers(-9, 10, size=y.shape).astype(dtype)
    plain = conv_backward(gy, x, w, **kw)
    cached = conv_backward(gy, x, w, **kw, columns=columns)
    for a, b in zip(plain, cached):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    # and for the unbatched form
    _, columns0 = conv_forward(x[0], w, **kw)
    cached0 = conv_backward(gy[0], x[0], w, **kw, columns=columns0)
    plain0 = conv_backward(gy[0], x[0], w, **kw)
    for a, b in zip(plain0, cached0):
        np.testing.assert_array_equal(a, b)


def _leftover(in_size, kernel, stride, pads, dilation):
    d = len(kernel)
    stride, dilation = tup(stride, d), tup(dilation, d)
    return tuple(
        (in_size[i] + pads[i][0] + pads[i][1] - dilation[i] * (kernel[i] - 1) - 1) % stride[i]
        for i in range(d)
    )


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "dilation", "groups"), GEOMETRIES)
def test_conv_transpose_is_the_adjoint_of_conv(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(14)
    x = rng.integers(-9, 10, size=x_shape, dtype=np.int64)
    w = rng.integers(-9, 10, size=w_shape, dtype=np.int64)
    pads = resolve_padding(padding, x_shape[2:], w_shape[2:], stride, dilation)
    y = conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    r = rng.integers(-9, 10, size=y.shape, dtype=np.int64)
    out_pad = _leftover(x_shape[2:], w_shape[2:], stride, pads, dilation)
    # conv_transpose takes explicit pairs (it has no "same"); the forward weight (C_out, C_in/g, *k)
    # is exactly a transposed-conv weight (C_in', C_out'/g, *k) mapping C_out -> C_in channels.
    xt = conv_transpose(
        r, w, stride=stride, padding=pads, output_padding=out_pad, dilation=dilation, groups=groups
    )
    assert xt.shape == x.shape
    assert xt.dtype == np.int64
    assert np.sum(y * r) == np.sum(x * xt)
    grads = conv_backward(r, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_array_equal(xt, grads.input)


def test_gradient_of_bias_sums_batch_and_positions():
    rng = np.random.default_rng(15)
    x = rng.integers(-5, 6, size=(3, 2, 4, 5), dtype=np.int64)
    w = rng.integers(-5, 6, size=(4, 2, 2, 2), dtype=np.int64)
    gy = rng.integers(-5, 6, size=(3, 4, 3, 4), dtype=np.int64)
    grads = conv_backward(gy, x, w)
    np.testing.assert_array_equal(grads.bias, gy.sum(axis=(0, 2, 3)))
    # the forward that this backward belongs to is the oracle's
    np.testing.assert_array_equal(conv(x, w), loop_conv(x, w))
