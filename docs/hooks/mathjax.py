"""MkDocs hook: serve MathJax from the site itself, so formulas render with no network.

Before a build, MathJax is installed from the npm registry into
``build/mathjax`` (once; later builds reuse it). After the build, its
browser bundle is copied to ``site/javascripts/mathjax``, where
``mkdocs.yml`` loads it from. Nothing is fetched when a page is read.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

#: The MathJax release the site is built with.
MATHJAX = "mathjax@3.2.2"

_PREFIX = Path(__file__).resolve().parents[2] / "build" / "mathjax"
_BUNDLE = _PREFIX / "node_modules" / "mathjax" / "es5"


def on_pre_build(config: Any, **kwargs: Any) -> None:
    from mkdocs.exceptions import PluginError

    if (_BUNDLE / "tex-mml-chtml.js").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise PluginError(f"building the docs needs npm to install {MATHJAX} (the site serves it itself)")
    command = [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(_PREFIX), MATHJAX]
    _PREFIX.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (_BUNDLE / "tex-mml-chtml.js").exists():
        raise PluginError(f"`{' '.join(command)}` failed:\n{done.stdout}\n{done.stderr}")


def on_post_build(config: Any, **kwargs: Any) -> None:
    target = Path(config["site_dir"]) / "javascripts" / "mathjax"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(_BUNDLE, target, ignore=shutil.ignore_patterns("*.map", "sre", "adaptors"))
