"""Regression tests for engine bugs that once survived both the proof and the other tests.

Each test runs the engine on a path that only a particular tiling or dtype
reaches and compares with the untiled int64 result, which the proof covers.
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_conv as ic

# Workspaces just above the 128 KiB reserve: tiles of a few samples or a few
# output rows, of uneven sizes, so that consecutive tiles have different
# shapes but the same padding.
_SMALL_WORKSPACES = [1, *((128 << 10) + step for step in (64, 200, 512, 1000, 1500, 2048, 3000, 4096, 9000))]


def _data(rng, x_shape, w_shape, dtype=np.float64):
    x = rng.integers(-4, 5, size=x_shape).astype(dtype)
    w = rng.integers(-4, 5, size=w_shape).astype(dtype)
    return x, w


@pytest.mark.parametrize("workspace", _SMALL_WORKSPACES)
def test_scratch_buffers_are_rezeroed_when_the_tile_shape_changes(workspace):
    # Padding on the second axis puts the padded scratch buffer to use. Twelve
    # output rows cut into bands of uneven heights (e.g. 3, 3, 2, 2): two
    # interior bands with the same padding but different shapes, so a buffer
    # zeroed for the first has stale values in the border of the second. Five
    # samples cut into uneven chunks do the same for whole-sample tiles.
    rng = np.random.default_rng(0)
    for x_shape in ((5, 2, 7, 4), (2, 3, 12, 4)):
        x, w = _data(rng, x_shape, (3, x_shape[1], 3, 2))
        keywords = {"stride": (1, 2), "padding": ((1, 1), (2, 1))}
        _compare_tilings(rng, x, w, keywords, workspace)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("workspace", [(128 << 10) + step for step in (128, 256, 384, 512, 768)])
def test_scratch_buffers_of_bands_with_the_same_padding_but_new_shapes(dtype, workspace):
    # 1-D, a 1-wide kernel and two rows of after-padding: the row bands change
    # height while their padding stays the same (the case the proof found).
    rng = np.random.default_rng(3)
    x, w = _data(rng, (3, 2, 5), (4, 1, 1), dtype)
    _compare_tilings(rng, x, w, {"padding": ((0, 2),), "groups": 2}, workspace)


def _compare_tilings(rng, x, w, keywords, workspace):
    y = ic.conv(x, w, **keywords)
    gy = rng.integers(-4, 5, size=y.shape).astype(x.dtype)
    expected = ic.conv_backward(gy, x, w, **keywords)
    np.testing.assert_array_equal(ic.conv(x, w, **keywords, workspace=workspace), y)
    grads = ic.conv_backward(gy, x, w, **keywords, workspace=workspace)
    for got, want in zip(grads, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "size, kernel, stride, after", [(2, 1, 1, 3), (3, 2, 1, 4), (2, 2, 2, 5), (4, 3, 1, 6)]
)
@pytest.mark.parametrize("workspace", [1, (128 << 10) + 512])
def test_a_row_band_inside_the_after_padding(size, kernel, stride, after, workspace):
    # The last output rows read nothing but padding: their band has no input rows.
    rng = np.random.default_rng(1)
    x, w = _data(rng, (2, 2, size, 3), (2, 2, kernel, 2))
    keywords = {"stride": (stride, 1), "padding": ((0, after), (1, 0))}
    y = ic.conv(x, w, **keywords)
    gy = rng.integers(-4, 5, size=y.shape).astype(np.float64)
    np.testing.assert_array_equal(ic.conv(x, w, **keywords, workspace=workspace), y)
    expected = ic.conv_backward(gy, x, w, **keywords)
    for got, want in zip(ic.conv_backward(gy, x, w, **keywords, workspace=workspace), expected):
        np.testing.assert_array_equal(got, want)
    _, columns = ic.conv_forward(x, w, **keywords)
    kept = ic.conv_backward(gy, x, w, **keywords, columns=columns, workspace=workspace)
    np.testing.assert_array_equal(kept.weight, expected.weight)


@pytest.mark.parametrize("workspace", [None, 1])
def test_complex_gradient_convention_is_conjugate_wirtinger(workspace):
    """The documented convention: complex gradients are PyTorch's (conjugate Wirtinger).

    ``grad_weight[o, i, k] = sum_n,p grad_output[n, o, p] * conj(x[n, i, p + k])`` and
    ``grad_input = col2im(conj(weight)^T @ grad_output)``; the bias gradient is
    not conjugated. Edit this one test if the convention changes.
    """
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 4, (2, 2, 6)) + 1j * rng.integers(-3, 4, (2, 2, 6))
    w = rng.integers(-3, 4, (2, 2, 3)) + 1j * rng.integers(-3, 4, (2, 2, 3))
    gy = rng.integers(-3, 4, (2, 2, 4)) + 1j * rng.integers(-3, 4, (2, 2, 4))
    space = {} if workspace is None else {"workspace": workspace}
    grads = ic.conv_backward(gy, x, w, **space)
    windows = np.stack([np.conj(x[..., k : k + 4]) for k in range(3)], axis=-1)
    expected_weight = np.einsum("nop,nipk->oik", gy, windows)
    expected_input = np.zeros_like(x)
    for k in range(3):
        expected_input[..., k : k + 4] += np.einsum("oi,nop->nip", np.conj(w[..., k]), gy)
    np.testing.assert_array_equal(grads.weight, expected_weight)
    np.testing.assert_array_equal(grads.input, expected_input)
    np.testing.assert_array_equal(grads.bias, gy.sum(axis=(0, 2)))
