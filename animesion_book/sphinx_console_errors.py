"""A Sphinx extension for the book: no console errors in a reader's browser.

``tests/test_book_browser.py`` opens every page in Chromium; Jupyter Book 1's theme stack logged
two errors on each of them, both fixed here:

* sphinx-thebe 0.3.1 adds its configuration script (``const THEBE_JS_URL = ...``) twice per page,
  so the second copy fails ("Identifier 'THEBE_JS_URL' has already been declared"): duplicate
  scripts are dropped from every page.
* pydata-sphinx-theme starts from ``html_context["default_mode"]``, which Jupyter Book leaves
  empty ("Got invalid theme mode: . Resetting to auto."): it is set to ``auto`` unless configured.

Enabled in ``_config.yml`` under ``sphinx: extra_extensions``.
"""

from __future__ import annotations


def _default_mode(app, config) -> None:
    config.html_context = {"default_mode": "auto", **config.html_context}


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    unique, seen = [], set()
    for script in context.get("script_files", []):
        # an inline script is registered once with filename None and once with "": same script
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique


def setup(app):
    app.connect("config-inited", _default_mode)
    # early: a later handler may return a template name, which ends the event (emit_firstresult)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
