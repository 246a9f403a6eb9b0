"""Results records: the contract between experiments and the book.

Every train or evaluate run can leave one record, ``results/<profile>/<experiment>.json``, plus
its per-epoch curves as ``<experiment>.csv`` beside it. The book reads its numbers from these
files and never types one. A record is a flat-ish JSON object::

    {
      "schema": "animesion-result/1",
      "experiment": "vit_ifa_faces",       what was run (file name stem)
      "profile": "cpu",                     smoke | cpu | paper
      "kind": "train",                      train | evaluate
      "config": {...},                      the full TrainConfig (or evaluation options)
      "seed": 0,
      "metrics": {"top1": 0.61, ...},       final numbers (flat: name -> number)
      "curves": [{"epoch": 1, "train_loss": 2.3, ...}, ...],   one row per epoch ([] if none)
      "wall_time_s": 41.2,
      "throughput": {"train_images_per_s": 210.0, "eval_images_per_s": 900.0},
      "device": {"type": "cpu", "name": "...", "precision": "fp32", "threads": 2, "world_size": 1},
      "versions": {"python": "3.12.3", "torch": "2.14.1", "timm": "1.0.31", "animesion_lib": "0.1.0", ...},
      "git_commit": "ab12...",              or null outside a git checkout ("+dirty" when modified)
      "data_fingerprint": "9f2c...",        animesion_lib.data.fingerprint.data_fingerprint
      "created": "2025-01-01T12:00:00+00:00"
    }
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from animesion_lib.atomic import atomic_path, atomic_write_text
from animesion_lib.errors import AnimesionError

SCHEMA = "animesion-result/1"

# field -> the type(s) it must have; validate_record checks presence and type
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema": str,
    "experiment": str,
    "profile": str,
    "kind": str,
    "config": dict,
    "seed": int,
    "metrics": dict,
    "curves": list,
    "wall_time_s": (int, float),
    "throughput": dict,
    "device": dict,
    "versions": dict,
    "git_commit": (str, type(None)),
    "data_fingerprint": (str, type(None)),
    "created": str,
}


class RecordError(AnimesionError, ValueError):
    """A results record is missing a field or has one of the wrong type."""


def validate_record(record: dict[str, Any], source: str | Path | None = None) -> dict[str, Any]:
    """Check that a record has every required field with the right type; return it unchanged.

    Raises RecordError naming every missing or mistyped field (and the file, when given).
    """
    where = f"{source}: " if source is not None else ""
    if not isinstance(record, dict):
        raise RecordError(f"{where}a results record must be a JSON object, not {type(record).__name__}")
    problems = []
    for field, kind in REQUIRED_FIELDS.items():
        if field not in record:
            problems.append(f"missing field {field!r}")
        elif not isinstance(record[field], kind) or (kind is int and isinstance(record[field], bool)):
            problems.append(f"field {field!r} has type {type(record[field]).__name__}")
    if not problems:
        if record["schema"] != SCHEMA:
            problems.append(f"unknown schema {record['schema']!r} (expected {SCHEMA})")
        bad = [k for k, v in record["metrics"].items() if not isinstance(v, (int, float, type(None)))]
        if bad:
            problems.append(f"metrics must be numbers; not: {', '.join(bad)}")
        if not all(isinstance(row, dict) for row in record["curves"]):
            problems.append("curves must be a list of objects (one per epoch)")
    if problems:
        raise RecordError(where + "; ".join(problems))
    return record


# --------------------------------------------------------------------------------- provenance


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a number depends on."""
    versions = {"python": platform.python_version()}
    for dist in ("torch", "torchvision", "timm", "tokenizers", "numpy", "scikit-learn", "animesion-lib"):
        try:
            versions[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if "animesion_lib" not in versions:
        from animesion_lib import __version__

        versions["animesion_lib"] = __version__
    return versions


def git_commit(repo: str | Path | None = None) -> str | None:
    """The commit of the library's checkout, with ``+dirty`` when it has uncommitted changes."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[1]
    try:
        run = lambda *cmd: subprocess.run(  # noqa: E731
            ["git", *cmd], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make_record(
    *,
    experiment: str,
    profile: str,
    kind: str,
    config: dict[str, Any],
    seed: int,
    metrics: dict[str, Any],
    curves: list[dict[str, Any]] | None = None,
    wall_time_s: float,
    throughput: dict[str, Any] | None = None,
    device: dict[str, Any] | None = None,
    data_fingerprint: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a complete record; versions, git commit and timestamp are filled in here."""
    record = {
        "schema": SCHEMA,
        "experiment": experiment,
        "profile": profile,
        "kind": kind,
        "config": _jsonable(config),
        "seed": int(seed),
        "metrics": {k: _number(v) for k, v in metrics.items()},
        "curves": _jsonable(curves or []),
        "wall_time_s": float(wall_time_s),
        "throughput": _jsonable(throughput or {}),
        "device": _jsonable(device or {}),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "data_fingerprint": data_fingerprint,
        "created": now_iso(),
    }
    record.update(_jsonable(extra))
    return validate_record(record)


def _number(value: Any) -> float | int | None:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, int) and not isinstance(value, bool) else float(value)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_default))


def _default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


# ------------------------------------------------------------------------------- write / read


def record_path(results_dir: str | Path, profile: str, experiment: str) -> Path:
    return Path(results_dir) / profile / f"{experiment}.json"


def write_record(record: dict[str, Any], results_dir: str | Path = "results") -> Path:
    """Validate and write ``results_dir/<profile>/<experiment>.json`` (+ ``.csv`` of the curves).

    Both files are written to a temporary name first and renamed, so a reader never sees half a
    record. Returns the JSON path.
    """
    import pandas as pd

    validate_record(record)
    path = record_path(results_dir, record["profile"], record["experiment"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=False) + "\n")
    csv = path.with_suffix(".csv")
    if record["curves"]:
        with atomic_path(csv) as tmp:
            pd.DataFrame(record["curves"]).to_csv(tmp, index=False)
    elif csv.exists():
        csv.unlink()  # a stale curve file from an earlier run would contradict the record
    return path


def load_record(path: str | Path) -> dict[str, Any]:
    """Read and validate one record."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise RecordError(f"{path}: no such results record") from err
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not valid JSON ({err})") from err
    return validate_record(record, source=path)


def load_records(results_dir: str | Path = "results", profile: str | None = None):
    """Every record under ``results_dir`` (or one profile of it) as a pandas DataFrame.

    One row per record: the scalar fields (experiment, profile, kind, seed, wall_time_s,
    git_commit, data_fingerprint, created), then ``metrics.*``, ``config.*``, ``throughput.*``
    and ``device.*`` flattened into columns; ``curves`` stays a list in its own column and
    ``path`` says which file the row came from. Sorted by profile then experiment.
    """
    import pandas as pd

    root = Path(results_dir) / profile if profile else Path(results_dir)
    rows = []
    for path in sorted(root.rglob("*.json")):
        record = load_record(path)
        row = {k: record[k] for k in REQUIRED_FIELDS if not isinstance(record[k], (dict, list))}
        for group in ("metrics", "config", "throughput", "device"):
            for key, value in record[group].items():
                row[f"{group}.{key}"] = value if not isinstance(value, (dict, list)) else json.dumps(value)
        row["curves"] = record["curves"]
        row["path"] = str(path)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["profile", "experiment"], ignore_index=True)
    return frame
