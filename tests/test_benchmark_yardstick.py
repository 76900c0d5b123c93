"""The benchmark's textbook yardstick computes the same convolution as the library."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import im2col_conv as ic

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "textbook.py"


def _textbook():
    spec = importlib.util.spec_from_file_location("textbook", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("k", "stride", "padding"), [(3, 1, 1), (5, 2, 2), (1, 1, 0), (3, 2, 0)])
def test_textbook_matches_the_library_exactly_in_integers(k, stride, padding):
    textbook = _textbook()
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.integers(-5, 6, size=(3, 4, 9, 8))
    w = rng.integers(-5, 6, size=(5, 4, k, k))
    b = rng.integers(-5, 6, size=5)
    y = textbook.textbook_forward(x, w, b, stride, padding)
    assert np.array_equal(y, ic.conv(x, w, b, stride=stride, padding=padding))
    gy = rng.integers(-5, 6, size=y.shape)
    got = textbook.textbook_backward(gy, x, w, stride, padding)
    want = ic.conv_backward(gy, x, w, stride=stride, padding=padding)
    for a, b_ in zip(got, want):
        assert np.array_equal(a, b_)


@pytest.mark.parametrize(("k", "stride", "padding"), [(3, 2, 1), (2, 2, 0), (3, 1, 1), (7, 7, 0)])
def test_textbook_pooling_matches_the_library(k, stride, padding):
    textbook = _textbook()
    rng = np.random.default_rng(k * 10 + stride)
    # Distinct values: the max and its winner are unique, so both agree exactly.
    x = rng.permutation(4 * 3 * 14 * 14).reshape(4, 3, 14, 14).astype(np.float64)
    y = textbook.textbook_max_pool(x, k, stride, padding)
    assert np.array_equal(y, ic.max_pool(x, k, stride, padding))
    gy = rng.integers(-5, 6, size=y.shape).astype(np.float64)
    got = textbook.textbook_max_pool_backward(gy, x, k, stride, padding)
    assert np.array_equal(got, ic.max_pool_backward(gy, x, k, stride, padding))
    mean = textbook.textbook_avg_pool(x, k, stride, padding)
    np.testing.assert_allclose(mean, ic.avg_pool(x, k, stride, padding), rtol=1e-14)
    got = textbook.textbook_avg_pool_backward(gy, x.shape, k, stride, padding)
    np.testing.assert_allclose(got, ic.avg_pool_backward(gy, x.shape, k, stride, padding), rtol=1e-14)


def test_committed_results_render_to_the_committed_table():
    """``bench.py --show`` on the published JSON prints the published console table."""
    results = _PATH.parent / "results"
    done = subprocess.run(
        [sys.executable, str(_PATH.parent / "bench.py"), "--show", str(results / "latest.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (results / "latest.txt").read_text()
