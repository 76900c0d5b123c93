"""What one benchmark process times: one library, every shape of the sweep.

``bench.py`` starts a fresh process per library and round and reads the JSON
it prints, so that no two libraries ever share a process, a thread pool or a
warm cache. Each process pins its thread pools to :data:`THREADS` threads.

Libraries: ``im2col_conv`` (the engine through the public functions),
``textbook`` (:mod:`textbook`, the untiled yardstick) and ``torch``
(``torch.nn.functional.conv2d`` / ``max_pool2d`` / ``avg_pool2d`` and
autograd, PyTorch's CPU kernels).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["LIBRARIES", "THREADS", "gemm_rate", "median_of", "median_time", "run_library"]

THREADS = 2
LIBRARIES = ("im2col_conv", "textbook", "torch")

Shape = tuple[int, int, int, int, int, int, int, int]  # N, C_in, H, W, C_out, k, stride, pad
PoolShape = tuple[str, tuple[int, int, int, int], int, int, int]  # kind, (N, C, H, W), k, stride, pad


def median_of(fn: Callable[[], object], calls: int) -> float:
    """Median wall time of ``calls`` calls of ``fn``, in seconds; no warm-up."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_time(fn: Callable[[], object], repeats: int, budget: float = 1.5) -> float:
    """Median wall time of ``fn`` in seconds, after two warm-up calls.

    Fewer repeats are taken when one call is slow, so that a sweep stays short.
    """
    fn()
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    return median_of(fn, max(3, min(repeats, int(budget / max(first, 1e-9)))))


def gemm_rate(dtype: np.dtype[Any], repeats: int) -> float:
    """FLOP/s of one large square ``np.matmul``: the ceiling of every layer."""
    rng = np.random.default_rng(0)
    size = 1536
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    return 2 * size**3 / median_time(lambda: a @ b, repeats, budget=1.0)


def _peak_bytes(fn: Callable[[], object]) -> int:
    """Peak memory allocated during ``fn`` beyond what it returns (tracemalloc).

    The scratch buffers a thread keeps between calls are freed before, so
    that the call allocates its own, and after, so that they count as the
    call's temporaries rather than as part of what it returns.
    """
    from im2col_conv.workspace import release_scratch

    release_scratch()
    tracemalloc.start()
    result = fn()
    release_scratch()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak - current


def _operands(shape: Shape, dtype: np.dtype[Any]) -> tuple[Any, ...]:
    n, c_in, h, w, c_out, k, s, p = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    gy = rng.standard_normal((n, c_out, ho, wo)).astype(dtype)
    return x, weight, bias, gy


def _engine(shape: Shape, dtype: np.dtype[Any], repeats: int, extras: bool) -> dict[str, Any]:
    import im2col_conv as ic

    x, weight, bias, gy = _operands(shape, dtype)
    s, p = shape[6], shape[7]

    def forward() -> object:
        return ic.conv(x, weight, bias, stride=s, padding=p)

    def backward() -> object:
        return ic.conv_backward(gy, x, weight, stride=s, padding=p)

    row = {
        "forward_ms": 1e3 * median_time(forward, repeats),
        "backward_ms": 1e3 * median_time(backward, repeats),
    }
    if extras:
        # A training step calls the two back to back: whatever one pass leaves behind (a BLAS
        # thread pool still spinning, a cold cache) the other pays for here, not above.
        row["step_ms"] = 1e3 * median_time(lambda: (forward(), backward()), repeats)
        _, columns = ic.conv_forward(x, weight, stride=s, padding=p)
        matrix = weight.reshape(1, weight.shape[0], -1)
        cols = columns.data
        # The backward's two products on the whole batch's columns: what any im2col backward must
        # multiply, with the output gradient already in the columns' (C_out, N * L) layout.
        delta = np.ascontiguousarray(gy.swapaxes(0, 1)).reshape(1, weight.shape[0], -1)
        row["forward_gemm_only_ms"] = 1e3 * median_time(lambda: np.matmul(matrix, cols), repeats)
        row["backward_gemm_only_ms"] = 1e3 * median_time(
            lambda: (np.matmul(delta, cols.swapaxes(1, 2)), np.matmul(matrix.swapaxes(1, 2), delta)), repeats
        )
        row["column_matrix_bytes"] = cols.nbytes
        del cols
        del columns
        row["forward_peak_bytes"] = _peak_bytes(forward)
        row["backward_peak_bytes"] = _peak_bytes(backward)
    return row


def _textbook(shape: Shape, dtype: np.dtype[Any], repeats: int) -> dict[str, Any]:
    from textbook import textbook_backward, textbook_forward

    x, weight, bias, gy = _operands(shape, dtype)
    s, p = shape[6], shape[7]
    return {
        "forward_ms": 1e3 * median_time(lambda: textbook_forward(x, weight, bias, s, p), repeats),
        "backward_ms": 1e3 * median_time(lambda: textbook_backward(gy, x, weight, s, p), repeats),
    }


def _torch(shape: Shape, dtype: np.dtype[Any], repeats: int) -> dict[str, Any]:
    import torch

    x, weight, bias, gy = (torch.from_numpy(a) for a in _operands(shape, dtype))
    x.requires_grad_(True)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    s, p = shape[6], shape[7]
    y = torch.nn.functional.conv2d(x, weight, bias, stride=s, padding=p)

    def forward() -> object:
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, weight, bias, stride=s, padding=p)

    def backward() -> object:
        return torch.autograd.grad(y, (x, weight, bias), gy, retain_graph=True)

    return {
        "forward_ms": 1e3 * median_time(forward, repeats),
        "backward_ms": 1e3 * median_time(backward, repeats),
        "version": torch.__version__,
    }


def _pool_operands(shape: PoolShape, dtype: np.dtype[Any]) -> tuple[Any, Any]:
    _, size, k, s, p = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal(size).astype(dtype)
    out = [(d + 2 * p - k) // s + 1 for d in size[2:]]
    gy = rng.standard_normal((*size[:2], *out)).astype(dtype)
    return x, gy


def _engine_pool(shape: PoolShape, dtype: np.dtype[Any], repeats: int, extras: bool) -> dict[str, Any]:
    """Max pooling through the ``MaxPool`` layer, whose forward keeps each window's
    winner (as PyTorch's does for an input that needs a gradient), and through the
    functions alone; average pooling through the functions."""
    import im2col_conv as ic

    kind, _, k, s, p = shape
    x, gy = _pool_operands(shape, dtype)
    row: dict[str, Any] = {}
    if kind == "max":
        layer = ic.MaxPool(k, s, p)
        forward: Callable[[], object] = lambda: layer(x)  # noqa: E731
        backward: Callable[[], object] = lambda: layer.backward(gy)  # noqa: E731
        row["function_forward_ms"] = 1e3 * median_time(lambda: ic.max_pool(x, k, s, p), repeats)
        row["function_backward_ms"] = 1e3 * median_time(lambda: ic.max_pool_backward(gy, x, k, s, p), repeats)
    else:
        forward = lambda: ic.avg_pool(x, k, s, p)  # noqa: E731
        backward = lambda: ic.avg_pool_backward(gy, x.shape, k, s, p)  # noqa: E731
    row["forward_ms"] = 1e3 * median_time(forward, repeats)
    row["backward_ms"] = 1e3 * median_time(backward, repeats)
    if extras:
        row["forward_peak_bytes"] = _peak_bytes(forward)
        row["backward_peak_bytes"] = _peak_bytes(backward)
        row["input_bytes"] = x.nbytes
    return row


def _textbook_pool(shape: PoolShape, dtype: np.dtype[Any], repeats: int) -> dict[str, Any]:
    import textbook as tb

    kind, _, k, s, p = shape
    x, gy = _pool_operands(shape, dtype)
    if kind == "max":
        forward: Callable[[], object] = lambda: tb.textbook_max_pool(x, k, s, p)  # noqa: E731
        backward: Callable[[], object] = lambda: tb.textbook_max_pool_backward(gy, x, k, s, p)  # noqa: E731
    else:
        forward = lambda: tb.textbook_avg_pool(x, k, s, p)  # noqa: E731
        backward = lambda: tb.textbook_avg_pool_backward(gy, x.shape, k, s, p)  # noqa: E731
    return {
        "forward_ms": 1e3 * median_time(forward, repeats),
        "backward_ms": 1e3 * median_time(backward, repeats),
    }


def _torch_pool(shape: PoolShape, dtype: np.dtype[Any], repeats: int) -> dict[str, Any]:
    import torch

    kind, _, k, s, p = shape
    x, gy = (torch.from_numpy(a) for a in _pool_operands(shape, dtype))
    x.requires_grad_(True)
    pool = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    y = pool(x, k, s, p)
    return {
        "forward_ms": 1e3 * median_time(lambda: pool(x, k, s, p), repeats),
        "backward_ms": 1e3 * median_time(lambda: torch.autograd.grad(y, x, gy, retain_graph=True), repeats),
        "version": torch.__version__,
    }


def run_library(
    library: str,
    shapes: list[Shape],
    pool_shapes: list[PoolShape],
    dtypes: list[str],
    repeats: int,
    extras: bool,
) -> dict[str, Any]:
    """Time ``library`` on every shape and dtype; the large-GEMM rate per dtype too."""
    from threadpoolctl import threadpool_info, threadpool_limits

    if library == "torch":
        import torch

        torch.set_num_threads(THREADS)
    if library == "im2col_conv":
        time_conv: Callable[..., dict[str, Any]] = lambda *a: _engine(*a, extras)  # noqa: E731
        time_pool: Callable[..., dict[str, Any]] = lambda *a: _engine_pool(*a, extras)  # noqa: E731
    else:
        time_conv, time_pool = (_textbook, _textbook_pool) if library == "textbook" else (_torch, _torch_pool)
    rows = []
    pool_rows = []
    rates = {}
    with threadpool_limits(THREADS):
        for name in dtypes:
            dtype = np.dtype(name)
            rates[name] = gemm_rate(dtype, repeats)
            for shape in shapes:
                row = time_conv(shape, dtype, repeats)
                rows.append({"shape": list(shape), "dtype": name, **row})
            for pool_shape in pool_shapes:
                row = time_pool(pool_shape, dtype, repeats)
                kind, size, k, s, p = pool_shape
                key = {"kind": kind, "shape": list(size), "kernel": k, "stride": s, "padding": p}
                pool_rows.append({**key, "dtype": name, **row})
        blas = [
            {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for info in threadpool_info()
        ]
    return {"library": library, "gemm_rate": rates, "rows": rows, "pool_rows": pool_rows, "blas": blas}
