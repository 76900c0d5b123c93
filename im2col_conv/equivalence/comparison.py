"""Comparing two coefficient matrices entry by entry, and naming the first difference in words."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .probing import ProbeError
from .results import Identity

__all__ = [
    "Describer",
    "Operand",
    "bilinear_matrix",
    "compare",
    "entry_describer",
    "index_text",
    "pair_describer",
]

#: ``describe(row, col)``: one coefficient of a matrix, in words.
Describer = Callable[[int, int], str]
#: An operand: its name and the shape of one sample.
Operand = tuple[str, tuple[int, ...]]


def index_text(name: str, shape: tuple[int, ...], flat: int) -> str:
    """``name[i, j, ...]`` for the row-major flat index ``flat`` of an array of ``shape``."""
    return f"{name}[{', '.join(str(int(i)) for i in np.unravel_index(flat, shape))}]"


def pair_describer(out: Operand, u: Operand, v: Operand) -> Describer:
    """Name coefficient ``(row, col)`` of a bilinear map's matrix: row ``out``, column the pair ``(u, v)``.

    Examples
    --------
    >>> describe = pair_describer(("y", (2,)), ("w", (1,)), ("x", (3,)))
    >>> describe(1, 2)
    'coefficient of w[0] * x[2] in y[1]'
    """
    count_v = math.prod(v[1])

    def describe(row: int, col: int) -> str:
        return (
            f"coefficient of {index_text(*u, col // count_v)} * {index_text(*v, col % count_v)} "
            f"in {index_text(*out, row)}"
        )

    return describe


def entry_describer(out: Operand, operand: Operand) -> Describer:
    """Name coefficient ``(row, col)`` of a linear map's matrix.

    Examples
    --------
    >>> entry_describer(("cols", (2, 2)), ("x", (3,)))(3, 1)
    'coefficient of x[1] in cols[1, 1]'
    """

    def describe(row: int, col: int) -> str:
        return f"coefficient of {index_text(*operand, col)} in {index_text(*out, row)}"

    return describe


def bilinear_matrix(tensor: NDArray[np.integer]) -> sp.csr_array:
    """``T[out, u, v]`` as a sparse matrix: rows ``out``, columns the pairs ``(u, v)`` row-major."""
    return sp.csr_array(tensor.reshape(tensor.shape[0], -1))


#: ``compute(side)`` builds side 0 or side 1 of an identity.
Side = Callable[[int], tuple[sp.csr_array, Describer]]


def compare(name: str, statement: str, labels: tuple[str, str], compute: Side) -> Identity:
    """Compare two sparse coefficient matrices exactly.

    Parameters
    ----------
    name, statement : str
        For the returned `Identity`.
    labels : (str, str)
        Names of the two sides, used in the mismatch report.
    compute : callable
        ``compute(side)`` returns the matrix of side 0 or 1 and a describer of
        its coefficients. A `ProbeError` or any other exception is
        reported as a failed identity, never propagated.

    Returns
    -------
    Identity
        Held if the matrices have the same shape and entries; otherwise the
        mismatch names the first differing coefficient (row-major order).
    """
    matrices = []
    describe: Describer | None = None
    for side in (0, 1):
        try:
            matrix, describe = compute(side)
        except ProbeError as exc:
            return Identity(name, statement, False, 0, str(exc))
        except Exception as exc:
            return Identity(name, statement, False, 0, f"{labels[side]} raised {type(exc).__name__}: {exc}")
        matrices.append(matrix)
    first, second = matrices
    assert describe is not None
    size = first.shape[0] * first.shape[1]
    if first.shape != second.shape:
        return Identity(name, statement, False, 0, f"matrix shapes differ: {first.shape} and {second.shape}")
    difference = (first - second).tocoo()
    difference.eliminate_zeros()
    if difference.nnz == 0:
        return Identity(name, statement, True, size)
    order = np.lexsort((difference.col, difference.row))[0]
    row, col = int(difference.row[order]), int(difference.col[order])
    a, b = first[row, col], second[row, col]
    detail = f"first difference: {describe(row, col)}: {labels[0]} {_number(a)}, {labels[1]} {_number(b)}"
    return Identity(name, statement, False, size, detail)


def _number(value: object) -> str:
    """An exact coefficient as text: integers without a decimal point."""
    if isinstance(value, complex | np.complexfloating):
        return str(complex(value))
    number = float(value)  # type: ignore[arg-type]
    return str(int(number)) if number.is_integer() else repr(number)
