"""The decoded-image cache: same pixels as the uncached path, atomic, keyed, outside the data."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animesion_lib.data import DanbooruFaces, DecodedImageCache, write_classes, write_split
from animesion_lib.errors import DatasetError


def make_faces(root: Path, count: int = 6) -> Path:
    """``count`` noisy 20 px JPEGs in two classes, DAF:re faces layout, train = test."""
    (root / "labels").mkdir(parents=True)
    write_classes(root / "labels" / "classid_classname.csv", ["alice", "bob"])
    rows = []
    for i in range(count):
        rel = f"c{i % 2}/{i}.jpg"
        (root / "faces" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.effect_noise((20, 20), 40 + 10 * i).convert("RGB").save(root / "faces" / rel)
        rows.append((i % 2, rel))
    write_split(root / "labels" / "train.csv", rows)
    write_split(root / "labels" / "test.csv", rows)
    return root


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("ANIMESION_CACHE_DIR", str(folder))
    return folder


def cache_folders(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.iterdir()) if cache_dir.exists() else []


def test_eval_item_from_cache_equals_uncached(tmp_path, cache_dir):
    root = make_faces(tmp_path / "data")
    plain = DanbooruFaces(root, "test", image_size=16)
    cached = DanbooruFaces(root, "test", image_size=16, cache=True)
    assert cached.cache is not None and len(cache_folders(cache_dir)) == 1
    for i in range(len(plain)):
        diff = (plain[i]["image"] - cached[i]["image"]).abs().max().item()
        assert diff < 1e-6, f"item {i} differs by {diff}"
        assert plain[i]["label"] == cached[i]["label"]


def test_train_cache_stores_the_larger_side_and_augments_per_epoch(tmp_path, cache_dir):
    root = make_faces(tmp_path / "data")
    ds = DanbooruFaces(root, "train", image_size=16, cache=True)
    assert ds.cache.side == 20 and ds.cache.pixels.shape == (6, 20, 20, 3)  # 1.25 x size below 128 px
    assert ds.cache.pixels.dtype == np.uint8
    torch.manual_seed(0)
    a, b = ds[0]["image"], ds[0]["image"]
    assert a.shape == (3, 16, 16) and not torch.equal(a, b)  # the random stage still runs
    # same distribution as uncached: both draw from the same crops of the same resized pixels
    uncached = DanbooruFaces(root, "train", image_size=16)
    torch.manual_seed(1)
    x = uncached[3]["image"]
    torch.manual_seed(1)
    assert torch.equal(x, ds[3]["image"])


def test_cache_is_reused_and_keyed_by_split_and_resolution(tmp_path, cache_dir):
    root = make_faces(tmp_path / "data")
    DanbooruFaces(root, "test", image_size=16, cache=True)
    stamp = {p: p.stat().st_mtime_ns for p in cache_dir.rglob("pixels.npy")}
    DanbooruFaces(root, "test", image_size=16, cache=True)
    assert {p: p.stat().st_mtime_ns for p in cache_dir.rglob("pixels.npy")} == stamp  # not rebuilt
    DanbooruFaces(root, "test", image_size=24, cache=True)
    DanbooruFaces(root, "train", image_size=16, cache=True)
    names = [p.name for p in cache_folders(cache_dir)]
    assert len(names) == 3 and any("-test-24px-" in n for n in names) and any("-train-20px-" in n for n in names)


def test_changed_data_gets_a_new_cache(tmp_path, cache_dir):
    root = make_faces(tmp_path / "data")
    DanbooruFaces(root, "test", image_size=16, cache=True)
    Image.new("RGB", (20, 20), (255, 0, 0)).save(root / "faces" / "c0" / "0.jpg", quality=50)
    ds = DanbooruFaces(root, "test", image_size=16, cache=True)
    assert len(cache_folders(cache_dir)) == 2
    assert ds[0]["image"][0].mean() > 0.8  # the new red image, not the stale noise


def test_interrupted_build_leaves_nothing(tmp_path, cache_dir):
    root = make_faces(tmp_path / "data")
    calls = 0

    def load(i):
        nonlocal calls
        calls += 1
        if i == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build
        return Image.new("RGB", (8, 8))

    with pytest.raises(KeyboardInterrupt):
        DecodedImageCache.open_or_build(6, load, key="k", side=8, names=list("abcdef"), cache_dir=cache_dir)
    assert calls == 4 and cache_folders(cache_dir) == []  # no half cache, no temp folder
    built = DecodedImageCache.open_or_build(6, lambda i: Image.new("RGB", (8, 8), (i, 0, 0)), key="k",
                                            side=8, names=list("abcdef"), cache_dir=cache_dir)
    assert len(built) == 6 and built[5][0, 0].tolist() == [5, 0, 0]
    assert [p.name for p in cache_folders(cache_dir)] == ["k"]


def test_cache_build_stops_on_a_bad_image_and_skip_records_it(tmp_path, cache_dir):
    root = make_faces(tmp_path / "data")
    bad = root / "faces" / "c1" / "3.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="cannot decode image") as err:
        DanbooruFaces(root, "test", image_size=16, cache=True)
    assert str(bad) in str(err.value) and err.value.row == 4
    assert cache_folders(cache_dir) == []

    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        ds = DanbooruFaces(root, "test", image_size=16, cache=True, on_error="skip")
    assert ds.skipped == [bad] and len(ds) == 5 and [ds[i]["index"] for i in range(5)] == list(range(5))
    assert [s.rel for s in ds.samples] == ["c0/0.jpg", "c1/1.jpg", "c0/2.jpg", "c0/4.jpg", "c1/5.jpg"]
    # the cache remembers the bad image: opening it with on_error="raise" still raises
    with pytest.raises(DatasetError, match="row 4"):
        DanbooruFaces(root, "test", image_size=16, cache=True)


def test_cache_must_live_outside_the_dataset(tmp_path):
    root = make_faces(tmp_path / "data")
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        DanbooruFaces(root, "test", image_size=16, cache=root / "cache")
    assert not (root / "cache").exists()


def test_explicit_cache_path_and_pickling_for_workers(tmp_path, cache_dir):
    root = make_faces(tmp_path / "data")
    ds = DanbooruFaces(root, "test", image_size=16, cache=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere").is_dir() and cache_folders(cache_dir) == []
    ds[0]  # opens the memory map
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.cache._pixels is None  # workers reopen the map instead of copying the pixels
    assert torch.equal(clone[2]["image"], ds[2]["image"])


@pytest.mark.real_data
def test_holo14_cache_matches_uncached(holo14, cache_dir):
    plain = DanbooruFaces(holo14, "val", image_size=32)
    cached = DanbooruFaces(holo14, "val", image_size=32, cache=True)
    for i in range(0, len(plain), 97):
        assert (plain[i]["image"] - cached[i]["image"]).abs().max() < 1e-6


def test_device_augment_items_are_the_cached_uint8_pixels(tmp_path, cache_dir):
    root = make_faces(tmp_path / "data")
    cached = DanbooruFaces(root, "train", image_size=16, cache=True, device_augment=True)
    uncached = DanbooruFaces(root, "train", image_size=16, device_augment=True)
    for i in range(len(cached)):
        image = cached[i]["image"]
        assert image.dtype == torch.uint8 and image.shape == (20, 20, 3)  # the resize stage's output
        assert torch.equal(image, torch.from_numpy(np.array(cached.cache[cached.cache_rows[i]])))
        assert torch.equal(image, uncached[i]["image"])  # no randomness left in the loader
