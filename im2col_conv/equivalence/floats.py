"""Both formulations on realistic random float64 data: they differ by rounding only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import direct
from ..convolution import conv, conv_backward
from ..geometry import ConvGeometry, IntOrTuple, PaddingLike
from .results import format_dims

__all__ = ["FloatComparison", "compare_float64"]


@dataclass(frozen=True)
class FloatComparison:
    """Largest relative differences between the two formulations on random float64 data.

    Each error is ``max |im2col - direct| / max |direct|`` over one result.

    Attributes
    ----------
    description : str
        The sizes and geometry compared.
    forward, input, weight, bias : float
        Relative errors of the forward output and of the three gradients.
    """

    description: str
    forward: float
    input: float
    weight: float
    bias: float

    @property
    def worst(self) -> float:
        """The largest of the four errors."""
        return max(self.forward, self.input, self.weight, self.bias)

    def __str__(self) -> str:
        return (
            f"float64 {self.description}: max relative error forward {self.forward:.1e}, "
            f"input {self.input:.1e}, weight {self.weight:.1e}, bias {self.bias:.1e}"
        )


def _relative_error(a: NDArray[Any], b: NDArray[Any]) -> float:
    scale = float(np.max(np.abs(b)))
    return float(np.max(np.abs(a - b))) / scale if scale else float(np.max(np.abs(a - b)))


def compare_float64(
    batch: int = 8,
    in_channels: int = 16,
    out_channels: int = 32,
    size: tuple[int, ...] = (32, 32),
    kernel_size: tuple[int, ...] = (3, 3),
    stride: IntOrTuple = 1,
    padding: PaddingLike = 1,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    seed: int = 0,
) -> FloatComparison:
    """Run both formulations on the same random float64 data and measure how far apart they are.

    Parameters
    ----------
    batch, in_channels, out_channels : int, optional
        ``N``, ``C_in`` and ``C_out`` (default 8, 16 and 32).
    size, kernel_size : tuple of int, optional
        Spatial sizes of the input and the kernel (default 32x32 and 3x3).
    stride, padding, dilation, groups : optional
        As for [`im2col_conv.conv`][im2col_conv.convolution.conv].
    seed : int, optional
        Seed of the standard-normal data.

    Returns
    -------
    FloatComparison

    Examples
    --------
    >>> result = compare_float64(2, 2, 4, (8, 8), (3, 3), stride=2)
    >>> result.worst < 1e-13
    True
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, in_channels, *size))
    w = rng.standard_normal((out_channels, in_channels // groups, *kernel_size))
    b = rng.standard_normal(out_channels)
    keywords: dict[str, Any] = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    y = conv(x, w, bias=b, **keywords)
    y_direct = direct.conv(x, w, bias=b, **keywords)
    delta = rng.standard_normal(y.shape)
    grads = conv_backward(delta, x, w, **keywords)
    grads_direct = direct.conv_backward(delta, x, w, **keywords)
    geometry = ConvGeometry.create(size, kernel_size, stride, padding, dilation)
    description = (
        f"N={batch}, C {in_channels}->{out_channels}, {format_dims(size)} input, "
        f"{format_dims(kernel_size)} kernel, stride {format_dims(geometry.stride)}, padding {padding}, "
        f"dilation {format_dims(geometry.dilation)}, groups {groups}"
    )
    return FloatComparison(
        description,
        _relative_error(y, y_direct),
        _relative_error(grads.input, grads_direct.input),
        _relative_error(grads.weight, grads_direct.weight),
        _relative_error(grads.bias, grads_direct.bias),
    )
