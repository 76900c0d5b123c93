"""Parity with PyTorch (optional: skipped when torch is not installed), all in float64."""

from __future__ import annotations

import numpy as np
import pytest

from im2col_conv import col2im, conv, conv_backward, conv_transpose, im2col

torch = pytest.importorskip("torch")
F = torch.nn.functional

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TOL = dict(rtol=1e-12, atol=1e-12)

CASES = [
    # (x shape, weight shape, stride, padding (symmetric), dilation, groups)
    pytest.param((2, 4, 11), (6, 2, 3), 2, 1, 2, 2, id="1d"),
    pytest.param((1, 3, 9), (3, 1, 4), 3, 0, 1, 3, id="1d-depthwise"),
    pytest.param((2, 3, 7, 8), (4, 3, 3, 2), (2, 3), (1, 0), (1, 2), 1, id="2d"),
    pytest.param((2, 4, 6, 6), (4, 2, 3, 3), 1, 2, 2, 2, id="2d-groups"),
    pytest.param((1, 2, 5, 6, 4), (4, 1, 2, 3, 2), (1, 2, 3), (1, 0, 1), (2, 1, 1), 2, id="3d"),
]


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "dilation", "groups"), CASES)
def test_conv_and_backward_match_torch(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(50)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    xt, wt, bt = _t(x, True), _t(w, True), _t(b, True)
    yt = CONV[len(x_shape) - 2](xt, wt, bt, **kw)
    y = conv(x, w, b, **kw)
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)

    gy = rng.standard_normal(y.shape)
    (yt * _t(gy)).sum().backward()
    grads = conv_backward(gy, x, w, **kw)
    np.testing.assert_allclose(grads.input, xt.grad.numpy(), **TOL)
    np.testing.assert_allclose(grads.weight, wt.grad.numpy(), **TOL)
    np.testing.assert_allclose(grads.bias, bt.grad.numpy(), **TOL)


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "dilation", "groups"), CASES)
def test_unbatched_conv_matches_torch(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(51)
    x, w = rng.standard_normal(x_shape[1:]), rng.standard_normal(w_shape)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = CONV[len(w_shape) - 2](_t(x), _t(w), **kw).numpy()
    np.testing.assert_allclose(conv(x, w, **kw), expected, **TOL)


TRANSPOSE_CASES = [
    # (x shape, weight shape (C_in, C_out/groups, *k), stride, padding, output_padding, dilation, groups)
    pytest.param((2, 4, 5), (4, 3, 3), 2, 1, 1, 1, 1, id="1d-output-padding"),
    pytest.param((1, 4, 4), (4, 2, 2), 3, 0, 2, 1, 2, id="1d-groups"),
    pytest.param((1, 2, 4), (2, 2, 3), 1, 2, 1, 2, 1, id="1d-op-below-dilation"),
    pytest.param((2, 2, 3, 4), (2, 3, 3, 2), (2, 3), (1, 0), (1, 2), (1, 2), 1, id="2d"),
    pytest.param((1, 6, 3, 3), (6, 1, 3, 3), 2, 1, 1, 2, 3, id="2d-depthwise-dilated"),
    pytest.param((1, 2, 2, 3, 2), (2, 2, 2, 2, 3), (2, 1, 2), (1, 0, 1), (1, 0, 0), (1, 1, 2), 2, id="3d"),
]


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding", "output_padding", "dilation", "groups"), TRANSPOSE_CASES
)
def test_conv_transpose_matches_torch(x_shape, w_shape, stride, padding, output_padding, dilation, groups):
    rng = np.random.default_rng(52)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1] * groups)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    expected = CONV_T[len(x_shape) - 2](_t(x), _t(w), _t(b), **kw).numpy()
    y = conv_transpose(x, w, b, **kw)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, **TOL)
    np.testing.assert_allclose(conv_transpose(x[0], w, b, **kw), expected[0], **TOL)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [((2, 2), 1, 0, 1), ((3, 2), (2, 1), (1, 0), (1, 2)), ((3, 3), 3, 2, 2), ((1, 4), (1, 3), (0, 1), 1)],
)
def test_im2col_col2im_match_unfold_fold(kernel, stride, padding, dilation):
    rng = np.random.default_rng(53)
    size = (7, 8)
    x = rng.standard_normal((2, 3, *size))
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    cols_t = F.unfold(_t(x), kernel, **kw).numpy()
    cols = im2col(x, kernel, **kw)
    assert cols.shape == cols_t.shape
    np.testing.assert_array_equal(cols, cols_t)  # a pure copy: exactly equal
    c = rng.standard_normal(cols.shape)
    expected = F.fold(_t(c), size, kernel, **kw).numpy()
    np.testing.assert_allclose(col2im(c, size, kernel, **kw), expected, **TOL)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "dilation"),
    [
        ((2, 3, 9), (4, 3, 4), 1),
        ((2, 3, 10), (4, 3, 3), 3),
        ((1, 2, 6, 7), (3, 2, 4, 3), (1, 2)),
        ((1, 2, 5, 4, 6), (2, 2, 2, 3, 4), (2, 1, 1)),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")
def test_same_padding_stride_one_matches_torch(x_shape, w_shape, dilation):
    rng = np.random.default_rng(54)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    xt, wt = _t(x, True), _t(w, True)
    yt = CONV[len(x_shape) - 2](xt, wt, padding="same", dilation=dilation)
    y = conv(x, w, padding="same", dilation=dilation)
    assert y.shape == tuple(yt.shape) == (x_shape[0], w_shape[0], *x_shape[2:])
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    gy = rng.standard_normal(y.shape)
    (yt * _t(gy)).sum().backward()
    grads = conv_backward(gy, x, w, padding="same", dilation=dilation)
    np.testing.assert_allclose(grads.input, xt.grad.numpy(), **TOL)
    np.testing.assert_allclose(grads.weight, wt.grad.numpy(), **TOL)
