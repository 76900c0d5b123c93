"""The commit comparison times the tree it is given and flags the rows that got slower."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "compare_commits", _ROOT / "benchmarks" / "compare_commits.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_worker_times_every_layer_and_pass_of_the_tree():
    script = _script()
    rows = script.worker(str(_ROOT), tiny=True, dtypes=["float64"], repeats=1)
    expected = {(layer, p) for layer in ("conv", "max_pool", "avg_pool") for p in ("forward", "backward")}
    assert {(row["layer"].split()[0], row["pass"]) for row in rows} == expected
    assert all(row["s"] >= 0 and math.isfinite(row["s"]) for row in rows)


def test_the_table_flags_only_rows_more_than_five_percent_slower():
    script = _script()
    rows = [
        {"layer": "a", "dtype": "float32", "pass": "forward", "base_ms": 1.0, "head_ms": 1.04, "ratio": 1.04},
        {"layer": "b", "dtype": "float32", "pass": "backward", "base_ms": 1.0, "head_ms": 1.2, "ratio": 1.2},
    ]
    table = script.format_table({"base": "x", "head": "y", "rounds": 3, "repeats": 5, "rows": rows})
    flagged = [line for line in table.splitlines() if "slower" in line]
    assert len(flagged) == 1 and flagged[0].startswith("b ")
