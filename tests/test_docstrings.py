"""The public docstrings: one numpydoc entry per parameter, defaults that agree with the code, plain text.

The API reference and ``help()`` are generated from these docstrings, so a
parameter documented on a shared line ("stride, padding : ...") or a default
that disagrees with the signature reaches the reader as a wrong default.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pydoc
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

#: Public modules whose documented names are checked (their ``__all__``).
PUBLIC_MODULES = [
    "im2col_conv",
    "im2col_conv.convolution",
    "im2col_conv.pooling",
    "im2col_conv.lowering",
    "im2col_conv.geometry",
    "im2col_conv.layer",
    "im2col_conv.pool_layers",
    "im2col_conv.profiling",
    "im2col_conv.direct",
    "im2col_conv.testing",
]

#: Public methods with no Parameters section yet: geometry.py is at the package's module-length limit.
PARAMETERS_NOT_YET_DOCUMENTED = {"im2col_conv.ConvGeometry.create", "im2col_conv.ConvGeometry.for_transpose"}

#: Modules whose docstrings still carry MkDocs cross-reference markup; empty this as they are cleaned.
MARKUP_NOT_YET_CLEANED = ["im2col_conv.equivalence", "im2col_conv.workspace"]

_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}\n", re.MULTILINE)
_DEFAULT = re.compile(r"\bdefault:?\s+(?:is\s+)?(``[^`]+``|`[^`]+`|[\w.+-]+(?:\s+MiB)?)", re.IGNORECASE)


def _public_objects() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{module_name}.{name}", obj


def _callables() -> Iterator[tuple[str, Any, inspect.Signature, bool]]:
    """(name, object, signature, whether it is a bound-less method) of every public callable."""
    for name, obj in _public_objects():
        if inspect.isfunction(obj):
            yield name, obj, inspect.signature(obj), False
        elif inspect.isclass(obj):
            if "__init__" in vars(obj) or any("__init__" in vars(base) for base in obj.__mro__[1:-1]):
                init = obj.__init__
                generated = dataclasses.is_dataclass(obj) or issubclass(obj, tuple)
                if inspect.isfunction(init) and not generated:
                    yield name, obj, inspect.signature(init), True
            for attr, member in vars(obj).items():
                function = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                if attr.startswith("_") or not inspect.isfunction(function):
                    continue
                bound = not isinstance(member, staticmethod)
                yield f"{name}.{attr}", function, inspect.signature(function), bound
            for base in obj.__mro__[1:-1]:  # methods inherited from the package's base classes
                if base.__module__.startswith("im2col_conv"):
                    for attr, member in vars(base).items():
                        if not attr.startswith("_") and inspect.isfunction(member) and attr not in vars(obj):
                            yield f"{name}.{attr}", member, inspect.signature(member), True


def _parameters_section(doc: str) -> str | None:
    matches = list(_SECTION.finditer(doc))
    for i, match in enumerate(matches):
        if match.group(1) == "Parameters":
            end = matches[i + 1].start() if i + 1 < len(matches) else len(doc)
            return doc[match.end() : end]
    return None


def _entries(section: str) -> list[tuple[str, str, str]]:
    """(names as written, type text, description) of each entry of a Parameters section."""
    entries: list[tuple[str, str, str]] = []
    for line in section.splitlines():
        if line and not line[0].isspace():
            names, _, kind = line.partition(" : ")
            entries.append((names.strip(), kind.strip(), ""))
        elif entries and line.strip():
            names, kind, text = entries[-1]
            entries[-1] = (names, kind, f"{text} {line.strip()}")
    return entries


def _own_parameters(signature: inspect.Signature, method: bool) -> list[inspect.Parameter]:
    params = list(signature.parameters.values())
    if method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    return params


def _default_matches(written: str, default: Any) -> bool:
    written = written.strip("`").strip("'\"").rstrip(".")
    forms = {str(default), repr(default)}
    if isinstance(default, type):
        forms |= {default.__name__, f"numpy.{default.__name__}", f"np.{default.__name__}"}
    if isinstance(default, int) and not isinstance(default, bool) and default and default % (1 << 20) == 0:
        forms.add(f"{default >> 20} MiB")
    if isinstance(default, str):
        forms.add(default)
    return written in forms


ALL_CALLABLES = list(_callables())
CALLABLES = [entry for entry in ALL_CALLABLES if entry[0] not in PARAMETERS_NOT_YET_DOCUMENTED]


def test_the_scan_finds_the_public_api() -> None:
    names = {name for name, *_ in ALL_CALLABLES}
    assert names >= PARAMETERS_NOT_YET_DOCUMENTED  # the exemptions name real methods
    assert {"im2col_conv.conv", "im2col_conv.im2col", "im2col_conv.Conv", "im2col_conv.AvgPool"} <= names
    assert "im2col_conv.Conv.load_state_dict" in names and "im2col_conv.MaxPool.train" in names
    assert len(names) > 40


def test_the_parser_reads_a_shared_line_as_one_entry() -> None:
    section = "stride, padding : int, optional\n    Default 1.\nx : array_like\n    Input.\n"
    assert _entries(section) == [
        ("stride, padding", "int, optional", " Default 1."),
        ("x", "array_like", " Input."),
    ]
    assert _default_matches("``64 MiB``", 64 << 20) and _default_matches("``float32``", np.float32)
    assert not _default_matches("1", 0)


@pytest.mark.parametrize(("name", "obj", "signature", "method"), CALLABLES, ids=[c[0] for c in CALLABLES])
def test_every_parameter_is_documented_once_with_its_default(
    name: str, obj: Any, signature: inspect.Signature, method: bool
) -> None:
    params = _own_parameters(signature, method)
    params = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    doc = inspect.getdoc(obj) or ""
    section = _parameters_section(doc)
    if not params:
        return
    assert section is not None, f"{name} has parameters {[p.name for p in params]} but no Parameters section"
    entries = _entries(section)
    for names, _, _ in entries:
        assert "," not in names, f"{name}: {names!r} documents several parameters on one line"
    documented = [names for names, _, _ in entries]
    assert sorted(documented) == sorted(p.name for p in params), (
        f"{name}: documented {documented}, signature has {[p.name for p in params]}"
    )
    by_name = {names: (kind, text) for names, kind, text in entries}
    for param in params:
        kind, text = by_name[param.name]
        has_default = param.default is not param.empty
        says_optional = "optional" in kind
        assert says_optional == has_default, (
            f"{name}({param.name}): signature default {param.default!r}, but the type line says {kind!r}"
        )
        for match in _DEFAULT.finditer(f"{kind} {text}"):
            assert has_default, f"{name}({param.name}) has no default but its entry says {match.group(0)!r}"
            assert _default_matches(match.group(1), param.default), (
                f"{name}({param.name}): entry says {match.group(0)!r}, the signature's default is "
                f"{param.default!r}"
            )


def _markup_names() -> Iterator[tuple[str, Any]]:
    yield from _public_objects()
    for module_name in PUBLIC_MODULES:
        yield module_name, importlib.import_module(module_name)


@pytest.mark.parametrize(
    ("name", "obj"), list(_markup_names()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_help_shows_no_cross_reference_markup(name: str, obj: Any) -> None:
    text = pydoc.render_doc(obj, renderer=pydoc.plaintext)
    lines = [line for line in text.splitlines() if "][im2col_conv" in line]
    if inspect.ismodule(obj):  # a package's help lists its submodules' names only; skip the unclean ones
        lines = [line for line in lines if not any(m in line for m in MARKUP_NOT_YET_CLEANED)]
    assert not lines, f"help({name}) shows cross-reference markup:\n" + "\n".join(lines[:5])


def test_the_markup_check_can_see_markup() -> None:
    def sample() -> None:
        """See [`conv`][im2col_conv.convolution.conv]."""

    assert "][im2col_conv" in pydoc.render_doc(sample, renderer=pydoc.plaintext)
