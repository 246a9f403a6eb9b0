"""Run the book's notebooks with papermill, one profile at a time.

``notebooks/params/<notebook>.yml`` holds one notebook's parameters for every profile; the notebook
itself takes them (``animesion_book.parameters``), so this module gives only the profile and the
paths. It generates the synthetic dataset the profile needs (if it is missing), executes each
notebook into ``book/experiments/`` (where ``_toc.yml`` finds them), folds papermill's injected
parameters out of the reader's view and prints how long each notebook took.

    python -m animesion_book.runner --profile cpu
    python -m animesion_book.runner --profile smoke --only 01_datasets --output-dir /tmp/nb
    python -m animesion_book.runner --store   # re-execute the sources with their defaults

The repository is the working directory (or a folder above it), or ``--repo``. The sources in
``notebooks/`` are committed *executed at the smoke profile* (their defaults), so that they read
well on their own and nbval can compare the cells marked ``# NBVAL_CHECK_OUTPUT`` when the test
suite re-runs them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from animesion_book.parameters import PATH_PARAMETERS, PROFILES, load_params
from animesion_book.repository import find_repository

# papermill's cell and the tag that keeps a cell out of the rendered book (Jupyter Book's cell tags)
INJECTED = "injected-parameters"
REMOVE_CELL = "remove-cell"


@dataclass
class NotebookRun:
    name: str
    seconds: float


def notebook_names(repo: Path) -> list[str]:
    """The book's notebooks in running order (their file names start with a number)."""
    return [p.stem for p in sorted((repo / "notebooks").glob("[0-9]*.ipynb"))]


def notebook_parameters(name: str, profile: str, repo: Path, **paths: str) -> dict:
    """What the runner gives a notebook: the profile, and its paths unless the profile's own section
    sets them (the ``paper`` profile names its data there); the notebook takes everything else."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {PROFILES}")
    unknown = set(paths) - set(PATH_PARAMETERS)
    if unknown:
        raise ValueError(f"not path parameters: {sorted(unknown)}")
    own = load_params(name, repo)[profile]
    return {"profile": profile, **{k: v for k, v in paths.items() if k not in own}}


def fold_injected_parameters(nb) -> int:
    """Tag papermill's injected-parameters cell ``remove-cell``: readers see the settings table instead."""
    cells = [c for c in nb.cells if INJECTED in c.get("metadata", {}).get("tags", [])]
    for cell in cells:
        tags = cell.metadata.setdefault("tags", [])
        if REMOVE_CELL not in tags:
            tags.append(REMOVE_CELL)
    return len(cells)


def ensure_synthetic(root: Path, profile: str) -> None:
    """Generate the synthetic dataset of this profile unless the same one is already there.

    A folder written by an older version of the generator (or with other options) is stale and
    is regenerated: stored notebook outputs are compared against fresh data in CI.
    """
    from animesion_lib.data.synthetic import SyntheticConfig, is_current, make_synthetic

    config = SyntheticConfig.from_profile(profile if profile in ("smoke", "cpu") else "cpu", overwrite=True)
    if is_current(root, config):
        return
    print(f"generating the synthetic dataset ({profile} preset) in {root}", flush=True)
    make_synthetic(root, config)


def select_notebooks(repo: Path, only: list[str] | None) -> list[str]:
    names = notebook_names(repo)
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ValueError(f"no such notebooks: {unknown}; notebooks/ has {names}")
    return [n for n in names if not only or n in only]


def run_notebooks(
    repo: Path,
    profile: str,
    synthetic: Path,
    real_data: Path,
    output_dir: Path,
    results_dir: Path,
    only: list[str] | None = None,
) -> list[NotebookRun]:
    import nbformat
    import papermill

    notebooks = repo / "notebooks"
    ensure_synthetic(synthetic, profile)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in select_notebooks(repo, only):
        # relative to the notebooks' working folder, so that no machine's absolute paths get into
        # the records or the book
        params = notebook_parameters(
            name, profile, repo,
            data_root=os.path.relpath(synthetic.resolve(), notebooks),
            real_data_root=os.path.relpath(real_data.resolve(), notebooks),
            results_dir=os.path.relpath(results_dir.resolve(), notebooks),
        )
        print(f"\n=== {name} ({profile}) ===", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(
            notebooks / f"{name}.ipynb",
            output_dir / f"{name}.ipynb",
            parameters=params,
            kernel_name="python3",
            progress_bar=True,
            cwd=str(notebooks),
        )
        executed = nbformat.read(output_dir / f"{name}.ipynb", as_version=4)
        unquote_glued_strings(executed)
        fold_injected_parameters(executed)
        nbformat.write(executed, output_dir / f"{name}.ipynb")
        runs.append(NotebookRun(name, time.perf_counter() - start))
    return runs


GLUE_TEXT = "application/papermill.record/text/plain"


def unquote_glued_strings(nb) -> int:
    """Glued strings are stored as their repr (``'46.9%'``), which the book would print with its
    quotes; store the text itself. Returns how many values were changed."""
    import ast

    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get(GLUE_TEXT)
            if not (output.get("metadata", {}).get("scrapbook") and isinstance(text, str) and text[:1] in "'\""):
                continue
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str):
                output["data"][GLUE_TEXT] = value
                changed += 1
    return changed


def store_notebooks(repo: Path, only: list[str] | None = None) -> list[NotebookRun]:
    """Execute the sources in place with their own (smoke) defaults, keeping their outputs."""
    import nbclient
    import nbformat

    ensure_synthetic(repo / "data" / "synthetic-smoke", "smoke")
    runs = []
    for name in select_notebooks(repo, only):
        path = repo / "notebooks" / f"{name}.ipynb"
        print(f"storing {path.name}", flush=True)
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
        runs.append(NotebookRun(path.stem, time.perf_counter() - start))
    return runs


def format_timings(runs: list[NotebookRun], command: str) -> str:
    lines = [f"$ {command}", "", "| notebook | wall time (s) |", "| --- | ---: |"]
    lines += [f"| {r.name} | {r.seconds:.1f} |" for r in runs]
    lines.append(f"| **total** | {sum(r.seconds for r in runs):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Execute the book's notebooks with papermill for one profile.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--profile", default="cpu", choices=PROFILES, help="parameters from notebooks/params/*.yml")
    parser.add_argument("--repo", type=Path, default=None,
                        help="the book's repository (default: the working directory or a folder above it)")
    parser.add_argument("--synthetic", type=Path, default=None,
                        help="synthetic dataset folder (generated if missing); default REPO/data/synthetic-PROFILE")
    parser.add_argument("--real-data", type=Path, default=None,
                        help="real face crops in the DAF:re layout (chapters that need them say so when absent); "
                             "default REPO/../shared/data/holo14")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where the executed notebooks go; default REPO/book/experiments, where the book reads them")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where notebooks write their records (results/PROFILE/EXPERIMENT.json); default REPO/results")
    parser.add_argument("--only", nargs="+", default=None, help="run only these notebooks (names without .ipynb)")
    parser.add_argument("--store", action="store_true",
                        help="re-execute the sources in notebooks/ in place with their smoke defaults (for git)")
    args = parser.parse_args(argv)
    repo = find_repository(args.repo)
    if args.store:
        runs = store_notebooks(repo, args.only)
    else:
        runs = run_notebooks(
            repo, args.profile,
            synthetic=args.synthetic or repo / "data" / f"synthetic-{args.profile}",
            real_data=args.real_data or repo.parent / "shared" / "data" / "holo14",
            output_dir=args.output_dir or repo / "book" / "experiments",
            results_dir=args.results_dir or repo / "results",
            only=args.only)
    print()
    print(format_timings(runs, "python -m animesion_book.runner " + " ".join(argv or sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
