"""Where the book's repository is: from an argument, ``$ANIMESION_REPO``, or the working directory.

Not from this package's ``__file__``: under a normal (non-editable) install the package lives in
``site-packages``, far from the notebooks. As a last resort, the folder pip installed
``animesion-lib`` from (its ``direct_url.json``), which is the clone for ``pip install -e .`` and
``pip install .`` alike.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

MARKERS = ("_toc.yml", "notebooks/params")
ENV_VAR = "ANIMESION_REPO"


def is_repository(path: Path) -> bool:
    return all((path / marker).exists() for marker in MARKERS)


def find_repository(start: str | Path | None = None) -> Path:
    """The repository root: ``start`` if given, else ``$ANIMESION_REPO``, else the working directory
    or a folder above it, else the folder ``animesion-lib`` was installed from."""
    if start is None and os.environ.get(ENV_VAR):
        start = os.environ[ENV_VAR]
    if start is not None:
        path = Path(start).resolve()
        if not is_repository(path):
            raise FileNotFoundError(f"{path} is not the Animesion Book repository (it has no {' or '.join(MARKERS)})")
        return path
    here = Path.cwd()
    for path in (here, *here.parents):
        if is_repository(path):
            return path
    source = install_source()
    if source is not None and is_repository(source):
        return source
    raise FileNotFoundError(
        f"cannot find the Animesion Book repository from {here}: run from inside the clone, "
        f"or set {ENV_VAR}=/path/to/the/clone")


def install_source() -> Path | None:
    """The local folder ``animesion-lib`` was pip-installed from, if it was installed from one.

    Every copy of its metadata is asked: a source tree on ``PYTHONPATH`` carries a build's
    ``*.egg-info`` (found first, and without ``direct_url.json``) beside the installed ``dist-info``.
    """
    for dist in metadata.distributions(name="animesion-lib"):
        url = urlparse(json.loads(dist.read_text("direct_url.json") or "{}").get("url", ""))
        if url.scheme == "file":
            return Path(url2pathname(url.path))
    return None
