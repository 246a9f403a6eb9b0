"""Evaluation: the metrics, and runs that compute them for a model or a checkpoint.

Character recognition is long-tailed (a few characters have hundreds of images, most have
twenty), so next to top-1 / top-5 we always report the *mean class accuracy* — the average of the
per-class accuracies — which weighs every character equally. Tag prediction is multi-label:
mean average precision (macro over tags, and micro over all tag decisions), and F1 at a fixed
threshold and at the best threshold (chosen on validation, then applied unchanged to test).

Multimodal models (image + tags in, character out) are evaluated three ways: with the tags, with
no tags at all (image only — the case curriculum training is meant to make work), and with a
fraction of the tags dropped at random.

The metric functions take plain arrays (numpy or torch) and are checked in tests against
hand-computed examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

ArrayLike = Any  # numpy array or torch tensor

TEXT_MODES = ("tags", "none", "drop")


def _np(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


# ------------------------------------------------------------------------ character metrics


def topk_accuracy(scores: ArrayLike, labels: ArrayLike, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """Fraction of samples whose true class is among the ``k`` highest scores, for each k.

    k larger than the number of classes counts every sample as correct (as it must).
    """
    scores, labels = _np(scores), _np(labels).astype(np.int64)
    if len(labels) == 0:
        return {k: float("nan") for k in ks}
    # rank of the true class = how many classes score strictly higher than it
    true_scores = scores[np.arange(len(labels)), labels]
    rank = (scores > true_scores[:, None]).sum(axis=1)
    return {k: float((rank < k).mean()) for k in ks}


def confusion_matrix(predictions: ArrayLike, labels: ArrayLike, num_classes: int) -> np.ndarray:
    """``[true class, predicted class]`` counts, int64 ``[num_classes, num_classes]``."""
    predictions, labels = _np(predictions).astype(np.int64), _np(labels).astype(np.int64)
    flat = labels * num_classes + predictions
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(predictions: ArrayLike, labels: ArrayLike, num_classes: int) -> np.ndarray:
    """Accuracy of each class (recall of that class); NaN for classes with no samples."""
    cm = confusion_matrix(predictions, labels, num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(predictions: ArrayLike, labels: ArrayLike, num_classes: int) -> float:
    """Mean of the per-class accuracies over the classes that have samples."""
    acc = per_class_accuracy(predictions, labels, num_classes)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def classification_metrics(logits: ArrayLike, labels: ArrayLike, num_classes: int) -> dict[str, float]:
    """top1, top5, mean_class_acc for a batch of scores (logits or probabilities)."""
    logits = _np(logits)
    top = topk_accuracy(logits, labels, ks=(1, 5))
    predictions = logits.argmax(axis=1)
    return {"top1": top[1], "top5": top[5], "mean_class_acc": mean_class_accuracy(predictions, labels, num_classes)}


# ------------------------------------------------------------------------------ tag metrics


def tag_average_precision(scores: ArrayLike, targets: ArrayLike) -> dict[str, float]:
    """mAP: ``map_macro`` (mean over tags that occur at least once) and ``map_micro``."""
    from sklearn.metrics import average_precision_score

    scores, targets = _np(scores).astype(np.float64), (_np(targets) > 0.5).astype(np.int64)
    present = targets.sum(axis=0) > 0  # AP is undefined for a tag with no positive example
    if not present.any():
        return {"map_macro": float("nan"), "map_micro": float("nan")}
    macro = average_precision_score(targets[:, present], scores[:, present], average="macro")
    micro = average_precision_score(targets.ravel(), scores.ravel())
    return {"map_macro": float(macro), "map_micro": float(micro)}


def f1_at_threshold(scores: ArrayLike, targets: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """Micro precision / recall / F1 of ``scores >= threshold``, and macro F1 over present tags."""
    scores, targets = _np(scores), _np(targets) > 0.5
    predicted = scores >= threshold
    tp = (predicted & targets).sum(axis=0).astype(np.float64)
    fp = (predicted & ~targets).sum(axis=0).astype(np.float64)
    fn = (~predicted & targets).sum(axis=0).astype(np.float64)
    precision = tp.sum() / max(tp.sum() + fp.sum(), 1.0)
    recall = tp.sum() / max(tp.sum() + fn.sum(), 1.0)
    f1_micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1.0)
    present = targets.sum(axis=0) > 0
    per_tag = 2 * tp / np.maximum(2 * tp + fp + fn, 1.0)
    f1_macro = float(per_tag[present].mean()) if present.any() else float("nan")
    return {"precision": float(precision), "recall": float(recall), "f1_micro": float(f1_micro), "f1_macro": f1_macro}


def best_threshold(
    scores: ArrayLike, targets: ArrayLike, thresholds: Iterable[float] | None = None
) -> tuple[float, float]:
    """The threshold (from a grid) with the highest micro F1, and that F1. Ties: the lowest threshold."""
    grid = np.round(np.arange(0.05, 0.951, 0.05), 4) if thresholds is None else np.asarray(list(thresholds))
    f1s = [f1_at_threshold(scores, targets, t)["f1_micro"] for t in grid]
    best = int(np.argmax(f1s))
    return float(grid[best]), float(f1s[best])


def tag_metrics(
    scores: ArrayLike, targets: ArrayLike, threshold: float = 0.5, tuned_threshold: float | None = None
) -> dict[str, float]:
    """Every tag number we report. ``tuned_threshold`` (chosen on validation) is applied as is;
    without it the best threshold is chosen on these very scores (fine on validation only)."""
    out = {f"tag_{k}": v for k, v in tag_average_precision(scores, targets).items()}
    fixed = f1_at_threshold(scores, targets, threshold)
    out.update({"tag_f1": fixed["f1_micro"], "tag_f1_macro": fixed["f1_macro"],
                "tag_precision": fixed["precision"], "tag_recall": fixed["recall"]})
    if tuned_threshold is None:
        tuned_threshold, _ = best_threshold(scores, targets)
    out["tag_threshold_tuned"] = float(tuned_threshold)
    out["tag_f1_tuned"] = f1_at_threshold(scores, targets, tuned_threshold)["f1_micro"]
    return out


# -------------------------------------------------------------------------- evaluation runs


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


@torch.no_grad()
def collect_outputs(
    model: torch.nn.Module,
    loader: Iterable[dict[str, Any]],
    device: torch.device,
    precision: str = "fp32",
    text_mode: str = "tags",
    drop_fraction: float = 0.5,
    tokenizer: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Run ``model`` over ``loader``; return logits, labels, tag probabilities/targets and the mean loss.

    ``text_mode`` (multimodal models only): ``"tags"`` feeds the tags, ``"none"`` feeds no text
    (image only), ``"drop"`` feeds the tags with ``drop_fraction`` of them removed.
    """
    from tqdm.auto import tqdm

    from animesion_lib.device import autocast

    if text_mode not in TEXT_MODES:
        raise ValueError(f"text_mode must be one of {TEXT_MODES}, not {text_mode!r}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)  # the same tags are dropped on every call
    logits, labels, tag_scores, tag_targets = [], [], [], []
    loss_sum, seen = 0.0, 0
    for batch in tqdm(loader, desc=f"eval ({text_mode})", leave=False, disable=not progress):
        batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        input_ids, attention_mask = batch.get("input_ids"), batch.get("attention_mask")
        if input_ids is not None and text_mode == "none":
            input_ids = attention_mask = None
        elif input_ids is not None and text_mode == "drop":
            input_ids, attention_mask = drop_tokens(
                input_ids, attention_mask, drop_fraction, set(tokenizer.special_token_ids) if tokenizer else set(),
                tokenizer.pad_token_id if tokenizer else 0, generator,
            )
        with autocast(device, precision):
            out = model(batch["image"], input_ids=input_ids, attention_mask=attention_mask)
            loss, _ = model.loss(out, batch) if hasattr(model, "loss") else (
                torch.nn.functional.cross_entropy(out["logits"], batch["label"]), {})
        n = batch["label"].shape[0]
        loss_sum += float(loss) * n
        seen += n
        logits.append(out["logits"].float().cpu())
        labels.append(batch["label"].cpu())
        if "tag_logits" in out and "tag_targets" in batch:
            tag_scores.append(torch.sigmoid(out["tag_logits"].float()).cpu())
            tag_targets.append(batch["tag_targets"].float().cpu())
    result = {
        "logits": torch.cat(logits).numpy() if logits else np.zeros((0, 0), np.float32),
        "labels": torch.cat(labels).numpy() if labels else np.zeros((0,), np.int64),
        "loss": np.float64(loss_sum / max(seen, 1)),
    }
    if tag_scores:
        result["tag_scores"] = torch.cat(tag_scores).numpy()
        result["tag_targets"] = torch.cat(tag_targets).numpy()
    return result


@dataclass
class Evaluation:
    """What an evaluation run found. ``metrics`` is flat name -> number (what records store);
    the first text mode's numbers have no prefix, the others are prefixed ``tags.`` /
    ``notags.`` / ``drop50.`` (drop fraction in percent)."""

    metrics: dict[str, float]
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    classes: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def mode_prefix(text_mode: str, drop_fraction: float) -> str:
    """The metric-name prefix of a text mode that is not the first one evaluated."""
    return {"tags": "tags.", "none": "notags.", "drop": f"drop{round(drop_fraction * 100)}."}[text_mode]


def evaluate_model(
    model: torch.nn.Module,
    loader: Iterable[dict[str, Any]],
    num_classes: int,
    device: torch.device,
    precision: str = "fp32",
    text_modes: Iterable[str] = ("tags",),
    drop_fraction: float = 0.5,
    tokenizer: Any = None,
    tag_threshold: float = 0.5,
    tuned_threshold: float | None = None,
    classes: list[str] | None = None,
    progress: bool = False,
) -> Evaluation:
    """Evaluate ``model`` on ``loader`` for each text mode; see :class:`Evaluation`."""
    metrics: dict[str, float] = {}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    first = None
    for mode in text_modes:
        out = collect_outputs(model, loader, device, precision, mode, drop_fraction, tokenizer, progress=progress)
        outputs[mode] = out
        prefix = mode_prefix(mode, drop_fraction) if first is not None else ""
        first = first or mode
        found = classification_metrics(out["logits"], out["labels"], num_classes)
        found["loss"] = float(out["loss"])
        if "tag_scores" in out:
            found.update(tag_metrics(out["tag_scores"], out["tag_targets"], tag_threshold, tuned_threshold))
        metrics.update({prefix + k: v for k, v in found.items()})
    main = outputs[first]
    predictions = main["logits"].argmax(axis=1) if len(main["labels"]) else np.zeros(0, np.int64)
    return Evaluation(
        metrics=metrics,
        per_class_accuracy=per_class_accuracy(predictions, main["labels"], num_classes),
        confusion=confusion_matrix(predictions, main["labels"], num_classes),
        classes=list(classes or []),
        outputs=outputs,
    )


# ------------------------------------------------------------------------- datasets and runs


def open_split(
    data: str | Path,
    split: str,
    layout: str = "dafre_faces",
    image_size: int = 64,
    transform: str = "animesion",
    train: bool = False,
    tokenizer: Any = None,
    tag_vocab: Any = None,
    max_text_len: int = 32,
    cache: bool = False,
    on_error: str = "raise",
    progress: bool = True,
):
    """The dataset of one split, reading tags only when a tokenizer or tag vocabulary needs them.

    Training and evaluation both open their splits here, so they always agree on the inputs.
    """
    from animesion_lib.data import CharacterDataset

    return CharacterDataset(
        data, split=split, layout=layout, image_size=image_size, transform=transform, train=train,
        with_tags=tokenizer is not None or tag_vocab is not None, tokenizer=tokenizer, tag_vocab=tag_vocab,
        max_text_len=max_text_len, cache=cache, on_error=on_error, progress=progress,
    )


def load_text_files(checkpoint: str | Path) -> tuple[Any, Any]:
    """The tokenizer and tag vocabulary saved beside a checkpoint (None where the run had none)."""
    from animesion_lib.checkpoint import load_meta, resolve_checkpoint
    from animesion_lib.data.tokenizers import TagVocabulary, load_tokenizer

    ckpt = resolve_checkpoint(checkpoint)
    files = load_meta(ckpt).get("files", [])
    tokenizer = load_tokenizer(ckpt / "tokenizer.json") if "tokenizer.json" in files else None
    tag_vocab = TagVocabulary.load(ckpt / "tag_vocab.json") if "tag_vocab.json" in files else None
    return tokenizer, tag_vocab


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path | None = None,
    split: str = "test",
    layout: str | None = None,
    batch_size: int = 64,
    text_modes: Iterable[str] | None = None,
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
    Multimodal models are evaluated with tags, without tags and with ``drop_fraction`` dropped,
    unless ``text_modes`` says otherwise. With ``experiment`` a results record is written.
    """
    import time

    from torch.utils.data import DataLoader

    from animesion_lib.checkpoint import load_model, resolve_checkpoint
    from animesion_lib.data import collate, data_fingerprint
    from animesion_lib.device import describe_device, select_device, select_precision

    start = time.perf_counter()
    ckpt = resolve_checkpoint(checkpoint)
    dev = select_device(device)
    prec = select_precision(dev, precision)
    model, meta = load_model(ckpt, device=dev)
    run = meta.get("train_config", {})
    data = data if data is not None else run.get("data")
    layout = layout or run.get("layout", "dafre_faces")
    tokenizer, tag_vocab = load_text_files(ckpt)
    multimodal = bool((meta.get("model_config") or {}).get("vocab_size"))
    modes = list(text_modes) if text_modes is not None else (list(TEXT_MODES) if multimodal else ["tags"])

    def loader(split_name: str):
        ds = open_split(data, split_name, layout=layout, image_size=run.get("image_size", 64),
                        transform=run.get("transform", "animesion"), train=False, tokenizer=tokenizer,
                        tag_vocab=tag_vocab, max_text_len=run.get("max_text_len", 32))
        if ds.classes != meta.get("classes", ds.classes):
            from animesion_lib.errors import CheckpointError

            raise CheckpointError(f"{ckpt}: the model was trained on other classes than {data} lists")
        return DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers)

    kw = dict(num_classes=len(meta["classes"]), device=dev, precision=prec, drop_fraction=drop_fraction,
              tokenizer=tokenizer, tag_threshold=tag_threshold, classes=meta["classes"], progress=progress)
    tuned = None
    if tag_vocab is not None and threshold_split and threshold_split != split:
        tuned = evaluate_model(model, loader(threshold_split), text_modes=modes[:1], **kw).metrics.get(
            "tag_threshold_tuned")
    test_loader = loader(split)
    eval_start = time.perf_counter()
    evaluation = evaluate_model(model, test_loader, text_modes=modes, tuned_threshold=tuned, **kw)
    eval_seconds = time.perf_counter() - eval_start

    if experiment:
        from animesion_lib.results import make_record, write_record

        config = {"checkpoint": str(ckpt), "data": str(data), "layout": layout, "split": split,
                  "text_modes": modes, "drop_fraction": drop_fraction, "tag_threshold": tag_threshold,
                  "threshold_split": threshold_split, "batch_size": batch_size, "train_config": run}
        record = make_record(
            experiment=experiment, profile=profile, kind="evaluate", config=config, seed=int(run.get("seed", 0)),
            metrics=evaluation.metrics, curves=[], wall_time_s=time.perf_counter() - start,
            throughput={"eval_images_per_s": len(test_loader.dataset) * len(modes) / eval_seconds},
            device={"type": dev.type, "name": describe_device(dev), "precision": prec},
            data_fingerprint=data_fingerprint(data, layout),
            per_class_accuracy=[None if np.isnan(a) else float(a) for a in evaluation.per_class_accuracy],
        )
        write_record(record, results_dir)
    return evaluation


# ------------------------------------------------------------------------------- prediction

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files named, or found (recursively, sorted) in the folders named; a missing path raises."""
    from animesion_lib.errors import DatasetError

    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise DatasetError("no such image file or folder", path=path)
    return found


def _load_image(path: Path):
    from PIL import Image

    from animesion_lib.errors import DatasetError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # forces the full decode: a truncated file fails here
    except FileNotFoundError:
        raise DatasetError("image file not found", path=path) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot decode image ({type(err).__name__}: {err})", path=path) from None


@torch.no_grad()
def predict_images(
    checkpoint: str | Path,
    paths: Iterable[str | Path],
    top_k: int = 5,
    tags: list[str] | None = None,
    tag_threshold: float | None = None,
    on_error: str = "raise",
    device: str = "auto",
    batch_size: int = 32,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Top-k characters (and tags, for tagging models) for each image; returns (predictions, skipped).

    Each prediction: ``{"image", "top_k": [{"class_id", "class_name", "probability"}...],
    "tags": [{"tag", "probability"}...]}`` (tags above ``tag_threshold``; default: the tuned
    validation threshold saved with the checkpoint, else 0.5). ``tags`` are fed to multimodal
    models as text input (none: image only). A missing or undecodable image raises DatasetError
    naming it, or with ``on_error="skip"`` is listed in ``skipped`` as ``{"image", "error"}``.
    """
    from animesion_lib.checkpoint import load_model, resolve_checkpoint
    from animesion_lib.data import build_transforms
    from animesion_lib.device import autocast, select_device, select_precision
    from animesion_lib.errors import DatasetError

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    ckpt = resolve_checkpoint(checkpoint)
    dev = select_device(device)
    prec = select_precision(dev, "auto")
    model, meta = load_model(ckpt, device=dev)
    run = meta.get("train_config", {})
    classes = meta["classes"]
    tokenizer, tag_vocab = load_text_files(ckpt)
    if tag_threshold is None:
        tag_threshold = float((meta.get("metrics") or {}).get("val_tag_threshold_tuned", 0.5))
    transform = build_transforms(run.get("transform", "animesion"), run.get("image_size", 64), train=False)
    text = None
    if tokenizer is not None and tags:
        encoded = tokenizer.encode(list(tags), max_length=run.get("max_text_len", 32))
        text = {k: torch.tensor([encoded[k]], device=dev) for k in ("input_ids", "attention_mask")}

    predictions, skipped, pending = [], [], []

    def flush() -> None:
        images = torch.stack([t for _, t in pending]).to(dev)
        ids = mask = None
        if text is not None:
            ids, mask = (text[k].expand(len(pending), -1) for k in ("input_ids", "attention_mask"))
        with autocast(dev, prec):
            out = model(images, input_ids=ids, attention_mask=mask)
        probs = out["logits"].float().softmax(dim=1).cpu()
        tag_probs = torch.sigmoid(out["tag_logits"].float()).cpu() if "tag_logits" in out else None
        k = min(top_k, probs.shape[1])
        for i, (path, _) in enumerate(pending):
            p, idx = probs[i].topk(k)
            item = {"image": str(path), "top_k": [
                {"class_id": int(c), "class_name": classes[int(c)], "probability": float(q)} for q, c in zip(p, idx)]}
            if tag_probs is not None and tag_vocab is not None:
                order = tag_probs[i].argsort(descending=True)
                item["tags"] = [{"tag": tag_vocab.tags[int(j)], "probability": float(tag_probs[i, j])}
                                for j in order if tag_probs[i, j] >= tag_threshold]
            predictions.append(item)
        pending.clear()

    for path in find_images(paths):
        try:
            pending.append((path, transform(_load_image(path))))
        except DatasetError as err:
            if on_error == "raise":
                raise
            skipped.append({"image": str(path), "error": str(err)})
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return predictions, skipped


def annotate_image(source: str | Path, destination: str | Path, lines: list[str]) -> Path:
    """Save a copy of ``source`` with ``lines`` written on a dark band at its top (PIL, default font)."""
    from PIL import Image, ImageDraw, ImageFont

    image = _load_image(Path(source))
    font = ImageFont.load_default()
    line_height = 12
    band = line_height * len(lines) + 6
    # as wide as the longest line: a small face crop must not cut a character's name off
    text_width = max((int(font.getlength(line)) + 6 for line in lines), default=0)
    canvas = Image.new("RGB", (max(image.width, text_width), image.height + band), (0, 0, 0))
    canvas.paste(image, (0, band))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((3, 3 + i * line_height), line, fill=(255, 255, 255), font=font)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(destination)
    return destination
