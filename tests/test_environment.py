"""pyproject.toml, environment.yml and constraints.txt describe one environment."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import REPO


def _name(spec: str) -> str:
    """'torch>=2.4' -> 'torch'; names compared the way pip compares them."""
    return re.split(r"[<>=!~\[; ]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_specs() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {_name(s): s.replace(" ", "") for s in specs}


def _conda_specs() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml should have exactly one pip: section"
    return {_name(s): s.replace(" ", "") for s in pip_lists[0] if not s.startswith("-e")}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    pyproject, conda = _pyproject_specs(), _conda_specs()
    assert sorted(pyproject) == sorted(conda), (
        f"only in pyproject.toml: {sorted(set(pyproject) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(pyproject))}"
    )
    differing = {n: (pyproject[n], conda[n]) for n in pyproject if pyproject[n] != conda[n]}
    assert not differing, f"version ranges differ (pyproject, environment.yml): {differing}"


def test_constraints_pin_torch_and_keep_jupyter_book_1():
    lines = [l.split("#")[0].strip() for l in (REPO / "constraints.txt").read_text().splitlines()]
    pins = {l for l in lines if l}
    assert {"torch==2.14.1", "torchvision==0.29.1", "jupyter-book<2"} <= pins
    # every pinned package is one the project actually depends on
    assert {_name(p) for p in pins} <= set(_pyproject_specs())
