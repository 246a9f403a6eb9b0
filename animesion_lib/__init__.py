"""animesion_lib: anime character recognition and tag prediction.

The library under the Animesion Book. Everything that computes lives here; the notebooks in
``notebooks/`` call it and tell the story. See ``README.md`` for the two commands.
"""

__version__ = "0.1.0"
