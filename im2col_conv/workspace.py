"""How much temporary memory a call may use, and how the batch is cut to fit.

A column matrix holds ``prod(kernel)`` copies of its input: for a 3x3 kernel
over a batch of 32 images of 64x56x56 floats it is 231 MB. The convolution
functions therefore lower the batch a few samples at a time, and a sample
too large for that a band of output rows at a time, so that the temporaries
of one call stay within a *workspace* limit whatever the batch and image
size, and, in the common case, within the processor's cache.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

__all__ = [
    "CACHE_BYTES",
    "DEFAULT_WORKSPACE",
    "RESERVED_BYTES",
    "batch_chunks",
    "check_workspace",
    "plan_tiles",
]

#: Default bound on the temporary memory of one call, in bytes (64 MiB).
DEFAULT_WORKSPACE = 64 << 20

#: Preferred size of one tile's temporaries: small enough that the column
#: matrix is still in the last-level cache when the matrix product reads it,
#: large enough that a typical layer's sample is not cut into bands, which
#: thins the matrix products (measured in ``benchmarks/``).
CACHE_BYTES = 16 << 20

#: Part of the workspace kept for what the chunk arithmetic does not count:
#: NumPy's internal buffers for strided element-wise operations, small arrays.
RESERVED_BYTES = 128 << 10


def check_workspace(workspace: object) -> int:
    """Validate a ``workspace`` argument and return it as an int.

    Raises
    ------
    TypeError
        If it is not an integer.
    ValueError
        If it is not positive.
    """
    if isinstance(workspace, bool) or not isinstance(workspace, numbers.Integral):
        raise TypeError(f"workspace must be an int number of bytes, got {workspace!r}")
    if workspace <= 0:
        raise ValueError(f"workspace must be a positive number of bytes, got {workspace}")
    return int(workspace)


def _budget(workspace: int) -> int:
    return min(workspace, CACHE_BYTES) - RESERVED_BYTES


def _even_slices(total: int, most: int) -> list[slice]:
    """As few consecutive slices of ``range(total)`` as hold at most ``most`` each, near-equal."""
    # A small last slice would make matrix products too thin to run at full
    # speed. The larger slices come first, so that buffers sized for the first
    # serve every later one.
    count = -(-total // most)
    if count == 0:
        return []
    base, extra = divmod(total, count)
    sizes = [base + 1] * extra + [base] * (count - extra)
    starts = [sum(sizes[:i]) for i in range(count)]
    return [slice(start, start + size) for start, size in zip(starts, sizes)]


def plan_tiles(
    batch: int, rows: int, tile_bytes: Callable[[int, int], int], workspace: int, *, bands: bool = True
) -> list[tuple[slice, slice]]:
    """Cut a batch of output grids into tiles whose temporaries fit.

    Whole samples are grouped as in :func:`batch_chunks` when one sample fits.
    Otherwise each sample is cut into bands of output rows (along the first
    spatial axis) that fit; only a single output row larger than the budget
    breaks the limit.

    Parameters
    ----------
    batch : int
        Number of samples ``N``.
    rows : int
        Output rows along the first spatial axis.
    tile_bytes : callable
        ``tile_bytes(samples, rows)``: temporary bytes of a tile of that many
        samples and output rows.
    workspace : int
        The caller's limit in bytes.
    bands : bool, optional
        Allow cutting a sample into bands (default); if False, a sample larger
        than the budget is one tile and the limit holds per sample.

    Returns
    -------
    list of (slice, slice)
        ``(samples, output_rows)`` in order, covering every sample and row once.

    Examples
    --------
    A sample of ten output rows needing 2 MiB per row does not fit in the
    16 MiB cache budget; two bands of five rows do:

    >>> plan_tiles(2, 10, lambda n, r: n * r << 21, 64 << 20)
    [(slice(0, 1, None), slice(0, 5, None)), (slice(0, 1, None), slice(5, 10, None)),
     (slice(1, 2, None), slice(0, 5, None)), (slice(1, 2, None), slice(5, 10, None))]
    >>> plan_tiles(4, 10, lambda n, r: n * r << 16, 64 << 20)
    [(slice(0, 4, None), slice(0, 10, None))]
    """
    budget = _budget(workspace)
    whole = slice(0, rows)
    if rows == 0 or not bands or tile_bytes(1, rows) <= budget:
        return [(chunk, whole) for chunk in batch_chunks(batch, tile_bytes(1, rows), workspace)]
    most = max([r for r in range(1, rows) if tile_bytes(1, r) <= budget] or [1])
    row_bands = _even_slices(rows, most)
    return [(slice(n, n + 1), band) for n in range(batch) for band in row_bands]


def batch_chunks(batch: int, bytes_per_sample: int, workspace: int) -> list[slice]:
    """Cut ``range(batch)`` into consecutive slices whose temporaries fit.

    The slices are as few as fit in ``min(workspace, CACHE_BYTES)`` less
    ``RESERVED_BYTES``, of near-equal sizes, each of at least one sample. A
    single sample larger than the workspace still makes one slice: the limit
    then holds per sample, not per call.

    Parameters
    ----------
    batch : int
        Number of samples ``N``.
    bytes_per_sample : int
        Temporary bytes needed per sample in a chunk.
    workspace : int
        The caller's limit in bytes.

    Returns
    -------
    list of slice
        Covering ``range(batch)`` in order; empty when ``batch == 0``.

    Examples
    --------
    >>> batch_chunks(10, 6 << 20, 64 << 20)  # two samples fit in 16 MiB
    [slice(0, 2, None), slice(2, 4, None), slice(4, 6, None), slice(6, 8, None), slice(8, 10, None)]
    >>> batch_chunks(9, 6 << 20, 64 << 20)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 6, None), slice(6, 8, None), slice(8, 9, None)]
    """
    return _even_slices(batch, max(1, _budget(workspace) // max(bytes_per_sample, 1)))
