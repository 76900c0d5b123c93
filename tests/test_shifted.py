"""The shifted strategy (no column matrix) computes exactly what the column strategy does.

Integer inputs take its NumPy fallback, integer-valued floats its BLAS path:
in both, every product and sum is exact, so any difference is a bug. Tiny
workspaces cut samples into bands of output rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from oracles import loop_conv, loop_conv_grads, resolve_padding

import im2col_conv as ic
from im2col_conv import _strategy
from im2col_conv import workspace as ws

GEOMETRIES = [
    # (spatial, kernel, stride, padding, dilation, groups)
    ((9,), (3,), 2, 1, 1, 1),
    ((7, 6), (3, 2), (2, 1), ((1, 0), (0, 2)), 1, 2),
    ((8, 8), (3, 3), 1, 1, 2, 1),
    ((9, 7), (3, 3), (3, 2), 2, (2, 1), 1),
    ((6, 5, 4), (2, 3, 2), (1, 2, 2), 1, 1, 1),
    ((5, 6), (1, 1), 2, 1, 1, 2),
    ((10, 10), (5, 5), 2, 2, 1, 1),
]


def _operands(rng, spatial, kernel, groups, dtype, n=3, c_in=4, c_out=6):
    x = rng.integers(-5, 6, size=(n, c_in, *spatial)).astype(dtype)
    w = rng.integers(-5, 6, size=(c_out, c_in // groups, *kernel)).astype(dtype)
    return x, w


def _both(monkeypatch, call):
    results = []
    for strategy in ("columns", "shifted"):
        monkeypatch.setattr(_strategy, "STRATEGY", strategy)
        results.append(call())
    return results


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.int64, np.float64, np.float32])
@pytest.mark.parametrize("space", [1 << 26, 2000, 1])
def test_shifted_equals_columns_exactly(geometry, dtype, space, monkeypatch):
    spatial, kernel, stride, padding, dilation, groups = geometry
    monkeypatch.setattr(ws, "RESERVED_BYTES", 0)
    rng = np.random.default_rng(len(spatial) + kernel[0])
    x, w = _operands(rng, spatial, kernel, groups, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, workspace=space)
    y_cols, y_shift = _both(monkeypatch, lambda: ic.conv(x, w, **kw))
    assert np.array_equal(y_cols, y_shift)
    gy = rng.integers(-5, 6, size=y_cols.shape).astype(dtype)
    grads_cols, grads_shift = _both(monkeypatch, lambda: ic.conv_backward(gy, x, w, **kw))
    for got, want in zip(grads_shift, grads_cols):
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)
    wt = rng.integers(-5, 6, size=(6, 4 // groups, *kernel)).astype(dtype)
    t_cols, t_shift = _both(
        monkeypatch, lambda: ic.conv_transpose(y_cols, wt, **{**kw, "dilation": dilation})
    )
    assert np.array_equal(t_cols, t_shift)


@pytest.mark.parametrize("geometry", GEOMETRIES[:4])
def test_shifted_matches_the_loop_oracle(geometry, monkeypatch):
    spatial, kernel, stride, padding, dilation, groups = geometry
    monkeypatch.setattr(_strategy, "STRATEGY", "shifted")
    rng = np.random.default_rng(3)
    x, w = _operands(rng, spatial, kernel, groups, np.int64)
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    kw = dict(stride=stride, dilation=dilation, groups=groups)
    y = ic.conv(x, w, padding=pads, **kw)
    assert np.array_equal(y, loop_conv(x, w, pad_pairs=pads, **kw))
    gy = rng.integers(-5, 6, size=y.shape)
    grads = ic.conv_backward(gy, x, w, padding=pads, **kw)
    want_x, want_w = loop_conv_grads(gy, x, w, pad_pairs=pads, **kw)[:2]
    assert np.array_equal(grads.input, want_x)
    assert np.array_equal(grads.weight, want_w)


def test_the_default_never_mixes_blas_libraries(monkeypatch):
    """Without a request, no product goes to SciPy's BLAS, whatever the layer."""
    from im2col_conv import _products

    calls = []
    monkeypatch.setattr(_products, "_GEMM", {dtype: lambda *a: calls.append(a) for dtype in _products._GEMM})
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2, 32, 10, 10)).astype(dtype)
        w = rng.standard_normal((32, 32, 3, 3)).astype(dtype)
        y = ic.conv(x, w, padding=1)
        ic.conv_backward(y, x, w, padding=1)
        ic.conv_transpose(y, w, padding=1)
    assert calls == []
    assert not _strategy.shifted()


@pytest.mark.parametrize("call", ["conv", "conv_backward"])
def test_shifted_strategy_keeps_the_workspace_bound(call, monkeypatch):
    import tracemalloc

    monkeypatch.setattr(_strategy, "STRATEGY", "shifted")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((16, 16, 24, 24))
    w = rng.standard_normal((16, 16, 3, 3))
    gy = rng.standard_normal((16, 16, 24, 24))
    limit = 1 << 20
    calls = {
        "conv": lambda: ic.conv(x, w, padding=1, workspace=limit),
        "conv_backward": lambda: ic.conv_backward(gy, x, w, padding=1, workspace=limit),
    }
    ws.release_scratch()
    tracemalloc.start()
    try:
        result = calls[call]()
        ws.release_scratch()  # kept for the next call, yet a temporary of this one
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    assert peak - current <= limit + 64 * 1024, (peak - current, limit)
