"""The curriculum chapter as library code: Dan:mul's question, answered by verdicts.

Dan:mul wants one model that uses the tags when an image has them and still works when it has
none. The arms are runs of the multimodal family (:mod:`.multimodal`), so they share the
pretrained backbone, the settings and the auxiliary losses, and differ only in the masking
schedule (and, in its own arm, the masked-tag objective):

* ``vilt`` — every tag, always (no curriculum; the multimodal chapter's ViLT);
* ``vilt-full`` — every tag hidden, always: image-only training through the same model (the
  image-only reference where it is trained; otherwise the image-only ViT, the same backbone
  without a text segment);
* ``vilt-cosine`` — the curriculum: all tags visible, then a cosine ramp to none;
* ``vilt-cosine-mlm`` — the same curriculum plus the masked-tag loss on the hidden tags.

    table, verdicts = curriculum_summary(records, names, difficulty_baselines(data))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from animesion_lib.experiments.multimodal import arm_of, arm_table, image_baseline, read_arm, text_baselines
from animesion_lib.text_modes import TextMode
from animesion_lib.verdicts import compare

LABELS = {"vilt": "no curriculum", "vilt-full": "all tags hidden", "vilt-cosine": "curriculum",
          "vilt-cosine-mlm": "curriculum + MLM", "vilt-bert": "15% hidden (BERT)"}
MODES = {TextMode.NONE: "no tags", TextMode.TAGS: "all tags"}


def curriculum_summary(records: pd.DataFrame, experiments: Sequence[str], card: pd.Series
                       ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every schedule without tags and with all tags, against its baselines; and the verdicts.

    Without tags a model is an image model: it must beat the thumbnail logistic regression. With
    tags it must beat the tags logistic regression and the image-only ViT of the same size.
    Image-only training is the ``vilt-full`` arm when it was trained, else that ViT
    (:func:`image_only_reference`).
    """
    present = [a for a in LABELS if any(arm_of(e) == a for e in experiments)]
    vit = read_arm(records, experiments, "vit", None, image_baseline(card), label="ViT (image only)")
    arms = {("vit", None): vit}
    for arm in present:
        for mode, said in MODES.items():
            need = image_baseline(card) if mode is TextMode.NONE else text_baselines(card, vit)
            arms[(arm, mode)] = read_arm(records, experiments, arm, mode, need, label=f"{LABELS[arm]}, {said}")
    none, tags = TextMode.NONE, TextMode.TAGS
    image_only = ("vilt-full", none) if "vilt-full" in present else ("vit", None)
    wanted = {
        "curriculum keeps image-only accuracy": (("vilt-cosine", none), image_only),
        "curriculum uses the tags": (("vilt-cosine", tags), ("vilt-cosine", none)),
        "curriculum vs no curriculum, with tags": (("vilt-cosine", tags), ("vilt", tags)),
        "no curriculum, without tags vs image-only training": (("vilt", none), image_only),
        "MLM objective, without tags": (("vilt-cosine-mlm", none), ("vilt-cosine", none)),
        "MLM objective, with tags": (("vilt-cosine-mlm", tags), ("vilt-cosine", tags)),
    }
    verdicts = {key: compare(arms[a], arms[b]) for key, (a, b) in wanted.items() if a in arms and b in arms}
    return arm_table(list(arms.values())), verdicts


def image_only_reference(experiments: Sequence[str]) -> str:
    """What the curriculum's image-only accuracy is held against, in words."""
    if any(arm_of(e) == "vilt-full" for e in experiments):
        return "the same model trained with every tag hidden (the vilt-full arm)"
    return "the image-only ViT (the same backbone without a text segment; the vilt-full arm is not trained at this profile)"


def claim(verdicts: dict[str, Any]) -> str:
    """Dan:mul's claim in one line, from the two verdicts it rests on."""
    keeps, uses = verdicts.get("curriculum keeps image-only accuracy"), verdicts.get("curriculum uses the tags")
    if keeps is None or uses is None:
        return "not tested at this profile"
    if not (keeps.conclusive and uses.conclusive):
        return "inconclusive (see the verdicts below)"
    kept = keeps.status in ("better", "no effect")
    used = uses.status == "better"
    return {(True, True): "supported: the curriculum model keeps image-only accuracy and gains from tags",
            (True, False): "half supported: it keeps image-only accuracy but does not gain from the tags",
            (False, True): "half supported: it gains from the tags but loses image-only accuracy",
            (False, False): "not supported: it neither keeps image-only accuracy nor gains from the tags"}[(kept, used)]
