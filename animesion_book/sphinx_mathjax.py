"""A Sphinx extension for the book: MathJax 3 from a local package instead of a CDN.

Sphinx (and so Jupyter Book 1) points pages at MathJax on a CDN, so a book built and read
offline shows raw TeX. The ``django-static-mathjax`` wheel carries MathJax 3's files (and has no
dependencies); this copies its ``es5`` folder into the book's ``_static`` and points
``mathjax_path`` at it. Enabled in ``_config.yml`` under ``sphinx: extra_extensions``.
"""

from __future__ import annotations

from pathlib import Path


def mathjax_folder() -> Path:
    """The ``es5`` folder of the installed MathJax 3 (fonts sit beside the script, as it expects)."""
    import mathjax  # installed by the django-static-mathjax distribution

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _use_local_mathjax(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(mathjax_folder())]
    config.mathjax_path = "tex-mml-chtml.js"  # relative paths resolve under _static/


def setup(app):
    app.connect("config-inited", _use_local_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
