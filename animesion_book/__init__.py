"""The book's tooling, kept apart from the library it describes (``animesion_lib``).

* ``repository``: finds the book's repository (an argument, ``$ANIMESION_REPO``, or the working
  directory), never from where this package is installed.
* ``parameters``: the one call a notebook makes to take its profile's settings.
* ``runner``: executes the notebooks with papermill for one profile (``python -m animesion_book.runner``).
* ``sphinx_mathjax``: a Sphinx extension serving MathJax from a local package.
"""
