"""The document's direct method (im2col_conv.direct) against hand-checked numbers and a loop oracle.

The oracle below is written from the chain rule of formula (4) with explicit
loops and bounds checks; it shares no code with either formulation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from im2col_conv import conv, conv_backward, direct

# ---------------------------------------------------------------------------
# An independent oracle: formula (4) and its derivatives, as plain loops
# ---------------------------------------------------------------------------


def _oracle(x, w, b, gy, stride, pads, dil, groups):
    """Forward and gradients of a batched N-D convolution, by loops over positions and taps."""
    n = x.shape[0]
    c_out, per_group = w.shape[:2]
    size, kernel, d = x.shape[2:], w.shape[2:], x.ndim - 2
    out = tuple(
        (size[i] + pads[i][0] + pads[i][1] - dil[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(d)
    )
    y = np.zeros((n, c_out, *out), dtype=np.result_type(x, w))
    gx, gw = np.zeros_like(x), np.zeros_like(w)
    for o in range(c_out):
        first = (o // (c_out // groups)) * per_group
        for p in itertools.product(*map(range, out)):
            y[(slice(None), o, *p)] += 0 if b is None else b[o]
            for k in itertools.product(*map(range, kernel)):
                pos = tuple(p[i] * stride[i] + k[i] * dil[i] - pads[i][0] for i in range(d))
                if not all(0 <= pos[i] < size[i] for i in range(d)):
                    continue
                for ci in range(per_group):
                    y[(slice(None), o, *p)] += w[(o, ci, *k)] * x[(slice(None), first + ci, *pos)]
                    if gy is not None:
                        gx[(slice(None), first + ci, *pos)] += gy[(slice(None), o, *p)] * w[(o, ci, *k)]
                        gw[(o, ci, *k)] += np.sum(
                            gy[(slice(None), o, *p)] * x[(slice(None), first + ci, *pos)]
                        )
    gb = None if gy is None else gy.sum(axis=(0, *range(2, gy.ndim)))
    return y, gx, gw, gb


def _random_geometry(rng, ndim):
    size = tuple(int(v) for v in rng.integers(3, 7, ndim))
    kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
    stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
    dil = tuple(int(v) for v in rng.integers(1, 3, ndim))
    pads = tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (ndim, 2)))
    groups = int(rng.integers(1, 3))
    fits = all(dil[i] * (kernel[i] - 1) + 1 <= size[i] + sum(pads[i]) for i in range(ndim))
    return size, kernel, stride, pads, dil, groups, fits


CASES = [(ndim, seed) for ndim in (1, 2, 3) for seed in range(8)]


def _operands(ndim, seed, dtype):
    rng = np.random.default_rng(1000 * ndim + seed)
    while True:
        size, kernel, stride, pads, dil, groups, fits = _random_geometry(rng, ndim)
        if fits:
            break
    x = rng.integers(-4, 5, (2, 2 * groups, *size)).astype(dtype)
    w = rng.integers(-4, 5, (3 * groups, 2, *kernel)).astype(dtype)
    b = rng.integers(-4, 5, 3 * groups).astype(dtype)
    return x, w, b, (stride, pads, dil, groups), rng


# ---------------------------------------------------------------------------
# The document's worked example: 5x5 input, 3x3 kernel, stride 2, 2x2 output
# ---------------------------------------------------------------------------

Z = np.arange(25, dtype=np.int64).reshape(1, 1, 5, 5)
W = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.int64).reshape(1, 1, 3, 3)
DELTA = np.array([[1, -2], [3, 4]], dtype=np.int64).reshape(1, 1, 2, 2)


def test_document_example_dilate_pad_rotate_correlate_step_by_step():
    dilated = direct.dilate(DELTA[0, 0], 2)  # one zero row/column between entries
    np.testing.assert_array_equal(dilated, [[1, 0, -2], [0, 0, 0], [3, 0, 4]])
    padded = direct.pad(dilated, [(2, 2), (2, 2)])  # k - 1 = 2 zeros on each side
    assert padded.shape == (7, 7)
    expected_padded = np.zeros((7, 7), dtype=np.int64)
    expected_padded[2, 2], expected_padded[2, 4], expected_padded[4, 2], expected_padded[4, 4] = 1, -2, 3, 4
    np.testing.assert_array_equal(padded, expected_padded)
    rotated = direct.rot180(W)
    np.testing.assert_array_equal(rotated[0, 0], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    grad = direct.correlate(padded[np.newaxis, np.newaxis], rotated)
    # By hand: each delta[i, j] stamps the kernel at (2i, 2j) and overlaps add up; e.g.
    # entry (2, 2) = 1 * w[2, 2] + (-2) * w[2, 0] + 3 * w[0, 2] + 4 * w[0, 0] = -1 - 2 - 3 + 4 = -2.
    hand = [
        [1, 0, -3, 0, 2],
        [2, 0, -6, 0, 4],
        [4, 0, -2, 0, -2],
        [6, 0, 2, 0, -8],
        [3, 0, 1, 0, -4],
    ]
    np.testing.assert_array_equal(grad[0, 0], hand)
    np.testing.assert_array_equal(direct.conv_backward(DELTA, Z, W, stride=2).input[0, 0], hand)


def test_document_example_weight_and_bias_by_hand():
    grads = direct.conv_backward(DELTA, Z, W, stride=2)
    # z[r, c] = 5r + c, so dW[m, n] = (1 - 2 + 3 + 4) * (5m + n) + (-2*2 + 3*10 + 4*12) = 6(5m + n) + 74.
    hand = [[6 * (5 * m + n) + 74 for n in range(3)] for m in range(3)]
    np.testing.assert_array_equal(grads.weight[0, 0], hand)
    np.testing.assert_array_equal(grads.bias, [1 - 2 + 3 + 4])
    # Forward: a horizontal difference kernel on a ramp of slope 1 gives -8 everywhere, +3 bias.
    np.testing.assert_array_equal(direct.conv(Z, W, [3], stride=2), np.full((1, 1, 2, 2), -5))


# ---------------------------------------------------------------------------
# One test per formula of the document
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("ndim", "seed"), CASES)
def test_formula_4_forward_matches_loop_oracle(ndim, seed):
    x, w, b, (stride, pads, dil, groups), _ = _operands(ndim, seed, np.int64)
    expected = _oracle(x, w, b, None, stride, pads, dil, groups)[0]
    np.testing.assert_array_equal(direct.conv(x, w, b, stride, pads, dil, groups), expected)


@pytest.mark.parametrize(("ndim", "seed"), CASES)
def test_formula_5_weight_gradient_matches_loop_oracle(ndim, seed):
    x, w, _, (stride, pads, dil, groups), rng = _operands(ndim, seed, np.int64)
    gy = rng.integers(-4, 5, conv(x, w, None, stride, pads, dil, groups).shape)
    expected = _oracle(x, w, None, gy, stride, pads, dil, groups)[2]
    got = direct.conv_backward(gy, x, w, stride, pads, dil, groups).weight
    assert got.shape == w.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("ndim", "seed"), CASES[::4])
def test_formula_6_bias_gradient_is_the_summed_output_gradient(ndim, seed):
    x, w, _, (stride, pads, dil, groups), rng = _operands(ndim, seed, np.int64)
    gy = rng.integers(-4, 5, conv(x, w, None, stride, pads, dil, groups).shape)
    got = direct.conv_backward(gy, x, w, stride, pads, dil, groups).bias
    np.testing.assert_array_equal(got, [gy[:, o].sum() for o in range(gy.shape[1])])


@pytest.mark.parametrize(("ndim", "seed"), CASES)
def test_formula_8_input_gradient_matches_loop_oracle(ndim, seed):
    x, w, _, (stride, pads, dil, groups), rng = _operands(ndim, seed, np.int64)
    gy = rng.integers(-4, 5, conv(x, w, None, stride, pads, dil, groups).shape)
    expected = _oracle(x, w, None, gy, stride, pads, dil, groups)[1]
    np.testing.assert_array_equal(direct.conv_backward(gy, x, w, stride, pads, dil, groups).input, expected)


def test_formula_8_non_dividing_stride_leaves_unreached_rows_at_zero():
    # 6 inputs, kernel 3, stride 2: windows start at 0 and 2, so row 5 is read by none (r = 1).
    x = np.arange(6, dtype=np.int64).reshape(1, 1, 6)
    w = np.array([1, 10, 100], dtype=np.int64).reshape(1, 1, 3)
    gy = np.array([1, 2], dtype=np.int64).reshape(1, 1, 2)
    grads = direct.conv_backward(gy, x, w, stride=2)
    np.testing.assert_array_equal(grads.input[0, 0], [1, 10, 100 + 2, 20, 200, 0])
    np.testing.assert_array_equal(grads.weight[0, 0], [0 + 2 * 2, 1 + 2 * 3, 2 + 2 * 4])


# ---------------------------------------------------------------------------
# Both backward formulations on the same randomised geometries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("ndim", "seed"), CASES)
def test_both_formulations_agree_exactly_in_int64(ndim, seed):
    x, w, b, args, rng = _operands(ndim, seed, np.int64)
    y = conv(x, w, b, *args)
    np.testing.assert_array_equal(direct.conv(x, w, b, *args), y)
    gy = rng.integers(-9, 10, y.shape)
    for mine, theirs in zip(direct.conv_backward(gy, x, w, *args), conv_backward(gy, x, w, *args)):
        assert mine.dtype == theirs.dtype == np.int64
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(("ndim", "seed"), CASES)
def test_both_formulations_agree_tightly_in_float64(ndim, seed):
    x, w, b, args, rng = _operands(ndim, seed, np.float64)
    x, w = x + rng.standard_normal(x.shape), w + rng.standard_normal(w.shape)
    y = conv(x, w, b, *args)
    np.testing.assert_allclose(direct.conv(x, w, b, *args), y, rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    for mine, theirs in zip(direct.conv_backward(gy, x, w, *args), conv_backward(gy, x, w, *args)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32_and_unbatched_input_works():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6)).astype(np.float32)  # unbatched (C, H, W)
    w = rng.standard_normal((4, 2, 3, 2)).astype(np.float32)
    y = direct.conv(x, w, stride=(2, 1), padding="same")
    assert y.dtype == np.float32 and y.shape == conv(x, w, stride=(2, 1), padding="same").shape
    grads = direct.conv_backward(np.ones_like(y), x, w, stride=(2, 1), padding="same")
    assert grads.input.shape == x.shape and grads.weight.shape == w.shape
    assert {a.dtype for a in grads} == {np.dtype(np.float32)}
    reference = conv_backward(np.ones_like(y), x, w, stride=(2, 1), padding="same")
    for mine, theirs in zip(grads, reference):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f(np.ones((1, 2, 5)), np.ones((1, 2, 3)), groups=2),
        lambda f: f(np.ones((1, 2, 5)), np.ones((1, 2, 9))),
        lambda f: f(np.full((1, 2, 5), "a"), np.ones((1, 2, 3))),
        lambda f: f(np.ones((1, 2, 5)), np.ones((1, 2, 3)), stride=0),
        lambda f: f(np.ones((1, 2, 5)), np.ones((1, 2, 3)), padding="full"),
        lambda f: f(np.ones((1, 2, 5)), np.ones((1, 2, 3)), bias=np.ones(2)),
    ],
)
def test_forward_rejects_what_the_core_rejects_with_the_same_error(call):
    with pytest.raises((TypeError, ValueError)) as core_error:
        call(conv)
    with pytest.raises(type(core_error.value)) as direct_error:
        call(direct.conv)
    assert str(direct_error.value) == str(core_error.value)


def test_backward_rejects_a_wrongly_shaped_output_gradient_like_the_core():
    x, w, gy = np.ones((1, 1, 5)), np.ones((1, 1, 3)), np.ones((1, 1, 4))
    with pytest.raises(ValueError) as core_error:
        conv_backward(gy, x, w)
    with pytest.raises(ValueError) as direct_error:
        direct.conv_backward(gy, x, w)
    assert str(direct_error.value) == str(core_error.value)


# ---------------------------------------------------------------------------
# The named steps
# ---------------------------------------------------------------------------


def test_dilate_and_subsample_are_inverse_in_every_dimension():
    a = np.arange(24).reshape(2, 3, 4)
    d = direct.dilate(a, (2, 3))
    assert d.shape == (2, 5, 10)
    assert d.sum() == a.sum() and np.count_nonzero(d) == np.count_nonzero(a)
    np.testing.assert_array_equal(direct.subsample(d, (2, 3)), a)
    np.testing.assert_array_equal(direct.dilate(a, 1), a)


def test_pad_and_crop_are_inverse_and_rot180_is_an_involution():
    a = np.arange(12).reshape(1, 3, 4)
    p = direct.pad(a, [(1, 2), (0, 3)])
    assert p.shape == (1, 6, 7) and p.sum() == a.sum()
    np.testing.assert_array_equal(direct.crop(p, [(1, 2), (0, 3)]), a)
    w = np.arange(2 * 3 * 2 * 3 * 2).reshape(2, 3, 2, 3, 2)
    np.testing.assert_array_equal(direct.rot180(direct.rot180(w)), w)
    assert direct.rot180(w)[1, 2, 0, 0, 0] == w[1, 2, 1, 2, 1]


def test_correlate_is_exact_on_large_integers():
    # Entries near 2**40 would lose low bits in an FFT; a loop over taps keeps them.
    rng = np.random.default_rng(3)
    a = rng.integers(2**40, 2**40 + 1000, (1, 1, 9))
    k = rng.integers(-3, 4, (1, 1, 4))
    expected = [sum(int(k[0, 0, t]) * int(a[0, 0, p + t]) for t in range(4)) for p in range(6)]
    assert direct.correlate(a, k)[0, 0].tolist() == expected
