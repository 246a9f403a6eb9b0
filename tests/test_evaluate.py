"""Metrics checked against examples small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animesion_lib.evaluate import (
    best_threshold,
    classification_metrics,
    confusion_matrix,
    drop_tokens,
    f1_at_threshold,
    mean_class_accuracy,
    per_class_accuracy,
    tag_average_precision,
    tag_metrics,
    topk_accuracy,
)


def test_topk_accuracy_by_hand():
    scores = np.array([
        [0.1, 0.7, 0.2],  # true 1: rank 0
        [0.5, 0.3, 0.2],  # true 2: rank 2
        [0.2, 0.5, 0.3],  # true 2: rank 1
        [0.9, 0.05, 0.05],  # true 0: rank 0
    ])
    labels = np.array([1, 2, 2, 0])
    acc = topk_accuracy(scores, labels, ks=(1, 2, 3, 5))
    assert acc[1] == pytest.approx(0.5)
    assert acc[2] == pytest.approx(0.75)
    assert acc[3] == pytest.approx(1.0)
    assert acc[5] == pytest.approx(1.0)  # k beyond the class count: everything is in the top k
    # torch tensors in, same answer
    assert topk_accuracy(torch.tensor(scores), torch.tensor(labels), ks=(1,))[1] == pytest.approx(0.5)


def test_mean_class_accuracy_weighs_classes_equally():
    # class 0: 8 samples, all right; class 1: 2 samples, none right; class 2 absent
    labels = np.array([0] * 8 + [1] * 2)
    preds = np.array([0] * 8 + [0] * 2)
    assert (preds == labels).mean() == pytest.approx(0.8)
    per_class = per_class_accuracy(preds, labels, 3)
    assert per_class[0] == 1.0 and per_class[1] == 0.0 and np.isnan(per_class[2])
    assert mean_class_accuracy(preds, labels, 3) == pytest.approx(0.5)
    cm = confusion_matrix(preds, labels, 3)
    assert cm.tolist() == [[8, 0, 0], [2, 0, 0], [0, 0, 0]]


def test_classification_metrics_keys():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    m = classification_metrics(logits, torch.tensor([0, 1, 1]), 2)
    assert m["top1"] == pytest.approx(2 / 3)
    assert m["mean_class_acc"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["top5"] == 1.0


def test_average_precision_by_hand():
    # tag 0: scores .9(+) .8(-) .7(+) -> AP = (1/1 + 2/3)/2 = 5/6
    # tag 1: scores .1(+) .2(-) .3(-) -> the positive is ranked last: AP = 1/3
    # tag 2: never positive -> left out of the macro mean
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.5], [0.7, 0.3, 0.5]])
    targets = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]])
    ap = tag_average_precision(scores, targets)
    assert ap["map_macro"] == pytest.approx((5 / 6 + 1 / 3) / 2)
    # micro: all 9 decisions ranked together; positives at .9, .7, .1
    # ranking .9+ .8- .7+ .5- .5- .5- .3- .2- .1+ -> precisions at hits 1/1, 2/3, 3/9
    assert ap["map_micro"] == pytest.approx((1 + 2 / 3 + 3 / 9) / 3)


def test_f1_and_best_threshold_by_hand():
    scores = np.array([[0.9, 0.4], [0.6, 0.2], [0.3, 0.7]])
    targets = np.array([[1, 1], [0, 0], [1, 1]])
    at_half = f1_at_threshold(scores, targets, 0.5)
    # predicted at 0.5: (0,0) (1,0) (2,1); tp=2 fp=1 fn=2
    assert at_half["precision"] == pytest.approx(2 / 3)
    assert at_half["recall"] == pytest.approx(2 / 4)
    assert at_half["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    # at 0.25 everything positive except 0.2: tp=4 fp=1 fn=0 -> F1 = 8/9, the best available
    thr, f1 = best_threshold(scores, targets, thresholds=[0.25, 0.5, 0.8])
    assert thr == 0.25 and f1 == pytest.approx(8 / 9)
    m = tag_metrics(scores, targets, threshold=0.5, tuned_threshold=0.8)
    assert m["tag_threshold_tuned"] == 0.8  # a threshold from validation is applied, not re-chosen
    assert m["tag_f1"] == pytest.approx(at_half["f1_micro"])


def test_drop_tokens_keeps_specials():
    ids = torch.tensor([[2, 7, 8, 9, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    new_ids, new_mask = drop_tokens(ids, mask, 1.0, {0, 1, 2, 3, 4}, 0)
    assert new_ids.tolist() == [[2, 0, 0, 0, 3, 0]]
    assert new_mask.tolist() == [[1, 0, 0, 0, 1, 0]]
    same_ids, _ = drop_tokens(ids, mask, 0.0, {0, 1, 2, 3, 4}, 0)
    assert torch.equal(same_ids, ids)


@pytest.mark.parametrize("modes", [("tags", "none"), ("none", "tags"), ("drop", "tags", "none")])
def test_every_text_mode_keeps_its_own_metrics_whatever_the_order(modes, monkeypatch):
    from animesion_lib import evaluate

    labels = np.array([0, 1, 1, 0])
    # each mode gets outputs with a different accuracy: 1.0 with tags, 0.5 with some, 0.0 without
    right = {"tags": [0, 1, 1, 0], "drop": [0, 1, 0, 1], "none": [1, 0, 0, 1]}

    def fake_outputs(model, loader, device, precision, mode, drop_fraction, tokenizer, progress=False):
        return {"logits": np.eye(2)[right[mode]], "labels": labels, "loss": 0.0}

    monkeypatch.setattr(evaluate, "collect_outputs", fake_outputs)
    found = evaluate.evaluate_model(None, [], 2, torch.device("cpu"), text_modes=modes).metrics
    expected = {"tags": 1.0, "drop": 0.5, "none": 0.0}
    assert found["top1"] == expected[modes[0]]  # the first mode is unprefixed
    for mode in modes[1:]:
        assert found[evaluate.mode_prefix(mode, 0.5) + "top1"] == expected[mode]
