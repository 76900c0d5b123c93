"""How much temporary memory a call may use, and how its work is cut to fit.

A column matrix holds ``prod(kernel)`` copies of its input: for a 3x3 kernel
over 32 images of 64x56x56 floats, 231 MB. The convolution and pooling
functions therefore work a few samples at a time, a sample too large for that
a band of output rows at a time, and a single output position too large for
that a block of channels at a time, so that one call's temporaries stay within
a *workspace* limit whatever the batch and image size, and usually in cache.

This module makes the plan (`plan_tiles`, `batch_chunks`, `Tile`) from the
budget of `im2col_conv.tuning`, and owns the buffers a plan's tiles share
(`Scratch`), which each thread keeps for its next call up to
``tuning.current().keep_bytes`` (`release_scratch` frees them).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import tuning
from .geometry import ConvGeometry

__all__ = [
    "DEFAULT_WORKSPACE",
    "Scratch",
    "Tile",
    "TilePlan",
    "batch_chunks",
    "kept_bytes",
    "plan_tiles",
    "release_scratch",
]

#: Default bound on the temporary memory of one call, in bytes (64 MiB).
DEFAULT_WORKSPACE = 64 << 20

#: ``tile_bytes(samples, output_size, channels)``: temporary bytes of a tile of that many
#: samples, output grid and channels (per group).
TileBytes = Callable[[int, tuple[int, ...], int], int]


def _even_slices(total: int, most: int) -> list[slice]:
    """As few consecutive slices of ``range(total)`` as hold at most ``most`` each, near-equal."""
    # A small last slice would make matrix products too thin to run at full speed. The larger
    # slices come first, so that buffers sized for the first serve every later one.
    if total <= most:
        return [slice(0, total)] if total else []
    count = -(-total // most)
    base, extra = divmod(total, count)
    sizes = [base + 1] * extra + [base] * (count - extra)
    starts = itertools.accumulate(sizes, initial=0)
    return [slice(start, start + size) for start, size in zip(starts, sizes)]


def _largest_fitting(limit: int, fits: Callable[[int], bool]) -> int:
    """Largest ``r`` in ``[1, limit]`` with ``fits(r)`` (monotone), by bisection; 1 if none."""
    low, high = 1, limit
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def batch_chunks(batch: int, bytes_per_sample: int, workspace: int) -> list[slice]:
    """Cut ``range(batch)`` into as few near-equal slices as fit the tile budget.

    Parameters
    ----------
    batch : int
        Number of samples ``N``.
    bytes_per_sample : int
        Temporary bytes needed per sample in a chunk.
    workspace : int
        The caller's limit in bytes; the budget is
        ``tuning.current().tile_budget(workspace)``.

    Returns
    -------
    list of slice
        Covering ``range(batch)`` in order, each of at least one sample; empty
        when ``batch == 0``.

    Examples
    --------
    >>> batch_chunks(9, 6 << 20, 64 << 20)  # two samples fit in 16 MiB
    [slice(0, 2, None), slice(2, 4, None), slice(4, 6, None), slice(6, 8, None), slice(8, 9, None)]
    """
    budget = tuning.current().tile_budget(workspace)
    return _even_slices(batch, max(1, budget // max(bytes_per_sample, 1)))


class Tile(NamedTuple):
    """Samples ``batch``, a window of output positions and a block of channels of one call.

    Attributes
    ----------
    batch : slice
        Samples of the tile.
    window : tuple of slice
        Output positions along the leading spatial axes that are cut; empty
        for whole samples.
    input_window : tuple of slice
        Unpadded input positions the tile reads along those axes.
    geometry : ConvGeometry
        The tile as a convolution of those input positions.
    channels : slice
        Channels of the tile (per group).
    all_channels : bool
        True when ``channels`` covers every channel.
    """

    batch: slice
    window: tuple[slice, ...]
    input_window: tuple[slice, ...]
    geometry: ConvGeometry
    channels: slice
    all_channels: bool

    @property
    def whole(self) -> bool:
        """True when the tile holds whole samples (its geometry is the call's)."""
        return not self.window

    def grid(self, grid_size: tuple[int, ...]) -> tuple[int, ...]:
        """The tile's window grid, out of the call's ``grid_size``."""
        cut = tuple(s.stop - s.start for s in self.window)
        return cut + grid_size[len(cut) :]


class TilePlan:
    """The tiles of one call in order, channel blocks innermost, each made as it is visited.

    (A plan of many small tiles would otherwise hold a `Tile` per tile for the whole call.)

    Attributes
    ----------
    whole : bool
        True when every tile holds whole samples.
    axis : int
        With cut samples, the spatial axis cut into bands; the axes before it
        are cut into single positions. ``-1`` for whole samples.
    channel_blocks : list of slice
        One block of every channel, unless one output position with all of
        them is larger than the budget.
    """

    def __init__(
        self,
        batch: int,
        geometry: ConvGeometry,
        grid: tuple[int, ...],
        cuts: list[slice],
        channel_blocks: list[slice],
        axis: int = -1,
    ) -> None:
        self._batch, self._geometry, self._grid = batch, geometry, grid
        self._cuts = cuts  # chunks of the batch (whole samples), or bands along ``axis``
        self.axis, self.channel_blocks = axis, channel_blocks
        self.whole = axis < 0

    def __iter__(self) -> Iterator[Tile]:
        every = len(self.channel_blocks) == 1
        for batch, window, inputs, geometry in self._regions():
            for channels in self.channel_blocks:
                yield Tile(batch, window, inputs, geometry, channels, every)

    def _regions(self) -> Iterator[tuple[slice, tuple[slice, ...], tuple[slice, ...], ConvGeometry]]:
        if self.whole:
            for chunk in self._cuts:
                yield chunk, (), (), self._geometry
            return
        for n in range(self._batch):
            for prefix in itertools.product(*map(range, self._grid[: self.axis])):
                for band in self._cuts:
                    window = (*(slice(p, p + 1) for p in prefix), band)
                    geometry, inputs = self._geometry, []
                    for cut, rows in enumerate(window):
                        read, geometry = geometry.band(rows, cut)
                        inputs.append(read)
                    yield slice(n, n + 1), window, tuple(inputs), geometry

    def __len__(self) -> int:
        regions = len(self._cuts)
        if not self.whole:
            regions *= self._batch * math.prod(self._grid[: self.axis])
        return regions * len(self.channel_blocks)


def plan_tiles(
    batch: int,
    geometry: ConvGeometry,
    tile_bytes: TileBytes,
    workspace: int,
    channels: int,
    *,
    grid_size: tuple[int, ...] | None = None,
) -> TilePlan:
    """Cut a call's batch, output grid and channels into tiles whose temporaries fit.

    Whole samples are grouped as in `batch_chunks` when one sample fits;
    otherwise each sample is cut into bands of output rows along the first
    spatial axis, or if one row is still too large, into single rows there and
    bands along the second, and so on. If one output position with every
    channel is too large, the channels are cut into blocks first; only one
    position of one channel over the budget breaks the limit. Planning costs
    a logarithmic number of ``tile_bytes`` calls.

    Parameters
    ----------
    batch : int
        Number of samples ``N``.
    geometry : ConvGeometry
        The call's convolution.
    tile_bytes : callable
        ``tile_bytes(samples, output_size, channels)``: temporary bytes of a
        tile; non-decreasing in each argument.
    workspace : int
        The caller's limit in bytes.
    channels : int
        Channels that may be cut into blocks (per group).
    grid_size : tuple of int, optional
        The window grid, when smaller than ``geometry.output_size`` (a
        transposed convolution's ``output_padding``).

    Returns
    -------
    TilePlan
        The tiles in order, covering every sample, output position and channel once.

    Examples
    --------
    Ten output rows at 2 MiB each exceed the 16 MiB cache budget; bands of five fit:

    >>> g = ConvGeometry.create((10, 1), (1, 1))
    >>> plan = plan_tiles(2, g, lambda n, out, c: n * out[0] << 21, 64 << 20, 1)
    >>> [(t.batch, t.window) for t in plan]
    [(slice(0, 1, None), (slice(0, 5, None),)), (slice(0, 1, None), (slice(5, 10, None),)),
     (slice(1, 2, None), (slice(0, 5, None),)), (slice(1, 2, None), (slice(5, 10, None),))]
    """
    grid = geometry.output_size if grid_size is None else grid_size
    budget = tuning.current().tile_budget(workspace)
    block = channels
    one_position = (1,) * len(grid)
    if channels > 1 and tile_bytes(1, one_position, channels) > budget:
        block = _largest_fitting(channels, lambda c: tile_bytes(1, one_position, c) <= budget)
    blocks = _even_slices(channels, block) or [slice(0, 0)]
    block = blocks[0].stop - blocks[0].start
    per_sample = tile_bytes(1, grid, block)
    if per_sample <= budget or batch == 0 or 0 in grid:
        return TilePlan(batch, geometry, grid, batch_chunks(batch, per_sample, workspace), blocks)

    def fits(axis: int, rows: int) -> bool:
        return tile_bytes(1, (1,) * axis + (rows,) + grid[axis + 1 :], block) <= budget

    axis = next((a for a in range(len(grid)) if fits(a, 1)), len(grid) - 1)
    bands = _even_slices(grid[axis], _largest_fitting(grid[axis], lambda rows: fits(axis, rows)))
    return TilePlan(batch, geometry, grid, bands, blocks, axis)


class _Kept(threading.local):
    """One thread's kept buffers: ``sets[dtype] = (buffers, layouts, bytes)``, and their total."""

    def __init__(self) -> None:
        self.sets: dict[np.dtype[Any], tuple[dict[str, NDArray[Any]], dict[str, object], int]] = {}
        self.bytes = 0


_kept = _Kept()


def kept_bytes() -> int:
    """Bytes of scratch buffers the calling thread keeps for its next call."""
    return _kept.bytes


def release_scratch() -> None:
    """Free the scratch buffers this thread keeps between calls.

    Each thread keeps its last calls' temporary buffers, up to
    ``tuning.current().keep_bytes``, so that the next call with the same
    shapes does not fault fresh memory in; this gives that memory back.
    """
    _kept.sets.clear()
    _kept.bytes = 0


class Scratch:
    """Flat buffers reused by every tile of one call; later tiles may be smaller.

    A new `Scratch` takes over the buffers its thread kept from an earlier one
    of the same dtype and hands its own back when dropped (at the end of the
    call), so alternating calls reuse warm memory. One `Scratch` at a time
    holds a buffer, so two alive at once never share memory; results are
    never scratch, so nothing a call returns can change later.

    Parameters
    ----------
    dtype : numpy.dtype
        dtype of every buffer.
    """

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = np.dtype(dtype)
        self._buffers: dict[str, NDArray[Any]] = {}
        self._layouts: dict[str, object] = {}
        kept = _kept.sets.pop(self.dtype, None)
        if kept is not None:
            self._buffers, self._layouts, size = kept
            _kept.bytes -= size

    def __del__(self) -> None:
        buffers = self.__dict__.get("_buffers")
        if not buffers or self.dtype in _kept.sets:
            return  # nothing to keep, or another Scratch of this dtype, dropped first, kept its own
        size = sum(b.nbytes for b in buffers.values())
        if _kept.bytes + size <= tuning.current().keep_bytes:
            _kept.sets[self.dtype] = (buffers, self._layouts, size)
            _kept.bytes += size

    def get(self, name: str, shape: tuple[int, ...], *, zeroed_for: object = None) -> NDArray[Any]:
        """A ``shape`` view of buffer ``name``.

        With ``zeroed_for`` the view is all zeros whenever ``(shape, zeroed_for)``
        differs from the previous request: zeros the caller never overwrites
        (a padded input's border, whose layout ``zeroed_for`` names) then stay
        zero from one tile to the next without refilling.
        """
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        fresh = buffer is None or buffer.size < size
        if buffer is None or fresh:
            self._buffers.pop(name, None)  # freed before its successor is made, where nothing else holds it
            buffer = self._buffers[name] = np.empty(size, self.dtype)
        view = buffer[:size].reshape(shape)
        if zeroed_for is None:
            self._layouts.pop(name, None)  # the caller may write anywhere: no zeros left to trust
        elif fresh or self._layouts.get(name) != (shape, zeroed_for):
            view.fill(0)
            self._layouts[name] = (shape, zeroed_for)
        return view
