"""Scratch buffers kept by a thread between calls: reused, never visible, bounded.

Each thread keeps the temporary buffers of its last calls so that the next
call does not fault fresh memory in. What must hold: a result never changes
when later calls run, buffers whose zeros a call relies on are zero again
whatever ran between, threads never share buffers, and the kept memory
stays within ``KEEP_BYTES`` and goes away on ``release_scratch()``.
"""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest
from oracles import loop_conv

import im2col_conv as ic
from im2col_conv import tuning
from im2col_conv import workspace as ws


def _kept_bytes() -> int:
    """Counted from the buffers themselves, not from the module's running total."""
    return sum(b.nbytes for buffers, _, _ in ws._kept.sets.values() for b in buffers.values())


def _ints(rng, shape, dtype=np.float64):
    return rng.integers(-4, 5, size=shape).astype(dtype)


def _every_call(x, w, gy):
    """One call of each public function that runs on scratch, its results copied."""
    results = [
        ic.conv(x, w, padding=1, stride=(1, 2)),
        *ic.conv_backward(gy, x, w, padding=1, stride=(1, 2)),
        ic.conv_transpose(gy, w, padding=1, stride=(1, 2)),
        ic.max_pool(x, 3, 2, 1),
        ic.max_pool_backward(x[:, :, ::2, ::2], x, 3, 2, 1),
        ic.avg_pool(x, 3, 2, 1),
        ic.avg_pool_backward(x[:, :, ::2, ::2], x.shape, 3, 2, 1),
    ]
    return results


def test_results_never_change_when_later_calls_reuse_the_kept_buffers():
    rng = np.random.default_rng(0)
    ws.release_scratch()
    shapes = ((3, 4, 8, 8), (5, 4, 3, 3), (3, 5, 8, 4))
    first_inputs = [_ints(rng, s) for s in shapes]
    first = _every_call(*first_inputs)
    saved = [np.array(r, copy=True) for r in first]
    assert _kept_bytes() > 0
    again = _every_call(*[_ints(rng, s) for s in shapes])
    for kept, copy, later in zip(first, saved, again):
        assert np.array_equal(kept, copy)
        assert not np.shares_memory(kept, later)
    # And the buffers reused with other data still give the same answers.
    for got, want in zip(_every_call(*first_inputs), saved):
        assert np.array_equal(got, want)


def test_a_second_call_takes_its_buffers_from_the_first():
    rng = np.random.default_rng(1)
    x, w = _ints(rng, (16, 8, 20, 20)), _ints(rng, (8, 8, 3, 3))

    def allocated():
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            y = ic.conv(x, w, padding=1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return peak - base - y.nbytes

    ws.release_scratch()
    cold = allocated()
    warm = allocated()
    assert warm < cold / 4, (warm, cold)
    ws.release_scratch()
    assert _kept_bytes() == 0
    assert allocated() > cold / 2


def test_zeros_are_trusted_only_when_nothing_else_wrote_the_buffer():
    """A buffer asked for with ``zeroed_for`` is all zeros again after any other writer used it."""
    ws.release_scratch()
    scratch = ws.Scratch(np.dtype(np.float64))
    first = scratch.get("padded", (3, 4), zeroed_for="layout")
    assert not first.any()
    first[1:-1, 1:-1] = 5.0  # an interior; the border stays zero and is trusted
    assert not scratch.get("padded", (3, 4), zeroed_for="layout")[0].any()
    scratch.get("padded", (5, 5))[...] = 7.0  # another caller of the same name, no zeros promised
    again = scratch.get("padded", (3, 4), zeroed_for="layout")
    assert not again.any()
    scratch.get("padded", (3, 4), zeroed_for="other layout")[...] = 1.0
    assert not scratch.get("padded", (3, 4), zeroed_for="layout").any()


def test_padding_borders_stay_zero_across_calls():
    rng = np.random.default_rng(3)
    ws.release_scratch()
    for trial in range(4):
        x, w = _ints(rng, (2, 3, 6, 6), np.int64), _ints(rng, (2, 3, 3, 3), np.int64)
        pads = ((1, 2), (2, 1))
        got = ic.conv(x, w, padding=pads)
        assert np.array_equal(got, loop_conv(x, w, pad_pairs=pads)), trial
        ic.conv(_ints(rng, (2, 3, 9, 9)) * 1e6, w, padding=0)  # same buffer, other layout


def test_threads_never_share_buffers():
    rng = np.random.default_rng(4)
    inputs = [(_ints(rng, (4, 6, 12, 12)), _ints(rng, (6, 6, 3, 3))) for _ in range(4)]
    expected = [ic.conv(x, w, padding=1) for x, w in inputs]
    failures = []

    def run(index):
        x, w = inputs[index]
        for _ in range(30):
            if not np.array_equal(ic.conv(x, w, padding=1), expected[index]):
                failures.append(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.mark.parametrize("keep", [0, 1 << 20])
def test_kept_memory_stays_within_the_bound(keep):
    ws.release_scratch()
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((8, 16, 32, 32)), rng.standard_normal((16, 16, 3, 3))
    with tuning.override(keep_bytes=keep):
        ic.conv_backward(ic.conv(x, w, padding=1), x, w, padding=1)
        ic.conv(x.astype(np.float32), w.astype(np.float32), padding=1)
    assert _kept_bytes() <= keep
    assert ws.kept_bytes() == _kept_bytes()
    ws.release_scratch()
