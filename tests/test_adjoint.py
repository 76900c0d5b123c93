"""col2im is the exact adjoint of im2col; randomised geometries against the loop oracles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import loop_col2im, loop_conv, loop_im2col, loop_output_size, resolve_padding

from im2col_conv import col2im, conv, im2col

SWEEP = [
    # (input spatial, kernel, stride, padding, dilation)
    ((7,), (3,), s, p, dl)
    for s, p, dl in itertools.product([1, 2, 3], [0, 2, [(0, 3)], "same", "valid"], [1, 2])
] + [
    ((6, 7), (2, 3), s, p, dl)
    for s, p, dl in itertools.product([1, (2, 3), 3], [0, (1, 2), [(2, 0), (0, 1)], "same"], [1, (2, 1)])
] + [
    ((4, 5, 3), (2, 2, 1), s, p, dl)
    for s, p, dl in itertools.product([1, (2, 1, 3)], [0, [(1, 0), (0, 2), (1, 1)], "same"], [1, (1, 2, 3)])
]  # fmt: skip


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "dilation"), SWEEP)
def test_col2im_is_exact_adjoint_of_im2col(size, kernel, stride, padding, dilation):
    rng = np.random.default_rng(20)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    x = rng.integers(-50, 51, size=(2, 3, *size), dtype=np.int64)
    cols = im2col(x, kernel, **kw)
    c = rng.integers(-50, 51, size=cols.shape, dtype=np.int64)
    back = col2im(c, size, kernel, **kw)
    assert back.shape == x.shape
    assert back.dtype == np.int64
    assert np.sum(cols * c) == np.sum(x * back)
    pads = resolve_padding(padding, size, kernel, stride, dilation)
    np.testing.assert_array_equal(back, loop_col2im(c, size, kernel, stride, pads, dilation))
    # unbatched
    assert np.sum(im2col(x[0], kernel, **kw) * c[0]) == np.sum(x[0] * col2im(c[0], size, kernel, **kw))


@st.composite
def geometries(draw, max_dim=3, max_extra=4):
    """A random valid geometry: sizes small, strides that need not divide, asymmetric pads, dilation."""
    d = draw(st.integers(1, max_dim))
    size, kernel, stride, dilation, pairs = [], [], [], [], []
    for _ in range(d):
        k = draw(st.integers(1, 3))
        dl = draw(st.integers(1, 2))
        s = draw(st.integers(1, 3))
        before, after = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        extent = dl * (k - 1) + 1
        n = draw(st.integers(max(1, extent - before - after), extent + max_extra))
        size.append(n)
        kernel.append(k)
        stride.append(s)
        dilation.append(dl)
        pairs.append((before, after))
    form = draw(st.sampled_from(["pairs", "symmetric", "same", "int"]))
    if form == "pairs":
        padding = pairs
    elif form == "symmetric":
        padding = tuple(max(p) for p in pairs)
    elif form == "int":
        padding = max(max(p) for p in pairs)
    else:
        padding = "same"
    stride_arg = stride[0] if draw(st.booleans()) else tuple(stride)
    return tuple(size), tuple(kernel), stride_arg, padding, tuple(dilation)


@settings(max_examples=60, deadline=None)
@given(geom=geometries(), n=st.integers(0, 2), c=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_adjoint_randomised(geom, n, c, seed):
    size, kernel, stride, padding, dilation = geom
    rng = np.random.default_rng(seed)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    x = rng.integers(-50, 51, size=(n, c, *size), dtype=np.int64)
    cols = im2col(x, kernel, **kw)
    pads = resolve_padding(padding, size, kernel, stride, dilation)
    out = loop_output_size(size, kernel, stride, pads, dilation)
    assert cols.shape == (n, c * int(np.prod(kernel)), int(np.prod(out)))
    c_mat = rng.integers(-50, 51, size=cols.shape, dtype=np.int64)
    back = col2im(c_mat, size, kernel, **kw)
    assert back.shape == x.shape
    assert np.sum(cols * c_mat) == np.sum(x * back)
    np.testing.assert_array_equal(cols, loop_im2col(x, kernel, stride, pads, dilation))


@settings(max_examples=60, deadline=None)
@given(
    geom=geometries(max_extra=2),
    n=st.integers(0, 2),
    groups=st.integers(1, 2),
    c_in_per_group=st.integers(1, 2),
    c_out_per_group=st.integers(1, 2),
    use_bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv_randomised_matches_loop_oracle(
    geom, n, groups, c_in_per_group, c_out_per_group, use_bias, seed
):
    size, kernel, stride, padding, dilation = geom
    rng = np.random.default_rng(seed)
    c_in, c_out = groups * c_in_per_group, groups * c_out_per_group
    x = rng.integers(-20, 21, size=(n, c_in, *size), dtype=np.int64)
    w = rng.integers(-20, 21, size=(c_out, c_in_per_group, *kernel), dtype=np.int64)
    b = rng.integers(-20, 21, size=c_out, dtype=np.int64) if use_bias else None
    pads = resolve_padding(padding, size, kernel, stride, dilation)
    expected = loop_conv(x, w, b, stride, pads, dilation, groups)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert y.shape == expected.shape
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, expected)
