"""Plant known bugs in a copy of the package and report which the proof and the tests catch.

Usage::

    python benchmarks/mutants.py                 # proof (default sweep) and the focused tests
    python benchmarks/mutants.py --quick         # proof --quick only: a smoke run
    python benchmarks/mutants.py --suite         # the whole test suite instead of the focused tests
    python benchmarks/mutants.py --only 3 7

Each mutant is one textual replacement in one file of a temporary copy of
``im2col_conv`` (the working tree is never touched). A mutant whose text is
no longer found is reported as "n/a": update its entry when the code moves.
The proof is ``python -m im2col_conv.equivalence --quiet --no-float``; the
focused tests are the engine, workspace, equivalence and regression tests.
Exit status 1 if a mutant survives both.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (bug class, file, original text, planted text)
MUTANTS = [
    (
        "multi-sample tiles: output transposed wrongly",
        "_engine.py",
        "result = product.reshape(c_out, nb, *tile_out).swapaxes(0, 1)",
        "result = product.reshape(nb, c_out, *tile_out)",
    ),
    (
        "multi-sample tiles: gradient copied batch-first",
        "_engine.py",
        "np.copyto(target, rows.swapaxes(0, 1))",
        "np.copyto(target.reshape(rows.shape), rows)",
    ),
    (
        "single-sample in-place tiles: band written at the start",
        "_engine.py",
        "out=flat[:, :, rows.start * row : rows.stop * row]",
        "out=flat[:, :, 0 : (rows.stop - rows.start) * row]",
    ),
    (
        "row bands: a band loses one row of before-padding",
        "geometry.py",
        "pad_before = min(max(before - start, 0), stop - start)",
        "pad_before = min(max(before - start - 1, 0), stop - start)",
    ),
    (
        "fused column gradient (>= 64 channels): offsets shifted",
        "_engine.py",
        "_matmul(offsets[index], delta_t, out=products)",
        "_matmul(offsets[index - 1], delta_t, out=products)",
    ),
    (
        "kept columns with bands: band window ignored",
        "_engine.py",
        "block: NDArray[Any] = kept[key].reshape(g, kept.shape[1] * volume, -1)",
        "block: NDArray[Any] = kept[:, :, :, :].reshape(g, kept.shape[1] * volume, -1)"
        "[:, :, : tile.geometry.output_volume]",
    ),
    (
        "pointwise path, N > 1: first sample only",
        "_pointwise.py",
        "grad_w_t += matmul(columns, delta_c.swapaxes(2, 3)).sum(axis=0)",
        "grad_w_t += matmul(columns, delta_c.swapaxes(2, 3))[0]",
    ),
    (
        "complex dtypes: gradients not conjugated",
        "convolution.py",
        'conjugate=ops.compute.kind == "c"',
        "conjugate=False",
    ),
    (
        "scratch reuse: re-zeroed only when the padding changes",
        "workspace.py",
        "self._layouts.get(name) != (shape, zeroed_for)",
        "self._layouts.get(name, (None, None))[1] != zeroed_for",
    ),
    (
        "band wholly in the after-padding: reads the last input row",
        "geometry.py",
        "low = min(max(start - before, 0), size)",
        "low = min(max(start - before, 0), max(size - 1, 0))",
    ),
    (
        "band in the after-padding: pad_after clamped (equivalent here)",
        "geometry.py",
        "pad_after = (stop - start) - pad_before - (high - low)",
        "pad_after = max((stop - start) - pad_before - (high - low), 0)",
    ),
    (
        "normalisation: padding pairs read as (after, before)",
        "geometry.py",
        'pairs.append((as_int(p[0], "padding"), as_int(p[1], "padding")))',
        'pairs.append((as_int(p[1], "padding"), as_int(p[0], "padding")))',
    ),
    (
        'normalisation: "same" puts the odd element before',
        "geometry.py",
        "pairs.append((total // 2, total - total // 2))",
        "pairs.append((total - total // 2, total // 2))",
    ),
    (
        "bias term: added to the first sample only",
        "convolution.py",
        "y += bias.reshape((-1,) + (1,) * (y.ndim - 2))",
        "y[:1] += bias.reshape((-1,) + (1,) * (y.ndim - 2))",
    ),
    (
        "batch: bias gradient of the first sample only",
        "convolution.py",
        "return row_sums(per_sample.T).astype(ops.dtype, copy=False)",
        "return row_sums(per_sample[:1].T).astype(ops.dtype, copy=False)",
    ),
]

FOCUSED_TESTS = [
    "tests/test_engine_regressions.py",
    "tests/test_workspace.py",
    "tests/test_equivalence.py",
    "tests/test_engine_proof.py",
    "tests/test_gradients.py",
    "tests/test_conv_reference.py",
]


def _run(command: list[str], cwd: Path, timeout: int) -> bool:
    """True if the command failed (the mutant was caught)."""
    env = {"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return True
    return done.returncode != 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="proof --quick, no tests")
    parser.add_argument("--suite", action="store_true", help="run the whole test suite")
    parser.add_argument("--only", type=int, nargs="*", help="mutant numbers (1-based)")
    options = parser.parse_args()
    chosen = options.only or range(1, len(MUTANTS) + 1)
    survivors = 0
    print(f"{'#':>2} {'bug class':<62} {'proof':>6} {'tests':>6}")
    for number in chosen:
        label, name, old, new = MUTANTS[number - 1]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            shutil.copytree(ROOT / "im2col_conv", work / "im2col_conv")
            shutil.copytree(ROOT / "tests", work / "tests")
            shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
            target = work / "im2col_conv" / name
            text = target.read_text() if target.exists() else ""
            if old not in text:
                print(f"{number:>2} {label:<62} {'n/a':>6} {'n/a':>6}")
                continue
            target.write_text(text.replace(old, new, 1))
            start = time.perf_counter()
            proof = [
                sys.executable,
                "-m",
                "im2col_conv.equivalence",
                "--quiet",
                "--no-float",
                "--no-progress",
            ]
            caught_proof = _run(proof + (["--quick"] if options.quick else []), work, 900)
            caught_tests = None
            if not options.quick:
                tests = ["tests"] if options.suite else FOCUSED_TESTS
                pytest = [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-x",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-o",
                    "addopts=",
                ]
                caught_tests = _run(pytest + tests, work, 900)
            shown = "-" if caught_tests is None else ("caught" if caught_tests else "missed")
            proof_text = "caught" if caught_proof else "missed"
            survivors += not caught_proof and not caught_tests
            print(
                f"{number:>2} {label:<62} {proof_text:>6} {shown:>6}  ({time.perf_counter() - start:.0f} s)"
            )
    print(f"{survivors} mutant(s) survived")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
