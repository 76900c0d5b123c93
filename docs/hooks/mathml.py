"""MkDocs hook: turn the pages' TeX into MathML when the site is built.

``pymdownx.arithmatex`` (generic mode) leaves every formula as TeX inside
``<span class="arithmatex">\\(...\\)</span>`` or
``<div class="arithmatex">\\[...\\]</div>``. This hook converts each one with
``latex2mathml`` (pure Python, in the ``docs`` extra) so that the browser
draws it natively: building needs no network and no JavaScript runtime,
and reading a page runs no script for the maths.
"""

from __future__ import annotations

import html
import re
from typing import Any

_FORMULA = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">(?P<body>.*?)</(?P=tag)>',
    re.DOTALL,
)
_DELIMITERS = {"span": (r"\(", r"\)"), "div": (r"\[", r"\]")}
# latex2mathml prints \tag{...} inline; it is written as a label to the right instead.
_TAG = re.compile(r"\\tag\{([^{}]*)\}")


def _to_mathml(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    label = _TAG.search(tex)
    tex = _TAG.sub("", tex)
    mathml = convert(tex.strip(), display="block" if display else "inline")
    if label:
        mathml = f'<span class="formula-label">({html.escape(label.group(1))})</span>{mathml}'
    return mathml


def _replace(match: re.Match[str]) -> str:
    tag = match["tag"]
    opening, closing = _DELIMITERS[tag]
    tex = html.unescape(match["body"]).strip()
    if not (tex.startswith(opening) and tex.endswith(closing)):
        raise ValueError(f"unexpected arithmatex output: {match[0][:200]!r}")
    mathml = _to_mathml(tex[len(opening) : -len(closing)], display=tag == "div")
    return f'<{tag} class="arithmatex">{mathml}</{tag}>'


def on_page_content(html_text: str, page: Any, **kwargs: Any) -> str:
    from mkdocs.exceptions import PluginError

    try:
        return _FORMULA.sub(_replace, html_text)
    except Exception as error:  # a formula the converter rejects fails the build, naming the page
        raise PluginError(f"{page.file.src_uri}: cannot convert a formula to MathML: {error}") from error
