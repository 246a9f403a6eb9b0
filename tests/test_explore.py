"""The model explorer's logic on runs trained here: uploads, tag effects, attention maps, the widget."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animesion_lib.errors import DatasetError
from animesion_lib.explore import (LoadedRun, ModelExplorer, image_from_bytes, prediction_table, runs_for_data,
                                   tag_effects, tag_table)
from train_fixtures import write_tiny_dataset

UPLOADED = datetime(2026, 1, 1, tzinfo=timezone.utc)  # FileUpload's value carries a datetime


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset and two runs on it: a multimodal tagging ViLT and an image-only ViT."""
    from animesion_lib.train import TrainConfig, train

    root = tmp_path_factory.mktemp("explore")
    data = write_tiny_dataset(root / "data", per_class={"train": 8, "val": 2, "test": 2})
    for model, extra in (("vilt_micro_p8", {"max_text_len": 8}), ("vit_micro_p8", {})):
        train(TrainConfig(data=str(data), out_dir=str(root / "runs" / model), model=model, model_kwargs={"depth": 2},
                          image_size=32, epochs=1, batch_size=8, threads=1, progress=False, predict_tags=True, **extra))
    return data, root / "runs"


@pytest.fixture(scope="module")
def vilt(trained):
    return LoadedRun(trained[1] / "vilt_micro_p8")


def _png(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_uploaded_png_gets_the_same_table_as_animesion_predict(trained, vilt):
    from animesion_lib.prediction import predict_images

    data, runs = trained
    path = data / "faces" / "char_1" / "test_0.png"
    answer = vilt.answer(image_from_bytes(_png(path), "upload.png"), tags=["hair_1"], top_k=3)
    (expected,), _ = predict_images(runs / "vilt_micro_p8", [path], top_k=3, tags=["hair_1"], device="cpu")
    table = prediction_table(answer, truth="char_1")
    assert list(table.index) == [1, 2, 3] and table.index.name == "rank"
    assert [n.removesuffix(" ✓") for n in table["character"]] == [c["class_name"] for c in expected["top_k"]]
    assert table["probability"].tolist() == [round(c["probability"], 3) for c in expected["top_k"]]
    assert ("char_1 ✓" in table["character"].tolist()) == ("char_1" in [c["class_name"] for c in expected["top_k"]])
    assert [t for t, _ in answer.tags] == [t["tag"] for t in expected["tags"]]
    (alone,), _ = predict_images(runs / "vilt_micro_p8", [path], top_k=3, device="cpu")  # no tags: no text input
    image_only = vilt.answer_many(image_from_bytes(_png(path), "upload.png"), [[], ["hair_1"]], top_k=3)[0]
    assert [(c["class_name"], round(c["probability"], 5)) for c in alone["top_k"]] == [
        (name, round(p, 5)) for name, p in image_only.characters]


def test_an_upload_that_is_not_an_image_names_the_file():
    with pytest.raises(DatasetError, match="holiday.png: cannot decode the uploaded image"):
        image_from_bytes(b"not a png at all", "holiday.png")


def test_tag_effects_rows_are_the_answers_for_those_tag_sets(trained, vilt):
    image = Image.open(trained[0] / "faces" / "char_0" / "test_1.png")
    effects = tag_effects(vilt, image, ["hair_0", "eyes_0"], candidates=["smile", "hair_0"])
    assert list(effects.index) == ["as given", "− hair_0", "− eyes_0", "+ smile", "no tags"]
    assert effects["given"].tolist() == [2, 1, 1, 3, 0]
    for label, tags in (("− hair_0", ["eyes_0"]), ("+ smile", ["hair_0", "eyes_0", "smile"]), ("no tags", [])):
        name, p = vilt.answer(image, tags, top_k=1).characters[0]
        assert effects.loc[label, "top character"] == name
        assert effects.loc[label, "probability"] == pytest.approx(round(p, 3), abs=1e-3)
    reference = effects.loc["as given", "top character"]
    assert effects.loc["as given", f"p({reference})"] == effects.loc["as given", "probability"]


def test_tag_table_marks_the_tags_the_image_really_has(trained, vilt):
    answer = vilt.answer(Image.open(trained[0] / "faces" / "char_2" / "test_0.png"), top_k=2)
    table = tag_table(answer, true_tags=["hair_2", "eyes_2"])
    assert list(table.columns) == ["tag", "probability", "true"]
    assert table["true"].tolist() == [t in ("hair_2", "eyes_2") for t, _ in answer.tags]
    assert (table["probability"] >= round(vilt.threshold(given_tags=False), 3)).all()


@pytest.mark.parametrize("model, tags", [("vit_micro_p8", ()), ("vilt_micro_p8", ()), ("vilt_micro_p8", ("hair_3",))])
def test_attention_map_is_the_last_blocks_cls_row_over_patches(trained, model, tags):
    run = LoadedRun(trained[1] / model)
    image = Image.open(trained[0] / "faces" / "char_3" / "test_0.png")
    attention = run.answer(image, tags, attention=True).attention
    assert attention.shape == (4, 4)  # 32 px in 8 px patches
    assert attention.min() >= 0 and attention.sum() == pytest.approx(1.0, abs=1e-5)
    # the models' own (re-computed) attention weights, [CLS] row over the patches, per head renormalised
    pixels = run.transform(image).unsqueeze(0)
    text = run.tokenizer.encode_batch([list(tags)], max_length=run.max_text_len) if tags else {}
    weights = run.model.attention_maps(pixels, *text.values())[0, :, 0, 1:17]
    expected = (weights / weights.sum(-1, keepdim=True)).mean(0).reshape(4, 4)
    np.testing.assert_allclose(attention, expected.numpy(), atol=1e-5)


def test_runs_are_found_by_the_data_they_were_trained_on(trained, tmp_path):
    data, runs = trained
    assert set(runs_for_data(runs, data)) == {"vilt_micro_p8", "vit_micro_p8"}
    other = write_tiny_dataset(tmp_path / "other", classes=3)
    assert runs_for_data(runs, other) == {}


def test_the_widget_answers_an_upload_without_reloading_the_model(trained, monkeypatch):
    import animesion_lib.checkpoint as checkpoint
    from animesion_lib.data import read_split

    loads = []
    real_load = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    data, runs = trained
    explorer = ModelExplorer(runs_for_data(runs, data), read_split(data, "dafre_faces", "test", with_tags=True))
    explorer.run_picker.value = "vilt_micro_p8"
    png = _png(data / "faces" / "char_2" / "test_1.png")
    explorer.upload.value = ({"name": "mine.png", "type": "image/png", "size": len(png), "content": memoryview(png),
                              "last_modified": UPLOADED},)
    assert "<h4>mine.png</h4>" in explorer.tables.value and "animesion-prediction" in explorer.tables.value
    assert "as tags are taken away or added" in explorer.tables.value
    explorer.tags.value = ["hair_2"]
    explorer.top_k.value = 2
    explorer.run_picker.value = "vit_micro_p8"
    assert explorer.tags.disabled and "as tags are taken away" not in explorer.tables.value
    explorer.run_picker.value = "vilt_micro_p8"
    assert len(loads) == 2  # one load per run, however many changes
    assert explorer.picture.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_widget_reports_a_broken_upload_instead_of_raising(trained):
    data, runs = trained
    explorer = ModelExplorer(runs_for_data(runs, data))
    assert explorer.status.value == "upload an image to start"
    explorer.upload.value = ({"name": "broken.png", "type": "image/png", "size": 3, "content": memoryview(b"abc"),
                              "last_modified": UPLOADED},)
    assert "broken.png: cannot decode the uploaded image" in explorer.status.value


def test_a_run_without_checkpoints_is_not_listed(tmp_path, trained):
    (tmp_path / "empty-run").mkdir()
    assert runs_for_data(tmp_path, trained[0]) == {}
    with pytest.raises(ValueError, match="no run to explore"):
        ModelExplorer({})


# ------------------------------------------------------------------------------ dataset explorer


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from animesion_lib.data.synthetic import SyntheticConfig, make_synthetic

    root = tmp_path_factory.mktemp("synthetic") / "data"
    make_synthetic(root, SyntheticConfig(classes=8, images=120, size=16, min_per_class=5, seed=3, card=False,
                                         progress=False))
    return root


def test_twin_pairs_are_the_generators_pairs_with_what_differs(synthetic):
    import json

    from animesion_lib.explore_data import twin_pairs

    table = {c["name"]: c for c in json.loads((synthetic / "characters.json").read_text())}
    pairs = twin_pairs(synthetic)
    assert len(pairs) == sum(bool(c["twin_of"]) for c in table.values()) // 2 > 0
    for a, b, what in pairs:
        assert a < b and table[a]["twin_of"] == b and table[b]["twin_of"] == a
        key = what.split(":")[0]
        assert table[a]["attributes"][key] != table[b]["attributes"][key]


def test_images_per_class_counts_every_split(synthetic):
    import json

    from animesion_lib.explore_data import images_per_class

    recorded = {c["name"]: c["images"] for c in json.loads((synthetic / "characters.json").read_text())}
    assert dict(images_per_class(synthetic)) == recorded
    assert sum(recorded.values()) == 120


def test_real_images_are_drawn_only_in_a_live_session(trained, synthetic, monkeypatch):
    from animesion_lib.explore_data import check_may_show_images, plot_class

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    check_may_show_images(synthetic)  # synthetic: always
    with pytest.raises(DatasetError, match="real images are shown only in a live JupyterLab session"):
        plot_class(trained[0], "char_0")
    monkeypatch.setenv("JPY_SESSION_NAME", "08_inference.ipynb")
    figure = plot_class(trained[0], "char_0", images=5)
    assert sum(bool(ax.images) for ax in figure.axes) == 5


def test_the_dataset_explorer_draws_the_picked_class(synthetic):
    from animesion_lib.explore_data import DatasetExplorer, class_names, images_per_class, plot_long_tail, plot_twins

    explorer = DatasetExplorer(synthetic)
    largest, size = images_per_class(synthetic).most_common(1)[0]
    assert explorer.picker.value == largest and explorer.picker.options[0][0] == f"{largest} ({size})"
    explorer.picker.value = class_names(synthetic)[1]
    tail = plot_long_tail(synthetic, highlight=class_names(synthetic)[1])
    assert tail.axes[0].get_legend().get_texts()[0].get_text() == class_names(synthetic)[1]
    assert sum(bool(ax.images) for ax in plot_twins(synthetic, pairs=1).axes) == 2
