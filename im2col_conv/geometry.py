"""Geometry of a strided, padded, dilated N-D convolution.

Everything about *where* a convolution reads lives here: turning the user's
``stride``/``padding``/``dilation`` arguments into per-dimension tuples,
checking them, and computing output sizes. The lowering and the matrix
products never look at the raw arguments, only at a :class:`ConvGeometry`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

__all__ = [
    "ConvGeometry",
    "IntOrTuple",
    "PaddingLike",
    "output_size",
]

#: An int applied to every spatial dimension, or one int per dimension.
IntOrTuple = Union[int, Sequence[int]]
#: ``"valid"``, ``"same"``, an int, one int per dimension, or one
#: ``(before, after)`` pair per dimension.
PaddingLike = Union[str, int, Sequence[int], Sequence[Sequence[int]]]


def is_sequence(value: object) -> bool:
    """True for lists, tuples and arrays of values; False for scalars and strings."""
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes))


def _as_int(value: object, name: str) -> int:
    # bool is an int subclass, but ``stride=True`` is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    return int(value)


def normalize_tuple(value: IntOrTuple, ndim: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """Expand an int or a per-dimension sequence into ``ndim`` checked ints.

    Parameters
    ----------
    value : int or sequence of int
        One value for every spatial dimension, or one value per dimension.
    ndim : int
        Number of spatial dimensions.
    name : str
        Argument name used in error messages.
    minimum : int
        Smallest allowed value.

    Returns
    -------
    tuple of int
        ``ndim`` entries, each ``>= minimum``.

    Raises
    ------
    TypeError
        If an entry is not an integer.
    ValueError
        If the sequence has the wrong length or an entry is below ``minimum``.
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got {value!r}")
    if is_sequence(value):
        entries = tuple(_as_int(v, name) for v in value)  # type: ignore[union-attr]
        if len(entries) != ndim:
            raise ValueError(
                f"{name} must have one entry per spatial dimension ({ndim}), "
                f"got {len(entries)} entries: {value!r}"
            )
    else:
        entries = (_as_int(value, name),) * ndim
    if any(v < minimum for v in entries):
        raise ValueError(f"{name} entries must be >= {minimum}, got {value!r}")
    return entries


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
    input_size, kernel_size, stride, dilation : sequence of int
        Per-dimension geometry, already normalised (used by ``"same"``).

    Returns
    -------
    tuple of (int, int)
        One ``(before, after)`` pair per spatial dimension.

    Raises
    ------
    TypeError
        If the padding has an unsupported type.
    ValueError
        For an unknown padding string, a wrong number of entries or a
        negative amount.
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
            pairs.append((_as_int(p[0], "padding"), _as_int(p[1], "padding")))
    else:
        sym = normalize_tuple(padding, ndim, "padding", minimum=-(2**62))  # type: ignore[arg-type]
        pairs = [(p, p) for p in sym]
    if any(b < 0 or a < 0 for b, a in pairs):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return tuple(pairs)


@dataclass(frozen=True)
class ConvGeometry:
    """Where every window of a convolution reads, per spatial dimension.

    Build it with :meth:`ConvGeometry.create`, which validates the arguments;
    the constructor trusts its inputs.

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
        kernel = normalize_tuple(kernel_size, ndim, "kernel_size", minimum=1)
        size = normalize_tuple(input_size, ndim, "input_size", minimum=0)
        strides = normalize_tuple(stride, ndim, "stride", minimum=1)
        dilations = normalize_tuple(dilation, ndim, "dilation", minimum=1)
        pads = normalize_padding(padding, size, kernel, strides, dilations)
        geometry = cls(size, kernel, strides, pads, dilations)
        extent, padded = geometry.kernel_extent, geometry.padded_size
        if any(e > p for e, p in zip(extent, padded)):
            raise ValueError(
                f"kernel_size {kernel} with dilation {dilations} spans {extent}, larger than the "
                f"padded input {padded} (input_size {size}, padding {pads})"
            )
        return geometry

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return len(self.kernel_size)

    @property
    def kernel_extent(self) -> tuple[int, ...]:
        """Span of the dilated kernel, ``dilation * (k - 1) + 1``."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    @property
    def padded_size(self) -> tuple[int, ...]:
        """Input size after zero padding, ``in + before + after``."""
        return tuple(n + b + a for n, (b, a) in zip(self.input_size, self.padding))

    @property
    def output_size(self) -> tuple[int, ...]:
        """Spatial output size, ``floor((padded - extent) / stride) + 1``."""
        return tuple((p - e) // s + 1 for p, e, s in zip(self.padded_size, self.kernel_extent, self.stride))

    @property
    def leftover(self) -> tuple[int, ...]:
        """Padded rows past the last window, ``(padded - extent) mod stride``.

        They are read by no window and so receive zero gradient.
        """
        return tuple((p - e) % s for p, e, s in zip(self.padded_size, self.kernel_extent, self.stride))

    @property
    def kernel_volume(self) -> int:
        """Number of kernel offsets, ``prod(kernel_size)``."""
        return math.prod(self.kernel_size)

    @property
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
    stride, dilation : int or sequence of int, optional
        Per-dimension stride and kernel dilation (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"``, symmetric amounts or ``(before, after)``
        pairs (default 0).

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
