"""The built documentation site, served on the loopback address and opened in chromium.

Shared by the browser tests (``test_site.py``, ``test_site_explorer.py``).
They need the site built first (``python -m mkdocs build --strict``), the
Python ``playwright`` client and Debian's ``chromium``; without them they
skip (and fail in CI, where ``IM2COL_REQUIRE_ALL=1`` turns every skip into a
failure). Every request to a host other than the local server is aborted
and recorded, so a page that needs the network fails.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
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
WIDTHS = {"desktop": 1280, "phone": 390}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


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


class Visit:
    """One page at one window width: what it asked of other hosts and what it logged as an error."""

    def __init__(self, browser, base: str, path: str, width: int) -> None:
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.context.route("**/*", self._route(base))
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.base = base
        self.response = self.open(path)

    def open(self, path: str):
        """Load another page in the same window, starting its records afresh."""
        self.outside.clear()
        self.errors.clear()
        self.response = self.page.goto(self.base + path, wait_until="load")
        return self.response

    def _route(self, base: str) -> Callable[..., None]:
        def handle(route) -> None:
            if route.request.url.startswith(base):
                route.continue_()
            else:
                self.outside.append(route.request.url)
                route.abort()

        return handle

    def close(self) -> None:
        self.context.close()
