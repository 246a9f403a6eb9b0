"""The browser fixture itself: it records console errors and keeps pages off the network."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_browser_page_records_console_errors_and_blocks_remote_requests(browser_page, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body><h1>hello</h1>"
                    "<img src='https://example.invalid/x.png'>"
                    "<script>console.error('boom'); console.log('fine'); undefinedFunction();</script>"
                    "</body></html>")
    browser_page.goto(page.as_uri())
    browser_page.wait_for_load_state("load")
    assert browser_page.inner_text("h1") == "hello"
    errors = browser_page.console_errors
    assert any(e.startswith("boom") for e in errors), errors
    assert any("undefinedFunction is not defined" in e for e in errors), errors
    assert not any(e.startswith("fine") for e in errors), errors  # console.log is not an error
    assert any("ERR_FAILED (https://example.invalid/x.png" in e for e in errors), errors  # blocked shows too
    assert browser_page.blocked_requests == ["https://example.invalid/x.png"]
    browser_page.screenshot(path=str(browser_page.screenshot_dir / "hello.png"))
    assert (browser_page.screenshot_dir / "hello.png").stat().st_size > 1000
