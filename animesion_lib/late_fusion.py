"""Late fusion: an image model's class scores plus a tags-only model's — the baseline beside ViLT.

ViLT fuses early: tag tokens and image patches attend to each other inside one transformer. The
simplest alternative fuses late: a trained image-only model gives log-probabilities per class, a
logistic regression on the bag of tags gives its own, and their weighted sum picks the class (the
tags' weight chosen on the validation split, then applied to the test split unchanged). A ViLT
that does not beat this has gained nothing from early fusion that two separate models do not give.

Both sides see the same tags: with ``max_tags`` the regression is given, for each evaluated image,
the same seeded subset of its tags that the ViLT's evaluation keeps when the text is too long
(:func:`visible_tags`).

    scores = late_fusion("runs/cpu/multimodal-vit-s0")   # {"val_top1": ..., "test_top1": ..., "tags_weight": ...}
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = tuple(np.round(np.linspace(0.0, 3.0, 31), 2))  # the tags' weight, searched on validation


def visible_tags(tags: list[str], row: int, max_tags: int | None) -> list[str]:
    """The tags of the ``row``-th image that an evaluation with room for ``max_tags`` tag tokens
    keeps (one token per tag): the dataset's seeded per-row shuffle, then the first ``max_tags``."""
    if max_tags is None or len(tags) <= max_tags:
        return list(tags)
    shuffled = list(tags)
    random.Random(row).shuffle(shuffled)
    return shuffled[:max_tags]


def _bags(data: Path, layout: str, classes: list[str], splits: tuple[str, ...], max_tags: int | None = None
          ) -> dict[str, tuple[Any, np.ndarray]]:
    """Bag-of-tags matrices (vocabulary: the training split's tags) and class ids, per split; the
    evaluated splits keep only the tags an evaluation with room for ``max_tags`` would see."""
    from sklearn.preprocessing import MultiLabelBinarizer

    from animesion_lib.data.difficulty import _read_split
    from animesion_lib.data.layout import get_layout

    read = {s: _read_split(data, get_layout(layout), s, classes) for s in ("train", *splits)}
    for split, (_, _, tags) in read.items():
        if tags is None:
            raise ValueError(f"{data}: split {split!r} has no tag file; late fusion needs tags")
    for split in splits:
        ids, rels, tags = read[split]
        read[split] = ids, rels, [visible_tags(t, row, max_tags) for row, t in enumerate(tags)]
    binarizer = MultiLabelBinarizer(classes=sorted({t for tags in read["train"][2] for t in tags}))
    with warnings.catch_warnings():  # tags unseen in training are dropped, as a tokenizer maps them to [UNK]
        warnings.simplefilter("ignore", UserWarning)
        return {s: (binarizer.fit_transform(tags).astype(np.float32), np.asarray(ids)) for s, (ids, _, tags) in read.items()}


def tags_log_probabilities(data: Path, layout: str, classes: list[str], splits: tuple[str, ...], seed: int = 0,
                           max_tags: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A logistic regression on the bag of tags (the difficulty card's), fitted on the training
    split: its log-probabilities over all ``classes``, and the class ids, for each of ``splits``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    bags = _bags(data, layout, classes, splits, max_tags)
    model = LogisticRegression(C=1.0, max_iter=300, random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(*bags["train"])
    out = {}
    for split in splits:
        full = np.full((len(bags[split][1]), len(classes)), -1e9, dtype=np.float64)  # a class never seen: impossible
        full[:, model.classes_] = model.predict_log_proba(bags[split][0])
        out[split] = full, bags[split][1]
    return out


def _image_log_probabilities(run: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from torch.utils.data import DataLoader

    from animesion_lib.data import collate
    from animesion_lib.evaluation import collect_outputs

    loader = DataLoader(run.open_split(split, cache=True), batch_size=256, shuffle=False, collate_fn=collate)
    found = collect_outputs(run.model, loader, run.device)
    return torch.log_softmax(torch.from_numpy(found["logits"]).double(), dim=1).numpy(), found["labels"]


def late_fusion(run_dir: str | Path, seed: int = 0, weights: tuple[float, ...] = WEIGHTS,
                max_tags: int | None = None) -> dict[str, float]:
    """Fuse an image-only run (a run folder or checkpoint) with the tags logistic regression, which
    sees at most ``max_tags`` tags of each evaluated image (None: all).

    Returns validation and test top-1 of the fusion, the tags' weight chosen on validation, and
    the test top-1 of each part alone.
    """
    from animesion_lib.run import TrainedRun

    run = TrainedRun.load(run_dir)
    if run.reads_text:
        raise ValueError(f"{run.checkpoint}: late fusion takes an image-only model; this one reads tags")
    splits = ("val", "test")
    tags = tags_log_probabilities(Path(run.config.data), run.config.layout, run.classes, splits, seed, max_tags)
    image = {s: _image_log_probabilities(run, s) for s in splits}
    for s in splits:
        if not np.array_equal(image[s][1], tags[s][1]):
            raise ValueError(f"{run.config.data}: split {s!r} lists its images in another order than the run saw")

    def top1(split: str, w: float) -> float:
        scores, labels = image[split][0] + w * tags[split][0], image[split][1]
        return float((scores.argmax(1) == labels).mean())

    best = max(weights, key=lambda w: (top1("val", w), -w))  # ties: the smaller weight
    return {"val_top1": top1("val", best), "test_top1": top1("test", best), "tags_weight": float(best),
            "test_image_top1": top1("test", 0.0),
            "test_tags_top1": float((tags["test"][0].argmax(1) == tags["test"][1]).mean())}
