"""Pooling layers for hand-written training loops, in the style of [`Conv`][im2col_conv.layer.Conv].

[`MaxPool`][im2col_conv.pool_layers.MaxPool] and [`AvgPool`][im2col_conv.pool_layers.AvgPool] hold their
window arguments, run the
forward of [`max_pool`][im2col_conv.pooling.max_pool] or
[`avg_pool`][im2col_conv.pooling.avg_pool], keep what the backward needs, and
return the input gradient from `backward`. They have no parameters.

[`MaxPool`][im2col_conv.pool_layers.MaxPool] keeps the winning kernel offset of every window, one byte
each for kernels of up to 127 elements, rather than PyTorch's eight-byte
flat indices; [`AvgPool`][im2col_conv.pool_layers.AvgPool] keeps only the input's shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from numpy.typing import ArrayLike, NDArray

from . import _pool_engine as engine
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
    """What one forward pass leaves for its backward pass."""

    call: _Call
    offsets: NDArray[Any] | None  # MaxPool: the winning kernel offset of every window


class _Pool:
    """The window arguments and the forward/backward bookkeeping both layers share."""

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
        self.kernel_size = kernel_size_for(kernel_size, ndim)
        self.ndim = d = len(self.kernel_size)
        self.stride = self.kernel_size if stride is None else int_tuple(stride, d, "stride", minimum=1)
        self.padding = pool_padding(padding, self.kernel_size)
        self.dilation = int_tuple(dilation, d, "dilation", minimum=1)
        self.ceil_mode = as_flag(ceil_mode, "ceil_mode")
        self.workspace = check_workspace(workspace)
        self._pass: _Pass | None = None

    def _arguments(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ceil_mode={self.ceil_mode}"
        )

    def _call(self, shape: tuple[int, ...]) -> _Call:
        args = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        return _windows(shape, *args, "x")

    def _kept(self, grad_output: ArrayLike) -> tuple[_Pass, NDArray[Any]]:
        kept = self._pass
        if kept is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward: there is no forward pass "
                "to differentiate"
            )
        call = kept.call
        expected = (*call.shape[:2], *call.geometry.output_size)
        grad = check_grad_output(as_numeric_array(grad_output, "grad_output"), expected, call.unbatched)
        return kept, grad

    def clear(self) -> None:
        """Drop what the last `forward` kept."""
        self._pass = None


class MaxPool(_Pool):
    """N-D max pooling layer: ``torch.nn.MaxPool1d/2d/3d`` with a col2im backward.

    The number of spatial dimensions ``d`` is ``len(kernel_size)``, or
    ``ndim`` (default 2) for an int ``kernel_size``, as for
    [`Conv`][im2col_conv.layer.Conv]. Inputs are ``(N, C, *spatial)`` or
    ``(C, *spatial)`` with ``d`` spatial dimensions and keep their dtype.

    Parameters
    ----------
    kernel_size, stride, padding, dilation, ceil_mode
        As for [`max_pool`][im2col_conv.pooling.max_pool].
    ndim : int, optional
        Number of spatial dimensions when ``kernel_size`` is an int.
    workspace : int, optional
        Bound in bytes on the temporary memory of each pass.

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

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """Max-pool ``x`` and keep every window's winner for
        [`backward`][im2col_conv.pool_layers.MaxPool.backward].

        Raises
        ------
        TypeError, ValueError
            As [`max_pool`][im2col_conv.pooling.max_pool].
        """
        array = _input(x, "x", ordered=True)
        call = self._call(array.shape)
        y, offsets = engine.max_forward(array.reshape(call.shape), call.geometry, self.workspace, "offsets")
        self._pass = _Pass(call, offsets)
        return _result(y, call.unbatched)

    __call__ = forward

    def backward(self, grad_output: ArrayLike) -> NDArray[Any]:
        """``dL/dx`` for the last [`forward`][im2col_conv.pool_layers.MaxPool.forward], of
        ``grad_output``'s dtype.

        Raises
        ------
        RuntimeError
            If [`forward`][im2col_conv.pool_layers.MaxPool.forward] has not been called since
            construction or `clear`.
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

    Dimensions and input forms as for [`MaxPool`][im2col_conv.pool_layers.MaxPool]. Integer inputs give
    float64 outputs, as in [`avg_pool`][im2col_conv.pooling.avg_pool].

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As for [`avg_pool`][im2col_conv.pooling.avg_pool].
    ndim : int, optional
        Number of spatial dimensions when ``kernel_size`` is an int.
    workspace : int, optional
        Bound in bytes on the temporary memory of each pass.

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
        self.count_include_pad = as_flag(count_include_pad, "count_include_pad")
        self.divisor_override = (
            None if divisor_override is None else nonzero_int(divisor_override, "divisor_override")
        )

    def __repr__(self) -> str:
        return (
            f"AvgPool({self._arguments()}, count_include_pad={self.count_include_pad}, "
            f"divisor_override={self.divisor_override})"
        )

    def _averaging(self) -> tuple[bool, int | None]:
        return self.count_include_pad, self.divisor_override

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """Average-pool ``x`` and keep its shape for [`backward`][im2col_conv.pool_layers.AvgPool.backward].

        Raises
        ------
        TypeError, ValueError
            As [`avg_pool`][im2col_conv.pooling.avg_pool].
        """
        array = _input(x, "x", ordered=False)
        call = self._call(array.shape)
        dtype = _average_dtype(array.dtype)
        y = engine.avg_forward(
            array.reshape(call.shape), call.geometry, *self._averaging(), dtype, self.workspace
        )
        self._pass = _Pass(call, None)
        return _result(y, call.unbatched)

    __call__ = forward

    def backward(self, grad_output: ArrayLike) -> NDArray[Any]:
        """``dL/dx`` for the last [`forward`][im2col_conv.pool_layers.AvgPool.forward], of
        ``grad_output``'s dtype (float64 for integers).

        Raises
        ------
        RuntimeError
            If [`forward`][im2col_conv.pool_layers.AvgPool.forward] has not been called since
            construction or `clear`.
        ValueError
            If ``grad_output`` does not have the last output's shape.
        """
        kept, grad = self._kept(grad_output)
        call = kept.call
        dtype = _average_dtype(grad.dtype)
        grad_x = engine.avg_backward(
            grad, call.shape, call.geometry, *self._averaging(), dtype, self.workspace
        )
        return _result(grad_x, call.unbatched)
