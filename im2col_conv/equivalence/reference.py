"""The four maps of a convolution as explicit 0/1 coefficient tensors, from the index relation.

Nothing here reads [`ConvGeometry`][im2col_conv.geometry.ConvGeometry] or any other
code of the package: the output size, the window positions and the channel
blocks are computed again from plain integers, so that a slip in the
package's normalisation cannot hide in both sides of a comparison (the
normalisation itself is checked against PyTorch's documented rules by
`im2col_conv.equivalence.normalisation`).

In one dimension the convolution is the set of triples ``(k, p, s)`` (kernel
offset, output position, input position) with ``s = p * stride + k *
dilation - before`` and ``0 <= s < n``; in several dimensions, a triple per
dimension. Every map below has coefficient 1 on each triple and 0 elsewhere,
so its coefficients are 0 or 1, never more.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Layout", "ReferenceMaps", "windows_1d"]

_INT = np.int64


def windows_1d(
    n: int, k: int, stride: int, before: int, after: int, dilation: int
) -> list[tuple[int, int, int]]:
    """Every ``(offset, output position, input position)`` of one dimension, padding dropped.

    The output has ``floor((n + before + after - dilation * (k - 1) - 1) / stride) + 1``
    positions (PyTorch's formula), none if that is below 1.

    Examples
    --------
    >>> windows_1d(3, 2, 1, 0, 0, 1)
    [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 2)]
    """
    span = n + before + after - dilation * (k - 1) - 1
    outputs = span // stride + 1 if span >= 0 else 0
    found = []
    for offset in range(k):
        for position in range(outputs):
            source = position * stride + offset * dilation - before
            if 0 <= source < n:
                found.append((offset, position, source))
    return found


@dataclass(frozen=True)
class Layout:
    """Sizes of one convolution, from plain integers.

    Attributes
    ----------
    input_size, kernel_size, stride, dilation : tuple of int
    padding : tuple of (int, int)
        ``(before, after)`` per dimension.
    in_channels, out_channels, groups : int
    """

    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    in_channels: int
    out_channels: int
    groups: int

    @property
    def output_size(self) -> tuple[int, ...]:
        """``floor((n + before + after - dilation * (k - 1) - 1) / stride) + 1`` per dimension."""
        return tuple(
            (n + b + a - d * (k - 1) - 1) // s + 1
            for n, k, s, (b, a), d in zip(
                self.input_size, self.kernel_size, self.stride, self.padding, self.dilation
            )
        )

    @property
    def x_shape(self) -> tuple[int, ...]:
        """One input sample, ``(C_in, *input_size)``."""
        return (self.in_channels, *self.input_size)

    @property
    def w_shape(self) -> tuple[int, ...]:
        """The kernel, ``(C_out, C_in/groups, *kernel_size)``."""
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @property
    def y_shape(self) -> tuple[int, ...]:
        """One output sample, ``(C_out, *output_size)``."""
        return (self.out_channels, *self.output_size)


class ReferenceMaps:
    """Coefficient tensors of forward, bias term and gradients of one `Layout`.

    Every tensor is int64 with entries 0 or 1, indexed by flat (row-major)
    indices of one sample's arrays.

    Examples
    --------
    >>> maps = ReferenceMaps(Layout((3,), (2,), (1,), ((0, 0),), (1,), 1, 1, 1))
    >>> maps.forward()[:, :, 1]  # coefficient of weight[w] * x[1] in y[y]
    array([[0, 1],
           [1, 0]])
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        per_dim = [
            windows_1d(n, k, s, b, a, d)
            for n, k, s, (b, a), d in zip(
                layout.input_size, layout.kernel_size, layout.stride, layout.padding, layout.dilation
            )
        ]
        triples = list(itertools.product(*per_dim))
        # Flat kernel offset, output position and input position of every triple.
        self._k = self._flat([[t[0] for t in combo] for combo in triples], layout.kernel_size)
        self._p = self._flat([[t[1] for t in combo] for combo in triples], layout.output_size)
        self._s = self._flat([[t[2] for t in combo] for combo in triples], layout.input_size)

    @staticmethod
    def _flat(index: list[list[int]], shape: tuple[int, ...]) -> NDArray[np.int64]:
        if not index:
            return np.zeros(0, dtype=_INT)
        flat: NDArray[np.int64] = np.ravel_multi_index(tuple(np.array(index, dtype=_INT).T), shape)
        return flat.astype(_INT)

    def _entries(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Flat ``(y, w, x)`` indices of every nonzero coefficient of the forward pass."""
        lay = self.layout
        c_in_g, c_out_g = lay.in_channels // lay.groups, lay.out_channels // lay.groups
        k_count, l_count, s_count = (
            math.prod(lay.kernel_size),
            math.prod(lay.output_size),
            math.prod(lay.input_size),
        )
        o = np.repeat(np.arange(lay.out_channels), c_in_g)
        i = np.tile(np.arange(c_in_g), lay.out_channels)
        c = (o // c_out_g) * c_in_g + i
        y = (o[:, None] * l_count + self._p[None, :]).ravel()
        w = ((o * c_in_g + i)[:, None] * k_count + self._k[None, :]).ravel()
        x = (c[:, None] * s_count + self._s[None, :]).ravel()
        return y, w, x

    def _dense(self, shape: tuple[int, int, int], index: tuple[NDArray[np.int64], ...]) -> NDArray[np.int64]:
        tensor = np.zeros(shape, dtype=_INT)
        np.add.at(tensor, index, 1)
        return tensor

    @functools.cache  # noqa: B019 (one instance per proof)
    def forward(self) -> NDArray[np.int64]:
        """``T[y, w, x]``: coefficient of ``weight[w] * x[x]`` in ``y[y]``."""
        lay = self.layout
        y, w, x = self._entries()
        shape = (math.prod(lay.y_shape), math.prod(lay.w_shape), math.prod(lay.x_shape))
        return self._dense(shape, (y, w, x))

    @functools.cache  # noqa: B019 (one instance per proof)
    def input_gradient(self) -> NDArray[np.int64]:
        """``T[x, w, g]``: coefficient of ``weight[w] * grad_output[g]`` in ``grad_input[x]``."""
        lay = self.layout
        y, w, x = self._entries()
        shape = (math.prod(lay.x_shape), math.prod(lay.w_shape), math.prod(lay.y_shape))
        return self._dense(shape, (x, w, y))

    @functools.cache  # noqa: B019 (one instance per proof)
    def weight_gradient(self) -> NDArray[np.int64]:
        """``T[w, g, x]``: coefficient of ``grad_output[g] * x[x]`` in ``grad_weight[w]``."""
        lay = self.layout
        y, w, x = self._entries()
        shape = (math.prod(lay.w_shape), math.prod(lay.y_shape), math.prod(lay.x_shape))
        return self._dense(shape, (w, y, x))

    @functools.cache  # noqa: B019 (one instance per proof)
    def bias_gradient(self) -> NDArray[np.int64]:
        """``B[o, g]``: coefficient of ``grad_output[g]`` in ``grad_bias[o]``."""
        lay = self.layout
        length = math.prod(lay.output_size)
        return np.repeat(np.eye(lay.out_channels, dtype=_INT), length, axis=1)

    @functools.cache  # noqa: B019 (one instance per proof)
    def bias_term(self) -> NDArray[np.int64]:
        """``B[y, o]``: coefficient of ``bias[o]`` in ``y[y]`` (the ``+ b[d]`` of formula (4))."""
        term: NDArray[np.int64] = self.bias_gradient().T.copy()
        return term
