"""The book's notebooks: nbval re-runs each one at the smoke profile, and the parameter files
name only parameters that the notebooks have."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from animesion_lib.book_runner import NOTEBOOKS, ensure_synthetic, load_params, notebook_names
from conftest import REPO

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def _parameters_cell(path) -> str:
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return "".join(tagged[0]["source"])


def test_there_are_notebooks():
    assert NOTEBOOK_FILES, f"no notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("name", notebook_names())
def test_parameter_files_name_only_parameters_the_notebook_has(name):
    # papermill only warns about an unknown parameter; a typo here would silently do nothing
    defined = {line.split("=")[0].strip() for line in _parameters_cell(NOTEBOOKS / f"{name}.ipynb").splitlines()
               if "=" in line and not line.lstrip().startswith("#")}
    runner_given = {"profile", "data_root", "real_data_root", "results_dir"}
    assert runner_given <= defined, f"{name}: the runner's parameters {sorted(runner_given - defined)} are missing"
    for profile, params in load_params(name).items():
        unknown = set(params) - defined
        assert not unknown, f"notebooks/params/{name}.yml [{profile}]: {sorted(unknown)} are not parameters"


@pytest.mark.slow
def test_notebooks_run_under_nbval_at_the_smoke_profile():
    # the notebooks' defaults read ../data/synthetic-smoke (generated once, never committed)
    ensure_synthetic(REPO / "data" / "synthetic-smoke", "smoke")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(NOTEBOOKS), *map(str, NOTEBOOK_FILES)],
        cwd=REPO, capture_output=True, text=True, timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]


def test_glued_strings_lose_their_quotes_and_other_values_stay():
    import nbformat

    from animesion_lib.book_runner import GLUE_TEXT, unquote_glued_strings

    def glued(name, text):
        return nbformat.v4.new_output("display_data", data={GLUE_TEXT: text},
                                      metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}})

    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [glued("pct", "'46.9%'"), glued("quote", '"full"'), glued("number", "0.469"),
                    nbformat.v4.new_output("stream", text="'not glued'")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert unquote_glued_strings(nb) == 2
    texts = [o.get("data", {}).get(GLUE_TEXT) for o in cell.outputs]
    assert texts[:3] == ["46.9%", "full", "0.469"]
    assert cell.outputs[3]["text"] == "'not glued'"
