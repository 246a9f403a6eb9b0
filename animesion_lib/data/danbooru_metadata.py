"""Read Danbooru post metadata, in either of its two published shapes, one post at a time.

Two shapes exist in the wild:

``dump``
    The Danbooru2019-2021 dumps (gwern.net/danbooru2021): JSON lines, one post per line,
    ``tags`` a list of ``{"name", "category"}`` objects (category 0 general, 1 artist,
    3 copyright, 4 character, 5 meta). Numbers are often *strings* (``"id": "123"``,
    ``"category": "4"``). The 512px images live at ``512px/<id mod 1000, 4 digits>/<id>.jpg``.
``api``
    The current Danbooru API (``/posts.json``, one post object per line): space-separated
    ``tag_string_general``, ``tag_string_character``, ``tag_string_copyright``,
    ``tag_string_artist``, ``tag_string_meta``, plus ``rating``, ``md5``, ``file_ext``.
    Nothing fixes where a mirror stores the files; by default we expect
    ``<md5[:2]>/<md5>.<file_ext>`` under the images root (the first level of Danbooru's own
    CDN layout), and ``--image-path`` changes it.

:func:`load_posts` reads a file into a DuckDB table: Python only cuts the file into blocks of
lines (so every line keeps its 1-based number), DuckDB decodes, validates and parses the JSON
with an explicit structure per shape (``json_transform``), in constant memory whatever the file
size. Bad lines come back as :class:`BadLine` records with their line number, so that the caller
decides whether to stop or to report and go on; their detail is Python's own JSON error message.
:func:`iter_posts` gives the same parse one :class:`Post` at a time, for tests and small files.
"""


from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SHAPES = ("dump", "api")

# Danbooru tag categories (the dump's numbers; the API spells them in its field names).
CATEGORY_IDS = {"general": 0, "artist": 1, "copyright": 3, "character": 4, "meta": 5}
CATEGORY_NAMES = {v: k for k, v in CATEGORY_IDS.items()}

DEFAULT_IMAGE_PATHS = {
    "dump": "512px/{bucket}/{id}.jpg",
    "api": "{md5_0_2}/{md5}.{ext}",
}
IMAGE_PATH_FIELDS = ("id", "bucket", "md5", "md5_0_2", "md5_2_4", "ext")

# Ratings as the two shapes spell them; the 2021 dump uses s/q/e where s meant "safe",
# the current API uses g/s/q/e where s means "sensitive". We compare the single letters.
RATING_WORDS = {"general": "g", "safe": "s", "sensitive": "s", "questionable": "q", "explicit": "e"}

# The columns :func:`load_posts` fills, with their DuckDB types.
POST_COLUMNS = {
    "file": "INTEGER", "line": "BIGINT", "id": "BIGINT", "rating": "VARCHAR", "width": "INTEGER",
    "height": "INTEGER", "image": "VARCHAR", "characters": "VARCHAR[]", "general": "VARCHAR",
    "copyright": "VARCHAR", "artist": "VARCHAR", "meta": "VARCHAR",
    "reason": "VARCHAR",  # NULL for a post; malformed_json / invalid_post for a bad line
}
_BLOCK_BYTES = 32 << 20  # lines handed to DuckDB at a time: bounds Python's memory


@dataclass(frozen=True)
class Post:
    """The few fields the recipe needs, tags joined by single spaces per category."""

    line: int
    id: int
    rating: str | None
    width: int | None
    height: int | None
    image: str | None  # path relative to the images root; None when it cannot be formed
    characters: tuple[str, ...]
    general: str
    copyright: str
    artist: str
    meta: str


@dataclass(frozen=True)
class BadLine:
    """A line that is not a usable post: ``reason`` is ``malformed_json`` or ``invalid_post``."""

    line: int
    reason: str
    detail: str


def detect_shape(obj: dict) -> str | None:
    """``dump`` when the post carries a ``tags`` list, ``api`` when it has ``tag_string*`` fields."""
    if isinstance(obj.get("tags"), list):
        return "dump"
    if any(key.startswith("tag_string") for key in obj):
        return "api"
    return None


def sniff_shape(path: Path, max_lines: int = 1000) -> str | None:
    """The shape of the first decodable post in the first ``max_lines`` lines, or None."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number > max_lines:
                break
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(obj, dict) and (found := detect_shape(obj)):
                return found
    return None


# ----------------------------------------------------------------------------- image paths


@lru_cache(maxsize=16)
def template_fields(template: str) -> frozenset[str]:
    """The field names a path template uses, e.g. ``{"md5_0_2", "md5", "ext"}``."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def check_image_template(template: str) -> None:
    """Fail early, with the allowed names, on a template naming an unknown field."""
    probe = {name: "x" for name in IMAGE_PATH_FIELDS}
    try:
        template.format(**probe)
        if any(spec or conversion for _, _, spec, conversion in string.Formatter().parse(template)):
            raise ValueError("format specs and conversions such as {id:06d} are not supported")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"image path template {template!r} is not valid ({err}); "
            f"allowed fields: {', '.join('{' + f + '}' for f in IMAGE_PATH_FIELDS)}"
        ) from None


def image_path(template: str, post_id: int, md5: object, ext: object) -> str | None:
    """Fill an image path template for one post; None when it needs an md5 or extension the
    post lacks. The same rule as the SQL :func:`load_posts` runs, for one post at a time."""
    from duckdb import connect

    with connect() as con:
        _create_macros(con)
        sql = image_path_sql(template)
        return con.execute(
            f"""SELECT {sql} FROM (SELECT $1::BIGINT AS id, valid_md5($2) AS md5,
                                          valid_ext($3) AS ext)""",
            [post_id, md5 if isinstance(md5, str) else None, ext if isinstance(ext, str) else None],
        ).fetchall()[0][0]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def image_path_sql(template: str) -> str:
    """The SQL expression that fills ``template`` from the columns ``id``, ``md5``, ``ext``."""
    check_image_template(template)
    field_sql = {"id": "CAST(id AS VARCHAR)", "bucket": "lpad(CAST(id % 1000 AS VARCHAR), 4, '0')",
                 "md5": "md5", "md5_0_2": "md5[1:2]", "md5_2_4": "md5[3:4]", "ext": "ext"}
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts += [_sql_string(literal)] if literal else []
        parts += [field_sql[name]] if name is not None else []
    path = " || ".join(parts) or "''"
    needed = template_fields(template)
    # Only hex digests and alphanumeric extensions (valid_md5 / valid_ext): a value such as
    # "../x" must never steer the path outside the images root.
    missing = (["md5 IS NULL"] if needed & {"md5", "md5_0_2", "md5_2_4"} else []) + (
        ["ext IS NULL"] if "ext" in needed else [])
    return f"CASE WHEN {' OR '.join(missing)} THEN NULL ELSE {path} END" if missing else path


# ----------------------------------------------------------------------------- parsing in DuckDB

# Whitespace as Python's str.split() sees it: Danbooru tag names have none, stray runs become "_".
_SPACE = r"[\s\x0b\x1c-\x1f\x85\p{Z}]"
_MACROS = {
    # ids and sizes arrive as numbers or as decimal strings (the 2021 dump); anything else: NULL
    "json_int(v)": r"""CASE json_type(v)
        WHEN 'BIGINT' THEN TRY_CAST(v AS BIGINT) WHEN 'UBIGINT' THEN TRY_CAST(v AS BIGINT)
        WHEN 'VARCHAR' THEN TRY_CAST(regexp_extract(v->>'$', '^\s*(-?[0-9]+)\s*$', 1) AS BIGINT)
        WHEN 'DOUBLE' THEN CASE WHEN CAST(v AS DOUBLE) = round(CAST(v AS DOUBLE))
                                THEN TRY_CAST(CAST(v AS DOUBLE) AS BIGINT) END END""",
    "json_text(v)": "CASE WHEN json_type(v) = 'VARCHAR' THEN v->>'$' END",
    "tag_token(name)": f"""regexp_replace(
        regexp_replace(name, '^{_SPACE}+|{_SPACE}+$', '', 'g'), '{_SPACE}+', '_', 'g')""",
    # one test per post rather than per tag: almost no post has a tag name with whitespace
    "tag_tokens(tags)": f"""CASE WHEN regexp_matches(array_to_string([t.name FOR t IN tags], ''), '{_SPACE}')
        THEN [{{'name': tag_token(t.name), 'category': t.category}} FOR t IN tags] ELSE tags END""",
    "tag_words(s)": f"""coalesce(regexp_replace(regexp_replace(s, '^{_SPACE}+|{_SPACE}+$', '', 'g'),
        '{_SPACE}+', ' ', 'g'), '')""",
    "ordered_distinct(l)": "list_filter(l, lambda x, i: list_position(l, x) = i)",
    "valid_md5(m)": "CASE WHEN regexp_full_match(m, '[0-9a-fA-F]{8,64}') THEN lower(m) END",
    "valid_ext(e)": r"CASE WHEN regexp_full_match(e, '\.?[A-Za-z0-9]{1,8}') THEN ltrim(lower(e), '.') END",
    "rating_letter(r)": "CASE WHEN r <> '' THEN CASE lower(trim(r)) "
    + " ".join(f"WHEN '{word}' THEN '{letter}'" for word, letter in RATING_WORDS.items())
    + " ELSE nullif(left(lower(trim(r)), 1), '') END END",
    # a dump tag list whose entries are not all {name, category} objects (older dumps list bare
    # names, which count as general tags)
    "loose_tags(text)": """[CASE WHEN json_type(t) = 'OBJECT'
        THEN {'name': t->>'name', 'category': t->>'category'}
        ELSE {'name': t->>'$', 'category': '0'} END
        FOR t IN CAST(CASE WHEN json_type(text->'tags') = 'ARRAY' THEN text->'tags' END AS JSON[])]""",
}
_FIELDS = {"id": "JSON", "rating": "JSON", "image_width": "JSON", "image_height": "JSON",
           "md5": "JSON", "file_ext": "JSON"}
STRUCTURES = {
    "dump": {**_FIELDS, "tags": [{"name": "VARCHAR", "category": "VARCHAR"}]},
    "api": {**_FIELDS, **{f"tag_string_{c}": "JSON" for c in CATEGORY_IDS}},
}


def _create_macros(con) -> None:
    for signature, body in _MACROS.items():
        con.execute(f"CREATE OR REPLACE TEMP MACRO {signature} AS {body}")


def _tag_sql(shape: str) -> dict[str, str]:
    """SQL for each category's tags of one post (``characters`` a list, the rest a string)."""
    if shape == "api":
        words = {c: f"tag_words(json_text(p.tag_string_{c}))" for c in CATEGORY_IDS}
        out = {c: words[c] for c in ("general", "copyright", "artist", "meta")}
        out["characters"] = f"ordered_distinct(list_filter(string_split({words['character']}, ' '), "
        out["characters"] += "lambda x: x <> ''))"
        return out

    def names(category: str) -> str:
        code = CATEGORY_IDS[category]
        return f"[t.name FOR t IN tags IF t.category = '{code}' AND t.name IS NOT NULL]"

    out = {c: f"array_to_string({names(c)}, ' ')" for c in ("general", "copyright", "artist", "meta")}
    out["characters"] = f"ordered_distinct({names('character')})"
    return out


def _parsed_lines_sql(shape: str, checked: bool) -> str:
    """Every non-blank line of ``_lines`` (``line``, ``raw``) with its parse ``p`` and ``reason``.

    ``json_transform`` parses a line into the shape's structure; ``checked`` first asks
    ``json_valid`` (a second parse), so that a block with a malformed line still loads, else a
    malformed line fails the whole statement. A line that is not UTF-8 decodes to NULL and counts
    as malformed. Blank is what Python's ``bytes.strip()`` strips. ``reason`` is NULL for a post,
    else why the line is unusable.
    """
    structure = json.dumps(STRUCTURES[shape]).replace("'", "''")
    valid = "coalesce(json_valid(text), FALSE)" if checked else "text IS NOT NULL"
    return f"""
        SELECT *, json_int(p.id) AS id, CASE WHEN NOT valid THEN 'malformed_json'
                  WHEN coalesce(json_int(p.id) < 0, TRUE) THEN 'invalid_post' END AS reason
        FROM (SELECT line, text, valid,
                     CASE WHEN valid THEN json_transform(text, '{structure}') END AS p
              FROM (SELECT line, text, {valid} AS valid
                    FROM (SELECT line, TRY(decode(raw)) AS text FROM _lines)
                    WHERE text IS NULL OR ltrim(text, ' ' || chr(9) || chr(13) || chr(11) || chr(12)) <> ''))"""


def posts_sql(shape: str, template: str, file_index: int, checked: bool = True) -> str:
    """A SELECT of :data:`POST_COLUMNS` from the lines of ``_lines`` (bad ones with a reason)."""
    tags = (", tag_tokens(coalesce(CASE WHEN list_bool_or([t.name IS NULL AND t.category IS NULL "
            "FOR t IN p.tags]) THEN loose_tags(text) ELSE p.tags END, [])) AS tags") if shape == "dump" else ""
    ext = ("CASE WHEN NOT valid THEN NULL WHEN p.file_ext IS NULL AND NOT json_exists(text, '$.file_ext') "
           "THEN 'jpg' ELSE json_text(p.file_ext) END")  # a missing file_ext means jpg, a null one none
    categories = _tag_sql(shape)
    return f"""
        SELECT {int(file_index)} AS file, line, id, rating, width, height,
               {image_path_sql(template)} AS image, {categories['characters']} AS characters,
               {categories['general']} AS general, {categories['copyright']} AS copyright,
               {categories['artist']} AS artist, {categories['meta']} AS meta, reason
        FROM (SELECT *, rating_letter(json_text(p.rating)) AS rating,
                     TRY_CAST(json_int(p.image_width) AS INTEGER) AS width,
                     TRY_CAST(json_int(p.image_height) AS INTEGER) AS height,
                     valid_md5(json_text(p.md5)) AS md5, valid_ext({ext}) AS ext {tags}
              FROM ({_parsed_lines_sql(shape, checked)}))"""


@dataclass(frozen=True)
class Block:
    """One block of a file read by :func:`load_posts`: its non-blank lines and the bad ones."""

    lines: int
    bad: list[BadLine]


def _line_blocks(path: Path, block_bytes: int = _BLOCK_BYTES) -> Iterator[tuple[int, list[bytes], bytes]]:
    """``(number of the first line, lines, their end)`` blocks, cut at ``\\n`` as Python iterates
    a file; the lines come without their end (``b"\\n"``, or ``b""`` for a last unended line)."""
    with open(path, "rb") as handle:
        first, rest = 1, b""
        while chunk := handle.read(block_bytes):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            if cut:
                lines = chunk[:cut].split(b"\n")[:-1]
                yield first, lines, b"\n"
                first += len(lines)
        if rest:
            yield first, [rest], b""


def describe_bad_line(number: int, raw: bytes, reason: str) -> BadLine:
    """Say what is wrong with a line DuckDB found unusable, in Python's words (rare lines only)."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        return BadLine(number, "malformed_json", str(err))
    if reason == "malformed_json":  # JSON to Python (NaN, say) but not to DuckDB
        return BadLine(number, reason, "not strict JSON")
    if not isinstance(obj, dict):
        return BadLine(number, "invalid_post", f"expected a JSON object, got {type(obj).__name__}")
    return BadLine(number, "invalid_post", f"missing or non-integer post id {obj.get('id')!r}")


def create_posts_table(con, table: str = "posts") -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in POST_COLUMNS.items())
    con.execute(f"CREATE TABLE {table} ({columns})")


def load_posts(con, path: Path, file_index: int, shape: str, template: str,
               table: str = "posts", workers: int | None = None) -> Iterator[Block]:
    """Append the lines of one JSON-lines file to ``table`` (:func:`create_posts_table`).

    Bad lines are rows too, with their ``reason`` and NULL fields (the caller drops them).
    Yields one :class:`Block` per block of lines, in file order, once it is in the table.
    A block is small for DuckDB to split across its threads, so ``workers`` blocks (default:
    one per CPU) are parsed at once, each on its own cursor; at most that many wait in memory.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    from queue import Queue

    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    workers = max(1, workers or os.cpu_count() or 1)
    cursors: Queue = Queue()
    for _ in range(workers):
        cursor = con.cursor()
        _create_macros(cursor)
        cursors.put(cursor)
    statements = [f"INSERT INTO {table} {posts_sql(shape, template, file_index, checked)}"
                  for checked in (False, True)]

    def insert(block: tuple[int, list[bytes], bytes]) -> Block:
        cursor = cursors.get()
        try:
            return _insert_block(cursor, block, statements, table, file_index)
        finally:
            cursors.put(cursor)

    pending: deque = deque()
    with ThreadPoolExecutor(workers) as pool:
        for block in _line_blocks(path):
            pending.append(pool.submit(insert, block))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _insert_block(cursor, block: tuple[int, list[bytes], bytes], statements: list[str], table: str,
                  file_index: int) -> Block:
    import duckdb
    import numpy as np
    import pandas as pd

    first, lines, end = block
    cursor.register("_lines", pd.DataFrame({
        "line": np.arange(first, first + len(lines), dtype=np.int64), "raw": lines}))
    fast, checked = statements
    try:  # one JSON parse per line; a block with a malformed line fails and goes again
        read = cursor.execute(fast).fetchall()[0][0]
    except duckdb.InvalidInputException:
        read = cursor.execute(checked).fetchall()[0][0]
    cursor.unregister("_lines")
    bad = cursor.execute(
        f"SELECT line, reason FROM {table} WHERE reason IS NOT NULL AND file = $1 "
        "AND line BETWEEN $2 AND $3 ORDER BY line", [file_index, first, first + len(lines) - 1]).fetchall()
    return Block(read, [describe_bad_line(n, lines[n - first] + end, reason) for n, reason in bad])


def iter_posts(
    path: Path, shape: str = "auto", image_template: str | None = None
) -> Iterator[Post | BadLine]:
    """The posts and bad lines of ``path`` in line order, parsed as :func:`load_posts` does.

    ``shape`` is ``dump``, ``api`` or ``auto`` (:func:`sniff_shape`; a dump when it cannot tell).
    Blank lines are skipped.
    """
    import duckdb

    if shape not in (*SHAPES, "auto"):
        raise ValueError(f"shape must be one of {SHAPES} or 'auto', got {shape!r}")
    if shape == "auto":
        shape = sniff_shape(path) or "dump"
    with duckdb.connect() as con:
        create_posts_table(con)
        template = image_template or DEFAULT_IMAGE_PATHS[shape]
        bad = [item for block in load_posts(con, Path(path), 0, shape, template) for item in block.bad]
        rows = con.execute(
            "SELECT line, id, rating, width, height, image, characters, general, copyright, artist, "
            "meta FROM posts WHERE reason IS NULL").fetchall()
    posts = [Post(*row[:6], tuple(row[6]), *row[7:]) for row in rows]
    yield from sorted([*posts, *bad], key=lambda item: item.line)
