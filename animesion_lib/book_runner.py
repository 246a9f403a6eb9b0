"""Run the book's notebooks with papermill, one profile at a time.

``notebooks/params/<notebook>.yml`` holds one notebook's parameters for every profile; this module
generates the synthetic dataset the profile needs (if it is missing), executes each notebook
into ``book/experiments/`` (where ``_toc.yml`` finds them) and prints how long each one took.

    python -m animesion_lib.book_runner --profile cpu
    python -m animesion_lib.book_runner --profile smoke --only 01_datasets --output-dir /tmp/nb
    python -m animesion_lib.book_runner --store   # re-execute the sources with their defaults

The sources in ``notebooks/`` are committed *executed at the smoke profile* (their parameter
defaults), so that they read well on their own and nbval can compare the cells marked
``# NBVAL_CHECK_OUTPUT`` when the test suite re-runs them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
PARAMS_DIR = NOTEBOOKS / "params"
PROFILES = ("smoke", "cpu", "paper")
DEFAULT_OUTPUT = REPO / "book" / "experiments"


@dataclass
class NotebookRun:
    name: str
    seconds: float


def notebook_names() -> list[str]:
    """The book's notebooks in running order (their file names start with a number)."""
    return [p.stem for p in sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))]


def load_params(name: str) -> dict[str, dict]:
    """``notebooks/params/<name>.yml``: profile -> parameters (missing file: defaults only)."""
    path = PARAMS_DIR / f"{name}.yml"
    params = yaml.safe_load(path.read_text()) if path.is_file() else {}
    if not isinstance(params, dict) or not set(params) <= set(PROFILES):
        raise ValueError(f"{path}: expected a mapping with keys among {PROFILES}")
    return {profile: params.get(profile) or {} for profile in PROFILES}


def notebook_parameters(name: str, profile: str, **paths: str) -> dict:
    """The papermill parameters of one notebook: the runner's paths, then the profile's values."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {PROFILES}")
    return {"profile": profile, **paths, **load_params(name)[profile]}


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


def run_notebooks(
    profile: str,
    synthetic: Path,
    real_data: Path,
    output_dir: Path = DEFAULT_OUTPUT,
    results_dir: Path = REPO / "results",
    only: list[str] | None = None,
) -> list[NotebookRun]:
    import nbformat
    import papermill

    names = notebook_names()
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"not in profile {profile!r}: {unknown}; it has {names}")
        names = [n for n in names if n in only]
    ensure_synthetic(synthetic, profile)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in names:
        params = notebook_parameters(
            name,
            profile,
            # relative to the notebooks' working folder: the injected cell shows in the book, and
            # no machine's absolute paths belong there
            data_root=os.path.relpath(synthetic.resolve(), NOTEBOOKS),
            real_data_root=os.path.relpath(real_data.resolve(), NOTEBOOKS),
            results_dir=os.path.relpath(results_dir.resolve(), NOTEBOOKS),
        )
        print(f"\n=== {name} ({profile}) ===", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(
            NOTEBOOKS / f"{name}.ipynb",
            output_dir / f"{name}.ipynb",
            parameters=params,
            kernel_name="python3",
            progress_bar=True,
            cwd=str(NOTEBOOKS),
        )
        executed = nbformat.read(output_dir / f"{name}.ipynb", as_version=4)
        if unquote_glued_strings(executed):
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


def store_notebooks(only: list[str] | None = None) -> list[NotebookRun]:
    """Execute the sources in place with their own (smoke) defaults, keeping their outputs."""
    import nbclient
    import nbformat

    ensure_synthetic(REPO / "data" / "synthetic-smoke", "smoke")
    runs = []
    for name in notebook_names():
        if only and name not in only:
            continue
        path = NOTEBOOKS / f"{name}.ipynb"
        print(f"storing {path.name}", flush=True)
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
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
    parser.add_argument("--synthetic", type=Path, default=None,
                        help="synthetic dataset folder (generated if missing); default data/synthetic-PROFILE")
    parser.add_argument("--real-data", type=Path, default=REPO.parent / "shared" / "data" / "holo14",
                        help="real face crops in the DAF:re layout; chapters that need them say so when absent")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT,
                        help="where the executed notebooks go (the book reads them from book/experiments)")
    parser.add_argument("--results-dir", type=Path, default=REPO / "results",
                        help="where notebooks write their records (results/PROFILE/EXPERIMENT.json)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these notebooks (names without .ipynb)")
    parser.add_argument("--store", action="store_true",
                        help="re-execute the sources in notebooks/ in place with their smoke defaults (for git)")
    args = parser.parse_args(argv)
    if args.store:
        runs = store_notebooks(args.only)
    else:
        synthetic = args.synthetic or REPO / "data" / f"synthetic-{args.profile}"
        runs = run_notebooks(args.profile, synthetic, args.real_data, args.output_dir, args.results_dir, args.only)
    print()
    print(format_timings(runs, "python -m animesion_lib.book_runner " + " ".join(argv or sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
