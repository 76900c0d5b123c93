"""A convolution layer with its own weights, for hand-written training loops.

[`Conv`][im2col_conv.layer.Conv] owns a ``weight`` and an optional ``bias``, runs the im2col
forward of [`conv_forward`][im2col_conv.convolution.conv_forward], keeps what its backward
needs, and stores the parameter gradients when [`Conv.backward`][im2col_conv.layer.Conv.backward] is
called. The rest of a network (activations, pooling, the loss, the
optimiser) is left to the caller.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import direct
from ._validation import (
    as_flag,
    as_int,
    as_numeric_array,
    check_choice,
    int_tuple,
    kernel_size_for,
    positive_int,
)
from .convolution import Columns, ConvGrads, conv_backward, conv_forward
from .geometry import IntOrTuple, PaddingLike, padding_spec

__all__ = ["Conv"]

Keep = Literal["columns", "input"]
BackwardMethod = Literal["im2col", "direct"]

_KEEP_CHOICES = ("columns", "input")
_BACKWARD_CHOICES = ("im2col", "direct")


class _Pass(NamedTuple):
    """What one forward pass leaves for its backward pass, frozen at forward time."""

    x: NDArray[Any]
    weight: NDArray[Any]
    columns: Columns | None
    output_shape: tuple[int, ...]
    geometry: tuple[Any, ...]  # (stride, padding, dilation, groups) as the forward used them


def _make_rng(rng: object) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    try:
        seed = as_int(rng, "rng")
    except TypeError:
        raise TypeError(
            f"rng must be a numpy.random.Generator, an int seed or None, got {rng!r} "
            f"of type {type(rng).__name__}"
        ) from None
    if seed < 0:
        raise ValueError(f"rng seed must be non-negative, got {rng!r}")
    return np.random.default_rng(seed)


class Conv:
    """N-D convolution layer: im2col forward, GEMM + col2im backward, learnable weight and bias.

    Computes ``y = conv(x, weight, bias, stride, padding, dilation, groups)``
    (cross-correlation, as in deep learning) and, on [`backward`][im2col_conv.layer.Conv.backward], the
    gradients of a loss with respect to ``x``, ``weight`` and ``bias``.

    The number of spatial dimensions ``d`` is ``len(kernel_size)``. An int
    ``kernel_size`` means the same size in every dimension; ``d`` is then
    taken from ``ndim``, which defaults to 2. So ``Conv(1, 8, 3)`` is a 2-D
    layer, ``Conv(1, 8, 3, ndim=1)`` a 1-D one and ``Conv(1, 8, (3, 3, 3))``
    a 3-D one.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C_in`` and ``C_out``; both must be divisible by ``groups``.
    kernel_size : int or sequence of int
        Spatial size of the kernel, ``(k_1, ..., k_d)``.
    stride, dilation : int or sequence of int, optional
        Per-dimension stride and kernel dilation (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"``, symmetric amounts or ``(before, after)``
        pairs per dimension (default 0), as for [`conv`][im2col_conv.convolution.conv].
    groups : int, optional
        Number of independent channel groups (default 1).
    bias : bool, optional
        Whether the layer has a learnable bias (default True).
    ndim : int, optional
        Number of spatial dimensions when ``kernel_size`` is an int (default
        2). If ``kernel_size`` is a sequence, ``ndim`` may be omitted; if
        given, it must equal ``len(kernel_size)``.
    dtype : floating dtype, optional
        Dtype of the parameters, the output and all gradients (default
        ``float32``). Inputs are cast to it (``"same_kind"`` casting, so a
        complex input is refused).
    rng : numpy.random.Generator or int, optional
        Source of the initial weights, or a seed for one. Default: a fresh
        ``numpy.random.default_rng()``.
    keep : {"columns", "input"}, optional
        What [`forward`][im2col_conv.layer.Conv.forward] keeps for
        [`backward`][im2col_conv.layer.Conv.backward]. ``"columns"``
        (default) keeps the im2col matrix, so the backward pass does not
        rebuild it; it costs ``prod(kernel_size)`` times the input's memory.
        ``"input"`` keeps only (a reference to) ``x`` and rebuilds the
        columns in the backward pass.
    backward_method : {"im2col", "direct"}, optional
        How [`backward`][im2col_conv.layer.Conv.backward] computes gradients: ``"im2col"`` (default)
        with [`conv_backward`][im2col_conv.convolution.conv_backward], or ``"direct"``
        with the dilate-pad-rotate method of [`im2col_conv.direct`][im2col_conv.direct], which
        ignores kept columns. Can be changed later through the attribute of
        the same name.

    Attributes
    ----------
    weight : ndarray, shape (C_out, C_in // groups, *kernel_size)
        Initialised like PyTorch's default (Kaiming-uniform with ``a=sqrt(5)``):
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
        ``fan_in = C_in / groups * prod(kernel_size)``.
    bias : ndarray, shape (C_out,), or None
        Same distribution as ``weight``.
    grad_weight : ndarray of the shape of weight, or None
        Set by [`backward`][im2col_conv.layer.Conv.backward] (overwritten, not accumulated).
    grad_bias : ndarray, shape (C_out,), or None
        Set by [`backward`][im2col_conv.layer.Conv.backward] when the layer has a bias.
    stride, dilation : tuple of int
        Normalised per-dimension values.
    padding : str or tuple of (int, int)
        ``"same"``/``"valid"``, or one ``(before, after)`` pair per dimension.

    Notes
    -----
    Gradients are those of the loss whose gradient is passed in: nothing is
    divided by the batch size. What [`forward`][im2col_conv.layer.Conv.forward] keeps stays until the
    next call to [`forward`][im2col_conv.layer.Conv.forward] or [`clear`][im2col_conv.layer.Conv.clear],
    so [`backward`][im2col_conv.layer.Conv.backward] may be
    called more than once for the same forward pass (for instance once per
    backward method, to compare them). It is a snapshot: changing the
    layer's ``weight``, ``stride`` or ``padding``, or the caller's ``x``,
    after [`forward`][im2col_conv.layer.Conv.forward] does not change the gradients of that pass.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Conv(3, 8, kernel_size=3, padding=1, rng=0)   # 2-D, 3 -> 8 channels
    >>> layer.weight.shape, layer.bias.shape
    ((8, 3, 3, 3), (8,))
    >>> x = np.ones((4, 3, 6, 6), dtype=np.float32)           # (N, C_in, H, W)
    >>> y = layer(x)                                           # same as layer.forward(x)
    >>> y.shape, y.dtype
    ((4, 8, 6, 6), dtype('float32'))
    >>> grad_x = layer.backward(np.ones_like(y))               # dL/dx for L = y.sum()
    >>> grad_x.shape, layer.grad_weight.shape
    ((4, 3, 6, 6), (8, 3, 3, 3))
    >>> float(layer.grad_bias[0])                              # 4 * 6 * 6 output positions
    144.0

    A 1-D layer with stride, and the direct backward method:

    >>> layer = Conv(2, 4, kernel_size=5, ndim=1, stride=2, backward_method="direct", rng=0)
    >>> layer(np.zeros((1, 2, 11))).shape
    (1, 4, 4)
    """

    weight: NDArray[Any]
    bias: NDArray[Any] | None
    grad_weight: NDArray[Any] | None
    grad_bias: NDArray[Any] | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: PaddingLike = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        ndim: int | None = None,
        dtype: DTypeLike = np.float32,
        rng: np.random.Generator | int | None = None,
        keep: Keep = "columns",
        backward_method: BackwardMethod = "im2col",
    ) -> None:
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.groups = positive_int(groups, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide both in_channels={self.in_channels} and "
                f"out_channels={self.out_channels}"
            )
        self.kernel_size = kernel_size_for(kernel_size, ndim)
        self.ndim = d = len(self.kernel_size)
        self.stride = int_tuple(stride, d, "stride", minimum=1)
        self.dilation = int_tuple(dilation, d, "dilation", minimum=1)
        self.padding: str | tuple[tuple[int, int], ...] = padding_spec(padding, d)
        has_bias = as_flag(bias, "bias")
        try:
            self.dtype: np.dtype[Any] = np.dtype(dtype)
        except TypeError as exc:
            raise TypeError(f"dtype must be a floating dtype, got {dtype!r}") from exc
        if self.dtype.kind != "f":
            raise TypeError(f"dtype must be a floating dtype, got {dtype!r} ({self.dtype})")
        self._keep: str = check_choice(keep, "keep", _KEEP_CHOICES)
        self._backward_method: str = check_choice(backward_method, "backward_method", _BACKWARD_CHOICES)

        generator = _make_rng(rng)
        fan_in = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = generator.uniform(-bound, bound, size=shape).astype(self.dtype)
        self.bias = (
            generator.uniform(-bound, bound, size=self.out_channels).astype(self.dtype) if has_bias else None
        )
        self.grad_weight = None
        self.grad_bias = None
        self._pass: _Pass | None = None

    # -- configuration -------------------------------------------------------------------------

    @property
    def keep(self) -> str:
        """``"columns"`` or ``"input"``: what [`forward`][im2col_conv.layer.Conv.forward] keeps for
        [`backward`][im2col_conv.layer.Conv.backward]."""
        return self._keep

    @keep.setter
    def keep(self, value: str) -> None:
        self._keep = check_choice(value, "keep", _KEEP_CHOICES)

    @property
    def backward_method(self) -> str:
        """``"im2col"`` or ``"direct"``: how [`backward`][im2col_conv.layer.Conv.backward] computes
        gradients."""
        return self._backward_method

    @backward_method.setter
    def backward_method(self, value: str) -> None:
        self._backward_method = check_choice(value, "backward_method", _BACKWARD_CHOICES)

    def __repr__(self) -> str:
        padding = repr(self.padding) if isinstance(self.padding, str) else self.padding
        return (
            f"Conv({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={padding}, dilation={self.dilation}, groups={self.groups}, "
            f"bias={self.bias is not None}, dtype={self.dtype}, keep={self._keep!r}, "
            f"backward_method={self._backward_method!r})"
        )

    # -- passes --------------------------------------------------------------------------------

    def _cast(self, value: ArrayLike, name: str) -> tuple[NDArray[Any], NDArray[Any]]:
        """``value`` as an array, and that array cast to the layer's dtype."""
        array = as_numeric_array(value, name)
        if array.dtype != self.dtype and not np.can_cast(array.dtype, self.dtype, casting="same_kind"):
            raise TypeError(f"{name} of dtype {array.dtype} cannot be cast to the layer's dtype {self.dtype}")
        return array, array.astype(self.dtype, copy=False)

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """Convolve ``x`` with the layer's weight, add the bias, and keep what backward needs.

        Parameters
        ----------
        x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
            Input with ``d`` spatial dimensions; cast to the layer's dtype.

        Returns
        -------
        ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
            Of the layer's dtype. ``out_spatial`` is given by
            [`output_size`][im2col_conv.geometry.output_size].

        Raises
        ------
        TypeError
            If ``x`` is not numeric or cannot be cast to the layer's dtype.
        ValueError
            If ``x`` has the wrong number of dimensions or channels, or the
            dilated kernel does not fit in the padded input.
        """
        array, xa = self._cast(x, "x")
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        weight = self.weight.copy()
        y, columns = conv_forward(xa, weight, self.bias, *geometry)
        # The input is kept by value: the caller may reuse its buffer before backward.
        # A cast made a new array, and an array is its own memory; anything else is asked.
        kept_x = xa
        if xa is array and (array is x or np.shares_memory(xa, np.asarray(x))):
            kept_x = xa.copy()
        self._pass = _Pass(kept_x, weight, columns if self._keep == "columns" else None, y.shape, geometry)
        return y

    __call__ = forward

    def backward(self, grad_output: ArrayLike) -> NDArray[Any]:
        """Gradients for the last [`forward`][im2col_conv.layer.Conv.forward]: return ``dL/dx``, store
        ``dL/dweight``, ``dL/dbias``.

        Parameters
        ----------
        grad_output : array_like, shape of the last forward's output
            ``dL/dy``, gradient of the loss with respect to the output; cast
            to the layer's dtype.

        Returns
        -------
        ndarray, shape of the last forward's input
            ``dL/dx``, of the layer's dtype.

        Raises
        ------
        RuntimeError
            If [`forward`][im2col_conv.layer.Conv.forward] has not been called since construction or the
            last [`clear`][im2col_conv.layer.Conv.clear].
        ValueError
            If ``grad_output`` does not have the forward output's shape.
        TypeError
            If ``grad_output`` is not numeric or cannot be cast to the layer's dtype.
        """
        kept = self._pass
        if kept is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward: there is no forward pass "
                "to differentiate"
            )
        gy = self._cast(grad_output, "grad_output")[1]
        if gy.shape != kept.output_shape:
            raise ValueError(
                f"grad_output must have the shape of the last forward output {kept.output_shape}, "
                f"got {gy.shape}"
            )
        grads: ConvGrads
        if self._backward_method == "direct":
            grads = direct.conv_backward(gy, kept.x, kept.weight, *kept.geometry)
        else:
            grads = conv_backward(gy, kept.x, kept.weight, *kept.geometry, columns=kept.columns)
        self.grad_weight = grads.weight.astype(self.dtype, copy=False)
        self.grad_bias = grads.bias.astype(self.dtype, copy=False) if self.bias is not None else None
        return grads.input.astype(self.dtype, copy=False)

    def clear(self) -> None:
        """Drop what the last [`forward`][im2col_conv.layer.Conv.forward] kept (the input and any columns)."""
        self._pass = None
