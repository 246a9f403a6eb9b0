"""The numbers we report, from arrays of scores and labels (numpy or torch).

Character recognition is long-tailed (a few characters have hundreds of images, most have
twenty), so next to top-1 / top-5 we always report the *mean class accuracy*: the average of the
per-class accuracies, which weighs every character equally. Tag prediction is multi-label:
mean average precision (macro over the tags that occur, and micro over all tag decisions), and
F1 at a fixed threshold and at the best threshold of a grid (chosen on validation, then applied
unchanged to test).

The confusion matrix, per-class accuracy and average precision are scikit-learn's. Top-k
accuracy and F1 are counted here: scikit-learn's are 15 to 100 times slower at the sizes of the
paper runs (``python benchmarks/metrics.py``); a randomized test checks them against it. Ours
besides: which classes or tags count (those with at least one example), and what an empty input
gives (NaN).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
from sklearn import metrics as skm

ArrayLike = Any  # numpy array or torch tensor


def as_numpy(x: ArrayLike) -> np.ndarray:
    """A numpy array of ``x`` (a torch tensor is detached and copied to the host; bf16 -> float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


# ------------------------------------------------------------------------ character metrics


def topk_accuracy(scores: ArrayLike, labels: ArrayLike, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """Fraction of samples whose true class is among the ``k`` highest scores, for each k.

    Ours, not ``sklearn.metrics.top_k_accuracy_score``, which sorts every row: on 46,000 images x
    3,263 classes (DAF:re validation) it takes 30 s per k, this 0.3 s (``benchmarks/metrics.py``).
    Both agree (a randomized test checks it) except on ties, which here count for the true class.
    """
    scores, labels = as_numpy(scores), as_numpy(labels).astype(np.int64)
    if len(labels) == 0:
        return {k: float("nan") for k in ks}
    # rank of the true class = how many classes score strictly higher than it
    true_scores = scores[np.arange(len(labels)), labels]
    rank = (scores > true_scores[:, None]).sum(axis=1)
    return {k: float((rank < k).mean()) for k in ks}


def confusion_matrix(predictions: ArrayLike, labels: ArrayLike, num_classes: int) -> np.ndarray:
    """``[true class, predicted class]`` counts, int64 ``[num_classes, num_classes]``."""
    if len(labels) == 0:  # scikit-learn refuses empty input
        return np.zeros((num_classes, num_classes), np.int64)
    return skm.confusion_matrix(as_numpy(labels), as_numpy(predictions), labels=np.arange(num_classes)).astype(np.int64)


def per_class_accuracy(predictions: ArrayLike, labels: ArrayLike, num_classes: int) -> np.ndarray:
    """Accuracy of each class (its recall); NaN for classes with no samples."""
    if len(labels) == 0:
        return np.full(num_classes, np.nan)
    return skm.recall_score(as_numpy(labels), as_numpy(predictions), labels=np.arange(num_classes),
                            average=None, zero_division=np.nan)


def mean_class_accuracy(predictions: ArrayLike, labels: ArrayLike, num_classes: int) -> float:
    """Mean of the per-class accuracies over the classes that have samples (balanced accuracy)."""
    acc = per_class_accuracy(predictions, labels, num_classes)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def classification_metrics(logits: ArrayLike, labels: ArrayLike, num_classes: int) -> dict[str, float]:
    """``top1``, ``top5``, ``mean_class_acc`` of a batch of scores (logits or probabilities)."""
    logits = as_numpy(logits)
    top = topk_accuracy(logits, labels, ks=(1, 5))
    predictions = logits.argmax(axis=1) if len(logits) else np.zeros(0, np.int64)
    return {"top1": top[1], "top5": top[5], "mean_class_acc": mean_class_accuracy(predictions, labels, num_classes)}


# ------------------------------------------------------------------------------ tag metrics


def _tag_arrays(scores: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores as float64, targets as 0/1, and which tags occur at least once."""
    scores, targets = as_numpy(scores).astype(np.float64), (as_numpy(targets) > 0.5).astype(np.int64)
    return scores, targets, targets.sum(axis=0) > 0


def average_precision_per_column(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Average precision of every column at once, exactly as ``sklearn.metrics.average_precision_score``
    computes it for one (the step-wise sum over distinct thresholds, ties counted as one threshold).

    Vectorised because scikit-learn's per-tag loop dominated every evaluation of the book's
    models: at 603 images x 382 tags (a validation pass, each epoch) it takes 0.04 s where
    scikit-learn takes 0.48 s; at 20,000 x 1,000 the sort dominates and the two are alike
    (``benchmarks/metrics.py``). Every column must have a positive. Equal to scikit-learn within
    1e-12 (a randomized test with ties checks it).
    """
    order = np.argsort(-scores, axis=0, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=0)
    hits = np.take_along_axis(targets, order, axis=0).astype(np.float64)
    true_pos = np.cumsum(hits, axis=0)
    n = len(scores)
    # every item takes the precision at the end of its tie group (one threshold for the whole group)
    is_end = np.ones_like(ranked, dtype=bool)
    is_end[:-1] = ranked[:-1] != ranked[1:]
    ends = np.where(is_end, np.arange(n)[:, None], n)
    group_end = np.minimum.accumulate(ends[::-1], axis=0)[::-1]
    precision = np.take_along_axis(true_pos, group_end, axis=0) / (group_end + 1)
    return (hits * precision).sum(axis=0) / true_pos[-1]


def tag_average_precision(scores: ArrayLike, targets: ArrayLike) -> dict[str, float]:
    """mAP: ``map_macro`` (mean over tags that occur at least once) and ``map_micro``."""
    scores, targets, present = _tag_arrays(scores, targets)
    if not present.any():  # AP is undefined for a tag with no positive example
        return {"map_macro": float("nan"), "map_micro": float("nan")}
    macro = average_precision_per_column(scores[:, present], targets[:, present]).mean()
    micro = average_precision_per_column(scores.reshape(-1, 1), targets.reshape(-1, 1))[0]
    return {"map_macro": float(macro), "map_micro": float(micro)}


def f1_at_threshold(scores: ArrayLike, targets: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """Micro precision / recall / F1 of ``scores >= threshold``, and macro F1 over present tags.

    Counted here rather than with ``sklearn.metrics.f1_score``, which takes 8 s per call on
    20,000 images x 1,000 tags where this takes 0.5 s (``benchmarks/metrics.py``), and
    :func:`best_threshold` calls it for every threshold of its grid. A randomized test checks it
    against scikit-learn. Nothing predicted (or nothing to find) counts as precision (recall) 0,
    as ``zero_division=0``.
    """
    scores, targets, present = _tag_arrays(scores, targets)
    targets, predicted = targets.astype(bool), scores >= threshold
    tp = (predicted & targets).sum(axis=0).astype(np.float64)
    fp = (predicted & ~targets).sum(axis=0).astype(np.float64)
    fn = (~predicted & targets).sum(axis=0).astype(np.float64)
    precision = tp.sum() / max(tp.sum() + fp.sum(), 1.0)
    recall = tp.sum() / max(tp.sum() + fn.sum(), 1.0)
    f1_micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1.0)
    per_tag = 2 * tp / np.maximum(2 * tp + fp + fn, 1.0)
    f1_macro = float(per_tag[present].mean()) if present.any() else float("nan")
    return {"precision": float(precision), "recall": float(recall), "f1_micro": float(f1_micro), "f1_macro": f1_macro}


def best_threshold(
    scores: ArrayLike, targets: ArrayLike, thresholds: Iterable[float] | None = None
) -> tuple[float, float]:
    """The threshold (of a grid, default 0.05 … 0.95) with the highest micro F1, and that F1.

    Ties: the lowest threshold."""
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


def near_twin_metrics(scores: ArrayLike, labels: ArrayLike, twins: dict[int, int]) -> dict[str, float]:
    """How well the near-twin characters are told apart (``twins``: class id -> its sister's id).

    ``twin_top1``: accuracy on the images of characters that have a near-twin; ``twin_confusion``:
    the share of those images given to the sister — the error a model makes when it misses the
    one detail that tells the two apart. Empty when no image belongs to a twin.
    """
    labels = as_numpy(labels).astype(np.int64)
    sisters = np.array([twins.get(int(y), -1) for y in labels])
    chosen = sisters >= 0
    if not chosen.any():
        return {}
    predicted = as_numpy(scores).argmax(axis=1)[chosen]
    return {"twin_top1": float((predicted == labels[chosen]).mean()),
            "twin_confusion": float((predicted == sisters[chosen]).mean())}
