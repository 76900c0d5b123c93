"""The package's layering, read from the modules' own import statements.

Each module belongs to a layer and may import only from layers below it, so
the import graph has no cycle and nothing reaches up. The direct method, which
the equivalence proof uses as the reference, must not import any part of the
im2col path it judges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "im2col_conv"

#: Layer of every module (a package counts as one module); lower imports nothing higher.
LAYERS = {
    "_validation": 0,
    "profiling": 0,
    "tuning": 0,
    "_dask_dispatch": 0,
    "_dtypes": 0,
    "geometry": 1,
    "_layer_state": 1,
    "_products": 1,
    "_operands": 2,
    "_lowering": 2,
    "_pool_windows": 2,
    "workspace": 2,
    "direct": 4,
    "lowering": 4,
    "_pointwise": 3,
    "_col2im": 3,
    "_engine": 4,
    "_pool_engine": 4,
    "_polyphase": 2,
    "convolution": 5,
    "pooling": 5,
    "layer": 6,
    "_chunked": 6,
    "pool_layers": 6,
    "equivalence": 7,
    "testing": 8,
    "__init__": 9,
    "__main__": 10,
}

IM2COL_PATH = {
    "_lowering",
    "_products",
    "_pointwise",
    "_col2im",
    "lowering",
    "_engine",
    "workspace",
    "convolution",
}


def _owner(path: Path) -> str:
    """The top-level module (or subpackage) of the package that ``path`` belongs to."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> set[str]:
    """Top-level package modules that ``path`` imports, at any depth of relative import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for modules directly in the package
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] == "im2col_conv":
                    rest = node.module.split(".")[1:]
                    found.update(rest[:1] or [alias.name for alias in node.names])
                continue
            if node.level - 1 < depth:
                continue  # a sibling inside the same subpackage
            module = (node.module or "").split(".")
            found.update(module[:1] if module[0] else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "im2col_conv" and len(parts) > 1:
                    found.add(parts[1])
    # ``from . import conv`` names a function of the package, not a module.
    modules = {_owner(p) for p in PACKAGE.rglob("*.py")}
    return {name if name in modules else "__init__" for name in found}


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert {_owner(p) for p in SOURCES} <= set(LAYERS), "add new modules to LAYERS"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_reach_down(path):
    owner = _owner(path)
    for target in _imports(path) - {owner}:
        assert target in LAYERS, f"{path.name} imports unknown module {target}"
        assert LAYERS[target] < LAYERS[owner], (
            f"{owner} (layer {LAYERS[owner]}) imports {target} (layer {LAYERS[target]})"
        )


def test_direct_method_does_not_import_the_im2col_path():
    reached = set()
    for path in (PACKAGE / "direct").rglob("*.py"):
        reached |= _imports(path)
    assert reached, "the import scan found nothing: it is broken"
    assert not reached & IM2COL_PATH, f"direct imports {reached & IM2COL_PATH}"
    assert reached <= {"_dtypes", "_operands", "_validation", "geometry"}


def test_the_scan_sees_relative_imports():
    # The checks above are only as good as _imports: make sure it finds what is there.
    assert {"_engine", "geometry", "workspace"} <= _imports(PACKAGE / "convolution.py")
    assert "_operands" in _imports(PACKAGE / "direct" / "formulas.py")
    assert "_validation" in _imports(PACKAGE / "direct" / "steps.py")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_are_short(path):
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= 420, f"{path.name} has {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno is not None
            # Code lines: from the first statement after the docstring to the end.
            first = node.body[1] if ast.get_docstring(node) and len(node.body) > 1 else node.body[0]
            length = node.end_lineno - first.lineno + 1
            assert length <= 80, f"{path.name}: {node.name} has {length} lines"


#: The modules of the engine, whose total length is held to a budget.
ENGINE_MODULES = {
    "_engine.py",
    "tuning.py",
    "_polyphase.py",
    "_pointwise.py",
    "_products.py",
    "_lowering.py",
    "_col2im.py",
    "_pool_engine.py",
    "_pool_windows.py",
    "workspace.py",
}


def test_the_engine_stays_within_its_line_budget():
    lines = {name: (PACKAGE / name).read_text(encoding="utf-8").count("\n") for name in ENGINE_MODULES}
    assert sum(lines.values()) <= 2000, f"the engine has {sum(lines.values())} lines: {lines}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_declares_its_public_names(path):
    if path.name == "__main__.py":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert "__all__" in names, f"{path.name} has no __all__"
