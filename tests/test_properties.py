"""Properties of every public entry point: purity, dtypes, memory layouts, NaN/inf, empty batches."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from oracles import (
    loop_col2im,
    loop_conv,
    loop_conv_grads,
    loop_conv_transpose,
    loop_im2col,
    loop_output_size,
)

from im2col_conv import (
    ConvGeometry,
    col2im,
    conv,
    conv_backward,
    conv_forward,
    conv_transpose,
    im2col,
    output_size,
)

KW = dict(stride=(2, 1), padding=[(1, 0), (0, 2)], dilation=(1, 2), groups=2)
KW_NO_GROUPS = {k: v for k, v in KW.items() if k != "groups"}
PADS = [(1, 0), (0, 2)]


def _operands(dtype=np.float64, seed=30):
    """x (2, 4, 6, 5), w (6, 2, 3, 2), b (6,), gy shaped like conv(x, w, **KW), cols of im2col(x)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-9, 10, size=(2, 4, 6, 5)).astype(dtype)
    w = rng.integers(-9, 10, size=(6, 2, 3, 2)).astype(dtype)
    b = rng.integers(-9, 10, size=6).astype(dtype)
    out = loop_output_size((6, 5), (3, 2), (2, 1), PADS, (1, 2))
    gy = rng.integers(-9, 10, size=(2, 6, *out)).astype(dtype)
    cols = rng.integers(-9, 10, size=(2, 4 * 6, int(np.prod(out)))).astype(dtype)
    wt = rng.integers(-9, 10, size=(4, 3, 3, 2)).astype(dtype)  # transposed-conv weight, 4 -> 6 channels
    return x, w, b, gy, cols, wt


def _every_call(x, w, b, gy, cols, wt):
    """Call every public function once; return the results (tuples flattened)."""
    y, columns = conv_forward(x, w, b, **KW)
    results = [
        conv(x, w, b, **KW),
        y,
        *conv_backward(gy, x, w, **KW),
        *conv_backward(gy, x, w, **KW, columns=columns),
        conv_transpose(x, wt, b, stride=2, padding=(1, 0), output_padding=1, dilation=1, groups=2),
        im2col(x, (3, 2), **KW_NO_GROUPS),
        col2im(cols, (6, 5), (3, 2), **KW_NO_GROUPS),
    ]
    return results


# --- purity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int64, np.float64, np.float32, np.complex128])
def test_inputs_never_modified(dtype):
    operands = _operands(dtype)
    copies = [a.copy() for a in operands]
    _every_call(*operands)
    for a, c in zip(operands, copies):
        np.testing.assert_array_equal(a, c)


def test_read_only_inputs_are_accepted_and_untouched():
    operands = _operands()
    copies = [a.copy() for a in operands]
    for a in operands:
        a.flags.writeable = False
    results = _every_call(*operands)
    for a, c in zip(operands, copies):
        np.testing.assert_array_equal(a, c)
    # the results are fresh, writeable arrays
    for r in results:
        assert r.flags.writeable
        for a in operands:
            assert not np.shares_memory(r, a)


@pytest.mark.parametrize(
    ("shape", "kernel", "kw"),
    [
        ((1, 2, 3, 4), (1, 1), {}),  # 1x1 kernel: every "window" is a single pixel
        ((1, 2, 3, 4), (3, 4), {}),  # the kernel covers the whole input: one window
        ((2, 1, 5), (1,), {"stride": 1}),
        ((2, 3, 4, 4), (2, 2), {"stride": 2}),  # non-overlapping windows
        ((2, 3, 5, 4), (2, 3), {"padding": 1}),
    ],
)
def test_im2col_returns_a_new_writeable_contiguous_array(shape, kernel, kw):
    """Documented: 'A new C-contiguous array of x's dtype' -- never a view of the input."""
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    x_copy = x.copy()
    cols = im2col(x, kernel, **kw)
    assert cols.flags.c_contiguous
    assert cols.flags.writeable
    assert not np.shares_memory(cols, x)
    cols[...] = -1
    np.testing.assert_array_equal(x, x_copy)


@pytest.mark.parametrize("kernel", [(1, 1), (3, 4)])
def test_conv_results_do_not_alias_input(kernel):
    x = np.arange(24, dtype=np.float64).reshape(1, 2, 3, 4)
    w = np.ones((2, 2, *kernel))
    y, _ = conv_forward(x, w)
    grads = conv_backward(np.ones_like(y), x, w)
    for r in (y, *grads):
        assert r.flags.writeable
        assert not np.shares_memory(r, x)
        assert not np.shares_memory(r, w)


# --- dtypes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.float16, np.float64])
def test_float_dtype_is_preserved_by_every_function(dtype):
    results = _every_call(*_operands(dtype))
    for r in results:
        assert r.dtype == dtype


# Written from the documented rule (sums of integers accumulate in 64 bits, as np.sum's do),
# not from the library's code.
INTEGER_RESULT = {
    np.int8: np.int64,
    np.int16: np.int64,
    np.int32: np.int64,
    np.int64: np.int64,
    np.uint8: np.uint64,
    np.uint16: np.uint64,
    np.uint32: np.uint64,
    np.uint64: np.uint64,
}


@pytest.mark.parametrize("dtype", list(INTEGER_RESULT))
def test_integer_sums_accumulate_in_64_bits(dtype):
    results = _every_call(*(np.abs(a).astype(dtype) for a in _operands(np.int64)))
    im2col_result = results[-2]
    assert im2col_result.dtype == dtype  # a copy, not a sum: it keeps its dtype
    for r in results[:-2] + results[-1:]:
        assert r.dtype == INTEGER_RESULT[dtype], r.dtype


def test_float32_results_agree_with_float64():
    r32 = _every_call(*_operands(np.float32))
    r64 = _every_call(*_operands(np.float64))
    for a, b in zip(r32, r64):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)


def _documented_result(dtypes):
    dtypes = [np.dtype(d) for d in dtypes if d is not None]
    if all(d.kind in "iu" for d in dtypes):
        return np.dtype(np.uint64 if all(d.kind == "u" for d in dtypes) else np.int64)
    return np.result_type(*dtypes)


@pytest.mark.parametrize(
    ("x_dtype", "w_dtype", "b_dtype"),
    [
        (np.float32, np.float64, None),
        (np.float64, np.float32, None),
        (np.float32, np.float32, np.float64),
        (np.int32, np.int64, None),
        (np.int64, np.int32, np.int32),
        (np.int32, np.float32, None),
        (np.float32, np.complex64, None),
        (np.int8, np.int16, np.int8),
        (np.uint8, np.int8, None),
        (np.uint64, np.int64, None),
        (np.uint8, np.uint32, np.uint16),
        (np.float16, np.float16, None),
    ],
)
def test_mixed_dtypes_follow_the_documented_rule(x_dtype, w_dtype, b_dtype):
    x, w, b, gy, _, wt = _operands()
    x, w, wt = np.abs(x).astype(x_dtype), np.abs(w).astype(w_dtype), np.abs(wt).astype(w_dtype)
    b = None if b_dtype is None else np.abs(b).astype(b_dtype)
    expected = _documented_result([x_dtype, w_dtype, b_dtype])
    y = conv(x, w, b, **KW)
    assert y.dtype == expected
    np.testing.assert_array_equal(y, loop_conv(x, w, b, KW["stride"], PADS, KW["dilation"], KW["groups"]))
    assert conv_forward(x, w, b, **KW)[0].dtype == expected
    yt = conv_transpose(x, wt, b, stride=2, groups=2)
    assert yt.dtype == expected
    gy = np.abs(gy).astype(x_dtype)
    grads = conv_backward(gy, x, w, **KW)
    for g in grads:
        assert g.dtype == _documented_result([x_dtype, w_dtype])


def test_conv_backward_dtype_includes_grad_output():
    x, w, _, gy, _, _ = _operands(np.float32)
    grads = conv_backward(gy.astype(np.float64), x, w, **KW)
    assert all(g.dtype == np.float64 for g in grads)


def test_im2col_keeps_its_dtype_and_col2im_sums_integers_in_64_bits():
    x, _, _, _, cols, _ = _operands()
    for dt in (np.int8, np.uint16, np.int32, np.float32, np.complex64, np.bool_):
        assert im2col(x.astype(dt), (3, 2), **KW_NO_GROUPS).dtype == dt
    for dt, summed in (
        (np.int8, np.int64),
        (np.uint16, np.uint64),
        (np.bool_, np.int64),
        (np.float32, np.float32),
    ):
        assert col2im(cols.astype(dt), (6, 5), (3, 2), **KW_NO_GROUPS).dtype == summed


# --- memory layouts -------------------------------------------------------------------------------


def _layouts(a):
    """The same values as ``a`` in several memory layouts."""
    fortran = np.asfortranarray(a)
    swapped = np.ascontiguousarray(np.swapaxes(a, 0, -1)).swapaxes(0, -1)
    strided = np.repeat(a, 2, axis=-1)[..., ::2]
    reversed_twice = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    return {"fortran": fortran, "swapaxes": swapped, "strided": strided, "negative": reversed_twice}


@pytest.mark.parametrize("layout", ["fortran", "swapaxes", "strided", "negative"])
def test_non_contiguous_inputs_give_same_results(layout):
    x, w, b, gy, cols, wt = _operands(np.int64)
    reference = _every_call(x, w, b, gy, cols, wt)
    views = [_layouts(a)[layout] for a in (x, w, b, gy, cols, wt)]
    for v, a in zip(views, (x, w, b, gy, cols, wt)):
        np.testing.assert_array_equal(v, a)
    if layout != "fortran":
        assert not views[0].flags.c_contiguous
    got = _every_call(*views)
    for r, e in zip(got, reference):
        np.testing.assert_array_equal(r, e)


def test_flipped_inputs_match_oracle_on_same_data():
    rng = np.random.default_rng(31)
    base = rng.integers(-9, 10, size=(2, 4, 6, 5), dtype=np.int64)
    x = base[..., ::-1]  # negative stride view
    xr = base[:, ::-1, ::-1]
    w = rng.integers(-9, 10, size=(6, 2, 3, 2), dtype=np.int64)[::-1, :, ::-1]
    b = rng.integers(-9, 10, size=12, dtype=np.int64)[::-2]
    xc, wc, bc = np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(b)
    stride, dilation, groups = KW["stride"], KW["dilation"], KW["groups"]
    for xx, xxc in ((x, xc), (xr, np.ascontiguousarray(xr))):
        expected = loop_conv(xxc, wc, bc, stride, PADS, dilation, groups)
        np.testing.assert_array_equal(conv(xx, w, b, **KW), expected)
        gy = rng.integers(-9, 10, size=expected.shape, dtype=np.int64)[..., ::-1]
        for got, want in zip(
            conv_backward(gy, xx, w, **KW),
            loop_conv_grads(np.ascontiguousarray(gy), xxc, wc, stride, PADS, dilation, groups),
        ):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(
            im2col(xx, (3, 2), **KW_NO_GROUPS), loop_im2col(xxc, (3, 2), stride, PADS, dilation)
        )
    cols = rng.integers(-9, 10, size=(2, 24, 15), dtype=np.int64)[:, :, ::-1]
    np.testing.assert_array_equal(
        col2im(cols, (6, 5), (3, 2), **KW_NO_GROUPS),
        loop_col2im(np.ascontiguousarray(cols), (6, 5), (3, 2), stride, PADS, dilation),
    )
    wt = rng.integers(-9, 10, size=(4, 3, 3, 2), dtype=np.int64)[:, ::-1, ::-1]
    np.testing.assert_array_equal(
        conv_transpose(x, wt, b, stride=2, padding=(1, 0), output_padding=1, groups=2),
        loop_conv_transpose(xc, np.ascontiguousarray(wt), bc, 2, [(1, 1), (0, 0)], 1, 1, 2),
    )


def test_list_inputs_are_accepted():
    x = [[[1, 2, 3, 4]]]
    w = [[[1, -1]]]
    np.testing.assert_array_equal(conv(x, w), [[[-1, -1, -1]]])
    np.testing.assert_array_equal(im2col(x, (2,)), [[[1, 2, 3], [2, 3, 4]]])


# --- NaN and inf ----------------------------------------------------------------------------------


def test_nan_and_inf_propagate_through_conv():
    x = np.zeros((1, 1, 9))
    x[0, 0, 2] = np.nan
    x[0, 0, 7] = np.inf
    w = np.ones((1, 1, 3))
    y = conv(x, w)  # output positions p read x[p .. p+2]
    nan_at = [0, 1, 2]
    inf_at = [5, 6]
    assert np.isnan(y[0, 0, nan_at]).all()
    assert np.isposinf(y[0, 0, inf_at]).all()
    assert (y[0, 0, [3, 4]] == 0).all()
    y = conv(x, w, stride=3, padding=1)  # positions read x[3p-1 .. 3p+1]
    np.testing.assert_array_equal(np.isnan(y[0, 0]), [False, True, False])
    np.testing.assert_array_equal(np.isposinf(y[0, 0]), [False, False, True])


def test_nan_propagates_through_backward_im2col_col2im_and_transpose():
    x = np.ones((1, 1, 5, 5))
    w = np.ones((1, 1, 3, 3))
    gy = np.zeros((1, 1, 2, 2))
    gy[0, 0, 1, 1] = np.nan  # window of rows 2..4, columns 2..4 (stride 2)
    grads = conv_backward(gy, x, w, stride=2)
    expected_nan = np.zeros((5, 5), dtype=bool)
    expected_nan[2:5, 2:5] = True
    np.testing.assert_array_equal(np.isnan(grads.input[0, 0]), expected_nan)
    assert np.isnan(grads.weight).all()
    assert np.isnan(grads.bias).all()
    np.testing.assert_array_equal(np.isnan(conv_transpose(gy, w, stride=2)[0, 0]), expected_nan)

    xn = np.arange(25.0).reshape(1, 1, 5, 5)
    xn[0, 0, 1, 1] = np.nan
    cols = im2col(xn, (2, 2), padding=1)
    np.testing.assert_array_equal(cols, loop_im2col(xn, (2, 2), 1, [(1, 1), (1, 1)], 1))
    assert np.isnan(cols).sum() == 4
    back = col2im(cols, (5, 5), (2, 2), padding=1)
    np.testing.assert_array_equal(np.isnan(back[0, 0]), np.isnan(xn[0, 0]))


# --- empty batches and unbatched inputs -----------------------------------------------------------


def test_empty_batch_conv():
    x = np.zeros((0, 4, 6, 5))
    w = np.ones((6, 2, 3, 2))
    y = conv(x, w, np.ones(6), **KW)
    assert y.shape == (0, 6, *loop_output_size((6, 5), (3, 2), (2, 1), PADS, (1, 2)))
    assert y.dtype == np.float64


def test_empty_batch_conv_forward():
    x = np.zeros((0, 4, 6, 5))
    y, _ = conv_forward(x, np.ones((6, 2, 3, 2)), **KW)
    assert y.shape == (0, 6, *loop_output_size((6, 5), (3, 2), (2, 1), PADS, (1, 2)))


def test_empty_batch_conv_backward():
    x = np.zeros((0, 4, 6, 5))
    w = np.ones((6, 2, 3, 2))
    out = loop_output_size((6, 5), (3, 2), (2, 1), PADS, (1, 2))
    grads = conv_backward(np.zeros((0, 6, *out)), x, w, **KW)
    assert grads.input.shape == x.shape
    np.testing.assert_array_equal(grads.weight, np.zeros_like(w))
    np.testing.assert_array_equal(grads.bias, np.zeros(6))


def test_empty_batch_im2col_col2im():
    x = np.zeros((0, 4, 6, 5), dtype=np.int64)
    out = loop_output_size((6, 5), (3, 2), (2, 1), PADS, (1, 2))
    cols = im2col(x, (3, 2), **KW_NO_GROUPS)
    assert cols.shape == (0, 4 * 6, int(np.prod(out)))
    back = col2im(cols, (6, 5), (3, 2), **KW_NO_GROUPS)
    assert back.shape == x.shape
    assert back.dtype == np.int64


def test_empty_batch_conv_transpose():
    x = np.zeros((0, 4, 3, 2))
    y = conv_transpose(x, np.ones((4, 3, 3, 2)), stride=2, groups=2)
    assert y.shape == (0, 6, 7, 4)


def test_unbatched_equals_first_of_batched():
    x, w, b, gy, cols, wt = _operands(np.int64)
    batched = _every_call(x, w, b, gy, cols, wt)
    y, columns = conv_forward(x[0], w, b, **KW)
    single = [
        conv(x[0], w, b, **KW),
        y,
        *conv_backward(gy[0], x[0], w, **KW),
        *conv_backward(gy[0], x[0], w, **KW, columns=columns),
        conv_transpose(x[0], wt, b, stride=2, padding=(1, 0), output_padding=1, dilation=1, groups=2),
        im2col(x[0], (3, 2), **KW_NO_GROUPS),
        col2im(cols[0], (6, 5), (3, 2), **KW_NO_GROUPS),
    ]
    # weight and bias gradients of one sample are those of a batch of one
    one = [*conv_backward(gy[:1], x[:1], w, **KW)]
    for i, (s, full) in enumerate(zip(single, batched)):
        if i in (3, 4, 6, 7):  # weight / bias gradients
            np.testing.assert_array_equal(s, one[1 if i in (3, 6) else 2])
        else:
            np.testing.assert_array_equal(s, full[0])


# --- output_size and ConvGeometry -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (((5, 5), 3), {"stride": 2}, (2, 2)),
        ((7, 3), {"stride": 2, "padding": "same"}, (4,)),
        ((6, 4), {"padding": "same"}, (6,)),
        ((6, 4), {"padding": "valid"}, (3,)),
        (((10, 9), 4), {"stride": 3, "padding": "same"}, (4, 3)),
        (((10, 9), (4, 2)), {"stride": (3, 2), "padding": "same", "dilation": (2, 3)}, (4, 5)),
        ((10, 3), {"padding": [(2, 1)]}, (11,)),
        (((6, 7), (3, 2)), {"stride": (2, 3), "padding": (1, 0), "dilation": (1, 2)}, (3, 2)),
        (((6, 7), (3, 2)), {"stride": 2, "padding": [(0, 3), (2, 0)]}, (4, 4)),
        ((8, 3), {"stride": 3}, (2,)),
        (((3, 4, 5), 2), {}, (2, 3, 4)),
        ((4, (4,)), {}, (1,)),
    ],
)
def test_output_size_examples(args, kwargs, expected):
    result = output_size(*args, **kwargs)
    assert result == expected
    assert isinstance(result, tuple)
    assert all(type(v) is int for v in result)


def test_output_size_matches_formula_over_a_sweep():
    for n, k, s, p, dl in itertools.product(range(1, 9), range(1, 4), range(1, 4), range(3), range(1, 3)):
        if n + 2 * p < dl * (k - 1) + 1:
            continue
        assert output_size(n, k, s, p, dl) == ((n + 2 * p - dl * (k - 1) - 1) // s + 1,)
        assert output_size(n, k, s, "same", dl) == (-(-n // s),)


def test_conv_geometry_attributes():
    g = ConvGeometry.create((7, 8), (3, 4), stride=(2, 3), padding=[(1, 0), (2, 1)], dilation=(1, 2))
    assert g.input_size == (7, 8)
    assert g.kernel_size == (3, 4)
    assert g.stride == (2, 3)
    assert g.padding == ((1, 0), (2, 1))
    assert g.dilation == (1, 2)
    assert g.ndim == 2
    assert g.kernel_extent == (3, 7)
    assert g.padded_size == (8, 11)
    assert g.output_size == (3, 2)
    assert g.leftover == (1, 1)
    assert g.kernel_volume == 12
    assert g.output_volume == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.stride = (1, 1)


def test_conv_geometry_expands_ints_and_resolves_same():
    g = ConvGeometry.create((5, 5), 3, stride=2)
    assert (g.kernel_size, g.stride, g.dilation, g.padding) == ((3, 3), (2, 2), (1, 1), ((0, 0), (0, 0)))
    assert g.output_size == (2, 2)
    assert g.leftover == (0, 0)
    g = ConvGeometry.create(8, 4, stride=3, padding="same", dilation=2)
    # out = ceil(8/3) = 3; total = 2*3 + 2*3 + 1 - 8 = 5 -> (2, 3), odd element after
    assert g.padding == ((2, 3),)
    assert g.output_size == (3,)
    g = ConvGeometry.create((4, 6), (2, 2), padding=(1, 2))
    assert g.padding == ((1, 1), (2, 2))
    assert g == ConvGeometry.create((4, 6), (2, 2), padding=[(1, 1), (2, 2)])


@pytest.mark.parametrize("layout", ["contiguous", "fortran", "swapaxes", "strided", "negative"])
@pytest.mark.parametrize(("x_dtype", "w_dtype"), [(np.int64, np.int64), (np.int32, np.float64)])
def test_pointwise_conv_in_every_layout(layout, x_dtype, w_dtype):
    """1x1 kernel, stride 1, no padding: im2col is the identity, the easiest place to alias or skip a cast."""
    rng = np.random.default_rng(32)
    x = rng.integers(-9, 10, size=(2, 4, 3, 5)).astype(x_dtype)
    w = rng.integers(-9, 10, size=(6, 2, 1, 1)).astype(w_dtype)
    gy = rng.integers(-9, 10, size=(2, 6, 3, 5)).astype(w_dtype)
    expected = loop_conv(x, w, None, 1, [(0, 0)] * 2, 1, 2)
    expected_grads = loop_conv_grads(gy, x, w, 1, [(0, 0)] * 2, 1, 2)
    xv = x if layout == "contiguous" else _layouts(x)[layout]
    x_copy = xv.copy()
    xv.flags.writeable = False
    y, columns = conv_forward(xv, w, groups=2)
    assert y.dtype == np.result_type(x, w)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(conv(xv, w, groups=2), expected)
    for got, want in zip(conv_backward(gy, xv, w, groups=2, columns=columns), expected_grads):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    for got, want in zip(conv_backward(gy, xv, w, groups=2), expected_grads):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(im2col(xv, (1, 1)), x.reshape(2, 4, 15))
    np.testing.assert_array_equal(xv, x_copy)
    assert y.flags.writeable
    assert not np.shares_memory(y, xv)
