"""``python -m im2col_conv.equivalence``: prove the grid of geometries, then compare in float64."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from .floats import compare_float64
from .sweep import sweep_grid

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m im2col_conv.equivalence",
        description="Prove exactly, geometry by geometry, that the im2col/col2im convolution "
        "and its backward pass equal the direct dilate-pad-rotate method.",
    )
    parser.add_argument("--quick", action="store_true", help="prove a smaller grid")
    parser.add_argument("--quiet", action="store_true", help="print only failures and the total")
    parser.add_argument("--no-float", action="store_true", help="skip the float64 comparison")
    return parser


def _float_failures() -> int:
    worst = 0.0
    for setting in ({"stride": 1, "padding": 1}, {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}):
        comparison = compare_float64(**setting)  # type: ignore[arg-type]
        worst = max(worst, comparison.worst)
        print(comparison)
    if not worst < 1e-12:
        print(f"FAILED: float64 relative error {worst:.1e} is not below 1e-12")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Prove every geometry of the sweep; return 0 if all hold, 1 otherwise.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``): ``--quick`` for
        the smaller grid, ``--quiet`` to print failures and the total only,
        ``--no-float`` to skip the float64 comparison.

    Returns
    -------
    int
        The exit status.
    """
    options = _parser().parse_args(argv)
    start = time.perf_counter()
    grid = sweep_grid(quick=options.quick)
    failed = 0
    coefficients = 0
    for number, case in enumerate(grid, 1):
        proof = case.prove()
        coefficients += proof.coefficients
        failed += not proof.held
        if not options.quiet or not proof.held:
            print(f"{number:4d} {proof.line()}")
    elapsed = time.perf_counter() - start
    proved = len(grid) - failed
    print(
        f"proved {proved} of {len(grid)} geometries exactly (6 identities each, "
        f"{coefficients} integer coefficients compared) in {elapsed:.1f} s"
    )
    if not options.no_float:
        failed += _float_failures()
    return 0 if failed == 0 else 1
