"""Edge cases that once raised from deep inside NumPy or silently did something else.

Zero channels give empty results (sums over nothing), where PyTorch's CPU
convolution refuses a weight with no output channel.

Each test is a reported reproduction: it now either works as PyTorch does or
raises a clear error naming the argument and its value.
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_conv as ic
from im2col_conv import direct
from im2col_conv.layer import Conv

rng = np.random.default_rng(11)


# --- zero channels: empty results, as in PyTorch ---------------------------------------------------


def test_zero_output_channels_give_empty_results():
    x = rng.standard_normal((2, 2, 5, 5))
    w = np.ones((0, 2, 3, 3))
    for fn in (ic.conv, direct.conv):
        assert fn(x, w).shape == (2, 0, 3, 3)
    y, columns = ic.conv_forward(x, w)
    assert y.shape == (2, 0, 3, 3) and columns.data.shape == (1, 18, 18)
    for grads in (
        ic.conv_backward(np.ones((2, 0, 3, 3)), x, w),
        direct.conv_backward(np.ones((2, 0, 3, 3)), x, w),
    ):
        np.testing.assert_array_equal(grads.input, np.zeros_like(x))
        assert grads.weight.shape == (0, 2, 3, 3) and grads.bias.shape == (0,)
    assert ic.conv_transpose(x, np.ones((2, 0, 3, 3))).shape == (2, 0, 7, 7)


def test_zero_input_channels_give_the_bias():
    x = np.ones((2, 0, 5))
    w = np.ones((3, 0, 2))
    np.testing.assert_array_equal(ic.conv(x, w, bias=[1.0, 2.0, 3.0])[0, :, 0], [1.0, 2.0, 3.0])
    grads = ic.conv_backward(np.ones((2, 3, 4)), x, w)
    assert grads.input.shape == (2, 0, 5) and grads.weight.shape == (3, 0, 2)
    np.testing.assert_array_equal(grads.bias, [8.0, 8.0, 8.0])


# --- huge geometries --------------------------------------------------------------------------------


def test_a_huge_stride_reads_the_first_window():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    w = np.ones((1, 1, 3, 3))
    np.testing.assert_array_equal(ic.conv(x, w, stride=2**62), ic.conv(x, w, stride=5))
    np.testing.assert_array_equal(ic.im2col(x, 3, stride=2**62), ic.im2col(x, 3, stride=5))


def test_a_huge_padding_is_refused_up_front_with_the_size():
    with pytest.raises(
        ValueError, match=r"padded input of this geometry would have 4000000000020000000000025 positions"
    ):
        ic.conv(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=10**12)


# --- argument forms ----------------------------------------------------------------------------------


def test_zero_d_arrays_are_ints():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    w = np.ones((1, 1, 3, 3))
    np.testing.assert_array_equal(ic.conv(x, w, stride=np.array(2)), ic.conv(x, w, stride=2))
    np.testing.assert_array_equal(ic.conv(x, w, groups=np.array(1)), ic.conv(x, w))


@pytest.mark.parametrize("fn", [direct.pad, direct.crop])
@pytest.mark.parametrize(
    ("padding", "error", "match"),
    [
        ([(1.7, 1)], TypeError, r"must be an int, got 1.7"),
        ("ab", TypeError, r"must be a sequence of \(before, after\) pairs, got 'ab'"),
        ([(1, 2, 3)], TypeError, r"must be a sequence of \(before, after\) pairs"),
    ],
)
def test_direct_pad_and_crop_refuse_non_integer_pads(fn, padding, error, match):
    a = np.arange(6)
    with pytest.raises(error, match=match):
        fn(a, padding)


def test_empty_kernel_size_blames_kernel_size():
    with pytest.raises(ValueError, match=r"kernel_size must have at least one spatial dimension, got \(\)"):
        ic.im2col(np.ones((1, 1, 4)), ())


@pytest.mark.parametrize("name", ["input", "weight"])
def test_masked_arrays_are_refused(name):
    x = np.ma.masked_array(np.ones((1, 1, 5)), mask=[[[0, 1, 0, 0, 0]]])
    w = np.ones((1, 1, 3))
    args = (x, w) if name == "input" else (w[0], np.ma.masked_array(w))
    with pytest.raises(TypeError, match=rf"{name} is a masked array, whose mask would be ignored"):
        ic.conv(*args)


# --- the layer keeps its forward pass ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["im2col", "direct"])
def test_layer_backward_uses_the_forward_pass_it_saw(method):
    x = rng.standard_normal((2, 2, 6, 6))
    layer = Conv(2, 3, 3, padding=1, keep="input", backward_method=method, dtype=np.float64, rng=0)
    weight = layer.weight.copy()
    y = layer(x)
    gy = rng.standard_normal(y.shape)
    expected = ic.conv_backward(gy, x.copy(), weight, padding=1)
    layer.padding = ((0, 0), (0, 0))  # changed between forward and backward
    layer.weight = layer.weight + 1.0  # a new array: the pass keeps the one it used
    x += 5.0  # the caller reuses its buffer
    grad_x = layer.backward(gy)
    np.testing.assert_allclose(grad_x, expected.input, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grad_weight, expected.weight, rtol=1e-12, atol=1e-12)


# --- complex gradients follow PyTorch's convention ---------------------------------------------------


def _complex_operands():
    shape_x, shape_w = (2, 2, 5), (3, 2, 2)
    x = rng.standard_normal(shape_x) + 1j * rng.standard_normal(shape_x)
    w = rng.standard_normal(shape_w) + 1j * rng.standard_normal(shape_w)
    gy = rng.standard_normal((2, 3, 4)) + 1j * rng.standard_normal((2, 3, 4))
    return x, w, gy


def _wirtinger_gradient(loss, a):
    """dL/dRe(a) + i dL/dIm(a) by central differences: the gradient PyTorch reports."""
    grad = np.zeros_like(a)
    h = 1e-6
    for index in np.ndindex(a.shape):
        for unit in (1.0, 1j):
            step = np.zeros_like(a)
            step[index] = h * unit
            grad[index] += unit * (loss(a + step) - loss(a - step)) / (2 * h)
    return grad


@pytest.mark.parametrize("backward", [ic.conv_backward, direct.conv_backward], ids=["im2col", "direct"])
def test_complex_gradients_are_conjugate_wirtinger(backward):
    x, w, gy = _complex_operands()

    # L = Re(sum(conj(gy) * y)) has dL/dy = gy in this convention.
    def loss_of_x(a):
        return float(np.real(np.sum(np.conj(gy) * ic.conv(a, w))))

    def loss_of_w(a):
        return float(np.real(np.sum(np.conj(gy) * ic.conv(x, a))))

    grads = backward(gy, x, w)
    np.testing.assert_allclose(grads.input, _wirtinger_gradient(loss_of_x, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grads.weight, _wirtinger_gradient(loss_of_w, w), rtol=1e-6, atol=1e-8)


def test_complex_gradients_match_torch_autograd():
    torch = pytest.importorskip("torch")
    x, w, gy = _complex_operands()
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv1d(tx, tw).backward(torch.tensor(gy))
    grads = ic.conv_backward(gy, x, w)
    np.testing.assert_allclose(grads.input, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads.weight, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
