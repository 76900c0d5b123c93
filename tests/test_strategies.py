"""The strategies the engine picks by layer shape compute exactly what the loops do.

- col2im on the wide grid (`_wide`): rows shorter than `WIDE_MAX_WINDOWS`
  windows, enough column entries per output-gradient entry and few output
  channels add whole rows into the input's phases; a non-finite weight takes
  the plain col2im.
- Phase-split col2im: `PHASE_SPLIT_MIN_WINDOWS` windows or more along a
  strided last axis send the backward's col2im through
  `_polyphase.scatter_by_phase`.
- One product per sample: a forward tile whose product for one sample takes
  at most `PER_SAMPLE_MAX_PRODUCT` multiply-adds per group writes each
  sample's product straight into the output.

Integer operands make every sum exact, so results must equal the plain-loop
oracle's bit for bit, whole samples or bands of rows, with or without
padding and dilation, and for the transposed convolution built on the same
col2im. (The shifted strategy has its own file, ``test_shifted.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest
from oracles import loop_conv, loop_conv_grads, loop_conv_transpose, resolve_padding

import im2col_conv as ic
from im2col_conv import _engine, _strategy

CASES = [
    # (spatial, kernel, stride, padding, dilation, groups)
    ((70,), (3,), 2, 1, 1, 1),
    ((4, 67), (2, 3), (1, 2), ((1, 0), (2, 1)), 1, 2),
    ((3, 100), (1, 4), (2, 3), 0, (1, 2), 1),
    ((2, 2, 71), (1, 2, 5), 2, 2, 1, 1),
]


@pytest.fixture
def split_calls(monkeypatch):
    """Counts the col2im calls that go through the phases (the plain col2im's strategy)."""
    monkeypatch.setattr(_strategy, "WIDE_MAX_WINDOWS", 0)
    calls = []
    real = _engine.scatter_by_phase

    def counted(*args, **kwargs):
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(_engine, "scatter_by_phase", counted)
    return calls


def _windows(spatial, kernel, stride, padding, dilation):
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    s = np.broadcast_to(stride, len(spatial))[-1]
    d = np.broadcast_to(dilation, len(spatial))[-1]
    return (spatial[-1] + sum(pads[-1]) - d * (kernel[-1] - 1) - 1) // s + 1


def _gradients_equal_the_loops(case, workspace, seed):
    """``conv_backward`` on random integers equals the loops; returns ``gy, w, keywords, space``."""
    spatial, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, size=(3, 2 * groups, *spatial))
    w = rng.integers(-4, 5, size=(2 * groups, 2, *kernel))
    keywords = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    gy = rng.integers(-4, 5, size=ic.conv(x, w, **keywords).shape)
    space = {} if workspace is None else {"workspace": workspace}
    grad_x, grad_w, _ = ic.conv_backward(gy, x, w, **keywords, **space)
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    want_x, want_w = loop_conv_grads(gy, x, w, stride, pads, dilation, groups)[:2]
    assert np.array_equal(grad_x, want_x)
    assert np.array_equal(grad_w, want_w)
    return gy, w, keywords, space


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("workspace", [None, 1])
def test_phase_split_gradients_equal_the_loops(case, workspace, split_calls):
    spatial, kernel, stride, padding, dilation, _ = case
    assert _windows(spatial, kernel, stride, padding, dilation) >= _strategy.PHASE_SPLIT_MIN_WINDOWS
    _gradients_equal_the_loops(case, workspace, seed=len(spatial) * 100 + spatial[-1])
    assert split_calls, "the phase-split col2im was not taken"


def test_phase_split_and_plain_col2im_agree_in_floats(monkeypatch):
    # Integer-valued floats: the BLAS products are exact too, so the two orders of addition agree.
    rng = np.random.default_rng(5)
    x = rng.integers(-4, 5, size=(2, 3, 5, 80)).astype(np.float64)
    w = rng.integers(-4, 5, size=(4, 3, 3, 3)).astype(np.float64)
    gy = rng.integers(-4, 5, size=ic.conv(x, w, stride=2, padding=1).shape).astype(np.float64)
    monkeypatch.setattr(_strategy, "WIDE_MAX_WINDOWS", 0)
    split = ic.conv_backward(gy, x, w, stride=2, padding=1)
    monkeypatch.setattr(_strategy, "PHASE_SPLIT_MIN_WINDOWS", 10**9)
    plain = ic.conv_backward(gy, x, w, stride=2, padding=1)
    for a, b in zip(split, plain):
        assert np.array_equal(a, b)


def test_transposed_convolution_through_the_phases(split_calls):
    rng = np.random.default_rng(9)
    x = rng.integers(-4, 5, size=(2, 4, 3, 40))
    w = rng.integers(-4, 5, size=(4, 3, 2, 3))
    y = ic.conv_transpose(x, w, stride=(1, 2), padding=1, output_padding=(0, 1))
    want = loop_conv_transpose(x, w, None, (1, 2), ((1, 1), (1, 1)), (0, 1))
    assert np.array_equal(y, want)
    assert split_calls, "the phase-split col2im was not taken"


FORWARD_CASES = [*CASES[:2], ((9, 8), (3, 3), 1, 1, 1, 1), ((5, 6, 4), (2, 3, 2), 2, 1, 2, 2)]


@pytest.mark.parametrize("case", FORWARD_CASES)
@pytest.mark.parametrize("limit", [0, 10**9])
def test_forward_per_sample_and_tile_wide_equal_the_loops(case, limit, monkeypatch):
    spatial, kernel, stride, padding, dilation, groups = case
    monkeypatch.setattr(_strategy, "PER_SAMPLE_MAX_PRODUCT", limit)
    rng = np.random.default_rng(sum(spatial))
    x = rng.integers(-4, 5, size=(4, 2 * groups, *spatial))
    w = rng.integers(-4, 5, size=(3 * groups, 2, *kernel))
    b = rng.integers(-4, 5, size=3 * groups)
    keywords = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    want = loop_conv(x, w, b, stride, pads, dilation, groups)
    assert np.array_equal(ic.conv(x, w, b, **keywords), want)
    y, _ = ic.conv_forward(x, w, b, **keywords)
    assert np.array_equal(y, want)
    assert np.array_equal(ic.conv(x.astype(np.float64), w.astype(np.float64), b, **keywords), want)


# --- col2im on the wide grid -----------------------------------------------------------------------

WIDE_CASES = [
    *CASES,
    ((9, 8), (3, 3), 1, 1, 1, 1),
    ((5, 6, 4), (2, 3, 2), 2, 1, 2, 2),
    ((7, 5), (3, 2), (3, 1), ((2, 0), (0, 1)), (2, 1), 1),
    ((6,), (4,), 5, 0, 1, 1),  # stride past the kernel: positions no window reads
]


@pytest.fixture
def wide_calls(monkeypatch):
    """Sends every backward through the wide col2im and counts the tiles that take it."""
    monkeypatch.setattr(_strategy, "WIDE_MAX_WINDOWS", 10**9)
    monkeypatch.setattr(_strategy, "WIDE_MIN_COLUMNS_PER_OUTPUT", 0)
    monkeypatch.setattr(_strategy, "WIDE_MAX_OUTPUT_CHANNELS", 10**9)
    calls = []
    real = _engine.WideCol2im.add

    def counted(self, *args, **kwargs):
        calls.append(self.samples)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_engine.WideCol2im, "add", counted)
    return calls


@pytest.mark.parametrize("case", WIDE_CASES)
@pytest.mark.parametrize("workspace", [None, 1])
@pytest.mark.parametrize("fused", [False, True])
def test_wide_col2im_gradients_equal_the_loops(case, workspace, fused, wide_calls, monkeypatch):
    spatial, kernel, stride, padding, dilation, groups = case
    if fused:
        monkeypatch.setattr(_strategy, "FUSED_MIN_CHANNELS", 1)
        monkeypatch.setattr(_strategy, "FUSED_MIN_SAMPLE_BYTES", 0)
    gy, w, keywords, space = _gradients_equal_the_loops(
        case, workspace, seed=len(spatial) * 100 + spatial[-1] + 7
    )
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    want_t = loop_conv_transpose(gy, w, None, stride, pads, 0, dilation, groups)
    assert np.array_equal(ic.conv_transpose(gy, w, **keywords, **space), want_t)
    assert wide_calls, "the wide col2im was not taken"


def test_wide_col2im_leaves_nan_and_inf_where_the_windows_put_them(wide_calls):
    # Float weights with an inf: the extra positions of the wide grid would add inf * 0 = NaN
    # where no window reaches, so the engine takes the plain col2im, as the loops show.
    x = np.ones((2, 1, 7))
    w = np.array([[[1.0, np.inf]]])
    gy = np.ones((2, 1, 2))
    grads = ic.conv_backward(gy, x, w, stride=3)  # windows read x[0:2] and x[3:5]; x[2], x[5:] never
    want_x = loop_conv_grads(gy, x, w, 3, ((0, 0),), 1, 1)[0]
    np.testing.assert_array_equal(grads.input, want_x)
    assert grads.input[0, 0, 2] == 0 and (grads.input[0, 0, 5:] == 0).all()
    assert not wide_calls, "a non-finite weight must take the plain col2im"
    # A NaN in the output gradient reaches exactly the positions of its window, wide or not.
    gy[0, 0, 1] = np.nan
    grads = ic.conv_backward(gy, x, np.ones_like(w), stride=3)
    assert wide_calls
    expected = [False, False, False, True, True, False, False]
    np.testing.assert_array_equal(np.isnan(grads.input[0, 0]), expected)
    assert not np.isnan(grads.input[1]).any()


def test_the_rule_takes_the_wide_col2im_for_short_rows_and_wide_columns():
    assert _strategy.wide_col2im((16, 16), 75, 32, True)  # the CIFAR first layer
    assert not _strategy.wide_col2im((26, 26), 9, 8, True)  # MNIST: too few column entries
    assert not _strategy.wide_col2im((56, 56), 576, 64, True)  # long rows: the plain adds are fast
    assert not _strategy.wide_col2im((7, 7), 2304, 256, True)  # many output channels: a costly product
    assert not _strategy.wide_col2im((16, 16), 75, 32, False)  # an output_padding grid


def test_the_rule_multiplies_each_sample_alone_only_while_its_product_is_small():
    assert _strategy.per_sample(8 * 9, 26 * 26)  # MNIST: 49 thousand multiply-adds per sample
    assert not _strategy.per_sample(32 * 75, 16 * 16)  # CIFAR: 614 thousand, split over threads
