"""Text modes (animesion_lib.text_modes): one name per mode, metric names, the tables of
multimodal results across modes; and the masked-tag evaluation (animesion_lib.masked_tags), on
hand-made records and a tiny trained ViLT."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from animesion_lib.masked_tags import evaluate_masked_tags, masked_tag_metrics
from animesion_lib.text_modes import (
    TextMode, curve_table, difficulty_baselines, metric_column, metric_name, plot_text_modes, text_mode_table,
)
from train_fixtures import write_tiny_dataset


def _records() -> pd.DataFrame:
    return pd.DataFrame([
        {"experiment": "vilt", "metrics.test_top1": float("nan"), "metrics.test_tags.top1": 0.8,
         "metrics.test_drop50.top1": 0.7, "metrics.test_notags.top1": 0.3,
         "curves": [{"epoch": 1, "val_tags.top1": 0.5}, {"epoch": 2, "val_tags.top1": 0.6}]},
        {"experiment": "vit", "metrics.test_top1": 0.5, "metrics.test_tags.top1": float("nan"),
         "metrics.test_drop50.top1": float("nan"), "metrics.test_notags.top1": float("nan"),
         "curves": [{"epoch": 1, "val_top1": 0.4}]},
    ])


def test_one_name_per_text_mode():
    assert [(m.value, m.prefix(), m.label()) for m in TextMode] == [
        ("tags", "tags.", "all tags"), ("drop", "drop50.", "50% of tags dropped"),
        ("none", "notags.", "no tags (image only)")]
    assert TextMode.DROP.prefix(0.25) == "drop25." and TextMode.DROP.label(0.25) == "25% of tags dropped"
    assert TextMode.parse_list("tags, none,tags") == [TextMode.TAGS, TextMode.NONE]
    with pytest.raises(ValueError, match="unknown text mode 'half'; choose from tags, drop, none"):
        TextMode.parse("half")
    with pytest.raises(ValueError, match="drop fraction"):
        TextMode.DROP.prefix(50)


def test_metric_names_carry_their_mode_and_only_image_only_models_have_none():
    assert metric_name("top1", "tags") == "tags.top1"
    assert metric_name("top1", None, "val") == "val_top1"
    assert metric_column("top1", TextMode.TAGS) == "metrics.test_tags.top1"
    assert metric_column("top1", "none") == "metrics.test_notags.top1"
    assert metric_column("tag_map_macro", "drop", "val", 0.25) == "metrics.val_drop25.tag_map_macro"
    assert metric_column("top1", None) == "metrics.test_top1"
    with pytest.raises(ValueError, match="mode"):
        metric_column("top1", "half")


def test_text_mode_table_multimodal_and_image_only_rows():
    table = text_mode_table(_records(), {"ViLT": "vilt", "ViT": "vit"})
    assert list(table.columns) == ["all tags", "50% of tags dropped", "no tags (image only)"]
    assert table.loc["ViLT"].tolist() == [0.8, 0.7, 0.3]
    # the image-only model never reads tags: the same number in every column
    assert table.loc["ViT"].tolist() == [0.5, 0.5, 0.5]


def test_text_mode_table_names_a_missing_run():
    with pytest.raises(KeyError, match="nope"):
        text_mode_table(_records(), {"x": "nope"})


def test_curve_table_aligns_epochs_and_reads_each_run_in_its_mode():
    records = _records()
    table = curve_table(records, {"ViLT": "vilt", "ViT": "vit"}, "top1")
    assert table["ViLT"].tolist() == [0.5, 0.6]
    assert table.loc[1, "ViT"] == 0.4 and math.isnan(table.loc[2, "ViT"])
    assert curve_table(records, {"ViLT": "vilt"}, "top1", mode="none")["ViLT"].isna().all()


def test_difficulty_baselines_read_the_card(tmp_path):
    card = {"accuracy": {"chance": 0.01, "majority": {"test": 0.1}, "tags_lr": {"test": 0.6},
                         "image_lr": {"test": 0.65}, "tags_image_lr": {"test": 0.8}}}
    (tmp_path / "difficulty_card.json").write_text(json.dumps(card))
    baselines = difficulty_baselines(tmp_path)
    assert baselines.to_dict() == {"chance": 0.01, "majority class": 0.1, "tags only (LR)": 0.6,
                                   "8×8 thumbnail (LR)": 0.65, "tags + thumbnail (LR)": 0.8}


def test_plot_text_modes_draws_one_bar_per_run_and_mode():
    import matplotlib
    matplotlib.use("Agg")
    table = text_mode_table(_records(), {"ViLT": "vilt", "ViT": "vit"})
    fig = plot_text_modes(table, baselines={"tags only": 0.6})
    ax = fig.axes[0]
    assert len(ax.patches) == 6 and len(ax.lines) == 1


class _Oracle(torch.nn.Module):
    """Predicts every masked position's original token from a side channel: accuracy must be 1."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.truth = None

    def forward(self, images, input_ids=None, attention_mask=None):
        return {"logits": torch.zeros(len(images), 2), "mlm_logits": torch.nn.functional.one_hot(self.truth, self.vocab).float() * 10}


def test_masked_tag_metrics_perfect_model_scores_one():
    from animesion_lib.data.tokenizers import TagTokenizer

    tok = TagTokenizer.from_tag_lists([["a", "b", "c"]])
    enc = [tok.encode(t, max_length=6) for t in (["a", "b"], ["c", "a", "b"])]
    batch = {"image": torch.zeros(2, 3, 8, 8), "input_ids": torch.tensor([e["input_ids"] for e in enc]),
             "attention_mask": torch.tensor([e["attention_mask"] for e in enc])}
    model = _Oracle(tok.vocab_size)
    model.truth = batch["input_ids"]
    metrics = masked_tag_metrics(model, [batch], tok, mask_prob=1.0, majority_token=tok.encode(["a"])["input_ids"][1])
    assert metrics["mlm_acc"] == 1.0 and metrics["mlm_hidden_tokens"] == 5
    assert metrics["mlm_majority_acc"] == pytest.approx(2 / 5)


def test_evaluate_masked_tags_on_a_trained_vilt(tmp_path):
    from animesion_lib.train import TrainConfig, train

    data = write_tiny_dataset(tmp_path / "tiny")
    run = tmp_path / "run"
    train(TrainConfig(data=str(data), out_dir=str(run), model="vilt_micro_p8", model_kwargs={"depth": 1},
                      image_size=32, epochs=1, batch_size=8, threads=1, progress=False, mask_schedule="bert",
                      max_text_len=8))
    metrics = evaluate_masked_tags(run, split="val", mask_prob=1.0, seed=1)
    # every tag token of val is hidden: 4 classes x 3 images x 2 tags, plus "smile" on 2 images of each class
    assert metrics["mlm_hidden_tokens"] == 4 * 3 * 2 + 4 * 2
    # the frequency baseline always answers "smile" (16 of train's 48 tags): right on val's 8 smiles
    assert metrics["mlm_majority_acc"] == 8 / 32
    assert metrics["mlm_acc"] <= metrics["mlm_top5"]
    assert metrics == evaluate_masked_tags(run, split="val", mask_prob=1.0, seed=1)  # reproducible
