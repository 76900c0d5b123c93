"""Chunking over the batch changes nothing but memory.

Integer results must be identical whatever the workspace; float results may
differ only by the order in which the weight gradient sums over the batch.
The temporary memory of a call, measured with tracemalloc, must stay within
the workspace while the column matrix it avoids is many times larger.
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

import im2col_conv as ic
from im2col_conv import tuning
from im2col_conv import workspace as ws

GEOMETRIES = [
    # (spatial, kernel, stride, padding, dilation, groups)
    ((9,), (3,), 2, 1, 1, 1),
    ((7, 6), (3, 2), (2, 1), ((1, 0), (0, 2)), 1, 2),
    ((8, 8), (3, 3), 1, 1, 2, 1),
    ((5, 6), (1, 1), 1, 0, 1, 2),  # pointwise: im2col is the identity
    ((6, 5, 4), (2, 3, 2), (1, 2, 2), 1, 1, 1),
]


@pytest.fixture
def unbounded_cache():
    """Let a large workspace mean one chunk for the whole batch."""
    with tuning.override(cache_bytes=1 << 40):
        yield


def _operands(rng, spatial, kernel, groups, n=7, c_in=4, c_out=6, dtype=np.int64):
    x = rng.integers(-5, 6, size=(n, c_in, *spatial)).astype(dtype)
    w = rng.integers(-5, 6, size=(c_out, c_in // groups, *kernel)).astype(dtype)
    b = rng.integers(-5, 6, size=c_out).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.usefixtures("unbounded_cache")
def test_chunked_equals_unchunked_exactly_in_integers(geometry):
    spatial, kernel, stride, padding, dilation, groups = geometry
    rng = np.random.default_rng(len(spatial) * 100 + kernel[0])
    x, w, b = _operands(rng, spatial, kernel, groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    whole = ic.conv(x, w, b, **kw, workspace=1 << 40)
    gy = rng.integers(-5, 6, size=whole.shape)
    grads_whole = ic.conv_backward(gy, x, w, **kw, workspace=1 << 40)
    # workspace=1 forces one sample per chunk; 3 samples' worth gives uneven chunks.
    for space in (1, 3 * x[0].nbytes * int(np.prod(kernel)) + 1):
        assert np.array_equal(ic.conv(x, w, b, **kw, workspace=space), whole)
        grads = ic.conv_backward(gy, x, w, **kw, workspace=space)
        for got, want in zip(grads, grads_whole):
            assert np.array_equal(got, want)


@pytest.mark.usefixtures("unbounded_cache")
def test_conv_transpose_chunked_equals_unchunked():
    rng = np.random.default_rng(5)
    x = rng.integers(-5, 6, size=(5, 4, 3, 4))
    w = rng.integers(-5, 6, size=(4, 3, 3, 2))
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    whole = ic.conv_transpose(x, w, **kw, workspace=1 << 40)
    assert np.array_equal(ic.conv_transpose(x, w, **kw, workspace=1), whole)


@pytest.mark.usefixtures("unbounded_cache")
def test_chunked_floats_agree_to_rounding():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 4, 10, 10))
    w = rng.standard_normal((5, 4, 3, 3))
    gy = rng.standard_normal((9, 5, 10, 10))
    whole = ic.conv_backward(gy, x, w, padding=1, workspace=1 << 40)
    chunked = ic.conv_backward(gy, x, w, padding=1, workspace=1)
    for got, want in zip(chunked, whole):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_columns_from_forward_equal_rebuilt_columns_in_every_chunking():
    rng = np.random.default_rng(7)
    x, w, _ = _operands(rng, (6, 7), (3, 3), 2, n=5)
    y, columns = ic.conv_forward(x, w, stride=(2, 1), padding=1, groups=2)
    gy = rng.integers(-5, 6, size=y.shape)
    rebuilt = ic.conv_backward(gy, x, w, stride=(2, 1), padding=1, groups=2)
    for space in (1, 1 << 30):
        reused = ic.conv_backward(
            gy, x, w, stride=(2, 1), padding=1, groups=2, columns=columns, workspace=space
        )
        for got, want in zip(reused, rebuilt):
            assert np.array_equal(got, want)


def _temporary_peak(fn):
    """Peak bytes allocated during ``fn`` beyond its (retained) result."""
    ws.release_scratch()  # buffers kept from earlier calls would hide this call's own
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        ws.release_scratch()  # what the thread keeps for the next call was a temporary of this one
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - current, current - base, result


@pytest.mark.parametrize(
    ("dtype", "call"),
    list(itertools.product([np.float32, np.float64], ["conv", "conv_backward", "conv_transpose"])),
)
def test_workspace_bounds_temporary_memory(dtype, call):
    rng = np.random.default_rng(8)
    n, c, size, k = 128, 8, 16, 3
    x = rng.standard_normal((n, c, size, size)).astype(dtype)
    w = rng.standard_normal((c, c, k, k)).astype(dtype)
    gy = rng.standard_normal((n, c, size, size)).astype(dtype)
    column_matrix = n * c * k * k * size * size * np.dtype(dtype).itemsize
    limit = 1 << 20
    assert column_matrix > 8 * limit
    calls = {
        "conv": lambda: ic.conv(x, w, padding=1, workspace=limit),
        "conv_backward": lambda: ic.conv_backward(gy, x, w, padding=1, workspace=limit),
        "conv_transpose": lambda: ic.conv_transpose(gy, w, padding=1, workspace=limit),
    }
    temporary, _, _ = _temporary_peak(calls[call])
    # Chunk buffers within the limit, plus small per-call arrays (weights, index tuples).
    assert temporary <= limit + 64 * 1024, (temporary, limit)


def test_batch_chunks_cover_the_batch_in_order():
    for batch, per_sample, space in [(0, 10, 100), (1, 10**9, 1), (10, 7, 30), (10, 1, 10**9)]:
        chunks = ws.batch_chunks(batch, per_sample, space)
        covered = [i for chunk in chunks for i in range(chunk.start, chunk.stop)]
        assert covered == list(range(batch))
        assert all(chunk.stop > chunk.start for chunk in chunks)


@pytest.mark.parametrize("bad", [0, -5])
def test_workspace_must_be_positive(bad):
    x = np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match=f"workspace must be a positive number of bytes, got {bad}"):
        ic.conv(x, x, workspace=bad)


@pytest.mark.parametrize("bad", [1.5, "64MiB", True])
def test_workspace_must_be_an_int(bad):
    x = np.ones((1, 1, 3, 3))
    with pytest.raises(TypeError, match="workspace must be an int"):
        ic.conv_backward(x[:, :, :1, :1], x, x, workspace=bad)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_offset_by_offset_column_gradient_equals_stored_one(geometry):
    """Both ways of forming W^T @ delta before col2im give identical integers."""
    spatial, kernel, stride, padding, dilation, groups = geometry
    rng = np.random.default_rng(11)
    x, w, _ = _operands(rng, spatial, kernel, groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    gy = rng.integers(-5, 6, size=ic.conv(x, w, **kw).shape)
    results = []
    for threshold in (1, 1 << 30):
        with tuning.override(fused_min_sample_bytes=0, fused_min_channels=threshold):
            results.append((ic.conv_backward(gy, x, w, **kw, workspace=1), ic.conv_transpose(gy, w, **kw)))
    (fused, fused_t), (stored, stored_t) = results
    for got, want in zip(fused, stored):
        assert np.array_equal(got, want)
    assert np.array_equal(fused_t, stored_t)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("space", [700, 3000, 20000])
def test_bands_of_output_rows_equal_whole_samples(geometry, space, monkeypatch):
    """A sample cut into bands of several output rows gives the same integers."""
    spatial, kernel, stride, padding, dilation, groups = geometry
    rng = np.random.default_rng(12)
    x, w, b = _operands(rng, spatial, kernel, groups, n=3)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    with tuning.override(cache_bytes=1 << 40):
        whole = ic.conv(x, w, b, **kw, workspace=1 << 40)
        gy = rng.integers(-5, 6, size=whole.shape)
        grads_whole = ic.conv_backward(gy, x, w, **kw, workspace=1 << 40)
    plans = _spy_on_plans(monkeypatch)
    with tuning.override(cache_bytes=1 << 40, reserved_bytes=0, min_tile_bytes=1):
        assert np.array_equal(ic.conv(x, w, b, **kw, workspace=space), whole)
        for got, want in zip(ic.conv_backward(gy, x, w, **kw, workspace=space), grads_whole):
            assert np.array_equal(got, want)
    if space == 700:
        assert not any(plan.whole for plan in plans), "the samples were not cut: nothing was tested"


def _spy_on_plans(monkeypatch):
    """Record every tile plan the engine makes."""
    from im2col_conv import _engine

    plans = []

    def spy(*args, **kwargs):
        plans.append(ws.plan_tiles(*args, **kwargs))
        return plans[-1]

    monkeypatch.setattr(_engine, "plan_tiles", spy)
    return plans


@pytest.mark.parametrize("call", ["conv", "conv_backward"])
def test_workspace_bounds_a_single_large_sample(call):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((1, 8, 96, 96))
    w = rng.standard_normal((8, 8, 3, 3))
    gy = rng.standard_normal((1, 8, 96, 96))
    limit = 1 << 20
    assert x.nbytes * 9 > 5 * limit  # one sample's column matrix alone is far over the limit
    calls = {
        "conv": lambda: ic.conv(x, w, padding=1, workspace=limit),
        "conv_backward": lambda: ic.conv_backward(gy, x, w, padding=1, workspace=limit),
    }
    temporary, _, _ = _temporary_peak(calls[call])
    assert temporary <= limit + 64 * 1024, (temporary, limit)


def _random_case(rng):
    d = int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 4, size=d))
    stride = tuple(int(s) for s in rng.integers(1, 3, size=d))
    dilation = tuple(int(s) for s in rng.integers(1, 3, size=d))
    padding = tuple((int(b), int(a)) for b, a in rng.integers(0, 3, size=(d, 2)))
    spatial = tuple(
        int(rng.integers(dl * (k - 1) + 1, 3 * dl * k + 40 // d)) for k, dl in zip(kernel, dilation)
    )
    groups = int(rng.choice([1, 2]))
    return spatial, kernel, stride, padding, dilation, groups


@pytest.mark.parametrize("seed", range(12))
def test_random_geometries_stay_within_the_workspace_and_equal_the_whole_call(seed):
    rng = np.random.default_rng(100 + seed)
    spatial, kernel, stride, padding, dilation, groups = _random_case(rng)
    x, w, b = _operands(rng, spatial, kernel, groups, n=int(rng.integers(1, 4)), c_in=4, c_out=4)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    whole = ic.conv(x, w, b, **kw, workspace=1 << 40)
    gy = rng.integers(-5, 6, size=whole.shape)
    whole_grads = ic.conv_backward(gy, x, w, **kw, workspace=1 << 40)
    t_kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    whole_t = ic.conv_transpose(
        gy, np.swapaxes(w, 0, 1).reshape(4, 4 // groups, *kernel), **t_kw, workspace=1 << 40
    )
    floor = tuning.current().reserved_bytes + tuning.current().min_tile_bytes
    for space in (1, 32 << 10, 256 << 10):
        calls = (
            (lambda space=space: ic.conv(x, w, b, **kw, workspace=space), whole),
            (lambda space=space: ic.conv_backward(gy, x, w, **kw, workspace=space), whole_grads),
            (
                lambda space=space: ic.conv_transpose(
                    gy, np.swapaxes(w, 0, 1).reshape(4, 4 // groups, *kernel), **t_kw, workspace=space
                ),
                whole_t,
            ),
        )
        for call, expected in calls:
            temporary, _, result = _temporary_peak(call)
            for got, want in zip(
                result if isinstance(result, tuple) else [result],
                expected if isinstance(expected, tuple) else [expected],
            ):
                assert np.array_equal(got, want)
            # int64 computes in float64 here (small values): 8 bytes per element either way.
            assert temporary <= max(space, floor) + 96 * 1024, (temporary, space)


def test_three_d_samples_are_cut_along_every_axis():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 3, 64, 64))
    w = rng.standard_normal((2, 2, 3, 3, 3))
    limit = 256 << 10
    assert x.nbytes * 27 > 4 * limit  # one row along the first axis is the whole sample
    temporary, _, y = _temporary_peak(lambda: ic.conv(x, w, workspace=limit))
    assert temporary <= limit + 64 * 1024, temporary
    np.testing.assert_allclose(y, ic.conv(x, w, workspace=1 << 40), rtol=1e-12, atol=1e-12)


def test_the_planner_is_logarithmic_in_the_rows():
    calls = []

    def tile_bytes(samples, out, channels):
        calls.append(out)
        return samples * out[0] * 64

    geometry = ic.ConvGeometry.create(480_000, 3)
    tiles = ws.plan_tiles(1, geometry, tile_bytes, 1 << 20, 1)
    assert len(calls) < 64, len(calls)
    assert sum(t.window[0].stop - t.window[0].start for t in tiles) == geometry.output_size[0]


def test_a_tiny_workspace_costs_in_proportion():
    # workspace=1 means tiles of min_tile_bytes: a bounded number of them, not one per position.
    geometry = ic.ConvGeometry.create(100_000, 3)
    tiles = ws.plan_tiles(1, geometry, lambda n, out, c: n * out[0] * 40, 1, 1)
    assert len(tiles) <= 2 * (100_000 * 40 // tuning.current().min_tile_bytes)
