"""Conformance checking for any convolution, in the spirit of ``numpy.testing``.

- `assert_conv_equivalent` proves a forward and/or backward callable exactly
  against the reference maps;
- `ConvCase` names one geometry to prove;
- adapters turn PyTorch-style and channels-last callables into the NumPy
  convention the checker calls (`im2col_conv.testing.adapters`);
- `geometries` is a Hypothesis strategy of valid cases for property tests.
"""

from __future__ import annotations

from .adapters import channels_last, torch_autograd_backward, torch_forward
from .conformance import ConvCase, assert_conv_equivalent
from .strategies import geometries

__all__ = [
    "ConvCase",
    "assert_conv_equivalent",
    "channels_last",
    "geometries",
    "torch_autograd_backward",
    "torch_forward",
]
