"""The training loop: deterministic, resumable after a real kill, stops on NaN, schedules right."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from animesion_lib import checkpoint as ckpt
from animesion_lib.train import TrainConfig, TrainingDiverged, lr_at, train
from train_fixtures import write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    # the device is pinned: on a GPU machine "auto" would pick CUDA, where exact equality needs more
    base = dict(data=str(data), out_dir=str(out), model="vit_micro_p8", model_kwargs={"depth": 2},
                image_size=32, epochs=2, batch_size=8, lr=3e-3, threads=1, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def _curve(summary, keys=("train_loss", "val_loss")):
    """The per-epoch losses, flattened: [epoch 1 train, epoch 1 val, epoch 2 train, ...]."""
    return [row[k] for row in summary["curves"] for k in keys]


def test_lr_schedule_warmup_then_cosine():
    lrs = [lr_at(s, total_steps=100, base_lr=1.0, warmup_steps=10, min_lr=0.01) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warm-up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then only decreasing
    assert lrs[55] == pytest.approx(0.01 + 0.5 * 0.99)  # half-way through the cosine
    assert lr_at(100, 100, 1.0, 10, 0.01) == 0.01


def test_same_seed_twice_is_identical(tiny, tmp_path):
    a = train(_cfg(tiny, tmp_path / "a"))
    b = train(_cfg(tiny, tmp_path / "b"))
    c = train(_cfg(tiny, tmp_path / "c", seed=1))
    assert a["step_losses"] == b["step_losses"]
    assert _curve(a) == _curve(b) and a["metrics"] == b["metrics"]
    assert a["step_losses"] != c["step_losses"]  # the seed does matter
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,step,lr,train_loss") and len(log) == 3
    assert a["steps"] == 8 and a["throughput"]["train_images_per_s"] > 0
    # training accuracy: a whole number of the 4 x 8 images trained in each epoch
    assert [round(row["train_top1"] * 32, 6) % 1 for row in a["curves"]] == [0, 0]
    assert "train_top1" in log[0].split(",")
    assert {k: a["device"][k] for k in ("type", "tf32", "deterministic", "augment_on")} == {
        "type": "cpu", "tf32": False, "deterministic": False, "augment_on": "loader"}


def test_reading_the_losses_back_less_often_changes_nothing(tiny, tmp_path):
    every_step = train(_cfg(tiny, tmp_path / "a", epochs=1, log_every=1))
    per_epoch = train(_cfg(tiny, tmp_path / "b", epochs=1, log_every=50))
    assert every_step["step_losses"] == per_epoch["step_losses"] and len(per_epoch["step_losses"]) == 4
    assert every_step["curves"][0]["train_top1"] == per_epoch["curves"][0]["train_top1"]


def test_the_batch_augmentation_path_trains_deterministically_and_resumes_exactly(tiny, tmp_path):
    a = train(_cfg(tiny, tmp_path / "a", augment_on="batch", keep_checkpoints=0))
    b = train(_cfg(tiny, tmp_path / "b", augment_on="batch"))
    assert a["step_losses"] == b["step_losses"] and a["device"]["augment_on"] == "batch"
    import shutil

    shutil.rmtree(ckpt.latest_checkpoint(tmp_path / "a"))  # as if killed during epoch 2
    resumed = train(_cfg(tiny, tmp_path / "a", augment_on="batch", resume=True))
    assert resumed["step_losses"] == a["step_losses"][4:] and _curve(resumed) == _curve(a)


def test_fp16_resume_with_a_real_grad_scaler_continues_exactly(tiny, tmp_path):
    """Resume in-process from epoch 1 of 2 with fp16 autocast on the CPU and a live GradScaler."""
    straight = train(_cfg(tiny, tmp_path, precision="fp16", keep_checkpoints=0))
    state = ckpt.load_training_state(ckpt.latest_checkpoint(tmp_path))
    assert straight["device"]["precision"] == "fp16" and state["scaler"]["scale"] > 1  # the scaler was on
    import shutil

    shutil.rmtree(ckpt.latest_checkpoint(tmp_path))  # as if killed during epoch 2
    resumed = train(_cfg(tiny, tmp_path, precision="fp16", resume=True))
    assert resumed["step_losses"] == straight["step_losses"][4:]
    assert _curve(resumed) == _curve(straight) and resumed["metrics"] == straight["metrics"]


def test_a_fresh_run_never_mixes_with_an_earlier_runs_checkpoints(tiny, tmp_path):
    from animesion_lib.checkpoint import list_checkpoints
    from animesion_lib.errors import AnimesionError

    train(_cfg(tiny, tmp_path, epochs=2, keep_checkpoints=0))
    with pytest.raises(AnimesionError, match="earlier run.*--resume.*--overwrite"):
        train(_cfg(tiny, tmp_path, epochs=1))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch_0001", "epoch_0002"]  # nothing lost
    shorter = train(_cfg(tiny, tmp_path, epochs=1, overwrite=True))
    # the shorter run's own checkpoint is the newest, not the earlier run's epoch 2
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch_0001"]
    assert Path(shorter["checkpoint"]).is_dir()


def test_gradient_accumulation_matches_the_bigger_batch(tiny, tmp_path):
    whole = train(_cfg(tiny, tmp_path / "a", epochs=1, transform="plain"))
    accumulated = train(_cfg(tiny, tmp_path / "b", epochs=1, transform="plain", batch_size=4, grad_accum=2))
    assert accumulated["steps"] == whole["steps"]
    assert accumulated["step_losses"] == pytest.approx(whole["step_losses"], rel=1e-4)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tiny, tmp_path, monkeypatch):
    import animesion_lib.models as models

    real_create = models.create_model

    def create_model_that_diverges(*args, **kwargs):
        model = real_create(*args, **kwargs)
        real_loss, calls = model.loss, [0]

        def loss(out, batch):
            total, parts = real_loss(out, batch)
            if model.training:
                calls[0] += 1
                if calls[0] >= 6:  # 4 steps per epoch: the 2nd step of epoch 2
                    total = total * float("nan")
            return total, parts

        model.loss = loss
        return model

    monkeypatch.setattr(models, "create_model", create_model_that_diverges)
    with pytest.raises(TrainingDiverged, match=r"nan at step 6 \(epoch 2\)") as err:
        train(_cfg(tiny, tmp_path, epochs=3))
    assert "epoch_0001" in str(err.value)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["epoch_0001"]
    model, meta = ckpt.load_model(tmp_path)  # the good checkpoint is intact and loads
    assert meta["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_multimodal_run_saves_tokenizer_and_evaluates_the_same(tiny, tmp_path):
    from animesion_lib.evaluation import evaluate_checkpoint

    summary = train(_cfg(tiny, tmp_path, model="vilt_micro_p8", predict_tags=True, mask_schedule="cosine",
                         epochs=1, eval_text_modes="tags,none"))
    last = ckpt.latest_checkpoint(tmp_path)
    assert (last / "tokenizer.json").is_file() and (last / "tag_vocab.json").is_file()
    m = summary["metrics"]
    assert {"val_tags.top1", "val_notags.top1", "val_tags.tag_map_macro", "val_tags.tag_f1_tuned"} <= set(m)
    again = evaluate_checkpoint(tmp_path, split="val", text_modes=["tags", "none"], threshold_split=None,
                                progress=False).metrics
    assert again["tags.loss"] == pytest.approx(m["val_tags.loss"], rel=1e-5)
    assert again["tags.tag_map_macro"] == pytest.approx(m["val_tags.tag_map_macro"], rel=1e-6)
    assert again["notags.top1"] == pytest.approx(m["val_notags.top1"])


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", per_class={"train": 24, "val": 3})
    epochs = 5
    args = ["--data", str(data), "--model", "vit_micro_p8", "--model-kwargs", '{"depth": 2}', "--image-size", "32",
            "--epochs", str(epochs), "--batch-size", "8", "--lr", "3e-3", "--threads", "1", "--no-progress"]
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "animesion_lib.cli", "train", *args, "--out-dir", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while ckpt.latest_checkpoint(out) is None:  # wait for the first finished epoch, then kill -9
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no checkpoint appeared in 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = int(ckpt.latest_checkpoint(out).name.split("_")[1])
    assert proc.returncode == -signal.SIGKILL and killed_at < epochs, "the run finished before it was killed"

    summary_file = tmp_path / "resumed.json"
    resumed = subprocess.run(cmd + ["--resume", "--summary-json", str(summary_file)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming from {ckpt.latest_checkpoint(out).parent / f'epoch_{killed_at:04d}'}" in resumed.stdout
    resumed_summary = json.loads(summary_file.read_text())

    uninterrupted = train(_cfg(data, tmp_path / "straight", epochs=epochs))
    assert len(resumed_summary["curves"]) == epochs
    assert _curve(resumed_summary) == pytest.approx(_curve(uninterrupted), rel=1e-6)
    assert resumed_summary["metrics"] == pytest.approx(uninterrupted["metrics"], rel=1e-6)
    assert all(math.isfinite(v) for v in resumed_summary["metrics"].values())


@pytest.mark.parametrize("augment_on, device, cache, workers, transform, expected", [
    ("auto", "cuda", False, 4, "animesion", True),   # a GPU: the per-image work leaves the loader
    ("auto", "cpu", True, 0, "animesion", True),     # the CPU, from the cache in the training process: faster
    ("auto", "cpu", True, 2, "animesion", False),    # ... but PIL in loader workers is faster still
    ("auto", "cpu", False, 0, "animesion", False),   # no cache: level, the PIL path stays
    ("auto", "cpu", True, 0, "plain", True),         # normalising whole batches is faster too
    ("auto", "cpu", False, 0, "plain", False),
    ("batch", "cpu", False, 2, "plain", True),
    ("loader", "cuda", True, 0, "animesion", False),
])
def test_where_augmentation_runs_follows_the_measurements(augment_on, device, cache, workers, transform, expected):
    import torch

    from animesion_lib.train import on_batches

    cfg = TrainConfig(augment_on=augment_on, cache=cache, transform=transform)
    assert on_batches(cfg, torch.device(device), workers) is expected
