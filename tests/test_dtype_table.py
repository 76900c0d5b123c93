"""The dtype table on the docs page is the library's behaviour, cell by cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import im2col_conv as ic

PAGE = Path(__file__).resolve().parent.parent / "docs" / "dtypes.md"
LONG = {"b": "bool", "i": "int", "u": "uint", "f": "float", "c": "complex"}


def _dtype(short: str) -> np.dtype:
    return np.dtype(LONG[short[0]] + short[1:])


def _table() -> list[tuple[str, str, str]]:
    lines = [line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    header = next(i for i, line in enumerate(lines) if line.startswith("| input \\ weight"))
    columns = [c.strip() for c in lines[header].strip("|").split("|")][1:]
    cells = []
    for line in lines[header + 1 :]:
        parts = [c.strip().strip("*") for c in line.strip("|").split("|")]
        if len(parts) != len(columns) + 1:
            break
        cells += [(parts[0], column, result) for column, result in zip(columns, parts[1:])]
    return cells


TABLE = _table()


def test_the_table_covers_every_pair():
    assert len(TABLE) == 14 * 14


@pytest.mark.parametrize(("row", "column", "result"), TABLE)
def test_conv_returns_the_documented_dtype(row, column, result):
    y = ic.conv(np.ones((1, 1, 3), _dtype(row)), np.ones((1, 1, 2), _dtype(column)))
    assert y.dtype == _dtype(result)
