"""The book's notebooks: nbval re-runs each one at the smoke profile, and the parameter files
name only parameters that the notebooks have."""

from __future__ import annotations

import json
import shutil
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


@pytest.mark.slow
@pytest.mark.parametrize("name, says", [
    ("01_datasets", "the real data is not on this machine: these counts are from the committed record"),
    ("02_recognition", "the real data is not on this machine; the numbers below are from the committed records"),
])
def test_real_data_chapters_render_from_the_committed_records_without_the_data(tmp_path, name, says):
    # a reader's machine without ../shared/data: the chapter must show the committed cpu numbers and say so
    import papermill as pm

    ensure_synthetic(REPO / "data" / "synthetic-smoke", "smoke")
    results = tmp_path / "results"
    shutil.copytree(REPO / "results" / "cpu", results / "cpu")  # never write into the committed records
    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(NOTEBOOKS / f"{name}.ipynb", out, cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3",
                        parameters={"profile": "cpu", "real_data_root": str(tmp_path / "no-such-folder"),
                                    "results_dir": str(results)})
    outputs = [o for cell in json.loads(out.read_text())["cells"] for o in cell.get("outputs", [])]
    printed = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    assert says in printed
    tables = "".join("".join(o.get("data", {}).get("text/html", "")) for o in outputs)
    record = "datasets.json" if name == "01_datasets" else "recognition-real-vit-cls.json"
    committed = json.loads((REPO / "results" / "cpu" / record).read_text())["metrics"]
    if name == "01_datasets":  # the real image count, from the record, in the statistics table
        assert str(committed["real_images"]) in tables
    else:  # the committed real top-1, formatted as the chapter formats it
        assert f'{committed["test_top1"]:.1%}' in tables
