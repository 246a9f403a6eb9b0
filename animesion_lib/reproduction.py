"""Reproduction report: a fresh run's records beside the committed ones, number by number.

Two runs of the book on two machines, with the same seeds and the same data, differ by float
drift that grows over training. Whether a number "reproduced" is therefore read against the
noise the book measures itself: the spread of the same experiment over seeds.

- A *seed family* is the records of one experiment that differ only by seed (``name``,
  ``name-s1``, ``name-s2`` or ``name-s0`` ...). Its sample standard deviation is that
  experiment's noise, per metric; metrics of experiments with no family use the noise pooled over
  every family that has the same kind of number (``test_tags.top1`` and ``val_top1`` are both a
  ``top1``).
- A fresh number reproduces when it lies within ``2·√2·σ`` of the committed one: the two numbers
  are two draws, so their difference has standard deviation ``√2·σ``.
- Numbers with no seed in them (dataset counts, the difficulty card), and numbers of a kind no
  family measured, must agree to 1e-6.
- Records may carry ``verdicts`` (``{key: {"status": ..., "text": ...}}``, written by the chapters
  from :func:`animesion_lib.verdicts.compare`); every verdict whose status changed is listed.

    animesion reproduction-report --committed results --fresh /tmp/fresh/results --profile cpu
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

SEED_SUFFIX = re.compile(r"-s\d+$")
SPLIT_AND_MODE = re.compile(r"^(train|val|test)_(\w+\.)?")
EXACT = 1e-6
# machine-dependent quantities are not results
SKIPPED_METRIC = re.compile(r"(images_per_s|time_s|_seconds|wall)")


def read_records(results_dir: str | Path, profile: str) -> dict[str, dict[str, Any]]:
    """Every record of one profile, by experiment name (the JSON files only; CSVs are curves)."""
    folder = Path(results_dir) / profile
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no records of profile {profile!r} there")
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def family(experiment: str) -> str:
    return SEED_SUFFIX.sub("", experiment)


def kind(metric: str) -> str:
    """What a metric measures, whatever its split and text mode: ``test_notags.top1`` -> ``top1``."""
    return SPLIT_AND_MODE.sub("", metric)


def seed_noise(records: dict[str, dict[str, Any]]) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """Per (family, metric) sample std over seeds, and per kind of metric the std pooled over families."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, record in records.items():
        groups.setdefault(family(name), []).append(record.get("metrics", {}))
    own, pooled_var = {}, {}
    for fam, members in groups.items():
        if len(members) < 2:
            continue
        for metric in set.intersection(*(set(m) for m in members)):
            values = [m[metric] for m in members if isinstance(m[metric], (int, float))]
            if len(values) < 2:
                continue
            std = pd.Series(values).std()
            own[(fam, metric)] = std
            pooled_var.setdefault(kind(metric), []).append(std**2)
    pooled = {m: math.sqrt(sum(v) / len(v)) for m, v in pooled_var.items()}
    return own, pooled


def _tolerance(fam: str, metric: str, own: dict, pooled: dict) -> tuple[float, str]:
    if (fam, metric) in own:
        return 2 * math.sqrt(2) * own[(fam, metric)], f"seeds of {fam}"
    if kind(metric) in pooled:
        return 2 * math.sqrt(2) * pooled[kind(metric)], f"pooled seed noise of {kind(metric)}"
    return EXACT, "exact"


def compare_numbers(committed: dict[str, dict], fresh: dict[str, dict]) -> pd.DataFrame:
    """One row per metric present in both runs: both values, the difference, the tolerance."""
    own, pooled = seed_noise(committed)
    rows = []
    for name in sorted(set(committed) & set(fresh)):
        old, new = committed[name].get("metrics", {}), fresh[name].get("metrics", {})
        for metric in sorted(set(old) & set(new)):
            a, b = old[metric], new[metric]
            if SKIPPED_METRIC.search(metric) or not all(isinstance(v, (int, float)) for v in (a, b)):
                continue
            tol, basis = _tolerance(family(name), metric, own, pooled)
            delta = b - a
            rows.append(dict(experiment=name, metric=metric, committed=a, fresh=b, difference=delta,
                             tolerance=tol, basis=basis, reproduced=abs(delta) <= tol))
    return pd.DataFrame(rows, columns=["experiment", "metric", "committed", "fresh", "difference",
                                       "tolerance", "basis", "reproduced"])


def changed_verdicts(committed: dict[str, dict], fresh: dict[str, dict]) -> pd.DataFrame:
    """Every verdict (from records that carry ``verdicts``) whose status differs between runs."""
    rows = []
    for name in sorted(set(committed) | set(fresh)):
        old = committed.get(name, {}).get("verdicts", {})
        new = fresh.get(name, {}).get("verdicts", {})
        for key in sorted(set(old) | set(new)):
            before, after = old.get(key, {}), new.get(key, {})
            if before.get("status") != after.get("status"):
                rows.append(dict(experiment=name, verdict=key, committed=before.get("text", "(absent)"),
                                 fresh=after.get("text", "(absent)")))
    return pd.DataFrame(rows, columns=["experiment", "verdict", "committed", "fresh"])


@dataclass
class Reproduction:
    """What :func:`reproduction_report` found; ``markdown()`` is the report a person reads."""

    profile: str
    numbers: pd.DataFrame
    verdicts: pd.DataFrame
    missing: list[str]

    @property
    def moved(self) -> pd.DataFrame:
        return self.numbers[~self.numbers.reproduced]

    @property
    def reproduced(self) -> bool:
        return self.moved.empty and self.verdicts.empty and not self.missing

    def markdown(self) -> str:
        lines = [f"# Reproduction report ({self.profile} profile)", "",
                 f"{len(self.numbers)} numbers in {self.numbers.experiment.nunique()} records compared; "
                 f"{len(self.moved)} outside their seed-noise tolerance; {len(self.verdicts)} verdicts changed; "
                 f"{len(self.missing)} committed records absent from the fresh run.", ""]
        if self.missing:
            lines += ["Absent: " + ", ".join(self.missing), ""]
        for title, table in (("Numbers outside tolerance", self.moved), ("Changed verdicts", self.verdicts)):
            lines += [f"## {title}", "", table.to_string(index=False) if len(table) else "none", ""]
        return "\n".join(lines)


def reproduction_report(committed_dir: str | Path, fresh_dir: str | Path, profile: str = "cpu") -> Reproduction:
    """Compare the records of one profile in two results folders (the module docstring says how)."""
    committed, fresh = read_records(committed_dir, profile), read_records(fresh_dir, profile)
    return Reproduction(profile, compare_numbers(committed, fresh), changed_verdicts(committed, fresh),
                        sorted(set(committed) - set(fresh)))
