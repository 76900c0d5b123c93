"""im2col_conv.testing: the conformance checker accepts right implementations and locates wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import im2col_conv as ic
from im2col_conv.testing import (
    ConvCase,
    assert_conv_equivalent,
    channels_last,
    geometries,
    torch_autograd_backward,
    torch_forward,
)

CASES = [ConvCase(5, 3, stride=2, padding=((1, 0),)), ConvCase((3, 4), (2, 2), groups=2, dilation=(1, 2))]


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "complex128"])
def test_the_library_conforms(dtype):
    assert_conv_equivalent(forward=ic.conv, backward=ic.conv_backward, geometries=CASES, dtype=dtype)


def test_a_wrong_input_gradient_is_located():
    def backward(grad_output, x, weight, **keywords):
        grads = ic.conv_backward(grad_output, x, weight, **keywords)
        grad_input = grads.input.copy()
        grad_input[..., 0] = 0  # drops the first input position
        return grad_input, grads.weight, grads.bias

    with pytest.raises(AssertionError) as info:
        assert_conv_equivalent(backward=backward, geometries=[ConvCase(4, 2, in_channels=1, out_channels=1)])
    message = str(info.value)
    assert message.startswith("input gradient (8) of ConvCase(")
    assert message.endswith(
        "coefficient of weight[0, 0, 0] * grad_output[0, 0] in grad_input[0, 0]: expected 1, got 0"
    )


def test_a_batch_mean_instead_of_a_sum_is_rejected():
    def backward(grad_output, x, weight, **keywords):
        grads = ic.conv_backward(grad_output, x, weight, **keywords)
        return grads.input, grads.weight / len(x), grads.bias

    with pytest.raises(AssertionError, match="weight"):
        assert_conv_equivalent(backward=backward, geometries=[ConvCase(4, 2)])


def test_channels_last_adapter():
    def forward(x, weight, bias=None, **keywords):
        return np.moveaxis(ic.conv(np.moveaxis(x, -1, 1), weight, bias, **keywords), 1, -1)

    def backward(grad_output, x, weight, **keywords):
        grads = ic.conv_backward(np.moveaxis(grad_output, -1, 1), np.moveaxis(x, -1, 1), weight, **keywords)
        return np.moveaxis(grads.input, 1, -1), grads.weight, grads.bias

    assert_conv_equivalent(
        forward=channels_last(forward), backward=channels_last(backward, backward=True), geometries=CASES
    )


@settings(max_examples=15, deadline=None)
@given(case=geometries(max_dims=2, max_size=4))
def test_geometries_strategy_draws_valid_cases_the_library_passes(case):
    assert_conv_equivalent(forward=ic.conv, backward=ic.conv_backward, geometries=[case])


def test_torch_conv1d_and_autograd_conform():
    torch = pytest.importorskip("torch")
    conv1d = torch.nn.functional.conv1d
    cases = [ConvCase(5, 2, stride=2, padding=((0, 1),), in_channels=1, out_channels=2, batch=2)]
    assert_conv_equivalent(
        forward=torch_forward(conv1d), backward=torch_autograd_backward(conv1d), geometries=cases
    )
