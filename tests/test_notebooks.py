"""The book's notebooks: nbval re-runs each one at the smoke profile, and the parameter files
name only parameters that the notebooks have."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from animesion_book.parameters import PATH_PARAMETERS, load_params
from animesion_book.runner import ensure_synthetic, notebook_names
from conftest import REPO

NOTEBOOKS = REPO / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def _parameters_cell(path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return tagged[0]


def _parameters(path) -> dict[str, str]:
    """name -> the value's source text, for every assignment of the parameters cell."""
    lines = "".join(_parameters_cell(path)["source"]).splitlines()
    pairs = [line.split("#")[0].split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def test_there_are_notebooks():
    assert NOTEBOOK_FILES, f"no notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("name", notebook_names(REPO))
def test_parameter_files_give_exactly_the_parameters_the_notebook_has(name):
    # papermill only warns about an unknown parameter; a typo here would silently do nothing
    defined = set(_parameters(NOTEBOOKS / f"{name}.ipynb"))
    runner_given = {"profile", "data_root", "real_data_root", "results_dir"}
    assert runner_given <= defined, f"{name}: the runner's parameters {sorted(runner_given - defined)} are missing"
    defaults = load_params(name, REPO)["defaults"]  # load_params also checks each profile names only these
    assert set(defaults) == defined - {"profile"}, (
        f"notebooks/params/{name}.yml [defaults]: missing {sorted(defined - {'profile'} - set(defaults))}, "
        f"not parameters {sorted(set(defaults) - defined)}")
    assert set(PATH_PARAMETERS) & defined <= set(defaults)


@pytest.mark.parametrize("name", notebook_names(REPO))
def test_parameters_are_not_given_in_the_notebook_and_are_resolved_right_after(name):
    path = NOTEBOOKS / f"{name}.ipynb"
    values = _parameters(path)
    assert values.pop("profile") == '"smoke"'
    assert set(values.values()) == {"None"}, f"{name}: a value in the parameters cell would hide its profile's"
    cells = json.loads(path.read_text())["cells"]
    params = _parameters_cell(path)
    following = next(c for c in cells[cells.index(params) + 1:] if c["cell_type"] == "code")
    assert f'resolve_parameters(globals(), "{name}")' in "".join(following["source"])
    # the reader's view: parameters removed, the imports and the resolution folded (Jupyter Book cell tags)
    assert "remove-cell" in params["metadata"]["tags"]
    assert "hide-input" in following["metadata"]["tags"]


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

    from animesion_book.runner import GLUE_TEXT, unquote_glued_strings

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
    # the cpu profile, but with the smoke settings given explicitly, so that its training stays quick
    smoke = {k: v for k, v in load_params(name, REPO)["defaults"].items() if k not in PATH_PARAMETERS}
    pm.execute_notebook(NOTEBOOKS / f"{name}.ipynb", out, cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3",
                        parameters={**smoke, "profile": "cpu", "data_root": str(REPO / "data" / "synthetic-smoke"),
                                    "real_data_root": str(tmp_path / "no-such-folder"), "results_dir": str(results)})
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
