"""Re-executing a chapter with papermill as a user types it (issue 11, item 6).

``-p profile cpu`` means the cpu settings of ``notebooks/params/<nb>.yml``; a parameter given
explicitly wins; paths resolve from the repository root and from ``notebooks/`` alike, and come out
relative to ``notebooks/`` (no machine paths in records or the book).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from animesion_book.parameters import load_params, notebook_path, resolve_parameters
from animesion_book.repository import find_repository
from animesion_book.runner import ensure_synthetic, fold_injected_parameters, notebook_parameters
from conftest import REPO

PAPERMILL = str(Path(sys.executable).with_name("papermill"))
README_COMMAND = re.compile(r"papermill (notebooks/(\w+)\.ipynb) out\.ipynb -p profile cpu`")


def readme_command() -> tuple[str, str]:
    """The README's papermill command: (notebook path, notebook name)."""
    found = README_COMMAND.search((REPO / "README.md").read_text())
    assert found, "README.md no longer shows `papermill notebooks/<nb>.ipynb out.ipynb -p profile cpu`"
    return found.group(1), found.group(2)


# ----------------------------------------------------------------- resolution, without a kernel


@pytest.fixture
def book(tmp_path, monkeypatch) -> Path:
    """A minimal repository with one notebook's parameter file; the working directory is restored after."""
    (tmp_path / "_toc.yml").write_text("format: jb-book\n")
    (tmp_path / "notebooks" / "params").mkdir(parents=True)
    (tmp_path / "notebooks" / "params" / "nb.yml").write_text(
        "defaults:\n  data_root: data/synthetic-{profile}\n  results_dir: results\n  epochs: 1\n  lr: 0.002\n"
        "  threshold: null\nsmoke: {}\ncpu:\n  epochs: 5\npaper:\n  data_root: /data/dafre\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def not_given(**given) -> dict:
    return {"profile": "smoke", "data_root": None, "results_dir": None, "epochs": None, "lr": None,
            "threshold": None, **given}


def test_profile_values_fill_what_is_not_given_and_explicit_values_win(book):
    namespace = not_given(profile="cpu", lr=0.1)
    resolved = resolve_parameters(namespace, "nb")
    assert resolved == {"profile": "cpu", "data_root": "../data/synthetic-cpu", "results_dir": "../results",
                        "epochs": 5, "lr": 0.1, "threshold": None}
    assert namespace["epochs"] == 5 and namespace["lr"] == 0.1
    assert Path.cwd() == book / "notebooks"  # where every notebook reads ../runs and ../book from


def test_paths_given_from_the_root_or_from_notebooks_mean_the_same_folder(book):
    from_root = resolve_parameters(not_given(data_root="data/mine"), "nb")  # working directory: the root
    again = resolve_parameters(not_given(data_root="../data/mine"), "nb")  # now in notebooks/
    assert from_root["data_root"] == again["data_root"] == "../data/mine"
    assert resolve_parameters(not_given(profile="paper"), "nb")["data_root"] == "/data/dafre"  # absolute stays


def test_an_included_file_gives_shared_settings_and_the_notebook_own_win(book):
    params = book / "notebooks" / "params"
    (params / "family.yml").write_text("defaults:\n  lr: 0.5\n  epochs: 7\n  seed: 0\ncpu:\n  seed: 3\n")
    (params / "nb.yml").write_text("include: family\n" + (params / "nb.yml").read_text())
    resolved = resolve_parameters({**not_given(profile="cpu"), "seed": None}, "nb")
    assert (resolved["lr"], resolved["epochs"], resolved["seed"]) == (0.002, 5, 3)


def test_a_profile_section_may_only_change_parameters_that_defaults_lists(book):
    with (book / "notebooks" / "params" / "nb.yml").open("a") as f:
        f.write("  threads_unused: 3\n")
    with pytest.raises(ValueError, match=r"nb\.yml: \[paper\] sets \['threads_unused'\], which \[defaults\] does not list"):
        resolve_parameters(not_given(), "nb")


def test_unknown_profile_and_a_parameter_the_notebook_lacks_are_named(book):
    with pytest.raises(ValueError, match=r"unknown profile 'gpu'; choose from \('smoke', 'cpu', 'paper'\)"):
        resolve_parameters(not_given(profile="gpu"), "nb")
    namespace = not_given()
    del namespace["lr"]
    with pytest.raises(NameError, match=r"nb\.yml: 'lr' is not a parameter of nb\.ipynb"):
        resolve_parameters(namespace, "nb")


def test_the_repository_is_found_from_the_working_directory_or_named(book, monkeypatch, tmp_path_factory):
    monkeypatch.delenv("ANIMESION_REPO", raising=False)
    monkeypatch.chdir(book / "notebooks" / "params")
    assert find_repository() == book
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with pytest.raises(FileNotFoundError, match="is not the Animesion Book repository"):
        find_repository(elsewhere)
    monkeypatch.setenv("ANIMESION_REPO", str(book))
    monkeypatch.chdir(elsewhere)
    assert find_repository() == book


def test_notebook_path():
    assert notebook_path("data/x", Path("/r"), Path("/r/notebooks")) == "../data/x"
    assert notebook_path("../shared/h", Path("/r"), Path("/r/notebooks")) == "../../shared/h"
    assert notebook_path("/abs/x", Path("/r"), Path("/r/notebooks")) == "/abs/x"


def test_the_runner_gives_the_profile_and_paths_but_not_those_the_profile_sets():
    paths = dict(data_root="../data/synthetic-cpu", real_data_root="../../shared/data/holo14", results_dir="../results")
    assert notebook_parameters("02_recognition", "cpu", REPO, **paths) == {"profile": "cpu", **paths}
    assert notebook_parameters("02_recognition", "paper", REPO, **paths) == {"profile": "paper", "results_dir": "../results"}
    with pytest.raises(ValueError, match="not path parameters: \\['epochs'\\]"):
        notebook_parameters("02_recognition", "cpu", REPO, epochs=3)


def test_the_injected_parameters_cell_is_removed_from_the_book():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = None", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"]})])
    assert fold_injected_parameters(nb) == 1
    assert nb.cells[1].metadata.tags == ["injected-parameters", "remove-cell"]
    assert nb.cells[0].metadata.tags == ["parameters"]


# ------------------------------------------------------------------------ papermill, by hand


def resolving_notebook(name: str, dest: Path) -> Path:
    """The chapter's own parameters cell and resolution line, then a cell printing every parameter."""
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    following = next(c for c in nb.cells[index + 1:] if c.cell_type == "code")
    resolve = [l for l in following.source.splitlines() if "resolve_parameters" in l]
    names = ["profile", *load_params(name, REPO)["defaults"]]
    mini = nbformat.v4.new_notebook(cells=[
        nb.cells[index], nbformat.v4.new_code_cell("\n".join(resolve)),
        nbformat.v4.new_code_cell(f"import json\nprint(json.dumps({{n: globals()[n] for n in {names!r}}}))")])
    mini.metadata = nb.metadata
    nbformat.write(mini, dest)
    return dest


def papermill(args: list[str], cwd: Path, timeout: int) -> dict:
    """Run the papermill command line; the last printed line of the output notebook, as JSON."""
    run = subprocess.run([PAPERMILL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = nbformat.read(Path(cwd, args[1]), as_version=4)
    printed = [o.text for c in out.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"]
    return json.loads(printed[-1].strip().splitlines()[-1]) if printed else {}


@pytest.mark.slow
def test_profile_cpu_gives_the_cpu_settings_from_the_root_and_from_notebooks(tmp_path):
    path, name = readme_command()
    mini = resolving_notebook(name, tmp_path / "mini.ipynb")
    sections = load_params(name, REPO)
    expected = {**sections["defaults"], **sections["cpu"], "profile": "cpu", "data_root": "../data/synthetic-cpu",
                "real_data_root": "../../shared/data/holo14", "results_dir": "../results"}
    from_root = papermill([str(mini), str(tmp_path / "a.ipynb"), "-p", "profile", "cpu"], REPO, 300)
    assert from_root == expected
    assert from_root["vit_seeds"] == [0, 1, 2] and from_root["epochs"] == 15  # the cpu values, not smoke's
    from_notebooks = papermill([str(mini), str(tmp_path / "b.ipynb"), "-p", "profile", "cpu"], REPO / "notebooks", 300)
    assert from_notebooks == expected
    # explicit values win; a path given from the root means the root's folder
    given = papermill([str(mini), str(tmp_path / "c.ipynb"), "-p", "profile", "cpu", "-p", "epochs", "7",
                       "-p", "data_root", "data/synthetic-smoke"], REPO, 300)
    assert given == {**expected, "epochs": 7, "data_root": "../data/synthetic-smoke"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_readme_command_runs_a_chapter_from_the_repository_root(tmp_path):
    """The README's exact command, at the smoke profile so that it is quick."""
    path, name = readme_command()
    ensure_synthetic(REPO / "data" / "synthetic-smoke", "smoke")
    out = tmp_path / "out.ipynb"
    run = subprocess.run([PAPERMILL, path, str(out), "-p", "profile", "smoke"], cwd=REPO,
                         capture_output=True, text=True, timeout=850)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    record = json.loads((REPO / "results" / "smoke" / "recognition-syn-vit-cls-s0.json").read_text())
    smoke = load_params(name, REPO)["defaults"]
    assert record["profile"] == "smoke" and record["config"]["epochs"] == smoke["epochs"]
    assert record["config"]["data"] == "../data/synthetic-smoke"  # relative: no machine path in a record
    assert str(REPO) not in out.read_text()
