"""Every code sample of the documentation runs, and every signature it quotes is the code's.

``>>>`` samples in Markdown and docstrings run as doctests (``--doctest-glob=*.md``
and ``--doctest-modules`` in pyproject.toml). The fenced Python blocks without
``>>>`` run here: each page's blocks in order, in one namespace, from an empty
directory, with matplotlib's file-only backend. A last test makes sure no
docstring example of the package escapes doctest's collection.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import re
from pathlib import Path
from typing import Any

import pytest

import im2col_conv

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
PACKAGE = ROOT / "im2col_conv"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[str]:
    """The fenced ``python`` blocks of ``page`` that are scripts, not doctests, in page order."""
    text = page.read_text(encoding="utf-8")
    blocks = [body for lang, body in _FENCE.findall(text) if lang in ("python", "py", "python3")]
    return [body for body in blocks if not body.lstrip().startswith(">>>")]


SCRIPT_PAGES = [page for page in PAGES if python_blocks(page)]


def test_the_extractor_finds_the_script_blocks() -> None:
    assert any(page.name == "training.md" for page in SCRIPT_PAGES)
    sample = "text\n```python\nx = 1\n```\n```python\n>>> 1\n1\n```\n```sh\nls\n```\n"
    path_blocks = [body for lang, body in _FENCE.findall(sample) if lang == "python"]
    assert path_blocks == ["x = 1\n", ">>> 1\n1\n"]


@pytest.mark.parametrize("page", SCRIPT_PAGES, ids=lambda p: p.name)
def test_page_scripts_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(python_blocks(page), 1):
        code = compile(block, f"{page.name}, python block {number}", "exec")
        exec(code, namespace)
    assert os.getcwd() == str(tmp_path)


# -- signatures quoted in prose -----------------------------------------------------------------

_QUOTED_CALL = re.compile(r"`(?:ic\.)?([A-Za-z_]\w*)\(([^`()]*(?:\([^`()]*\)[^`()]*)*)\)`")


def _quoted_calls() -> list[tuple[str, str, str]]:
    found = []
    public = set(im2col_conv.__all__)
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _QUOTED_CALL.finditer(text):
            name, args = match.groups()
            layer = name in ("Conv", "MaxPool", "AvgPool")
            if layer or (name in public and inspect.isfunction(getattr(im2col_conv, name))):
                found.append((page.name, name, args))
    return found


def _split(args: str) -> list[str]:
    """The top-level comma-separated items of a quoted argument list."""
    items, depth, current = [], 0, ""
    for char in args + ",":
        depth += (char in "([") - (char in ")]")
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [item for item in items if item and item != "*"]


QUOTED = _quoted_calls()


def test_quoted_signatures_are_found() -> None:
    assert ("index.md", "im2col") in {(page, name) for page, name, _ in QUOTED}
    assert _split("input, kernel_size, stride=(1, 2), ...") == [
        "input",
        "kernel_size",
        "stride=(1, 2)",
        "...",
    ]


@pytest.mark.parametrize(("page", "name", "args"), QUOTED, ids=[f"{p}:{n}" for p, n, _ in QUOTED])
def test_quoted_signatures_name_the_parameters_in_order(page: str, name: str, args: str) -> None:
    """A quoted call that spells out parameter names is a signature: it must be the code's."""
    target = getattr(im2col_conv, name)
    function = target.__init__ if inspect.isclass(target) else target
    params = [p for p in inspect.signature(function).parameters if p != "self"]
    items = _split(args)
    keywords = [item.split("=")[0].strip() for item in items if "=" in item]
    for keyword in keywords:
        assert keyword in params, f"{page}: `{name}({args})` has no parameter {keyword!r}; it has {params}"
    leading = []
    for item in items:
        if item.startswith("...") or "=" in item:
            break
        leading.append(item)
    if sum(item in params for item in leading) < 2:
        return  # values, not names: a call such as conv(x, w)
    assert leading == params[: len(leading)], f"{page}: `{name}({args})`, but the signature is {params}"
    named = leading + keywords
    assert [params.index(n) for n in named] == sorted(params.index(n) for n in named), (
        f"{page}: `{name}({args})` lists the parameters out of order; the signature is {params}"
    )


# -- docstring examples ---------------------------------------------------------------------------


def _module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("module_name", _module_names())
def test_every_docstring_example_is_collected(module_name: str) -> None:
    path = ROOT / Path(*module_name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    written = sum(line.lstrip().startswith(">>>") for line in path.read_text(encoding="utf-8").splitlines())
    if path.name == "__main__.py":
        assert written == 0, "pytest does not collect __main__.py: move its examples to a module"
        return
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder().find(module, module_name)
    collected = sum(len(test.examples) for test in tests)
    assert collected == written, (
        f"{module_name}: {written} '>>>' lines in the file, {collected} doctest examples collected "
        "(an example in a closure, a comment or a private object doctest does not reach?)"
    )


# -- the PyTorch page -----------------------------------------------------------------------------


def test_the_pytorch_page_names_every_counterpart() -> None:
    text = (ROOT / "docs" / "pytorch.md").read_text(encoding="utf-8")
    torch_names = ["unfold", "fold", "nn.Conv2d", "nn.MaxPool2d", "nn.AvgPool2d", "nn.Unfold", "nn.Fold"]
    torch_names += ["torch.nn.functional.conv2d", "torch.nn.functional.unfold", "torch.nn.functional.fold"]
    for kind in ("conv", "conv_transpose", "max_pool", "avg_pool"):
        torch_names += [f"{kind}{d}d" for d in (1, 2, 3)]
    for d in (1, 2, 3):
        torch_names += [f"nn.Conv{d}d", f"nn.MaxPool{d}d", f"nn.AvgPool{d}d"]
    missing = [name for name in torch_names if name not in text]
    assert not missing, f"docs/pytorch.md does not mention {missing}"
    ours = [name for name in im2col_conv.__all__ if name not in ("Columns", "ConvGeometry", "output_size")]
    assert not [name for name in ours if f"`{name}" not in text and f"{name}(" not in text]
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "pytorch.md" in nav
