"""Geometry of a strided, padded, dilated N-D convolution.

Everything about *where* a convolution reads: the user's ``stride``,
``padding`` and ``dilation`` as checked per-dimension tuples, and the output
sizes. The lowering and the products only ever see a `ConvGeometry`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Union

import numpy as np

from ._validation import as_int, int_tuple, is_sequence

__all__ = [
    "ConvGeometry",
    "IntOrTuple",
    "PaddingLike",
    "normalize_padding",
    "output_size",
    "padding_spec",
]

#: Largest number of positions an array axis product can hold on this platform.
_MAX_ELEMENTS = int(np.iinfo(np.intp).max)

#: An int applied to every spatial dimension, or one int per dimension.
IntOrTuple = Union[int, Sequence[int]]
#: ``"valid"``, ``"same"``, an int, one int per dimension, or one
#: ``(before, after)`` pair per dimension.
PaddingLike = Union[str, int, Sequence[int], Sequence[Sequence[int]]]


def normalize_padding(
    padding: PaddingLike,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """Resolve any accepted padding form into ``(before, after)`` pairs.

    ``"same"`` follows TensorFlow: the output has ``ceil(in / stride)``
    entries and the odd element of the total padding goes after. For stride 1
    this coincides with PyTorch's ``padding="same"``.

    Parameters
    ----------
    padding : str, int, sequence of int, or sequence of (int, int)
        The user's padding argument.
    input_size : sequence of int
        Unpadded spatial size of the input (used by ``"same"``).
    kernel_size : sequence of int
        Spatial size of the kernel, one entry per dimension.
    stride : sequence of int
        Per-dimension stride, already normalised (used by ``"same"``).
    dilation : sequence of int
        Per-dimension kernel dilation, already normalised (used by ``"same"``).

    Returns
    -------
    tuple of (int, int)
        One ``(before, after)`` pair per spatial dimension.

    Raises
    ------
    TypeError
        If the padding has an unsupported type.
    ValueError
        For an unknown padding string, a wrong number of entries or a negative amount.
    """
    ndim = len(kernel_size)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * ndim
        if mode == "same":
            pairs = []
            for n, k, s, d in zip(input_size, kernel_size, stride, dilation):
                out = -(-n // s)
                total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, got the string {padding!r}")
    if is_sequence(padding) and any(is_sequence(p) for p in padding):  # type: ignore[union-attr]
        per_dim: Any = padding
        if len(per_dim) != ndim:
            raise ValueError(
                f"padding must have one (before, after) pair per spatial dimension ({ndim}), "
                f"got {len(per_dim)}: {padding!r}"
            )
        pairs = []
        for p in per_dim:
            if not is_sequence(p) or len(p) != 2:
                raise ValueError(f"padding pairs must be (before, after), got {p!r} in {padding!r}")
            pairs.append((as_int(p[0], "padding"), as_int(p[1], "padding")))
    else:
        sym = int_tuple(padding, ndim, "padding", minimum=-(2**62))
        pairs = [(p, p) for p in sym]
    if any(b < 0 or a < 0 for b, a in pairs):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return tuple(pairs)


@dataclass(frozen=True)
class ConvGeometry:
    """Where every window of a convolution reads, per spatial dimension.

    Build it with `ConvGeometry.create`, which validates the arguments;
    the constructor trusts its inputs. The sizes it derives are computed on
    first use and kept, as the fields never change.

    Attributes
    ----------
    input_size : tuple of int
        Unpadded spatial size of the input, ``(*spatial)``.
    kernel_size : tuple of int
        Spatial size of the (undilated) kernel.
    stride, dilation : tuple of int
        Per-dimension stride and kernel dilation, all ``>= 1``.
    padding : tuple of (int, int)
        Zero padding ``(before, after)`` per dimension.
    """

    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]

    @classmethod
    def create(
        cls,
        input_size: IntOrTuple,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: PaddingLike = 0,
        dilation: IntOrTuple = 1,
    ) -> ConvGeometry:
        """Validate user arguments and build the geometry.

        The number of spatial dimensions is taken from ``kernel_size`` when it
        is a sequence, otherwise from ``input_size``.

        Raises
        ------
        TypeError, ValueError
            If an argument is malformed, or the dilated kernel does not fit
            in the padded input.
        """
        if is_sequence(kernel_size):
            ndim = len(kernel_size)  # type: ignore[arg-type]
        elif is_sequence(input_size):
            ndim = len(input_size)  # type: ignore[arg-type]
        else:
            ndim = 1
        if ndim < 1:
            raise ValueError(f"kernel_size must have at least one spatial dimension, got {kernel_size!r}")
        kernel = int_tuple(kernel_size, ndim, "kernel_size", minimum=1)
        size = int_tuple(input_size, ndim, "input_size", minimum=0)
        strides = int_tuple(stride, ndim, "stride", minimum=1)
        dilations = int_tuple(dilation, ndim, "dilation", minimum=1)
        pads = normalize_padding(padding, size, kernel, strides, dilations)
        geometry = cls(size, kernel, strides, pads, dilations)
        extent, padded = geometry.kernel_extent, geometry.padded_size
        if any(e > p for e, p in zip(extent, padded)):
            raise ValueError(
                f"kernel_size {kernel} with dilation {dilations} spans {extent}, larger than the "
                f"padded input {padded} (input_size {size}, padding {pads})"
            )
        volumes = (math.prod(padded), geometry.output_volume, geometry.kernel_volume)
        for what, count in zip(("padded input", "output", "kernel"), volumes):
            if count > _MAX_ELEMENTS:
                raise ValueError(
                    f"the {what} of this geometry would have {count} positions per channel, more than "
                    f"an array can index ({_MAX_ELEMENTS}): input_size {size}, kernel_size {kernel}, "
                    f"stride {strides}, padding {pads}, dilation {dilations}"
                )
        return geometry

    @classmethod
    def for_transpose(
        cls,
        input_size: Sequence[int],
        kernel_size: Sequence[int],
        stride: IntOrTuple = 1,
        padding: PaddingLike = 0,
        output_padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
    ) -> ConvGeometry:
        """The convolution whose input-gradient map is a transposed convolution.

        A transposed convolution of an input of size ``input_size`` produces
        ``(in - 1) * stride - pad_before - pad_after + extent + output_padding``
        entries per dimension (PyTorch's rule). The returned geometry is the
        forward convolution from that output size back to ``input_size``
        windows: its ``input_size`` is the transposed output size, and its
        window grid is ``input_size`` (one more than `output_size` in a
        dimension where ``output_padding`` reaches a new window's start).

        Raises
        ------
        TypeError, ValueError
            If an argument is malformed, ``output_padding`` is not smaller
            than the stride or the dilation, or the output would be empty.
        """
        ndim = len(kernel_size)
        kernel = tuple(kernel_size)
        strides = int_tuple(stride, ndim, "stride", minimum=1)
        dilations = int_tuple(dilation, ndim, "dilation", minimum=1)
        if isinstance(padding, str) and padding.lower() != "valid":
            raise ValueError(
                f"padding must be 'valid', an int or a tuple for conv_transpose, got {padding!r}"
            )
        pads = normalize_padding(padding, kernel, kernel, strides, dilations)
        out_pad = int_tuple(output_padding, ndim, "output_padding", minimum=0)
        if any(op >= s and op >= d for op, s, d in zip(out_pad, strides, dilations)):
            raise ValueError(
                f"output_padding {out_pad} must be smaller than either stride {strides} or "
                f"dilation {dilations} in every dimension"
            )
        extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilations))
        size = tuple(
            (i - 1) * s - b - a + e + op
            for i, s, (b, a), e, op in zip(input_size, strides, pads, extent, out_pad)
        )
        if any(o < 1 for o in size):
            raise ValueError(
                f"conv_transpose output size {size} is empty: input size {tuple(input_size)}, "
                f"stride {strides}, padding {pads}, kernel extent {extent}"
            )
        return cls(size, kernel, strides, pads, dilations)

    @cached_property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return len(self.kernel_size)

    @cached_property
    def kernel_extent(self) -> tuple[int, ...]:
        """Span of the dilated kernel, ``dilation * (k - 1) + 1``."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    @cached_property
    def padded_size(self) -> tuple[int, ...]:
        """Input size after zero padding, ``in + before + after``."""
        return tuple(n + b + a for n, (b, a) in zip(self.input_size, self.padding))

    @cached_property
    def output_size(self) -> tuple[int, ...]:
        """Spatial output size, ``floor((padded - extent) / stride) + 1``."""
        return tuple((p - e) // s + 1 for p, e, s in zip(self.padded_size, self.kernel_extent, self.stride))

    @cached_property
    def leftover(self) -> tuple[int, ...]:
        """Padded rows past the last window, ``(padded - extent) mod stride``.

        They are read by no window and so receive zero gradient.
        """
        return tuple((p - e) % s for p, e, s in zip(self.padded_size, self.kernel_extent, self.stride))

    @cached_property
    def is_pointwise(self) -> bool:
        """True when im2col is the identity: a 1x1 kernel, stride 1, no padding."""
        return self.kernel_volume == 1 and set(self.stride) == {1} and not self.has_padding

    @cached_property
    def has_padding(self) -> bool:
        """True when any side of any dimension is padded."""
        return any(b or a for b, a in self.padding)

    def reach(self, grid_size: Sequence[int] | None = None) -> tuple[int, ...]:
        """Padded positions read by a grid of windows, ``(grid - 1) * stride + extent``.

        Parameters
        ----------
        grid_size : sequence of int, optional
            Windows per dimension (default None: `output_size`). The
            positions past the reach of the output grid are the `leftover`.
        """
        grid = self.output_size if grid_size is None else grid_size
        return tuple((g - 1) * s + e for g, s, e in zip(grid, self.stride, self.kernel_extent))

    def band(self, rows: slice, axis: int = 0) -> tuple[slice, ConvGeometry]:
        """The input positions that output rows ``rows`` of one axis read, and their geometry.

        A band of output rows is itself a convolution, of the input rows it
        reads, with whatever of its reach lies in the padding as its own
        padding. In padded coordinates the band reads
        ``[rows.start * s, (rows.stop - 1) * s + e)`` along ``axis``; a band
        may lie wholly in the padding, and then reads no input row.

        Parameters
        ----------
        rows : slice
            Output positions ``start:stop`` (step 1) along ``axis``.
        axis : int, optional
            Spatial axis (default 0, the first).

        Returns
        -------
        input_rows : slice
            Unpadded input positions read along ``axis``.
        geometry : ConvGeometry
            The band as a convolution of those positions; its output has
            ``rows.stop - rows.start`` entries along ``axis``.

        Examples
        --------
        >>> g = ConvGeometry.create(5, 3, stride=2, padding=1)
        >>> rows, band = g.band(slice(2, 3))  # the last window: padded [4, 7), input [3, 5)
        >>> rows, band.input_size, band.padding
        (slice(3, 5, None), (2,), ((0, 1),))
        """
        stride, extent = self.stride[axis], self.kernel_extent[axis]
        before, size = self.padding[axis][0], self.input_size[axis]
        start, stop = rows.start * stride, (rows.stop - 1) * stride + extent
        low = min(max(start - before, 0), size)
        high = max(min(stop - before, size), low)
        pad_before = min(max(before - start, 0), stop - start)
        pad_after = (stop - start) - pad_before - (high - low)
        input_size, padding = list(self.input_size), list(self.padding)
        input_size[axis], padding[axis] = high - low, (pad_before, pad_after)
        return slice(low, high), replace(self, input_size=tuple(input_size), padding=tuple(padding))

    @cached_property
    def kernel_volume(self) -> int:
        """Number of kernel offsets, ``prod(kernel_size)``."""
        return math.prod(self.kernel_size)

    @cached_property
    def output_volume(self) -> int:
        """Number of output positions ``L = prod(output_size)``."""
        return math.prod(self.output_size)


def output_size(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    """Spatial output size of a convolution.

    ``out = floor((in + pad_before + pad_after - dilation * (k - 1) - 1) / stride) + 1``
    in every spatial dimension.

    Parameters
    ----------
    input_size : int or sequence of int
        Spatial size of the input, without batch or channel axes.
    kernel_size : int or sequence of int
        Spatial size of the kernel.
    stride : int or sequence of int, optional
        Per-dimension stride (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"``, symmetric amounts or ``(before, after)``
        pairs (default 0).
    dilation : int or sequence of int, optional
        Per-dimension kernel dilation (default 1).

    Returns
    -------
    tuple of int
        The output size, one entry per spatial dimension.

    Raises
    ------
    TypeError, ValueError
        If an argument is malformed or the dilated kernel does not fit.

    Examples
    --------
    >>> output_size((5, 5), 3, stride=2)
    (2, 2)
    >>> output_size(7, 3, stride=2, padding="same")
    (4,)
    """
    return ConvGeometry.create(input_size, kernel_size, stride, padding, dilation).output_size


def padding_spec(padding: PaddingLike, ndim: int) -> str | tuple[tuple[int, int], ...]:
    """Check a padding argument before the input size is known.

    Parameters
    ----------
    padding : str, int, sequence of int or of (int, int)
        The user's padding argument.
    ndim : int
        Number of spatial dimensions.

    Returns
    -------
    str or tuple of (int, int)
        ``"same"``/``"valid"`` (lower-cased, resolved once an input size is
        known), or one ``(before, after)`` pair per dimension.

    Raises
    ------
    TypeError, ValueError
        As `normalize_padding`.

    Examples
    --------
    >>> padding_spec(1, 2)
    ((1, 1), (1, 1))
    >>> padding_spec("SAME", 3)
    'same'
    """
    if isinstance(padding, str) and padding.lower() in ("same", "valid"):
        return padding.lower()
    ones = (1,) * ndim
    # Only "same" reads the sizes; any other form is checked on its own.
    return normalize_padding(padding, ones, ones, ones, ones)
