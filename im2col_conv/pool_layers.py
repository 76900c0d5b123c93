"""Pooling layers for hand-written training loops, in the style of `Conv`.

`MaxPool` and `AvgPool` hold their window arguments, run the forward of
`max_pool` or `avg_pool`, keep what the backward needs, and return the input
gradient from `backward`. They have no parameters, but the modes and methods
of `Conv` (``train``, ``eval``, ``state_dict``...), so a loop can treat every
layer alike.

Every attribute is checked when it is set, by the rules of the functions, and
a forward pass freezes the arguments its backward needs: changing
``count_include_pad`` between `forward` and `backward` does not change that
backward. `MaxPool` keeps the winning kernel offset of every window, one byte
each for kernels of up to 127 elements, rather than PyTorch's eight-byte flat
indices; `AvgPool` keeps only the input's shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from numpy.typing import ArrayLike, NDArray

from . import _pool_engine as engine
from ._layer_state import Layer
from ._validation import (
    as_flag,
    as_numeric_array,
    check_grad_output,
    check_workspace,
    int_tuple,
    kernel_size_for,
    nonzero_int,
    pool_padding,
)
from .geometry import IntOrTuple
from .pooling import _average_dtype, _Call, _input, _result, _windows
from .workspace import DEFAULT_WORKSPACE

__all__ = ["AvgPool", "MaxPool"]


class _Pass(NamedTuple):
    """What one forward pass leaves for its backward pass, frozen at forward time."""

    call: _Call
    offsets: NDArray[Any] | None  # MaxPool: the winning kernel offset of every window
    averaging: tuple[bool, int | None] = (True, None)  # AvgPool: count_include_pad, divisor_override


class _Pool(Layer):
    """The window arguments, checked when set, and the bookkeeping both layers share."""

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None,
        padding: IntOrTuple,
        dilation: IntOrTuple,
        ceil_mode: bool,
        ndim: int | None,
        workspace: int,
    ) -> None:
        kernel = kernel_size_for(kernel_size, ndim)
        self.ndim = d = len(kernel)
        self._kernel_size = kernel
        self._padding = pool_padding(padding, kernel)
        self.stride = kernel if stride is None else int_tuple(stride, d, "stride", minimum=1)
        self._dilation = int_tuple(dilation, d, "dilation", minimum=1)
        self.ceil_mode = ceil_mode
        self.workspace = workspace
        self.training = True
        self._pass: _Pass | None = None

    # Each attribute is a property so that a bad value fails where it is set, not at the next forward.

    @property
    def kernel_size(self) -> tuple[int, ...]:
        """Window size, one int per spatial dimension; at least twice ``padding``."""
        return self._kernel_size

    @kernel_size.setter
    def kernel_size(self, value: IntOrTuple) -> None:
        kernel = int_tuple(value, self.ndim, "kernel_size", minimum=1)
        pool_padding(self._padding, kernel)  # the current padding must still fit
        self._kernel_size = kernel

    @property
    def stride(self) -> tuple[int, ...]:
        """Step between windows, one int per spatial dimension."""
        return self._stride

    @stride.setter
    def stride(self, value: IntOrTuple) -> None:
        self._stride = int_tuple(value, self.ndim, "stride", minimum=1)

    @property
    def padding(self) -> tuple[int, ...]:
        """Implicit padding on both sides, at most half the kernel."""
        return self._padding

    @padding.setter
    def padding(self, value: IntOrTuple) -> None:
        self._padding = pool_padding(value, self._kernel_size)

    @property
    def ceil_mode(self) -> bool:
        """Whether the output size is rounded up, keeping a last, partial window."""
        return self._ceil_mode

    @ceil_mode.setter
    def ceil_mode(self, value: bool) -> None:
        self._ceil_mode = as_flag(value, "ceil_mode")

    @property
    def workspace(self) -> int:
        """Bound in bytes on the temporary memory of each pass."""
        return self._workspace

    @workspace.setter
    def workspace(self, value: int) -> None:
        self._workspace = check_workspace(value)

    def _arguments(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ceil_mode={self.ceil_mode}"
        )

    def _call(self, shape: tuple[int, ...]) -> _Call:
        args = (self._kernel_size, self._stride, self._padding, self._dilation, self._ceil_mode)
        return _windows(shape, *args, "x")

    def _keep(self, kept: _Pass) -> None:
        """Keep ``kept`` for the backward pass, or nothing in evaluation mode."""
        self._forward_in_eval = not self.training
        self._pass = kept if self.training else None

    def _kept(self, grad_output: ArrayLike) -> tuple[_Pass, NDArray[Any]]:
        kept = self._pass
        if kept is None:
            raise self._no_pass("backward")
        call = kept.call
        expected = (*call.shape[:2], *call.geometry.output_size)
        grad = check_grad_output(as_numeric_array(grad_output, "grad_output"), expected, call.unbatched)
        return kept, grad

    def clear(self) -> None:
        """Drop what the last `forward` kept."""
        self._pass = None
        self._forward_in_eval = False


class MaxPool(_Pool):
    """N-D max pooling layer: ``torch.nn.MaxPool1d/2d/3d`` with a col2im backward.

    The number of spatial dimensions ``d`` is ``len(kernel_size)``, or
    ``ndim`` (default 2) for an int ``kernel_size``, as for `Conv`. Inputs
    are ``(N, C, *spatial)`` or ``(C, *spatial)`` with ``d`` spatial
    dimensions and keep their dtype.

    Parameters
    ----------
    kernel_size : int or sequence of int
        Window size.
    stride : int or sequence of int, optional
        Step between windows (default None: ``kernel_size``).
    padding : int or sequence of int, optional
        Implicit padding on both sides, at most half the kernel (default 0).
    dilation : int or sequence of int, optional
        Spacing between the elements of a window (default 1).
    ceil_mode : bool, optional
        Round the output size up (default False), as for `max_pool`.
    ndim : int, optional
        Number of spatial dimensions when ``kernel_size`` is an int
        (default None, meaning 2).
    workspace : int, optional
        Bound in bytes on the temporary memory of each pass (default 64 MiB).

    Examples
    --------
    >>> import numpy as np
    >>> pool = MaxPool(2)                                 # 2x2 windows, stride 2
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pool(x)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]       # each window's winner gets its gradient
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]])
    """

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        ceil_mode: bool = False,
        *,
        ndim: int | None = None,
        workspace: int = DEFAULT_WORKSPACE,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, ndim, workspace)

    def __repr__(self) -> str:
        return f"MaxPool({self._arguments()}, dilation={self.dilation})"

    @property
    def dilation(self) -> tuple[int, ...]:
        """Spacing between the elements of a window."""
        return self._dilation

    @dilation.setter
    def dilation(self, value: IntOrTuple) -> None:
        self._dilation = int_tuple(value, self.ndim, "dilation", minimum=1)

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """Max-pool ``x`` and, in training mode, keep every window's winner for `backward`.

        Parameters
        ----------
        x : array_like, shape (N, C, *spatial) or (C, *spatial)
            Real input; the output keeps its dtype.

        Returns
        -------
        ndarray, shape (N, C, *out) or (C, *out)

        Raises
        ------
        TypeError, ValueError
            As `max_pool`.
        """
        array = _input(x, "x", ordered=True)
        call = self._call(array.shape)
        keep = "offsets" if self.training else None
        y, offsets = engine.max_forward(array.reshape(call.shape), call.geometry, self.workspace, keep)
        self._keep(_Pass(call, offsets))
        return _result(y, call.unbatched)

    __call__ = forward

    def backward(self, grad_output: ArrayLike) -> NDArray[Any]:
        """``dL/dx`` for the last `forward`, of ``grad_output``'s dtype.

        Parameters
        ----------
        grad_output : array_like, shape of the last forward's output
            ``dL/dy``.

        Returns
        -------
        ndarray, shape of the last forward's input

        Raises
        ------
        RuntimeError
            If `forward` has not been called since construction or `clear`,
            or the last forward ran in evaluation mode.
        ValueError
            If ``grad_output`` does not have the last output's shape.
        """
        kept, grad = self._kept(grad_output)
        assert kept.offsets is not None
        call = kept.call
        source = engine.offsets_from_kept(kept.offsets)
        grad_x = engine.max_backward(grad, call.shape, call.geometry, source, self.workspace)
        return _result(grad_x, call.unbatched)


class AvgPool(_Pool):
    """N-D average pooling layer: ``torch.nn.AvgPool1d/2d/3d`` with a col2im backward.

    Dimensions and input forms as for `MaxPool`. Integer inputs give
    float64 outputs, as in `avg_pool`.

    Parameters
    ----------
    kernel_size : int or sequence of int
        Window size.
    stride : int or sequence of int, optional
        Step between windows (default None: ``kernel_size``).
    padding : int or sequence of int, optional
        Implicit zero padding on both sides, at most half the kernel (default 0).
    ceil_mode : bool, optional
        Round the output size up (default False), as for `avg_pool`.
    count_include_pad : bool, optional
        Count padded positions in a window's divisor (default True).
    divisor_override : int, optional
        Divide every window's sum by this non-zero int instead (default None).
    ndim : int, optional
        Number of spatial dimensions when ``kernel_size`` is an int
        (default None, meaning 2).
    workspace : int, optional
        Bound in bytes on the temporary memory of each pass (default 64 MiB).

    Examples
    --------
    >>> import numpy as np
    >>> pool = AvgPool(3, ndim=1, stride=1, padding=1, count_include_pad=False)
    >>> pool(np.array([[[3.0, 6.0, 0.0]]]))
    array([[[4.5, 3. , 3. ]]])
    >>> pool.backward(np.ones((1, 1, 3)))
    array([[[0.83333333, 1.33333333, 0.83333333]]])
    """

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        ndim: int | None = None,
        workspace: int = DEFAULT_WORKSPACE,
    ) -> None:
        super().__init__(kernel_size, stride, padding, 1, ceil_mode, ndim, workspace)
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def __repr__(self) -> str:
        return (
            f"AvgPool({self._arguments()}, count_include_pad={self.count_include_pad}, "
            f"divisor_override={self.divisor_override})"
        )

    @property
    def dilation(self) -> tuple[int, ...]:
        """Always 1 in every dimension: average pooling has no dilation (read-only)."""
        return self._dilation

    @property
    def count_include_pad(self) -> bool:
        """Whether padded positions count in a window's divisor."""
        return self._count_include_pad

    @count_include_pad.setter
    def count_include_pad(self, value: bool) -> None:
        self._count_include_pad = as_flag(value, "count_include_pad")

    @property
    def divisor_override(self) -> int | None:
        """The divisor of every window instead of its size, or None; never zero."""
        return self._divisor_override

    @divisor_override.setter
    def divisor_override(self, value: int | None) -> None:
        self._divisor_override = None if value is None else nonzero_int(value, "divisor_override")

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """Average-pool ``x``; in training mode keep its shape and the averaging rule for `backward`.

        Parameters
        ----------
        x : array_like, shape (N, C, *spatial) or (C, *spatial)
            Floating, complex or integer input.

        Returns
        -------
        ndarray, shape (N, C, *out) or (C, *out)
            Of ``x``'s dtype, or float64 for integers.

        Raises
        ------
        TypeError, ValueError
            As `avg_pool`.
        """
        array = _input(x, "x", ordered=False)
        call = self._call(array.shape)
        dtype = _average_dtype(array.dtype)
        averaging = (self._count_include_pad, self._divisor_override)
        y = engine.avg_forward(array.reshape(call.shape), call.geometry, *averaging, dtype, self.workspace)
        self._keep(_Pass(call, None, averaging))
        return _result(y, call.unbatched)

    __call__ = forward

    def backward(self, grad_output: ArrayLike) -> NDArray[Any]:
        """``dL/dx`` for the last `forward`, by that forward's ``count_include_pad`` and ``divisor_override``.

        Parameters
        ----------
        grad_output : array_like, shape of the last forward's output
            ``dL/dy``.

        Returns
        -------
        ndarray, shape of the last forward's input
            Of ``grad_output``'s dtype (float64 for integers).

        Raises
        ------
        RuntimeError
            If `forward` has not been called since construction or `clear`,
            or the last forward ran in evaluation mode.
        ValueError
            If ``grad_output`` does not have the last output's shape.
        """
        kept, grad = self._kept(grad_output)
        call = kept.call
        dtype = _average_dtype(grad.dtype)
        grad_x = engine.avg_backward(grad, call.shape, call.geometry, *kept.averaging, dtype, self.workspace)
        return _result(grad_x, call.unbatched)
