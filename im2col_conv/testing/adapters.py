"""Adapters: PyTorch-style and channels-last convolutions as NumPy callables for the checker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..geometry import PaddingLike

__all__ = ["channels_last", "gradient_triple", "torch_autograd_backward", "torch_forward"]


def gradient_triple(result: Any) -> tuple[Any, Any, Any]:
    """``(grad_input, grad_weight, grad_bias)`` from a tuple or an object with those attributes."""
    if hasattr(result, "input"):
        return result.input, result.weight, result.bias
    grad_input, grad_weight, grad_bias = result
    return grad_input, grad_weight, grad_bias


def _torch_padding(padding: PaddingLike, ndim: int) -> tuple[Any, list[int] | None]:
    """PyTorch's own padding argument, or explicit ``F.pad`` amounts for ``(before, after)`` pairs."""
    if isinstance(padding, str) or isinstance(padding, int):
        return padding, None
    items: list[Any] = list(padding)  # type: ignore[arg-type]
    if items and isinstance(items[0], int):
        return tuple(items), None
    amounts: list[int] = []
    for before, after in reversed(items):  # F.pad lists the last dimension first
        amounts += [int(before), int(after)]
    return 0, amounts


def torch_forward(fn: Callable[..., Any]) -> Callable[..., NDArray[Any]]:
    """Adapt a PyTorch-style forward (``torch.nn.functional.conv2d`` and the like) to NumPy arrays.

    ``(before, after)`` padding pairs are applied with ``torch.nn.functional.pad``
    first, since PyTorch's convolutions take symmetric amounts only. torch is
    imported when the adapter is first called.

    Parameters
    ----------
    fn : callable
        ``fn(x, weight, bias, stride=, padding=, dilation=, groups=)`` on
        tensors, for instance ``torch.nn.functional.conv2d``.

    Returns
    -------
    callable
        ``forward(x, weight, bias=None, *, stride, padding, dilation, groups)``
        on NumPy arrays, returning an array.
    """

    def forward(
        x: Any,
        weight: Any,
        bias: Any = None,
        *,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
    ) -> NDArray[Any]:
        import torch

        tx, tw = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(weight))
        tb = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias))
        pad, amounts = _torch_padding(padding, tw.ndim - 2)
        if amounts is not None:
            tx = torch.nn.functional.pad(tx, amounts)
        y = fn(tx, tw, tb, stride=stride, padding=pad, dilation=dilation, groups=groups)
        return np.asarray(y.detach().numpy())

    return forward


def torch_autograd_backward(fn: Callable[..., Any]) -> Callable[..., tuple[NDArray[Any], ...]]:
    """Gradients of a PyTorch-style forward by autograd: ``(grad_input, grad_weight, grad_bias)`` arrays.

    Parameters
    ----------
    fn : callable
        A forward as taken by `torch_forward`.

    Returns
    -------
    callable
        ``backward(grad_output, x, weight, *, stride, padding, dilation, groups)``
        on NumPy arrays, returning the three gradients as arrays.
    """

    def backward(
        grad_output: Any,
        x: Any,
        weight: Any,
        *,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
    ) -> tuple[NDArray[Any], ...]:
        import torch

        tx = torch.from_numpy(np.array(x)).requires_grad_(True)
        tw = torch.from_numpy(np.array(weight)).requires_grad_(True)
        tb = torch.zeros(tw.shape[0], dtype=tw.dtype, requires_grad=True)
        pad, amounts = _torch_padding(padding, tw.ndim - 2)
        source = tx if amounts is None else torch.nn.functional.pad(tx, amounts)
        y = fn(source, tw, tb, stride=stride, padding=pad, dilation=dilation, groups=groups)
        y.backward(torch.from_numpy(np.array(grad_output)))
        grads = (tx.grad, tw.grad, tb.grad)
        return tuple(np.asarray(t.numpy()) for t in grads if t is not None)

    return backward


def channels_last(fn: Callable[..., Any], *, backward: bool = False) -> Callable[..., Any]:
    """Adapt an implementation whose activations are channels-last, ``(N, *spatial, C)``.

    The weight keeps PyTorch's layout.

    Parameters
    ----------
    fn : callable
        A forward ``fn(x, weight, bias, **geometry)``, or with ``backward``
        a backward ``fn(grad_output, x, weight, **geometry)``, on
        channels-last activations.
    backward : bool, optional
        Whether ``fn`` is a backward returning ``(grad_input, grad_weight,
        grad_bias)`` with ``grad_input`` channels-last (default False).

    Returns
    -------
    callable
        The same call on channels-first arrays.
    """

    def to_last(a: Any) -> NDArray[Any]:
        return np.moveaxis(np.asarray(a), 1, -1)

    def to_first(a: Any) -> NDArray[Any]:
        return np.moveaxis(np.asarray(a), -1, 1)

    def forward(x: Any, weight: Any, bias: Any = None, **keywords: Any) -> NDArray[Any]:
        return to_first(fn(to_last(x), weight, bias, **keywords))

    def gradients(grad_output: Any, x: Any, weight: Any, **keywords: Any) -> tuple[Any, Any, Any]:
        grad_input, grad_weight, grad_bias = gradient_triple(
            fn(to_last(grad_output), to_last(x), weight, **keywords)
        )
        return to_first(grad_input), grad_weight, grad_bias

    return gradients if backward else forward
