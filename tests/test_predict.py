"""A run trained here, read back (TrainedRun), predicted (Predictor, animesion predict) and
evaluated (animesion evaluate): outputs, and errors that name the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from animesion_lib.errors import CheckpointError, DatasetError
from train_fixtures import write_tiny_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from animesion_lib.train import TrainConfig, train

    root = tmp_path_factory.mktemp("predict")
    data = write_tiny_dataset(root / "data", per_class={"train": 8, "val": 2, "test": 2})
    train(TrainConfig(data=str(data), out_dir=str(root / "run"), model="vit_micro_p8", model_kwargs={"depth": 1},
                      image_size=32, epochs=1, batch_size=8, threads=1, progress=False, predict_tags=True))
    return data, root / "run"


def _cli(*argv: str) -> int:
    from animesion_lib.cli import evaluate as evaluate_cli
    from animesion_lib.cli import predict as predict_cli
    import argparse

    module = {"predict": predict_cli, "evaluate": evaluate_cli}[argv[0]]
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv[1:]))


def test_predict_folder_writes_json_csv_and_annotations(trained, tmp_path, capsys):
    data, run = trained
    folder = data / "faces" / "char_1"
    n = len(list(folder.glob("*.png")))
    assert _cli("predict", "--checkpoint", str(run), str(folder), "--top-k", "3",
                "--output", str(tmp_path / "p.json"), "--annotate", str(tmp_path / "ann")) == 0
    preds = json.loads((tmp_path / "p.json").read_text())
    assert len(preds) == n
    assert [p["image"] for p in preds] == [str(f) for f in sorted(folder.glob("*.png"))]
    first = preds[0]
    assert [t["class_name"] for t in first["top_k"]] == [f"char_{t['class_id']}" for t in first["top_k"]]
    assert len(first["top_k"]) == 3 and "tags" in first  # the model has a tag head
    assert sorted(p.name for p in (tmp_path / "ann").glob("*.png")) == sorted(f.name for f in folder.glob("*.png"))
    assert f"{first['image']}: {first['top_k'][0]['class_name']}" in capsys.readouterr().out

    assert _cli("predict", "--checkpoint", str(run), str(folder), "--output", str(tmp_path / "p.csv")) == 0
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == n and rows[0]["class_1"] == first["top_k"][0]["class_name"]
    assert rows[0]["prob_1"] == f"{first['top_k'][0]['probability']:.6f}"


def test_predict_corrupt_image_names_the_file(trained, tmp_path, capsys):
    _, run = trained
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        _cli("predict", "--checkpoint", str(run), str(bad))
    with pytest.raises(DatasetError, match="missing.png"):
        _cli("predict", "--checkpoint", str(run), str(tmp_path / "missing.png"))
    good = next((trained[0] / "faces" / "char_0").glob("*.png"))
    assert _cli("predict", "--checkpoint", str(run), str(bad), str(good), "--on-error", "skip",
                "--output", str(tmp_path / "p.json")) == 0
    assert len(json.loads((tmp_path / "p.json").read_text())) == 1
    assert "skipped" in capsys.readouterr().err


def test_evaluate_cli_writes_record_and_confusion(trained, tmp_path):
    from animesion_lib.results import load_record

    _, run = trained
    assert _cli("evaluate", "--checkpoint", str(run), "--split", "test", "--experiment", "tiny_eval",
                "--results-dir", str(tmp_path), "--confusion", str(tmp_path / "cm.csv"),
                "--per-class", str(tmp_path / "pc.csv")) == 0
    record = load_record(tmp_path / "smoke" / "tiny_eval.json")
    assert record["kind"] == "evaluate" and record["data_fingerprint"]
    # an image-only model: one evaluation, its metrics unprefixed
    assert set(record["metrics"]) == {"top1", "top5", "mean_class_acc", "loss", "tag_map_macro", "tag_map_micro",
                                      "tag_f1", "tag_f1_macro", "tag_precision", "tag_recall",
                                      "tag_threshold_tuned", "tag_f1_tuned"}
    assert record["metrics"]["top5"] == 1.0  # 4 classes
    confusion = pd.read_csv(tmp_path / "cm.csv", index_col=0)
    assert list(confusion.columns) == ["char_0", "char_1", "char_2", "char_3"]
    assert confusion.to_numpy().sum() == 8  # 2 test images per class
    assert record["metrics"]["top1"] == np.trace(confusion.to_numpy()) / 8
    per_class = pd.read_csv(tmp_path / "pc.csv")
    assert per_class["images"].tolist() == [2, 2, 2, 2]
    assert per_class["accuracy"].mean() == pytest.approx(record["metrics"]["mean_class_acc"])


def test_annotated_copies_of_same_named_images_do_not_overwrite(trained, tmp_path):
    data, run = trained
    # the same file name in two folders: both annotated copies must survive
    first = next((data / "faces" / "char_0").glob("*.png"))
    twin = tmp_path / "elsewhere" / first.name
    twin.parent.mkdir()
    twin.write_bytes(next((data / "faces" / "char_1").glob("*.png")).read_bytes())
    assert _cli("predict", "--checkpoint", str(run), str(first), str(twin), "--annotate", str(tmp_path / "ann")) == 0
    assert len(list((tmp_path / "ann").glob("*.png"))) == 2


def test_annotated_copy_is_wide_enough_for_its_longest_line(tmp_path):
    from PIL import Image, ImageFont

    from animesion_lib.annotate import annotate_image

    Image.new("RGB", (32, 32), (9, 9, 9)).save(tmp_path / "face.png")
    line = "aoi_tachibana_(blue_archive_line) 0.93"
    out = annotate_image(tmp_path / "face.png", tmp_path / "out" / "face.png", [line, "smile"])
    with Image.open(out) as annotated:
        assert annotated.width >= ImageFont.load_default().getlength(line)
        assert annotated.height == 32 + 2 * 12 + 6  # the image below a band of two lines


def test_trained_run_reads_its_config_as_a_dataclass(trained):
    from animesion_lib.config import TrainConfig
    from animesion_lib.run import TrainedRun

    data, run_dir = trained
    run = TrainedRun.load(run_dir)
    assert isinstance(run.config, TrainConfig)
    assert run.config == TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    assert (run.config.image_size, run.config.model, run.config.predict_tags) == (32, "vit_micro_p8", True)
    assert run.checkpoint == run_dir / "checkpoints" / "epoch_0001"
    assert TrainedRun.load(run.checkpoint).config == run.config  # a checkpoint folder reads the same
    assert run.classes == ["char_0", "char_1", "char_2", "char_3"] and not run.reads_text
    assert run.tokenizer is None and len(run.tag_vocab) == 9  # hair_0..3, eyes_0..3, smile
    test = run.open_split("test")
    assert (len(test), test.image_size, test.train) == (8, 32, False)


def test_trained_run_refuses_a_checkpoint_of_another_model(trained, tmp_path):
    import shutil

    from animesion_lib.run import TrainedRun

    ckpt = tmp_path / "epoch_0001"
    shutil.copytree(trained[1] / "checkpoints" / "epoch_0001", ckpt)
    meta = json.loads((ckpt / "meta.json").read_text())
    (ckpt / "meta.json").write_text(json.dumps({**meta, "classes": meta["classes"][:3]}))
    with pytest.raises(CheckpointError, match="num_classes: model 4 vs files 3"):
        TrainedRun.load(ckpt)
    (ckpt / "meta.json").write_text(json.dumps({**meta, "model_config": {**meta["model_config"], "num_classes": 5}}))
    with pytest.raises(CheckpointError, match=r"shapes differ from the model: head.fc.bias: checkpoint \(4,\) vs model \(5"):
        TrainedRun.load(ckpt)
    (ckpt / "meta.json").write_text(json.dumps({**meta, "train_config": {**meta["train_config"], "colour": 1}}))
    with pytest.raises(CheckpointError, match="fields TrainConfig does not know: colour"):
        TrainedRun.load(ckpt)


def test_predictor_gives_the_models_softmax_and_keeps_one_model(trained, monkeypatch):
    from PIL import Image

    from animesion_lib import checkpoint
    from animesion_lib.run import TrainedRun

    data, run_dir = trained
    run = TrainedRun.load(run_dir)
    predictor = run.predictor()
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: pytest.fail("the predictor reloaded the model"))
    test = run.open_split("test")
    paths = [s.path for s in test.samples]
    preds, skipped = predictor.predict(paths, top_k=4, batch_size=3)
    with torch.no_grad():
        out = run.model(torch.stack([test[i]["image"] for i in range(len(test))]))
    expected = out["logits"].softmax(dim=1)
    assert skipped == [] and [p["image"] for p in preds] == [str(p) for p in paths]
    for pred, row in zip(preds, expected):
        assert [t["class_id"] for t in pred["top_k"]] == row.argsort(descending=True).tolist()
        expected_probabilities = row.sort(descending=True).values.tolist()
        assert [t["probability"] for t in pred["top_k"]] == pytest.approx(expected_probabilities, abs=1e-6)
        assert sum(t["probability"] for t in pred["top_k"]) == pytest.approx(1.0)
    threshold = run.tuned_tag_threshold()
    assert threshold == run.meta["metrics"]["val_tag_threshold_tuned"]
    tag_probs = torch.sigmoid(out["tag_logits"][0])
    assert {t["tag"] for t in preds[0]["tags"]} == {
        run.tag_vocab.tags[j] for j in range(len(run.tag_vocab)) if tag_probs[j] >= threshold}
    # PIL images, and a second call on the same predictor: the same answers
    again, _ = predictor.predict([Image.open(paths[0]).convert("RGB")], top_k=4)
    assert again[0]["image"] == "image 0"
    first = [t["probability"] for t in preds[0]["top_k"]]
    assert [t["probability"] for t in again[0]["top_k"]] == pytest.approx(first, abs=1e-6)


@pytest.fixture(scope="module")
def trained_vilt(tmp_path_factory):
    from animesion_lib.train import TrainConfig, train

    root = tmp_path_factory.mktemp("predict_vilt")
    data = write_tiny_dataset(root / "data", per_class={"train": 8, "val": 2, "test": 2})
    train(TrainConfig(data=str(data), out_dir=str(root / "run"), model="vilt_micro_p8", model_kwargs={"depth": 1},
                      image_size=32, epochs=1, batch_size=8, threads=1, progress=False, max_text_len=8,
                      eval_text_modes="tags,none"))
    return data, root / "run"


def test_a_multimodal_run_names_every_metric_with_its_text_mode(trained_vilt):
    from animesion_lib.run import TrainedRun

    run = TrainedRun.load(trained_vilt[1])
    evaluated = {k for k in run.meta["metrics"] if k.startswith("val_")}
    metrics = ("top1", "top5", "mean_class_acc", "loss")
    assert evaluated == {f"val_{mode}.{m}" for mode in ("tags", "notags") for m in metrics}


def test_predictor_feeds_each_image_its_own_tags_or_none(trained_vilt):
    from animesion_lib.run import TrainedRun

    run = TrainedRun.load(trained_vilt[1])
    assert run.reads_text
    predictor = run.predictor()
    test = run.open_split("test")
    paths, tags = [s.path for s in test.samples[:2]], [list(s.tags) for s in test.samples[:2]]
    images = torch.stack([test[i]["image"] for i in range(2)])
    encoded = run.tokenizer.encode_batch(tags, max_length=run.config.max_text_len)
    with torch.no_grad():
        image_only = run.model(images)["logits"].softmax(dim=1)
        with_tags = run.model(images, **encoded)["logits"].softmax(dim=1)

    def probabilities(predictions):
        return np.array([sorted(t["probability"] for t in p["top_k"]) for p in predictions])

    none, _ = predictor.predict(paths, top_k=4)
    own, _ = predictor.predict(paths, top_k=4, tags=tags)
    mixed, _ = predictor.predict(paths, top_k=4, tags=[tags[0], []])  # the second image: no text at all
    np.testing.assert_allclose(probabilities(none), image_only.sort().values.numpy(), atol=1e-6)
    np.testing.assert_allclose(probabilities(own), with_tags.sort().values.numpy(), atol=1e-6)
    assert np.abs(probabilities(own) - probabilities(none)).max() > 1e-4  # the tags change the answer
    np.testing.assert_allclose(probabilities(mixed), [probabilities(own)[0], probabilities(none)[1]], atol=1e-6)
    with pytest.raises(ValueError, match="3 tag lists for 2 images"):
        predictor.predict(paths, tags=[["a"], ["b"], ["c"]])


def test_a_damaged_tokenizer_file_is_named_when_the_run_is_loaded(trained_vilt, tmp_path):
    import shutil

    from animesion_lib.errors import CheckpointError
    from animesion_lib.run import TrainedRun, load_text_files

    run_dir = tmp_path / "run"
    shutil.copytree(trained_vilt[1], run_dir)
    ckpt = TrainedRun.load(run_dir).checkpoint
    tokenizer = ckpt / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"[MASK]"', '"[MASQ]"', 1))  # still valid JSON
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: damaged"):
        load_text_files(run_dir)
