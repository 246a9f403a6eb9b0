"""Turn a generated synthetic dataset back into a Danbooru2021-style dump, with distractors.

The book's datasets chapter runs ``animesion build-dataset`` end to end without real Danbooru
data: :func:`make_synthetic` writes a DAF:re folder, :func:`export_danbooru_dump` turns it into
``metadata.jsonl`` + ``512px/<id mod 1000, 4 digits>/<id>.jpg`` exactly as the Danbooru2021
dump lays them out (ids and categories as strings, ``tags`` a list of ``{name, category}``),
and the builder filters it back. It reads only files on disk -- ``labels/classid_classname.csv``,
``labels/{split}_tags.csv`` and the images -- so it works on any DAF:re-layout folder with tags.

Every image of the source becomes one post with exactly one character tag (the class name),
its general tags, a copyright tag (the ``(series)`` part of the name), an artist tag, meta tags
and a rating. Then distractors are planted so that every filter of the recipe has work to do,
and their counts are returned so a reader can check the builder found each one:

* posts with no character tag and posts with two or three character tags;
* a few characters with too few posts (``small_characters`` x ``small_character_posts``);
* rare one-off general tags on some posts (``rare_tag_rate``);
* artist and meta tags on every post (dropped by the Dan:mul recipe);
* duplicate post ids (a later, retagged copy of an earlier post) and malformed JSON lines.

Images are hard-linked when the file system allows it, else copied. Deterministic from ``seed``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from animesion_lib.data.layout import (
    available_splits,
    class_file,
    dafre_layout,
    labels_root,
    read_classes,
    read_split,
)
from animesion_lib.errors import DatasetError

META_TAGS = ("highres", "absurdres", "commentary", "translated", "bad_id", "md5_mismatch")
RATINGS = ("s", "s", "s", "q", "e")  # mostly safe, as in Danbooru2021's 512px SFW subset
_SERIES = re.compile(r"_\(([^()]+)\)$")


@dataclass(frozen=True)
class DumpDistractors:
    """How much noise to plant; zeros turn a distractor off."""

    no_character_posts: int = 20
    multi_character_posts: int = 20
    small_characters: int = 3
    small_character_posts: int = 3  # below the presets' minimum (10 / 20)
    rare_tag_rate: float = 0.2  # share of posts that get one tag seen nowhere else
    artists: int = 12
    duplicate_ids: int = 2
    malformed_lines: int = 1
    seed: int = 0


def _read_posts(root: Path, image_folder: str) -> tuple[list[str], list[tuple[int, str, list[str]]]]:
    layout = dafre_layout(image_folder)
    if not class_file(root, layout).is_file():
        raise DatasetError("not a DAF:re-layout folder with labels (class file missing)",
                           path=class_file(root, layout))
    classes = read_classes(class_file(root, layout))
    rows = [(s.class_id, s.rel, list(s.tags))
            for split in available_splits(root, layout, with_tags=True)
            for s in read_split(root, layout, split, with_tags=True, classes=classes)]
    if not rows:
        raise DatasetError("no {split}_tags.csv rows: the exporter needs the tag files",
                           path=labels_root(root, layout))
    if not (root / image_folder).is_dir():
        raise DatasetError(f"image folder {image_folder}/ not found", path=root)
    return classes, sorted(rows, key=lambda r: (r[0], r[1]))


def _place_image(source: Path, out: Path, post_id: int) -> Path:
    target = out / "512px" / f"{post_id % 1000:04d}" / f"{post_id}.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def _post(post_id: int, image: Path, rating: str, general: list[str], characters: list[str],
          copyright_: list[str], artist: str, meta: list[str]) -> dict:
    from PIL import Image

    with Image.open(image) as im:
        width, height = im.size
    tags = [{"id": "0", "name": t, "category": "0"} for t in sorted(set(general))]
    tags += [{"id": "0", "name": t, "category": "1"} for t in [artist]]
    tags += [{"id": "0", "name": t, "category": "3"} for t in sorted(set(copyright_))]
    tags += [{"id": "0", "name": t, "category": "4"} for t in characters]
    tags += [{"id": "0", "name": t, "category": "5"} for t in sorted(set(meta))]
    return {
        "id": str(post_id), "created_at": "2021-01-01 00:00:00 UTC", "rating": rating,
        "image_width": str(width), "image_height": str(height), "file_ext": "jpg",
        "md5": hashlib.md5(image.read_bytes()).hexdigest(), "is_deleted": False, "tags": tags,
    }


def _series_of(name: str) -> list[str]:
    match = _SERIES.search(name)
    return [match.group(1)] if match else []


class _Planter:
    """Makes the posts of one dump: ids with gaps, extras (rating, meta, artist), distractors.

    One random stream drives everything, so a dump is a function of the seed and the source.
    """

    def __init__(self, d: DumpDistractors, out: Path, images: Path, source_tags: set[str]):
        self.d, self.out, self.images = d, out, images
        self.rng = random.Random(f"synthetic-danbooru:{d.seed}")
        self.artists = [f"synthetic_artist_{k}" for k in range(max(1, d.artists))]
        # meta tags the source does not already use as general tags (the generator has some)
        self.meta_tags = [t for t in META_TAGS if t not in source_tags] or ["synthetic_meta"]
        self.all_tags = sorted(source_tags)
        self.post_id = 1000

    def _next_id(self) -> int:
        self.post_id += self.rng.randint(1, 3)  # ids with gaps, as real ids are
        return self.post_id

    def _extras(self) -> tuple[str, list[str], str]:
        rng = self.rng
        meta = rng.sample(self.meta_tags, k=min(len(self.meta_tags), rng.randint(1, 3)))
        return rng.choice(RATINGS), meta, rng.choice(self.artists)

    def character_post(self, name: str, rel: str, tags: list[str]) -> tuple[dict, bool]:
        """The post of one source image; True when it got a one-off rare tag."""
        post_id = self._next_id()
        rating, meta, artist = self._extras()
        general, rare = list(tags), self.rng.random() < self.d.rare_tag_rate
        if rare:
            general.append(f"one_off_tag_{post_id}")
        image = _place_image(self.images / rel, self.out, post_id)
        return _post(post_id, image, rating, general, [name], _series_of(name), artist, meta), rare

    def distractor(self, characters: list[str], sources: list[Path]) -> dict:
        post_id = self._next_id()
        rating, meta, artist = self._extras()
        rng = self.rng
        general = rng.sample(self.all_tags, k=min(len(self.all_tags), rng.randint(3, 10)))
        copyright_ = [s for c in characters for s in _series_of(c)]
        image = _place_image(rng.choice(sources), self.out, post_id)
        return _post(post_id, image, rating, general, characters, copyright_, artist, meta)

    def lines(self, posts: list[dict]) -> list[str]:
        """The JSON lines, with duplicate ids (a later, retagged copy) and cut lines planted."""
        rng, d = self.rng, self.d
        lines = [json.dumps(p, separators=(",", ":")) for p in posts]
        for _ in range(min(d.duplicate_ids, len(posts))):
            twin = dict(rng.choice(posts[: max(1, len(posts) // 2)]))
            twin["tags"] = twin["tags"] + [{"id": "0", "name": "retagged_copy", "category": "0"}]
            lines.insert(rng.randint(len(lines) // 2, len(lines)), json.dumps(twin, separators=(",", ":")))
        for _ in range(d.malformed_lines):  # a line cut short, as a truncated download leaves it
            cut = rng.choice(lines)
            lines.insert(rng.randint(1, len(lines)), cut[: len(cut) // 2])
        return lines


def export_danbooru_dump(
    synthetic_root: str | Path,
    out_dir: str | Path,
    distractors: DumpDistractors | None = None,
    image_folder: str = "fullMin256",
    overwrite: bool = False,
) -> dict:
    """Write ``out_dir/metadata.jsonl`` and ``out_dir/512px/`` from a DAF:re folder.

    Returns what was planted: ``{"posts", "lines", "character_posts", "no_character",
    "multiple_characters", "small_characters", "small_character_posts", "rare_tags",
    "duplicate_ids", "malformed_lines", "distractors"}``.
    """
    d = distractors or DumpDistractors()
    root, out = Path(synthetic_root), Path(out_dir)
    if out.exists():
        if not overwrite:
            raise DatasetError("output folder already exists (pass overwrite=True)", path=out)
        shutil.rmtree(out)
    classes, rows = _read_posts(root, image_folder)
    out.mkdir(parents=True)
    images = root / image_folder
    planter = _Planter(d, out, images, {t for _, _, ts in rows for t in ts})
    posts, rare = [], 0
    for class_id, rel, tags in rows:
        post, got_rare = planter.character_post(classes[class_id], rel, tags)
        posts.append(post)
        rare += got_rare
    sources = [images / rel for _, rel, _ in rows]
    posts += [planter.distractor([], sources) for _ in range(d.no_character_posts)]
    for _ in range(d.multi_character_posts):
        k = min(len(classes), planter.rng.randint(2, 3))
        posts.append(planter.distractor(planter.rng.sample(classes, k=k), sources))
    for k in range(d.small_characters):
        posts += [planter.distractor([f"cameo_character_{k}_(synthetic_extras)"], sources)
                  for _ in range(d.small_character_posts)]
    # interleave, as a real dump is sorted by id and distractors are everywhere
    posts.sort(key=lambda p: int(p["id"]))
    lines = planter.lines(posts)
    (out / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "posts": len(posts),
        "lines": len(lines),
        "character_posts": len(rows),
        "characters": len(classes),
        "no_character": d.no_character_posts,
        "multiple_characters": d.multi_character_posts,
        "small_characters": d.small_characters,
        "small_character_posts": d.small_characters * d.small_character_posts,
        "rare_tags": rare,
        "duplicate_ids": min(d.duplicate_ids, len(posts)),
        "malformed_lines": d.malformed_lines,
        "distractors": asdict(d),
    }
