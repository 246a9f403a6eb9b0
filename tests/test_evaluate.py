"""Metrics checked against examples small enough to compute by hand and, where we count them
ourselves, against scikit-learn on random inputs; the evaluation loop's metric names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn import metrics as skm

from animesion_lib.evaluation import drop_tokens
from animesion_lib.metrics import (
    best_threshold,
    classification_metrics,
    confusion_matrix,
    f1_at_threshold,
    mean_class_accuracy,
    per_class_accuracy,
    tag_average_precision,
    tag_metrics,
    topk_accuracy,
)
from animesion_lib.text_modes import TextMode


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


@pytest.mark.parametrize("seed", range(5))
def test_topk_accuracy_agrees_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n, classes = 200, 12
    scores, labels = rng.standard_normal((n, classes)), rng.integers(0, classes, n)  # no ties
    ours = topk_accuracy(scores, labels, ks=(1, 3, 5))
    for k in (1, 3, 5):
        assert ours[k] == skm.top_k_accuracy_score(labels, scores, k=k, labels=np.arange(classes))


@pytest.mark.parametrize("seed", range(5))
def test_f1_at_threshold_agrees_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random((60, 9))
    targets = (rng.random((60, 9)) < 0.3).astype(int)
    targets[:, 4] = 0  # a tag that never occurs: left out of the macro mean
    ours = f1_at_threshold(scores, targets, 0.6)
    predicted = (scores >= 0.6).astype(int)
    p, r, f, _ = skm.precision_recall_fscore_support(targets, predicted, average="micro", zero_division=0.0)
    present = targets.sum(axis=0) > 0
    macro = skm.f1_score(targets[:, present], predicted[:, present], average="macro", zero_division=0.0)
    assert (ours["precision"], ours["recall"], ours["f1_micro"]) == pytest.approx((p, r, f), abs=1e-12)
    assert ours["f1_macro"] == pytest.approx(macro, abs=1e-12)


def test_metrics_of_nothing_are_nan():
    assert np.isnan(topk_accuracy(np.zeros((0, 3)), np.zeros(0))[1])
    assert np.isnan(mean_class_accuracy(np.zeros(0), np.zeros(0), 3))
    assert np.isnan(tag_average_precision(np.ones((2, 2)), np.zeros((2, 2)))["map_macro"])


class _TextModel(torch.nn.Module):
    """Reads tags (has a vocabulary): right on every image with all tags, half right with some,
    always wrong with none. The loss is the mean of the labels, so that it is known exactly."""

    config = {"vocab_size": 10}

    def forward(self, images, input_ids=None, attention_mask=None):
        labels = images[:, 0, 0, 0].long()
        if input_ids is None:
            guess = 1 - labels
        elif (attention_mask.sum(dim=1) == 3).all():  # [CLS] and both tags
            guess = labels
        else:
            guess = torch.tensor([0, 0, 0, 0])
        return {"logits": torch.nn.functional.one_hot(guess, 2).float()}

    def loss(self, out, batch):
        return batch["label"].float().mean(), {}


def _batches():
    labels = torch.tensor([0, 1, 1, 0])
    images = labels.float().view(4, 1, 1, 1).expand(4, 3, 2, 2).clone()
    ids = torch.tensor([[2, 7, 8]] * 4)
    return [{"image": images, "label": labels, "input_ids": ids, "attention_mask": torch.ones_like(ids)}]


class _Tokenizer:
    special_token_ids = frozenset({0, 1, 2, 3, 4})
    pad_token_id = 0


@pytest.mark.parametrize("modes", [("tags", "none"), ("none", "tags"), ("drop", "tags", "none")])
def test_every_text_mode_names_its_metrics_whatever_the_order(modes):
    from animesion_lib.evaluation import evaluate_model

    found = evaluate_model(_TextModel(), _batches(), 2, torch.device("cpu"), text_modes=modes,
                           drop_fraction=1.0, tokenizer=_Tokenizer())
    expected = {"tags.top1": 1.0, "drop100.top1": 0.5, "notags.top1": 0.0}
    names = {"tags": "tags.top1", "drop": "drop100.top1", "none": "notags.top1"}
    top1 = {k: v for k, v in found.metrics.items() if k.endswith("top1")}
    assert top1 == {names[m]: expected[names[m]] for m in modes}
    assert found.metrics[TextMode.parse(modes[0]).prefix(1.0) + "loss"] == 0.5
    assert found.mode == TextMode.parse(modes[0])  # the confusion matrix is the first mode's
    assert found.confusion.trace() == {"tags": 4, "drop": 2, "none": 0}[modes[0]]


def test_a_model_that_reads_no_text_is_evaluated_once_without_prefix():
    from animesion_lib.evaluation import evaluate_model

    model = _TextModel()
    model.config = {}
    found = evaluate_model(model, _batches(), 2, torch.device("cpu"), text_modes=("tags", "none"))
    assert set(found.metrics) == {"top1", "top5", "mean_class_acc", "loss"}
    assert found.metrics["top1"] == 1.0 and found.mode is None


def test_collect_outputs_weighs_each_batch_loss_by_its_size():
    from animesion_lib.evaluation import collect_outputs

    small = {k: v[:2] for k, v in _batches()[0].items()}  # labels [0, 1]: loss 0.5
    full = _batches()[0]  # labels [0, 1, 1, 0]: loss 0.5
    full["label"] = torch.tensor([1, 1, 1, 0])  # loss 0.75
    out = collect_outputs(_TextModel(), [full, small], torch.device("cpu"), text_mode="tags")
    assert out["loss"] == pytest.approx((0.75 * 4 + 0.5 * 2) / 6)
    assert out["labels"].tolist() == [1, 1, 1, 0, 0, 1] and out["logits"].shape == (6, 2)
