"""The tag-prediction chapter as library code: tag mAP against its floor, ASL vs BCE, the MLM head.

Every model of the multimodal family (:mod:`.multimodal`) carries a tag head, so this chapter
reads the image-only ViT (binary cross-entropy), its twin trained with the asymmetric loss, and
the curriculum ViLT given no tags or half of them. Two reference points frame tag mAP on the
test split: the *tag-prevalence prior* (every image gets each tag's training frequency: the floor
a tagger must beat) and the *class oracle* (each tag's frequency among the true character's
training images: what knowing the character alone gives, a ceiling for tags that follow the
character).

    floor = tag_references("data/synthetic-cpu")       # {"prior.tag_map_macro": ..., ...}
    table, verdicts = tag_summary(records, names, floor["prior.tag_map_macro"])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from animesion_lib.experiments.multimodal import MultimodalPlan, arm_of, arm_records, arm_table, read_arm
from animesion_lib.text_modes import TextMode
from animesion_lib.verdicts import Arm, compare, plateaued

PRIOR = "tag-prevalence prior"


def tag_references(data: str | Path, split: str = "test", layout: str = "dafre_faces") -> dict[str, float]:
    """Tag mAP (macro, micro) on ``split`` of the prevalence prior and of the class oracle."""
    from sklearn.preprocessing import MultiLabelBinarizer

    from animesion_lib.data.difficulty import _read_split
    from animesion_lib.data.layout import class_file, get_layout, read_classes
    from animesion_lib.metrics import tag_average_precision

    root, lay = Path(data), get_layout(layout)
    classes = read_classes(class_file(root, lay))
    (y_train, _, train), (y_eval, _, evaluated) = (_read_split(root, lay, s, classes) for s in ("train", split))
    if train is None or evaluated is None:
        raise ValueError(f"{root}: the train and {split} splits need tag files")
    binarizer = MultiLabelBinarizer(classes=sorted({t for tags in train for t in tags}))
    with warnings.catch_warnings():  # tags never seen in training cannot be predicted by either reference
        warnings.simplefilter("ignore", UserWarning)
        x_train, x_eval = binarizer.fit_transform(train), binarizer.transform(evaluated)
    prior = x_train.mean(axis=0)
    y_train = np.asarray(y_train)
    by_class = np.stack([x_train[y_train == c].mean(axis=0) if (y_train == c).any() else prior
                         for c in range(len(classes))])
    out = {}
    for name, scores in (("prior", np.tile(prior, (len(x_eval), 1))), ("class_oracle", by_class[np.asarray(y_eval)])):
        out.update({f"{name}.tag_{k}": v for k, v in tag_average_precision(scores, x_eval).items()})
    return out


def tag_summary(records: pd.DataFrame, experiments: Sequence[str], prior_map: float,
                metric: str = "tag_map_macro") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Macro tag mAP of each tagger against the prior; the verdict ASL vs BCE."""
    floor = (PRIOR, prior_map)
    arms = [read_arm(records, experiments, "vit", None, floor, metric, label="ViT, BCE (image only)")]
    if any(arm_of(e) == "vit-asl" for e in experiments):
        arms.append(read_arm(records, experiments, "vit-asl", None, floor, metric, label="ViT, ASL (image only)"))
    for arm in ("vilt-cosine", "vilt-cosine-mlm"):
        if any(arm_of(e) == arm for e in experiments):
            for mode, said in ((TextMode.NONE, "no tags"), (TextMode.DROP, "half the tags given")):
                arms.append(read_arm(records, experiments, arm, mode, floor, metric, label=f"{arm}, {said}"))
    verdicts = {}
    if len(arms) > 1 and arms[1].name.startswith("ViT, ASL"):
        verdicts["asl vs bce"] = compare(arms[1], arms[0])
    return arm_table(arms), verdicts


def run_masked_tags(plan: MultimodalPlan, experiments: Sequence[str], arm: str = "vilt-cosine-mlm",
                    mask_prob: float = 0.15) -> list[str]:
    """Score the masked-tag head of each seed of ``arm`` on the test split (a fixed, seeded mask),
    written as records ``multimodal-<arm>-s<seed>-masked-tags``; their names."""
    import time

    from animesion_lib.masked_tags import evaluate_masked_tags
    from animesion_lib.results import make_record, write_record

    names = []
    for experiment in [e for e in experiments if arm_of(e) == arm]:
        seed = int(experiment.rsplit("-s", 1)[1])
        run_dir = plan.config(arm, seed, None).out_dir
        start = time.perf_counter()
        metrics = evaluate_masked_tags(run_dir, split="test", mask_prob=mask_prob, seed=seed)
        name = f"{experiment}-masked-tags"
        write_record(make_record(experiment=name, profile=plan.profile, kind="evaluate", seed=seed,
                                 config={"checkpoint": run_dir, "split": "test", "mask_prob": mask_prob},
                                 metrics=metrics, wall_time_s=time.perf_counter() - start), plan.results_dir)
        names.append(name)
    return names


def masked_tag_verdict(records: pd.DataFrame, experiments: Sequence[str], masked: Sequence[str],
                       arm: str = "vilt-cosine-mlm") -> tuple[pd.DataFrame, Any]:
    """The masked-tag head's accuracy per seed against always naming the most frequent tag."""
    found = records[records.experiment.isin(masked)]
    if found.empty:
        raise KeyError("no masked-tag records: run_masked_tags first")
    runs = arm_records(records, experiments, arm)
    flat = all(plateaued([row.get("val_tags.top1") for row in curve]) for curve in runs.curves)
    seeds = found["seed"].astype(int)
    head = Arm("masked-tag head", dict(zip(seeds, found["metrics.mlm_acc"])), plateau=flat)
    majority = Arm("most frequent tag", dict(zip(seeds, found["metrics.mlm_majority_acc"])), plateau=True)
    return arm_table([head, majority]), compare(head, majority)
