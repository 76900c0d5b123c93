"""Pooling parity with PyTorch: values, indices and gradients (skipped without torch)."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_conv as ic

torch = pytest.importorskip("torch")
F = torch.nn.functional

MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}

MAX_CASES = [
    # (input shape, kernel, stride, padding, dilation, ceil_mode)
    pytest.param((2, 3, 11), 3, 2, 1, 1, False, id="1d"),
    pytest.param((2, 3, 10), 3, 2, 1, 2, True, id="1d-dilated-ceil"),
    pytest.param((1, 2, 5), 3, 2, 0, 1, True, id="1d-ceil-partial-window"),
    pytest.param((1, 2, 6), 2, 2, 1, 1, True, id="1d-ceil-drops-window-in-padding"),
    pytest.param((1, 1, 2), 3, 2, 0, 1, True, id="1d-ceil-kernel-past-input"),
    pytest.param((2, 3, 7, 8), (3, 2), (2, 1), (1, 1), (1, 2), False, id="2d"),
    pytest.param((2, 2, 9, 9), 3, 2, 1, 1, True, id="2d-ceil"),
    pytest.param((1, 2, 6, 7), (2, 3), (3, 2), (1, 1), 1, True, id="2d-ceil-uneven"),
    pytest.param((1, 2, 5, 6, 4), (2, 3, 2), (1, 2, 2), (1, 1, 0), (2, 1, 1), True, id="3d"),
]


def _torch(a, grad=False):
    return torch.tensor(a, requires_grad=grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "dilation", "ceil"), MAX_CASES)
def test_max_pool_values_indices_and_gradient_match_torch(
    shape, kernel, stride, padding, dilation, ceil, dtype
):
    rng = np.random.default_rng(20)
    x = np.round(rng.standard_normal(shape), 1).astype(dtype)  # rounding makes ties
    x.flat[::7] = np.nan if dtype == np.float64 else x.flat[::7]
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil)
    xt = _torch(x, grad=True)
    yt, it = MAX[len(shape) - 2](xt, return_indices=True, **kw)
    y, indices = ic.max_pool(x, return_indices=True, **kw)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(indices, it.numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(_torch(g))
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-14)
    # A position winning several windows sums their gradients: in another order than torch.
    np.testing.assert_allclose(ic.max_pool_backward(g, x, **kw), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(ic.max_pool_backward(g, x, **kw, indices=indices), xt.grad.numpy(), **tol)


def test_integer_max_pool_matches_torch():
    x = np.random.default_rng(21).integers(-100, 100, size=(2, 3, 9, 8))
    y, i = F.max_pool2d(_torch(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    values, indices = ic.max_pool(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(values, y.numpy())
    np.testing.assert_array_equal(indices, i.numpy())


AVG_CASES = [
    # (input shape, kernel, stride, padding, ceil_mode, divisor_override)
    pytest.param((2, 3, 11), 3, 2, 1, False, None, id="1d"),
    pytest.param((2, 3, 6), 3, 2, 1, True, None, id="1d-ceil-window-past-padding"),
    pytest.param((1, 2, 5), 2, 2, 0, True, None, id="1d-ceil-partial"),
    pytest.param((2, 3, 7, 8), (3, 2), (2, 1), (1, 1), False, None, id="2d"),
    pytest.param((2, 2, 9, 9), 3, 2, 1, True, None, id="2d-ceil"),
    pytest.param((2, 2, 9, 9), 3, 2, 1, True, 4, id="2d-divisor-override"),
    pytest.param((2, 4, 7, 7), 7, None, 0, False, None, id="2d-global"),
    pytest.param((1, 2, 5, 6, 4), (2, 3, 2), (1, 2, 2), (1, 1, 0), True, None, id="3d"),
    pytest.param((1, 2, 5, 6, 4), (2, 3, 2), (1, 2, 2), (1, 1, 0), True, 5, id="3d-divisor-override"),
]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil", "divisor"), AVG_CASES)
def test_avg_pool_and_gradient_match_torch(shape, kernel, stride, padding, ceil, divisor, count_include_pad):
    rng = np.random.default_rng(22)
    x = rng.standard_normal(shape)
    kw = dict(
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        ceil_mode=ceil,
        count_include_pad=count_include_pad,
    )
    if divisor is not None:
        kw["divisor_override"] = divisor
    xt = _torch(x, grad=True)
    yt = AVG[len(shape) - 2](xt, **kw)
    y = ic.avg_pool(x, **kw)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
    g = rng.standard_normal(y.shape)
    yt.backward(_torch(g))
    np.testing.assert_allclose(
        ic.avg_pool_backward(g, x.shape, **kw), xt.grad.numpy(), rtol=1e-13, atol=1e-15
    )


def test_float32_avg_pool_matches_torch():
    x = np.random.default_rng(23).standard_normal((2, 3, 10, 9)).astype(np.float32)
    expected = F.avg_pool2d(_torch(x), 3, 2, 1, ceil_mode=True).numpy()
    y = ic.avg_pool(x, 3, 2, 1, ceil_mode=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)


def test_torch_refuses_what_we_refuse():
    x = np.zeros((1, 1, 5))
    with pytest.raises(RuntimeError, match="half"):
        F.max_pool1d(_torch(x), 3, padding=2)
    with pytest.raises(ValueError, match="half"):
        ic.max_pool(x, 3, padding=2)
