"""The performance page and the results file quote the published benchmark results exactly.

``docs/plot_benchmark.py`` renders ``benchmarks/results/latest.json`` as the
page's short table and the results file's full table; the committed Markdown
must be that rendering, so a number edited by hand, or results published
without their tables, fails here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _plotter() -> Any:
    spec = importlib.util.spec_from_file_location("plot_benchmark", ROOT / "docs" / "plot_benchmark.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _latest() -> dict[str, Any]:
    return json.loads((RESULTS / "latest.json").read_text())


def test_the_page_quotes_the_latest_results():
    table = _plotter().summary_table(_latest())
    assert table in (ROOT / "docs" / "performance.md").read_text()


def test_the_results_file_holds_every_column_of_the_latest_run():
    table = _plotter().markdown_table(_latest())
    assert table in (RESULTS / "history.md").read_text()


def test_the_short_table_has_one_row_per_layer_and_dtype():
    results = _latest()
    rows = _plotter().summary_table(results).splitlines()[2:]
    assert len(rows) == len(results["rows"])
    for line, row in zip(rows, results["rows"]):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[2] == row["dtype"]
        assert float(cells[3]) == round(row["forward_ms"] + row["backward_ms"], 1)
        assert float(cells[5]) == round(row["total_vs_torch"], 2)
