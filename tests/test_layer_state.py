"""The layers' PyTorch-style habits: modes, parameters, gradients, state dicts, dtypes, memory.

Also the pooling layers' attribute checks and the snapshot their backward uses.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
from typing import Any

import numpy as np
import pytest

import im2col_conv as ic
from im2col_conv import AvgPool, Conv, MaxPool

rng = np.random.default_rng(20)


def _conv64(**kwargs: Any) -> Conv:
    return Conv(3, 4, 3, padding=1, dtype=np.float64, rng=0, **kwargs)


# -- modes -----------------------------------------------------------------------------------------


def test_train_and_eval_return_the_layer_and_set_training() -> None:
    layer = _conv64()
    assert layer.training is True
    assert layer.eval() is layer and layer.training is False
    assert layer.train() is layer and layer.training is True
    assert layer.train(False) is layer and layer.training is False
    with pytest.raises(TypeError, match="mode must be True or False"):
        layer.train("yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make", [_conv64, lambda: MaxPool(2), lambda: AvgPool(2)], ids=["conv", "max", "avg"]
)
def test_backward_after_an_eval_forward_says_the_layer_is_in_eval_mode(make: Any) -> None:
    layer = make()
    x = rng.standard_normal((2, 3, 6, 6))
    y = layer(x)
    layer.backward(np.ones_like(y))  # training mode: fine
    layer.eval()
    y_eval = layer(x)
    np.testing.assert_array_equal(y_eval, y)  # same values in both modes
    with pytest.raises(RuntimeError, match=r"eval mode \(training=False\) keeps nothing.*layer.train\(\)"):
        layer.backward(np.ones_like(y))
    layer.train()  # switching back does not bring the pass back
    with pytest.raises(RuntimeError, match="after a forward pass in eval mode"):
        layer.backward(np.ones_like(y))
    layer(x)
    assert layer.backward(np.ones_like(y)).shape == x.shape
    layer.clear()
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones_like(y))


def _traced_forward(layer: Any, x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Run ``layer(x)`` under tracemalloc: the output, the peak bytes and the bytes still held."""
    layer(x)  # the engine keeps per-thread scratch from one call to the next: allocate it first
    layer.clear()
    gc.collect()
    tracemalloc.start()
    try:
        y = layer(x)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return y, peak, held


def test_eval_forward_keeps_no_column_matrix() -> None:
    x = rng.standard_normal((2, 8, 32, 32))
    layer = Conv(8, 8, 3, padding=1, dtype=np.float64, rng=0)
    columns_bytes = 9 * x.nbytes  # the column matrix of a 3x3 kernel, padding 1
    y, _, held = _traced_forward(layer, x)
    assert held >= columns_bytes  # training mode, keep="columns": the measure sees the columns
    layer.eval()
    y, _, held = _traced_forward(layer, x)
    assert held <= y.nbytes + 64 * 1024  # the output and nothing else of size
    assert layer._pass is None


def test_keep_input_forward_stays_near_input_plus_output() -> None:
    x = rng.standard_normal((2, 8, 32, 32))
    layer = Conv(8, 8, 3, padding=1, dtype=np.float64, rng=0, keep="input", workspace=1 << 18)
    y, peak, held = _traced_forward(layer, x)
    columns_bytes = 9 * x.nbytes
    assert held <= x.nbytes + y.nbytes + 64 * 1024  # a copy of the input, and the output
    assert peak <= 2 * (x.nbytes + y.nbytes) + (1 << 18) < columns_bytes
    assert layer._pass is not None and layer._pass.columns is None


# -- parameters and gradients ------------------------------------------------------------------------


def test_parameters_are_the_layers_own_arrays_in_pytorchs_order() -> None:
    layer = _conv64()
    named = layer.named_parameters()
    assert [name for name, _ in named] == ["weight", "bias"]
    assert named[0][1] is layer.weight and named[1][1] is layer.bias
    assert [p is q for p, q in zip(layer.parameters(), (layer.weight, layer.bias))] == [True, True]
    assert [name for name, _ in Conv(3, 4, 3, bias=False).named_parameters()] == ["weight"]
    assert MaxPool(2).parameters() == [] and AvgPool(2).state_dict() == {}


def test_named_gradients_and_zero_grad() -> None:
    layer = _conv64()
    assert layer.named_gradients() == [("weight", None), ("bias", None)]
    x = rng.standard_normal((2, 3, 5, 5))
    gy = rng.standard_normal(layer(x).shape)
    layer.backward(gy)
    expected = ic.conv_backward(gy, x, layer.weight, padding=1)
    grads = dict(layer.named_gradients())
    np.testing.assert_allclose(grads["weight"], expected.weight, rtol=1e-12)
    np.testing.assert_allclose(grads["bias"], gy.sum(axis=(0, 2, 3)), rtol=1e-12)
    layer.zero_grad(set_to_none=False)
    assert all(
        g is not None and g.shape == p.shape and not g.any()
        for (_, g), p in zip(layer.named_gradients(), layer.parameters())
    )
    layer.zero_grad()
    assert layer.grad_weight is None and layer.grad_bias is None


# -- state dicts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_round_trips_through_npz(tmp_path: Any, bias: bool) -> None:
    source = Conv(3, 4, (3, 2), bias=bias, rng=1)
    path = tmp_path / "conv.npz"
    np.savez(path, **source.state_dict())
    target = Conv(3, 4, (3, 2), bias=bias, rng=2)
    weight_array = target.weight
    with np.load(path) as saved:
        assert target.load_state_dict(saved) == ([], [])
    np.testing.assert_array_equal(target.weight, source.weight)
    assert target.weight is weight_array  # written in place: an optimiser holding it sees the values
    if bias:
        np.testing.assert_array_equal(target.bias, source.bias)  # type: ignore[arg-type]
    x = rng.standard_normal((1, 3, 6, 5)).astype(np.float32)
    np.testing.assert_array_equal(target(x), source(x))


def test_state_dict_is_a_copy() -> None:
    layer = _conv64()
    state = layer.state_dict()
    state["weight"] += 1.0
    assert not np.shares_memory(state["weight"], layer.weight)
    assert not np.array_equal(state["weight"], layer.weight)


def test_load_state_dict_checks_keys_shapes_and_dtypes_before_writing() -> None:
    layer = _conv64()
    before = layer.state_dict()
    good = layer.state_dict()
    with pytest.raises(ValueError, match=r"missing key\(s\) \['bias'\], unexpected key\(s\) \['b'\]"):
        layer.load_state_dict({"weight": good["weight"] + 1, "b": good["bias"]})
    with pytest.raises(ValueError, match=r"size mismatch for bias: .*shape \(5,\).*shape \(4,\)"):
        layer.load_state_dict({"weight": good["weight"] + 1, "bias": np.zeros(5)})
    with pytest.raises(TypeError, match=r"dtype mismatch for weight: .*float32.*float64"):
        layer.load_state_dict({"weight": good["weight"].astype(np.float32), "bias": good["bias"]})
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        layer.load_state_dict([("weight", good["weight"])])  # type: ignore[arg-type]
    for name, value in before.items():  # nothing was half-written
        np.testing.assert_array_equal(getattr(layer, name), value)
    result = layer.load_state_dict({"weight": good["weight"] * 2, "extra": 1}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(layer.weight, before["weight"] * 2)
    with pytest.raises(ValueError, match=r"unexpected key\(s\) \['weight'\]"):
        MaxPool(2).load_state_dict({"weight": good["weight"]})


# -- the dtype rule --------------------------------------------------------------------------------


def test_to_casts_parameters_and_gradients_explicitly() -> None:
    layer = Conv(3, 4, 3, rng=0)
    x32 = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    layer.backward(np.ones_like(layer(x32)))
    weight32 = layer.weight.copy()
    assert layer.to(np.float64) is layer and layer.dtype == np.float64
    assert all(p.dtype == np.float64 for p in layer.parameters())
    assert all(g is not None and g.dtype == np.float64 for _, g in layer.named_gradients())
    np.testing.assert_array_equal(layer.weight, weight32.astype(np.float64))
    with pytest.raises(RuntimeError, match="before forward"):  # the float32 pass was dropped
        layer.backward(np.ones((1, 4, 3, 3)))
    assert layer(x32.astype(np.float64)).dtype == np.float64
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        layer.to(np.int64)


def test_a_parameter_of_another_dtype_is_refused_at_forward() -> None:
    layer = Conv(3, 4, 3, rng=0)
    layer.weight = layer.weight.astype(np.float64)
    with pytest.raises(TypeError, match="the layer's weight must be an ndarray of the layer's dtype float32"):
        layer(np.ones((1, 3, 5, 5), dtype=np.float32))


def test_the_input_is_not_modified_and_the_kept_copy_is_private() -> None:
    layer = Conv(3, 4, 3, rng=0, keep="input")
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    original = x.copy()
    y = layer(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    expected = ic.conv_backward(gy, original, layer.weight)
    x[...] = 0.0  # the caller reuses its buffer before backward
    np.testing.assert_array_equal(layer.backward(gy), expected.input)
    np.testing.assert_array_equal(layer.grad_weight, expected.weight)  # type: ignore[arg-type]


# -- pooling layers --------------------------------------------------------------------------------


def test_avg_pool_backward_uses_the_forwards_averaging() -> None:
    x = rng.standard_normal((1, 2, 5, 5))
    pool = AvgPool(3, stride=2, padding=1, count_include_pad=False)
    y = pool(x)
    gy = rng.standard_normal(y.shape)
    expected = ic.avg_pool_backward(gy, x.shape, 3, 2, 1, count_include_pad=False)
    pool.count_include_pad = True
    pool.divisor_override = 7
    pool.padding = 0
    np.testing.assert_allclose(pool.backward(gy), expected, rtol=1e-12)
    y2 = pool(x)  # the next forward uses the new settings
    np.testing.assert_allclose(y2, ic.avg_pool(x, 3, 2, 0, divisor_override=7), rtol=1e-12)


def test_max_pool_backward_uses_the_forwards_windows() -> None:
    x = rng.standard_normal((1, 2, 6, 6))
    pool = MaxPool(2)
    gy = rng.standard_normal(pool(x).shape)
    expected = ic.max_pool_backward(gy, x, 2)
    pool.stride = 1
    pool.kernel_size = 3
    np.testing.assert_array_equal(pool.backward(gy), expected)


@pytest.mark.parametrize(
    ("make", "name", "value", "error", "match"),
    [
        (lambda: AvgPool(2), "divisor_override", 0, ValueError, "divisor_override must be a non-zero int"),
        (lambda: AvgPool(2), "count_include_pad", "no", TypeError, "count_include_pad must be True or False"),
        (lambda: MaxPool(2), "ceil_mode", 1.5, TypeError, "ceil_mode must be True or False"),
        (lambda: MaxPool(2), "stride", 0, ValueError, "stride entries must be >= 1"),
        (lambda: MaxPool(2), "dilation", (1, 2, 3), ValueError, "dilation must have one entry per"),
        (lambda: MaxPool(4, padding=2), "kernel_size", 3, ValueError, "padding must be at most half"),
        (lambda: MaxPool(2), "padding", 2, ValueError, "padding must be at most half"),
        (lambda: MaxPool(2), "workspace", 0, ValueError, "workspace must be a positive number"),
    ],
)
def test_pool_attributes_are_checked_when_set(
    make: Any, name: str, value: Any, error: type[Exception], match: str
) -> None:
    pool = make()
    before = getattr(pool, name)
    with pytest.raises(error, match=match):
        setattr(pool, name, value)
    assert getattr(pool, name) == before  # the bad value was not kept


def test_pool_attributes_are_normalised_when_set() -> None:
    pool = AvgPool(3, ndim=1)
    pool.stride, pool.padding, pool.divisor_override = 2, 1, 5
    assert (pool.stride, pool.padding, pool.divisor_override) == ((2,), (1,), 5)
    y = pool(np.arange(7.0).reshape(1, 1, 7))
    expected = [sum(v for v in range(7) if 2 * j - 1 <= v <= 2 * j + 1) / 5 for j in range(4)]
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-12)
    assert math.isfinite(float(y.sum()))
