"""A shortened run of examples/train_digits.py: the layer's gradients train a real model."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_digits.py"


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_short_training_run_learns(example: ModuleType) -> None:
    history = example.train(epochs=3, seed=0, train_subset=600, progress=False, check_backward=True)
    losses, accuracies = history["train_loss"], history["test_accuracy"]
    assert len(losses) == len(accuracies) == 3
    assert losses[-1] < 0.5 * losses[0]
    assert history["final_test_accuracy"] > 0.5  # chance is 0.1
    assert history["backward_rel_diff"] is not None and history["backward_rel_diff"] < 1e-4


def test_short_run_is_reproducible(example: ModuleType) -> None:
    runs = [
        example.train(epochs=1, seed=3, train_subset=200, progress=False, check_backward=False) for _ in "ab"
    ]
    np.testing.assert_array_equal(runs[0]["train_loss"], runs[1]["train_loss"])


def test_main_prints_accuracy_and_saves_plot(
    example: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    assert example.main(["--epochs", "1", "--seed", "1", "--no-progress", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "im2col and direct backward agree" in out
    assert "final test accuracy" in out
    assert plot.stat().st_size > 0


def test_the_model_pools_with_the_library(example: ModuleType) -> None:
    from im2col_conv import MaxPool, max_pool

    model = example.DigitsCNN(np.random.default_rng(0))
    assert isinstance(model.pool1, MaxPool) and isinstance(model.pool2, MaxPool)
    z = np.random.default_rng(1).standard_normal((2, 3, 4, 6))
    np.testing.assert_array_equal(model.pool1(z), z.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5)))
    np.testing.assert_array_equal(model.pool1(z), max_pool(z, 2))
