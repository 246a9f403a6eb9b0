"""The multimodal, curriculum, tag-prediction and hyper-parameter chapters' library code."""

import json
from dataclasses import replace

import pandas as pd
import pytest

from animesion_lib.data.synthetic import SyntheticConfig, make_synthetic
from animesion_lib.experiments import curriculum, hyperparameters as hp, multimodal as mm, tag_prediction as tp
from animesion_lib.experiments.parallel import train_many
from animesion_lib.experiments.reuse import finished_run
from animesion_lib.results import load_records
from animesion_lib.verdicts import Verdict

KW = {"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 8}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("target")
    make_synthetic(root, SyntheticConfig.from_profile("smoke", progress=False))
    return root


def plan_for(target, tmp_path, **kw):
    settings = dict(data=str(target), results_dir=str(tmp_path / "results"), runs_dir=str(tmp_path / "runs"),
                    seeds=[0], model_kwargs=KW, epochs=1, batch_size=32, pretrain_epochs=0, processes=1)
    return mm.MultimodalPlan(**{**settings, **kw})


def test_arms_differ_only_in_what_they_name(target, tmp_path):
    plan = plan_for(target, tmp_path)
    vit, asl, vilt, cosine, mlm = (plan.config(a, 3, "w.safetensors") for a in
                                   ("vit", "vit-asl", "vilt", "vilt-cosine", "vilt-cosine-mlm"))
    assert vit.model == "vit_micro_p8" and "mlm" not in vit.model_kwargs and vit.predict_tags
    assert asl.model_kwargs["tag_loss"] == "asl" and asl.model_kwargs["asl"] == plan.asl
    assert [c.model_kwargs["mlm"] for c in (vilt, cosine, mlm)] == [False, False, True]  # MLM: its own arm only
    assert [c.mask_schedule for c in (vilt, cosine, mlm)] == ["none", "cosine", "cosine"]
    assert {c.pretrained_path for c in (vit, vilt, mlm)} == {"w.safetensors"}
    assert vilt.experiment == "multimodal-vilt-s3" and vilt.out_dir.endswith("runs/smoke/multimodal-vilt-s3")
    assert plan.config("vilt-wordpiece", 0, None).tokenizer_vocab_size == plan.wordpiece_vocab
    assert plan.config("vilt-len8", 0, None).max_text_len == 8
    with pytest.raises(ValueError, match="unknown multimodal arm 'vilt-fancy'"):
        plan.config("vilt-fancy", 0, None)
    assert mm.arm_of("multimodal-vilt-cosine-mlm-s12") == "vilt-cosine-mlm"


def test_a_finished_run_is_reused_only_while_nothing_changed(target, tmp_path):
    config = plan_for(target, tmp_path).config("vit", 0, None)
    first = train_many([config], processes=1, reuse=True)[0]
    record = tmp_path / "results" / "smoke" / "multimodal-vit-s0.json"
    written = record.stat().st_mtime_ns
    again = train_many([replace(config, threads=2)], processes=1, reuse=True)[0]  # threads: not part of the key
    assert again["reused"] and again["metrics"] == first["metrics"] and record.stat().st_mtime_ns == written
    assert finished_run(replace(config, lr=config.lr * 2)) is None  # another setting: train again
    record.write_text(record.read_text().replace('"profile"', '"profile" ', 1))  # the record changed since
    assert finished_run(config) is None
    assert "reused" not in train_many([config], processes=1, reuse=True)[0]


@pytest.mark.slow
def test_the_three_chapters_on_one_family_of_runs(target, tmp_path):
    plan = plan_for(target, tmp_path, epochs=5)
    names = mm.run_arms(plan, ["vit", "vit-asl", "vilt", "vilt-cosine", "vilt-cosine-mlm"])
    assert names[:3] == ["multimodal-vilt-s0", "multimodal-vilt-cosine-s0", "multimodal-vilt-cosine-mlm-s0"]
    fused = mm.run_late_fusion(plan, names)
    records = load_records(plan.results_dir, "smoke")
    fusion = records[records.experiment == "multimodal-late-fusion-s0"].iloc[0]
    vit = records[records.experiment == "multimodal-vit-s0"].iloc[0]
    # the fusion's image part alone is the run's own test accuracy: same model, same images
    assert fusion["metrics.test_image_top1"] == pytest.approx(vit["metrics.test_top1"])
    assert fusion["metrics.val_top1"] >= 0 and 0 <= fusion["metrics.tags_weight"] <= 3
    # the near-twin characters are scored on their own, in every text mode
    vilt = records[records.experiment == "multimodal-vilt-s0"].iloc[0]
    assert 0 <= vit["metrics.test_twin_top1"] <= 1 and 0 <= vilt["metrics.test_notags.twin_confusion"] <= 1

    card = pd.Series({mm.THUMBNAIL: 0.2, mm.TAGS_LR: 0.3})
    table, verdicts = mm.multimodal_summary(records, names + fused, card)
    assert list(table.index) == ["ViT (image only)", "ViLT, tag tokens", "late fusion (ViT + tags LR)"]
    assert set(verdicts) == {"vilt vs vit", "vilt vs late fusion"}
    assert all(v.status == "inconclusive" and "1 paired seed, fewer than 3" in v.reasons for v in verdicts.values())

    table, verdicts = curriculum.curriculum_summary(records, names, card)
    assert "curriculum, no tags" in table.index and "curriculum + MLM, all tags" in table.index
    assert "MLM objective, without tags" in verdicts
    # without the all-hidden arm, image-only training is the ViT
    cosine = records[records.experiment == "multimodal-vilt-cosine-s0"].iloc[0]
    assert verdicts["curriculum keeps image-only accuracy"].difference == pytest.approx(
        cosine["metrics.test_notags.top1"] - vit["metrics.test_top1"])
    assert curriculum.image_only_reference(names).startswith("the image-only ViT")
    assert curriculum.image_only_reference(["multimodal-vilt-full-s0"]).endswith("(the vilt-full arm)")

    masked = tp.run_masked_tags(plan, names)
    records = load_records(plan.results_dir, "smoke")
    mlm_table, mlm_verdict = tp.masked_tag_verdict(records, names, masked)
    assert list(mlm_table.index) == ["masked-tag head", "most frequent tag"] and not mlm_verdict.conclusive
    refs = tp.tag_references(target)
    table, verdicts = tp.tag_summary(records, names, refs["prior.tag_map_macro"])
    assert table.loc["ViT, BCE (image only)", "seeds"] == 1 and set(verdicts) == {"asl vs bce"}


def test_tag_references_bracket_the_task(target):
    refs = tp.tag_references(target)
    assert 0 < refs["prior.tag_map_macro"] < refs["class_oracle.tag_map_macro"] <= 1
    assert refs["prior.tag_map_micro"] < refs["class_oracle.tag_map_micro"]


def test_the_curriculum_claim_reads_both_verdicts():
    yes, same, no = (Verdict(s, s) for s in ("better", "no effect", "worse"))
    unsure = Verdict("inconclusive", "inconclusive: few seeds")
    key, use = "curriculum keeps image-only accuracy", "curriculum uses the tags"
    assert curriculum.claim({key: same, use: yes}).startswith("supported")
    assert curriculum.claim({key: no, use: yes}).startswith("half supported: it gains")
    assert curriculum.claim({key: yes, use: same}).startswith("half supported: it keeps")
    assert curriculum.claim({key: no, use: no}).startswith("not supported")
    assert curriculum.claim({key: unsure, use: yes}).startswith("inconclusive")
    assert curriculum.claim({}) == "not tested at this profile"


def hp_plan(target, tmp_path, **kw):
    settings = dict(data=str(target), base={"image_size": 32, "batch_size": 32, "depth": 2, "patch_size": 8},
                    grids={"image_size": [16, 32], "batch_size": [16, 32, 64]}, results_dir=str(tmp_path / "results"),
                    runs_dir=str(tmp_path / "runs"), epochs=2, pretrain_epochs=0, processes=1)
    return hp.HyperparameterPlan(**{**settings, **kw})


def test_hyperparameter_arms_take_equal_optimizer_steps(target, tmp_path):
    plan = hp_plan(target, tmp_path)
    configs = {name: plan.config(name, s, 0, None) for name, s in plan.runs()}
    assert list(configs) == ["base", "image_size-16", "batch_size-16", "batch_size-64"]
    steps = {name: c.epochs / c.batch_size for name, c in configs.items()}  # per image of the training set
    assert len(set(steps.values())) == 1
    assert configs["image_size-16"].image_size == 16 and configs["base"].experiment == "hyperparameters-base-s0"
    with pytest.raises(ValueError, match="change the architecture"):
        hp.pretrained_weights(hp_plan(target, tmp_path, pretrain_epochs=1, grids={"depth": [2, 4]}))


def test_hyperparameter_summary_reads_each_arm_against_the_base(target, tmp_path):
    plan = hp_plan(target, tmp_path, seeds=[0, 1, 2])
    curve = [{"epoch": e, "val_top1": v} for e, v in enumerate([.3, .5, .6, .6, .6, .6], 1)]
    rows = []
    for name, base_score in (("base", .60), ("image_size-16", .50), ("batch_size-16", .61), ("batch_size-64", .60)):
        for seed, jitter in enumerate((0.0, 0.01, -0.01)):
            rows.append({"experiment": f"hyperparameters-{name}-s{seed}", "config.seed": seed, "curves": curve,
                         "metrics.test_top1": base_score + jitter * (name != "batch_size-16"),
                         "throughput.train_images_per_s": 100.0, "wall_time_s": 1.0})
    records = pd.DataFrame(rows)
    table, verdicts = hp.hyperparameter_summary(records, list(records.experiment), plan, baseline=0.4)
    assert table.loc["batch_size-64", "epochs"] == 4 and table.loc["base", "tokens"] == 16
    assert verdicts["image_size-16 vs base"].status == "worse"
    assert verdicts["batch_size-64 vs base"].status == "no effect"
    table, verdicts = hp.hyperparameter_summary(records, list(records.experiment), plan, baseline=0.55)
    assert verdicts["image_size-16 vs base"].status == "inconclusive"  # below the thumbnail baseline


def test_late_fusion_sees_the_tags_the_vilt_evaluation_keeps():
    import random

    from animesion_lib.data.tokenizers import TagTokenizer
    from animesion_lib.late_fusion import visible_tags

    tags = [f"tag_{i:02d}" for i in range(20)]
    tokenizer = TagTokenizer.from_tag_lists([tags])
    for row in range(5):
        kept = tokenizer.encode(tags, max_length=9, shuffle=True, rng=random.Random(row))["input_ids"]
        assert sorted(tokenizer.decode_tags(kept)) == sorted(visible_tags(tags, row, 8))
    assert visible_tags(tags[:3], 0, 8) == tags[:3] and visible_tags(tags, 0, None) == tags
