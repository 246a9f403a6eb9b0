"""The book built once per test session from notebooks executed at the smoke profile.

Loaded from ``tests/conftest.py`` (``pytest_plugins``), so that ``tests/test_book.py`` (the build
itself) and ``tests/test_book_browser.py`` (what a reader sees) share one build: the notebooks run
at the smoke profile into a temporary copy of the book sources.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from animesion_book.runner import ensure_synthetic
from conftest import REPO

NOTEBOOKS = REPO / "notebooks"
EXPERIMENTS = "book/experiments/"


def toc_files(toc: dict) -> list[str]:
    """Every file of a jb-book TOC (root first), as written there (no suffix)."""
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return files


def read_toc() -> dict:
    return yaml.safe_load((REPO / "_toc.yml").read_text())


def experiment_chapters(toc: dict) -> list[str]:
    """Notebook names of the experiment chapters, e.g. ``["01_datasets", "02_recognition", ...]``."""
    return [f[len(EXPERIMENTS):] for f in toc_files(toc) if f.startswith(EXPERIMENTS)]


def copy_book_sources(dest: Path, toc: dict) -> None:
    """The book's sources (config, TOC, chapters, bibliography, quoted figures) into ``dest``."""
    (dest / "book").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "_config.yml", dest / "_config.yml")
    (dest / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    for path in (REPO / "book").iterdir():
        if path.is_file() and path.suffix in (".md", ".bib", ".yml"):
            shutil.copy(path, dest / "book" / path.name)


def build_book(dest: Path, toc: dict, notebooks: list[str]) -> subprocess.CompletedProcess:
    """Execute ``notebooks`` at the smoke profile into ``dest/book/experiments`` and build ``dest``.

    Runs, records and the synthetic dataset are the repository's usual smoke ones (runs/smoke,
    results/smoke, data/synthetic-smoke: never committed, rewritten by every test run, as nbval
    does), so that the chapters print the paths a reader's build prints (``../results/smoke/...``)
    and not a temporary folder's.
    """
    copy_book_sources(dest, toc)
    ensure_synthetic(REPO / "data" / "synthetic-smoke", "smoke")
    run = subprocess.run(
        [sys.executable, "-m", "animesion_book.runner", "--profile", "smoke", "--only", *notebooks,
         "--output-dir", str(dest / "book" / "experiments"), "--results-dir", str(REPO / "results")],
        cwd=REPO, capture_output=True, text=True, timeout=1500,
    )
    assert run.returncode == 0, "the smoke run of the notebooks failed:\n" + run.stdout[-4000:] + run.stderr[-4000:]
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run(
        [str(jupyter_book), "build", str(dest), "--warningiserror", "--keep-going"],
        cwd=dest, capture_output=True, text=True, timeout=900,
    )


@dataclass
class SmokeBook:
    root: Path  # the temporary book: sources, executed chapters and _build/html
    toc: dict
    build: subprocess.CompletedProcess  # the jupyter-book build (its log is checked by test_book)

    @property
    def html(self) -> Path:
        return self.root / "_build" / "html"


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory: pytest.TempPathFactory) -> SmokeBook:
    toc = read_toc()
    notebooks = experiment_chapters(toc)
    sources = {p.stem for p in NOTEBOOKS.glob("[0-9]*.ipynb")}
    missing = [n for n in notebooks if n not in sources]
    assert not missing, f"cannot build the book: these TOC chapters have no notebook in notebooks/ yet: {missing}"
    root = tmp_path_factory.mktemp("smoke-book")
    return SmokeBook(root, toc, build_book(root, toc, notebooks))
