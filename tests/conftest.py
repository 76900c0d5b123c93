"""Test-suite settings shared by every test file.

``IM2COL_REQUIRE_ALL=1`` (set by ``.ci/run``) turns every skipped test into a
failure: where the oracle extras are installed (PyTorch, scikit-learn, the
browser), a test that skips has lost its oracle, and CI must say so.
Elsewhere those tests skip as usual.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The oracles live beside the tests; make them importable however pytest is started
# (from a checkout or from an unpacked source distribution).
sys.path.insert(0, str(Path(__file__).resolve().parent))

REQUIRE_ALL = os.environ.get("IM2COL_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped, but IM2COL_REQUIRE_ALL=1 requires every test to run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A module that skips as a whole (a module-level importorskip) is a collection skip.
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped, but IM2COL_REQUIRE_ALL=1 requires every test to run: {reason}"
