"""What a reader sees: every page of the built book in headless Chromium (issue 11, item 4a).

The book is the session's smoke build (``book_fixtures.smoke_book``), served over HTTP on
127.0.0.1 as a web host would serve it. Each page must load with no console error and no request
off the machine; every figure must decode (``naturalWidth > 0``); every equation must be typeset
by MathJax (no raw ``$$``, ``\\(`` or ``\\[`` left in the text); no glue key or ``nan`` may show
as text; and the chapters' parameter cells must be out of sight. A full-page screenshot of each
page goes to the screenshot folder (printed at the end of the run; ``$ANIMESION_SCREENSHOTS``
chooses it).
"""

from __future__ import annotations

import functools
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import nbformat
import pytest

from book_fixtures import EXPERIMENTS, read_toc, toc_files

PAGES = toc_files(read_toc())

# Runs in the page: waits for images and MathJax, then reports what did not render, the text a
# reader sees (code left out: it may hold backslashes, dollars and "nan" on purpose) and the text
# of the values shown (cell outputs, tables, glued values).
INSPECT = """async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const math = Array.from(document.querySelectorAll(".math"));
  // code (cell inputs, code blocks, inline code) is left out of the text; outputs stay in
  const code = Array.from(document.querySelectorAll("pre, code, .highlight"))
    .filter(el => !el.closest(".cell_output, span.output"));
  const display = code.map(el => el.style.display);
  code.forEach(el => { el.style.display = "none"; });
  const text = document.body.innerText;
  const values = Array.from(document.querySelectorAll(".cell_output, table, span.output"))
    .map(el => el.innerText).join("\\n");
  code.forEach((el, i) => { el.style.display = display[i]; });
  return {
    broken_images: images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.currentSrc || img.src),
    images: images.length,
    equations: math.length,
    untypeset: math.filter(el => !el.querySelector("mjx-container")).map(el => el.textContent.slice(0, 80)),
    math_errors: document.querySelectorAll("mjx-merror").length,
    text: text,
    values: values,
  };
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the test reports what matters; no access log
        pass


@pytest.fixture(scope="session")
def book_url(smoke_book):
    """The built book served on 127.0.0.1 (a free port) for the session."""
    handler = functools.partial(QuietHandler, directory=str(smoke_book.html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def glue_keys(smoke_book) -> set[str]:
    """The names of every value glued by the executed chapters (identifier-like ones: a_b, top1...)."""
    keys = set()
    for path in (smoke_book.root / EXPERIMENTS).glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                name = output.get("metadata", {}).get("scrapbook", {}).get("name")
                if name and re.search(r"[_\d]", name):
                    keys.add(name)
    return keys


def visible_problems(text: str, values: str, glue_keys: set[str]) -> list[str]:
    """What must never show: raw TeX delimiters, glue references or keys in the text; nan as a value
    (prose may say "NaN"; a table cell, an output or a glued value may not)."""
    problems = [f"raw TeX {d!r}" for d in ("$$", "\\(", "\\[") if d in text]
    problems += [f"glue reference {m!r}" for m in re.findall(r"\{glue[^}]*\}`?[^`\s]*`?", text)]
    problems += [f"glue key {k!r}" for k in sorted(glue_keys) if re.search(rf"(?<![\w.-]){re.escape(k)}(?![\w-])", text)]
    problems += [f"{m.group()!r} in {values[max(0, m.start() - 60):m.end() + 60]!r}"
                 for m in re.finditer(r"(?<![\w.])nan(?![\w])", values, flags=re.I)]
    return problems


def test_visible_problems_are_found():
    assert visible_problems("x $$a$$ and \\(b\\) {glue:}`top1_gain` top1_gain", "", {"top1_gain"}) == [
        "raw TeX '$$'", "raw TeX '\\\\('", "glue reference '{glue:}`top1_gain`'", "glue key 'top1_gain'"]
    assert visible_problems("is 0, not NaN", "acc\tNaN\t0.5", set()) == ["'NaN' in 'acc\\tNaN\\t0.5'"]
    assert visible_problems("the top1_gain_x, 1.5 nanoseconds", "nanase 0.25", {"top1_gain"}) == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(2400)  # the first page waits for the session's smoke build
@pytest.mark.parametrize("page", PAGES)
def test_the_page_renders_for_a_reader(page, browser_page, book_url, glue_keys, smoke_book):
    response = browser_page.goto(f"{book_url}/{page}.html", wait_until="load")
    assert response is not None and response.ok, f"{page}.html: HTTP {response and response.status}"
    seen = browser_page.evaluate(INSPECT)
    browser_page.screenshot(path=str(browser_page.screenshot_dir / f"{page.replace('/', '_')}.png"), full_page=True)

    assert not browser_page.console_errors, f"{page}: console errors {browser_page.console_errors}"
    assert not browser_page.blocked_requests, f"{page}: requests off this machine {browser_page.blocked_requests}"
    assert not seen["broken_images"], f"{page}: figures that did not load {seen['broken_images']}"
    assert not seen["untypeset"] and not seen["math_errors"], (
        f"{page}: equations MathJax did not typeset {seen['untypeset']}, {seen['math_errors']} with errors")
    problems = visible_problems(seen["text"], seen["values"], glue_keys)
    assert not problems, f"{page}: shows {problems}"
    if page.startswith(EXPERIMENTS):  # a chapter: its story starts with the text, not with the parameters
        html = (smoke_book.html / f"{page}.html").read_text()
        assert "papermill -p NAME VALUE" not in html and "injected-parameters" not in html
        assert "resolve_parameters" in html and "resolve_parameters" not in seen["text"]  # folded, not gone
        assert seen["images"] > 0, f"{page}: a chapter with no figure"
