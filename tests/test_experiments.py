"""The chapters' experiment modules, at a size that trains in seconds."""

import pytest

from animesion_lib.data.synthetic import SyntheticConfig, make_synthetic
from animesion_lib.experiments.parallel import thread_plan, train_many
from animesion_lib.experiments.recognition import RecognitionPlan, arm_name, arms, run_recognition, summarise
from animesion_lib.pretraining import SourceUniverse
from animesion_lib.results import load_records, make_record, write_record


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("target")
    make_synthetic(root, SyntheticConfig.from_profile("smoke", progress=False, card=False))
    return root


def plan_for(target, tmp_path, **kw):
    settings = dict(data=str(target), results_dir=str(tmp_path / "results"), runs_dir=str(tmp_path / "runs"),
                    seeds=[0, 1], vit_kwargs={"embed_dim": 32, "depth": 2, "num_heads": 2}, epochs=1,
                    pretrain_epochs=1, universe=SourceUniverse(classes=14, images=320, seed=7),
                    cache_dir=str(tmp_path / "cache"), batch_size=32)
    return RecognitionPlan(**{**settings, **kw})


def test_arm_names():
    assert arm_name("recognition-syn-vit-ifa+excl-s12") == "vit-ifa+excl"
    assert arm_name("recognition-syn-vit-cls-scratch-s0") == "vit-cls-scratch"
    assert arm_name("recognition-syn-resnet18") == "resnet18"


def test_arms_fine_tune_every_head_and_keep_one_scratch_twin(target, tmp_path):
    runs = arms(plan_for(target, tmp_path, cnn_models=["resnet18"], scratch_epochs=3, real_data="faces"),
                weights="w.safetensors")
    names = [r.experiment for r in runs]
    assert names == ["recognition-syn-resnet18", "recognition-syn-vit-cls-s0", "recognition-syn-vit-ifa-s0", "recognition-syn-vit-ifa+excl-s0",
                     "recognition-syn-vit-cls-scratch-s0", "recognition-syn-vit-cls-s1", "recognition-syn-vit-ifa-s1",
                     "recognition-syn-vit-ifa+excl-s1", "recognition-syn-vit-cls-scratch-s1",
                     "recognition-real-vit-cls", "recognition-real-vit-ifa"]
    assert runs[0].pretrained_path is None and runs[0].model == "resnet18"
    assert [r.pretrained_path for r in runs[1:5]] == ["w.safetensors"] * 3 + [None]
    assert [r.exclusion_weight for r in runs[1:4]] == [0.0, 0.0, 0.1]
    assert [r.epochs for r in runs[1:5]] == [1, 1, 1, 3]
    assert [(r.data, r.head, r.pretrained_path) for r in runs[-2:]] == [("faces", "cls", "w.safetensors"),
                                                                         ("faces", "ifa", "w.safetensors")]
    assert [r.experiment for r in arms(plan_for(target, tmp_path), weights=None)][:4] == names[1:4] + names[5:6]


@pytest.mark.slow
def test_run_and_summarise_in_two_processes(target, tmp_path):
    trained = run_recognition(plan_for(target, tmp_path, processes=2))
    assert len(trained) == 8
    write_record(make_record(experiment="recognition-syn-efficientnet_b0", profile="smoke", kind="train", config={},
                             seed=0, metrics={"test_top1": 0.1}, wall_time_s=1.0), tmp_path / "results")
    records = load_records(tmp_path / "results", "smoke")   # an older arm's record among them: not read
    assert set(trained) | {"recognition-pretrain", "recognition-syn-efficientnet_b0"} == set(records.experiment)
    table, verdicts = summarise(records, trained, baseline=0.5)
    assert list(table.index) == ["vit-cls", "vit-ifa", "vit-ifa+excl", "vit-cls-scratch"]
    assert (table.seeds == 2).all()
    assert table.near_twin_top1.between(0, 1).all()  # the smoke data has near-twin pairs
    # one epoch cannot show a plateau, and two seeds are too few: every verdict is inconclusive
    assert set(verdicts) == {"vit-ifa vs vit-cls", "vit-ifa+excl vs vit-cls", "pretrained vs scratch"}
    for verdict in verdicts.values():
        assert verdict.status == "inconclusive"
        assert "2 paired seeds, fewer than 3" in verdict.reasons
    fine_tuned = records[records.experiment == "recognition-syn-vit-cls-s0"].iloc[0]
    assert fine_tuned["config.pretrained_path"].endswith("backbone.safetensors")


def test_train_many_in_process_keeps_order(target, tmp_path):
    plan = plan_for(target, tmp_path, seeds=[0], pretrain_epochs=0, processes=1)
    summaries = train_many(arms(plan, None)[:2], processes=1)
    assert [s["config"]["experiment"] for s in summaries] == ["recognition-syn-vit-cls-s0", "recognition-syn-vit-ifa-s0"]
    assert list(load_records(tmp_path / "results", "smoke").experiment) == [
        "recognition-syn-vit-cls-s0", "recognition-syn-vit-ifa-s0"]


def test_thread_plan_gives_a_partial_round_the_idle_cores():
    assert thread_plan(6, 2) == [1] * 6
    assert thread_plan(9, 2) == [1] * 8 + [2]
    assert thread_plan(1, 2) == [2]
    assert thread_plan(5, 3) == [1] * 5            # two runs share three cores: one thread each
    assert thread_plan(4, 4, threads=2) == [2] * 4
    assert thread_plan(0, 2) == []


@pytest.mark.slow
def test_train_many_starts_an_odd_last_run_alone_on_both_cores(target, tmp_path):
    plan = plan_for(target, tmp_path, seeds=[0], pretrain_epochs=0)
    runs = arms(plan, None)[:3]
    summaries = train_many(runs, processes=2)
    assert [s["config"]["experiment"] for s in summaries] == [r.experiment for r in runs]
    assert [s["config"]["threads"] for s in summaries] == [1, 1, 2]


def test_relative_gains_per_seed():
    import pandas as pd

    from animesion_lib.experiments.recognition import relative_gains

    rows = [(f"recognition-syn-vit-{head}-s{seed}", seed, top1)
            for seed, values in ((0, (0.50, 0.55, 0.45)), (1, (0.60, 0.60, 0.66)))
            for head, top1 in zip(("cls", "ifa", "ifa+excl"), values)]
    records = pd.DataFrame(rows, columns=["experiment", "config.seed", "metrics.test_top1"])
    records.loc[len(records)] = ["recognition-syn-vit-ifa-s9", 9.0, 0.9]   # a run this plan did not train
    gain = relative_gains(records, [r[0] for r in rows])
    assert list(gain.index) == [0, 1]
    assert gain["ifa vs cls"].tolist() == pytest.approx([0.10, 0.0])
    assert gain["ifa+excl vs cls"].tolist() == pytest.approx([-0.10, 0.10])
