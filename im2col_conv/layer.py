"""A convolution layer with its own weights, for hand-written training loops.

`Conv` owns a ``weight`` and an optional ``bias``, runs the im2col forward,
keeps what its backward needs, and stores the parameter gradients when
`Conv.backward` is called. The rest of a network (activations, pooling, the
loss, the optimiser) is left to the caller. Its methods for parameters, state
dicts and modes carry PyTorch's names (see `im2col_conv._layer_state`).
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import direct
from ._layer_state import Layer, float_dtype, make_rng
from ._validation import (
    as_flag,
    as_numeric_array,
    check_choice,
    check_workspace,
    int_tuple,
    kernel_size_for,
    positive_int,
)
from .convolution import Columns, ConvGrads, conv, conv_backward, conv_forward
from .geometry import IntOrTuple, PaddingLike, padding_spec
from .workspace import DEFAULT_WORKSPACE

__all__ = ["Conv"]

Keep = Literal["columns", "input"]
BackwardMethod = Literal["im2col", "direct"]

_KEEP_CHOICES = ("columns", "input")
_BACKWARD_CHOICES = ("im2col", "direct")
_Self = TypeVar("_Self", bound="Conv")


class _Pass(NamedTuple):
    """What one forward pass leaves for its backward pass, frozen at forward time."""

    x: NDArray[Any]
    weight: NDArray[Any]  # the layer's array itself, not a copy
    columns: Columns | None
    output_shape: tuple[int, ...]
    geometry: tuple[Any, ...]  # (stride, padding, dilation, groups) as the forward used them


class Conv(Layer):
    """N-D convolution layer: im2col forward, GEMM + col2im backward, learnable weight and bias.

    Computes ``y = conv(x, weight, bias, stride, padding, dilation, groups)``
    (cross-correlation) and, on `backward`, the gradients of a loss with
    respect to ``x``, ``weight`` and ``bias``: ``torch.nn.Conv1d/2d/3d``
    with an explicit backward. ``Conv(1, 8, 3)`` is a 2-D layer,
    ``Conv(1, 8, 3, ndim=1)`` a 1-D one and ``Conv(1, 8, (3, 3, 3))`` a 3-D one.

    Parameters
    ----------
    in_channels : int
        ``C_in``; must be divisible by ``groups``.
    out_channels : int
        ``C_out``; must be divisible by ``groups``.
    kernel_size : int or sequence of int
        Spatial size of the kernel, ``(k_1, ..., k_d)``.
    stride : int or sequence of int, optional
        Per-dimension stride (default 1).
    padding : str, int, sequence of int or of (int, int), optional
        ``"valid"``, ``"same"``, symmetric amounts or ``(before, after)``
        pairs per dimension (default 0), as for `conv`.
    dilation : int or sequence of int, optional
        Per-dimension kernel dilation (default 1).
    groups : int, optional
        Number of independent channel groups (default 1).
    bias : bool, optional
        Whether the layer has a learnable bias (default True).
    ndim : int, optional
        Number of spatial dimensions when ``kernel_size`` is an int (default
        None, meaning 2). If ``kernel_size`` is a sequence, ``ndim`` may be
        omitted; if given, it must equal ``len(kernel_size)``.
    dtype : floating dtype, optional
        Dtype of the parameters, the output and all gradients (default
        ``float32``). Inputs and output gradients must have this dtype:
        nothing is cast (see `forward`); `to` changes it.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights, or a seed for one (default None: a
        fresh ``numpy.random.default_rng()``).
    keep : {"columns", "input"}, optional
        What `forward` keeps for `backward` in training mode. ``"columns"``
        (default) keeps the im2col matrix, so the backward pass does not
        rebuild it; it costs ``prod(kernel_size)`` times the input's memory.
        ``"input"`` keeps only a copy of ``x``: the forward runs `conv`
        within ``workspace`` and the backward rebuilds the columns tile by
        tile with `conv_backward`.
    backward_method : {"im2col", "direct"}, optional
        How `backward` computes gradients: ``"im2col"`` (default) with
        `conv_backward`, or ``"direct"`` with the dilate-pad-rotate method
        of `im2col_conv.direct`, which ignores kept columns. Can be changed
        later through the attribute of the same name.
    workspace : int, optional
        Bound in bytes on the temporary memory of `conv` and `conv_backward`
        (default 64 MiB); kept columns are not counted in it.

    Attributes
    ----------
    weight : ndarray, shape (C_out, C_in // groups, *kernel_size)
        Initialised like PyTorch's default (Kaiming-uniform with ``a=sqrt(5)``):
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
        ``fan_in = C_in / groups * prod(kernel_size)``.
    bias : ndarray, shape (C_out,), or None
        Same distribution as ``weight``.
    grad_weight : ndarray of the shape of weight, or None
        Set by `backward` (overwritten, not accumulated).
    grad_bias : ndarray, shape (C_out,), or None
        Set by `backward` when the layer has a bias.
    training : bool
        True in training mode (after construction), False after `eval`.
    dtype : numpy.dtype
        The parameters' dtype.
    stride : tuple of int
        Normalised per-dimension stride.
    dilation : tuple of int
        Normalised per-dimension dilation.
    padding : str or tuple of (int, int)
        ``"same"``/``"valid"``, or one ``(before, after)`` pair per dimension.

    Notes
    -----
    Gradients are those of the loss whose gradient is passed in: nothing is
    divided by the batch size. What `forward` keeps stays until the next
    call to `forward` or `clear`, so `backward` may be called more than once
    for the same forward pass (for instance once per backward method, to
    compare them). The input is kept as a copy, and the geometry as it was;
    the weight is kept by reference, as PyTorch keeps it: changing the
    weight's values in place between `forward` and `backward` changes the
    input gradient (PyTorch raises an error instead), while assigning a new
    array to ``layer.weight`` does not.

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
    >>> [name for name, _ in layer.named_parameters()]
    ['weight', 'bias']

    A float64 input is refused by a float32 layer; cast one or the other:

    >>> layer(x.astype(np.float64))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    TypeError: x has dtype float64, but the layer's parameters are float32 (expected dtype float32): ...
    >>> layer.to(np.float64)(x.astype(np.float64)).dtype
    dtype('float64')

    A 1-D layer with stride, and the direct backward method:

    >>> layer = Conv(2, 4, kernel_size=5, ndim=1, stride=2, backward_method="direct", rng=0)
    >>> layer(np.zeros((1, 2, 11), dtype=np.float32)).shape
    (1, 4, 4)
    """

    _PARAMETERS = ("weight", "bias")

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
        workspace: int = DEFAULT_WORKSPACE,
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
        self.dtype: np.dtype[Any] = float_dtype(dtype)
        self._keep: str = check_choice(keep, "keep", _KEEP_CHOICES)
        self._backward_method: str = check_choice(backward_method, "backward_method", _BACKWARD_CHOICES)
        self._workspace = check_workspace(workspace)

        generator = make_rng(rng)
        fan_in = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = generator.uniform(-bound, bound, size=shape).astype(self.dtype)
        self.bias = (
            generator.uniform(-bound, bound, size=self.out_channels).astype(self.dtype) if has_bias else None
        )
        self.grad_weight = None
        self.grad_bias = None
        self.training = True
        self._pass: _Pass | None = None

    # -- configuration -------------------------------------------------------------------------

    @property
    def keep(self) -> str:
        """``"columns"`` or ``"input"``: what `forward` keeps for `backward` in training mode."""
        return self._keep

    @keep.setter
    def keep(self, value: str) -> None:
        self._keep = check_choice(value, "keep", _KEEP_CHOICES)

    @property
    def backward_method(self) -> str:
        """``"im2col"`` or ``"direct"``: how `backward` computes gradients."""
        return self._backward_method

    @backward_method.setter
    def backward_method(self, value: str) -> None:
        self._backward_method = check_choice(value, "backward_method", _BACKWARD_CHOICES)

    @property
    def workspace(self) -> int:
        """Bound in bytes on the temporary memory of each pass."""
        return self._workspace

    @workspace.setter
    def workspace(self, value: int) -> None:
        self._workspace = check_workspace(value)

    def to(self: _Self, dtype: DTypeLike) -> _Self:
        """Cast the parameters and their gradients to the floating ``dtype``; return the layer itself.

        The explicit cast of the dtype rule (PyTorch's ``module.to(dtype)``):
        a layer never casts its input. What the last forward kept is dropped
        when the dtype changes.

        Parameters
        ----------
        dtype : floating dtype
            The new dtype of the parameters, outputs and gradients.

        Returns
        -------
        Conv
            ``self``, with new parameter arrays if the dtype changed.

        Raises
        ------
        TypeError
            If ``dtype`` is not a floating dtype.
        """
        new = float_dtype(dtype)
        if new != self.dtype:
            for name in ("weight", "bias", "grad_weight", "grad_bias"):
                value = getattr(self, name)
                setattr(self, name, None if value is None else value.astype(new))
            self.dtype = new
            self._pass = None
        return self

    def __repr__(self) -> str:
        padding = repr(self.padding) if isinstance(self.padding, str) else self.padding
        return (
            f"Conv({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={padding}, dilation={self.dilation}, groups={self.groups}, "
            f"bias={self.bias is not None}, dtype={self.dtype}, keep={self._keep!r}, "
            f"backward_method={self._backward_method!r})"
        )

    # -- passes --------------------------------------------------------------------------------

    def _operand(self, value: ArrayLike, name: str) -> NDArray[Any]:
        """``value`` as an array of the layer's dtype, which it must already have."""
        array = as_numeric_array(value, name)
        if array.dtype != self.dtype:
            cast = f"cast the input with {name}.astype(np.{self.dtype})"
            if array.dtype.kind == "f":
                cast += f", or the layer with layer.to(np.{array.dtype})"
            raise TypeError(
                f"{name} has dtype {array.dtype}, but the layer's parameters are {self.dtype} "
                f"(expected dtype {self.dtype}): {cast}"
            )
        return array

    def _check_parameters(self) -> None:
        for name, value in self.named_parameters():
            if not isinstance(value, np.ndarray) or value.dtype != self.dtype:
                raise TypeError(
                    f"the layer's {name} must be an ndarray of the layer's dtype {self.dtype}, got "
                    f"{getattr(value, 'dtype', type(value).__name__)}; use layer.to(dtype) to change dtypes"
                )

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """Convolve ``x`` with the layer's weight, add the bias, and keep what backward needs.

        In evaluation mode (after `eval`) nothing is kept. In training mode,
        with ``keep="columns"`` the column matrix is kept (`conv_forward`);
        with ``keep="input"`` the forward runs `conv` within ``workspace``
        and keeps a copy of ``x`` only.

        Parameters
        ----------
        x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
            Input with ``d`` spatial dimensions, of the layer's dtype.

        Returns
        -------
        ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
            Of the layer's dtype. ``out_spatial`` is given by `output_size`.

        Raises
        ------
        TypeError
            If ``x`` is not of the layer's dtype (integers included, as in
            PyTorch), naming both dtypes.
        ValueError
            If ``x`` has the wrong number of dimensions or channels, or the
            dilated kernel does not fit in the padded input.
        """
        xa = self._operand(x, "x")
        self._check_parameters()
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        self._pass = None  # a failed forward leaves nothing from an earlier one
        self._forward_in_eval = not self.training
        if not self.training or self._keep == "input":
            y = conv(xa, self.weight, self.bias, *geometry, workspace=self._workspace)
            columns = None
        else:
            y, columns = conv_forward(xa, self.weight, self.bias, *geometry)
        if self.training:
            # The input is kept by value: the caller may reuse its buffer before backward.
            shared = xa is x or (not isinstance(x, (list, tuple)) and np.shares_memory(xa, np.asarray(x)))
            kept_x = xa.copy() if shared else xa
            self._pass = _Pass(kept_x, self.weight, columns, y.shape, geometry)
        return y

    __call__ = forward

    def backward(self, grad_output: ArrayLike) -> NDArray[Any]:
        """Gradients for the last `forward`: return ``dL/dx``, store ``dL/dweight``, ``dL/dbias``.

        Parameters
        ----------
        grad_output : array_like, shape of the last forward's output
            ``dL/dy``, gradient of the loss with respect to the output, of
            the layer's dtype.

        Returns
        -------
        ndarray, shape of the last forward's input
            ``dL/dx``, of the layer's dtype.

        Raises
        ------
        RuntimeError
            If `forward` has not been called since construction or the last
            `clear`, or the last forward ran in evaluation mode.
        ValueError
            If ``grad_output`` does not have the forward output's shape.
        TypeError
            If ``grad_output`` is not of the layer's dtype.
        """
        kept = self._pass
        if kept is None:
            raise self._no_pass("backward")
        gy = self._operand(grad_output, "grad_output")
        if gy.shape != kept.output_shape:
            raise ValueError(
                f"grad_output must have the shape of the last forward output {kept.output_shape}, "
                f"got {gy.shape}"
            )
        grads: ConvGrads
        if self._backward_method == "direct":
            grads = direct.conv_backward(gy, kept.x, kept.weight, *kept.geometry)
        else:
            grads = conv_backward(
                gy, kept.x, kept.weight, *kept.geometry, columns=kept.columns, workspace=self._workspace
            )
        self.grad_weight = grads.weight.astype(self.dtype, copy=False)
        self.grad_bias = grads.bias.astype(self.dtype, copy=False) if self.bias is not None else None
        return grads.input.astype(self.dtype, copy=False)

    def clear(self) -> None:
        """Drop what the last `forward` kept (the input and any columns)."""
        self._pass = None
        self._forward_in_eval = False
