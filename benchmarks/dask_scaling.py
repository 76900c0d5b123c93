"""Forward and backward convolution of an input larger than a worker's memory, on 1 and 2 workers.

The input and the output gradient are generated lazily, chunk by chunk, on
the workers (never on the client). One ``dask.compute`` runs the forward
convolution and every gradient, and reduces them to the three sums of the
adjoint identity

    sum(grad_output * conv(x, w)) = sum(grad_x * x) = sum(grad_w * w)

(a convolution without bias is linear in ``x`` and in ``w``), which must
agree; a slice of the output across chunk boundaries is also checked against
the NumPy function on the same inputs. The run fails if a worker was
restarted (its address changes). Reports wall-clock seconds per worker count.

    python benchmarks/dask_scaling.py                  # 1.2 GB input, 300 MB per worker
    python benchmarks/dask_scaling.py --scale 0.05     # a quick check
"""

from __future__ import annotations

import argparse
import json
import time

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

import im2col_conv as ic


def _problem(scale: float, seed: int) -> tuple[da.Array, np.ndarray, da.random.Generator]:
    """A lazy float32 input (N, 4, 2048, 2304), about ``scale * 1.2`` GB; a 3x3 kernel; a generator."""
    n = max(1, round(16 * scale))
    shape = (n, 4, 2048, 2304)
    chunks = (1, 4, 256, 1152)
    rng = da.random.default_rng(seed)
    # Positive values: the three sums add positive terms, so they agree to float32's precision.
    x = rng.random(shape, dtype=np.float32, chunks=chunks)
    w = np.random.default_rng(seed + 2).random((4, 4, 3, 3)).astype(np.float32)
    return x, w, da.random.default_rng(seed + 1)


def run(workers: int, memory_limit: str, scale: float, workspace: int) -> dict:
    x, w, gy_rng = _problem(scale, seed=0)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        before = set(client.scheduler_info()["workers"])
        limit = next(iter(client.scheduler_info()["workers"].values()))["memory_limit"]
        start = time.perf_counter()
        y = ic.conv(x, w, None, 1, 1, workspace=workspace)
        # The output gradient is chunked like the output, as a loss's gradient would be.
        gy = gy_rng.random(y.shape, dtype=np.float32, chunks=y.chunks)
        grads = ic.conv_backward(gy, x, w, 1, 1, workspace=workspace)
        sums = dask.compute(
            (gy * y).sum(dtype=np.float64),
            (grads.input * x).sum(dtype=np.float64),
            (grads.weight.astype(np.float64) * w).sum(),
        )
        seconds = time.perf_counter() - start
        # A window of the output across a chunk boundary, against NumPy on the same inputs.
        window = (0, slice(None), slice(505, 520), slice(0, 40))
        x_part = x[0, :, 504:521, 0:41].compute()
        expected = ic.conv(x_part, w)[:, :, :39]
        got = y[window].compute()[:, :, 1:40]
        after = set(client.scheduler_info()["workers"])
    return {
        "workers": workers,
        "memory_limit_bytes": limit,
        "input_bytes": x.nbytes,
        "input_over_limit": round(x.nbytes / limit, 2),
        "seconds": round(seconds, 1),
        "adjoint_sums": [float(s) for s in sums],
        "adjoint_agree": bool(np.allclose(sums, sums[0], rtol=1e-4)),
        "slice_matches_numpy": bool(np.allclose(got, expected, rtol=1e-4, atol=1e-4)),
        "workers_restarted": before != after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-limit", default="300MB", help="per worker (default 300MB)")
    parser.add_argument("--scale", type=float, default=1.0, help="input size as a fraction of 1.2 GB")
    parser.add_argument("--workspace", type=int, default=8 << 20, help="bytes per task (default 8 MiB)")
    args = parser.parse_args()
    for count in args.workers:
        result = run(count, args.memory_limit, args.scale, args.workspace)
        print(json.dumps(result), flush=True)
        if not (result["adjoint_agree"] and result["slice_matches_numpy"]) or result["workers_restarted"]:
            raise SystemExit("the run did not reproduce the expected values, or a worker was restarted")


if __name__ == "__main__":
    main()
