"""Proof that the public functions, on every path of the engine, compute the explicit reference maps.

`prove_engine` reads the coefficient tensors of [`im2col_conv.conv`][im2col_conv.convolution.conv],
[`im2col_conv.conv_backward`][im2col_conv.convolution.conv_backward],
[`im2col_conv.conv_forward`][im2col_conv.convolution.conv_forward] with
kept columns and [`im2col_conv.conv_transpose`][im2col_conv.convolution.conv_transpose] through place-value
probes (`tagging`), and compares every one with
the 0/1 tensors of `reference`. It does so for
each `EnginePath`: a probing dtype, a ``workspace`` (which decides
how a call is cut into tiles: several samples, one sample, or bands of
output rows) and a batch size. Each path is a separate comparison with the
explicit maps, so the proof also shows that the coefficients do not depend
on the tiling or the dtype.

The premises that turn "equal coefficients" into "equal results on every
input of this geometry, batch size, workspace and dtype" are checked too:
the maps are bilinear (linear in the bias), the samples of a batch do not
interact, and the packed readings carried no digit (see
`tagging`); the last identity of each path
compares every function with the read tensors on a random signed-integer
batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..convolution import conv, conv_backward, conv_forward, conv_transpose
from ..geometry import ConvGeometry, PaddingLike
from .comparison import Describer, Operand, bilinear_matrix, compare, entry_describer, pair_describer
from .probing import ProbeError, tiles_as_small_as
from .reference import Layout, ReferenceMaps
from .results import Identity, Proof
from .tagging import Tags, contract, most_terms, read_per_sample, read_summed

__all__ = ["DEFAULT_PATHS", "EnginePath", "prove_engine"]


@dataclass(frozen=True)
class EnginePath:
    """How the public functions are called: dtype, workspace and batch size.

    Attributes
    ----------
    dtype : str
        ``"int64"``, ``"float64"`` or ``"complex128"``.
    workspace : int or None
        Passed as ``workspace=`` (None: the default). One byte gives tiles of
        one sample and one output row (row bands whenever there are two rows
        or more); a few KiB above the 128 KiB reserve gives tiles of a few
        samples or a few rows, of uneven sizes.
    batch : int
        Most samples per call (the probes fill every sample position).
    """

    dtype: str
    workspace: int | None
    batch: int = 8

    def label(self) -> str:
        """Short description, e.g. ``"float64, workspace 1 B, N<=8"``."""
        space = "default workspace" if self.workspace is None else f"workspace {self.workspace} B"
        return f"{self.dtype}, {space}, N<={self.batch}"


#: The paths proved by default for every geometry.
DEFAULT_PATHS = (
    EnginePath("int64", None),
    EnginePath("float64", 1),
    EnginePath("float64", (128 << 10) + 1536),
    EnginePath("complex128", (128 << 10) + 512, batch=5),
)


class _Calls:
    """The public functions with one layout's arguments, on flat probe arrays."""

    def __init__(self, layout: Layout, padding: PaddingLike, path: EnginePath) -> None:
        self.layout, self.path = layout, path
        self.dtype = np.dtype(path.dtype)
        self.keywords: dict[str, Any] = {
            "stride": layout.stride,
            "padding": padding,
            "dilation": layout.dilation,
            "groups": layout.groups,
        }
        self.space: dict[str, Any] = {} if path.workspace is None else {"workspace": path.workspace}

    def samples(self, shape: tuple[int, ...], indices: list[int], phase: complex) -> NDArray[Any]:
        """A batch whose sample ``n`` is ``phase`` times basis array ``indices[n]``."""
        batch = np.zeros((len(indices), math.prod(shape)), dtype=self.dtype)
        batch[np.arange(len(indices)), indices] = phase
        return batch.reshape(len(indices), *shape)

    def forward(self, tags: Tags, weight: NDArray[Any], indices: list[int]) -> NDArray[Any]:
        lay = self.layout
        x = self.samples(lay.x_shape, indices, tags.phase)
        y = conv(x, weight.reshape(lay.w_shape), **self.keywords, **self.space)
        return np.asarray(y).reshape(len(indices), -1)

    def bias_term(self, tags: Tags, bias: NDArray[Any], indices: list[int]) -> NDArray[Any]:
        lay = self.layout
        x = np.zeros((len(indices), *lay.x_shape), dtype=self.dtype)
        w = np.zeros(lay.w_shape, dtype=self.dtype)
        y = conv(x, w, bias=bias, **self.keywords, **self.space)
        return np.asarray(y).reshape(len(indices), -1) * tags.phase  # linear: supply the second phase

    def input_gradient(self, tags: Tags, weight: NDArray[Any], indices: list[int]) -> NDArray[Any]:
        lay = self.layout
        g = self.samples(lay.y_shape, indices, tags.phase)
        x = np.zeros((len(indices), *lay.x_shape), dtype=self.dtype)
        # The documented convention conjugates the kernel in the input gradient: handing it
        # the conjugate makes the probed map complex-bilinear, so a missing conjugate shows.
        weight = np.conj(weight.reshape(lay.w_shape))
        grads = conv_backward(g, x, weight, **self.keywords, **self.space)
        return np.asarray(grads.input).reshape(len(indices), -1)

    def transpose(self, tags: Tags, weight: NDArray[Any], indices: list[int]) -> NDArray[Any]:
        lay = self.layout
        g = self.samples(lay.y_shape, indices, tags.phase)
        leftover = tuple(
            (n + b + a - d * (k - 1) - 1) % s
            for n, k, s, (b, a), d in zip(
                lay.input_size, lay.kernel_size, lay.stride, lay.padding, lay.dilation
            )
        )
        y = conv_transpose(
            g,
            weight.reshape(lay.w_shape),
            stride=lay.stride,
            padding=lay.padding,
            output_padding=leftover,
            dilation=lay.dilation,
            groups=lay.groups,
            **self.space,
        )
        return np.asarray(y).reshape(len(indices), -1)

    def parameters(
        self, kept: bool, u: NDArray[Any], v: NDArray[Any]
    ) -> tuple[NDArray[Any], NDArray[Any] | None]:
        lay = self.layout
        g = u.reshape(len(u), *lay.y_shape)
        x = np.conj(v.reshape(len(v), *lay.x_shape))  # conjugated by the convention, as the kernel above
        w = np.zeros(lay.w_shape, dtype=self.dtype)
        columns: dict[str, Any] = {}
        if kept:
            columns["columns"] = conv_forward(x, w, **self.keywords)[1]
        grads = conv_backward(g, x, w, **self.keywords, **columns, **self.space)
        return np.asarray(grads.weight), np.asarray(grads.bias)


def _operands(layout: Layout) -> dict[str, Operand]:
    return {
        "x": ("x", layout.x_shape),
        "w": ("weight", layout.w_shape),
        "y": ("y", layout.y_shape),
        "g": ("grad_output", layout.y_shape),
        "dx": ("grad_input", layout.x_shape),
        "dw": ("grad_weight", layout.w_shape),
        "db": ("grad_bias", (layout.out_channels,)),
        "b": ("bias", (layout.out_channels,)),
    }


_Parts = tuple[Callable[[], NDArray[np.int64]], Callable[[], NDArray[np.int64]], Describer]


def _sides(
    reference: Callable[[], NDArray[np.int64]], read: Callable[[], NDArray[np.int64]], describe: Describer
) -> _Parts:
    return reference, read, describe


def _identity(name: str, statement: str, parts: _Parts) -> Identity:
    """Compare the reference with the reading; only a difference goes through the sparse, locating path."""
    reference, read, describe = parts
    expected: NDArray[np.int64] | None = None
    got: NDArray[np.int64] | None = None
    try:
        expected, got = reference(), read()
    except Exception:
        pass
    if (
        expected is not None
        and got is not None
        and expected.shape == got.shape
        and np.array_equal(expected, got)
    ):
        return Identity(name, statement, True, expected.size)

    def compute(side: int) -> tuple[sp.csr_array, Describer]:
        tensor = reference() if side == 0 else read()
        matrix = bilinear_matrix(tensor) if tensor.ndim == 3 else sp.csr_array(tensor)
        return matrix, describe

    return compare(name, statement, ("reference", "engine"), compute)


class _ParameterReading:
    """Weight and bias gradients come from the same probes: read once per kept/not kept."""

    def __init__(self, calls: _Calls, tags: Tags) -> None:
        self.calls, self.tags = calls, tags
        self._cache: dict[bool, tuple[NDArray[np.int64], NDArray[np.int64]] | ProbeError] = {}

    def get(self, kept: bool, which: int) -> NDArray[np.int64]:
        if kept not in self._cache:
            lay, what = self.calls.layout, "kept columns" if kept else "weight and bias gradients"
            try:
                self._cache[kept] = read_summed(
                    partial(self.calls.parameters, kept),
                    math.prod(lay.w_shape),
                    lay.out_channels,
                    math.prod(lay.y_shape),
                    math.prod(lay.x_shape),
                    self.tags,
                    self.calls.path.batch,
                    what,
                )
            except ProbeError as exc:
                self._cache[kept] = exc
        result = self._cache[kept]
        if isinstance(result, ProbeError):
            raise result
        return result[which]


def _path_identities(
    layout: Layout, padding: PaddingLike, path: EnginePath, maps: ReferenceMaps
) -> list[Identity]:
    tags = Tags(np.dtype(path.dtype), terms=most_terms(layout, path.batch))
    calls = _Calls(layout, padding, path)
    ops, tag = _operands(layout), f" [{path.label()}]"
    sizes = {k: math.prod(shape) for k, (_, shape) in ops.items()}

    def per_sample(
        method: Callable[..., NDArray[Any]], rows: str, tagged: str, basis: str, what: str
    ) -> Callable[[], NDArray[np.int64]]:
        return lambda: read_per_sample(
            partial(method, tags), sizes[rows], sizes[tagged], sizes[basis], tags, path.batch, what
        )

    parameters = _ParameterReading(calls, tags)
    readings = {
        "forward": per_sample(calls.forward, "y", "w", "x", "forward"),
        "input": per_sample(calls.input_gradient, "dx", "w", "g", "input gradient"),
        "transpose": per_sample(calls.transpose, "dx", "w", "g", "conv_transpose"),
    }
    bias_term = read_per_sample  # bias term: linear in b, read with two all-zero samples
    identities = [
        _identity(
            "forward (4)" + tag,
            "conv == explicit forward map",
            _sides(maps.forward, readings["forward"], pair_describer(ops["y"], ops["w"], ops["x"])),
        ),
        _identity(
            "bias term of (4)" + tag,
            "conv(0, 0, b) == b at every position",
            _sides(
                lambda: np.repeat(maps.bias_term()[:, :, None], 2, axis=2),
                lambda: bias_term(
                    partial(calls.bias_term, tags), sizes["y"], sizes["b"], 2, tags, 2, "bias term"
                ),
                lambda r, c: entry_describer(ops["y"], ops["b"])(r, c // 2),
            ),
        ),
        _identity(
            "input gradient (8)" + tag,
            "conv_backward(...).input == explicit map",
            _sides(maps.input_gradient, readings["input"], pair_describer(ops["dx"], ops["w"], ops["g"])),
        ),
        _identity(
            "weight gradient (5)" + tag,
            "conv_backward(...).weight == explicit map",
            _sides(
                maps.weight_gradient,
                lambda: parameters.get(False, 0),
                pair_describer(ops["dw"], ops["g"], ops["x"]),
            ),
        ),
        _identity(
            "bias gradient (6)" + tag,
            "conv_backward(...).bias == explicit map",
            _sides(
                maps.bias_gradient, lambda: parameters.get(False, 1), entry_describer(ops["db"], ops["g"])
            ),
        ),
        _identity(
            "kept columns" + tag,
            "conv_backward(columns=conv_forward(...)[1]).weight == explicit map",
            _sides(
                maps.weight_gradient,
                lambda: parameters.get(True, 0),
                pair_describer(ops["dw"], ops["g"], ops["x"]),
            ),
        ),
        _identity(
            "conv_transpose" + tag,
            "conv_transpose == transpose of the forward's input map",
            _sides(maps.input_gradient, readings["transpose"], pair_describer(ops["dx"], ops["w"], ops["g"])),
        ),
    ]
    identities.append(_premises(calls, maps, tag))
    return identities


def _premises(calls: _Calls, maps: ReferenceMaps, tag: str) -> Identity:
    """Every function against the explicit maps on one random signed-integer batch."""
    name = "premises" + tag
    statement = "bilinear, samples independent, bias added once (random signed batch == explicit maps)"
    lay, dtype = calls.layout, calls.dtype
    rng = np.random.default_rng(sum(lay.input_size) * 7919 + sum(lay.kernel_size))
    n = max(2, min(calls.path.batch, 4))

    def draw(*shape: int) -> NDArray[Any]:
        values = rng.integers(-3, 4, size=shape)
        if dtype.kind == "c":
            return (values + 1j * rng.integers(-3, 4, size=shape)).astype(dtype)
        return values.astype(dtype)

    x, g = draw(n, math.prod(lay.x_shape)), draw(n, math.prod(lay.y_shape))
    w, b = draw(math.prod(lay.w_shape)), draw(lay.out_channels)
    xs, gs, ws = x.reshape(n, *lay.x_shape), g.reshape(n, *lay.y_shape), w.reshape(lay.w_shape)
    try:
        forward = np.einsum("rab,a,nb->nr", maps.forward(), w, x) + maps.bias_term() @ b
        # The gradients conjugate their second operand (a no-op for real dtypes).
        through = np.einsum("rab,a,nb->nr", maps.input_gradient(), np.conj(w), g)
        weight = contract(maps.weight_gradient(), g, np.conj(x)).sum(axis=0)
        bias = maps.bias_gradient() @ g.sum(axis=0)
        grads = conv_backward(gs, xs, ws, **calls.keywords, **calls.space)
        kept = conv_backward(gs, xs, ws, **calls.keywords, columns=conv_forward(xs, ws, **calls.keywords)[1])
        checks = {
            "conv": (conv(xs, ws, bias=b, **calls.keywords, **calls.space), forward),
            "grad_input": (grads.input, through),
            "grad_weight": (grads.weight, weight),
            "grad_bias": (grads.bias, bias),
            "grad_weight with kept columns": (kept.weight, weight),
        }
    except Exception as exc:
        return Identity(name, statement, False, 0, f"engine raised {type(exc).__name__}: {exc}")
    failed = [
        key
        for key, (got, want) in checks.items()
        if not np.array_equal(np.asarray(got).reshape(want.shape), want)
    ]
    count = sum(np.asarray(want).size for _, want in checks.values())
    if failed:
        return Identity(name, statement, False, count, f"differs from the explicit maps: {', '.join(failed)}")
    return Identity(name, statement, True, count)


def prove_engine(
    layout: Layout,
    padding: PaddingLike | None = None,
    paths: tuple[EnginePath, ...] = DEFAULT_PATHS,
) -> Proof:
    """Prove that every public function computes the explicit reference maps, on every path.

    Parameters
    ----------
    layout : Layout
        Sizes, ``(before, after)`` padding pairs and channel counts.
    padding : padding argument, optional
        Passed to ``conv`` and ``conv_backward`` as given (e.g. ``"same"``);
        defaults to ``layout.padding``. ``conv_transpose`` always receives
        the pairs.
    paths : tuple of EnginePath, optional
        Dtype, workspace and batch size of the calls (default `DEFAULT_PATHS`).

    Returns
    -------
    Proof
        Eight identities per path: forward (4), bias term, input gradient
        (8), weight gradient (5), bias gradient (6), weight gradient from kept
        columns, ``conv_transpose``, and the premises.

    Examples
    --------
    >>> layout = Layout((5,), (3,), (2,), ((1, 0),), (1,), 2, 2, 1)
    >>> proof = prove_engine(layout, paths=(EnginePath("float64", 1),))
    >>> proof.held, len(proof.identities)
    (True, 8)
    """
    maps = ReferenceMaps(layout)
    identities: list[Identity] = []
    for path in paths:
        with tiles_as_small_as(path.workspace):
            identities += _path_identities(layout, layout.padding if padding is None else padding, path, maps)
    geometry = ConvGeometry(
        layout.input_size, layout.kernel_size, layout.stride, layout.padding, layout.dilation
    )
    return Proof(geometry, layout.in_channels, layout.out_channels, layout.groups, tuple(identities))
