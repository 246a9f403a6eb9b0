"""A notebook's parameters: given explicitly, else its profile's value, else the default.

In a notebook's ``parameters`` cell every parameter is ``None`` ("not given") except ``profile``.
papermill (``-p NAME VALUE``) or the book runner may give some; the one call that follows fills in
the rest from ``notebooks/params/<notebook>.yml``::

    resolve_parameters(globals(), "02_recognition")

That file has ``defaults`` (every parameter: the smoke settings) and one section per profile with
what the profile changes. ``include: <name>`` first reads ``notebooks/params/<name>.yml`` the same
way: chapters that share runs share their settings from one file (the notebook's own win). So ``papermill notebooks/02_recognition.ipynb out.ipynb -p profile cpu``
runs the cpu settings, and ``-p epochs 1`` still wins over them. (A consequence: ``None`` cannot be
given explicitly; it means "the profile's value".)

Path parameters are written relative to the repository in the file, and relative to the working
directory where they are given; either way they come out relative to ``notebooks/``, which the call
makes the working directory (every notebook reads ``../runs`` and ``../book`` from there). So a
notebook runs the same from the repository root, from ``notebooks/`` or from JupyterLab, and its
records and the book show no machine's absolute paths. ``{profile}`` in a path is the profile.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from animesion_book.repository import find_repository

PROFILES = ("smoke", "cpu", "paper")
SECTIONS = ("defaults", *PROFILES)
PATH_PARAMETERS = ("data_root", "real_data_root", "results_dir", "runs_dir")


def params_file(notebook: str, repo: Path) -> Path:
    return repo / "notebooks" / "params" / f"{notebook}.yml"


def load_params(notebook: str, repo: Path) -> dict[str, dict]:
    """``notebooks/params/<notebook>.yml`` as ``{"defaults": {...}, "smoke": {...}, "cpu": ..., "paper": ...}``."""
    path = params_file(notebook, repo)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no parameter file for the notebook {notebook!r}")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not set(raw) <= {*SECTIONS, "include"} or "defaults" not in raw:
        raise ValueError(f"{path}: expected a mapping with 'defaults' and sections among {PROFILES}"
                         " (and optionally 'include')")
    sections = {key: raw.get(key) or {} for key in SECTIONS}
    for key, section in sections.items():
        if not isinstance(section, dict):
            raise ValueError(f"{path}: [{key}] should be a mapping of parameter names to values")
    if raw.get("include"):
        shared = load_params(raw["include"], repo)
        sections = {key: {**shared[key], **sections[key]} for key in SECTIONS}
    for key, section in sections.items():
        unknown = set(section) - set(sections["defaults"])
        if unknown:
            raise ValueError(f"{path}: [{key}] sets {sorted(unknown)}, which [defaults] does not list")
    return sections


def profile_values(notebook: str, profile: str, repo: Path) -> dict:
    """Every parameter's value for ``profile`` (paths as written in the file)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {PROFILES}")
    sections = load_params(notebook, repo)
    return {**sections["defaults"], **sections[profile]}


def notebook_path(path: str | Path, base: Path, notebooks: Path) -> str:
    """``path`` (relative to ``base`` unless absolute) as seen from ``notebooks``; absolute stays absolute."""
    path = Path(path)
    return str(path) if path.is_absolute() else os.path.relpath(base / path, notebooks)


def resolve_parameters(namespace: dict, notebook: str, repo: str | Path | None = None) -> dict:
    """Fill every parameter of ``namespace`` (a notebook's ``globals()``) left ``None`` with its
    profile's value, make path parameters relative to ``notebooks/`` and move there.

    Returns the resolved parameters. ``repo`` defaults to the one around the working directory.
    """
    repo = find_repository(repo)
    here, notebooks = Path.cwd(), repo / "notebooks"
    profile = namespace.get("profile") or "smoke"
    resolved = {"profile": profile}
    for name, value in profile_values(notebook, profile, repo).items():
        if name not in namespace:
            raise NameError(f"{params_file(notebook, repo)}: {name!r} is not a parameter of {notebook}.ipynb")
        given = namespace[name]
        if name in PATH_PARAMETERS and given is not None:
            resolved[name] = notebook_path(given, here, notebooks)
        elif name in PATH_PARAMETERS and value is not None:
            resolved[name] = notebook_path(str(value).format(profile=profile), repo, notebooks)
        else:
            resolved[name] = value if given is None else given
    namespace.update(resolved)
    os.chdir(notebooks)
    return resolved
