"""Evaluation: a model over a data loader (``evaluate_model``), or a saved run over a split
(``evaluate_checkpoint``), turned into the metrics of :mod:`animesion_lib.metrics`.

Multimodal models (image + tags in, character out) are evaluated in each text mode asked for
(:class:`~animesion_lib.text_modes.TextMode`): with the tags, with none (image only, the case
curriculum training is meant to make work), and with a fraction of them dropped at random.
Metric names follow the rule of :mod:`animesion_lib.text_modes`: a model that reads tags has every
metric prefixed by its mode (``tags.top1``, ``notags.top1``, ``drop50.top1``); a model that reads
no text is evaluated once, its metrics unprefixed (``top1``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from animesion_lib.metrics import (
    classification_metrics, confusion_matrix, near_twin_metrics, per_class_accuracy, tag_metrics,
)
from animesion_lib.text_modes import TextMode, metric_name


def reads_text(model: torch.nn.Module) -> bool:
    """Whether ``model`` takes tag tokens as input (multimodal models are built with a vocabulary)."""
    return bool((getattr(model, "config", None) or {}).get("vocab_size"))


def drop_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    fraction: float,
    special_ids: set[int],
    pad_id: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove a random ``fraction`` of the (non-special) tag tokens: set them to [PAD], unmask them."""
    droppable = attention_mask.bool()
    for special in special_ids:
        droppable &= input_ids != special
    coin = torch.rand(input_ids.shape, generator=generator, device="cpu").to(input_ids.device)
    drop = droppable & (coin < fraction)
    return input_ids.masked_fill(drop, pad_id), attention_mask.masked_fill(drop, 0)


def _text_inputs(batch: dict[str, Any], mode: TextMode | None, drop_fraction: float, tokenizer: Any,
                 generator: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The ``input_ids`` / ``attention_mask`` a text mode feeds the model (None, None: image only)."""
    ids, mask = batch.get("input_ids"), batch.get("attention_mask")
    if ids is None or mode in (None, TextMode.TAGS):
        return ids, mask
    if mode is TextMode.NONE:
        return None, None
    special = set(tokenizer.special_token_ids) if tokenizer is not None else set()
    return drop_tokens(ids, mask, drop_fraction, special, tokenizer.pad_token_id if tokenizer else 0, generator)


def _to_host(t: torch.Tensor) -> torch.Tensor:
    # non-blocking: the GPU runs on; the copies are complete once the loss is read at the end
    return t.detach().float().to("cpu", non_blocking=True)


@torch.no_grad()
def collect_outputs(
    model: torch.nn.Module,
    loader: Iterable[dict[str, Any]],
    device: torch.device,
    precision: str = "fp32",
    text_mode: TextMode | str | None = None,
    drop_fraction: float = 0.5,
    tokenizer: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Run ``model`` over ``loader``: logits, labels, tag probabilities / targets, and the mean loss.

    ``text_mode`` (multimodal models): which tags the model is given; None feeds the batch as is.
    """
    return collect_outputs_by_mode(model, loader, device, precision, [text_mode], drop_fraction, tokenizer, seed,
                                   progress)[None if text_mode is None else TextMode.parse(text_mode)]


@torch.no_grad()
def collect_outputs_by_mode(
    model: torch.nn.Module,
    loader: Iterable[dict[str, Any]],
    device: torch.device,
    precision: str = "fp32",
    text_modes: Iterable[TextMode | str | None] = (None,),
    drop_fraction: float = 0.5,
    tokenizer: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[TextMode | None, dict[str, np.ndarray]]:
    """:func:`collect_outputs` for several text modes in one pass over ``loader`` (each batch is
    loaded once and given to the model once per mode); mode -> its outputs.

    The loss is summed on the device: the host waits once, at the end, not once per batch.
    """
    from tqdm.auto import tqdm

    from animesion_lib.device import autocast

    modes = [None if m is None else TextMode.parse(m) for m in text_modes]
    model.eval()
    generator = torch.Generator().manual_seed(seed)  # the same tags are dropped on every call
    found = {m: {"logits": [], "labels": [], "tag_scores": [], "tag_targets": []} for m in modes}
    loss_sum, seen = {m: torch.zeros((), device=device) for m in modes}, 0
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
        batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        for mode in modes:
            input_ids, attention_mask = _text_inputs(batch, mode, drop_fraction, tokenizer, generator)
            with autocast(device, precision):
                out = model(batch["image"], input_ids=input_ids, attention_mask=attention_mask)
                loss, _ = model.loss(out, batch) if hasattr(model, "loss") else (
                    torch.nn.functional.cross_entropy(out["logits"], batch["label"]), {})
            loss_sum[mode] += loss.detach().float() * batch["label"].shape[0]
            found[mode]["logits"].append(_to_host(out["logits"]))
            found[mode]["labels"].append(batch["label"].detach().to("cpu", non_blocking=True))
            if "tag_logits" in out and "tag_targets" in batch:
                found[mode]["tag_scores"].append(_to_host(torch.sigmoid(out["tag_logits"].float())))
                found[mode]["tag_targets"].append(_to_host(batch["tag_targets"]))
        seen += batch["label"].shape[0]
    return {m: _assemble(found[m], float(loss_sum[m]) / max(seen, 1), seen) for m in modes}


def _assemble(found: dict[str, list[torch.Tensor]], loss: float, seen: int) -> dict[str, np.ndarray]:
    # reading the loss (above) waited for the device, and for the copies
    result = {"logits": torch.cat(found["logits"]).numpy() if seen else np.zeros((0, 0), np.float32),
              "labels": torch.cat(found["labels"]).numpy() if seen else np.zeros((0,), np.int64),
              "loss": np.float64(loss)}
    if found["tag_scores"]:
        result["tag_scores"] = torch.cat(found["tag_scores"]).numpy()
        result["tag_targets"] = torch.cat(found["tag_targets"]).numpy()
    return result


@dataclass
class Evaluation:
    """What an evaluation found. ``metrics`` is flat name -> number (what records store), named
    by the rule of :mod:`animesion_lib.text_modes`; ``per_class_accuracy`` and ``confusion`` are
    those of ``mode``, the first mode evaluated (None: a model that reads no text)."""

    metrics: dict[str, float]
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    mode: TextMode | None = None
    classes: list[str] = field(default_factory=list)
    outputs: dict[TextMode | None, dict[str, np.ndarray]] = field(default_factory=dict)


def evaluate_model(
    model: torch.nn.Module,
    loader: Iterable[dict[str, Any]],
    num_classes: int,
    device: torch.device,
    precision: str = "fp32",
    text_modes: Iterable[TextMode | str] | str = (TextMode.TAGS,),
    drop_fraction: float = 0.5,
    tokenizer: Any = None,
    tag_threshold: float = 0.5,
    tuned_threshold: float | None = None,
    classes: list[str] | None = None,
    progress: bool = False,
    twins: dict[int, int] | None = None,
) -> Evaluation:
    """Evaluate ``model`` on ``loader`` in each text mode (one pass, no prefix, if it reads no text).

    ``twins`` (class id -> its near-twin's): also score the near-twin characters on their own.

    ``tuned_threshold``: the tag threshold chosen on validation, applied as is in every mode;
    without it each mode's best threshold is chosen on these very scores (validation only).
    """
    modes: list[TextMode | None] = TextMode.parse_list(text_modes) if reads_text(model) else [None]
    if not modes:
        raise ValueError("text_modes is empty: evaluate at least one of tags, drop, none")
    metrics: dict[str, float] = {}
    outputs = collect_outputs_by_mode(model, loader, device, precision, modes, drop_fraction, tokenizer,
                                      progress=progress)
    for mode, out in outputs.items():
        found = classification_metrics(out["logits"], out["labels"], num_classes)
        found["loss"] = float(out["loss"])
        found.update(near_twin_metrics(out["logits"], out["labels"], twins or {}))
        if "tag_scores" in out:
            found.update(tag_metrics(out["tag_scores"], out["tag_targets"], tag_threshold, tuned_threshold))
        metrics.update({metric_name(k, mode, drop_fraction=drop_fraction): v for k, v in found.items()})
    first = outputs[modes[0]]
    predictions = first["logits"].argmax(axis=1) if len(first["labels"]) else np.zeros(0, np.int64)
    return Evaluation(
        metrics=metrics,
        per_class_accuracy=per_class_accuracy(predictions, first["labels"], num_classes),
        confusion=confusion_matrix(predictions, first["labels"], num_classes),
        mode=modes[0],
        classes=list(classes or []),
        outputs=outputs,
    )


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path | None = None,
    split: str = "test",
    layout: str | None = None,
    batch_size: int = 64,
    text_modes: Iterable[TextMode | str] | str | None = None,
    drop_fraction: float = 0.5,
    tag_threshold: float = 0.5,
    threshold_split: str | None = "val",
    device: str = "auto",
    precision: str = "auto",
    num_workers: int = 0,
    experiment: str | None = None,
    profile: str = "smoke",
    results_dir: str | Path = "results",
    progress: bool = True,
) -> Evaluation:
    """Evaluate a saved model on a split, exactly as it was trained (same tokenizer, size, layout).

    ``data`` / ``layout`` default to the training run's. For tagging models the tuned F1
    threshold is chosen on ``threshold_split`` (validation) and applied unchanged to ``split``.
    Multimodal models are evaluated in every text mode unless ``text_modes`` says otherwise.
    With ``experiment`` a results record is written.
    """
    from torch.utils.data import DataLoader

    from animesion_lib.data import collate
    from animesion_lib.device import select_precision
    from animesion_lib.run import TrainedRun

    start = time.perf_counter()
    run = TrainedRun.load(checkpoint, device=device)
    modes = TextMode.parse_list(list(TextMode) if text_modes is None else text_modes) if run.reads_text else []
    kw = dict(num_classes=len(run.classes), device=run.device, precision=select_precision(run.device, precision),
              drop_fraction=drop_fraction, tokenizer=run.tokenizer, tag_threshold=tag_threshold,
              classes=run.classes, progress=progress)

    def loader(split_name: str) -> DataLoader:
        dataset = run.open_split(split_name, data=data, layout=layout)
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers)

    tuned = None
    if run.tag_vocab is not None and threshold_split and threshold_split != split:
        found = evaluate_model(run.model, loader(threshold_split), text_modes=modes[:1], **kw)
        tuned = found.metrics[metric_name("tag_threshold_tuned", found.mode, drop_fraction=drop_fraction)]
    test_loader = loader(split)
    eval_start = time.perf_counter()
    evaluation = evaluate_model(run.model, test_loader, text_modes=modes, tuned_threshold=tuned, **kw)
    images_per_s = len(test_loader.dataset) * max(len(modes), 1) / (time.perf_counter() - eval_start)
    if experiment:
        settings = {"checkpoint": str(run.checkpoint), "data": str(data or run.config.data),
                    "layout": layout or run.config.layout, "split": split, "text_modes": [m.value for m in modes],
                    "drop_fraction": drop_fraction, "tag_threshold": tag_threshold,
                    "threshold_split": threshold_split, "batch_size": batch_size}
        _write_record(run, evaluation, settings, kw["precision"], experiment, profile, results_dir,
                      wall_time_s=time.perf_counter() - start, images_per_s=images_per_s)
    return evaluation


def _write_record(run: Any, evaluation: Evaluation, settings: dict[str, Any], precision: str, experiment: str,
                  profile: str, results_dir: str | Path, wall_time_s: float, images_per_s: float) -> Path:
    """The results record of one evaluation of a saved run."""
    from dataclasses import asdict

    from animesion_lib.data import data_fingerprint
    from animesion_lib.device import describe_device
    from animesion_lib.results import make_record, write_record

    record = make_record(
        experiment=experiment, profile=profile, kind="evaluate",
        config={**settings, "train_config": asdict(run.config)},
        seed=run.config.seed, metrics=evaluation.metrics, curves=[], wall_time_s=wall_time_s,
        throughput={"eval_images_per_s": images_per_s},
        device={"type": run.device.type, "name": describe_device(run.device), "precision": precision},
        data_fingerprint=data_fingerprint(settings["data"], settings["layout"]),
        per_class_accuracy=[None if np.isnan(a) else float(a) for a in evaluation.per_class_accuracy],
    )
    return write_record(record, results_dir)
