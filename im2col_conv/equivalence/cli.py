"""``python -m im2col_conv.equivalence``: the whole proof from the command line.

Exit status: 0 if everything was proved, 1 if any identity or check failed,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

from .engine_proof import DEFAULT_PATHS
from .engine_sweep import EngineCase, default_cases, exhaustive_cases
from .floats import compare_float64
from .normalisation import check_normalisation
from .results import Proof
from .sweep import sweep_grid

__all__ = ["COVERAGE", "main"]

#: What a successful run proves, printed at its end and quoted on the docs page.
COVERAGE = """\
What was proved, for every geometry listed (input size, kernel, stride, padding, dilation, groups, channels):
  1. im2col is the 0/1 selection matrix P, col2im is P^T, and the im2col/col2im forward and gradients have
     the same integer coefficients as the document's direct method (formulas 4, 5, 6, 8);
  2. conv, conv_backward, conv_forward + conv_backward(columns=...) and conv_transpose have the coefficients
     of the explicit 0/1 maps (written from the index relation, not from ConvGeometry) on these engine paths:
     int64 at the default workspace; float64 with a 1-byte workspace (one sample and one output row per tile);
     float64 and complex128 with a few samples or rows per tile; batches of up to 8 samples with a probe in
     every sample position; 1x1 pointwise kernels; the fused column gradient; bands in the after-padding;
     one input channel at a time (a 1-byte workspace); the paths picked by layer shape (one product per
     sample or per tile, col2im by kernel offsets or, for kernels larger than their output, by windows),
     small geometries taking them with the size rules lowered through a scoped override;
  3. the bias term of formula (4), and the argument normalisation against the documented rules.
Premises, each checked: every map is bilinear (linear in the bias) and the samples of a batch do not
interact (random signed batches against the explicit maps); the packed probes carried no digit (every read
value an exact integer in range); the result does not depend on the tiling (each workspace proved
separately) or on the dtype (int64, float64, complex128 proved separately; the complex gradients
conjugate exactly their second operand, PyTorch's convention). Not covered: geometries, batch sizes,
workspaces and dtypes not listed, and float
rounding, which the float64 comparison measures instead."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m im2col_conv.equivalence",
        description="Prove exactly, geometry by geometry, that the im2col/col2im convolution and its "
        "backward pass equal the direct dilate-pad-rotate method, and that the public functions compute "
        "the explicit reference maps on every path of the engine.",
        epilog="exit status: 0 everything proved, 1 an identity or check failed, 2 usage error",
    )
    parser.add_argument("--quick", action="store_true", help="prove smaller grids (for the test suite)")
    parser.add_argument("--quiet", action="store_true", help="print only failures and totals")
    parser.add_argument("--no-float", action="store_true", help="skip the float64 comparison")
    parser.add_argument(
        "--exhaustive",
        action="store_true",
        help="also prove every geometry of the 1-D box (input 1-10, kernel 1-5, stride 1-4, dilation 1-3, "
        "padding 0-3 per side, groups up to 2, channels up to 4) and of a 2-D box",
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return parser


def _prove_case(case: EngineCase) -> tuple[str, Proof, float]:
    start = time.perf_counter()
    proof = case.prove()
    return case.category, proof, time.perf_counter() - start


def _run(cases: list[EngineCase], jobs: int, progress: bool) -> Iterable[tuple[str, Proof, float]]:
    step, done = max(1, len(cases) // 20), 0
    if jobs > 1:
        pool = ProcessPoolExecutor(jobs)
        results: Iterable[tuple[str, Proof, float]] = pool.map(_prove_case, cases, chunksize=16)
    else:
        pool, results = None, map(_prove_case, cases)
    try:
        for result in results:
            done += 1
            if progress and (done % step == 0 or done == len(cases)):
                print(f"  {done}/{len(cases)} geometries", file=sys.stderr, flush=True)
            yield result
    finally:
        if pool is not None:
            pool.shutdown()


def _engine_part(cases: list[EngineCase], options: argparse.Namespace) -> int:
    rows: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0.0])
    failed = 0
    start = time.perf_counter()
    for category, proof, seconds in _run(cases, max(1, options.jobs), not options.no_progress):
        row = rows[category]
        row[0] += 1
        row[1] += proof.held
        row[2] += len(proof.identities)
        row[3] += proof.coefficients
        row[4] += seconds
        if not proof.held:
            failed += 1
            print(f"FAILED {category}: {proof.line()}")
    elapsed = time.perf_counter() - start
    head = ("category", "geometries", "proved", "identities", "coefficients", "cpu s")
    print(f"{head[0]:<42} {head[1]:>10} {head[2]:>7} {head[3]:>10} {head[4]:>13} {head[5]:>7}")
    for category, (count, held, identities, coefficients, seconds) in rows.items():
        print(f"{category:<42} {count:>10} {held:>7} {identities:>10} {coefficients:>13} {seconds:>7.1f}")
    total = len(cases) - failed
    print(f"proved {total} of {len(cases)} geometries on every engine path listed in {elapsed:.1f} s")
    return failed


def _direct_part(options: argparse.Namespace) -> int:
    start = time.perf_counter()
    grid = sweep_grid(quick=options.quick)
    failed = coefficients = 0
    for number, case in enumerate(grid, 1):
        proof = case.prove()
        coefficients += proof.coefficients
        failed += not proof.held
        if not options.quiet or not proof.held:
            print(f"{number:4d} {proof.line()}")
    print(
        f"proved {len(grid) - failed} of {len(grid)} geometries exactly (6 identities each, "
        f"{coefficients} integer coefficients compared) in {time.perf_counter() - start:.1f} s"
    )
    return failed


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
    """Run the proof; return the exit status (0 proved, 1 a failure, 2 usage error).

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``); see ``--help``.

    Returns
    -------
    int
        The exit status.
    """
    try:
        options = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    print("Part 1: the im2col/col2im formulation equals the direct method")
    failed = _direct_part(options)
    print("Part 2: argument normalisation against the documented rules")
    for identity in check_normalisation():
        failed += not identity.held
        print(f"  {identity}")
    print(f"Part 3: the public functions on {len(DEFAULT_PATHS)} engine paths against the explicit maps")
    cases = default_cases()
    if options.quick:
        cases = cases[::25]
    if options.exhaustive:
        cases += exhaustive_cases(1) + exhaustive_cases(2)
    failed += _engine_part(cases, options)
    if not options.no_float:
        failed += _float_failures()
    if not options.quiet:
        print(COVERAGE)
    print("everything proved" if failed == 0 else f"NOT PROVED: {failed} failures")
    return 0 if failed == 0 else 1
