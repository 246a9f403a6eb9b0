"""Build Dan:mul-style and DAF:re-style datasets from Danbooru metadata.

The recipe, in the order the filters run (every excluded post is counted under the first
reason that applies, so ``posts read == images kept + sum(exclusions)``):

==========================  ====================================================================
reason                      rule
==========================  ====================================================================
``malformed_json``          the line is not JSON (only with ``on_error="skip"``; else an error)
``invalid_post``            not an object, or no integer ``id`` (same ``on_error`` rule)
``duplicate_id``            a later copy of a post id already read (the first copy is kept)
``no_image_path``           the image path template needs an ``md5``/``file_ext`` the post lacks
``rating``                  the rating is not one of ``ratings`` (when a rating filter is set)
``no_character``            no character tag
``multiple_characters``     two or more character tags (the label must be unambiguous)
``image_missing``           the image file does not exist (not checked in a dry run)
``image_unreadable``        the image cannot be decoded (not checked in a dry run)
``class_too_small``         the character has fewer than ``min_images`` usable posts
==========================  ====================================================================

Tags are then filtered per image (they are input features, never a reason to drop an image):
character tags are the label and never a feature; only ``tag_categories`` are kept (Dan:mul
drops artist and meta); tags seen on fewer than ``min_tag_count`` *training* images are dropped
as rare; and an importance filter ranks what remains.

Importance filter (the rule)
    Treat each character as a document made of its training images. For tag ``t`` and
    character ``c``: ``tf(t, c)`` = share of ``c``'s training images carrying ``t``;
    ``idf(t) = ln(C / df(t))`` with ``C`` characters and ``df(t)`` the number of characters
    whose training images carry ``t``. A tag's importance is ``max_c tf(t, c) * idf(t)``: high
    for a tag that marks some character well (``blue_hair``, a costume), zero for a tag every
    character has. The score is one number per tag, not per (tag, image label): choosing an
    image's tags with its own label would leak the answer into the input at test time.
    Tags with importance ``<= min_tag_importance`` are dropped; then each image keeps at most
    ``max_tags_per_image`` tags, the most important first (ties by name). Statistics come from
    the training split only, so validation and test labels never shape the filter.

Splits are stratified: inside each class, posts are ordered by ``md5(f"{seed}:{post_id}")``
and cut into train/val/test counts (:func:`split_counts`), so a split depends only on the seed
and the set of posts, not on the order of the metadata file.

The heavy lifting is columnar, in one DuckDB database held in memory up to ``memory_limit`` and
spilled to the output's scratch folder past it: DuckDB parses the metadata
(:mod:`animesion_lib.data.danbooru_metadata`, Python only cuts the files into blocks of lines),
does the grouping, ranking and tag statistics (tags as integer ids in name order), and images go
through a process pool in blocks. The knobs and presets are in
:mod:`animesion_lib.data.danbooru_recipe`. The
output is built in a hidden sibling folder and renamed into place at the end, so an interrupted
build never leaves a folder that looks complete.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from animesion_lib.data.danbooru_metadata import (
    DEFAULT_IMAGE_PATHS,
    BadLine,
    create_posts_table,
    load_posts,
    sniff_shape,
)
from animesion_lib.data.danbooru_recipe import (
    IMAGE_FOLDERS,
    PRESETS,
    TAG_CATEGORIES,
    BuildConfig,
    preset_config,
)
from animesion_lib.data.folder_names import safe_folder_names
from animesion_lib.data.image_export import ExportTask, export_images
from animesion_lib.data.layout import CLASS_FILE, write_classes, write_split
from animesion_lib.data.splits import split_counts
from animesion_lib.data.statistics import markdown_table
from animesion_lib.errors import DatasetError

EXCLUSION_REASONS = (
    "malformed_json",
    "invalid_post",
    "duplicate_id",
    "no_image_path",
    "rating",
    "no_character",
    "multiple_characters",
    "image_missing",
    "image_unreadable",
    "class_too_small",
)
SPLITS = ("train", "val", "test")
METADATA_SUFFIXES = (".json", ".jsonl", ".ndjson")

_IMAGE_BLOCK = 4_096  # images handed to the pool at a time (bounds memory on huge builds)


def find_metadata_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders expand to their ``*.json``/``*.jsonl``/``*.ndjson``, sorted."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in METADATA_SUFFIXES)
            if not found:
                raise DatasetError(f"no metadata files ({', '.join(METADATA_SUFFIXES)}) in folder", path=path)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError("metadata file not found", path=path)
    return files


def _progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, mininterval=1.0, **kwargs)


class _Build:
    """One build, step by step; holds the DuckDB connection and the running statistics."""

    def __init__(self, files: list[Path], images: Path | None, work: Path, config: BuildConfig):
        import duckdb

        self.files, self.images, self.root, self.config = files, images, work, config
        self.scratch = work / "_work"
        self.scratch.mkdir(parents=True)
        # An in-memory database: tables stay in memory up to the limit and spill to the scratch
        # folder past it, so nothing is written to disk that fits in memory.
        self.con = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": config.memory_limit,
                "temp_directory": str(self.scratch / "spill"),
                "preserve_insertion_order": False,
            },
        )
        self.excluded: Counter[str] = Counter()
        self.stats: dict = {}
        self.timings: dict[str, float] = {}
        self.problems_file = open(work / "problems.csv", "w", newline="", encoding="utf-8")
        self.problems = csv.writer(self.problems_file)
        self.problems.writerow(["file", "line", "post_id", "reason", "detail"])

    # ------------------------------------------------------------------ helpers
    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(time.perf_counter() - start, 3)

    def _scalar(self, sql: str, *params):
        return self.con.execute(sql, list(params)).fetchone()[0]

    def _insert(self, table: str, columns: dict[str, list]) -> None:
        import pandas as pd

        frame = pd.DataFrame(columns)
        self.con.register("_batch", frame)
        self.con.execute(f"INSERT INTO {table} SELECT * FROM _batch")
        self.con.unregister("_batch")

    # ------------------------------------------------------------------ 1. read
    def read_metadata(self) -> None:
        """Parse every file into the ``posts`` table (in DuckDB); bad lines stop or are reported."""
        start = time.perf_counter()
        create_posts_table(self.con)
        bar = _progress(unit=" posts", desc="read metadata", disable=not self.config.progress)
        lines_read, files = 0, []
        for index, path in enumerate(self.files):
            shape = self.config.shape if self.config.shape != "auto" else sniff_shape(path) or "dump"
            template = self.config.image_template or DEFAULT_IMAGE_PATHS[shape]
            for block in load_posts(self.con, path, index, shape, template):
                lines_read += block.lines
                bar.update(block.lines)
                for bad in block.bad:
                    self._bad_line(path, bad)
            files.append({"file": str(path), "shape": shape, "bytes": path.stat().st_size})
        bar.close()
        self.con.execute("DELETE FROM posts WHERE reason IS NOT NULL")  # counted and reported
        self.stats["metadata_files"] = files
        self.stats["posts_read"] = lines_read
        self._timed("read_metadata", start)

    def _bad_line(self, path: Path, bad: BadLine) -> None:
        if self.config.on_error == "stop":
            raise DatasetError(
                f"{bad.reason.replace('_', ' ')}: {bad.detail} "
                "(pass --on-error skip to report such lines and go on)",
                path=path, row=bad.line,
            )
        self.excluded[bad.reason] += 1
        self.problems.writerow([path.name, bad.line, "", bad.reason, bad.detail])

    # ------------------------------------------------------------------ 2. post filters
    def filter_posts(self) -> None:
        """Give every post its first exclusion reason (NULL = still in)."""
        start = time.perf_counter()
        ratings = self.config.ratings
        rating_rule = "FALSE" if ratings is None else "coalesce(rating NOT IN (SELECT unnest($1)), TRUE)"
        self.con.execute(
            f"""CREATE TABLE status AS
            WITH ranked AS (
                SELECT * EXCLUDE (characters, reason), len(characters) AS n_characters,
                       CASE WHEN len(characters) = 1 THEN characters[1] END AS character,
                       row_number() OVER (PARTITION BY id ORDER BY file, line) AS copy,
                       first_value(line) OVER (PARTITION BY id ORDER BY file, line) AS first_line,
                       first_value(file) OVER (PARTITION BY id ORDER BY file, line) AS first_file
                FROM posts)
            SELECT *, CASE
                WHEN copy > 1 THEN 'duplicate_id'
                WHEN image IS NULL THEN 'no_image_path'
                WHEN {rating_rule} THEN 'rating'
                WHEN n_characters = 0 THEN 'no_character'
                WHEN n_characters > 1 THEN 'multiple_characters'
            END AS reason
            FROM ranked""",
            [list(ratings)] if ratings is not None else [],
        )
        self.con.execute("DROP TABLE posts")
        for file, line, post_id, first_file, first_line in self.con.execute(
            "SELECT file, line, id, first_file, first_line FROM status "
            "WHERE reason = 'duplicate_id' ORDER BY file, line"
        ).fetchall():
            first = f"{self.files[first_file].name} line {first_line}"
            self.problems.writerow([self.files[file].name, line, post_id, "duplicate_id",
                                    f"post id {post_id} already read at {first}; first copy kept"])
        for reason, count in self.con.execute(
            "SELECT reason, count(*) FROM status WHERE reason IS NOT NULL GROUP BY reason"
        ).fetchall():
            self.excluded[reason] += count
        for file, line, post_id in self.con.execute(
            "SELECT file, line, id FROM status WHERE reason = 'no_image_path' ORDER BY file, line"
        ).fetchall():
            self.problems.writerow([self.files[file].name, line, post_id, "no_image_path",
                                    "the image path template needs a valid md5 / file_ext"])
        self._drop_small_classes()
        self._timed("filter_posts", start)

    def _drop_small_classes(self) -> None:
        """Mark posts of characters with fewer than ``min_images`` remaining posts."""
        count = self._scalar(
            """SELECT count(*) FROM status WHERE reason IS NULL AND character IN (
                   SELECT character FROM status WHERE reason IS NULL
                   GROUP BY character HAVING count(*) < $1)""",
            self.config.min_images,
        )
        self.con.execute(
            """UPDATE status SET reason = 'class_too_small'
               WHERE reason IS NULL AND character IN (
                   SELECT character FROM status WHERE reason IS NULL
                   GROUP BY character HAVING count(*) < $1)""",
            [self.config.min_images],
        )
        self.excluded["class_too_small"] += count

    # ------------------------------------------------------------------ 3. folders + images
    def name_folders(self) -> None:
        """Safe, unique folder names for the characters still in."""
        import pandas as pd

        names = [r[0] for r in self.con.execute(
            "SELECT DISTINCT character FROM status WHERE reason IS NULL").fetchall()]
        folders = safe_folder_names(names)
        frame = pd.DataFrame({"character": list(folders), "folder": list(folders.values())},
                             columns=["character", "folder"]).astype(str)
        self.con.execute("CREATE TABLE folders (character VARCHAR, folder VARCHAR)")
        self.con.register("_folders", frame)
        self.con.execute("INSERT INTO folders SELECT * FROM _folders")
        self.con.unregister("_folders")
        self.stats["renamed_folders"] = {k: v for k, v in sorted(folders.items()) if k != v}

    def _output_extension(self) -> str:
        if self.config.image_mode == "resize":
            return "'jpg'"
        return "coalesce(nullif(lower(regexp_extract(image, '\\.([A-Za-z0-9]+)$', 1)), ''), 'jpg')"

    def export_images(self) -> None:
        """Resize / link / copy every remaining image in a process pool; record failures."""
        start = time.perf_counter()
        self.con.execute(
            f"""CREATE TABLE exported AS
                SELECT s.id, s.file, s.line, s.image,
                       f.folder || '/' || s.id || '.' || {self._output_extension()} AS rel
                FROM status s JOIN folders f USING (character) WHERE s.reason IS NULL"""
        )
        self.con.execute("ALTER TABLE exported ADD COLUMN status VARCHAR")
        self.con.execute("ALTER TABLE exported ADD COLUMN out_width INTEGER")
        self.con.execute("ALTER TABLE exported ADD COLUMN out_height INTEGER")
        if self.config.dry_run:
            self.con.execute("UPDATE exported SET status = 'ok'")
            self._timed("export_images", start)
            return

        self._run_exports()
        self._record_export_failures()
        self._timed("export_images", start)

    def _run_exports(self) -> None:
        """Hand the images to the pool in blocks; their results go to the ``results`` table."""
        import multiprocessing as mp

        total = self._scalar("SELECT count(*) FROM exported")
        image_dir = self.root / self.config.image_folder
        images_root = self.images.resolve()
        reader = self.con.cursor()
        reader.execute("SELECT id, image, rel, file, line FROM exported ORDER BY id")
        self.con.execute("CREATE TABLE results (id BIGINT, status VARCHAR, w INTEGER, h INTEGER)")
        workers = max(1, self.config.workers)
        pool = mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) if workers > 1 else None
        bar = _progress(total=total, unit=" img", desc=f"{self.config.image_mode} images",
                        disable=not self.config.progress)
        try:
            while rows := reader.fetchmany(_IMAGE_BLOCK):
                tasks = [ExportTask(pid, str(images_root / src), str(image_dir / rel))
                         for pid, src, rel, _, _ in rows]
                where = {pid: (self.files[file].name, line) for pid, _, _, file, line in rows}
                results = export_images(tasks, self.config.image_mode, self.config.size,
                                        workers, self.config.quality, pool=pool)
                self._insert("results", {
                    "id": [r.post_id for r in results], "status": [r.status for r in results],
                    "w": [r.width for r in results], "h": [r.height for r in results]})
                for r in results:
                    if r.status != "ok":
                        self.problems.writerow([*where[r.post_id], r.post_id, r.status, r.detail])
                bar.update(len(rows))
        finally:
            bar.close()
            reader.close()
            if pool is not None:
                pool.close()
                pool.join()

    def _record_export_failures(self) -> None:
        """Exclude the images that failed; a class that falls under the minimum goes too."""
        image_dir = self.root / self.config.image_folder
        self.con.execute(
            """UPDATE exported SET status = r.status, out_width = r.w, out_height = r.h
               FROM results r WHERE exported.id = r.id"""
        )
        self.con.execute(
            """UPDATE status SET reason = e.status FROM exported e
               WHERE status.id = e.id AND status.reason IS NULL AND e.status <> 'ok'"""
        )
        for reason, count in self.con.execute(
            "SELECT status, count(*) FROM exported WHERE status <> 'ok' GROUP BY status"
        ).fetchall():
            self.excluded[reason] += count
        # A class can fall under the minimum once unreadable images are out: drop it and the
        # files already written for it.
        before = set(r[0] for r in self.con.execute(
            "SELECT DISTINCT character FROM status WHERE reason IS NULL").fetchall())
        self._drop_small_classes()
        after = set(r[0] for r in self.con.execute(
            "SELECT DISTINCT character FROM status WHERE reason IS NULL").fetchall())
        for character in sorted(before - after):
            folder = self._scalar("SELECT folder FROM folders WHERE character = $1", character)
            shutil.rmtree(image_dir / folder, ignore_errors=True)
        self.con.execute("DROP TABLE results")

    # ------------------------------------------------------------------ 4. classes + splits
    def assign_splits(self) -> None:
        import pandas as pd

        start = time.perf_counter()
        self.con.execute(
            """CREATE TABLE classes AS
               SELECT (row_number() OVER (ORDER BY character) - 1)::INTEGER AS class_id,
                      character, folder, n
               FROM (SELECT s.character, f.folder, count(*) AS n
                     FROM status s JOIN folders f USING (character)
                     WHERE s.reason IS NULL GROUP BY ALL)"""
        )
        rows = self.con.execute("SELECT class_id, n FROM classes ORDER BY class_id").fetchall()
        counts = {"class_id": [], "n_train": [], "n_val": []}
        for class_id, n in rows:
            n_train, n_val, _ = split_counts(n, self.config.split)
            counts["class_id"].append(class_id)
            counts["n_train"].append(n_train)
            counts["n_val"].append(n_val)
        frame = pd.DataFrame(counts, columns=list(counts)).astype("int64")
        self.con.register("_counts", frame)
        self.con.execute(
            f"""CREATE TABLE final AS
                WITH ranked AS (
                    SELECT s.id, s.rating, s.width, s.height, s.general, s.copyright, s.artist,
                           s.meta, c.class_id, e.rel, e.out_width, e.out_height,
                           row_number() OVER (PARTITION BY c.class_id
                                              ORDER BY md5('{int(self.config.seed)}:' || s.id)) - 1 AS rk
                    FROM status s JOIN classes c USING (character) JOIN exported e USING (id)
                    WHERE s.reason IS NULL)
                SELECT r.*, CASE WHEN rk < k.n_train THEN 'train'
                                 WHEN rk < k.n_train + k.n_val THEN 'val' ELSE 'test' END AS split
                FROM ranked r JOIN _counts k USING (class_id)"""
        )
        self.con.unregister("_counts")
        self.con.execute("DROP TABLE status")  # everything later reads final
        self._timed("assign_splits", start)

    # ------------------------------------------------------------------ 5. tags
    def filter_tags(self) -> None:
        """Per-image tag lists after the category, rarity and importance filters.

        One count per tag (all images, training images) gives every step's size, and each tag
        gets an integer id in name order (``tid``), so the big image-tag table, its grouping
        and its sorting handle integers; names come back only when the labels are written.
        """
        start = time.perf_counter()
        cfg = self.config
        by_category = {c: self._per_image(self._words(c)) for c in TAG_CATEGORIES}
        kept = " || ' ' || ".join(cfg.tag_categories) if cfg.tag_categories else "''"
        pairs = f"""SELECT id, class_id, split = 'train' AS train, unnest(list_distinct(
                        list_filter(string_split({kept}, ' '), lambda tag: tag <> ''))) AS tag
                    FROM final"""
        # Tag statistics come from the training split only (n); n_all counts every split.
        self.con.execute(
            f"""CREATE TABLE tag_counts AS
                SELECT *, (row_number() OVER (ORDER BY tag))::INTEGER AS tid FROM (
                    SELECT tag, count(*) AS n_all, count(*) FILTER (WHERE train) AS n
                    FROM ({pairs}) GROUP BY tag)"""
        )
        rare_rule = "TRUE" if cfg.min_tag_count <= 1 else f"n >= {int(cfg.min_tag_count)}"
        funnel = [self._occurrences("categories kept", "TRUE"),
                  self._occurrences("after rare-tag filter", rare_rule)]
        self.con.execute(
            f"""CREATE TABLE frequent AS SELECT p.id, p.class_id, p.train, c.tid FROM ({pairs}) p
                JOIN (SELECT tag, tid FROM tag_counts WHERE {rare_rule}) c USING (tag)"""
        )
        lists = "SELECT id, list_sort(list(tid)) AS tids FROM frequent GROUP BY id"
        if cfg.importance_filter:
            lists = self._importance_filter(funnel, rare_rule)
        self.con.execute(f"CREATE TABLE tag_lists AS SELECT * FROM ({lists}) WHERE len(tids) > 0")
        self.con.execute("DROP TABLE frequent")
        if cfg.importance_filter:
            n, vocabulary = self.con.execute(
                "SELECT count(*), count(DISTINCT tid) FROM (SELECT unnest(tids) AS tid FROM tag_lists)"
            ).fetchone()
            funnel.append({"step": "after per-image cap", "tag_occurrences": n,
                           "tags_per_image": self._per_image(n), "vocabulary": vocabulary})
        self._tag_statistics(funnel, by_category)
        self._timed("filter_tags", start)

    def _importance_filter(self, funnel: list, rare_rule: str) -> str:
        """Score tags (module docstring) and drop those under the floor; returns the SELECT of
        each image's tag ids under the per-image cap."""
        cfg = self.config
        self.con.execute(
            """CREATE TABLE importance AS
               WITH ct AS (SELECT class_id, tid, count(*) AS k FROM frequent
                           WHERE train GROUP BY ALL),
                    cs AS (SELECT class_id, count(*) AS n_c FROM final
                           WHERE split = 'train' GROUP BY class_id),
                    df AS (SELECT tid, count(*) AS df FROM ct GROUP BY tid),
                    total AS (SELECT count(*) AS c FROM cs)
               SELECT tid, max(k / n_c * ln(total.c / df.df)) AS importance, any_value(df.df) AS df
               FROM ct JOIN cs USING (class_id) JOIN df USING (tid), total GROUP BY tid"""
        )
        floor = "-1e300" if cfg.min_tag_importance is None else repr(float(cfg.min_tag_importance))
        scored = "coalesce((SELECT importance FROM importance i WHERE i.tid = c.tid), 0.0)"
        funnel.append(self._occurrences("after importance floor", f"{rare_rule} AND {scored} > {floor}"))
        important = f"""SELECT f.id, f.tid, coalesce(i.importance, 0.0) AS importance FROM frequent f
                        LEFT JOIN importance i USING (tid) WHERE coalesce(i.importance, 0.0) > {floor}"""
        cap = cfg.max_tags_per_image
        if cap is None:
            return f"SELECT id, list_sort(list(tid)) AS tids FROM ({important}) GROUP BY id"
        # The cap keeps the most important first, ties by name (tid is in name order): sort
        # only the lists it cuts.
        return f"""
            SELECT id, CASE WHEN len(ranked) <= {int(cap)} THEN list_sort([r.tid FOR r IN ranked])
                ELSE list_sort([r.tid FOR r IN list_sort(ranked)[1:{int(cap)}]]) END AS tids
            FROM (SELECT id, list({{'order': -importance, 'tid': tid}}) AS ranked
                  FROM ({important}) GROUP BY id)"""

    def _occurrences(self, step: str, rule: str) -> dict:
        """One step of the tag funnel: the image-tag pairs and tags left by ``rule`` on tag_counts."""
        n, vocabulary = self.con.execute(
            f"SELECT coalesce(sum(n_all), 0), count(*) FROM tag_counts c WHERE {rule}").fetchone()
        return {"step": step, "tag_occurrences": int(n), "tags_per_image": self._per_image(n),
                "vocabulary": vocabulary}

    def _per_image(self, n: int) -> float:
        images = self._scalar("SELECT count(*) FROM final") or 0
        return round(n / images, 3) if images else 0.0

    def _words(self, column: str) -> int:
        """Tags of one category over the kept images (the space-separated words of a column)."""
        return self._scalar(
            f"SELECT coalesce(sum(CASE WHEN {column} = '' THEN 0 ELSE "
            f"length({column}) - length(replace({column}, ' ', '')) + 1 END), 0) FROM final"
        )

    def _tag_statistics(self, funnel: list[dict], by_category: dict[str, float]) -> None:
        cfg = self.config
        images = self._scalar("SELECT count(*) FROM final") or 0
        tag_stats = {
            "categories_kept": list(cfg.tag_categories),
            "tags_per_image_by_category_before": by_category,
            "steps": funnel,
            "images_without_tags": images - (self._scalar("SELECT count(*) FROM tag_lists") or 0),
            "rule": {
                "min_tag_count (training images)": cfg.min_tag_count,
                "min_tag_importance (max_c tf*idf over characters)": cfg.min_tag_importance,
                "max_tags_per_image": cfg.max_tags_per_image,
            },
        }
        if cfg.importance_filter:
            ranked = """SELECT c.tag, round(i.importance, 4), c.n FROM importance i JOIN tag_counts c
                        USING (tid) ORDER BY {} LIMIT 10"""
            least = self.con.execute(ranked.format("i.importance, c.n DESC, c.tag")).fetchall()
            most = self.con.execute(ranked.format("i.importance DESC, c.tag")).fetchall()
            tag_stats["least_important"] = [dict(tag=t, importance=s, train_images=n) for t, s, n in least]
            tag_stats["most_important"] = [dict(tag=t, importance=s, train_images=n) for t, s, n in most]
        self.stats["tags"] = tag_stats

    # ------------------------------------------------------------------ 6. write
    def write_labels(self) -> None:
        start = time.perf_counter()
        labels = self.root / "labels"
        labels.mkdir()
        classes = [r[0] for r in self.con.execute(
            "SELECT character FROM classes ORDER BY class_id").fetchall()]
        write_classes(labels / CLASS_FILE, classes)
        self.con.execute(  # the tag ids back to names (tid is a name's rank: names[tid])
            """CREATE TABLE tag_strings AS
               SELECT id, array_to_string(list_transform(tids, lambda i: v.names[i]), ' ') AS tags
               FROM tag_lists, (SELECT list(tag ORDER BY tid) AS names FROM tag_counts) v"""
        )
        for split in SPLITS:
            write_split(labels / f"{split}.csv", self._label_rows(split, tags=False), False)
            write_split(labels / f"{split}_tags.csv", self._label_rows(split, tags=True), True)
        self._timed("write_labels", start)

    def _label_rows(self, split: str, tags: bool):
        """Stream ``(class_id, rel[, tags])`` rows of one split, in class then post id order."""
        reader = self.con.cursor()
        # tags are whitespace-free tokens: one joined string per row is much cheaper to fetch
        tag_column = ", coalesce(t.tags, '')" if tags else ""
        reader.execute(
            f"""SELECT f.class_id, f.rel{tag_column} FROM final f LEFT JOIN tag_strings t USING (id)
                WHERE f.split = $1 ORDER BY f.class_id, f.id""",
            [split],
        )
        try:
            while rows := reader.fetchmany(50_000):
                yield from ((c, rel, joined.split()) for c, rel, joined in rows) if tags else rows
        finally:
            reader.close()

    def summarise(self) -> dict:
        cfg = self.config
        images = self._scalar("SELECT count(*) FROM final") or 0
        classes = self._scalar("SELECT count(*) FROM classes") or 0
        after = self.stats["tags"]["steps"][-1]
        if cfg.dry_run:
            w, h = self.con.execute("SELECT avg(width), avg(height) FROM final").fetchone()
            resolution_source = "source metadata (dry run: no image written)"
        else:
            w, h = self.con.execute("SELECT avg(out_width), avg(out_height) FROM final").fetchone()
            resolution_source = f"written images ({cfg.image_mode})"
        counted = {split: {"images": n, "classes": k} for split, n, k in self.con.execute(
            "SELECT split, count(*), count(DISTINCT class_id) FROM final GROUP BY split").fetchall()}
        per_split = {split: counted[split] for split in SPLITS if split in counted}  # a fixed order
        sizes = self.con.execute(
            "SELECT min(n), median(n), max(n) FROM classes").fetchone() if classes else (0, 0, 0)
        excluded = {reason: int(self.excluded.get(reason, 0)) for reason in EXCLUSION_REASONS}
        funnel, remaining = [], self.stats["posts_read"]
        for reason in EXCLUSION_REASONS:
            remaining -= excluded[reason]
            funnel.append({"filter": reason, "excluded": excluded[reason], "remaining": remaining})
        table2 = {
            "images": images,
            "classes": classes,
            "tags_per_image": after["tags_per_image"],
            "resolution": None if w is None else f"{w:.0f}x{h:.0f}",
            "resolution_source": resolution_source,
        }
        return {
            "dataset": self.root.name,
            "preset": cfg.preset,
            "dry_run": cfg.dry_run,
            "table2": table2,
            "splits": per_split,
            "images_per_class": {"min": sizes[0], "median": sizes[1], "max": sizes[2]},
            "posts_read": self.stats["posts_read"],
            "excluded": excluded,
            "funnel": funnel,
            "tags": self.stats["tags"],
            "renamed_folders": self.stats["renamed_folders"],
            "metadata_files": self.stats["metadata_files"],
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "timings_s": self.timings,
        }

    def close(self) -> None:
        self.problems_file.close()
        self.con.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def statistics_markdown(stats: dict, name: str | None = None) -> str:
    """The statistics as Markdown: Dan:mul's Table 2 row, then splits, exclusions and tags."""
    t = stats["table2"]
    name = name or stats["dataset"]
    lines = [f"# Dataset statistics: {name} (preset `{stats['preset']}`"
             + (", dry run" if stats["dry_run"] else "") + ")", ""]
    lines += markdown_table(
        ["Dataset", "Images", "Classes", "Tags per image", "Resolution"],
        [[name, f"{t['images']:,}", f"{t['classes']:,}", f"{t['tags_per_image']:.2f}",
          f"{t['resolution'] or 'n/a'} (mean W x H, {t['resolution_source']})"]], "lrrrl")
    splits = [stats["splits"].get(split, {"images": 0, "classes": 0}) for split in SPLITS]
    lines += ["", *markdown_table(["Split", "Images", "Classes"], [
        [split, f"{s['images']:,}", f"{s['classes']:,}"] for split, s in zip(SPLITS, splits)], "lrr")]
    lines += ["", f"Posts read: {stats['posts_read']:,}. Every exclusion, in the order applied:", ""]
    lines += markdown_table(["Filter", "Excluded", "Remaining"], [
        [row["filter"], f"{row['excluded']:,}", f"{row['remaining']:,}"] for row in stats["funnel"]], "lrr")
    tags = stats["tags"]
    lines += ["", f"Tags (categories kept: {', '.join(tags['categories_kept']) or 'none'}):", ""]
    lines += markdown_table(["Step", "Tag occurrences", "Tags per image", "Vocabulary"], [
        [row["step"], f"{row['tag_occurrences']:,}", f"{row['tags_per_image']:.2f}", f"{row['vocabulary']:,}"]
        for row in tags["steps"]], "lrrr")
    if "least_important" in tags:
        least = ", ".join(f"{d['tag']} ({d['importance']})" for d in tags["least_important"])
        lines += ["", f"Least important tags kept by the statistics (importance): {least}."]
    return "\n".join(lines) + "\n"


def _replace_folder(work: Path, out: Path) -> None:
    """Move the finished build into place; an existing folder is swapped out, then removed."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    work.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_dataset(
    metadata: str | Path | Sequence[str | Path],
    images: str | Path | None,
    out: str | Path,
    config: BuildConfig | None = None,
) -> dict:
    """Build a DAF:re-layout dataset in ``out`` from Danbooru metadata; returns the statistics.

    ``metadata``: JSON-lines files or folders of them (both shapes, see
    :mod:`animesion_lib.data.danbooru_metadata`). ``images``: the root the image path template is
    relative to (unused in a dry run). Writes ``out/<image_folder>/<folder>/<id>.jpg``,
    ``out/labels/{split}.csv``, ``{split}_tags.csv``, ``classid_classname.csv``,
    ``out/statistics.{json,md}`` and ``out/problems.csv`` (every bad input, one per row).
    """
    config = config or preset_config("danmul")
    files = find_metadata_files([metadata] if isinstance(metadata, (str, Path)) else metadata)
    out = Path(out)
    if out.exists() and not config.overwrite:
        raise DatasetError("output folder already exists (pass --overwrite to replace it)", path=out)
    if not config.dry_run:
        if images is None or not Path(images).is_dir():
            raise DatasetError("images folder not found (or use a dry run)", path=images)
        images = Path(images)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    build = None
    try:
        start = time.perf_counter()
        build = _Build(files, images, work, config)
        build.read_metadata()
        build.filter_posts()
        build.name_folders()
        build.export_images()
        build.assign_splits()
        build.filter_tags()
        build.write_labels()
        stats = build.summarise()
        stats["dataset"] = out.name
        stats["timings_s"]["total"] = round(time.perf_counter() - start, 3)
        build.close()
        build = None
        (work / "statistics.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
        (work / "statistics.md").write_text(statistics_markdown(stats))
        _replace_folder(work, out)
        return stats
    except BaseException:
        if build is not None:
            try:
                build.close()
            except Exception:
                pass
        shutil.rmtree(work, ignore_errors=True)
        raise


__all__ = [
    "IMAGE_FOLDERS",
    "TAG_CATEGORIES",
    "BuildConfig",
    "DEFAULT_IMAGE_PATHS",
    "EXCLUSION_REASONS",
    "PRESETS",
    "build_dataset",
    "find_metadata_files",
    "preset_config",
    "split_counts",
    "statistics_markdown",
]
