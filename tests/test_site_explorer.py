"""The explorer page's arithmetic and highlights, against the library's own index sets.

The page's script (``docs/javascripts/explorer.js``) computes, for one
geometry, which input entry each column-matrix entry copies, which column
entries col2im adds into each input entry, and which (kernel offset, output
position) pairs formula (8) meets at each input entry, with the cells of the
dilated, padded gradient and the taps of the rotated kernel they sit in. Here
the same sets come from the library alone: ``im2col`` of an input holding
distinct values, ``col2im`` of one-hot column matrices, ``direct.conv_backward``
of one-hot kernels and gradients, ``direct.dilate``/``direct.pad`` of numbered
gradients and ``direct.rot180`` of a numbered kernel. Nothing is shared with
the script but the geometry.

Then the page itself is driven: the controls are set, cells are pointed at
and clicked, and what lights up must be those sets.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from math import prod
from typing import Any

import numpy as np
import pytest
from site_browser import WIDTHS, Visit, browser, server

import im2col_conv as ic
from im2col_conv import direct

__all__ = ["browser", "server"]  # fixtures, imported for pytest

# (size, kernel, stride, padding, dilation, channels): 1-D and 2-D, strides that do and do
# not divide, padding, dilation, several channels.
GEOMETRIES = [
    ((5,), (3,), (1,), (0,), (1,), 1),
    ((5,), (3,), (2,), (0,), (1,), 1),
    ((6,), (3,), (2,), (0,), (1,), 1),
    ((7,), (2,), (3,), (1,), (1,), 1),
    ((9,), (3,), (2,), (0,), (2,), 1),
    ((8,), (3,), (1,), (2,), (2,), 2),
    ((4,), (4,), (1,), (3,), (1,), 1),
    ((10,), (3,), (4,), (1,), (1,), 1),
    ((6,), (1,), (2,), (0,), (1,), 2),
    ((5,), (2,), (2,), (1,), (3,), 1),
    ((5, 5), (3, 3), (2, 2), (0, 0), (1, 1), 1),
    ((6, 6), (3, 3), (2, 2), (0, 0), (1, 1), 1),
    ((5, 4), (3, 2), (2, 1), (1, 0), (1, 1), 1),
    ((7, 7), (3, 3), (1, 1), (1, 1), (2, 2), 1),
    ((6, 5), (2, 3), (3, 2), (1, 1), (1, 2), 1),
    ((4, 4), (1, 1), (2, 2), (0, 0), (1, 1), 1),
    ((8, 8), (3, 3), (3, 3), (2, 2), (1, 1), 1),
    ((5, 5), (2, 2), (1, 1), (0, 0), (1, 1), 2),
    ((7, 6), (3, 3), (2, 3), (0, 2), (2, 1), 1),
    ((3, 3), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((9, 9), (3, 3), (2, 2), (1, 1), (3, 3), 1),
    ((6, 6), (4, 4), (4, 4), (3, 3), (1, 1), 2),
]


def _spec(geometry: tuple[Any, ...]) -> dict[str, Any]:
    size, kernel, stride, padding, dilation, channels = geometry
    return {
        "size": list(size),
        "kernel": list(kernel),
        "stride": list(stride),
        "padding": list(padding),
        "dilation": list(dilation),
        "channels": channels,
    }


@functools.cache
def library_sets(geometry: tuple[Any, ...]) -> dict[str, Any]:
    """The explorer's index sets, from the library's public functions only."""
    size, kernel, stride, padding, dilation, channels = geometry
    inputs = channels * prod(size)
    arguments = {"dilation": dilation, "padding": padding, "stride": stride}
    # im2col of 1, 2, ...: each entry names the input it copies; padding reads 0.
    x = np.arange(1, inputs + 1).reshape(1, channels, *size)
    columns = ic.im2col(x, kernel, **arguments)[0] - 1
    rows, positions = columns.shape
    out = ic.output_size(size, kernel, stride=stride, padding=padding, dilation=dilation)
    # col2im of one one-hot column matrix per entry, as one batch.
    one_hot = np.eye(rows * positions, dtype=np.int64).reshape(-1, rows, positions)
    added = ic.col2im(one_hot, size, kernel, **arguments).reshape(rows * positions, inputs)
    scatter: list[set[tuple[int, int]]] = [set() for _ in range(inputs)]
    for entry, i in zip(*np.nonzero(added)):
        scatter[i].add(divmod(int(entry), positions))
    # Formula (8) in the reference implementation: one-hot kernel tap, one-hot gradient.
    met: list[set[tuple[int, int]]] = [set() for _ in range(inputs)]
    gradients = np.eye(positions, dtype=np.int64).reshape(positions, 1, *out)
    zeros = np.zeros((positions, channels, *size), dtype=np.int64)
    for row in range(rows):
        weight = np.zeros((1, channels, *kernel), dtype=np.int64)
        weight.flat[row] = 1
        got = direct.conv_backward(gradients, zeros, weight, **arguments).input.reshape(positions, inputs)
        for o, i in zip(*np.nonzero(got)):
            met[i].add((row, int(o)))
    # Where each output position sits in the dilated, padded gradient, and each offset
    # in the rotated kernel.
    geometry_object = ic.ConvGeometry.create(size, kernel, stride=stride, padding=padding, dilation=dilation)
    numbered = np.arange(1, positions + 1).reshape(1, 1, *out)
    around = [(e - 1, e - 1 + r) for e, r in zip(geometry_object.kernel_extent, geometry_object.leftover)]
    grid = direct.pad(direct.dilate(numbered, stride), around)[0, 0]
    cell = {int(v) - 1: int(c) for c, v in enumerate(grid.ravel()) if v}
    rotated = direct.rot180(np.arange(prod(kernel)).reshape(1, 1, *kernel))[0, 0].ravel()
    tap = {int(k): m for m, k in enumerate(rotated)}
    taps = prod(kernel)
    direct_terms = [{(r, o, tap[r % taps], cell[o]) for r, o in pairs} for pairs in met]
    return {
        "output": list(out),
        "mapSize": list(grid.shape),
        "columns": columns.tolist(),
        "scatter": scatter,
        "direct": direct_terms,
    }


@pytest.fixture(scope="module")
def explorer(browser, server) -> Iterator[Visit]:
    visit = Visit(browser, server, "explorer/", WIDTHS["desktop"])
    try:
        visit.page.wait_for_function("() => window.Im2colExplorer && document.querySelector('.ex-cell')")
        yield visit
    finally:
        visit.close()


def test_the_oracle_agrees_with_itself():
    # col2im and formula (8) are the same sum: the two library sets must coincide.
    for geometry in GEOMETRIES:
        sets = library_sets(geometry)
        assert [{(r, o) for r, o, _, _ in terms} for terms in sets["direct"]] == sets["scatter"], geometry


def test_there_are_enough_geometries():
    assert len(GEOMETRIES) >= 20
    assert {len(g[0]) for g in GEOMETRIES} == {1, 2}
    assert any(g[3] != (0,) * len(g[0]) for g in GEOMETRIES) and any(max(g[4]) > 1 for g in GEOMETRIES)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_index_sets_equal_the_library(explorer, geometry):
    expected = library_sets(geometry)
    got = explorer.page.evaluate("spec => Im2colExplorer.indexSets(spec)", _spec(geometry))
    assert got["output"] == expected["output"]
    assert got["mapSize"] == expected["mapSize"]
    assert got["columns"] == expected["columns"]
    assert [{tuple(e) for e in entries} for entries in got["scatter"]] == expected["scatter"]
    terms = [{(t["row"], t["column"], t["tap"], t["cell"]) for t in entries} for entries in got["direct"]]
    assert terms == expected["direct"]


def _set_controls(page, geometry: tuple[Any, ...]) -> None:
    size, kernel, stride, padding, dilation, channels = geometry
    page.select_option("[name=dims]", str(len(size)))
    page.fill("[name=channels]", str(channels))
    for name, values in (
        ("size", size),
        ("kernel", kernel),
        ("stride", stride),
        ("padding", padding),
        ("dilation", dilation),
    ):
        for d, value in enumerate(values):
            page.fill(f"[name={name}{d}]", str(value))


# Clicks every output, input and column cell in turn and reads what is lit.
_LIT = """() => {
  const root = document.querySelector('.im2col-explorer');
  const lit = kind => [...root.querySelectorAll(`[data-kind=${kind}].ex-hit`)];
  const read = () => ({
    input: lit('input').map(c => Number(c.dataset.index)),
    pad: lit('pad').length,
    output: lit('output').map(c => Number(c.dataset.index)),
    col: lit('col').map(c => [Number(c.dataset.row), Number(c.dataset.col)]),
    map: lit('map').map(c => Number(c.dataset.index)),
    tap: lit('tap').map(c => Number(c.dataset.index)),
  });
  const after = cell => { cell.click(); return read(); };
  return {
    output: [...root.querySelectorAll('[data-kind=output]')].map(after),
    input: [...root.querySelectorAll('[data-kind=input]')].map(after),
    col: [...root.querySelectorAll('[data-kind=col]')].map(c =>
      [Number(c.dataset.row), Number(c.dataset.col), after(c)]),
  };
}"""


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_what_lights_up_is_the_library_sets(explorer, geometry):
    page = explorer.page
    _set_controls(page, geometry)
    expected = library_sets(geometry)
    columns = np.array(expected["columns"])
    rows, positions = columns.shape
    cell_of = {o: c for terms in expected["direct"] for _, o, _, c in terms}
    tap_of = {r: m for terms in expected["direct"] for r, _, m, _ in terms}

    # A real pointer: hover the last output position, then click the first input entry.
    page.hover(f"[data-kind=output][data-index='{positions - 1}']")
    assert int(page.locator("[data-kind=output].ex-selected").get_attribute("data-index")) == positions - 1
    page.locator("[data-kind=input]").first.click()
    assert page.locator("[data-kind=col].ex-hit").count() == len(expected["scatter"][0])

    lit = page.evaluate(_LIT)
    assert len(lit["output"]) == positions and len(lit["col"]) == rows * positions
    for o, seen in enumerate(lit["output"]):
        reads = columns[:, o]
        assert sorted(seen["input"]) == sorted(reads[reads >= 0].tolist()), (o, seen)
        assert seen["pad"] == int(np.sum(reads < 0))
        assert sorted(map(tuple, seen["col"])) == [(r, o) for r in range(rows)]
        assert seen["output"] == [o]
        if o in cell_of:
            assert seen["map"] == [cell_of[o]]
    for i, seen in enumerate(lit["input"]):
        assert {tuple(e) for e in seen["col"]} == expected["scatter"][i], (i, seen)
        assert set(seen["output"]) == {o for _, o in expected["scatter"][i]}
        assert set(seen["map"]) == {c for _, _, _, c in expected["direct"][i]}
        assert set(seen["tap"]) == {m for _, _, m, _ in expected["direct"][i]}
    for r, o, seen in lit["col"]:
        source = int(columns[r, o])
        assert seen["input"] == ([source] if source >= 0 else []) and seen["pad"] == (source < 0)
        assert seen["output"] == [o] and seen["col"] == [[r, o]]
        if r in tap_of:
            assert seen["tap"] == [tap_of[r]]
