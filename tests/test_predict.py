"""animesion predict / evaluate on a checkpoint trained here: outputs, errors that name the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from animesion_lib.errors import DatasetError
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
    first = preds[0]
    assert len(first["top_k"]) == 3
    probs = [t["probability"] for t in first["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert first["top_k"][0]["class_name"].startswith("char_")
    assert "tags" in first  # the model has a tag head
    assert len(list((tmp_path / "ann").glob("*.png"))) == n
    assert "char_" in capsys.readouterr().out

    assert _cli("predict", "--checkpoint", str(run), str(folder), "--output", str(tmp_path / "p.csv")) == 0
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == n and rows[0]["class_1"].startswith("char_") and float(rows[0]["prob_1"]) > 0


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
    assert {"top1", "top5", "mean_class_acc", "tag_map_macro", "tag_f1_tuned"} <= set(record["metrics"])
    lines = (tmp_path / "cm.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0] == ",char_0,char_1,char_2,char_3"
    assert len((tmp_path / "pc.csv").read_text().splitlines()) == 5


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

    from animesion_lib.evaluate import annotate_image

    Image.new("RGB", (32, 32), (9, 9, 9)).save(tmp_path / "face.png")
    line = "aoi_tachibana_(blue_archive_line) 0.93"
    out = annotate_image(tmp_path / "face.png", tmp_path / "out" / "face.png", [line, "smile"])
    with Image.open(out) as annotated:
        assert annotated.width >= ImageFont.load_default().getlength(line)
        assert annotated.height == 32 + 2 * 12 + 6  # the image below a band of two lines
