"""CharacterDataset on tiny datasets written here (all three layouts, tags) and on real faces."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from animesion_lib.data import (
    CharacterDataset,
    DanbooruFaces,
    DanbooruFull,
    MoeImouto,
    collate,
    write_classes,
    write_split,
)
from animesion_lib.errors import DatasetError

FOLDERS = {"dafre_faces": ("faces", "labels"), "dafre_full": ("fullMin256", "labels"), "moeimouto": ("data", "")}
TAGS = [["long_hair", "smile"], ["short_hair"], []]


def make_tiny(root: Path, layout: str = "dafre_faces", per_class: int = 3) -> Path:
    """Two classes x ``per_class`` 16 px JPEGs; a train split (with tags) and a test split."""
    image_dir, labels = FOLDERS[layout]
    (root / labels).mkdir(parents=True, exist_ok=True)
    write_classes(root / labels / "classid_classname.csv", ["alice", "bob"])
    rows = []
    for class_id, name in enumerate(["alice", "bob"]):
        (root / image_dir / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            rel = f"{name}/{k}.jpg"
            colour = (40 + 100 * class_id, 20 * k, 90)
            Image.new("RGB", (16 + 4 * k, 16), colour).save(root / image_dir / rel)
            rows.append((class_id, rel, TAGS[k % len(TAGS)]))
    write_split(root / labels / "train.csv", [r[:2] for r in rows])
    write_split(root / labels / "test.csv", [r[:2] for r in rows])
    write_split(root / labels / "train_tags.csv", rows)
    return root


class FakeTokenizer:
    """The tokenizer interface the dataset relies on: [CLS]=2, [PAD]=0, one id per tag."""

    special_token_ids = {0, 1, 2, 3, 4}

    def encode(self, tags, max_length=32, shuffle=False, rng=None):
        tags = list(tags)
        if shuffle:
            (rng or random).shuffle(tags)
        ids = [2] + [5 + sum(map(ord, t)) % 50 for t in tags]
        ids = ids[:max_length]
        mask = [1] * len(ids) + [0] * (max_length - len(ids))
        return {"input_ids": ids + [0] * (max_length - len(ids)), "attention_mask": mask}


class FakeVocab:
    tags = ["long_hair", "short_hair", "smile"]

    def __len__(self):
        return len(self.tags)

    def multi_hot(self, tags):
        return torch.tensor([float(t in tags) for t in self.tags])


@pytest.mark.parametrize("cls,layout", [(DanbooruFaces, "dafre_faces"), (DanbooruFull, "dafre_full"), (MoeImouto, "moeimouto")])
def test_each_layout_loads(tmp_path, cls, layout):
    root = make_tiny(tmp_path, layout)
    ds = cls(root, "train", image_size=24)
    assert ds.layout == layout and ds.train
    assert ds.classes == ["alice", "bob"] and ds.num_classes == 2
    assert len(ds) == 6 and ds.targets == [0, 0, 0, 1, 1, 1]
    item = ds[4]
    assert item["image"].shape == (3, 24, 24) and item["image"].dtype == torch.float32
    assert -1 <= item["image"].min() and item["image"].max() <= 1
    assert item["label"] == 1 and item["index"] == 4
    assert "tags" not in item


def test_eval_is_deterministic_and_train_defaults_follow_split(tmp_path):
    root = make_tiny(tmp_path)
    test = CharacterDataset(root, "test", image_size=16)
    assert not test.train and not test.shuffle_tags
    assert torch.equal(test[0]["image"], test[0]["image"])
    plain = CharacterDataset(root, "train", image_size=16, transform="plain")
    assert torch.equal(plain[0]["image"], test[0]["image"])  # plain: resize + normalise only


def test_tags_tokens_and_targets(tmp_path):
    root = make_tiny(tmp_path)
    ds = DanbooruFaces(root, "train", image_size=16, with_tags=True, tokenizer=FakeTokenizer(),
                       tag_vocab=FakeVocab(), max_text_len=5, shuffle_tags=False)
    item = ds[0]
    assert item["tags"] == ["long_hair", "smile"]
    assert item["input_ids"].dtype == torch.int64 and item["input_ids"].shape == (5,)
    assert item["attention_mask"].tolist() == [1, 1, 1, 0, 0]
    assert item["tag_targets"].tolist() == [1.0, 0.0, 1.0]
    # an empty tag list is allowed: only special tokens come out
    empty = ds[2]
    assert empty["tags"] == []
    assert set(empty["input_ids"].tolist()) <= FakeTokenizer.special_token_ids
    assert empty["tag_targets"].sum() == 0


def test_tags_with_the_real_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("animesion_lib.data.tokenizers")
    root = make_tiny(tmp_path)
    tokenizer = tokenizers.TagTokenizer.from_tag_lists(TAGS)
    vocab = tokenizers.TagVocabulary.from_tag_lists(TAGS)
    ds = DanbooruFaces(root, "train", image_size=16, with_tags=True, tokenizer=tokenizer, tag_vocab=vocab, max_text_len=8)
    empty = ds[2]
    assert empty["input_ids"][0] == tokenizer.cls_token_id
    assert set(empty["input_ids"].tolist()) <= set(tokenizer.special_token_ids)
    assert ds[0]["tag_targets"].sum() == 2


def test_shuffle_follows_torch_seed(tmp_path):
    root = make_tiny(tmp_path)
    ds = DanbooruFaces(root, "train", image_size=16, with_tags=True, tokenizer=FakeTokenizer(), max_text_len=4)
    assert ds.shuffle_tags
    torch.manual_seed(0)
    first = [ds[0]["input_ids"].tolist() for _ in range(8)]
    torch.manual_seed(0)
    assert [ds[0]["input_ids"].tolist() for _ in range(8)] == first
    assert len({tuple(ids) for ids in first}) == 2  # both orders of two tags appear


def test_tokenizer_needs_tags(tmp_path):
    with pytest.raises(ValueError, match="with_tags=True"):
        DanbooruFaces(make_tiny(tmp_path), "train", tokenizer=FakeTokenizer())


def test_collate_through_a_dataloader(tmp_path):
    root = make_tiny(tmp_path)
    ds = DanbooruFaces(root, "train", image_size=16, with_tags=True, tokenizer=FakeTokenizer(),
                       tag_vocab=FakeVocab(), max_text_len=6)
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    assert batch["image"].shape == (4, 3, 16, 16)
    assert batch["label"].tolist() == [0, 0, 0, 1] and batch["label"].dtype == torch.int64
    assert batch["input_ids"].shape == (4, 6) and batch["tag_targets"].shape == (4, 3)
    assert batch["tags"][:3] == TAGS  # a list of lists, not a tensor


# -- unreadable images ---------------------------------------------------------------------


def break_images(root: Path) -> tuple[Path, Path]:
    corrupt = root / "faces" / "alice" / "1.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    missing = root / "faces" / "bob" / "2.jpg"
    missing.unlink()
    return corrupt, missing


def test_corrupt_and_missing_images_name_file_and_row(tmp_path):
    root = make_tiny(tmp_path)
    corrupt, missing = break_images(root)
    ds = DanbooruFaces(root, "train", image_size=16)  # rows are fine, images are read lazily
    label_file = root / "labels" / "train.csv"
    with pytest.raises(DatasetError, match="cannot decode image") as err:
        ds[1]
    assert str(corrupt) in str(err.value) and str(label_file) in str(err.value)
    assert err.value.row == 2 and "row 2" in str(err.value)
    with pytest.raises(DatasetError, match="not found") as err:
        ds[5]
    assert str(missing) in str(err.value) and err.value.row == 6 and "row 6" in str(err.value)


def test_truncated_image_is_an_error(tmp_path):
    root = make_tiny(tmp_path)
    path = root / "faces" / "alice" / "0.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DatasetError, match="cannot decode image") as err:
        DanbooruFaces(root, "train", image_size=16)[0]
    assert err.value.row == 1


def test_skip_reports_every_skipped_file(tmp_path):
    root = make_tiny(tmp_path)
    corrupt, missing = break_images(root)
    with pytest.warns(UserWarning, match="skipped 2 unreadable image") as record:
        ds = DanbooruFaces(root, "train", image_size=16, on_error="skip")
    message = str(record[0].message)
    assert str(corrupt) in message and str(missing) in message and "row 2" in message and "row 6" in message
    assert ds.skipped == [corrupt, missing]
    assert len(ds) == 4 and corrupt not in [s.path for s in ds.samples]
    assert [ds[i]["label"] for i in range(len(ds))] == [0, 0, 1, 1]


def test_unknown_on_error(tmp_path):
    with pytest.raises(ValueError, match="raise, skip"):
        DanbooruFaces(make_tiny(tmp_path), "train", on_error="ignore")


# -- real faces ----------------------------------------------------------------------------


@pytest.mark.real_data
def test_holo14_faces(holo14):
    sizes = {split: len(DanbooruFaces(holo14, split)) for split in ("train", "val", "test")}
    assert all(n > 0 for n in sizes.values()) and sizes["train"] > sizes["test"] > sizes["val"]
    ds = DanbooruFaces(holo14, "val", image_size=64)
    assert ds.num_classes == 14 and set(ds.targets) == set(range(14))
    batch = collate([ds[i] for i in range(0, len(ds), len(ds) // 8)])
    assert batch["image"].shape[1:] == (3, 64, 64)
    assert batch["image"].std() > 0.1  # real pixels, not a blank image


def test_evaluation_keeps_a_seeded_random_subset_of_long_tag_lists(tmp_path):
    """Training and evaluation share one policy when the text is too long: a random subset of the
    tags survives (training: a new draw every epoch; evaluation: one draw per row, repeatable),
    not the alphabetically first ones."""
    tokenizers = pytest.importorskip("animesion_lib.data.tokenizers")
    root = make_tiny(tmp_path)
    many = [f"tag_{i:02d}" for i in range(30)]
    tokenizer = tokenizers.TagTokenizer.from_tag_lists([many])
    ds = DanbooruFaces(root, "train", image_size=16, with_tags=True, tokenizer=tokenizer, max_text_len=6,
                       shuffle_tags=False)
    ds.samples[0] = dataclasses.replace(ds.samples[0], tags=tuple(many))
    kept = [ds[0]["input_ids"].tolist() for _ in range(3)]
    assert kept[0] == kept[1] == kept[2]  # repeatable
    first_five = tokenizer.encode(many, max_length=6)["input_ids"]
    assert kept[0] != first_five  # not the first tags in file order
