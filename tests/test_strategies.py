"""Every path the engine picks by layer shape computes exactly what the loops do.

- Forward: one product per sample (at most ``per_sample_max_product``
  multiply-adds per sample and group) or one tile-wide product.
- Backward: the column gradient in one tall product, or fused, one kernel
  offset at a time (``fused_min_channels``, ``fused_min_sample_bytes``).
- col2im: one addition per kernel offset, or, for kernels larger than their
  output grid, one per window.
- Tiles: whole samples, bands of output rows, and blocks of input channels
  when a single output position with every channel is larger than the budget.

Each path is forced through `tuning.override`. Integer operands make every
sum exact, so results must equal the plain-loop oracle's bit for bit.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from oracles import loop_conv, loop_conv_grads, loop_conv_transpose, resolve_padding

import im2col_conv as ic
from im2col_conv import _col2im, _engine, tuning

CASES = [
    # (spatial, kernel, stride, padding, dilation, groups)
    ((70,), (3,), 2, 1, 1, 1),
    ((4, 67), (2, 3), (1, 2), ((1, 0), (2, 1)), 1, 2),
    ((3, 100), (1, 4), (2, 3), 0, (1, 2), 1),
    ((2, 2, 71), (1, 2, 5), 2, 2, 1, 1),
    ((9, 8), (3, 3), 1, 1, 1, 1),
    ((5, 6, 4), (2, 3, 2), 2, 1, 2, 2),
]

#: Kernels at least as large as their output grid: col2im loops over windows.
LARGE_KERNELS = [
    ((12,), (12,), 1, 0, 1, 1),
    ((9, 10), (7, 8), (2, 1), ((1, 0), (0, 2)), 1, 2),
    ((6, 7), (3, 4), 1, 0, 2, 1),
    ((4, 5, 6), (4, 5, 5), 1, 0, 1, 1),
]


def _operands(case, seed, n=3):
    spatial, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, size=(n, 2 * groups, *spatial))
    w = rng.integers(-4, 5, size=(3 * groups, 2, *kernel))
    keywords = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    gy = rng.integers(-4, 5, size=ic.conv(x, w, **keywords).shape)
    return x, w, gy, keywords


def _loops(case, x, w, gy):
    spatial, kernel, stride, padding, dilation, groups = case
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    forward = loop_conv(x, w, None, stride, pads, dilation, groups)
    return forward, *loop_conv_grads(gy, x, w, stride, pads, dilation, groups)[:2]


def _check(case, seed, workspace=None):
    x, w, gy, keywords = _operands(case, seed)
    want_y, want_x, want_w = _loops(case, x, w, gy)
    space = {} if workspace is None else {"workspace": workspace}
    assert np.array_equal(ic.conv(x, w, **keywords, **space), want_y)
    grad_x, grad_w, _ = ic.conv_backward(gy, x, w, **keywords, **space)
    assert np.array_equal(grad_x, want_x)
    assert np.array_equal(grad_w, want_w)
    # The transposed convolution is the input-gradient map: the same col2im.
    spatial, kernel, stride, padding, dilation, groups = case
    # conv_transpose with the convolution's own weight is its input-gradient map.
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    leftover = tuple(
        (n + sum(p) - d * (k - 1) - 1) % s
        for n, p, k, s, d in zip(
            spatial,
            pads,
            kernel,
            np.broadcast_to(stride, len(spatial)),
            np.broadcast_to(dilation, len(spatial)),
        )
    )
    if all(
        left < max(s, d)
        for left, s, d in zip(
            leftover, np.broadcast_to(stride, len(spatial)), np.broadcast_to(dilation, len(spatial))
        )
    ):
        got = ic.conv_transpose(
            gy,
            w,
            stride=stride,
            padding=pads,
            output_padding=leftover,
            groups=groups,
            dilation=dilation,
            **space,
        )
        want = loop_conv_transpose(gy, w, None, stride, pads, leftover, dilation, groups)
        assert np.array_equal(got, want)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("limit", [0, 10**9])
def test_forward_per_sample_and_tile_wide_equal_the_loops(case, limit):
    with tuning.override(per_sample_max_product=limit):
        _check(case, seed=sum(case[0]))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("workspace", [None, 1])
def test_fused_and_tall_column_gradients_equal_the_loops(case, fused, workspace):
    threshold = 1 if fused else 1 << 30
    with tuning.override(fused_min_channels=threshold, fused_min_sample_bytes=0):
        _check(case, seed=len(case[0]), workspace=workspace)


@pytest.fixture
def window_loops(monkeypatch):
    """Counts the column blocks col2im asks for by window rather than by kernel offset."""
    calls = []
    real = _col2im.array_blocks

    def counted(columns, ndim):
        blocks = real(columns, ndim)

        def by_window(position):
            calls.append(position)
            return blocks.by_window(position)

        return _col2im.Blocks(blocks.by_offset, by_window)

    monkeypatch.setattr(_col2im, "array_blocks", counted)
    monkeypatch.setattr(_engine, "array_blocks", counted)
    return calls


@pytest.mark.parametrize("case", LARGE_KERNELS)
@pytest.mark.parametrize("workspace", [None, 1])
def test_kernels_larger_than_their_output_add_window_by_window(case, workspace, window_loops):
    _check(case, seed=7, workspace=workspace)
    assert window_loops, "col2im did not loop over windows"


def test_a_single_position_larger_than_the_workspace_is_cut_into_channel_blocks():
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, size=(2, 6, 20, 20))
    w = rng.integers(-3, 4, size=(4, 3, 20, 20))  # a whole-image kernel: one output position
    gy = rng.integers(-3, 4, size=(2, 4, 1, 1))
    case = ((20, 20), (20, 20), 1, 0, 1, 2)
    want_y, want_x, want_w = _loops(case, x, w, gy)
    with tuning.override(reserved_bytes=0, min_tile_bytes=1):
        # One channel's column is 3.2 kB (float64): a 5 kB workspace holds one channel at a time.
        assert np.array_equal(ic.conv(x, w, groups=2, workspace=5000), want_y)
        grads = ic.conv_backward(gy, x, w, groups=2, workspace=5000)
    assert np.array_equal(grads.input, want_x)
    assert np.array_equal(grads.weight, want_w)


def test_an_override_holds_only_in_its_own_thread(monkeypatch):
    """A proof-sized override on one thread; another thread's calls keep the default plan meanwhile."""
    plans = {}
    real = _engine.plan_tiles

    def spy(*args, **kwargs):
        plan = real(*args, **kwargs)
        plans.setdefault(threading.current_thread().name, []).append((plan.whole, len(plan)))
        return plan

    monkeypatch.setattr(_engine, "plan_tiles", spy)
    x, w, gy, keywords = _operands(CASES[4], seed=5)
    want = _loops(CASES[4], x, w, gy)
    inside, done = threading.Event(), threading.Event()
    failures = []

    def proof():
        with tuning.override(
            min_tile_bytes=1, reserved_bytes=0, fused_min_sample_bytes=0, fused_min_channels=1
        ):
            inside.set()
            while not done.is_set():
                grads = ic.conv_backward(gy, x, w, **keywords, workspace=1)
                if not np.array_equal(grads.input, want[1]):
                    failures.append("proof thread")

    thread = threading.Thread(target=proof, name="proof")
    thread.start()
    inside.wait(5)
    try:
        for _ in range(20):
            grads = ic.conv_backward(gy, x, w, **keywords, workspace=1)
            if not np.array_equal(grads.input, want[1]):
                failures.append("main thread")
    finally:
        done.set()
        thread.join()
    assert failures == []
    assert plans["proof"] and all(not whole for whole, _ in plans["proof"])  # cut to single positions
    assert all(whole for whole, _ in plans[threading.current_thread().name])  # whole samples, as by default


def test_overrides_reject_unknown_names_and_non_integers():
    with pytest.raises(TypeError, match="unknown tuning name 'cache'"):
        with tuning.override(cache=1):
            pass
    with pytest.raises(TypeError, match="must be an int"):
        with tuning.override(cache_bytes=1.5):
            pass
