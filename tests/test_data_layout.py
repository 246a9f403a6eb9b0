"""The label-file readers, the fingerprint and the transforms: strict, named errors for bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from animesion_lib.data import (
    build_augment,
    build_resize,
    build_transforms,
    data_fingerprint,
    detect_layout,
    read_classes,
    read_split,
    write_classes,
    write_split,
)
from animesion_lib.data.transforms import resize_size
from animesion_lib.errors import DatasetError


def make_labels(root: Path, layout: str = "dafre_faces", images: bool = True) -> Path:
    """Two classes, two rows per split, tags on train; 16 px images when ``images``."""
    image_dir, labels = {"dafre_faces": ("faces", "labels"), "dafre_full": ("fullMin256", "labels"),
                         "moeimouto": ("data", "")}[layout]
    (root / labels).mkdir(parents=True, exist_ok=True)
    write_classes(root / labels / "classid_classname.csv", ["alice", "bob"])
    rows = [(0, "alice/a0.jpg"), (1, "bob/b0.jpg")]
    write_split(root / labels / "train.csv", rows)
    write_split(root / labels / "test.csv", rows)
    write_split(root / labels / "train_tags.csv", [(0, "alice/a0.jpg", ["long_hair", "smile"]), (1, "bob/b0.jpg", [])])
    if images:
        for name in ("alice/a0.jpg", "bob/b0.jpg"):
            (root / image_dir / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (200, 10, 10)).save(root / image_dir / name)
    return root / labels


def assert_names(err: pytest.ExceptionInfo, path: Path, row: int | None) -> None:
    """The error names the file (attribute and message) and, when given, the 1-based row."""
    assert err.value.path == path
    assert str(path) in str(err.value)
    if row is not None:
        assert err.value.row == row
        assert f"row {row}" in str(err.value)


# -- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["dafre_faces", "dafre_full", "moeimouto"])
def test_read_split_every_layout(tmp_path, layout):
    make_labels(tmp_path, layout)
    assert detect_layout(tmp_path) == layout
    samples = read_split(tmp_path, layout, "train")
    assert [(s.class_id, s.rel, s.row) for s in samples] == [(0, "alice/a0.jpg", 1), (1, "bob/b0.jpg", 2)]
    assert samples[0].path.is_absolute() and samples[0].path.is_file()
    assert samples[0].tags is None


def test_read_split_with_tags(tmp_path):
    make_labels(tmp_path)
    samples = read_split(tmp_path, "dafre_faces", "train", with_tags=True)
    assert samples[0].tags == ("long_hair", "smile")
    assert samples[1].tags == ()  # an empty tag list is allowed
    assert samples[0].row == 2  # the header is row 1


def test_label_files_written_and_read_back_exactly(tmp_path):
    """One writer, one reader: tags with quotes survive, a stream is written as it comes, the
    line end is the caller's, and no temporary file is left beside the label file."""
    from animesion_lib.data.layout import format_tags, parse_tags

    labels = tmp_path / "labels"
    labels.mkdir()
    write_classes(labels / "classid_classname.csv", iter(["alice", "bob"]), line_end="\n")
    assert (labels / "classid_classname.csv").read_bytes() == b"0,alice\n1,bob\n"
    rows = [(0, "alice/a0.jpg", ["it's", 'say_"hi"', "smile"]), (1, "bob/b0.jpg", [])]
    write_split(labels / "train_tags.csv", (row for row in rows), with_tags=True)
    write_split(labels / "train.csv", iter(rows), with_tags=False)
    assert (labels / "train.csv").read_bytes() == b"0,alice/a0.jpg\r\n1,bob/b0.jpg\r\n"
    assert (labels / "train_tags.csv").read_text().splitlines()[1] == (
        '0,alice/a0.jpg,"[""it\'s"", \'say_""hi""\', \'smile\']"')
    assert [s.tags for s in read_split(tmp_path, "dafre_faces", "train", with_tags=True)] == [
        ("it's", 'say_"hi"', "smile"), ()]
    assert parse_tags(format_tags(["a", "b"]), labels / "x.csv", 1) == ("a", "b")
    assert sorted(p.name for p in labels.iterdir()) == ["classid_classname.csv", "train.csv", "train_tags.csv"]


def test_markdown_table():
    from animesion_lib.data.statistics import markdown_table

    assert markdown_table(["split", "images"], [["train", "1,234"], ["val", 7]], "lr") == [
        "| split | images |", "| --- | ---: |", "| train | 1,234 |", "| val | 7 |"]
    assert markdown_table(["a"], [])[1] == "| --- |"
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a", "b"], [], "l")


def test_read_classes(tmp_path):
    labels = make_labels(tmp_path)
    assert read_classes(labels / "classid_classname.csv") == ["alice", "bob"]


def test_unknown_layout_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="dafre_faces, dafre_full, moeimouto"):
        read_split(tmp_path, "imagenet", "train")


# -- bad label files: each error names the file and the row --------------------------------


@pytest.mark.parametrize("rel", ["../x.jpg", "alice/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "..\\x.jpg"])
def test_dir_escaping_the_root_is_rejected(tmp_path, rel):
    labels = make_labels(tmp_path)
    (labels / "train.csv").write_text(f"0,alice/a0.jpg\n1,{rel}\n")
    with pytest.raises(DatasetError, match="absolute|escapes") as err:
        read_split(tmp_path, "dafre_faces", "train")
    assert_names(err, labels / "train.csv", 2)


def test_class_id_not_in_class_file(tmp_path):
    labels = make_labels(tmp_path)
    (labels / "train.csv").write_text("0,alice/a0.jpg\n7,bob/b0.jpg\n")
    with pytest.raises(DatasetError, match="class id 7 is not in classid_classname.csv") as err:
        read_split(tmp_path, "dafre_faces", "train")
    assert_names(err, labels / "train.csv", 2)


@pytest.mark.parametrize("content,row", [("0,alice/a0.jpg,extra\n", 1), ("0,alice/a0.jpg\n1\n", 2)])
def test_wrong_column_count(tmp_path, content, row):
    labels = make_labels(tmp_path)
    (labels / "train.csv").write_text(content)
    with pytest.raises(DatasetError, match="expected 2 columns") as err:
        read_split(tmp_path, "dafre_faces", "train")
    assert_names(err, labels / "train.csv", row)


def test_wrong_column_count_in_tag_file(tmp_path):
    labels = make_labels(tmp_path)
    (labels / "train_tags.csv").write_text("class_id,dir,tags_cat0\n0,alice/a0.jpg\n")
    with pytest.raises(DatasetError, match="expected 3 columns") as err:
        read_split(tmp_path, "dafre_faces", "train", with_tags=True)
    assert_names(err, labels / "train_tags.csv", 2)


def test_tag_file_without_header(tmp_path):
    labels = make_labels(tmp_path)
    (labels / "train_tags.csv").write_text("0,alice/a0.jpg,\"['smile']\"\n")
    with pytest.raises(DatasetError, match="header class_id,dir,tags_cat0") as err:
        read_split(tmp_path, "dafre_faces", "train", with_tags=True)
    assert_names(err, labels / "train_tags.csv", 1)


@pytest.mark.parametrize("where", ["split", "classes"])
def test_non_integer_class_id(tmp_path, where):
    labels = make_labels(tmp_path)
    if where == "split":
        path = labels / "train.csv"
        path.write_text("0,alice/a0.jpg\nbob,bob/b0.jpg\n")
        call = lambda: read_split(tmp_path, "dafre_faces", "train")  # noqa: E731
    else:
        path = labels / "classid_classname.csv"
        path.write_text("0,alice\none,bob\n")
        call = lambda: read_classes(path)  # noqa: E731
    with pytest.raises(DatasetError, match="'(bob|one)' is not an integer") as err:
        call()
    assert_names(err, path, 2)


def test_class_file_wrong_columns_and_gaps(tmp_path):
    path = tmp_path / "classid_classname.csv"
    path.write_text("0,alice,extra\n")
    with pytest.raises(DatasetError, match="expected 2 columns") as err:
        read_classes(path)
    assert_names(err, path, 1)
    path.write_text("0,alice\n2,carol\n")
    with pytest.raises(DatasetError, match="missing \\[1\\]") as err:
        read_classes(path)
    assert_names(err, path, None)


@pytest.mark.parametrize(
    "cell,match",
    [
        ("long_hair smile", "not a Python list literal"),
        ("['long_hair', 'smile'", "not a Python list literal"),
        ("__import__('os')", "not a Python list literal"),  # literal_eval, never eval
        ("[1, 2]", "must be a list of strings"),
        ("'smile'", "must be a list of strings"),
        ("{'smile': 1}", "must be a list of strings"),
    ],
)
def test_malformed_tags(tmp_path, cell, match):
    labels = make_labels(tmp_path)
    quoted = '"' + cell.replace('"', '""') + '"'
    (labels / "train_tags.csv").write_text(f"class_id,dir,tags_cat0\n0,alice/a0.jpg,\"['ok']\"\n1,bob/b0.jpg,{quoted}\n")
    with pytest.raises(DatasetError, match=match) as err:
        read_split(tmp_path, "dafre_faces", "train", with_tags=True)
    assert_names(err, labels / "train_tags.csv", 3)


def test_missing_split_names_path_and_lists_present_splits(tmp_path):
    labels = make_labels(tmp_path)
    with pytest.raises(DatasetError, match="split 'val' not found; splits present: train, test") as err:
        read_split(tmp_path, "dafre_faces", "val")
    assert_names(err, labels / "val.csv", None)


def test_missing_class_file(tmp_path):
    labels = make_labels(tmp_path)
    (labels / "classid_classname.csv").unlink()
    with pytest.raises(DatasetError, match="class file not found") as err:
        read_split(tmp_path, "dafre_faces", "train")
    assert_names(err, labels / "classid_classname.csv", None)


def test_detect_layout_fails_clearly(tmp_path):
    with pytest.raises(DatasetError, match="not a known dataset layout"):
        detect_layout(tmp_path)


# -- fingerprint ---------------------------------------------------------------------------


def test_fingerprint_tracks_labels_and_files_not_location(tmp_path):
    root = tmp_path / "a"
    labels = make_labels(root)
    first = data_fingerprint(root)
    assert len(first) == 64 and int(first, 16) >= 0
    assert data_fingerprint(root) == first
    shutil.copytree(root, tmp_path / "b")
    assert data_fingerprint(tmp_path / "b") == first  # same data elsewhere, same fingerprint

    (labels / "test.csv").write_text("1,bob/b0.jpg\n")
    second = data_fingerprint(root)
    assert second != first
    Image.new("RGB", (16, 16)).save(root / "faces" / "alice" / "a1.jpg")
    assert data_fingerprint(root) != second


# -- transforms ----------------------------------------------------------------------------


@pytest.mark.parametrize("size,side", [(128, 160), (224, 256), (64, 80), (32, 40)])
def test_animesion_margin_is_the_papers_at_paper_sizes_and_proportional_below(size, side):
    assert resize_size("animesion", size, train=True) == side


def test_unknown_transform_lists_choices():
    with pytest.raises(ValueError, match="unknown transform 'fancy'; choose one of animesion, plain"):
        build_transforms("fancy", 32, train=True)


@pytest.mark.parametrize("name,train,side", [("animesion", True, 40), ("animesion", False, 32), ("plain", True, 32)])
def test_transform_shapes_and_range(name, train, side):
    assert resize_size(name, 32, train) == side
    image = Image.new("RGB", (50, 40), (255, 0, 128))
    for x in (image, torch.full((3, 40, 50), 7, dtype=torch.uint8)):  # PIL or uint8 tensor in
        out = build_transforms(name, 32, train)(x)
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32
        assert out.min() >= -1 and out.max() <= 1


def test_resize_then_augment_is_the_whole_transform():
    """The cache relies on it: resize (cached) then augment equals the full eval transform."""
    image = Image.effect_noise((40, 40), 64).convert("RGB")
    whole = build_transforms("animesion", 32, train=False)(image)
    staged = build_augment("animesion", 32, False)(build_resize("animesion", 32, False)(image))
    assert torch.equal(whole, staged)
    # and eval is deterministic, train is not
    assert torch.equal(whole, build_transforms("animesion", 32, train=False)(image))
    train = build_transforms("animesion", 32, train=True)
    torch.manual_seed(0)
    assert not torch.equal(train(image), train(image))


# -- animesion info ------------------------------------------------------------------------


def test_info_command_describes_a_dataset(tmp_path, capsys):
    import argparse

    from animesion_lib.cli import info

    make_labels(tmp_path, "moeimouto")
    parser = argparse.ArgumentParser()
    info.add_arguments(parser)
    assert info.run(parser.parse_args([str(tmp_path)])) == 0
    out = capsys.readouterr().out
    assert "layout      moeimouto" in out and "classes     2: alice, bob" in out
    assert "train         2        2  1 / 1 / 1" in out  # images, classes, per-class min/median/max
    assert "tags per image" in out and "0 / 1 / 2" in out  # train_tags: 2 tags and 0 tags
    assert f"fingerprint {data_fingerprint(tmp_path, 'moeimouto')}" in out
