"""The README's full-check command is what CI runs, word for word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_command():
    if not (ROOT / ".ci" / "run").exists():
        pytest.skip("not a source checkout")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)
    full = [c for c in commands if "IM2COL_REQUIRE_ALL=1" in c]
    assert len(full) == 1, "the README gives exactly one full-check command"
    assert full[0] in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
