"""Every command-line entry point: --help works, writes nothing, and documents its exit codes.

The demonstration itself (the README's first command) runs and passes its checks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ENTRY_POINTS = {
    "demo": [sys.executable, "-m", "im2col_conv"],
    "proof": [sys.executable, "-m", "im2col_conv.equivalence"],
    "benchmark": [sys.executable, str(ROOT / "benchmarks" / "bench.py")],
    "integer benchmark": [sys.executable, str(ROOT / "benchmarks" / "integers.py")],
    "commit comparison": [sys.executable, str(ROOT / "benchmarks" / "compare_commits.py")],
    "overhead benchmark": [sys.executable, str(ROOT / "benchmarks" / "overhead.py")],
    "figures": [sys.executable, str(ROOT / "docs" / "make_figures.py")],
    "plot": [sys.executable, str(ROOT / "docs" / "plot_benchmark.py")],
    "training": [sys.executable, str(ROOT / "examples" / "train_digits.py")],
}


def _tracked_state() -> str:
    """What git sees as changed or new in the checkout (empty outside a git checkout)."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout if done.returncode == 0 else ""


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_help_documents_exit_codes_and_writes_nothing(name):
    before = _tracked_state()
    done = _run([*ENTRY_POINTS[name], "--help"])
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert re.search(r"exit (status|code)", done.stdout.lower()), (
        f"{name} --help does not give its exit codes"
    )
    assert _tracked_state() == before, f"{name} --help changed files"


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_an_unknown_option_is_a_usage_error(name):
    assert _run([*ENTRY_POINTS[name], "--no-such-option"]).returncode == 2


def test_the_demo_runs_and_passes_its_checks():
    done = _run(ENTRY_POINTS["demo"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    assert done.stdout.count("\nok ") == 5
