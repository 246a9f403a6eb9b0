"""`animesion build-dataset`: Danbooru metadata (both shapes) -> DAF:re layout, every filter and bad input."""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from animesion_lib.data.danbooru import build_dataset, preset_config, split_counts
from animesion_lib.data.danbooru_metadata import image_path, iter_posts
from animesion_lib.data.folder_names import safe_folder_names
from animesion_lib.errors import DatasetError


def _jpeg(size=(24, 18), color=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


JPEG = _jpeg()


def dump_post(post_id, characters=(), general=(), copyright=(), artist=(), meta=(), rating="s",
              as_string=True):
    """A Danbooru2021-dump post (ids and categories as strings, as in the real files)."""
    def cat(c):
        return str(c) if as_string else c

    tags = [{"id": "1", "name": t, "category": cat(0)} for t in general]
    tags += [{"name": t, "category": cat(1)} for t in artist]
    tags += [{"name": t, "category": cat(3)} for t in copyright]
    tags += [{"name": t, "category": cat(4)} for t in characters]
    tags += [{"name": t, "category": cat(5)} for t in meta]
    return {"id": str(post_id) if as_string else post_id, "rating": rating, "md5": f"{post_id:032x}",
            "file_ext": "jpg", "image_width": "24", "image_height": "18", "tags": tags}


def api_post(post_id, characters=(), general=(), copyright=(), artist=(), meta=(), rating="g"):
    return {"id": post_id, "rating": rating, "md5": f"{post_id:032x}", "file_ext": "png",
            "tag_string_general": " ".join(general), "tag_string_character": " ".join(characters),
            "tag_string_copyright": " ".join(copyright), "tag_string_artist": " ".join(artist),
            "tag_string_meta": " ".join(meta)}


def write_source(root: Path, posts: list[dict], shape: str = "dump", images: bool = True,
                 extra_lines: list[tuple[int, str]] = ()) -> Path:
    """Write metadata.jsonl (+ one tiny JPEG per post at the shape's default path)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(p) for p in posts]
    for index, text in extra_lines:
        lines.insert(index, text)
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if images:
        for p in posts:
            pid = int(p["id"])
            if shape == "dump":
                path = root / "512px" / f"{pid % 1000:04d}" / f"{pid}.jpg"
            elif "md5" not in p:
                continue
            else:
                path = root / p["md5"][:2] / f"{p['md5']}.{p['file_ext']}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(JPEG)
    return root / "metadata.jsonl"


def character_posts(counts: dict[str, int], start: int = 1, post=dump_post, **kw) -> list[dict]:
    """``counts[name]`` single-character posts per character, with a distinctive tag each."""
    posts, pid = [], start
    for name, n in counts.items():
        for i in range(n):
            general = ["1girl", "solo", f"look_of_{name}"] + (["smile"] if i % 2 else [])
            posts.append(post(pid, characters=[name], general=general, copyright=["series"],
                              artist=["someone"], meta=["highres"], **kw))
            pid += 1
    return posts


def cfg(**kw):
    base = dict(min_images=3, min_tag_count=1, workers=1, progress=False, size=16)
    base.update(kw)
    preset = base.pop("preset", "danmul")
    return preset_config(preset, **base)


def read_labels(root: Path, split: str):
    with open(root / "labels" / f"{split}_tags.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["class_id", "dir", "tags_cat0"]
    return [(int(c), d, ast.literal_eval(t)) for c, d, t in rows[1:]]


def read_classes(root: Path) -> list[str]:
    with open(root / "labels" / "classid_classname.csv", newline="") as f:
        return [name for _, name in csv.reader(f)]


def all_rows(root: Path):
    return [row for split in ("train", "val", "test") for row in read_labels(root, split)]


# ---------------------------------------------------------------- the main path, both shapes


def test_dump_shape_filters_and_loads_back(tmp_path):
    posts = character_posts({"alice": 12, "bob": 10, "carol": 2})  # carol: too few
    pid = 100
    posts.append(dump_post(pid, characters=[], general=["scenery"]))  # no character
    posts.append(dump_post(pid + 1, characters=["alice", "bob"], general=["2girls"]))  # two
    source = write_source(tmp_path / "src", posts)
    stats = build_dataset(source, tmp_path / "src", tmp_path / "out", cfg(min_images=5))

    assert stats["excluded"]["no_character"] == 1
    assert stats["excluded"]["multiple_characters"] == 1
    assert stats["excluded"]["class_too_small"] == 2
    assert read_classes(tmp_path / "out") == ["alice", "bob"]
    rows = all_rows(tmp_path / "out")
    assert len(rows) == 22 == stats["table2"]["images"]
    tags = {t for _, _, ts in rows for t in ts}
    # artist, meta and character tags are never features; copyright is kept by danmul
    assert not tags & {"someone", "highres", "alice", "bob"}
    # the image files exist, resized so the shorter side is 16
    for _, rel, _ in rows:
        with Image.open(tmp_path / "out" / "fullMin256" / rel) as im:
            assert min(im.size) == 16
    assert stats["table2"]["resolution"] == "21x16"

    from animesion_lib.data import CharacterDataset, read_split

    samples = read_split(tmp_path / "out", "dafre_full", "train", with_tags=True)
    assert len(samples) == stats["splits"]["train"]["images"]
    ds = CharacterDataset(tmp_path / "out", split="test", layout="dafre_full", image_size=16,
                          with_tags=True)
    assert ds.classes == ["alice", "bob"]
    item = ds[0]
    assert item["image"].shape == (3, 16, 16) and isinstance(item["tags"], list)


def test_api_shape_rating_filter_and_md5_paths(tmp_path):
    posts = character_posts({"dan": 6, "eve": 6}, post=api_post)
    posts[0]["rating"] = "e"
    posts[1]["rating"] = "q"
    no_md5 = api_post(500, characters=["dan"], general=["x"])
    del no_md5["md5"]  # Danbooru hides md5 of some posts: no way to find the file
    source = write_source(tmp_path / "src", posts + [no_md5], shape="api")
    stats = build_dataset(source, tmp_path / "src", tmp_path / "out",
                          cfg(ratings=("g", "s"), min_images=3, image_mode="link"))
    assert stats["metadata_files"][0]["shape"] == "api"
    assert stats["excluded"]["rating"] == 2
    assert stats["excluded"]["no_image_path"] == 1
    assert stats["table2"]["images"] == 10
    rows = all_rows(tmp_path / "out")
    assert all(rel.endswith(".png") for _, rel, _ in rows)  # link keeps the source extension
    linked = tmp_path / "out" / "fullMin256" / rows[0][1]
    assert linked.read_bytes() == JPEG


def test_shape_detection_and_string_or_int_ids(tmp_path):
    src = tmp_path / "m.jsonl"
    src.write_text(json.dumps(dump_post(7, ["a"], as_string=True)) + "\n"
                   + json.dumps(dump_post(8, ["a"], as_string=False)) + "\n\n")
    posts = list(iter_posts(src))
    assert [p.id for p in posts] == [7, 8]
    assert posts[0].characters == ("a",) and posts[1].characters == ("a",)
    assert posts[0].image == "512px/0007/7.jpg"
    # a traversal attempt through md5 never becomes a path
    assert image_path("{md5_0_2}/{md5}.{ext}", 1, "../../etc/passwd", "jpg") is None
    assert image_path("{md5_0_2}/{md5}.{ext}", 1, "AB" * 16, "PNG") == f"ab/{'ab' * 16}.png"


def test_metadata_folder_of_several_files(tmp_path):
    posts = character_posts({"a": 4, "b": 4})
    write_source(tmp_path / "src", posts[:5])
    (tmp_path / "src" / "metadata.jsonl").rename(tmp_path / "src" / "posts000.json")
    write_source(tmp_path / "src", posts[5:])
    stats = build_dataset(tmp_path / "src", tmp_path / "src", tmp_path / "out", cfg())
    assert len(stats["metadata_files"]) == 2
    assert stats["table2"]["images"] == 8


# ---------------------------------------------------------------- tag filters


def test_tag_filters_rare_importance_and_cap(tmp_path):
    rng = random.Random(0)
    posts, pid = [], 1
    for c in range(4):
        for i in range(10):
            general = ["1girl", "solo", f"hair_{c}", f"eyes_{c}", f"rare_{pid}"]
            if rng.random() < 0.5:
                general.append("smile")
            posts.append(dump_post(pid, [f"char_{c}"], general=general))
            pid += 1
    source = write_source(tmp_path / "src", posts)
    stats = build_dataset(source, tmp_path / "src", tmp_path / "out",
                          cfg(min_tag_count=2, min_tag_importance=0.0, max_tags_per_image=1,
                              tag_categories=("general",)))
    rows = all_rows(tmp_path / "out")
    tags = [t for _, _, ts in rows for t in ts]
    # rare_* (one image each) fail min_tag_count; 1girl/solo are on every character: importance 0
    assert not any(t.startswith("rare_") for t in tags)
    assert "1girl" not in tags and "solo" not in tags
    assert all(len(ts) == 1 for _, _, ts in rows)  # the cap
    assert all(ts[0] in (f"eyes_{c}", f"hair_{c}") for c, _, ts in rows)  # most informative kept
    steps = {s["step"]: s for s in stats["tags"]["steps"]}
    assert steps["categories kept"]["tags_per_image"] > steps["after rare-tag filter"]["tags_per_image"]
    assert steps["after rare-tag filter"]["vocabulary"] == 11  # 1girl solo smile + 8 hair/eyes
    assert steps["after per-image cap"]["tags_per_image"] == 1.0
    assert {d["tag"] for d in stats["tags"]["least_important"][:2]} == {"1girl", "solo"}
    assert stats["tags"]["least_important"][0]["importance"] == 0.0

    # without the importance filter, 1girl stays
    stats = build_dataset(source, tmp_path / "src", tmp_path / "out2",
                          cfg(preset="dafre", min_images=3, dry_run=True))
    assert "1girl" in {t for _, _, ts in all_rows(tmp_path / "out2") for t in ts}
    assert len(stats["tags"]["steps"]) == 2


# ---------------------------------------------------------------- splits


def test_split_counts():
    assert split_counts(10, (0.7, 0.1, 0.2)) == (7, 1, 2)
    assert split_counts(20, (0.7, 0.1, 0.2)) == (14, 2, 4)
    assert split_counts(3, (0.7, 0.1, 0.2)) == (1, 1, 1)
    assert split_counts(2, (0.7, 0.1, 0.2)) == (2, 0, 0)
    assert split_counts(1, (0.5, 0.25, 0.25)) == (1, 0, 0)
    assert split_counts(5, (1.0, 0.0, 0.0)) == (5, 0, 0)
    # one rule with the synthetic generator: Python's rounding, half to even (25 * 0.1 = 2.5 -> 2)
    assert split_counts(25, (0.7, 0.1, 0.2)) == (18, 2, 5)
    assert split_counts(2, (0.2, 0.4, 0.4)) == (1, 1, 0)  # train keeps one; test gives way first


def test_splits_stratified_deterministic_and_order_free(tmp_path):
    posts = character_posts({"a": 10, "b": 20, "c": 13})
    src1 = write_source(tmp_path / "s1", posts)
    shuffled = posts[:]
    random.Random(1).shuffle(shuffled)
    src2 = write_source(tmp_path / "s2", shuffled)
    build_dataset(src1, tmp_path / "s1", tmp_path / "o1", cfg(dry_run=True, seed=3))
    build_dataset(src2, tmp_path / "s2", tmp_path / "o2", cfg(dry_run=True, seed=3))
    build_dataset(src1, tmp_path / "s1", tmp_path / "o3", cfg(dry_run=True, seed=4))
    for split in ("train", "val", "test"):
        assert read_labels(tmp_path / "o1", split) == read_labels(tmp_path / "o2", split)
    assert read_labels(tmp_path / "o1", "test") != read_labels(tmp_path / "o3", "test")
    classes = read_classes(tmp_path / "o1")
    for class_id, n in ((classes.index("a"), 10), (classes.index("b"), 20), (classes.index("c"), 13)):
        got = tuple(sum(1 for c, _, _ in read_labels(tmp_path / "o1", s) if c == class_id)
                    for s in ("train", "val", "test"))
        assert got == split_counts(n, (0.7, 0.1, 0.2))
    # no post in two splits
    rels = [rel for _, rel, _ in all_rows(tmp_path / "o1")]
    assert len(rels) == len(set(rels)) == 43
    # the dry run wrote labels but no image folder
    assert not (tmp_path / "o1" / "fullMin256").exists()


# ---------------------------------------------------------------- statistics


def test_statistics_account_for_every_post(tmp_path):
    posts = character_posts({"a": 5, "b": 5, "c": 1})
    posts.append(dump_post(90, [], general=["x"]))
    posts.append(posts[0])  # duplicate id
    src = write_source(tmp_path / "src", posts, extra_lines=[(3, "{not json")])
    (tmp_path / "src" / "512px" / "0002" / "2.jpg").unlink()  # missing image
    stats = build_dataset(src, tmp_path / "src", tmp_path / "out", cfg(on_error="skip"))
    ex = stats["excluded"]
    assert stats["posts_read"] == len(posts) + 1
    assert stats["posts_read"] == stats["table2"]["images"] + sum(ex.values())
    assert (ex["malformed_json"], ex["duplicate_id"], ex["image_missing"], ex["no_character"],
            ex["class_too_small"]) == (1, 1, 1, 1, 1)
    assert stats["funnel"][-1]["remaining"] == stats["table2"]["images"] == 9
    saved = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert saved["excluded"] == ex
    table = (tmp_path / "out" / "statistics.md").read_text()
    assert "| Dataset | Images | Classes | Tags per image | Resolution |" in table
    assert "| image_missing | 1 |" in table
    problems = list(csv.DictReader(open(tmp_path / "out" / "problems.csv")))
    assert {p["reason"] for p in problems} == {"malformed_json", "duplicate_id", "image_missing"}
    assert next(p for p in problems if p["reason"] == "malformed_json")["line"] == "4"
    assert sum(s["images"] for s in stats["splits"].values()) == 9


# ---------------------------------------------------------------- bad input


def test_malformed_line_stops_with_its_line_number_and_leaves_nothing(tmp_path):
    posts = character_posts({"a": 4})
    src = write_source(tmp_path / "src", posts, extra_lines=[(2, '{"id": 5, "tags": [')])
    with pytest.raises(DatasetError) as err:
        build_dataset(src, tmp_path / "src", tmp_path / "out", cfg())
    assert err.value.row == 3 and err.value.path == src
    assert "--on-error skip" in str(err.value)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no half-built folder left behind


def test_invalid_post_id(tmp_path):
    posts = character_posts({"a": 4})
    src = write_source(tmp_path / "src", posts, extra_lines=[(0, '{"id": "abc", "tags": []}'),
                                                             (1, "[1, 2]")])
    with pytest.raises(DatasetError, match="non-integer post id"):
        build_dataset(src, tmp_path / "src", tmp_path / "out", cfg())
    stats = build_dataset(src, tmp_path / "src", tmp_path / "out", cfg(on_error="skip"))
    assert stats["excluded"]["invalid_post"] == 2 and stats["table2"]["images"] == 4


def test_duplicate_ids_keep_the_first_copy(tmp_path):
    posts = character_posts({"a": 4, "b": 4})
    twin = dump_post(1, ["b"], general=["impostor"])  # same id as a's first post
    src = write_source(tmp_path / "src", posts + [twin])
    stats = build_dataset(src, tmp_path / "src", tmp_path / "out", cfg())
    assert stats["excluded"]["duplicate_id"] == 1
    rows = all_rows(tmp_path / "out")
    assert sum(rel.endswith("/1.jpg") for _, rel, _ in rows) == 1
    assert "impostor" not in {t for _, _, ts in rows for t in ts}


def test_unreadable_image_excluded_and_class_dropped_below_minimum(tmp_path):
    posts = character_posts({"a": 5, "b": 3})
    src = write_source(tmp_path / "src", posts)
    (tmp_path / "src" / "512px" / "0006" / "6.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "src" / "512px" / "0001" / "1.jpg").write_bytes(JPEG[: len(JPEG) // 2])  # truncated
    stats = build_dataset(src, tmp_path / "src", tmp_path / "out", cfg(workers=2))
    assert stats["excluded"]["image_unreadable"] == 2
    assert stats["excluded"]["class_too_small"] == 2  # b fell to 2 < 3 after its bad image
    assert read_classes(tmp_path / "out") == ["a"]
    assert not (tmp_path / "out" / "fullMin256" / "b").exists()
    assert len(all_rows(tmp_path / "out")) == 4


def test_unsafe_character_names_are_sanitised_and_collisions_resolved(tmp_path):
    names = {"fate/stay": 3, "fate?stay": 3, "..": 3, "con": 3, "初音ミク": 3, "ok_name": 3}
    src = write_source(tmp_path / "src", character_posts(names))
    build_dataset(src, tmp_path / "src", tmp_path / "out", cfg())
    assert read_classes(tmp_path / "out") == sorted(names)  # originals kept as class names
    folders = {p.name for p in (tmp_path / "out" / "fullMin256").iterdir()}
    assert len(folders) == 6 and "ok_name" in folders
    assert all(p.parent == tmp_path / "out" / "fullMin256"
               for p in (tmp_path / "out" / "fullMin256").iterdir())
    mapping = safe_folder_names(names)
    assert mapping["fate/stay"] != mapping["fate?stay"]
    assert mapping["fate/stay"].startswith("fate_stay~")
    assert mapping == safe_folder_names(reversed(list(names)))  # order does not matter
    assert mapping["con"] == "_con" and "/" not in "".join(mapping.values())


def test_existing_output_refused_unless_overwrite(tmp_path):
    src = write_source(tmp_path / "src", character_posts({"a": 3}))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="already exists"):
        build_dataset(src, tmp_path / "src", tmp_path / "out", cfg())
    assert (tmp_path / "out" / "keep.txt").exists()
    build_dataset(src, tmp_path / "src", tmp_path / "out", cfg(overwrite=True))
    assert not (tmp_path / "out" / "keep.txt").exists()
    assert (tmp_path / "out" / "statistics.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


# ---------------------------------------------------------------- command line


def _parser():
    from animesion_lib.cli import _Formatter
    from animesion_lib.cli import build_dataset as command

    parser = argparse.ArgumentParser(description=command.__doc__, formatter_class=_Formatter)
    command.add_arguments(parser)
    return parser, command


def test_cli_help_presets_and_run(tmp_path, capsys):
    parser, command = _parser()
    text = parser.format_help()
    for option in ("--metadata", "--images", "--out", "--preset", "--on-error", "--dry-run",
                   "--link", "--min-tag-importance", "--max-tags-per-image", "--image-path"):
        assert option in text
    assert "danmul: --min-images 10" in text and "dafre: --min-images 20" in text

    args = parser.parse_args(["--metadata", "m", "--out", "o", "--preset", "dafre",
                              "--max-tags-per-image", "5"])
    config = command.config_from_args(args)
    assert (config.min_images, config.max_tags_per_image, config.min_tag_importance) == (20, 5, None)

    src = write_source(tmp_path / "src", character_posts({"a": 3, "b": 3}))
    args = parser.parse_args(["--metadata", str(src), "--images", str(tmp_path / "src"),
                              "--out", str(tmp_path / "out"), "--min-images", "3",
                              "--min-tag-count", "1", "--workers", "1", "--no-progress", "--size", "8"])
    assert command.run(args) == 0
    assert "| out | 6 | 2 |" in capsys.readouterr().out


# ---------------------------------------------------------------- synthetic Danbooru dump


def _synthetic_dafre(root: Path) -> Path:
    """A tiny synthetic DAF:re folder: the real generator when present, else fabricated."""
    try:
        from animesion_lib.data.synthetic import SyntheticConfig, make_synthetic
    except ImportError:
        make_synthetic = None
    if make_synthetic is not None:
        make_synthetic(root, SyntheticConfig(classes=4, images=60, size=16, seed=0, min_per_class=12,
                                             workers=1, progress=False, card=False))
        return root
    (root / "labels").mkdir(parents=True)
    names = ["aki_hoshino_(star_school)", "mei_tanaka_(star_school)", "rin_kato_(blue_sky)"]
    with open(root / "labels" / "classid_classname.csv", "w", newline="") as f:
        csv.writer(f).writerows(enumerate(names))
    rows = []
    for class_id, name in enumerate(names):
        for i in range(12):
            rel = f"{name[:3]}/{i}.jpg"
            (root / "fullMin256" / name[:3]).mkdir(parents=True, exist_ok=True)
            (root / "fullMin256" / rel).write_bytes(JPEG)
            rows.append((class_id, rel, repr(["1girl", f"hair_{class_id}", "smile"][: 2 + i % 2])))
    with open(root / "labels" / "train_tags.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class_id", "dir", "tags_cat0"])
        writer.writerows(rows)
    return root


def test_synthetic_danbooru_dump_round_trip(tmp_path):
    from animesion_lib.data.synthetic_danbooru import DumpDistractors, export_danbooru_dump

    dafre = _synthetic_dafre(tmp_path / "synthetic")
    planted = export_danbooru_dump(
        dafre, tmp_path / "dump",
        DumpDistractors(no_character_posts=4, multi_character_posts=3, small_characters=2,
                        small_character_posts=3, duplicate_ids=2, malformed_lines=1))
    lines = (tmp_path / "dump" / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == planted["lines"] == planted["posts"] + 3
    first = json.loads(lines[0])
    assert isinstance(first["id"], str) and (tmp_path / "dump" / "512px").is_dir()

    # the default (stop) refuses the truncated line; skip reports it and goes on
    with pytest.raises(DatasetError, match="malformed json"):
        build_dataset(tmp_path / "dump" / "metadata.jsonl", tmp_path / "dump", tmp_path / "x", cfg())
    stats = build_dataset(tmp_path / "dump" / "metadata.jsonl", tmp_path / "dump", tmp_path / "out",
                          cfg(on_error="skip", min_images=5, min_tag_count=2))
    ex = stats["excluded"]
    assert ex["malformed_json"] == 1 and ex["duplicate_id"] == 2
    assert ex["no_character"] == 4 and ex["multiple_characters"] == 3
    assert ex["class_too_small"] == 6
    assert stats["table2"]["images"] == planted["character_posts"]
    assert stats["table2"]["classes"] == planted["characters"]
    assert read_classes(tmp_path / "out") == read_classes(dafre)
    tags = {t for _, _, ts in all_rows(tmp_path / "out") for t in ts}
    assert not any(t.startswith(("one_off_tag_", "synthetic_artist_")) for t in tags)
    source_tags = {t for split in ("train", "val", "test") if (dafre / "labels" / f"{split}_tags.csv").exists()
                   for _, _, ts in read_labels(dafre, split) for t in ts}
    series = {name[name.rindex("(") + 1:-1] for name in read_classes(dafre) if name.endswith(")")}
    # only general tags and the copyright (series) tags survive: artist, meta, one-off and
    # duplicate-only tags never do
    assert tags - source_tags == series & tags and series & tags
    assert "retagged_copy" not in tags


# ---------------------------------------------------------------- the DuckDB parse, line by line


def test_dump_lines_parse_exactly(tmp_path):
    """Every kind of line a dump holds, with what the parse makes of it (the values the Python
    parser gave before the parse moved into DuckDB)."""
    from animesion_lib.data.danbooru_metadata import BadLine, Post

    src = tmp_path / "m.jsonl"
    src.write_bytes(
        b'{"id":"7","rating":"Safe","md5":"00ab00000000000000000000000000ff","tags":[{"name":"a",'
        b'"category":"4"},{"name":"x y","category":0},"bare",{"name":"a","category":4},'
        b'{"name":"s","category":"3"}]}\n\n  \r\n{"id": 8, "tags":[]}\n\xff\n[1]\n{"id":"abc"}\n'
        b'{bad\n{"id":-1}\n{"id":9.0,"tags":[{"name":"b","category":"4"},{"name":"c","category":"4"}],'
        b'"file_ext":null}\nnull\n{"id":3}')
    items = list(iter_posts(src, "dump", "{md5_0_2}/{md5}.{ext}"))
    assert items == [
        Post(1, 7, "s", None, None, "00/00ab00000000000000000000000000ff.jpg", ("a",), "x_y bare", "s", "", ""),
        Post(4, 8, None, None, None, None, (), "", "", "", ""),
        BadLine(5, "malformed_json", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        BadLine(6, "invalid_post", "expected a JSON object, got list"),
        BadLine(7, "invalid_post", "missing or non-integer post id 'abc'"),
        BadLine(8, "malformed_json", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        BadLine(9, "invalid_post", "missing or non-integer post id -1"),
        Post(10, 9, None, None, None, None, ("b", "c"), "", "", "", ""),  # a null file_ext: no path
        BadLine(11, "invalid_post", "expected a JSON object, got NoneType"),
        Post(12, 3, None, None, None, None, (), "", "", "", ""),
    ]


def test_api_lines_parse_exactly(tmp_path):
    from animesion_lib.data.danbooru_metadata import BadLine, Post

    lines = [
        {"id": 11, "rating": " Explicit ", "md5": "AB" * 16, "tag_string_general": "  smile\tlong_hair  ",
         "tag_string_character": "kaito miku kaito", "tag_string_copyright": "vocaloid",
         "tag_string_meta": "highres", "image_width": "640", "image_height": 480.0},
        {"id": "12", "rating": "sensitive", "md5": "cd" * 16, "file_ext": ".PNG", "tag_string_character": "rin"},
        {"id": 13, "md5": "zz" * 16, "file_ext": "jpg", "tag_string_character": "rin", "rating": ""},
        {"id": 14, "md5": "ef" * 16, "file_ext": "../x", "tag_string_general": 5},
        {"id": True, "tag_string_general": ""},
    ]
    src = tmp_path / "m.jsonl"
    src.write_text("\r\n".join(json.dumps(line) for line in lines) + "\r\n")
    assert list(iter_posts(src)) == [
        Post(1, 11, "e", 640, 480, f"ab/{'ab' * 16}.jpg", ("kaito", "miku"), "smile long_hair",
             "vocaloid", "", "highres"),
        Post(2, 12, "s", None, None, f"cd/{'cd' * 16}.png", ("rin",), "", "", "", ""),
        Post(3, 13, None, None, None, None, ("rin",), "", "", "", ""),  # md5 not hex: no path
        Post(4, 14, None, None, None, None, (), "", "", "", ""),  # "../x" is no extension
        BadLine(5, "invalid_post", "missing or non-integer post id True"),
    ]


def test_build_within_a_small_memory_limit(tmp_path):
    src = write_source(tmp_path / "src", character_posts({"a": 6, "b": 6}))
    stats = build_dataset(src, tmp_path / "src", tmp_path / "out", cfg(memory_limit="64MB"))
    assert stats["table2"]["images"] == 12 and stats["config"]["memory_limit"] == "64MB"
