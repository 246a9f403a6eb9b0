"""Headless Chromium for the browser tests, driven by Playwright's Python package.

Loaded from ``tests/conftest.py`` (``pytest_plugins``). It launches Debian's ``chromium`` (not a
browser Playwright downloads: nothing here reaches the network), so ``apt-get install -y chromium``
and ``pip install playwright`` are all a machine needs; without either, the tests that use
``browser_page`` skip and say which is missing.

* ``browser_page``: a fresh Playwright ``Page`` (1280x900) per test. ``page.console_errors`` lists
  every console error and uncaught page error, ``page.blocked_requests`` every request the page
  tried to make off this machine (aborted: a page that needs the network is a finding, not a wait),
  ``page.screenshot_dir`` is the test's screenshot folder. A last screenshot is taken on teardown.
* Screenshots go under ``$ANIMESION_SCREENSHOTS`` when set, else a pytest temporary folder; the
  folder is printed at the end of the run.
* ``@pytest.mark.browser`` marks the tests that open a real browser.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# what a page on this machine may load: its own files, the test's local servers, inline data
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "[::1]"}
LOCAL_SCHEMES = {"file", "data", "blob", "about", "chrome", "devtools"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: opens pages in headless Chromium (skipped without chromium/playwright)")


def chromium_executable() -> str | None:
    """Debian's Chromium, or the one ``$ANIMESION_CHROMIUM`` names; None when there is none."""
    wanted = os.environ.get("ANIMESION_CHROMIUM", CHROMIUM)
    return wanted if os.access(wanted, os.X_OK) else shutil.which("chromium")


@pytest.fixture(scope="session")
def screenshot_root(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    chosen = os.environ.get("ANIMESION_SCREENSHOTS")
    root = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    root.mkdir(parents=True, exist_ok=True)
    pytestconfig.stash[_SCREENSHOTS] = root
    return root


_SCREENSHOTS = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if _SCREENSHOTS in config.stash:
        terminalreporter.write_line(f"browser screenshots: {config.stash[_SCREENSHOTS]}")


@pytest.fixture(scope="session")
def chromium_browser():
    """One headless Chromium for the session (Playwright ``Browser``); skips when it cannot exist."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright; it is in the test extra)")
    executable = chromium_executable()
    if executable is None:
        wanted = os.environ.get("ANIMESION_CHROMIUM", CHROMIUM)
        pytest.skip(f"no Chromium at {wanted} or on PATH (apt-get install -y chromium, "
                    "or set ANIMESION_CHROMIUM to a Chromium binary)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def _keep_local(route, blocked: list[str]) -> None:
    url = urlparse(route.request.url)
    if url.scheme in LOCAL_SCHEMES or url.hostname in LOCAL_HOSTS or url.hostname is None:
        route.continue_()
    else:
        blocked.append(route.request.url)
        route.abort()


@pytest.fixture
def browser_page(chromium_browser, screenshot_root: Path, request: pytest.FixtureRequest):
    """A fresh page in its own browser context, recording console errors; see the module docstring."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.blocked_requests = []
    page.screenshot_dir = screenshot_root / re.sub(r"[^\w.-]+", "_", request.node.name)
    page.screenshot_dir.mkdir(parents=True, exist_ok=True)
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(
        f"{msg.text} ({msg.location.get('url', '')}:{msg.location.get('lineNumber', '')})"))
    page.on("pageerror", lambda error: page.console_errors.append(f"uncaught: {error}"))
    context.route("**/*", lambda route: _keep_local(route, page.blocked_requests))
    try:
        yield page
    finally:
        try:
            page.screenshot(path=str(page.screenshot_dir / "last.png"), full_page=True)
        finally:
            context.close()
