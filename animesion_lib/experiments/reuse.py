"""Reusing a finished run instead of training the same configuration twice.

Chapters share arms: the curriculum chapter's ``none`` schedule *is* the multimodal chapter's
ViLT, and the tag-prediction chapter reads the curriculum's runs. Training each once keeps the
book inside its time budget, and papermill can still run any chapter alone: an arm that is not
there yet is trained.

A run is reused only when everything that decides its result is unchanged: the configuration
(every field but where it is logged and how many threads it used), the data (fingerprint), the
library's source code (so an edited library trains again) and its results record, which must
still be the one the run wrote. The stamp that says so lives in the run folder (``runs/`` is
never committed), so a fresh clone reuses nothing and the committed records are never taken for
fresh ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from animesion_lib.atomic import atomic_write_text
from animesion_lib.config import TrainConfig

STAMP = "reuse.json"
# fields that change where a run logs or how fast it goes, not what it learns
_NOT_IN_KEY = ("progress", "threads", "num_workers", "tensorboard", "keep_checkpoints", "overwrite", "resume")


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the library's Python sources (any edit changes it)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run_key(config: TrainConfig) -> str:
    """What a finished run must match to be reused for ``config``."""
    from animesion_lib.data.fingerprint import data_fingerprint

    learned = {k: v for k, v in asdict(config).items() if k not in _NOT_IN_KEY}
    payload = [learned, data_fingerprint(config.data, config.layout), code_fingerprint()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def finished_run(config: TrainConfig) -> dict[str, Any] | None:
    """The stamp of a finished run of exactly ``config`` whose record is intact, else None."""
    stamp = Path(config.out_dir) / STAMP
    if not stamp.is_file():
        return None
    found = json.loads(stamp.read_text())
    record = Path(found.get("record") or "")
    if found.get("key") != run_key(config) or not record.is_file() or _sha256(record) != found.get("record_sha256"):
        return None
    return found


def stamp_run(config: TrainConfig, summary: dict[str, Any]) -> None:
    """Mark a run as finished, for :func:`finished_run` (only runs that wrote a record)."""
    record = summary.get("record")
    if not record:
        return
    atomic_write_text(Path(config.out_dir) / STAMP, json.dumps({
        "key": run_key(config), "experiment": config.experiment, "record": str(record),
        "record_sha256": _sha256(Path(record)), "metrics": summary.get("metrics", {}),
    }, indent=1) + "\n")
