"""A Hypothesis strategy of convolution geometries, for property tests of any implementation."""

from __future__ import annotations

from typing import Any

from .conformance import ConvCase

__all__ = ["geometries"]


def geometries(
    max_dims: int = 2, max_size: int = 5, max_channels: int = 2, *, dims: int | None = None
) -> Any:
    """A Hypothesis strategy of small valid `ConvCase` values (Hypothesis is imported here).

    Parameters
    ----------
    max_dims : int, optional
        Most spatial dimensions (default 2).
    max_size : int, optional
        Largest input size per dimension (default 5).
    max_channels : int, optional
        Most channels per group (default 2).
    dims : int, optional
        Exactly this many spatial dimensions, e.g. 2 for a ``conv2d``
        (default None: any number up to ``max_dims``).

    Returns
    -------
    hypothesis.strategies.SearchStrategy of ConvCase
    """
    from hypothesis import strategies as st

    @st.composite
    def cases(draw: Any) -> ConvCase:
        ndim = draw(st.integers(1, max_dims)) if dims is None else dims
        size = tuple(draw(st.integers(1, max_size)) for _ in range(ndim))
        stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
        dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
        pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))
        kernel = tuple(
            draw(st.integers(1, max(1, (n + b + a - 1) // d + 1)))
            for n, (b, a), d in zip(size, pads, dilation)
        )
        groups = draw(st.integers(1, 2))
        c_in = groups * draw(st.integers(1, max_channels))
        c_out = groups * draw(st.integers(1, max_channels))
        return ConvCase(
            size, kernel, stride, pads, dilation, groups, c_in, c_out, batch=draw(st.integers(1, 3))
        )

    return cases()
