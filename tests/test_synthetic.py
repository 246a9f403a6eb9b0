"""The synthetic Danbooru generator: layout, determinism, class statistics, tags, card, CLI."""

from __future__ import annotations

import ast
import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from animesion_lib.cli import main
from animesion_lib.data.synthetic import SyntheticConfig, make_synthetic, split_counts
from animesion_lib.errors import AnimesionError

SPLITS = ("train", "val", "test")
TINY = dict(classes=5, images=90, size=16, min_per_class=12, progress=False, card=False)


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [row for row in csv.reader(f) if row]


def read_tags(path: Path) -> tuple[list[str], list[tuple[int, str, list[str]]]]:
    rows = read_rows(path)
    return rows[0], [(int(c), d, ast.literal_eval(t)) for c, d, t in rows[1:]]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, object]:
    """The smoke preset, with its difficulty card: the dataset most tests look at."""
    root = tmp_path_factory.mktemp("synthetic") / "smoke"
    summary = make_synthetic(root, SyntheticConfig.from_profile("smoke", progress=False))
    return root, summary


def test_writes_the_dafre_layout(smoke):
    root, summary = smoke
    classes = read_rows(root / "labels" / "classid_classname.csv")
    assert [int(c) for c, _ in classes] == list(range(12))
    names = [n for _, n in classes]
    assert names == sorted(names) and len(set(names)) == 12
    assert all(n.endswith(")") and "_(" in n for n in names)  # given_family_(series)
    total = 0
    for split in SPLITS:
        rows = read_rows(root / "labels" / f"{split}.csv")
        header, tagged = read_tags(root / "labels" / f"{split}_tags.csv")
        assert header == ["class_id", "dir", "tags_cat0"]
        assert [(int(c), d) for c, d in rows] == [(c, d) for c, d, _ in tagged]
        for class_id, rel, tags in tagged:
            assert 0 <= class_id < 12
            assert (root / "faces" / rel).is_file() and (root / "fullMin256" / rel).is_file()
            assert isinstance(tags, list) and all(isinstance(t, str) and t for t in tags)
        total += len(rows)
    assert total == summary.num_images == 400
    characters = json.loads((root / "characters.json").read_text())
    assert [c["name"] for c in characters] == names


def test_image_sizes(smoke):
    from PIL import Image

    root, _ = smoke
    _, rel = read_rows(root / "labels" / "test.csv")[0]
    with Image.open(root / "faces" / rel) as face, Image.open(root / "fullMin256" / rel) as full:
        assert face.size == (32, 32) and face.mode == "RGB" and face.format == "JPEG"
        assert full.size == (64, 64)


def test_class_sizes_are_long_tailed_with_a_minimum(smoke):
    root, _ = smoke
    counts = Counter(int(c) for s in SPLITS for c, _ in read_rows(root / "labels" / f"{s}.csv"))
    assert min(counts.values()) >= 20
    assert max(counts.values()) >= 2 * min(counts.values())


def test_split_is_stratified_per_class(smoke):
    root, _ = smoke
    per_split = {s: Counter(int(c) for c, _ in read_rows(root / "labels" / f"{s}.csv")) for s in SPLITS}
    for class_id in range(12):
        n = sum(per_split[s][class_id] for s in SPLITS)
        assert tuple(per_split[s][class_id] for s in SPLITS) == split_counts(n, (0.7, 0.1, 0.2))
        assert per_split["val"][class_id] >= 1 and per_split["test"][class_id] >= 1
    assert split_counts(20, (0.7, 0.1, 0.2)) == (14, 2, 4)


def test_tags_look_like_danbooru(smoke):
    root, _ = smoke
    tagged = [t for s in SPLITS for _, _, t in read_tags(root / "labels" / f"{s}_tags.csv")[1]]
    per_image = [len(t) for t in tagged]
    assert 15 <= sum(per_image) / len(per_image) <= 25
    vocabulary = Counter(t for tags in tagged for t in tags)
    assert len(vocabulary) >= 150
    assert all(t == t.lower() and " " not in t for t in vocabulary)
    assert vocabulary["solo"] > len(tagged) / 2 and "1girl" in vocabulary
    assert all(tags == sorted(set(tags)) for tags in tagged)  # sorted, no duplicates


def test_near_twins_differ_in_one_attribute(smoke):
    root, _ = smoke
    characters = {c["name"]: c for c in json.loads((root / "characters.json").read_text())}
    twins = [c for c in characters.values() if c["twin_of"]]
    assert twins, "the smoke preset should contain at least one near-twin pair"
    for c in twins:
        other = characters[c["twin_of"]]
        assert other["twin_of"] == c["name"]
        differing = [k for k in c["attributes"] if c["attributes"][k] != other["attributes"][k]]
        assert differing in (["eye_colour"], ["bangs"], ["accessories"], ["mark"], ["ahoge"],
                             ["accent"], ["eye_colour", "accent"], ["bangs", "accent"],
                             ["accessories", "accent"], ["mark", "accent"], ["ahoge", "accent"])


def test_difficulty_card(smoke):
    root, summary = smoke
    card = json.loads((root / "difficulty_card.json").read_text())
    assert card == json.loads(json.dumps(summary.card))
    acc = card["accuracy"]
    assert acc["chance"] == pytest.approx(1 / 12, abs=1e-4)
    for key in ("majority", "tags_lr", "image_lr", "tags_image_lr"):
        for split in ("val", "test"):
            assert 0.0 <= acc[key][split] <= 1.0
    # neither modality alone may solve it; both beat the majority class
    for key in ("tags_lr", "image_lr"):
        assert acc["majority"]["test"] < acc[key]["test"] < 0.97
    assert card["tags"]["per_image"]["min"] <= card["tags"]["per_image"]["mean"] <= card["tags"]["per_image"]["max"]
    assert card["class_size"]["min"] >= 20 and sum(card["class_size"]["histogram"]["counts"]) == 12
    assert set(card["attributes"]) >= {"hair_colour", "hair_style", "eye_colour", "accessories"}
    assert sum(card["attributes"]["hair_colour"].values()) == 12
    assert card["generator"]["seed"] == 0 and card["generator"]["attribute_tag_keep"] < 1
    markdown = (root / "difficulty_card.md").read_text()
    assert "tags only" in markdown and str(acc["tags_lr"]["test"]) in markdown


def _label_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "labels").iterdir())}


def test_same_seed_same_bytes_any_workers(tmp_path):
    a = make_synthetic(tmp_path / "a", SyntheticConfig(seed=3, **TINY)).root
    b = make_synthetic(tmp_path / "b", SyntheticConfig(seed=3, workers=2, **TINY)).root
    assert _label_files(a) == _label_files(b)
    assert (a / "characters.json").read_bytes() == (b / "characters.json").read_bytes()
    rels = [d for _, d in read_rows(a / "labels" / "train.csv")][::7]
    assert rels
    for rel in rels:
        assert (a / "faces" / rel).read_bytes() == (b / "faces" / rel).read_bytes()
        assert (a / "fullMin256" / rel).read_bytes() == (b / "fullMin256" / rel).read_bytes()


def test_different_seeds_differ(tmp_path):
    a = make_synthetic(tmp_path / "a", SyntheticConfig(seed=1, **TINY)).root
    b = make_synthetic(tmp_path / "b", SyntheticConfig(seed=2, **TINY)).root
    assert read_rows(a / "labels" / "classid_classname.csv") != read_rows(b / "labels" / "classid_classname.csv")
    assert _label_files(a)["train_tags.csv"] != _label_files(b)["train_tags.csv"]


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "out"
    make_synthetic(out, SyntheticConfig(**TINY))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(AnimesionError, match="not empty"):
        make_synthetic(out, SyntheticConfig(**TINY))
    make_synthetic(out, SyntheticConfig(seed=5, overwrite=True, **TINY))
    assert (out / "notes.txt").read_text() == "mine"  # only the generator's own files are replaced
    assert len(read_rows(out / "labels" / "classid_classname.csv")) == 5


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(AnimesionError, match="at least"):
        make_synthetic(tmp_path / "x", SyntheticConfig(classes=10, images=50, min_per_class=20))


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["make-synthetic", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--profile" in out and "--overwrite" in out and "DAF:re" in out


def test_cli_run(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["make-synthetic", "--out", str(out), "--profile", "smoke", "--classes", "4",
            "--images", "60", "--size", "16", "--min-per-class", "12", "--seed", "7", "--quiet"]
    assert main(argv) == 0
    assert "wrote 60 images of 4 characters" in capsys.readouterr().out
    assert (out / "difficulty_card.md").is_file() and (out / "labels" / "test_tags.csv").is_file()
    assert main(argv) == 2  # refuses to overwrite: one clear line, no traceback
    assert "not empty" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--no-card"]) == 0
    assert not (out / "difficulty_card.md").exists()


def test_reads_back_through_the_dataset_loader(smoke):
    datasets = pytest.importorskip("animesion_lib.data.datasets")
    root, _ = smoke
    faces = datasets.CharacterDataset(root, split="val", layout="dafre_faces", image_size=32,
                                      with_tags=True)
    assert faces.num_classes == 12 and len(faces) == len(read_rows(root / "labels" / "val.csv"))
    item = faces[0]
    assert tuple(item["image"].shape) == (3, 32, 32)
    assert item["label"] == faces.samples[0].class_id and isinstance(item["tags"], list)
    full = datasets.CharacterDataset(root, split="test", layout="dafre_full", image_size=48)
    assert tuple(full[0]["image"].shape) == (3, 48, 48)


def test_stale_folders_are_detected_and_regenerated(tmp_path, monkeypatch, capsys):
    from animesion_lib.data import synthetic

    out = tmp_path / "stamped"
    config = SyntheticConfig(seed=3, **TINY)
    make_synthetic(out, config)
    assert synthetic.is_current(out, config)
    assert not synthetic.is_current(out, SyntheticConfig(seed=4, **TINY))  # other options
    assert not synthetic.is_current(tmp_path / "absent", config)
    # the same options, but written by other generator code (e.g. a recalibrated noise level)
    monkeypatch.setattr(synthetic, "generator_fingerprint", lambda: "older-generator")
    assert not synthetic.is_current(out, config)
    monkeypatch.undo()

    argv = ["make-synthetic", "--out", str(out), "--classes", "5", "--images", "90", "--size", "16",
            "--min-per-class", "12", "--seed", "3", "--quiet", "--no-card", "--if-stale"]
    assert main(argv) == 0 and "up to date" in capsys.readouterr().out
    (out / "generator.json").write_text("{}")  # an older stamp: regenerate, without --overwrite
    assert main(argv) == 0 and "wrote 90 images" in capsys.readouterr().out
    assert synthetic.is_current(out, config)


def test_near_twins_pair_both_ways_and_real_data_has_none(tmp_path):
    from animesion_lib.data.layout import class_file, read_classes
    from animesion_lib.data.twins import near_twins

    root = tmp_path / "syn"
    make_synthetic(root, SyntheticConfig.from_profile("smoke", progress=False, card=False))
    classes = read_classes(class_file(root, "dafre_faces"))
    twins = near_twins(root, classes)
    assert twins and all(twins[twins[c]] == c and twins[c] != c for c in twins)
    assert near_twins(tmp_path, classes) == {}  # no characters.json: no twins known
