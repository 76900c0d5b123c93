"""How much temporary memory a call may use, and how the batch is cut to fit.

A column matrix holds ``prod(kernel)`` copies of its input: for a 3x3 kernel
over a batch of 32 images of 64x56x56 floats it is 231 MB. The convolution
functions therefore lower the batch a few samples at a time, so that the
temporaries of one call stay within a *workspace* limit whatever the batch
size, and, in the common case, within the processor's cache.
"""

from __future__ import annotations

import numbers

__all__ = ["CACHE_BYTES", "DEFAULT_WORKSPACE", "RESERVED_BYTES", "batch_chunks", "check_workspace"]

#: Default bound on the temporary memory of one call, in bytes (64 MiB).
DEFAULT_WORKSPACE = 64 << 20

#: Preferred size of one chunk's temporaries: small enough that the column
#: matrix is still in cache when the matrix product reads it.
CACHE_BYTES = 8 << 20

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
    >>> batch_chunks(10, 3 << 20, 64 << 20)  # two samples fit in 8 MiB
    [slice(0, 2, None), slice(2, 4, None), slice(4, 6, None), slice(6, 8, None), slice(8, 10, None)]
    >>> batch_chunks(9, 3 << 20, 64 << 20)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 6, None), slice(6, 8, None), slice(8, 9, None)]
    """
    budget = min(workspace, CACHE_BYTES) - RESERVED_BYTES
    most = max(1, budget // max(bytes_per_sample, 1))
    # As few chunks as fit, of near-equal sizes: a small last chunk would make
    # matrix products too thin to run at full speed. The larger ones come first,
    # so buffers sized for the first chunk serve every later one.
    count = -(-batch // most)
    if count == 0:
        return []
    base, extra = divmod(batch, count)
    sizes = [base + 1] * extra + [base] * (count - extra)
    starts = [sum(sizes[:i]) for i in range(count)]
    return [slice(start, start + size) for start, size in zip(starts, sizes)]
