"""Every planted bug of ``benchmarks/mutants.py`` still finds the text it replaces.

A mutant whose original text has gone (the code was rewritten) is silently
reported as not applicable by the script, and its row of the docs table would
then prove nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _mutants():
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "benchmarks" / "mutants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MUTANTS


@pytest.mark.parametrize(("label", "name", "old", "new"), _mutants(), ids=lambda value: str(value)[:40])
def test_the_planted_bug_applies_once(label, name, old, new):
    text = (ROOT / "im2col_conv" / name).read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{label}: the text to replace is not found exactly once in {name}"
    assert old != new
