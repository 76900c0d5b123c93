"""Pooling's argument checks, its layers, and that inputs are never modified."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_conv as ic

X = np.arange(2 * 3 * 6 * 5, dtype=np.float64).reshape(2, 3, 6, 5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(kernel_size=0), ValueError, r"kernel_size entries must be >= 1, got 0"),
        (dict(kernel_size=2.0), TypeError, r"kernel_size must be an int, got 2\.0"),
        (dict(kernel_size=(2, 2, 2, 2)), ValueError, r"ndim 6 or 5; got shape \(2, 3, 6, 5\)"),
        (dict(kernel_size=2, stride=0), ValueError, r"stride entries must be >= 1, got 0"),
        (
            dict(kernel_size=2, stride=(1, 2, 3)),
            ValueError,
            r"stride must have one entry per spatial dimension \(2\)",
        ),
        (
            dict(kernel_size=3, padding=2),
            ValueError,
            r"padding must be at most half of kernel_size .* padding=2 for kernel_size=\(3, 3\)",
        ),
        (dict(kernel_size=2, padding=-1), ValueError, r"padding entries must be >= 0, got -1"),
        (
            dict(kernel_size=2, padding="same"),
            TypeError,
            r"padding must be an int or a sequence of 2 ints, got 'same'",
        ),
        (dict(kernel_size=2, padding=((1, 0), (0, 1))), TypeError, r"padding must be an int"),
        (dict(kernel_size=2, dilation=0), ValueError, r"dilation entries must be >= 1, got 0"),
        (dict(kernel_size=2, ceil_mode=1), TypeError, r"ceil_mode must be True or False, got 1"),
        (
            dict(kernel_size=7),
            ValueError,
            r"output would be empty: output size \(0, 0\) .* kernel_size \(7, 7\)",
        ),
        (
            dict(kernel_size=2, workspace=0),
            ValueError,
            r"workspace must be a positive number of bytes, got 0",
        ),
        (
            dict(kernel_size=2, workspace=1.5),
            TypeError,
            r"workspace must be an int number of bytes, got 1\.5",
        ),
    ],
)
def test_bad_arguments_are_named_with_their_value(kwargs, error, match):
    x = X.copy()
    for call in (ic.max_pool, ic.avg_pool):
        args = dict(kwargs)
        if call is ic.avg_pool:
            args.pop("dilation", None)
            if "dilation" in kwargs:
                continue
        with pytest.raises(error, match=match):
            call(x, **args)
    np.testing.assert_array_equal(x, X)


def test_bad_flags_and_divisors():
    with pytest.raises(TypeError, match=r"return_indices must be True or False, got 'yes'"):
        ic.max_pool(X, 2, return_indices="yes")
    with pytest.raises(TypeError, match=r"count_include_pad must be True or False, got None"):
        ic.avg_pool(X, 2, count_include_pad=None)
    with pytest.raises(ValueError, match=r"divisor_override must be a non-zero int, got 0"):
        ic.avg_pool(X, 2, divisor_override=0)
    with pytest.raises(TypeError, match=r"divisor_override must be an int, got 2\.5"):
        ic.avg_pool(X, 2, divisor_override=2.5)
    np.testing.assert_array_equal(
        ic.avg_pool(X, 2, divisor_override=-2),
        -2 * ic.avg_pool(X, 2),  # torch allows a negative divisor
    )


def test_bad_inputs():
    with pytest.raises(TypeError, match=r"input must be real to take a maximum, got dtype complex128"):
        ic.max_pool(X + 1j, 2)
    with pytest.raises(TypeError, match=r"input must have a bool, integer, floating or complex dtype"):
        ic.max_pool(X.astype("datetime64[s]"), 2)
    with pytest.raises(
        ValueError, match=r"input must have non-empty spatial dimensions, got shape \(2, 3, 0, 5\)"
    ):
        ic.avg_pool(np.zeros((2, 3, 0, 5)), 1)
    with pytest.raises(ValueError, match=r"at least one spatial dimension.* got 1 dimension"):
        ic.max_pool(np.zeros(4), 2)


def test_bad_backward_arguments():
    y, indices = ic.max_pool(X, 2, return_indices=True)
    with pytest.raises(
        ValueError,
        match=r"grad_output must have the forward output's shape \(2, 3, 3, 2\), got \(2, 3, 3, 3\)",
    ):
        ic.max_pool_backward(np.zeros((2, 3, 3, 3)), X, 2)
    with pytest.raises(
        ValueError, match=r"indices must have grad_output's shape \(2, 3, 3, 2\), got \(2, 3, 3\)"
    ):
        ic.max_pool_backward(y, X, 2, indices=indices[..., 0])
    with pytest.raises(TypeError, match=r"indices must have an integer dtype, got dtype float64"):
        ic.max_pool_backward(y, X, 2, indices=indices.astype(float))
    wrong = indices.copy()
    wrong[0, 0, 0, 0] = 29  # a position of the plane the first window does not read
    with pytest.raises(ValueError, match=r"found 29, which that window does not read"):
        ic.max_pool_backward(y, X, 2, indices=wrong)
    with pytest.raises(TypeError, match=r"input_shape must be a sequence of ints, got 5"):
        ic.avg_pool_backward(y, 5, 2)
    with pytest.raises(ValueError, match=r"input_shape must not hold negative sizes, got \(2, -3, 6, 5\)"):
        ic.avg_pool_backward(y, (2, -3, 6, 5), 2)


def test_inputs_are_never_modified():
    rng = np.random.default_rng(30)
    x = rng.standard_normal((2, 3, 7, 6))
    x[0, 0, 0, 0] = np.nan
    keep = x.copy()
    y, indices = ic.max_pool(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    g = rng.standard_normal(y.shape)
    kept = (g.copy(), indices.copy())
    ic.max_pool_backward(g, x, 3, 2, 1, ceil_mode=True)
    ic.max_pool_backward(g, x, 3, 2, 1, ceil_mode=True, indices=indices)
    a = ic.avg_pool(x, 3, 2, 1, ceil_mode=True)
    ic.avg_pool_backward(g, x.shape, 3, 2, 1, ceil_mode=True)
    layer = ic.MaxPool(3, 2, 1, ceil_mode=True)
    layer.backward(g) if layer(x) is not None else None
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(g, kept[0])
    np.testing.assert_array_equal(indices, kept[1])
    assert a.shape == y.shape


def test_max_pool_layer_matches_the_functions():
    rng = np.random.default_rng(31)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    layer = ic.MaxPool(3, stride=2, padding=1, ceil_mode=True)
    y = layer(x)
    np.testing.assert_array_equal(y, ic.max_pool(x, 3, 2, 1, ceil_mode=True))
    g = rng.standard_normal(y.shape).astype(np.float32)
    grad = layer.backward(g)
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad, ic.max_pool_backward(g, x, 3, 2, 1, ceil_mode=True))
    np.testing.assert_array_equal(layer.backward(g), grad)  # backward may be repeated
    assert repr(layer) == (
        "MaxPool(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True, dilation=(1, 1))"
    )


def test_avg_pool_layer_matches_the_functions_in_1d_and_3d():
    rng = np.random.default_rng(32)
    x1 = rng.standard_normal((4, 7))  # unbatched 1-D: (C, L)
    layer = ic.AvgPool(3, ndim=1, stride=2, padding=1, count_include_pad=False)
    y = layer(x1)
    np.testing.assert_array_equal(y, ic.avg_pool(x1, (3,), 2, 1, count_include_pad=False))
    np.testing.assert_array_equal(
        layer.backward(np.ones_like(y)),
        ic.avg_pool_backward(np.ones_like(y), x1.shape, (3,), 2, 1, count_include_pad=False),
    )
    x3 = rng.standard_normal((1, 2, 4, 5, 6))
    layer3 = ic.AvgPool((2, 2, 3), divisor_override=5)
    y3 = layer3(x3)
    np.testing.assert_allclose(y3, ic.avg_pool(x3, (2, 2, 3), divisor_override=5))
    assert layer3.backward(np.ones_like(y3)).shape == x3.shape
    assert "divisor_override=5" in repr(layer3)


def test_layer_errors():
    layer = ic.MaxPool(2)
    with pytest.raises(RuntimeError, match=r"MaxPool.backward called before forward"):
        layer.backward(np.zeros((1, 1, 1, 1)))
    layer(np.zeros((1, 1, 4, 4)))
    with pytest.raises(
        ValueError, match=r"grad_output must have the forward output's shape \(1, 1, 2, 2\), got \(1, 1, 2\)"
    ):
        layer.backward(np.zeros((1, 1, 2)))
    layer.clear()
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"ndim=3 disagrees with kernel_size=\(2, 2\)"):
        ic.AvgPool((2, 2), ndim=3)
    with pytest.raises(ValueError, match=r"padding must be at most half of kernel_size"):
        ic.MaxPool(2, padding=2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, \*spatial\) or \(C, \*spatial\) with 2"):
        ic.MaxPool(2)(np.zeros(4))


def test_bools_pool_as_any_and_as_a_fraction():
    x = np.array([[[True, False, False, False, True, True]]])
    np.testing.assert_array_equal(ic.max_pool(x, 2), [[[True, False, True]]])
    assert ic.max_pool(x, 2, padding=1).dtype == np.bool_
    np.testing.assert_array_equal(ic.avg_pool(x, 2), [[[0.5, 0.0, 1.0]]])
