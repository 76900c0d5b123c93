"""Convolutions and pooling of Dask arrays, computed on a two-process local cluster.

Every result is compared with the NumPy functions on the whole array (and,
for a few small cases, with the plain loops of ``oracles`` and
``pool_oracles``), for random geometries and random chunkings: chunks of a
single position, chunks smaller than a window's reach, strides that do not
divide them, 1-D to 3-D, groups, every padding form. Integers must be equal
exactly, floats to a tolerance.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from oracles import loop_conv, loop_conv_grads, loop_conv_transpose
from pool_oracles import loop_avg_pool, loop_max_pool, loop_max_pool_backward

import im2col_conv as ic

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB", dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as connected:
        yield connected


def _same(got, expected):
    got = np.asarray(got)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    else:
        np.testing.assert_array_equal(got, expected)


def _chunks(rng, shape, whole=()):
    """A random chunking; the axes in ``whole`` may also be cut (the library must rechunk them)."""
    return tuple(int(rng.integers(1, n + 1)) if n else 1 for n in shape)


def _padding(rng, d):
    kind = rng.integers(0, 4)
    if kind == 0:
        return "same"
    if kind == 1:
        return "valid"
    if kind == 2:
        return tuple(int(p) for p in rng.integers(0, 3, d))
    return tuple((int(a), int(b)) for a, b in rng.integers(0, 4, (d, 2)))


def _conv_case(rng):
    while True:
        d = int(rng.integers(1, 4))
        size = tuple(int(n) for n in rng.integers(3, 11 if d < 3 else 7, d))
        kernel = tuple(int(k) for k in rng.integers(1, 4, d))
        stride = tuple(int(s) for s in rng.integers(1, 4, d))
        dilation = tuple(int(s) for s in rng.integers(1, 3, d))
        padding = _padding(rng, d)
        try:
            ic.output_size(size, kernel, stride, padding, dilation)
        except ValueError:
            continue
        return size, kernel, stride, padding, dilation


@pytest.mark.parametrize("seed", range(8))
def test_conv_family_matches_numpy_for_any_chunking(client, seed):
    rng = np.random.default_rng(seed)
    size, kernel, stride, padding, dilation = _conv_case(rng)
    groups = int(rng.choice([1, 2]))
    c_in, c_out = 2 * groups, 2 * groups
    exact = seed % 2 == 0
    make = (lambda shape: rng.integers(-9, 10, shape)) if exact else rng.standard_normal
    x, w, b = make((3, c_in, *size)), make((c_out, c_in // groups, *kernel)), make(c_out)
    lazy = da.from_array(x, chunks=_chunks(rng, x.shape))
    y = ic.conv(lazy, w, b, stride, padding, dilation, groups)
    assert isinstance(y, da.Array)
    expected = ic.conv(x, w, b, stride, padding, dilation, groups)
    gy = make(expected.shape)
    grads = ic.conv_backward(
        da.from_array(gy, chunks=_chunks(rng, gy.shape)), lazy, w, stride, padding, dilation, groups
    )
    got = client.compute([y, *grads], sync=True)
    _same(got[0], expected)
    for value, want in zip(got[1:], ic.conv_backward(gy, x, w, stride, padding, dilation, groups)):
        _same(value, want)
    if isinstance(padding, str):
        padding = 0
    output_padding = tuple(int(rng.integers(0, max(s, d_))) for s, d_ in zip(stride, dilation))
    wt = w.reshape(c_in, c_out // groups, *kernel)
    want = ic.conv_transpose(x, wt, b, stride, padding, output_padding, groups, dilation)
    got = ic.conv_transpose(lazy, wt, b, stride, padding, output_padding, groups, dilation)
    _same(client.compute(got, sync=True), want)


def _pool_case(rng):
    while True:
        d = int(rng.integers(1, 4))
        size = tuple(int(n) for n in rng.integers(2, 11 if d < 3 else 7, d))
        kernel = tuple(int(k) for k in rng.integers(1, 5, d))
        stride = tuple(int(s) for s in rng.integers(1, 4, d))
        dilation = tuple(int(s) for s in rng.integers(1, 3, d))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        ceil = bool(rng.integers(0, 2))
        try:
            ic.max_pool(np.zeros((1, 1, *size)), kernel, stride, padding, dilation, ceil)
            ic.avg_pool(np.zeros((1, 1, *size)), kernel, stride, padding, ceil)
        except ValueError:
            continue
        return size, kernel, stride, padding, dilation, ceil


@pytest.mark.parametrize("seed", range(8))
def test_pooling_matches_numpy_for_any_chunking(client, seed):
    rng = np.random.default_rng(100 + seed)
    size, kernel, stride, padding, dilation, ceil = _pool_case(rng)
    exact = seed % 2 == 0
    # Few distinct values: ties, which the first maximum in window order must win.
    x = rng.integers(-3, 4, (3, 4, *size)).astype(np.int16 if exact else np.float32)
    lazy = da.from_array(x, chunks=_chunks(rng, x.shape))
    values, indices = ic.max_pool(x, kernel, stride, padding, dilation, ceil, True)
    include, divisor = bool(rng.integers(0, 2)), [None, 3][int(rng.integers(0, 2))]
    mean = ic.avg_pool(x, kernel, stride, padding, ceil, include, divisor)
    g = rng.integers(-5, 6, values.shape) if exact else rng.standard_normal(values.shape)
    lazy_g = da.from_array(g, chunks=_chunks(rng, g.shape))
    h = rng.standard_normal(mean.shape)
    lazy_h = da.from_array(h, chunks=_chunks(rng, h.shape))
    lazy_values, lazy_indices = ic.max_pool(lazy, kernel, stride, padding, dilation, ceil, True)
    got = client.compute(
        [
            lazy_values,
            lazy_indices,
            ic.max_pool(lazy, kernel, stride, padding, dilation, ceil),
            ic.avg_pool(lazy, kernel, stride, padding, ceil, include, divisor),
            ic.max_pool_backward(lazy_g, lazy, kernel, stride, padding, dilation, ceil),
            ic.max_pool_backward(lazy_g, lazy, kernel, stride, padding, dilation, ceil, indices=lazy_indices),
            ic.avg_pool_backward(lazy_h, x.shape, kernel, stride, padding, ceil, include, divisor),
        ],
        sync=True,
    )
    _same(got[0], values)
    _same(got[1], indices)
    _same(got[2], values)
    _same(got[3], mean)
    gx = ic.max_pool_backward(g, x, kernel, stride, padding, dilation, ceil)
    _same(got[4], gx)
    _same(got[5], gx)
    _same(got[6], ic.avg_pool_backward(h, x.shape, kernel, stride, padding, ceil, include, divisor))


def test_against_the_loops(client):
    """Small cases against formulas written as loops, which share no code with the library."""
    rng = np.random.default_rng(7)
    x = rng.integers(-5, 6, (2, 4, 7, 6))
    w = rng.integers(-3, 4, (4, 2, 3, 2))
    b = rng.integers(-3, 4, 4)
    wt = rng.integers(-3, 4, (4, 3, 2, 3))
    pads = ((2, 0), (1, 3))
    lazy = da.from_array(x, chunks=(1, 3, 2, 4))
    y = loop_conv(x, w, b, (2, 1), pads, (1, 2), groups=2)
    gy = rng.integers(-3, 4, y.shape)
    values, indices = loop_max_pool(x, (3, 2), (2, 2), (1, 1), (1, 2), True)
    g = rng.integers(-3, 4, values.shape)
    expected = [
        y,
        *loop_conv_grads(gy, x, w, (2, 1), pads, (1, 2), 2),
        loop_conv_transpose(x, wt, None, (3, 2), ((1, 0), (0, 2)), (1, 1), 1, 2),
        values,
        indices,
        loop_max_pool_backward(g, x.shape, indices),
        loop_avg_pool(x.astype(float), (3, 3), (2, 1), (1, 1), True, False),
    ]
    lazy_values, lazy_indices = ic.max_pool(lazy, (3, 2), (2, 2), (1, 1), (1, 2), True, True)
    got = client.compute(
        [
            ic.conv(lazy, w, b, (2, 1), pads, (1, 2), groups=2),
            *ic.conv_backward(da.from_array(gy, chunks=2), lazy, w, (2, 1), pads, (1, 2), groups=2),
            ic.conv_transpose(lazy, wt, None, (3, 2), ((1, 0), (0, 2)), (1, 1), groups=2, dilation=1),
            lazy_values,
            lazy_indices,
            ic.max_pool_backward(da.from_array(g, chunks=2), lazy, (3, 2), (2, 2), (1, 1), (1, 2), True),
            ic.avg_pool(lazy.astype(float), (3, 3), (2, 1), (1, 1), True, False),
        ],
        sync=True,
    )
    for value, want in zip(got, expected):
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=0)


def test_integers_past_float64_stay_exact(client):
    """Partial sums above 2**53: float64 would round them, and the sums over chunks must not wrap."""
    rng = np.random.default_rng(3)
    x = rng.integers(2**25, 2**26, (4, 3, 12, 12))
    w = rng.integers(2**25, 2**26, (2, 3, 3, 3))
    lazy = da.from_array(x, chunks=(1, 3, 5, 4))
    y = ic.conv(lazy, w, None, 2, "same")
    want = ic.conv(x, w, None, 2, "same")
    assert want.max() > 2**53
    _same(client.compute(y, sync=True), want)
    gy = rng.integers(2**20, 2**21, want.shape)
    got = client.compute(list(ic.conv_backward(gy, lazy, w, 2, "same")), sync=True)
    for value, expected in zip(got, ic.conv_backward(gy, x, w, 2, "same")):
        _same(value, expected)


def test_unbatched_input_and_lazy_weight(client):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 9, 8))
    w = rng.standard_normal((2, 3, 3, 3))
    lazy = da.from_array(x, chunks=(3, 2, 3))
    y = ic.conv(lazy, da.from_array(w), None, 2, 1)
    _same(client.compute(y, sync=True), ic.conv(x, w, None, 2, 1))
    grads = ic.conv_backward(ic.conv(x, w, None, 2, 1), lazy, w, 2, 1)
    for got, want in zip(
        client.compute(list(grads), sync=True), ic.conv_backward(ic.conv(x, w, None, 2, 1), x, w, 2, 1)
    ):
        _same(got, want)
    _same(client.compute(ic.max_pool(lazy, (2, 3)), sync=True), ic.max_pool(x, (2, 3)))
    g = rng.standard_normal(ic.avg_pool(x, (2, 2)).shape)
    got = ic.avg_pool_backward(da.from_array(g, chunks=2), x.shape, (2, 2))
    _same(client.compute(got, sync=True), ic.avg_pool_backward(g, x.shape, (2, 2)))


def test_a_one_byte_workspace_reaches_every_task(client):
    rng = np.random.default_rng(5)
    x = rng.integers(-4, 5, (2, 2, 11, 9))
    w = rng.integers(-4, 5, (3, 2, 3, 3))
    y = ic.conv(da.from_array(x, chunks=(1, 1, 4, 4)), w, None, 1, 1, workspace=1)
    _same(client.compute(y, sync=True), ic.conv(x, w, None, 1, 1))
    with pytest.raises(ValueError, match="workspace"):
        ic.conv(da.from_array(x), w, workspace=0)


def test_chunking_follows_the_input():
    x = da.zeros((4, 3, 40, 40), chunks=(2, 1, 10, 20))
    y = ic.conv(x, np.ones((5, 3, 3, 3)), stride=2, padding=1)
    assert y.chunks[0] == (2, 2) and y.chunks[1] == (5,)
    # Window o starts at 2 * o - 1: the windows starting in an input chunk form an output block.
    assert y.chunks[2] == (6, 5, 5, 4) and y.chunks[3] == (11, 9)
    pooled = ic.max_pool(x, 2)
    assert pooled.chunks[:2] == x.chunks[:2] and pooled.chunks[2] == (5, 5, 5, 5)
    # Chunks shorter than a window's reach are merged: no task reads mostly halo.
    thin = ic.conv(da.zeros((1, 1, 30), chunks=1), np.ones((1, 1, 7)))
    assert min(thin.chunks[2][:-1]) >= 6


def test_errors_name_the_argument():
    x = da.zeros((1, 2, 6, 6), chunks=3)
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        ic.conv(x, w, padding="full")
    with pytest.raises(ValueError, match="input"):
        ic.conv(da.zeros((6, 6)), w)
    with pytest.raises(ValueError, match="groups"):
        ic.conv(x, w, groups=3)
    with pytest.raises(TypeError, match="input"):
        ic.conv(da.from_array(np.array([["a"]] * 6)), w)
    with pytest.raises(TypeError, match="columns"):
        _, columns = ic.conv_forward(np.zeros((1, 2, 6, 6)), w)
        ic.conv_backward(da.zeros((1, 2, 4, 4)), x, w, columns=columns)
    with pytest.raises(ValueError, match="grad_output"):
        ic.conv_backward(da.zeros((1, 2, 5, 4)), x, w)
    with pytest.raises(ValueError, match="padding"):
        ic.max_pool(x, 2, padding=2)
    with pytest.raises(TypeError, match="indices"):
        ic.max_pool_backward(da.zeros((1, 2, 3, 3)), x, 2, indices=da.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="output_padding"):
        ic.conv_transpose(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="input_shape"):
        ic.avg_pool_backward(da.zeros((1, 2, 3, 3)), (1, -2, 6, 6), 2)


def test_importing_the_package_does_not_import_dask():
    code = (
        "import sys, im2col_conv\n"
        "assert not any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
