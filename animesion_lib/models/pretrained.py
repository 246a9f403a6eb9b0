"""Loading weights: pretrained starting points and exact checkpoints.

Two functions with two contracts:

* :func:`load_pretrained` — a *starting point* (a timm ViT's weights, or one of our models) that
  may differ in image size, class count or depth: position embeddings are resampled to the new
  grid and the patch embedding adapted (timm's ``checkpoint_filter_fn``, which uses
  ``resample_abs_pos_embed``), a classifier of another size is skipped, and the keys that did
  not load are reported (returned and logged).
* :func:`load_model_weights` — a *checkpoint* of this very model (resume / evaluate): anything
  that does not match is a :class:`~animesion_lib.errors.CheckpointError` saying what.

Files are read without pickle: ``.safetensors``, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

from animesion_lib.errors import CheckpointError

_log = logging.getLogger(__name__)

# Wrappers that training adds around a state dict: DDP, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Keys of a model's config that decide its parameter shapes.
_ARCH_KEYS = ("name", "num_classes", "head", "vocab_size", "max_text_len", "num_tags", "image_size")


@dataclass
class LoadReport:
    """Keys the model expected but did not get, got but has no use for, and skipped classifiers."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or ``.pth``/``.pt``/``.bin``/``.ckpt`` file, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path), device="cpu")
        elif path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
            data = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise CheckpointError(f"{path}: unknown weights format (use .safetensors, .pth, .pt or .bin)")
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt file, or a pickle that weights_only refuses
        raise CheckpointError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict", "model", "model_state"):  # common checkpoint wrappers
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return strip_wrapper_prefixes(dict(data))


def strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes from every key."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def _is_classifier(model: nn.Module, key: str) -> bool:
    prefixes = model.classifier_prefixes() if hasattr(model, "classifier_prefixes") else ()
    cfg = getattr(getattr(model, "backbone", None), "pretrained_cfg", None) or {}
    timm_head = cfg.get("classifier", "head")
    timm_heads = timm_head if isinstance(timm_head, (list, tuple)) else (timm_head,)
    prefixes = tuple(prefixes) + tuple(f"backbone.{h}." for h in timm_heads)
    return key.startswith(prefixes)


def load_pretrained(model: nn.Module, source: str | Path | Mapping[str, torch.Tensor]) -> LoadReport:
    """Initialise ``model`` from a weights file (or state dict) that may differ in size.

    ``source`` is either a plain timm model's state dict (``patch_embed.proj.weight``, ...),
    loaded into ``model.backbone``, or one of ours (``backbone.…`` keys), loaded into the whole
    model. For a ViT the backbone part goes through timm's ``checkpoint_filter_fn`` (position
    embedding resampled to this image size, patch embedding resized, prefix tokens kept).
    A classifier whose shape differs is skipped; any other shape mismatch is a CheckpointError.
    """
    origin = str(source) if isinstance(source, (str, Path)) else "state dict"
    state = read_state_dict(source) if isinstance(source, (str, Path)) else strip_wrapper_prefixes(source)
    if not any(k.startswith("backbone.") for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, VisionTransformer):
        part = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        part = checkpoint_filter_fn(part, backbone)
        state = {**{k: v for k, v in state.items() if not k.startswith("backbone.")},
                 **{f"backbone.{k}": v for k, v in part.items()}}

    own = model.state_dict()
    report = LoadReport()
    mismatched = []
    for key in list(state):
        if key in own and own[key].shape != state[key].shape:
            if _is_classifier(model, key):
                report.skipped.append(key)
                del state[key]
            else:
                mismatched.append(f"{key}: file {tuple(state[key].shape)} vs model {tuple(own[key].shape)}")
        elif key not in own and _is_classifier(model, key):
            report.skipped.append(key)  # e.g. timm's 1000-class head; ours lives elsewhere
            del state[key]
    if mismatched:
        raise CheckpointError(f"{origin}: weights do not fit {_describe(model)}: " + "; ".join(mismatched[:5])
                              + (f" (and {len(mismatched) - 5} more)" if len(mismatched) > 5 else ""))
    result = model.load_state_dict(state, strict=False)
    report.missing, report.unexpected = list(result.missing_keys), list(result.unexpected_keys)
    _log.info("loaded %s into %s: %d tensors", origin, _describe(model), len(state))
    for what in ("skipped", "missing", "unexpected"):
        keys = getattr(report, what)
        if keys:
            _log.warning("%s keys (%d): %s", what, len(keys), ", ".join(keys[:10]) + (" ..." if len(keys) > 10 else ""))
    return report


def _describe(model: nn.Module, config: Mapping[str, Any] | None = None) -> str:
    config = getattr(model, "config", {}) if config is None else config
    name = config.get("name", type(model).__name__)
    classes = config.get("num_classes", getattr(model, "num_classes", "?"))
    return f"{name} with {classes} classes"


def load_model_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    config: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> LoadReport:
    """Load a checkpoint of exactly this model, or raise CheckpointError saying what differs.

    ``config`` is the checkpoint's ``model.config`` if it stored one; when given, architecture
    keys (name, class count, head, vocabulary, ...) are compared first, which gives the clearest
    message. Then keys and shapes are compared. ``strict=False`` tolerates missing/unexpected
    keys (returned in the report) but never a shape mismatch.
    """
    if config is not None:
        own = getattr(model, "config", {})
        differing = [k for k in _ARCH_KEYS if k in config and k in own and config[k] != own[k]]
        if differing:
            details = ", ".join(f"{k}: checkpoint {config[k]!r} vs model {own[k]!r}" for k in differing)
            raise CheckpointError(f"checkpoint was made for {_describe(model, config)}; "
                                  f"this model is {_describe(model)} ({details})")
    state = strip_wrapper_prefixes(state_dict)
    own_state = model.state_dict()
    mismatched = [k for k in state if k in own_state and state[k].shape != own_state[k].shape]
    missing = [k for k in own_state if k not in state]
    unexpected = [k for k in state if k not in own_state]
    if mismatched or (strict and (missing or unexpected)):
        problems = []
        class_keys = [k for k in mismatched if _is_classifier(model, k) and k.endswith("weight")]
        if class_keys:
            k = class_keys[0]
            problems.append(f"checkpoint has {state[k].shape[0]} outputs in {k}, this model has "
                            f"{own_state[k].shape[0]}")
        if mismatched:
            problems.append("mismatching shapes: " + "; ".join(
                f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own_state[k].shape)}" for k in mismatched[:5]))
        if missing and strict:
            problems.append(f"missing from checkpoint ({len(missing)}): " + ", ".join(missing[:5]))
        if unexpected and strict:
            problems.append(f"not in this model ({len(unexpected)}): " + ", ".join(unexpected[:5]))
        raise CheckpointError(f"checkpoint does not match {_describe(model)}: " + " | ".join(problems))
    model.load_state_dict(state, strict=False)
    return LoadReport(missing=missing, unexpected=unexpected)
