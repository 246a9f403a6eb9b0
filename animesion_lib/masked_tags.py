"""How well a multimodal model fills in hidden tags: the masked-tag (MLM) head, evaluated.

Training logs the masked-tag loss on whatever the schedule happened to mask; this measures it
under one fixed, reproducible condition: on a split, hide a ``mask_prob`` fraction of each
image's tag tokens with ``[MASK]`` (the ``bert`` schedule's draw, seeded) and ask the model to
name them from the image and the visible tags. Reported: the cross-entropy over the hidden
tokens, and the top-1 / top-5 accuracy of the predicted token — with a *frequency baseline*
(always predict the most common training tag token) so the numbers have a floor to stand on.

    metrics = evaluate_masked_tags("runs/cpu/multimodal-vilt-cosine-mlm-s0", split="test", mask_prob=0.15)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from animesion_lib.models.masking import IGNORE_INDEX, MaskSchedule


@torch.no_grad()
def masked_tag_metrics(model: torch.nn.Module, loader: Any, tokenizer: Any, mask_prob: float = 0.15,
                       seed: int = 0, majority_token: int | None = None) -> dict[str, float]:
    """Masked-tag loss and accuracy of ``model`` over ``loader`` (batches with ``input_ids``).

    ``majority_token``: a token id to score as the frequency baseline (``mlm_majority_acc``).
    """
    model.eval()
    schedule = MaskSchedule("bert", mask_prob=mask_prob)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    loss_sum, correct1, correct5, majority, hidden = 0.0, 0, 0, 0, 0
    for batch in loader:
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        masked, labels = schedule.apply(ids, mask, 1.0, tokenizer.special_token_ids, tokenizer.mask_token_id,
                                        tokenizer.vocab_size, generator)
        out = model(batch["image"].to(device), input_ids=masked, attention_mask=mask)
        if "mlm_logits" not in out:
            raise ValueError("the model has no masked-tag head (mlm_logits); build it with mlm=True")
        where = labels != IGNORE_INDEX
        if not where.any():
            continue
        logits, targets = out["mlm_logits"][where].float(), labels[where]
        loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += int((top5[:, 0] == targets).sum())
        correct5 += int((top5 == targets[:, None]).any(dim=1).sum())
        if majority_token is not None:
            majority += int((targets == majority_token).sum())
        hidden += int(where.sum())
    n = max(hidden, 1)
    metrics = {"mlm_loss": loss_sum / n, "mlm_acc": correct1 / n, "mlm_top5": correct5 / n,
               "mlm_hidden_tokens": float(hidden)}
    if majority_token is not None:
        metrics["mlm_majority_acc"] = majority / n
    return metrics


def most_common_token(dataset: Any, tokenizer: Any) -> int:
    """The most frequent non-special token of a dataset's encoded tags (the frequency baseline)."""
    counts: Counter[int] = Counter()
    special = set(tokenizer.special_token_ids)
    for sample in dataset.samples:
        ids = tokenizer.encode(list(sample.tags or ()), max_length=None)["input_ids"]
        counts.update(i for i in ids if i not in special)
    return counts.most_common(1)[0][0]


def evaluate_masked_tags(checkpoint: str | Path, split: str = "test", mask_prob: float = 0.15, seed: int = 0,
                         batch_size: int = 128, data: str | Path | None = None) -> dict[str, float]:
    """Load a ViLT checkpoint (a run folder or one epoch's), open ``split`` as it was trained, score it."""
    from torch.utils.data import DataLoader

    from animesion_lib.data import collate
    from animesion_lib.run import TrainedRun

    run = TrainedRun.load(checkpoint)
    if run.tokenizer is None:
        raise ValueError(f"{run.checkpoint}: not a multimodal run (no tokenizer saved with it)")
    majority = most_common_token(run.open_split(run.config.train_split, data=data), run.tokenizer)
    loader = DataLoader(run.open_split(split, data=data), batch_size=batch_size, shuffle=False, collate_fn=collate)
    return masked_tag_metrics(run.model, loader, run.tokenizer, mask_prob, seed, majority)
