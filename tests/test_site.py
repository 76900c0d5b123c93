"""Every page of the built documentation site, in a real browser, at desktop and phone widths.

Each page of ``docs/`` is opened at 1280 and 390 pixels wide, with every
request to another host aborted. On each: it loads without console errors;
the document never scrolls sideways; no code block is wider than its box
(at desktop width the source lines fit, on a phone the theme wraps them);
every formula is MathML the browser drew with a size, and no TeX is left as
text; figures load; no raw cross-reference markup remains; internal links
resolve. The site search finds the PyTorch names a reader types.

Screenshots of the equivalence page at both widths are written to
``build/screenshots/`` as build artefacts. The explorer has its own file,
``test_site_explorer.py``. Fixtures: ``site_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
from site_browser import ROOT, SITE, WIDTHS, Visit, browser, server

__all__ = ["browser", "server"]  # fixtures, imported for pytest

DOCS = ROOT / "docs"
SCREENSHOTS = ROOT / "build" / "screenshots"
ROLES = re.compile(r":(func|meth|mod|class|attr|data|obj|exc):`")


def _url(page: Path) -> str:
    return "" if page.stem == "index" else f"{page.stem}/"


PAGES = sorted(_url(page) for page in DOCS.glob("*.md"))

# Everything the checks below need from one page, measured in one call.
_SURVEY = """() => {
  const text = document.querySelector('article').innerText;
  // Measured with every collapsed block open (the API reference's source listings).
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const viewport = document.documentElement.clientWidth;
  const code = [...document.querySelectorAll('article pre, article pre > code')]
    .filter(c => c.scrollWidth > c.clientWidth + 1 && c.checkVisibility())
    .map(c => [c.scrollWidth, c.clientWidth, c.textContent.split('\\n').reduce(
      (a, b) => (b.length > a.length ? b : a), '')]);
  const formulas = [...document.querySelectorAll('article .arithmatex')];
  const maths = [...document.querySelectorAll('article math')];
  const wide = [...document.querySelectorAll('article *')]
    .filter(e => e.getBoundingClientRect().right > viewport + 1 && !e.closest('.md-typeset__scrollwrap, '
      + 'div.arithmatex, pre, .ex-panel'))
    .slice(0, 3).map(e => e.tagName + ' ' + e.textContent.slice(0, 60));
  return {
    documentWidth: document.documentElement.scrollWidth,
    viewport: viewport,
    wide: wide,
    code: code,
    formulas: formulas.length,
    untypeset: formulas.filter(f => !f.querySelector('math')).map(f => f.textContent.slice(0, 80)),
    unsized: maths.filter(m => !(m instanceof MathMLElement)
      || m.getBoundingClientRect().width <= 0 || m.getBoundingClientRect().height <= 0)
      .map(m => m.textContent.slice(0, 40)),
    text: text,
    images: [...document.querySelectorAll('article img')].map(i => [i.src, i.complete, i.naturalWidth]),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  };
}"""


@pytest.fixture(scope="module")
def survey(browser, server) -> Iterator[dict[tuple[str, str], dict[str, Any]]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, width in WIDTHS.items():
        visit = Visit(browser, server, PAGES[0], width)
        try:
            for path in PAGES:
                response = visit.open(path)
                if path == "equivalence/":
                    visit.page.screenshot(path=str(SCREENSHOTS / f"equivalence-{name}.png"))
                measured = visit.page.evaluate(_SURVEY)
                measured.update(ok=response is not None and response.ok)
                measured.update(outside=list(visit.outside), errors=list(visit.errors))
                found[path, name] = measured
        finally:
            visit.close()
    yield found


def test_every_page_of_the_docs_is_built():
    missing = [path for path in PAGES if not (SITE / path / "index.html").exists()]
    assert missing == [], f"pages of docs/ missing from the built site: {missing}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_errors_or_other_hosts(survey, path, width):
    page = survey[path, width]
    assert page["ok"]
    assert page["outside"] == [], f"requests to other hosts: {page['outside']}"
    assert page["errors"] == [], f"console errors: {page['errors']}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_the_page_never_scrolls_sideways(survey, path, width):
    page = survey[path, width]
    assert page["documentWidth"] <= page["viewport"], (page["documentWidth"], page["wide"])
    assert page["wide"] == [], f"elements past the right edge: {page['wide']}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_every_code_block_fits_its_box(survey, path, width):
    clipped = survey[path, width]["code"]
    assert clipped == [], (
        f"{len(clipped)} code blocks scroll sideways; first (scroll, box, line): {clipped[0]}"
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_every_formula_is_drawn_as_mathml(survey, path, width):
    page = survey[path, width]
    assert page["untypeset"] == [], f"formulas left as TeX: {page['untypeset'][:3]}"
    assert page["unsized"] == [], f"MathML with no size: {page['unsized'][:3]}"
    text = page["text"]
    for raw in ("\\(", "\\[", "$$", "\\frac", "\\sum"):
        assert raw not in text, text[max(0, text.find(raw) - 80) : text.find(raw) + 80]


def test_the_pages_with_maths_have_formulas(survey):
    # The check above is empty on a page with no formulas: these pages have many.
    for path in ("equivalence/", "columns/", "explorer/"):
        assert survey[path, "desktop"]["formulas"] > 0, path


@pytest.mark.parametrize("path", PAGES)
def test_every_figure_has_a_size(survey, path):
    for src, complete, width in survey[path, "desktop"]["images"]:
        assert complete and width > 0, f"figure {src} did not load"


@pytest.mark.parametrize("path", PAGES)
def test_no_raw_markup_remains(survey, path):
    text = survey[path, "desktop"]["text"]
    assert not ROLES.search(text), ROLES.search(text)
    assert "``" not in text, text[max(0, text.find("``") - 80) : text.find("``") + 80]


@pytest.mark.parametrize("path", PAGES)
def test_every_internal_link_resolves(survey, server, path):
    for link in survey[path, "desktop"]["links"]:
        if not link.startswith(server):
            assert urlparse(link).scheme in ("http", "https", "mailto"), link
            continue
        target, fragment = urldefrag(link)
        relative = urlparse(target).path.lstrip("/")
        file = SITE / relative / "index.html" if relative.endswith("/") or not relative else SITE / relative
        assert file.exists(), f"{link} (from {path or 'home'}) does not resolve"
        if fragment and file.suffix == ".html":
            assert f'id="{fragment}"' in file.read_text(encoding="utf-8"), f"{link}: no anchor {fragment}"


def test_links_are_built_relative_to_the_site():
    # urljoin is what the browser does with a relative href: a sanity check of the resolver above.
    assert urljoin("http://127.0.0.1:1/api/", "../columns/#x") == "http://127.0.0.1:1/columns/#x"


def test_screenshots_of_the_equivalence_page(survey):
    for name in WIDTHS:
        assert (SCREENSHOTS / f"equivalence-{name}.png").stat().st_size > 10_000


_NAMES_THE_PAGE = """() => [...document.querySelectorAll('.md-search-result__item a.md-search-result__link')]
    .map(a => new URL(a.href).pathname.replace(/\\/$/, ''))
    .filter(path => path.endsWith('/pytorch')).length > 0"""


# The names a PyTorch user types; the page that maps them is docs/pytorch.md.
@pytest.mark.parametrize("name", ["unfold", "max_pool2d", "nn.Conv2d"])
def test_search_finds_the_pytorch_names(browser, server, name):
    assert (DOCS / "pytorch.md").exists(), "docs/pytorch.md, the page these names lead to, is missing"
    visit = Visit(browser, server, "", WIDTHS["desktop"])
    try:
        page = visit.page
        search = page.locator("input.md-search__input")
        search.click()
        # Typed key by key, as a reader does (the search reacts to keystrokes); the
        # timeout is generous for a loaded machine, not the expected time.
        page.keyboard.type(name, delay=30)
        page.wait_for_function(_NAMES_THE_PAGE, timeout=45_000)
        assert visit.errors == [] and visit.outside == []
    finally:
        visit.close()
