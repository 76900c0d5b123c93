"""The rules every public argument is checked against, each written once.

This is the lowest layer of the package: it imports nothing from it. Every
entry point (the im2col path, the direct method, the layer, pooling) checks
its scalars and arrays with these functions, so a rule such as "an integer,
but not a bool" has exactly one definition and one error message.

Messages name the argument, the value received and the rule it broke.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "all_ints",
    "as_flag",
    "as_int",
    "as_numeric_array",
    "batch_view",
    "check_bias",
    "check_choice",
    "check_grad_output",
    "check_groups",
    "check_workspace",
    "int_tuple",
    "is_sequence",
    "kernel_size_for",
    "nonempty_spatial",
    "nonzero_int",
    "plain_values",
    "pool_padding",
    "positive_int",
    "weight_rank",
]


_INT_ONLY = {int}


def all_ints(values: tuple[object, ...]) -> bool:
    """True when every entry of a non-empty tuple is a plain ``int`` (not a bool or a NumPy integer)."""
    return bool(values) and set(map(type, values)) == _INT_ONLY


def plain_values(*values: object) -> bool:
    """True when every value is an int, a str, or a non-empty tuple of ints and such tuples of ints.

    Equal values of these exact types are checked alike, so a check made once
    may be remembered for them. A bool, a float or a NumPy integer equals the
    int of the same value but is refused or read by another rule: none is plain.
    """
    for value in values:
        if type(value) is int or type(value) is str:
            continue
        if type(value) is not tuple or not value:
            return False
        for entry in value:
            if type(entry) is tuple:
                # Loops, not all() over a generator: this runs on every call.
                if not entry:
                    return False
                for item in entry:
                    if type(item) is not int:
                        return False
            elif type(entry) is not int:
                return False
    return True


def is_sequence(value: object) -> bool:
    """True for lists, tuples and arrays of values; False for scalars, 0-d arrays and strings."""
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def as_int(value: object, name: str) -> int:
    """``value`` as a Python int; bools, floats and strings are refused.

    A 0-d integer array counts as an int. ``True`` is an ``int`` subclass,
    but ``stride=True`` is always a mistake.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    """
    if type(value) is int:  # the common case, without the costlier checks below
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    return int(value)


def nonzero_int(value: object, name: str) -> int:
    """`as_int`, also refusing 0.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is 0.
    """
    number = as_int(value, name)
    if number == 0:
        raise ValueError(f"{name} must be a non-zero int, got {number}")
    return number


def positive_int(value: object, name: str) -> int:
    """`as_int`, also refusing values below 1.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is smaller than 1.
    """
    number = as_int(value, name)
    if number < 1:
        raise ValueError(f"{name} must be >= 1, got {number}")
    return number


def int_tuple(value: object, ndim: int, name: str, *, minimum: int) -> tuple[int, ...]:
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
    if type(value) is int and value >= minimum:
        return (value,) * ndim
    if type(value) is tuple and len(value) == ndim and all_ints(value) and min(value) >= minimum:
        return value
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got {value!r}")
    if is_sequence(value):
        entries = tuple(as_int(v, name) for v in value)  # type: ignore[attr-defined]
        if len(entries) != ndim:
            raise ValueError(
                f"{name} must have one entry per spatial dimension ({ndim}), "
                f"got {len(entries)} entries: {value!r}"
            )
    else:
        entries = (as_int(value, name),) * ndim
    if any(v < minimum for v in entries):
        raise ValueError(f"{name} entries must be >= {minimum}, got {value!r}")
    return entries


def pool_padding(padding: object, kernel_size: tuple[int, ...]) -> tuple[int, ...]:
    """A pooling ``padding``: one non-negative int per dimension, at most half the kernel.

    PyTorch's rule: ``padding <= kernel_size // 2`` in every dimension, so
    that every window starting in the padding also reads the input.

    Raises
    ------
    TypeError
        If an entry is not an integer (pairs and strings included).
    ValueError
        For a wrong number of entries, a negative entry or one above half
        the kernel.
    """
    pads = int_tuple(padding, len(kernel_size), "padding", minimum=0)
    if any(p > k // 2 for p, k in zip(pads, kernel_size)):
        raise ValueError(
            f"padding must be at most half of kernel_size in every dimension, "
            f"got padding={padding!r} for kernel_size={kernel_size}"
        )
    return pads


def nonempty_spatial(shape: tuple[int, ...], ndim: int, name: str) -> None:
    """Refuse an array of shape ``shape`` whose last ``ndim`` (spatial) sizes include 0.

    Raises
    ------
    ValueError
        Naming the shape.
    """
    if 0 in shape[len(shape) - ndim :]:
        raise ValueError(f"{name} must have non-empty spatial dimensions, got shape {shape}")


def kernel_size_for(kernel_size: object, ndim: object) -> tuple[int, ...]:
    """A layer's kernel size: its length fixes the dimensions, or ``ndim`` (default 2) does.

    Raises
    ------
    TypeError
        If an entry or ``ndim`` is not an integer.
    ValueError
        If the kernel size is empty, an entry is below 1, or ``ndim``
        disagrees with the length of ``kernel_size``.
    """
    dims = None if ndim is None else positive_int(ndim, "ndim")
    if is_sequence(kernel_size):
        d = len(kernel_size)  # type: ignore[arg-type]
        if d < 1:
            raise ValueError(f"kernel_size must have at least one entry, got {kernel_size!r}")
        if dims is not None and dims != d:
            raise ValueError(f"ndim={dims} disagrees with kernel_size={kernel_size!r} ({d} entries)")
    else:
        d = 2 if dims is None else dims
    return int_tuple(kernel_size, d, "kernel_size", minimum=1)


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``.

    Raises
    ------
    ValueError
        Naming the allowed values otherwise.
    """
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_workspace(workspace: object) -> int:
    """Validate a ``workspace`` argument (bytes) and return it as an int.

    Raises
    ------
    TypeError
        If it is not an integer.
    ValueError
        If it is not positive.
    """
    try:
        number = as_int(workspace, "workspace")
    except TypeError:
        raise TypeError(f"workspace must be an int number of bytes, got {workspace!r}") from None
    if number <= 0:
        raise ValueError(f"workspace must be a positive number of bytes, got {number}")
    return number


def as_flag(value: object, name: str) -> bool:
    """``value`` if it is True or False (a NumPy bool counts); anything else is refused.

    Raises
    ------
    TypeError
        For any other value, ``1`` and ``"yes"`` included.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} of type {type(value).__name__}")
    return bool(value)


def as_numeric_array(value: ArrayLike, name: str) -> NDArray[Any]:
    """Return ``value`` as an ndarray, refusing dtypes that are not numbers.

    Integers, floats, complex numbers and bools (which count as 0 and 1) are
    numbers; strings, objects and datetimes have no meaningful
    multiply-accumulate, so they are rejected rather than silently cast. A
    masked array is refused too: its mask would be silently dropped.

    Raises
    ------
    TypeError
        If the dtype is not a number's, or ``value`` is a masked array.
    """
    if type(value) is np.ndarray:  # neither masked nor to convert: the common case, checked cheaply
        array = value
    else:
        array = _as_array(value, name)
    if array.dtype.kind not in "biufc":
        raise TypeError(
            f"{name} must have a bool, integer, floating or complex dtype, got dtype {array.dtype}"
        )
    return array


def _as_array(value: ArrayLike, name: str) -> NDArray[Any]:
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array, whose mask would be ignored; pass {name}.filled(fill_value) "
            "or the plain data"
        )
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}: {exc}") from exc


def batch_view(x: NDArray[Any], spatial_ndim: int, name: str) -> tuple[NDArray[Any], bool]:
    """View ``x`` as batched ``(N, C, *spatial)``; report whether it was unbatched.

    Raises
    ------
    ValueError
        If ``x.ndim`` is neither ``spatial_ndim + 2`` nor ``spatial_ndim + 1``.
    """
    if x.ndim == spatial_ndim + 2:
        return x, False
    if x.ndim == spatial_ndim + 1:
        return x[np.newaxis], True
    raise ValueError(
        f"{name} must have shape (N, C, *spatial) or (C, *spatial) with {spatial_ndim} spatial "
        f"dimension(s), i.e. ndim {spatial_ndim + 2} or {spatial_ndim + 1}; got shape {x.shape}"
    )


def weight_rank(weight: NDArray[Any], layout: str) -> int:
    """Number of spatial dimensions of a kernel whose leading axes are ``layout``.

    Raises
    ------
    ValueError
        If the kernel has no spatial axis.
    """
    if weight.ndim < 3:
        raise ValueError(
            f"weight must have shape ({layout}, *kernel) with at least one spatial "
            f"dimension, got shape {weight.shape}"
        )
    return weight.ndim - 2


def check_groups(groups: object, channels: dict[str, int], weight_shape: tuple[int, ...]) -> int:
    """Validate ``groups`` against every channel count it must divide.

    Parameters
    ----------
    groups : object
        The user's argument.
    channels : dict of str to int
        Channel counts by name, e.g. ``{"input": 4, "output": 6}``.
    weight_shape : tuple of int
        Shown in the message.

    Raises
    ------
    TypeError
        If ``groups`` is not an integer.
    ValueError
        If it is below 1 or does not divide a channel count.
    """
    g = positive_int(groups, "groups")
    if g != 1 and any(count % g for count in channels.values()):
        counts = " and ".join(f"the {what} channels ({count})" for what, count in channels.items())
        both = "both " if len(channels) == 2 else ""
        raise ValueError(f"groups={g} must divide {both}{counts}; weight shape {weight_shape}")
    return g


def check_bias(bias: ArrayLike | None, c_out: int, dtype: np.dtype[Any]) -> NDArray[Any] | None:
    """``bias`` as an array of shape ``(c_out,)`` in ``dtype``, or None.

    Raises
    ------
    TypeError
        If it is not numeric.
    ValueError
        If its shape is not ``(c_out,)``.
    """
    if bias is None:
        return None
    b = as_numeric_array(bias, "bias")
    if b.shape != (c_out,):
        raise ValueError(
            f"bias must have shape ({c_out},) (one entry per output channel), got shape {b.shape}"
        )
    return b.astype(dtype, copy=False)


def check_grad_output(given: NDArray[Any], expected: tuple[int, ...], unbatched: bool) -> NDArray[Any]:
    """``grad_output`` as a batched array, checked against the forward output's batched shape.

    Raises
    ------
    ValueError
        If its shape is not the forward output's.
    """
    batched = given[np.newaxis] if unbatched else given
    if batched.shape != expected:
        shown = expected[1:] if unbatched else expected
        raise ValueError(f"grad_output must have the forward output's shape {shown}, got {given.shape}")
    return batched
