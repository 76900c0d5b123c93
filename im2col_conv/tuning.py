"""Every threshold and budget constant of the engine, and a scoped way to change them.

Each choice of the engine compares a layer's shape with one constant fitted
on the benchmark host (``benchmarks/``; the performance page gives the
measurements). The constants live in one frozen `Tuning`, read with
`current`. Nothing in the package assigns them: a test, the equivalence proof
or a user asks for other values with `override`, which holds for the calling
thread (its `contextvars` context) until its ``with`` block ends; a call
running at the same time on another thread keeps its plan.

Examples
--------
>>> from im2col_conv import tuning
>>> tuning.current().cache_bytes
16777216
>>> with tuning.override(cache_bytes=1 << 20):
...     tuning.current().cache_bytes
1048576
>>> tuning.current().cache_bytes
16777216
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Tuning", "current", "override"]


@dataclasses.dataclass(frozen=True)
class Tuning:
    """The constants behind the engine's choices of plan and path.

    Attributes
    ----------
    cache_bytes : int
        Preferred size of one tile's temporaries (16 MiB): the column matrix
        is still in the last-level cache when the product reads it, and a
        typical layer's sample is not cut into bands, which thins the products.
    reserved_bytes : int
        Workspace kept for what the tile arithmetic does not count: NumPy's
        internal buffers, small arrays (128 KiB).
    min_tile_bytes : int
        Smallest tile budget whatever the workspace (64 KiB): below it the
        Python overhead of visiting a tile dominates its work.
    keep_bytes : int
        Scratch memory a thread keeps from one call for the next (32 MiB). A
        training loop alternates calls whose buffers differ in size; freed,
        their pages go back to the operating system and are faulted in again,
        which tripled a training step of the MNIST layer.
    fused_min_channels : int
        From this many input channels per group on (64), the backward makes
        the column gradient one kernel offset at a time and adds it while in
        cache, instead of one tall product whose ``prod(kernel)`` times larger
        result has left the cache before col2im reads it ...
    fused_min_sample_bytes : int
        ... and while one sample's column gradient takes at least this many
        bytes (1 MiB): a smaller one stays in cache whole. The 256-channel
        14x14 stride-2 layer's backward (0.45 MiB per sample) took 20.4 ms
        unfused against 25.4 ms fused; the 64-channel 56x56 layer's, 246 ms
        fused against 310 ms.
    per_sample_max_product : int
        A forward tile whose product per sample and group takes at most this
        many multiply-adds (2**18) multiplies each sample straight into the
        output, sparing the tile-wide product's transposing copy (MNIST layer,
        49 thousand: 0.81 of the tile-wide time). Larger products are split
        over BLAS's threads, where a synchronisation per sample costs more
        (CIFAR layer, 614 thousand: tile-wide took 0.72 to 0.98 of per-sample).
    phase_split_min_windows : int
        Pooling reads and scatters a strided last axis through its phases
        (contiguous memory, ``_polyphase``) from this many windows along it on
        (16); on shorter rows the extra pass costs more than it gains. NumPy's
        loops ran about eight times slower on a stride of 2 than contiguously
        (3.1 against 0.4 ms for one ``np.maximum`` of the benchmark's max pooling).
    """

    cache_bytes: int = 16 << 20
    reserved_bytes: int = 128 << 10
    min_tile_bytes: int = 64 << 10
    keep_bytes: int = 32 << 20
    fused_min_channels: int = 64
    fused_min_sample_bytes: int = 1 << 20
    per_sample_max_product: int = 1 << 18
    phase_split_min_windows: int = 16

    def tile_budget(self, workspace: int) -> int:
        """Bytes one tile's counted temporaries may take under ``workspace``."""
        return max(min(workspace, self.cache_bytes) - self.reserved_bytes, self.min_tile_bytes)


_DEFAULT = Tuning()
_current: contextvars.ContextVar[Tuning] = contextvars.ContextVar("im2col_conv_tuning", default=_DEFAULT)


def current() -> Tuning:
    """The `Tuning` in force for the calling thread (or context)."""
    return _current.get()


@contextmanager
def override(**changes: int) -> Iterator[Tuning]:
    """Use a `Tuning` with ``changes`` inside a ``with`` block, in this thread only.

    Parameters
    ----------
    **changes : int
        New values of `Tuning` attributes, by name.

    Yields
    ------
    Tuning
        The tuning in force inside the block.

    Raises
    ------
    TypeError
        If a name is not a `Tuning` attribute, or a value is not an int.
    """
    names = {field.name for field in dataclasses.fields(Tuning)}
    for name, value in changes.items():
        if name not in names:
            raise TypeError(f"override() got an unknown tuning name {name!r}; the names are {sorted(names)}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"tuning value {name} must be an int, got {value!r}")
    tuned = dataclasses.replace(_current.get(), **changes)
    token = _current.set(tuned)
    try:
        yield tuned
    finally:
        _current.reset(token)
