"""What a proof returns: one `Identity` per compared map, gathered in a `Proof`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..geometry import ConvGeometry

__all__ = ["Identity", "Proof", "format_dims"]


def format_dims(values: Sequence[int]) -> str:
    """Sizes joined by ``x``: ``(3, 4)`` gives ``"3x4"``."""
    return "x".join(str(v) for v in values)


@dataclass(frozen=True)
class Identity:
    """One identity checked by `prove_geometry`.

    Attributes
    ----------
    name : str
        What was compared, e.g. ``"input gradient, formula (8)"``.
    statement : str
        The identity, e.g. ``"col2im(W^T delta) == dilate-pad-rot180-correlate"``.
    held : bool
        True if every coefficient is equal.
    coefficients : int
        Number of integer coefficients compared (the size of the matrix).
    mismatch : str
        Empty if the identity held; otherwise the first differing entry, or
        why the maps could not be compared (a shape error, an exception).
    """

    name: str
    statement: str
    held: bool
    coefficients: int
    mismatch: str = ""

    def __str__(self) -> str:
        mark = "held  " if self.held else "FAILED"
        text = f"{mark} {self.name}: {self.statement} ({self.coefficients} coefficients)"
        return text if self.held else f"{text}\n         {self.mismatch}"


@dataclass(frozen=True)
class Proof:
    """The outcome of a proof for one geometry.

    Attributes
    ----------
    geometry : ConvGeometry
    in_channels, out_channels, groups : int
    identities : tuple of Identity
        For `prove_geometry`, in the order im2col, col2im, forward (4),
        input gradient (8), weight gradient (5), bias gradient (6).
    """

    geometry: ConvGeometry
    in_channels: int
    out_channels: int
    groups: int
    identities: tuple[Identity, ...]

    @property
    def held(self) -> bool:
        """True if every identity held."""
        return all(i.held for i in self.identities)

    @property
    def coefficients(self) -> int:
        """Total number of coefficients compared."""
        return sum(i.coefficients for i in self.identities)

    def describe(self) -> str:
        """The geometry on one line."""
        g = self.geometry
        pad_text = ", ".join(str(b) if b == a else f"{b}/{a}" for b, a in g.padding)
        return (
            f"{g.ndim}-D in {format_dims(g.input_size)} k {format_dims(g.kernel_size)} "
            f"s {format_dims(g.stride)} pad {pad_text} dil {format_dims(g.dilation)} "
            f"groups {self.groups} C {self.in_channels}->{self.out_channels}"
        )

    def line(self) -> str:
        """One line: verdict, geometry, and the first failure if any."""
        held = sum(i.held for i in self.identities)
        verdict = "proved" if self.held else "FAILED"
        text = f"{verdict} {self.describe():<78} {held}/{len(self.identities)} identities"
        failed = [i for i in self.identities if not i.held]
        return text if not failed else f"{text}; {failed[0].name}: {failed[0].mismatch}"

    def __str__(self) -> str:
        head = f"{self.describe()}: " + ("every identity holds" if self.held else "NOT proved")
        return "\n".join([head, *(f"  {i}" for i in self.identities)])
