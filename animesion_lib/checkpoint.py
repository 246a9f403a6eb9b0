"""Checkpoints: safe to load, written atomically, complete enough to resume a run exactly.

A checkpoint is a directory::

    RUN/checkpoints/epoch_0003/
        model.safetensors     the weights (safetensors: no code runs when they are loaded)
        training_state.pt     optimizer, grad scaler, LR-schedule step, epoch, RNG states
                              (plain tensors and dicts; loaded with torch.load(weights_only=True))
        meta.json             how to rebuild the model (model.config), class names, the run's
                              config, its curves so far, which tokenizer files sit beside it,
                              and the sha256 of every other file (checked when they are loaded)
        tokenizer.json, tag_vocab.json   (multimodal / tagging runs) so evaluate and predict
                              reload exactly what the model was trained with

The directory is first written under a hidden temporary name and then renamed into place, so a
crash (or a SIGKILL) at any moment leaves either the complete checkpoint or none at all: readers
only ever see ``epoch_*`` directories that were finished. The newest one is the one to resume.
A file damaged later (a bad disk, a partial copy) fails its sha256 check with its name; older
checkpoints without hashes load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from animesion_lib.errors import CheckpointError

FORMAT = "animesion-checkpoint/1"
WEIGHTS = "model.safetensors"
STATE = "training_state.pt"
META = "meta.json"


def checkpoint_name(epoch: int) -> str:
    """Directory name of the checkpoint written after ``epoch`` (1-based) epochs."""
    return f"epoch_{epoch:04d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The finished checkpoints of a run, oldest first (temporary directories are skipped)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("epoch_*") if (p / META).is_file())


def find_checkpoint(runs_dir: str | Path, accept: Callable[[Path], bool] = lambda ckpt: True,
                    prefer: Sequence[str] = ()) -> Path | None:
    """The newest checkpoint of the first run folder under ``runs_dir`` that ``accept`` approves.

    Runs whose names start with an entry of ``prefer`` come first, in that order, then the rest
    by name; ``accept`` gets a checkpoint directory (e.g. to check its ``meta.json``).
    """
    def rank(run: Path) -> tuple[int, str]:
        return next((i for i, p in enumerate(prefer) if run.name.startswith(p)), len(prefer)), run.name

    runs = sorted((d for d in Path(runs_dir).glob("*") if d.is_dir()), key=rank) if Path(runs_dir).is_dir() else []
    for run in runs:
        latest = latest_checkpoint(run)
        if latest is not None and accept(latest):
            return latest
    return None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest finished checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint directory, a run directory (its newest checkpoint) or the weights file."""
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS, META, STATE):
        path = path.parent
    if (path / META).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest
    raise CheckpointError(f"{path}: not a checkpoint (no {META}) and not a run directory with checkpoints")


# ---------------------------------------------------------------------------------------- writing


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    training_state: dict[str, Any] | None = None,
    extra_files: dict[str, str | Path] | None = None,
) -> Path:
    """Write a checkpoint directory atomically and return its path.

    ``model`` is the bare module (not the DDP / compiled wrapper). ``meta`` must be JSON-able;
    ``model.config`` and the format tag are added to it. ``extra_files`` maps a name inside the
    checkpoint to a file to copy there (the tokenizer, the tag vocabulary).
    """
    from safetensors.torch import save_model

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    # save_model (not save_file) because tied weights (ViLT's MLM decoder = word embeddings)
    # share storage, which save_file refuses; save_model writes each shared tensor once.
    save_model(model, str(tmp / WEIGHTS))
    meta = dict(meta, format=FORMAT, model_config=getattr(model, "config", None))
    for name, source in (extra_files or {}).items():
        shutil.copyfile(source, tmp / name)
    meta["files"] = sorted((extra_files or {}).keys())
    if training_state is not None:
        torch.save(training_state, tmp / STATE)
    meta["sha256"] = {f.name: file_sha256(f) for f in sorted(tmp.iterdir())}
    _write_json(tmp / META, meta)  # last: a directory with meta.json is a finished one
    for f in tmp.iterdir():
        _fsync_file(f)

    if final.exists():  # re-running into the same folder: swap the old one out, then drop it
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return final


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints of a run (keep <= 0 keeps everything)."""
    if keep <= 0:
        return
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------- reading


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(ckpt: Path, name: str, meta: dict[str, Any] | None = None) -> Path:
    """``ckpt / name``, after checking it against the sha256 in meta.json (when recorded)."""
    meta = load_meta(ckpt) if meta is None else meta
    path = ckpt / name
    expected = meta.get("sha256", {}).get(name)
    if expected is not None and path.is_file() and file_sha256(path) != expected:
        raise CheckpointError(f"{path}: damaged (its sha256 differs from the one recorded in {META} "
                              "when the checkpoint was written); use another checkpoint")
    return path


def load_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a checkpoint (or of a run's newest checkpoint)."""
    ckpt = resolve_checkpoint(path)
    try:
        meta = json.loads((ckpt / META).read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{ckpt / META}: not valid JSON ({err})") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt / META}: unknown checkpoint format {meta.get('format')!r}, expected {FORMAT}")
    return meta


def _normalised(config: Any) -> Any:
    """Config as it reads back from JSON (tuples become lists), for comparison."""
    return json.loads(json.dumps(config, default=_json_default))


def load_weights(path: str | Path, model: torch.nn.Module, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint's weights into ``model``; raise CheckpointError if they do not fit.

    "Do not fit" is checked twice: the model configs must agree (another architecture or class
    count is named in the message), and every tensor name and shape must match.
    Returns the checkpoint's meta.
    """
    from safetensors import safe_open
    from safetensors.torch import load_model

    ckpt = resolve_checkpoint(path)
    meta = load_meta(ckpt)
    saved_config, model_config = meta.get("model_config"), getattr(model, "config", None)
    if saved_config is not None and model_config is not None:
        saved, current = _normalised(saved_config), _normalised(model_config)
        if saved != current:
            diffs = [
                f"{k}: checkpoint {saved.get(k)!r} vs model {current.get(k)!r}"
                for k in sorted(set(saved) | set(current))
                if saved.get(k) != current.get(k)
            ]
            raise CheckpointError(f"{ckpt}: checkpoint was made for another model ({'; '.join(diffs)})")

    weights = verify_file(ckpt, WEIGHTS, meta)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing")
    expected = model.state_dict()
    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from err
    wrong = [
        f"{k}: checkpoint {shapes[k]} vs model {tuple(expected[k].shape)}"
        for k in shapes
        if k in expected and shapes[k] != tuple(expected[k].shape)
    ]
    if wrong:
        raise CheckpointError(f"{weights}: tensor shapes differ from the model: " + "; ".join(wrong[:5]))
    try:
        load_model(model, str(weights), strict=True, device=str(device))
    except RuntimeError as err:  # missing or unexpected tensor names
        raise CheckpointError(f"{weights}: does not match the model ({err})") from err
    return meta


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Optimizer / scaler / schedule / RNG state, loaded without unpickling arbitrary objects.

    Always onto the CPU: the RNG states must live there, and ``optimizer.load_state_dict``
    moves the optimizer's tensors to its parameters' device itself.
    """
    ckpt = resolve_checkpoint(path)
    file = verify_file(ckpt, STATE)
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (this checkpoint holds weights only and cannot be resumed)")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{file}: not a loadable training state ({err})") from err


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from a checkpoint's ``model.config`` and load its weights.

    Returns ``(model in eval mode, meta)``.
    """
    from animesion_lib.models import create_model

    ckpt = resolve_checkpoint(path)
    meta = load_meta(ckpt)
    config = meta.get("model_config")
    if not config:
        raise CheckpointError(f"{ckpt / META}: has no model_config to rebuild the model from")
    config = dict(config, pretrained=False)  # never fetch pretrained weights we are about to overwrite
    model = create_model(**config)
    load_weights(ckpt, model)
    return model.to(device).eval(), meta


# ------------------------------------------------------------------------------------------- RNG


def rng_state() -> dict[str, Any]:
    """Every random generator the run touches, as plain tensors/tuples (weights_only-loadable)."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's GPU only
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (tensors on any device), the GPU's on this GPU only."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    cuda = state.get("cuda")
    if isinstance(cuda, (list, tuple)):  # older checkpoints saved every GPU's state
        here = torch.cuda.current_device() if torch.cuda.is_available() else 0
        cuda = cuda[here] if here < len(cuda) else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu())
