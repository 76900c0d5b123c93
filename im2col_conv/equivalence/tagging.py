"""Reading many coefficients per call by place value ("tagging").

A bilinear map ``F(u, v)[r] = sum_{a,b} T[r, a, b] u[a] v[b]`` applied to a
basis array ``v = e_b`` and a *tagged* ``u`` with ``u[a] = B ** pos(a)`` for
the entries ``a`` of a chunk (zero elsewhere) returns

    F(u, e_b)[r] = sum over the chunk of T[r, a, b] * B ** pos(a),

a number written in base ``B`` whose digits are the coefficients. When every
coefficient is an integer in ``[0, B)`` there is no carry, and the digits,
read back by repeated division, are exactly ``T[r, a, b]``: one call reads a
whole chunk instead of one coefficient.

The bound. The reference maps (`reference`)
have coefficients 0 or 1 only: each is the number of index triples
``s = p * stride + k * dilation - before`` linking one output entry to one
pair of operand entries, and a triple is fixed by the pair. With ``B = 4``
(the default) coefficients up to 3 are read exactly, so an implementation
that counts a term twice or three times is reported with the true value.
The chunk has ``m`` digits with ``B ** m`` below the largest integer the
probing dtype holds exactly: ``2 ** 53`` for float64 and complex128 (26
digits), ``2 ** 63`` for int64 (31 digits). Every partial sum an
implementation forms from these non-negative tags is at most the final
value, so float64 arithmetic on them is exact in any summation order, BLAS
included.

What a reading proves. Equal digits mean equal coefficients provided the
implementation's own coefficients lie in ``[0, B)``. That premise is checked
twice: a read value that is negative, not an integer, or not below
``B ** m`` is reported; and `contract` lets the caller compare the
implementation with the read tensor on random signed integer operands
(a mismatch there means the premise, bilinearity or batch independence
failed).

Complex dtypes. The probes of both operands are multiplied by the imaginary
unit, so the expected result is ``-F(u, v)`` for a complex-bilinear map; a
map that conjugates exactly one operand returns ``+F(u, v)`` and its digits
come out negative, which is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .probing import ProbeError

__all__ = ["Tags", "contract", "decode", "most_terms", "read_per_sample", "read_summed"]

_INT = np.int64


@dataclass(frozen=True)
class Tags:
    """Place values for one probing dtype.

    Attributes
    ----------
    dtype : numpy.dtype
        int64, float64 or complex128.
    base : int
        ``B``; coefficients in ``[0, B)`` are read exactly (default 4).
    terms : int
        The most products any one result sums (default 1); see `digits`.
    """

    dtype: np.dtype[np.generic]
    base: int = 4
    terms: int = 1

    @property
    def digits(self) -> int:
        """Digits per number: the largest ``m`` with ``B ** m`` exactly representable and below the limit.

        For integer dtypes the limit also leaves room for ``terms`` products
        of a tag by a unit: the library refuses an integer call whose
        worst-case partial sum ``terms * max|tag|`` could leave the type.
        """
        if self.dtype.kind in "iu":
            limit_bits = 8 * self.dtype.itemsize - 2 - math.ceil(math.log2(max(self.terms, 1)))
        else:  # mantissa bits of the real type, less one for the bound
            limit_bits = int(np.finfo(self.dtype).nmant)  # type: ignore[type-var]
        return max(1, int(limit_bits // math.log2(self.base)))

    @property
    def phase(self) -> complex:
        """Factor of each operand's probes: ``1j`` for complex dtypes, else 1."""
        return 1j if self.dtype.kind == "c" else 1

    def values(self, count: int, start: int = 0) -> NDArray[np.generic]:
        """``phase * B ** (start + arange(count))`` in the probing dtype."""
        powers = np.array([self.base ** (start + j) for j in range(count)], dtype=_INT)
        return (
            (powers * self.phase).astype(self.dtype) if self.dtype.kind == "c" else powers.astype(self.dtype)
        )


def decode(values: NDArray[np.generic], count: int, tags: Tags, what: str) -> NDArray[np.int64]:
    """Digits of packed results.

    Parameters
    ----------
    values : ndarray, shape (...)
        Results of probes whose two operands carry ``tags.phase`` each.
    count : int
        Number of digits packed.
    tags : Tags
    what : str
        Named in the error message.

    Returns
    -------
    ndarray of int64, shape (..., count)
        Digit ``j`` of every value (least significant first).

    Raises
    ------
    ProbeError
        If a value is not an integer in ``[0, B ** count)`` once the phase is removed.
    """
    array = np.asarray(values)
    if tags.dtype.kind == "c":
        plain = -array  # (i u)(i v) = -uv: undo the two phases exactly
        if np.any(plain.imag != 0):
            raise ProbeError(f"{what}: a probe with imaginary operands returned a non-real coefficient")
        array = plain.real
    limit = tags.base**count
    if array.dtype.kind == "f":
        if (
            not np.all(np.isfinite(array))
            or np.any(array != np.round(array))
            or np.any(np.abs(array) >= 2.0 ** (np.finfo(array.dtype).nmant + 1))
        ):
            raise ProbeError(f"{what}: a probe returned a value that is not an exact integer")
    integers = array.astype(_INT)
    if np.any(integers < 0) or np.any(integers >= limit):
        bad = integers[(integers < 0) | (integers >= limit)].ravel()[0]
        raise ProbeError(
            f"{what}: packed value {int(bad)} is outside [0, {tags.base}**{count}): a coefficient is "
            f"negative or at least {tags.base} (or, for complex data, an operand is conjugated)"
        )
    powers = np.array([tags.base**j for j in range(count)], dtype=_INT)
    return (integers[..., None] // powers) % tags.base


#: ``call(tagged, basis_indices)``: the per-sample map applied to a batch whose
#: sample ``n`` is basis array ``basis_indices[n]`` and whose shared operand is
#: ``tagged`` (flat, probing dtype); returns ``(len(basis_indices), rows)``.
PerSampleCall = Callable[[NDArray[np.generic], Sequence[int]], NDArray[np.generic]]


def read_per_sample(
    call: PerSampleCall, rows: int, tagged_count: int, basis_count: int, tags: Tags, batch: int, what: str
) -> NDArray[np.int64]:
    """Coefficients of a map whose samples are independent: ``out[n] = F(t, v[n])``.

    Parameters
    ----------
    call : callable
        See `PerSampleCall`.
    rows, tagged_count, basis_count : int
        Entries of one result sample, of the shared operand and of one sample of the other.
    tags : Tags
    batch : int
        Most samples per call.
    what : str
        For error messages.

    Returns
    -------
    ndarray of int64, shape (rows, tagged_count, basis_count)
        ``T[r, a, b]``: coefficient of ``t[a] * v[b]`` in ``out[r]``.
    """
    tensor = np.zeros((rows, tagged_count, basis_count), dtype=_INT)
    m = tags.digits
    for start in range(0, tagged_count, m):
        count = min(m, tagged_count - start)
        tagged = np.zeros(tagged_count, dtype=tags.dtype)
        tagged[start : start + count] = tags.values(count)
        for first in range(0, basis_count, batch):
            indices = list(range(first, min(first + batch, basis_count)))
            out = np.asarray(call(tagged, indices))
            if out.shape != (len(indices), rows):
                raise ProbeError(f"{what}: result of shape {out.shape}, expected {(len(indices), rows)}")
            digits = decode(out, count, tags, what)  # (nb, rows, count)
            tensor[:, start : start + count, first : first + len(indices)] = digits.transpose(1, 2, 0)
    return tensor


#: ``call(u, v)`` with ``u`` of shape ``(N, A)`` and ``v`` of shape ``(N, X)``:
#: the batch-summed map; returns ``(rows,)`` and optionally a second result
#: linear in ``u`` alone, of shape ``(rows_u,)`` (the bias gradient), or None.
SummedCall = Callable[
    [NDArray[np.generic], NDArray[np.generic]], tuple[NDArray[np.generic], NDArray[np.generic] | None]
]


def read_summed(
    call: SummedCall,
    rows: int,
    rows_u: int,
    u_count: int,
    v_count: int,
    tags: Tags,
    batch: int,
    what: str,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Coefficients of a batch-summed map ``out = sum_n F(u[n], v[n])`` (and of ``sum_n G(u[n])``).

    Each sample carries one basis array ``v[n] = e_b`` and a tagged chunk of
    ``u``; the chunks of all samples of a call use different digit
    positions, so one call reads up to ``tags.digits`` coefficients per
    result entry from several samples at once.

    Returns
    -------
    pair : ndarray of int64, shape (rows, u_count, v_count)
        ``T[r, a, b]``: coefficient of ``u[a] * v[b]`` in ``out[r]``.
    single : ndarray of int64, shape (rows_u, u_count)
        ``G[r, a]``: coefficient of ``u[a]`` in the second result (zeros if
        the call returns None). Every reading of it must agree.

    Raises
    ------
    ProbeError
        For a bad value (see `decode`) or readings of ``G`` that differ.
    """
    pair = np.zeros((rows, u_count, v_count), dtype=_INT)
    single = np.full((rows_u, u_count), -1, dtype=_INT)
    m = tags.digits
    jobs = [(b, a0, min(m, u_count - a0)) for b in range(v_count) for a0 in range(0, u_count, m)]
    calls: list[list[tuple[int, int, int]]] = [[]]
    for job in jobs:
        used = sum(j[2] for j in calls[-1])
        if calls[-1] and (used + job[2] > m or len(calls[-1]) >= batch):
            calls.append([])
        calls[-1].append(job)
    for group in calls if jobs else []:
        u = np.zeros((len(group), u_count), dtype=tags.dtype)
        v = np.zeros((len(group), v_count), dtype=tags.dtype)
        position = 0
        for n, (b, a0, count) in enumerate(group):
            u[n, a0 : a0 + count] = tags.values(count, position)
            v[n, b] = tags.phase
            position += count
        out, second = call(u, v)
        digits = decode(np.asarray(out).reshape(rows), position, tags, what)
        second_digits = None
        if second is not None:
            # The second result is linear in u alone: undo v's phase by multiplying by it again.
            second_digits = decode(
                np.multiply(np.asarray(second).reshape(rows_u), tags.phase), position, tags, what
            )
        position = 0
        for b, a0, count in group:
            pair[:, a0 : a0 + count, b] = digits[:, position : position + count]
            if second_digits is not None:
                reading = second_digits[:, position : position + count]
                known = single[:, a0 : a0 + count]
                if np.any((known >= 0) & (known != reading)):
                    raise ProbeError(f"{what}: the bias gradient read differently from two calls")
                single[:, a0 : a0 + count] = reading
            position += count
    return pair, np.maximum(single, 0)


def contract(tensor: NDArray[Any], u: NDArray[Any], v: NDArray[Any]) -> NDArray[Any]:
    """``sum_{a,b} T[r, a, b] u[..., a] v[..., b]`` in exact arithmetic (object integers when needed).

    Parameters
    ----------
    tensor : ndarray of int64, shape (rows, A, X)
    u : ndarray, shape (..., A)
    v : ndarray, shape (..., X)

    Returns
    -------
    ndarray, shape (..., rows)
    """
    result: NDArray[Any] = np.einsum("rab,...a,...b->...r", tensor, u, v)
    return result


def most_terms(layout: Any, batch: int) -> int:
    """The most products one entry of any of a convolution's maps sums, for `Tags`.

    The forward sums ``C_in/groups * prod(kernel)`` products per output, the
    input gradient ``C_out/groups * prod(kernel)``, and the weight gradient
    ``batch * prod(output_size)``.
    """
    volume = math.prod(layout.kernel_size)
    per_group = max(layout.in_channels, layout.out_channels) // layout.groups
    return int(max(per_group * volume, batch * math.prod(layout.output_size), 1))
