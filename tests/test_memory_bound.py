"""Every entry point that takes ``workspace`` keeps its temporaries within it.

The bound, for random geometries, dtypes and workspaces: the peak memory
traced during the call, less the arrays it returns (results and indices),
is at most ``max(workspace, 256 KiB)`` plus 10 %. The inputs are chosen so
that the column matrix a call avoids is many times larger than that.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import im2col_conv as ic
from im2col_conv import workspace as ws

DTYPES = [np.float32, np.float64, np.int32, np.complex64]
WORKSPACES = [1, 64 << 10, 256 << 10, 1 << 20]


def _temporaries(call):
    """Peak traced bytes of ``call()`` beyond what it returns, and its result."""
    ws.release_scratch()  # buffers kept from earlier calls would hide this call's own
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
        ws.release_scratch()
    returned = result if isinstance(result, tuple) else (result,)
    return peak - sum(np.asarray(r).nbytes for r in returned if r is not None), result


def _bound(space):
    return int(max(space, 256 << 10) * 1.1)


def _geometry(rng):
    ndim = int(rng.integers(1, 4))
    sizes = {1: (3000, 9000), 2: (40, 100), 3: (10, 22)}[ndim]
    spatial = tuple(int(v) for v in rng.integers(*sizes, size=ndim))
    kernel = tuple(int(v) for v in rng.integers(1, 5, size=ndim))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=ndim))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=ndim))
    return spatial, kernel, stride, dilation


def _array(rng, shape, dtype):
    values = rng.integers(-3, 4, size=shape)
    if np.dtype(dtype).kind == "c":
        return (values + 1j * rng.integers(-3, 4, size=shape)).astype(dtype)
    return values.astype(dtype)


@pytest.mark.parametrize("seed", range(16))
def test_convolutions_stay_within_the_workspace(seed):
    rng = np.random.default_rng(seed)
    spatial, kernel, stride, dilation = _geometry(rng)
    dtype = DTYPES[seed % len(DTYPES)]
    space = WORKSPACES[seed % len(WORKSPACES)]
    groups = 1 + seed % 2
    padding = tuple((int(b), int(a)) for b, a in rng.integers(0, 3, size=(len(spatial), 2)))
    x = _array(rng, (2, 2 * groups, *spatial), dtype)
    w = _array(rng, (2 * groups, 2, *kernel), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    used, y = _temporaries(lambda: ic.conv(x, w, **kw, workspace=space))
    assert used <= _bound(space), ("conv", used, space)
    gy = _array(rng, y.shape, dtype)
    used, _ = _temporaries(lambda: ic.conv_backward(gy, x, w, **kw, workspace=space))
    assert used <= _bound(space), ("conv_backward", used, space)
    used, _ = _temporaries(
        lambda: ic.conv_transpose(gy, w, stride=stride, groups=groups, dilation=dilation, workspace=space)
    )
    assert used <= _bound(space), ("conv_transpose", used, space)


@pytest.mark.parametrize("seed", range(16))
def test_pooling_stays_within_the_workspace(seed):
    rng = np.random.default_rng(100 + seed)
    spatial, kernel, stride, dilation = _geometry(rng)
    dtype = DTYPES[seed % 3]  # pooling is real
    space = WORKSPACES[seed % len(WORKSPACES)]
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    ceil_mode = bool(seed % 2)
    x = _array(rng, (2, 3, *spatial), dtype)
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode)
    used, (y, indices) = _temporaries(
        lambda: ic.max_pool(x, kernel, dilation=dilation, **kw, return_indices=True, workspace=space)
    )
    assert used <= _bound(space), ("max_pool", used, space)
    used, _ = _temporaries(lambda: ic.max_pool(x, kernel, dilation=dilation, **kw, workspace=space))
    assert used <= _bound(space), ("max_pool without indices", used, space)
    gy = _array(rng, y.shape, dtype)
    used, _ = _temporaries(
        lambda: ic.max_pool_backward(gy, x, kernel, dilation=dilation, **kw, workspace=space)
    )
    assert used <= _bound(space), ("max_pool_backward", used, space)
    used, _ = _temporaries(
        lambda: ic.max_pool_backward(gy, x, kernel, dilation=dilation, **kw, indices=indices, workspace=space)
    )
    assert used <= _bound(space), ("max_pool_backward with indices", used, space)
    used, average = _temporaries(lambda: ic.avg_pool(x, kernel, **kw, workspace=space))
    assert used <= _bound(space), ("avg_pool", used, space)
    used, _ = _temporaries(lambda: ic.avg_pool_backward(average, x.shape, kernel, **kw, workspace=space))
    assert used <= _bound(space), ("avg_pool_backward", used, space)


def test_a_kernel_as_large_as_the_image_stays_within_its_workspace():
    """One output position whose column (16 channels of 256x256) is 4 MiB, at a 1 MiB workspace."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 16, 256, 256)).astype(np.float32)
    w = rng.standard_normal((4, 16, 256, 256)).astype(np.float32)
    gy = rng.standard_normal((1, 4, 1, 1)).astype(np.float32)
    space = 1 << 20
    used, y = _temporaries(lambda: ic.conv(x, w, workspace=space))
    assert used <= _bound(space), used
    np.testing.assert_allclose(y.ravel(), np.einsum("ncij,ocij->o", x, w), rtol=1e-4)
    used, grads = _temporaries(lambda: ic.conv_backward(gy, x, w, workspace=space))
    assert used <= _bound(space), used
    np.testing.assert_allclose(grads.weight, gy[0, :, 0, 0, None, None, None] * x[0], rtol=1e-6)
    np.testing.assert_allclose(
        grads.input[0], np.einsum("o,ocij->cij", gy[0, :, 0, 0], w), rtol=1e-4, atol=1e-4
    )


def test_pooling_with_a_large_image_stays_within_a_small_workspace():
    """The case of a 7x7 stride-2 max pooling of a large image that once held 1.5 times its workspace."""
    x = np.random.default_rng(1).standard_normal((1, 4, 512, 512)).astype(np.float32)
    for space in (256 << 10, 1 << 20):
        used, _ = _temporaries(lambda space=space: ic.max_pool(x, 7, 2, 3, workspace=space))
        assert used <= _bound(space), (used, space)
        used, _ = _temporaries(
            lambda space=space: ic.max_pool(x, 7, 2, 3, return_indices=True, workspace=space)
        )
        assert used <= _bound(space), (used, space)
