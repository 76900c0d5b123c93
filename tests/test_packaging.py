"""The wheel and the source distribution: licensed, versioned, and testable after unpacking."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import im2col_conv

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_the_installed_metadata_version():
    assert im2col_conv.__version__ == importlib.metadata.version("im2col_conv")


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("not a source checkout")
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--sdist",
            "--wheel",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


def test_the_wheel_carries_the_license_and_every_module(dists):
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    assert any(n.endswith("licenses/LICENSE") for n in names), names
    for module in ("convolution.py", "direct/formulas.py", "pooling.py", "py.typed"):
        assert f"im2col_conv/{module}" in names
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(dists["wheel"]).read(metadata).decode()
    assert "License-Expression: MIT" in text


def test_the_sdist_tests_run_after_unpacking(dists, tmp_path):
    with tarfile.open(dists["sdist"]) as archive:
        archive.extractall(tmp_path, filter="data")
    unpacked = next(tmp_path.iterdir())
    assert (unpacked / "LICENSE").exists() and (unpacked / "tests" / "oracles.py").exists()
    shutil.rmtree(unpacked / "site", ignore_errors=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_conv_reference.py",
            "tests/test_adjoint.py",
            "-x",
        ],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
