"""The short paths of the common case behave as the general ones.

Plain ints and tuples find their geometry in a cache, ndarrays skip the
conversion, NumPy's own dtypes find their result dtype in a cache, and an
unrecorded phase is a shared no-op: none of that may change what a call
accepts, refuses or returns, or what `record_phases` sees.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import im2col_conv as ic
from im2col_conv._dtypes import result_dtype
from im2col_conv._lowering import window_view
from im2col_conv.geometry import ConvGeometry
from im2col_conv.layer import Conv
from im2col_conv.profiling import record_phases, recording

rng = np.random.default_rng(7)
X = rng.standard_normal((2, 3, 7, 7))
W = rng.standard_normal((4, 3, 3, 3))


@pytest.mark.parametrize("value", [True, np.True_, 1.0])
def test_a_cached_geometry_does_not_admit_values_equal_to_its_ints(value):
    ic.conv(X, W, stride=1, dilation=1)  # the plain geometry is now cached
    for name in ("stride", "dilation"):
        with pytest.raises(TypeError, match=f"{name} must be an int"):
            ic.conv(X, W, **{name: value})
        with pytest.raises(TypeError, match=f"{name} must be an int"):
            ic.conv(X, W, **{name: (1, value)})


def test_numpy_integers_give_the_plain_ints_result():
    plain = ic.conv(X, W, stride=(2, 1), padding=((1, 0), (0, 1)), dilation=1)
    numpy_ints = ic.conv(
        X,
        W,
        stride=(np.int64(2), np.int32(1)),
        padding=((np.int8(1), 0), (0, np.int64(1))),
        dilation=np.array(1),
    )
    assert np.array_equal(plain, numpy_ints)


def test_padding_forms_share_no_cache_entry_by_mistake():
    same = ic.conv(X, W, padding="same")
    assert same.shape == (2, 4, 7, 7)
    assert ic.conv(X, W, padding=1).shape == (2, 4, 7, 7)
    assert ic.conv(X, W, padding=(1, 0)).shape == (2, 4, 7, 5)
    assert ic.conv(X, W, padding=((1, 0), (0, 0))).shape == (2, 4, 6, 5)
    with pytest.raises(ValueError, match="non-negative"):
        ic.conv(X, W, padding=-1)
    with pytest.raises(ValueError, match="padding must be 'valid', 'same'"):
        ic.conv(X, W, padding="full")


def test_geometries_made_twice_are_equal():
    first = ConvGeometry.create((7, 7), (3, 3), 2, 1, 1)
    second = ConvGeometry.create((7, 7), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1))
    assert first == second and hash(first) == hash(second)
    assert first.output_size == second.output_size == (4, 4)
    banded = first.band(slice(0, 1))[1]
    assert banded.output_size == (1, 4)  # derived again, not copied from the whole geometry


@pytest.mark.parametrize(
    "dtypes",
    [
        ("f4", "f4"),
        (">f4", ">f4"),
        ("<f8", ">f4"),
        ("f2", "f2"),
        ("c8", "f8"),
        ("i4", "f4"),
        ("q", "l", "f4"),
    ],
)
def test_result_dtype_is_numpys_for_floats_and_complex(dtypes):
    given = tuple(np.dtype(d) for d in dtypes)
    assert result_dtype(*given) == np.result_type(*given)


def test_result_dtype_ignores_metadata_without_confusing_it():
    tagged = np.dtype(np.float32, metadata={"unit": "m"})
    assert result_dtype(tagged, tagged) == np.result_type(tagged, tagged)
    assert result_dtype(np.dtype(np.float32), np.dtype(np.float32)) == np.float32


def test_window_view_is_read_only_and_the_same_for_any_layout():
    geometry = ConvGeometry.create((5, 6), (2, 3), (2, 1), 0, (1, 2))
    x = rng.standard_normal((2, 3, 5, 6))
    contiguous = window_view(x, geometry)
    strided = window_view(np.asfortranarray(x), geometry)
    assert not contiguous.flags.writeable and not strided.flags.writeable
    assert np.array_equal(contiguous, strided)
    assert np.shares_memory(contiguous, x)


def test_phases_are_recorded_only_inside_the_block():
    assert not recording()
    with record_phases() as seconds:
        assert recording()
        ic.conv_backward(np.ones((2, 4, 5, 5)), X, W)
    assert not recording()
    assert set(seconds) == {"lowering", "matmul", "col2im"}
    before = dict(seconds)
    ic.conv_backward(np.ones((2, 4, 5, 5)), X, W)
    assert seconds == before


def test_nested_blocks_record_into_the_innermost():
    with record_phases() as outer:
        with record_phases() as inner:
            ic.conv(X, W)
        assert recording()
    assert set(inner) == {"lowering", "matmul"} and outer == {}


def test_a_block_in_one_thread_does_not_record_another():
    started, finished = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def elsewhere() -> None:
        started.wait()
        seen["recording"] = recording()
        ic.conv(X, W)
        finished.set()

    worker = threading.Thread(target=elsewhere)
    worker.start()
    with record_phases() as seconds:
        started.set()
        finished.wait()
    worker.join()
    assert seen["recording"] is False
    assert seconds == {}


@pytest.mark.parametrize("keep", ["columns", "input"])
@pytest.mark.parametrize("kind", ["float32 array", "float64 array", "list", "torch tensor"])
def test_the_layer_keeps_its_input_whatever_the_caller_does_to_it(kind, keep):
    dtype = np.float32 if kind in ("float32 array", "torch tensor") else np.float64  # a list is float64
    layer = Conv(3, 4, 3, rng=0, keep=keep, dtype=dtype)
    data = rng.standard_normal((2, 3, 7, 7))
    if kind == "torch tensor":
        torch = pytest.importorskip("torch")
        x = torch.tensor(data, dtype=torch.float32)
    elif kind == "list":
        x = data.tolist()
    else:
        x = data.astype(kind.split()[0])
    y = layer(x)
    if kind == "list":
        x[0][0][0][0] = 1e6
    else:
        x[...] = 1e6
    grad_x = layer.backward(np.ones_like(y))
    grad_weight = layer.grad_weight
    fresh = Conv(3, 4, 3, rng=0, dtype=dtype)
    fresh(data.astype(dtype))
    assert np.array_equal(grad_x, fresh.backward(np.ones_like(y)))
    assert np.array_equal(grad_weight, fresh.grad_weight)


def test_threads_sharing_the_caches_get_the_serial_results():
    cases = [
        {"stride": s, "padding": p, "dilation": d}
        for s in (1, 2, (2, 1))
        for p in (0, 1, "same", ((1, 0), (0, 2)))
        for d in (1, 2)
    ]
    serial = [ic.conv_backward(np.ones_like(ic.conv(X, W, **kw)), X, W, **kw) for kw in cases]
    results: list[Any] = [None] * len(cases)

    def run(start: int) -> None:
        for i in range(start, len(cases), 4):
            kw = cases[i]
            results[i] = ic.conv_backward(np.ones_like(ic.conv(X, W, **kw)), X, W, **kw)

    threads = [threading.Thread(target=run, args=(start,)) for start in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, serial):
        assert got is not None
        for a, b in zip(got, want):
            assert np.array_equal(a, b)
