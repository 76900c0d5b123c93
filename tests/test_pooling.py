"""Max and average pooling against plain-loop oracles, gradients, special values and chunking."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pool_oracles import loop_avg_pool, loop_max_pool, loop_max_pool_backward

import im2col_conv as ic
from im2col_conv import tuning


def _cases():
    """A parameter product per dimension, trimmed to geometries PyTorch accepts."""
    sizes = {1: [(7,), (1,)], 2: [(5, 6)], 3: [(4, 3, 5)]}
    cases = []
    for d, shapes in sizes.items():
        for size, k, s, p, dl, ceil in itertools.product(
            shapes, (1, 2, 3), (1, 2), (0, 1), (1, 2), (False, True)
        ):
            kernel = (k,) + (2,) * (d - 1) if d > 1 else (k,)
            if p > min(kernel) // 2:
                continue
            stride, padding, dilation = (s,) * d, (p,) * d, (dl,) * d
            extents = [dl * (kk - 1) + 1 for kk in kernel]
            if any(e > n + 2 * p for e, n in zip(extents, size)) and not ceil:
                continue
            cases.append(
                pytest.param(
                    size,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    ceil,
                    id=f"{size}-k{kernel}-s{s}-p{p}-d{dl}-c{int(ceil)}",
                )
            )
    return cases


CASES = _cases()


@pytest.fixture(params=["plain", "phases"])
def read_by_phases(request):
    """Run once as planned, once with every strided last axis read and scattered by phases."""
    if request.param == "plain":
        yield
        return
    with tuning.override(phase_split_min_windows=1):
        yield


def _oracle_or_none(fn, *args):
    try:
        return fn(*args)
    except ValueError:
        return None


@pytest.mark.usefixtures("read_by_phases")
@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "dilation", "ceil"), CASES)
def test_max_pool_matches_the_loop_oracle_exactly_in_integers(size, kernel, stride, padding, dilation, ceil):
    rng = np.random.default_rng(len(CASES))
    x = rng.integers(-4, 5, size=(2, 2, *size))  # many ties
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil)
    try:
        values, indices = ic.max_pool(x, kernel, return_indices=True, **kw)
    except ValueError as exc:
        assert "output would be empty" in str(exc)
        return
    want_values, want_indices = loop_max_pool(x, kernel, stride, padding, dilation, ceil)
    assert values.dtype == x.dtype
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(indices, want_indices)
    g = rng.integers(-3, 4, size=values.shape)
    want = loop_max_pool_backward(g, x.shape, want_indices)
    np.testing.assert_array_equal(ic.max_pool_backward(g, x, kernel, **kw), want)
    np.testing.assert_array_equal(ic.max_pool_backward(g, x, kernel, **kw, indices=indices), want)


@pytest.mark.usefixtures("read_by_phases")
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation", "ceil"),
    [c for c in CASES if c.values[4] == (1,) * len(c.values[0])],
)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_the_loop_oracle_exactly_in_integers(
    size, kernel, stride, padding, dilation, ceil, count_include_pad
):
    rng = np.random.default_rng(7)
    x = rng.integers(-9, 10, size=(2, 2, *size))
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil, count_include_pad=count_include_pad)
    try:
        y = ic.avg_pool(x, kernel, **kw)
    except ValueError as exc:
        assert "output would be empty" in str(exc)
        return
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, loop_avg_pool(x, kernel, stride, padding, ceil, count_include_pad))
    override = ic.avg_pool(x, kernel, **kw, divisor_override=3)
    np.testing.assert_array_equal(
        override, loop_avg_pool(x, kernel, stride, padding, ceil, count_include_pad, 3)
    )


def _geometry_args():
    return [
        ((9,), (3,), (2,), (1,), (1,), True),
        ((6, 7), (3, 2), (2, 1), (1, 1), (1, 2), True),
        ((5, 4, 6), (2, 2, 3), (1, 2, 2), (1, 0, 1), (1, 1, 1), False),
    ]


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "dilation", "ceil"), _geometry_args())
def test_max_pool_backward_is_the_exact_adjoint_on_distinct_values(
    size, kernel, stride, padding, dilation, ceil
):
    # With distinct values max pooling is linear near x: J x = max_pool(x), so <J^T g, x> = <g, max_pool(x)>.
    rng = np.random.default_rng(3)
    x = rng.permutation(2 * 3 * int(np.prod(size))).reshape(2, 3, *size) - 50
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil)
    y = ic.max_pool(x, kernel, **kw)
    g = rng.integers(-5, 6, size=y.shape)
    assert np.sum(ic.max_pool_backward(g, x, kernel, **kw) * x) == np.sum(g * y)
    xf = x + rng.uniform(0, 0.5, size=x.shape)  # floats: an independent routing loop
    _, winners = loop_max_pool(xf, kernel, stride, padding, dilation, ceil)
    gf = rng.standard_normal(y.shape)
    np.testing.assert_allclose(
        ic.max_pool_backward(gf, xf, kernel, **kw),
        loop_max_pool_backward(gf, xf.shape, winners),
        rtol=1e-14,
        atol=1e-14,
    )


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "dilation", "ceil"), _geometry_args())
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_backward_matches_finite_differences_and_the_adjoint(
    size, kernel, stride, padding, dilation, ceil, count_include_pad
):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, *size))
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil, count_include_pad=count_include_pad)
    y = ic.avg_pool(x, kernel, **kw)
    g = rng.standard_normal(y.shape)
    grad = ic.avg_pool_backward(g, x.shape, kernel, **kw)
    assert np.isclose(np.sum(grad * x), np.sum(g * y), rtol=1e-13)
    step = 1e-6
    for flat in rng.choice(x.size, size=6, replace=False):
        e = np.zeros(x.size)
        e[flat] = step
        e = e.reshape(x.shape)
        change = np.sum(g * (ic.avg_pool(x + e, kernel, **kw) - ic.avg_pool(x - e, kernel, **kw))) / (
            2 * step
        )
        assert np.isclose(change, grad.flat[flat], rtol=1e-6, atol=1e-9)


def test_nan_wins_and_the_last_nan_is_the_index():
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 2.0, 5.0]]])
    values, indices = ic.max_pool(x, 3, stride=3, return_indices=True)
    assert np.isnan(values[0, 0, 0]) and indices[0, 0, 0] == 1
    assert np.isnan(values[0, 0, 1]) and indices[0, 0, 1] == 3
    grad = ic.max_pool_backward(np.ones((1, 1, 2)), x, 3, stride=3)
    np.testing.assert_array_equal(grad, [[[0, 1, 0, 1, 0, 0]]])
    two_nans = np.array([[[np.nan, 0.0, np.nan]]])
    assert ic.max_pool(two_nans, 3, return_indices=True)[1][0, 0, 0] == 2


def test_ties_go_to_the_first_maximum_in_window_order():
    x = np.array([[[[1, 7], [7, 7]]]], dtype=np.int16)
    values, indices = ic.max_pool(x, (2, 2), return_indices=True)
    assert values.dtype == np.int16 and values[0, 0, 0, 0] == 7 and indices[0, 0, 0, 0] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8, np.int64])
def test_padding_never_wins(dtype):
    low = -np.inf if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min
    x = np.full((1, 1, 4), low, dtype)
    values, indices = ic.max_pool(x, 3, stride=2, padding=1, return_indices=True)
    assert values.dtype == dtype
    np.testing.assert_array_equal(values, [[[low, low]]])
    np.testing.assert_array_equal(indices, [[[0, 1]]])  # the first input position of each window
    grad = ic.max_pool_backward(np.ones((1, 1, 2)), x, 3, stride=2, padding=1)
    np.testing.assert_array_equal(grad, [[[1, 1, 0, 0]]])


def test_a_window_of_padding_only_is_minus_infinity_with_index_minus_one():
    x = np.array([[[5.0]]])  # kernel 2, dilation 2, padding 1: the window reads positions -1 and 1
    values, indices = ic.max_pool(x, 2, padding=1, dilation=2, return_indices=True)
    assert values[0, 0, 0] == -np.inf and indices[0, 0, 0] == -1
    np.testing.assert_array_equal(
        ic.max_pool_backward(np.ones((1, 1, 1)), x, 2, padding=1, dilation=2), [[[0.0]]]
    )
    np.testing.assert_array_equal(
        ic.max_pool_backward(np.ones((1, 1, 1)), x, 2, padding=1, dilation=2, indices=indices), [[[0.0]]]
    )


def test_infinite_gradients_reach_their_winner_only():
    x = np.array([[[1.0, 2.0, 3.0, 0.0]]])
    grad = ic.max_pool_backward(np.array([[[np.inf, np.nan]]]), x, 2)
    np.testing.assert_array_equal(grad, [[[0.0, np.inf, np.nan, 0.0]]])


def test_dtypes():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    assert ic.max_pool(x, 2).dtype == np.float32
    assert ic.avg_pool(x, 2).dtype == np.float32
    assert ic.avg_pool(x.astype(np.int32), 2).dtype == np.float64
    z = (x + 1j * x).astype(np.complex128)
    np.testing.assert_allclose(ic.avg_pool(z, 2), ic.avg_pool(x, 2) * (1 + 1j))
    g = np.ones((1, 2, 1, 2), np.float32)
    assert ic.max_pool_backward(g, x, 2).dtype == np.float32
    assert ic.avg_pool_backward(g, x.shape, 2).dtype == np.float32
    assert ic.avg_pool_backward(g.astype(int), x.shape, 2).dtype == np.float64


def test_unbatched_input_needs_a_sequence_kernel_and_matches_batched():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 5))
    y, i = ic.max_pool(x, (3, 2), stride=(2, 1), padding=(1, 0), return_indices=True)
    yb, ib = ic.max_pool(x[np.newaxis], (3, 2), stride=(2, 1), padding=(1, 0), return_indices=True)
    np.testing.assert_array_equal(y, yb[0])
    np.testing.assert_array_equal(i, ib[0])
    np.testing.assert_array_equal(
        ic.max_pool_backward(y, x, (3, 2), (2, 1), (1, 0)),
        ic.max_pool_backward(yb, x[None], (3, 2), (2, 1), (1, 0))[0],
    )
    a = ic.avg_pool(x, (3, 2), padding=(1, 0))
    np.testing.assert_array_equal(a, ic.avg_pool(x[None], (3, 2), padding=(1, 0))[0])
    np.testing.assert_array_equal(
        ic.avg_pool_backward(a, x.shape, (3, 2), padding=(1, 0)),
        ic.avg_pool_backward(a[None], (1, *x.shape), (3, 2), padding=(1, 0))[0],
    )
    assert ic.max_pool(x, 2).shape == (3, 6, 2)  # an int kernel takes (N, C, *spatial): here 1-D


def test_empty_batch():
    x = np.zeros((0, 3, 4, 4))
    assert ic.max_pool(x, 2).shape == (0, 3, 2, 2)
    assert ic.max_pool_backward(np.zeros((0, 3, 2, 2)), x, 2).shape == x.shape
    assert ic.avg_pool_backward(np.zeros((0, 3, 2, 2)), x.shape, 2).shape == x.shape


@pytest.fixture
def unbounded_cache():
    with tuning.override(cache_bytes=1 << 40, reserved_bytes=0):
        yield


@pytest.mark.usefixtures("unbounded_cache")
@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "dilation", "ceil"), _geometry_args())
def test_chunked_equals_unchunked_exactly(size, kernel, stride, padding, dilation, ceil):
    rng = np.random.default_rng(6)
    x = rng.integers(-5, 6, size=(5, 3, *size))
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil)
    big = 1 << 40
    values, indices = ic.max_pool(x, kernel, dilation=dilation, **kw, return_indices=True, workspace=big)
    g = rng.integers(-5, 6, size=values.shape)
    grad = ic.max_pool_backward(g, x, kernel, dilation=dilation, **kw, workspace=big)
    average = ic.avg_pool(x, kernel, **kw, workspace=big)
    # Multiples of 216 divide exactly by every divisor (products of up to three counts of at most 3).
    g_avg = 216 * rng.integers(-5, 6, size=average.shape)
    avg_grad = ic.avg_pool_backward(g_avg, x.shape, kernel, **kw, workspace=big)
    for space in (1, 200, 3000):  # one output row, a few rows, a few samples per tile
        v, i = ic.max_pool(x, kernel, dilation=dilation, **kw, return_indices=True, workspace=space)
        np.testing.assert_array_equal(v, values)
        np.testing.assert_array_equal(i, indices)
        np.testing.assert_array_equal(
            ic.max_pool(x, kernel, dilation=dilation, **kw, workspace=space), values
        )
        np.testing.assert_array_equal(
            ic.max_pool_backward(g, x, kernel, dilation=dilation, **kw, workspace=space), grad
        )
        np.testing.assert_array_equal(
            ic.max_pool_backward(g, x, kernel, dilation=dilation, **kw, indices=indices, workspace=space),
            grad,
        )
        np.testing.assert_array_equal(ic.avg_pool(x, kernel, **kw, workspace=space), average)
        np.testing.assert_array_equal(
            ic.avg_pool_backward(g_avg, x.shape, kernel, **kw, workspace=space), avg_grad
        )


def test_global_average_pooling_takes_the_window_loop_and_agrees():
    rng = np.random.default_rng(9)
    x = rng.integers(-9, 10, size=(3, 4, 7, 7))
    y = ic.avg_pool(x, 7)
    np.testing.assert_array_equal(y, x.sum(axis=(2, 3), keepdims=True) / 49)
    g = rng.integers(-9, 10, size=y.shape)
    np.testing.assert_array_equal(ic.avg_pool_backward(g, x.shape, 7), np.broadcast_to(g / 49, x.shape))
    np.testing.assert_array_equal(
        ic.avg_pool(x, 5, padding=2, count_include_pad=False, stride=5),
        loop_avg_pool(x, (5, 5), (5, 5), (2, 2), False, False),
    )


def _temporary_peak(fn):
    import tracemalloc

    from im2col_conv.workspace import release_scratch

    release_scratch()  # buffers kept from earlier calls would hide this call's own
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        release_scratch()  # what the thread keeps for the next call was a temporary of this one
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak - current, current - base


@pytest.mark.parametrize(
    "call", ["max_pool", "max_pool_indices", "max_pool_backward", "avg_pool", "avg_pool_backward"]
)
def test_workspace_bounds_temporary_memory(call):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((16, 8, 48, 48))
    limit = 1 << 19
    assert x.nbytes > 4 * limit
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, workspace=limit)
    g = rng.standard_normal(ic.max_pool(x, **kw).shape)
    calls = {
        "max_pool": lambda: ic.max_pool(x, **kw),
        "max_pool_indices": lambda: ic.max_pool(x, **kw, return_indices=True),
        "max_pool_backward": lambda: ic.max_pool_backward(g, x, **kw),
        "avg_pool": lambda: ic.avg_pool(x, **kw),
        "avg_pool_backward": lambda: ic.avg_pool_backward(g, x.shape, **kw),
    }
    temporary, _ = _temporary_peak(calls[call])
    assert temporary <= limit + 64 * 1024, (temporary, limit)


@pytest.mark.parametrize("call", ["max_pool_indices", "max_pool_backward", "avg_pool_backward"])
def test_workspace_bounds_a_single_large_sample(call):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 8, 128, 128))
    limit = 1 << 19
    assert x.nbytes >= 2 * limit  # one sample is over the limit: bands of output rows
    kw = dict(kernel_size=3, stride=2, padding=1, workspace=limit)
    g = rng.standard_normal(ic.max_pool(x, **kw).shape)
    calls = {
        "max_pool_indices": lambda: ic.max_pool(x, **kw, return_indices=True),
        "max_pool_backward": lambda: ic.max_pool_backward(g, x, **kw),
        "avg_pool_backward": lambda: ic.avg_pool_backward(g, x.shape, **kw),
    }
    temporary, _ = _temporary_peak(calls[call])
    assert temporary <= limit + 64 * 1024, (temporary, limit)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("workspace", [None, 1])
def test_global_average_pooling_by_one_product_per_row(dtype, layout, workspace):
    # Integer values: every sum below is exact in each dtype, whatever the order of the additions.
    rng = np.random.default_rng(13)
    base = rng.integers(-9, 10, size=(5, 6, 6, 10)).astype(dtype)
    if dtype is np.complex128:
        base = base + 1j * rng.integers(-9, 10, size=base.shape)
    x = base[:, ::2, :, ::2] if layout == "strided" else np.ascontiguousarray(base[:, :, :, :5])
    space = {} if workspace is None else {"workspace": workspace}
    y = ic.avg_pool(x, (6, 5), **space)
    want = loop_avg_pool(x, (6, 5), (6, 5), (0, 0), False, True)
    np.testing.assert_array_equal(y, want.astype(y.dtype))
    g = rng.integers(-9, 10, size=y.shape).astype(dtype)
    grad = ic.avg_pool_backward(g, x.shape, (6, 5), **space)
    np.testing.assert_array_equal(grad, np.broadcast_to(g / dtype(30), x.shape))
