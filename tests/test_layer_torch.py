"""The layers against ``torch.nn``: state dicts, values and gradients, eval mode, the dtype rule, pooling."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import numpy as np
import pytest

from im2col_conv import AvgPool, Conv, MaxPool

torch = pytest.importorskip("torch")
nn = torch.nn

rng = np.random.default_rng(23)

TORCH_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TORCH_MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
TORCH_AVG = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}

# (constructor arguments shared by both libraries, input shape)
CONV_CASES: list[tuple[dict[str, Any], tuple[int, ...]]] = [
    (dict(in_channels=2, out_channels=3, kernel_size=(3, 3)), (2, 2, 7, 6)),
    (dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=2, padding=1, groups=2), (2, 4, 8, 7)),
    (dict(in_channels=2, out_channels=2, kernel_size=(3,), dilation=2, padding="same"), (3, 2, 9)),
    (
        dict(in_channels=2, out_channels=4, kernel_size=(2, 3, 2), stride=(1, 2, 1), bias=False),
        (1, 2, 4, 6, 3),
    ),
]


def _tensor(array: np.ndarray, grad: bool = False) -> Any:
    return torch.from_numpy(np.ascontiguousarray(array)).requires_grad_(grad)


def _pair(kwargs: dict[str, Any], dtype: Any = np.float64) -> tuple[Conv, Any]:
    """A library layer and a ``torch.nn`` layer of the same arguments, sharing the library's weights."""
    ours = Conv(**kwargs, dtype=dtype, rng=0)
    theirs = TORCH_CONV[ours.ndim](**kwargs).to(torch.float64 if dtype == np.float64 else torch.float32)
    theirs.load_state_dict({name: torch.from_numpy(value) for name, value in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_state_dict_keys_and_shapes_are_torchs(ndim: int, bias: bool) -> None:
    ours = Conv(4, 6, 3, groups=2, bias=bias, ndim=ndim, rng=0)
    theirs = TORCH_CONV[ndim](4, 6, 3, groups=2, bias=bias)
    expected = {name: tuple(value.shape) for name, value in theirs.state_dict().items()}
    assert {name: value.shape for name, value in ours.state_dict().items()} == expected
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in theirs.named_parameters()]


def test_state_dict_round_trips_between_torch_and_npz(tmp_path: Any) -> None:
    theirs = nn.Conv2d(3, 5, (3, 2), stride=2, padding=1)
    path = tmp_path / "from_torch.npz"
    np.savez(path, **{name: value.detach().numpy() for name, value in theirs.state_dict().items()})
    ours = Conv(3, 5, (3, 2), stride=2, padding=1, rng=0)
    with np.load(path) as saved:
        ours.load_state_dict(saved)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(_tensor(x)).numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-5)
    # torch's own state dict (tensors) loads directly
    other = Conv(3, 5, (3, 2), stride=2, padding=1, rng=1)
    other.load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(other.weight, ours.weight)
    # and back: the library's state dict loads into torch with strict keys
    ours.weight *= 2.0
    theirs.load_state_dict({name: torch.from_numpy(value) for name, value in ours.state_dict().items()})
    np.testing.assert_array_equal(theirs.weight.detach().numpy(), ours.weight)


@pytest.mark.parametrize(("kwargs", "shape"), CONV_CASES, ids=["2d", "2d-groups", "1d-same", "3d-nobias"])
@pytest.mark.parametrize("keep", ["columns", "input"])
def test_conv_values_and_gradients_match_torch(
    kwargs: dict[str, Any], shape: tuple[int, ...], keep: str
) -> None:
    ours, theirs = _pair(kwargs)
    ours.keep = keep
    x = rng.standard_normal(shape)
    xt = _tensor(x, grad=True)
    yt = theirs(xt)
    y = ours(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    yt.backward(_tensor(gy))
    np.testing.assert_allclose(ours.backward(gy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    theirs_grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    assert list(dict(ours.named_gradients())) == list(theirs_grads)
    for name, grad in ours.named_gradients():
        np.testing.assert_allclose(grad, theirs_grads[name], rtol=1e-11, atol=1e-12)


def test_eval_matches_torch_no_grad_and_keeps_nothing() -> None:
    ours, theirs = _pair(dict(in_channels=8, out_channels=8, kernel_size=(3, 3), padding=1))
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 8, 24, 24))
    ours(x)  # per-thread scratch is allocated on the first call and kept
    gc.collect()
    tracemalloc.start()
    try:
        y = ours(x)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held <= y.nbytes + 64 * 1024 < 9 * x.nbytes  # no column matrix is held
    with torch.no_grad():
        np.testing.assert_allclose(y, theirs(_tensor(x)).numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="eval mode"):
        ours.backward(np.ones_like(y))


def test_dtype_rule_refuses_what_torch_refuses() -> None:
    ours, theirs = _pair(dict(in_channels=2, out_channels=3, kernel_size=(3, 3)), dtype=np.float32)
    for dtype in (np.float64, np.int64):
        x = np.ones((1, 2, 5, 5), dtype=dtype)
        with pytest.raises(RuntimeError):
            theirs(_tensor(x))
        with pytest.raises(
            TypeError, match=f"x has dtype {np.dtype(dtype)}, but the layer's parameters are float32"
        ):
            ours(x)
    # the explicit cast, as module.to(torch.float64)
    x = rng.standard_normal((1, 2, 5, 5))
    ours.to(np.float64), theirs.to(torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(ours(x), theirs(_tensor(x)).numpy(), rtol=1e-6, atol=1e-6)


POOL_CASES = [
    ((3, 3), dict(stride=2, padding=1), (2, 3, 7, 8)),
    ((2,), dict(ceil_mode=True), (1, 2, 9)),
    ((2, 2, 3), dict(stride=(1, 2, 2), padding=(1, 0, 1)), (1, 2, 4, 5, 6)),
]


@pytest.mark.parametrize(("kernel", "kwargs", "shape"), POOL_CASES, ids=["2d", "1d-ceil", "3d"])
def test_max_pool_layer_matches_torch(kernel: tuple[int, ...], kwargs: dict[str, Any], shape: Any) -> None:
    x = rng.standard_normal(shape)
    ours = MaxPool(kernel, **kwargs)
    xt = _tensor(x, grad=True)
    yt = TORCH_MAX[len(kernel)](kernel, **kwargs)(xt)
    np.testing.assert_array_equal(ours(x), yt.detach().numpy())
    gy = rng.standard_normal(yt.shape)
    yt.backward(_tensor(gy))
    ours.stride, ours.padding = 1, 0  # changed after the forward: the backward uses the forward's
    np.testing.assert_allclose(ours.backward(gy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("kernel", "kwargs", "shape"), POOL_CASES, ids=["2d", "1d-ceil", "3d"])
@pytest.mark.parametrize("include", [True, False])
def test_avg_pool_layer_matches_torch_and_keeps_its_averaging(
    kernel: tuple[int, ...], kwargs: dict[str, Any], shape: Any, include: bool
) -> None:
    x = rng.standard_normal(shape)
    ours = AvgPool(kernel, **kwargs, count_include_pad=include)
    xt = _tensor(x, grad=True)
    yt = TORCH_AVG[len(kernel)](kernel, **kwargs, count_include_pad=include)(xt)
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(yt.shape)
    yt.backward(_tensor(gy))
    ours.count_include_pad = not include  # changed after the forward
    ours.divisor_override = 3
    np.testing.assert_allclose(ours.backward(gy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_divisor_override_zero_is_refused_like_torch() -> None:
    x = _tensor(np.ones((1, 1, 4, 4)))
    with pytest.raises(RuntimeError):
        nn.AvgPool2d(2, divisor_override=0)(x)
    with pytest.raises(ValueError, match="divisor_override"):
        AvgPool(2, divisor_override=0)
    pool = AvgPool(2)
    with pytest.raises(ValueError, match="divisor_override"):
        pool.divisor_override = 0
