"""How much temporary memory a call may use, and how its work is cut to fit.

A column matrix holds ``prod(kernel)`` copies of its input: for a 3x3 kernel
over a batch of 32 images of 64x56x56 floats it is 231 MB. The convolution
and pooling functions therefore work a few samples at a time, a sample too
large for that a band of output rows at a time, and a single output position
too large for that a block of channels at a time, so that the temporaries of
one call stay within a *workspace* limit whatever the batch and image size,
and, in the common case, within the processor's cache.

This module owns that decision: the plan (`plan_tiles`, `batch_chunks`,
`Tile`) from the budget of `im2col_conv.tuning`, and the buffers a plan's
tiles share (`Scratch`), which each thread keeps for its next call up to
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

#: ``tile_bytes(samples, output_size, channels)``: temporary bytes of a tile of
#: that many samples, whose output grid has that spatial size, over that many
#: channels (per group).
TileBytes = Callable[[int, tuple[int, ...], int], int]


def _even_slices(total: int, most: int) -> list[slice]:
    """As few consecutive slices of ``range(total)`` as hold at most ``most`` each, near-equal."""
    # A small last slice would make matrix products too thin to run at full
    # speed. The larger slices come first, so that buffers sized for the first
    # serve every later one.
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
    """Cut ``range(batch)`` into consecutive slices whose temporaries fit.

    The slices are as few as fit in the tile budget
    (``tuning.current().tile_budget(workspace)``), of near-equal sizes, each
    of at least one sample.

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
    budget = tuning.current().tile_budget(workspace)
    return _even_slices(batch, max(1, budget // max(bytes_per_sample, 1)))


class Tile(NamedTuple):
    """Samples ``batch``, a window of output positions and a block of channels of one call.

    Attributes
    ----------
    batch : slice
        Samples of the tile.
    window : tuple of slice
        Output positions along the leading spatial axes (one slice per
        axis that is cut); empty for whole samples.
    input_window : tuple of slice
        Unpadded input positions the tile reads along those axes.
    geometry : ConvGeometry
        The tile as a convolution of those input positions.
    channels : slice
        Channels of the tile (per group, for a grouped convolution).
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
    """The tiles of one call, made one at a time as they are visited.

    A plan of many small tiles would otherwise hold a `Tile` (and its
    geometry) per tile for the whole call. Iterate over it for the tiles, in
    order, the channel blocks of a tile's samples and positions innermost;
    `whole` tells whether every tile holds whole samples.

    Attributes
    ----------
    whole : bool
        True when the plan groups whole samples (no sample is cut).
    axis : int
        With cut samples, the spatial axis cut into bands; the axes before it
        are cut into single positions. ``-1`` for whole samples.
    channel_blocks : list of slice
        The blocks of channels; one block of all of them unless a single
        output position with all of them is larger than the budget.
    """

    def __init__(
        self,
        batch: int,
        geometry: ConvGeometry,
        grid: tuple[int, ...],
        chunks: list[slice] | None,
        channel_blocks: list[slice],
        axis: int = -1,
        most: int = 0,
    ) -> None:
        self._batch, self._geometry, self._grid = batch, geometry, grid
        self._chunks, self.axis, self._most = chunks, axis, most
        self.channel_blocks = channel_blocks
        self.whole = chunks is not None

    def __iter__(self) -> Iterator[Tile]:
        every = len(self.channel_blocks) == 1
        for batch, window, inputs, geometry in self._regions():
            for channels in self.channel_blocks:
                yield Tile(batch, window, inputs, geometry, channels, every)

    def _regions(self) -> Iterator[tuple[slice, tuple[slice, ...], tuple[slice, ...], ConvGeometry]]:
        if self._chunks is not None:
            for chunk in self._chunks:
                yield chunk, (), (), self._geometry
            return
        bands = _even_slices(self._grid[self.axis], self._most)
        for n in range(self._batch):
            for prefix in itertools.product(*(range(g) for g in self._grid[: self.axis])):
                for band in bands:
                    window = (*(slice(p, p + 1) for p in prefix), band)
                    geometry, inputs = self._geometry, []
                    for cut, rows in enumerate(window):
                        read, geometry = geometry.band(rows, cut)
                        inputs.append(read)
                    yield slice(n, n + 1), window, tuple(inputs), geometry

    def __len__(self) -> int:
        blocks = len(self.channel_blocks)
        if self._chunks is not None:
            return len(self._chunks) * blocks
        cut = math.prod(self._grid[: self.axis]) * len(_even_slices(self._grid[self.axis], self._most))
        return self._batch * cut * blocks


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

    Whole samples are grouped as in `batch_chunks` when one sample fits.
    Otherwise each sample is cut into bands of output rows along the first
    spatial axis; if a single row is still too large, into single rows along
    the first axis and bands along the second, and so on. If a single output
    position with every channel is too large, the channels are cut into
    blocks first. Only one position of one channel larger than the budget
    breaks the limit. The plan costs a logarithmic number of ``tile_bytes``
    calls, and its tiles are made as they are visited.

    Parameters
    ----------
    batch : int
        Number of samples ``N``.
    geometry : ConvGeometry
        The call's convolution.
    tile_bytes : callable
        ``tile_bytes(samples, output_size, channels)``: temporary bytes of a
        tile of that many samples, output grid and channels; non-decreasing
        in each argument.
    workspace : int
        The caller's limit in bytes.
    channels : int
        Channels that may be cut into blocks (per group for a grouped
        convolution).
    grid_size : tuple of int, optional
        The window grid, when smaller than ``geometry.output_size`` (a
        transposed convolution's ``output_padding``).

    Returns
    -------
    TilePlan
        Iterating over it gives the tiles in order, covering every sample,
        output position and channel once.

    Examples
    --------
    A sample of ten output rows needing 2 MiB per row does not fit in the
    16 MiB cache budget; two bands of five rows do:

    >>> g = ConvGeometry.create((10, 1), (1, 1))
    >>> plan = plan_tiles(2, g, lambda n, out, c: n * out[0] << 21, 64 << 20, 1)
    >>> [(t.batch, t.window) for t in plan]
    [(slice(0, 1, None), (slice(0, 5, None),)), (slice(0, 1, None), (slice(5, 10, None),)),
     (slice(1, 2, None), (slice(0, 5, None),)), (slice(1, 2, None), (slice(5, 10, None),))]
    >>> [t.batch for t in plan_tiles(4, g, lambda n, out, c: n * out[0] << 16, 64 << 20, 1)]
    [slice(0, 4, None)]
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
        chunks = _even_slices(batch, max(1, budget // max(per_sample, 1)))
        return TilePlan(batch, geometry, grid, chunks, blocks)
    for axis in range(len(grid)):

        def size(rows: int, axis: int = axis) -> int:
            return tile_bytes(1, (1,) * axis + (rows,) + grid[axis + 1 :], block)

        if size(1) <= budget or axis == len(grid) - 1:
            break
    most = _largest_fitting(grid[axis], lambda rows: size(rows) <= budget)
    return TilePlan(batch, geometry, grid, None, blocks, axis, most)


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

    Each thread keeps the temporary buffers of its last calls, up to
    ``tuning.current().keep_bytes``, so that the next call with the same shapes does not fault
    fresh memory in; this gives that memory back.
    """
    _kept.sets.clear()
    _kept.bytes = 0


class Scratch:
    """Flat buffers reused by every tile of one call; later tiles may be smaller.

    A new `Scratch` takes over the buffers its thread kept from an earlier
    one of the same dtype, and hands its own back when it is dropped (at the
    end of the call), so that alternating calls reuse warm memory. Buffers
    are only ever held by one `Scratch` at a time, so two alive at once never
    share memory; results are never scratch, so nothing a call returns can
    change later.

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
        differs from the previous request: zeros that the caller never
        overwrites (the border of a padded input, whose layout ``zeroed_for``
        names) then stay zero from one tile to the next without refilling.
        """
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        fresh = buffer is None or buffer.size < size
        if fresh:
            self._buffers.pop(name, None)  # freed before its successor is made, where nothing else holds it
            view = np.empty(shape, self.dtype)
            self._buffers[name] = view.reshape(-1)
        else:
            assert buffer is not None
            view = buffer[:size].reshape(shape)
        if zeroed_for is None:
            self._layouts.pop(name, None)  # the caller may write anywhere: no zeros left to trust
        elif fresh or self._layouts.get(name) != (shape, zeroed_for):
            view.fill(0)
            self._layouts[name] = (shape, zeroed_for)
        return view
