"""What every layer shares, under PyTorch's names: mode, parameters, gradients, state dict.

`Layer` is the base of `Conv`, `MaxPool` and `AvgPool`. A layer lists the
attribute names of its parameters in ``_PARAMETERS``; the gradient of
parameter ``name`` lives in the attribute ``grad_<name>``. Layers without
parameters (the pooling layers) get the same methods, so a training loop can
treat every layer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

from ._validation import as_flag, as_int

__all__ = ["IncompatibleKeys", "Layer", "float_dtype", "make_rng"]

_Self = TypeVar("_Self", bound="Layer")


def make_rng(rng: object) -> np.random.Generator:
    """A generator from ``rng``: None (fresh), a ``numpy.random.Generator``, or a non-negative seed."""
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


def float_dtype(dtype: object) -> np.dtype[Any]:
    """``dtype`` as a numpy dtype, which must be floating."""
    try:
        result: np.dtype[Any] = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r}") from exc
    if result.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r} ({result})")
    return result


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` did not match, as PyTorch reports it.

    Attributes
    ----------
    missing_keys : list of str
        The layer's parameters the state dict did not hold.
    unexpected_keys : list of str
        Keys of the state dict that are not parameters of the layer.
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


class Layer:
    """Training/evaluation mode, parameters and state dict of a layer.

    ``training`` is True after construction. In evaluation mode
    (``layer.eval()``) a forward pass keeps nothing for a backward pass, and
    a backward pass after it raises a RuntimeError.
    """

    #: Attribute names of the parameters, in state-dict order.
    _PARAMETERS: tuple[str, ...] = ()

    training: bool = True
    _forward_in_eval: bool = False  # the last forward ran in evaluation mode, keeping nothing

    # -- mode ------------------------------------------------------------------------------------

    def train(self: _Self, mode: bool = True) -> _Self:
        """Set training mode (``mode=True``) or evaluation mode; return the layer itself.

        Parameters
        ----------
        mode : bool, optional
            True (default) for training mode, False for evaluation mode.

        Returns
        -------
        layer
            ``self``, so that ``layer = Conv(...).eval()`` works.
        """
        self.training = as_flag(mode, "mode")
        return self

    def eval(self: _Self) -> _Self:
        """Set evaluation mode (``train(False)``); return the layer itself.

        In evaluation mode a forward pass keeps nothing for a backward pass.

        Returns
        -------
        layer
            ``self``.
        """
        return self.train(False)

    def _no_pass(self, method: str) -> RuntimeError:
        """The error for a backward pass with nothing kept for it."""
        name = type(self).__name__
        if self._forward_in_eval:
            return RuntimeError(
                f"{name}.{method} called after a forward pass in eval mode: a layer in eval mode "
                f"(training=False) keeps nothing for a backward pass; call layer.train() before the forward"
            )
        return RuntimeError(
            f"{name}.{method} called before forward: there is no forward pass to differentiate"
        )

    # -- parameters and gradients ----------------------------------------------------------------

    def named_parameters(self) -> list[tuple[str, NDArray[Any]]]:
        """``(name, array)`` for every parameter, as ``torch.nn.Module.named_parameters`` yields.

        ``dict(layer.named_parameters())`` maps names to arrays. The arrays are
        the layer's own: an optimiser updating them in place updates the layer.

        Returns
        -------
        list of (str, ndarray)
            ``[("weight", weight), ("bias", bias)]`` for a `Conv` with a
            bias; empty for a pooling layer.
        """
        items = [(name, getattr(self, name)) for name in self._PARAMETERS]
        return [(name, value) for name, value in items if value is not None]

    def parameters(self) -> list[NDArray[Any]]:
        """Every parameter array, in the order of `named_parameters`.

        Returns
        -------
        list of ndarray
            The layer's own arrays (not copies).
        """
        return [value for _, value in self.named_parameters()]

    def named_gradients(self) -> list[tuple[str, NDArray[Any] | None]]:
        """``(name, gradient)`` for every parameter: what PyTorch keeps in ``param.grad``.

        Returns
        -------
        list of (str, ndarray or None)
            The gradient the last backward pass stored for each parameter
            (``grad_<name>``), or None before any backward pass or after
            `zero_grad`.
        """
        return [(name, getattr(self, f"grad_{name}")) for name, _ in self.named_parameters()]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the parameter gradients, as ``torch.nn.Module.zero_grad`` does.

        Parameters
        ----------
        set_to_none : bool, optional
            Set every gradient to None (default True, as in PyTorch), or,
            if False, to an array of zeros of its parameter's shape and dtype.
        """
        none = as_flag(set_to_none, "set_to_none")
        for name, value in self.named_parameters():
            setattr(self, f"grad_{name}", None if none else np.zeros_like(value))

    # -- state dict ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, NDArray[Any]]:
        """A copy of every parameter, keyed by name, in PyTorch's keys (``weight``, ``bias``).

        It round-trips through ``np.savez(path, **layer.state_dict())`` and
        ``layer.load_state_dict(np.load(path))``.

        Returns
        -------
        dict of str to ndarray
            Copies: changing them does not change the layer.
        """
        return {name: value.copy() for name, value in self.named_parameters()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy parameters from ``state_dict`` into the layer's own arrays.

        Every value must have its parameter's exact shape and dtype: nothing
        is cast (``Conv.to`` changes a layer's dtype). The arrays are
        written in place, so an optimiser holding them sees the new values.
        Everything is checked before anything is written.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            For instance a `state_dict` result, or ``np.load`` of an
            ``.npz`` file written from one.
        strict : bool, optional
            Require the keys to be exactly the layer's parameter names
            (default). If False, missing and unexpected keys are skipped
            and only reported.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, both empty when ``strict``.

        Raises
        ------
        TypeError
            If ``state_dict`` is not a mapping or a value's dtype differs
            from its parameter's.
        ValueError
            If ``strict`` and the keys differ, or a value's shape differs
            from its parameter's.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}"
            )
        own = dict(self.named_parameters())
        keys = [str(key) for key in state_dict.keys()]
        missing = [name for name in own if name not in keys]
        unexpected = [key for key in keys if key not in own]
        if as_flag(strict, "strict") and (missing or unexpected):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: missing key(s) {missing}, unexpected key(s) "
                f"{unexpected}; the layer's keys are {list(own)}"
            )
        loaded = {
            name: self._checked_value(name, state_dict[name], own[name]) for name in own if name in keys
        }
        for name, value in loaded.items():
            np.copyto(own[name], value)
        return IncompatibleKeys(missing, unexpected)

    def _checked_value(self, name: str, given: object, current: NDArray[Any]) -> NDArray[Any]:
        value = np.asarray(given)
        if value.shape != current.shape:
            raise ValueError(
                f"size mismatch for {name}: the state dict's has shape {value.shape}, "
                f"the layer's has shape {current.shape}"
            )
        if value.dtype != current.dtype:
            raise TypeError(
                f"dtype mismatch for {name}: the state dict's is {value.dtype}, the layer's is "
                f"{current.dtype}; nothing is cast: cast the array, or the layer with layer.to({value.dtype})"
            )
        return value
