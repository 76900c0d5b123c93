"""Every function that mirrors a PyTorch function takes the same positional order and names.

A user porting ``F.unfold(x, 3, 1, 1, 2)`` must get the same meaning from
``im2col(x, 3, 1, 1, 2)``. The table below is written from PyTorch's
documentation; when torch is installed, its own signatures are compared too.
Parameters PyTorch does not have must be keyword-only.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import im2col_conv as ic
from im2col_conv import direct

#: function -> (torch name, torch's positional parameters in order), from PyTorch's documentation.
MIRRORS = {
    ic.im2col: ("unfold", ["input", "kernel_size", "dilation", "padding", "stride"]),
    ic.col2im: ("fold", ["input", "output_size", "kernel_size", "dilation", "padding", "stride"]),
    ic.conv: ("conv2d", ["input", "weight", "bias", "stride", "padding", "dilation", "groups"]),
    ic.conv_forward: ("conv2d", ["input", "weight", "bias", "stride", "padding", "dilation", "groups"]),
    direct.conv: ("conv2d", ["input", "weight", "bias", "stride", "padding", "dilation", "groups"]),
    ic.conv_transpose: (
        "conv_transpose2d",
        ["input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"],
    ),
}

#: Functions with no PyTorch twin follow the forward's order after grad_output.
BACKWARDS = {
    ic.conv_backward: ["grad_output", "input", "weight", "stride", "padding", "dilation", "groups"],
    direct.conv_backward: ["grad_output", "input", "weight", "stride", "padding", "dilation", "groups"],
}


def _positional(fn):
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _keyword_only(fn):
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY}


@pytest.mark.parametrize("fn", list(MIRRORS), ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_positional_order_matches_the_written_table(fn):
    assert _positional(fn) == MIRRORS[fn][1]


@pytest.mark.parametrize("fn", list(BACKWARDS), ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_backward_order(fn):
    assert _positional(fn) == BACKWARDS[fn]


@pytest.mark.parametrize("fn", [*MIRRORS, *BACKWARDS], ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_extra_parameters_are_keyword_only(fn):
    assert _keyword_only(fn) <= {"workspace", "columns"}
    assert not (set(_positional(fn)) & {"workspace", "columns"})


def _torch_parameters(torch_fn):
    """Names of a torch function's parameters, from its signature or its documented one."""
    try:
        return [
            p.name
            for p in inspect.signature(torch_fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        # Built-in operators document their signature on the first line of the docstring.
        first = torch_fn.__doc__.strip().splitlines()[0]
        inside = re.search(r"\((.*)\)", first).group(1)
        return [part.split("=")[0].strip() for part in inside.split(",") if part.strip() not in ("*", "")]


@pytest.mark.parametrize("fn", list(MIRRORS), ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_positional_order_matches_torch(fn):
    functional = pytest.importorskip("torch.nn.functional")
    name, _ = MIRRORS[fn]
    expected = _torch_parameters(getattr(functional, name))
    assert _positional(fn) == expected[: len(_positional(fn))]


def test_the_reported_port_means_the_same():
    # F.unfold(x, 3, 1, 1, 2) reads (dilation=1, padding=1, stride=2).
    x = np.arange(2 * 3 * 11 * 9, dtype=float).reshape(2, 3, 11, 9)
    assert ic.im2col(x, 3, 1, 1, 2).shape == (2, 27, 30)
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.unfold(torch.from_numpy(x), 3, 1, 1, 2).numpy()
    np.testing.assert_array_equal(ic.im2col(x, 3, 1, 1, 2), expected)
    cols = ic.im2col(x, 3, 1, 1, 2)
    folded = torch.nn.functional.fold(torch.from_numpy(cols), (11, 9), 3, 1, 1, 2).numpy()
    np.testing.assert_array_equal(ic.col2im(cols, (11, 9), 3, 1, 1, 2), folded)


def test_conv_transpose_positional_groups_then_dilation():
    x = np.ones((1, 4, 3, 3))
    w = np.ones((4, 1, 2, 2))
    # positional: bias, stride, padding, output_padding, groups, dilation
    y = ic.conv_transpose(x, w, None, 1, 0, 0, 2, 3)
    assert y.shape == (1, 2, 6, 6)
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), None, 1, 0, 0, 2, 3)
    np.testing.assert_array_equal(y, t.numpy())
