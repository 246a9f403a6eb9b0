"""The transfer regime: backbones pretrained on a synthetic *source* universe, then fine-tuned.

Animesion's findings are about fine-tuning: ViTs pretrained on ImageNet-21k, then trained on
DAF:re. No hub is reachable here, so the book's stand-in for ImageNet is a larger synthetic
universe of *other* characters: same generator, own seed, more classes, and not one character
whose look (attribute combination) occurs in the target dataset. A backbone trained there knows
how anime faces are drawn but has never seen a target character, as an ImageNet model has never
seen Hatsune Miku's class.

    weights = pretrain("data/synthetic-cpu", TrainConfig(model="vit_tiny_p8", image_size=32, epochs=30))
    train(TrainConfig(data="data/synthetic-cpu", ..., pretrained_path=str(weights)))

Both the source data and the weights are cached (``$ANIMESION_CACHE_DIR``, default
``~/.cache/animesion``): the source by the target's looks and the universe's settings, the weights
by the source's data fingerprint and the training configuration, so a second ``make book``
reuses them. Beside the weights, ``provenance.json`` says where they came from (source
fingerprint and config, training config, final validation metrics, git commit); fine-tuning
records cite it (:func:`provenance`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from animesion_lib.atomic import atomic_path, atomic_write_text
from animesion_lib.config import TrainConfig
from animesion_lib.errors import AnimesionError

WEIGHTS = "backbone.safetensors"
PROVENANCE = "provenance.json"
# TrainConfig fields that decide where and how visibly a run goes, not what it learns
_NOT_IN_KEY = ("data", "out_dir", "progress", "experiment", "profile", "results_dir", "resume", "overwrite",
               "keep_checkpoints", "device", "threads", "num_workers", "tensorboard", "test_split")


@dataclass(frozen=True)
class SourceUniverse:
    """The pretraining universe: its size and seed (its image size follows the target's)."""

    classes: int = 300
    images: int = 15000
    seed: int = 1000
    min_per_class: int = 20


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _target_generator_config(target: Path) -> dict[str, Any]:
    stamp = target / "generator.json"
    if not stamp.is_file():
        raise AnimesionError(f"{stamp}: not found; the transfer regime needs a target made by "
                             "`animesion make-synthetic` (its characters must be known to exclude them)")
    return json.loads(stamp.read_text())["config"]


def source_dataset(target: str | Path, universe: SourceUniverse = SourceUniverse(),
                   cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The source universe for ``target`` (generated on first use, then reused)."""
    from animesion_lib.data.cache import default_cache_dir
    from animesion_lib.data.synthetic import SyntheticConfig, character_looks, is_current, make_synthetic

    target = Path(target)
    looks = character_looks(target)
    size = _target_generator_config(target)["size"]
    config = SyntheticConfig(classes=universe.classes, images=universe.images, seed=universe.seed, size=size,
                             min_per_class=universe.min_per_class, progress=progress, card=False, overwrite=True)
    key = _digest([sorted(map(repr, looks)), asdict(universe), size])
    folder = Path(cache_dir or default_cache_dir()) / "source" / f"{universe.classes}c-{size}px-{key}"
    if not is_current(folder, config):
        make_synthetic(folder, config, exclude_looks=looks)
    return folder


def _training_key(config: TrainConfig, source_fingerprint: str) -> str:
    learned = {k: v for k, v in asdict(config).items() if k not in _NOT_IN_KEY}
    return _digest([source_fingerprint, learned])


def pretrain(target: str | Path, config: TrainConfig, universe: SourceUniverse = SourceUniverse(),
             cache_dir: str | Path | None = None) -> Path:
    """Pretrain ``config``'s model on the source universe of ``target``; return the weights file.

    ``config.data`` and ``config.out_dir`` are replaced; a results record is written when
    ``config.experiment`` is set (also when the weights come from the cache).
    """
    from animesion_lib.data.cache import default_cache_dir
    from animesion_lib.data.fingerprint import data_fingerprint

    source = source_dataset(target, universe, cache_dir, progress=config.progress)
    fingerprint = data_fingerprint(source)
    folder = Path(cache_dir or default_cache_dir()) / "pretrained" / f"{config.model}-{_training_key(config, fingerprint)}"
    if not (folder / PROVENANCE).is_file():
        _train_and_export(source, fingerprint, config, universe, folder)
    if config.experiment:
        _write_cached_record(folder, config)
    return folder / WEIGHTS


def _train_and_export(source: Path, fingerprint: str, config: TrainConfig, universe: SourceUniverse,
                      folder: Path) -> None:
    from animesion_lib.results import git_commit, now_iso
    from animesion_lib.train import train

    run = folder / "run"
    summary = train(replace(config, data=str(source), out_dir=str(run), overwrite=True, resume=False,
                            test_split=None, results_dir=str(folder / "results"), keep_checkpoints=1,
                            experiment=config.experiment or "pretraining"))
    if not summary["checkpoint"]:
        raise AnimesionError(f"pretraining on {source} left no checkpoint (did it train an epoch?)")
    digest = export_backbone(Path(summary["checkpoint"]), folder / WEIGHTS)
    atomic_write_text(folder / PROVENANCE, json.dumps({
        "source": {"fingerprint": fingerprint, "universe": asdict(universe),
                   "generator": json.loads((source / "generator.json").read_text())},
        "train_config": summary["config"], "metrics": summary["metrics"], "epochs": summary["epochs"],
        "weights_sha256": digest, "git_commit": git_commit(), "created": now_iso(),
        "record": summary["record"] and json.loads(Path(summary["record"]).read_text()),
    }, indent=1) + "\n")
    shutil.rmtree(run)  # the exported backbone is all fine-tuning needs


def export_backbone(checkpoint: Path, destination: Path) -> str:
    """Write the ``backbone.*`` tensors of a checkpoint (not the heads) as safetensors; return sha256."""
    from safetensors.torch import save_file

    from animesion_lib.models.pretrained import read_state_dict

    state = {k: v.contiguous() for k, v in read_state_dict(checkpoint / "model.safetensors").items()
             if k.startswith("backbone.") and not k.startswith("backbone.head.")}
    if not state:
        raise AnimesionError(f"{checkpoint}: no backbone.* weights to export")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination) as tmp:
        save_file(state, str(tmp))
    return hashlib.sha256(destination.read_bytes()).hexdigest()


def _write_cached_record(folder: Path, config: TrainConfig) -> None:
    """The pretraining record in the caller's results folder, under the caller's name and profile."""
    from animesion_lib.results import validate_record, write_record

    record = json.loads((folder / PROVENANCE).read_text()).get("record")
    if record is None:
        raise AnimesionError(f"{folder / PROVENANCE}: has no record; delete {folder} to pretrain again")
    record = {**record, "experiment": config.experiment, "profile": config.profile}
    write_record(validate_record(record), config.results_dir)


def provenance(weights: str | Path | None) -> dict[str, Any] | None:
    """What a fine-tuning record cites about its starting weights (None: not from :func:`pretrain`)."""
    if weights is None or not (Path(weights).parent / PROVENANCE).is_file():
        return None
    found = json.loads((Path(weights).parent / PROVENANCE).read_text())
    return {"source_fingerprint": found["source"]["fingerprint"], "universe": found["source"]["universe"],
            "weights_sha256": found["weights_sha256"], "git_commit": found["git_commit"],
            "pretraining_experiment": (found.get("record") or {}).get("experiment"),
            "train_config": found["train_config"]}
