"""The built documentation site, opened in a real browser with the network cut off.

Needs the site built first (``python -m mkdocs build --strict``), the Python
``playwright`` client and Debian's ``chromium``; without them the tests skip
(and fail in CI, where ``IM2COL_REQUIRE_ALL=1`` turns every skip into a
failure). The pages are served from ``site/`` on the loopback address; every
request to any other host is aborted and counted as a failure.

A screenshot of the equivalence page is written to
``build/screenshots/equivalence.png`` as a build artefact.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
SCREENSHOTS = ROOT / "build" / "screenshots"
PAGES = ["", "columns/", "equivalence/", "training/", "performance/", "api/", "dtypes/", "architecture/"]
ROLES = re.compile(r":(func|meth|mod|class|attr|data|obj|exc):`")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if not (SITE / "index.html").exists():
        pytest.skip("the site is not built: run `python -m mkdocs build --strict` first")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


class _Visit:
    """One page load: what it asked for from elsewhere and what it logged as an error."""

    def __init__(self, browser, base: str, path: str) -> None:
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route(base))
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.response = self.page.goto(base + path, wait_until="networkidle")
        # MathJax typesets after the load event: wait until it says it is done.
        self.page.wait_for_function(
            "() => !document.querySelector('.arithmatex') || "
            "(window.MathJax && MathJax.startup && MathJax.startup.promise && "
            "MathJax.startup.promise.then(() => true))",
            timeout=60_000,
        )
        self.page.evaluate("() => window.MathJax && MathJax.startup.promise")

    def _route(self, base: str):
        def handle(route) -> None:
            if route.request.url.startswith(base):
                route.continue_()
            else:
                self.outside.append(route.request.url)
                route.abort()

        return handle

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def visits(browser, server) -> Iterator[dict[str, _Visit]]:
    opened = {path: _Visit(browser, server, path) for path in PAGES}
    try:
        yield opened
    finally:
        for visit in opened.values():
            visit.close()


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_errors_or_other_hosts(visits, path):
    visit = visits[path]
    assert visit.response is not None and visit.response.ok
    assert visit.outside == [], f"requests to other hosts: {visit.outside}"
    assert visit.errors == [], f"console errors: {visit.errors}"


@pytest.mark.parametrize("path", PAGES)
def test_every_formula_is_typeset(visits, path):
    page = visits[path].page
    untypeset = page.eval_on_selector_all(
        ".arithmatex",
        "formulas => formulas.filter(f => !f.querySelector('mjx-container')).map(f => f.textContent)",
    )
    assert untypeset == [], f"formulas left as TeX: {untypeset[:3]}"
    text = page.locator("article").inner_text()
    assert "\\(" not in text and "\\[" not in text and "$$" not in text


@pytest.mark.parametrize("path", PAGES)
def test_every_figure_has_a_size(visits, path):
    sizes = visits[path].page.eval_on_selector_all(
        "article img", "images => images.map(i => [i.src, i.complete, i.naturalWidth])"
    )
    for src, complete, width in sizes:
        assert complete and width > 0, f"figure {src} did not load"


@pytest.mark.parametrize("path", PAGES)
def test_no_raw_markup_remains(visits, path):
    text = visits[path].page.locator("article").inner_text()
    assert not ROLES.search(text), ROLES.search(text)
    assert "``" not in text, text[max(0, text.find("``") - 80) : text.find("``") + 80]


@pytest.mark.parametrize("path", PAGES)
def test_every_internal_link_resolves(visits, server, path):
    page = visits[path].page
    links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    for link in links:
        if not link.startswith(server):
            assert urlparse(link).scheme in ("http", "https", "mailto"), link
            continue
        target, fragment = urldefrag(link)
        relative = urlparse(target).path.lstrip("/")
        file = SITE / relative / "index.html" if relative.endswith("/") or not relative else SITE / relative
        assert file.exists(), f"{link} (from {path or 'home'}) does not resolve"
        if fragment and file.suffix == ".html":
            assert f'id="{fragment}"' in file.read_text(encoding="utf-8"), f"{link}: no anchor {fragment}"


def test_screenshot_of_the_equivalence_page(visits):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / "equivalence.png"
    visits["equivalence/"].page.screenshot(path=str(target), full_page=False)
    assert target.stat().st_size > 10_000


def test_links_are_built_relative_to_the_site():
    # urljoin is what the browser does with a relative href: a sanity check of the resolver above.
    assert urljoin("http://127.0.0.1:1/api/", "../columns/#x") == "http://127.0.0.1:1/columns/#x"
