"""Tests of the Conv layer: gradients, backward methods, what forward keeps, init, errors, dtypes, N-D."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from im2col_conv.convolution import Columns, conv, conv_backward
from im2col_conv.layer import Conv

# (layer kwargs, input shape): a spread of geometries, 1-D to 3-D, batched and unbatched.
CASES: list[tuple[dict[str, Any], tuple[int, ...]]] = [
    (dict(in_channels=2, out_channels=3, kernel_size=3), (2, 2, 6, 5)),
    (dict(in_channels=2, out_channels=3, kernel_size=(3, 2), stride=2, padding=1), (2, 2, 7, 6)),
    (dict(in_channels=4, out_channels=6, kernel_size=3, padding="same", dilation=2, groups=2), (2, 4, 7, 7)),
    (dict(in_channels=2, out_channels=2, kernel_size=2, padding=((1, 0), (0, 2)), bias=False), (1, 2, 4, 4)),
    (dict(in_channels=3, out_channels=2, kernel_size=3, ndim=1, stride=2, padding=2), (2, 3, 9)),
    (dict(in_channels=2, out_channels=4, kernel_size=(2, 3, 2), stride=(1, 2, 1), groups=2), (2, 2, 4, 5, 3)),
    (dict(in_channels=2, out_channels=3, kernel_size=3, padding=1), (2, 5, 5)),  # unbatched
]
CASE_IDS = [
    "2d",
    "2d-stride-pad",
    "2d-same-dilation-groups",
    "2d-asym-nobias",
    "1d",
    "3d-groups",
    "unbatched",
]


def make(kwargs: dict[str, Any], **extra: Any) -> Conv:
    return Conv(**{"dtype": np.float64, "rng": 0, **kwargs, **extra})


def numerical_grad(f: Any, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every entry of ``a`` (in place)."""
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        plus = f()
        a[idx] = old - eps
        minus = f()
        a[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize(("kwargs", "shape"), CASES, ids=CASE_IDS)
def test_gradients_match_finite_differences(kwargs: dict[str, Any], shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    layer = make(kwargs)
    x = rng.standard_normal(shape)
    r = rng.standard_normal(layer(x).shape)

    def loss() -> float:
        return float((layer.forward(x) * r).sum())

    grad_x = layer.backward(r)
    grad_w, grad_b = layer.grad_weight, layer.grad_bias
    np.testing.assert_allclose(grad_x, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_w, numerical_grad(loss, layer.weight), rtol=1e-6, atol=1e-8)
    if layer.bias is None:
        assert grad_b is None
    else:
        np.testing.assert_allclose(grad_b, numerical_grad(loss, layer.bias), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("kwargs", "shape"), CASES, ids=CASE_IDS)
def test_layer_matches_core_functions(kwargs: dict[str, Any], shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(2)
    layer = make(kwargs)
    x = rng.standard_normal(shape)
    y = layer(x)
    geometry = (layer.stride, layer.padding, layer.dilation, layer.groups)
    np.testing.assert_array_equal(y, conv(x, layer.weight, layer.bias, *geometry))
    gy = rng.standard_normal(y.shape)
    grad_x = layer.backward(gy)
    expected = conv_backward(gy, x, layer.weight, *geometry)
    np.testing.assert_allclose(grad_x, expected.input, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grad_weight, expected.weight, rtol=1e-12, atol=1e-12)
    if layer.bias is not None:
        np.testing.assert_allclose(layer.grad_bias, expected.bias, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("kwargs", "shape"), CASES, ids=CASE_IDS)
def test_direct_backward_equals_im2col(kwargs: dict[str, Any], shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    default, direct = make(kwargs), make(kwargs, backward_method="direct")
    assert direct.backward_method == "direct"
    np.testing.assert_array_equal(default(x), direct(x))
    gy = rng.standard_normal(default(x).shape)
    np.testing.assert_allclose(direct.backward(gy), default.backward(gy), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(direct.grad_weight, default.grad_weight, rtol=1e-10, atol=1e-12)
    if default.bias is not None:
        np.testing.assert_allclose(direct.grad_bias, default.grad_bias, rtol=1e-10, atol=1e-12)


def test_backward_method_can_be_switched_between_calls() -> None:
    rng = np.random.default_rng(4)
    layer = make(CASES[1][0])
    x = rng.standard_normal(CASES[1][1])
    gy = rng.standard_normal(layer(x).shape)
    grad_im2col, gw_im2col = layer.backward(gy), layer.grad_weight
    layer.backward_method = "direct"
    grad_direct = layer.backward(gy)  # same forward pass, backward called again
    np.testing.assert_allclose(grad_direct, grad_im2col, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grad_weight, gw_im2col, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="backward_method"):
        layer.backward_method = "fft"


@pytest.mark.parametrize(("kwargs", "shape"), CASES, ids=CASE_IDS)
def test_keep_input_equals_keep_columns(kwargs: dict[str, Any], shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    columns, inputs = make(kwargs), make(kwargs, keep="input")
    np.testing.assert_array_equal(columns(x), inputs(x))
    assert isinstance(columns._pass.columns, Columns)
    assert inputs._pass.columns is None  # only x is kept
    gy = rng.standard_normal(columns(x).shape)
    np.testing.assert_array_equal(columns.backward(gy), inputs.backward(gy))
    np.testing.assert_array_equal(columns.grad_weight, inputs.grad_weight)
    if columns.bias is not None:
        np.testing.assert_array_equal(columns.grad_bias, inputs.grad_bias)


def test_gradients_are_overwritten_not_accumulated() -> None:
    layer = make(CASES[0][0])
    x = np.ones(CASES[0][1])
    gy = np.ones(layer(x).shape)
    layer.backward(gy)
    first = layer.grad_weight.copy()  # type: ignore[union-attr]
    layer.backward(gy)
    np.testing.assert_array_equal(layer.grad_weight, first)


# -- initialisation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "fan_in"),
    [
        ((3, 64, 3), {}, 3 * 9),
        ((8, 16, (5, 3)), {"groups": 4}, 2 * 15),
        ((4, 6, 7), {"ndim": 1}, 4 * 7),
        ((2, 4, (3, 3, 3)), {}, 2 * 27),
    ],
)
def test_init_is_kaiming_uniform(args: tuple[Any, ...], kwargs: dict[str, Any], fan_in: int) -> None:
    layer = Conv(*args, rng=0, **kwargs)
    c_in, c_out = args[0], args[1]
    groups = kwargs.get("groups", 1)
    assert layer.weight.shape == (c_out, c_in // groups, *layer.kernel_size)
    assert layer.bias is not None and layer.bias.shape == (c_out,)
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(layer.weight).max() <= bound
    assert np.abs(layer.bias).max() <= bound
    # A uniform sample of this size spreads across most of the interval and is centred.
    assert np.abs(layer.weight).max() > 0.8 * bound
    assert abs(layer.weight.mean()) < 0.2 * bound


def test_seeding_is_reproducible() -> None:
    a, b, c = Conv(3, 4, 3, rng=7), Conv(3, 4, 3, rng=7), Conv(3, 4, 3, rng=8)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)  # type: ignore[arg-type]
    assert not np.array_equal(a.weight, c.weight)
    d = Conv(3, 4, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight, d.weight)
    # A shared generator gives successive layers different weights.
    g = np.random.default_rng(0)
    assert not np.array_equal(Conv(3, 4, 3, rng=g).weight, Conv(3, 4, 3, rng=g).weight)
    # The default is a fresh, unseeded generator.
    assert not np.array_equal(Conv(3, 4, 3).weight, Conv(3, 4, 3).weight)


def test_no_bias() -> None:
    layer = Conv(2, 3, 3, bias=False, rng=0, dtype=np.float64)
    assert layer.bias is None
    x = np.ones((1, 2, 4, 4))
    np.testing.assert_array_equal(layer(x), conv(x, layer.weight))
    layer.backward(np.ones((1, 3, 2, 2)))
    assert layer.grad_bias is None


# -- dtypes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype: Any) -> None:
    layer = Conv(2, 3, 3, padding=1, dtype=dtype, rng=0)
    assert layer.weight.dtype == dtype and layer.bias is not None and layer.bias.dtype == dtype
    y = layer(np.ones((2, 2, 5, 5), dtype=dtype))
    assert y.dtype == dtype
    grad_x = layer.backward(np.ones(y.shape, dtype=dtype))
    assert grad_x.dtype == dtype
    assert layer.grad_weight is not None and layer.grad_weight.dtype == dtype
    assert layer.grad_bias is not None and layer.grad_bias.dtype == dtype


@pytest.mark.parametrize(
    ("dtype", "input_dtype"),
    [
        (layer, given)
        for layer in (np.float32, np.float64)
        for given in (np.float16, np.float32, np.float64, np.int64, np.uint8, bool)
        if np.dtype(given) != layer
    ],
)
def test_other_input_dtypes_are_refused_naming_both(dtype: Any, input_dtype: Any) -> None:
    layer = Conv(2, 3, 3, padding=1, dtype=dtype, rng=0)
    x = np.ones((2, 2, 5, 5), dtype=input_dtype)
    pattern = rf"x has dtype {np.dtype(input_dtype)}, but the layer's parameters are {np.dtype(dtype)}"
    with pytest.raises(TypeError, match=pattern):
        layer(x)
    y = layer(x.astype(dtype))
    with pytest.raises(TypeError, match=rf"grad_output has dtype {np.dtype(input_dtype)}"):
        layer.backward(np.ones(y.shape, dtype=input_dtype))


def test_float32_layer_is_close_to_float64() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 6, 6))
    single, double = Conv(3, 4, 3, rng=0), Conv(3, 4, 3, rng=0, dtype=np.float64)
    double.weight = single.weight.astype(np.float64)
    double.bias = single.bias.astype(np.float64)  # type: ignore[union-attr]
    np.testing.assert_allclose(single(x.astype(np.float32)), double(x), rtol=1e-5, atol=1e-5)


def test_complex_input_is_refused() -> None:
    with pytest.raises(TypeError, match="x has dtype complex128"):
        Conv(1, 1, 3, rng=0)(np.ones((1, 1, 4, 4), dtype=complex))


# -- N-D -----------------------------------------------------------------------------------------------


def test_1d_matches_numpy_correlate() -> None:
    rng = np.random.default_rng(7)
    layer = Conv(1, 1, kernel_size=4, ndim=1, dtype=np.float64, rng=0)
    x = rng.standard_normal((1, 1, 10))
    expected = np.correlate(x[0, 0], layer.weight[0, 0], mode="valid") + layer.bias[0]  # type: ignore[index]
    np.testing.assert_allclose(layer(x)[0, 0], expected, rtol=1e-12)
    assert layer.ndim == 1


def test_3d_layer_shapes_and_gradients() -> None:
    rng = np.random.default_rng(8)
    layer = Conv(2, 3, kernel_size=3, ndim=3, stride=2, padding=1, dtype=np.float64, rng=0)
    assert layer.weight.shape == (3, 2, 3, 3, 3)
    x = rng.standard_normal((2, 2, 5, 6, 4))
    y = layer(x)
    assert y.shape == (2, 3, 3, 3, 2)
    grad_x = layer.backward(np.ones_like(y))
    assert grad_x.shape == x.shape
    # dL/dbias for L = y.sum() is the number of output positions.
    np.testing.assert_allclose(layer.grad_bias, np.full(3, 2 * 3 * 3 * 2))  # type: ignore[arg-type]


def test_int_kernel_size_defaults_to_2d() -> None:
    assert Conv(1, 1, 3).weight.shape == (1, 1, 3, 3)
    assert Conv(1, 1, (3, 3), ndim=2).ndim == 2


# -- errors --------------------------------------------------------------------------------------------


def test_backward_before_forward() -> None:
    layer = Conv(1, 2, 3, rng=0, dtype=np.float64)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((1, 2, 2, 2)))
    layer(np.ones((1, 1, 4, 4)))
    layer.clear()
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((1, 2, 2, 2)))


@pytest.mark.parametrize("shape", [(1, 2, 3, 3), (1, 2, 2), (2, 2, 2, 2), (1, 3, 2, 2)])
def test_backward_with_mismatched_shape(shape: tuple[int, ...]) -> None:
    layer = Conv(1, 2, 3, rng=0, dtype=np.float64)
    layer(np.ones((1, 1, 4, 4)))  # output (1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"grad_output must have the shape .*\(1, 2, 2, 2\)"):
        layer.backward(np.ones(shape))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0, 2, 3), {}, ValueError, "in_channels must be >= 1, got 0"),
        ((1, -2, 3), {}, ValueError, "out_channels must be >= 1, got -2"),
        ((1.0, 2, 3), {}, TypeError, "in_channels must be an int"),
        ((2, 3, 3), {"groups": 2}, ValueError, "groups=2 must divide"),
        ((2, 2, 3), {"groups": 0}, ValueError, "groups must be >= 1"),
        ((1, 1, 0), {}, ValueError, "kernel_size entries must be >= 1"),
        ((1, 1, ()), {}, ValueError, "kernel_size must have at least one entry"),
        ((1, 1, (3, 3)), {"ndim": 3}, ValueError, "ndim=3 disagrees with kernel_size"),
        ((1, 1, 3), {"ndim": 0}, ValueError, "ndim must be >= 1"),
        ((1, 1, 3), {"stride": 0}, ValueError, "stride entries must be >= 1"),
        ((1, 1, 3), {"stride": (1, 2, 3)}, ValueError, "stride must have one entry per spatial dimension"),
        ((1, 1, 3), {"dilation": 0}, ValueError, "dilation entries must be >= 1"),
        ((1, 1, 3), {"padding": -1}, ValueError, "padding must be non-negative"),
        ((1, 1, 3), {"padding": "full"}, ValueError, "padding must be 'valid', 'same'"),
        ((1, 1, 3), {"bias": "yes"}, TypeError, "bias must be True or False"),
        ((1, 1, 3), {"dtype": np.int32}, TypeError, "dtype must be a floating dtype"),
        ((1, 1, 3), {"dtype": "nonsense"}, TypeError, "dtype must be a floating dtype"),
        ((1, 1, 3), {"keep": "everything"}, ValueError, "keep must be one of 'columns', 'input', got"),
        (
            (1, 1, 3),
            {"backward_method": "fft"},
            ValueError,
            "backward_method must be one of 'im2col', 'direct', got 'fft'",
        ),
        ((1, 1, 3), {"rng": 1.5}, TypeError, "rng must be a numpy.random.Generator"),
        ((1, 1, 3), {"rng": -1}, ValueError, "rng seed must be non-negative"),
    ],
)
def test_constructor_rejects_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Conv(*args, **kwargs)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 2, 5, 5), "input has 2 channels but weight of shape \\(2, 1, 3, 3\\) with groups=1 expects 1"),
        ((1, 1, 4, 4, 4), "with 2 spatial dimension"),
        ((4,), "with 2 spatial dimension"),
    ],
)
def test_forward_rejects_wrong_input(shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Conv(1, 2, 3, rng=0, dtype=np.float64)(np.ones(shape))


def test_forward_rejects_input_smaller_than_kernel() -> None:
    with pytest.raises(ValueError, match="larger than the padded input"):
        Conv(1, 2, 5, rng=0, dtype=np.float64)(np.ones((1, 1, 3, 3)))


def test_repr_names_the_geometry() -> None:
    text = repr(Conv(4, 8, 3, stride=2, padding="same", groups=2, rng=0))
    assert text.startswith("Conv(4, 8, kernel_size=(3, 3), stride=(2, 2), padding='same'")
    assert "groups=2" in text and "backward_method='im2col'" in text
