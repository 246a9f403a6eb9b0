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

:func:`iter_posts` streams a file and yields one small :class:`Post` per line (never the whole
file), so that a millions-of-posts dump is read in constant memory; the caller batches posts
into a columnar engine. Bad lines come back as :class:`BadLine` records with their 1-based line
number, so that the caller decides whether to stop or to report and go on.
"""

from __future__ import annotations

import json
import re
import string
from functools import lru_cache
from collections.abc import Iterator
from dataclasses import dataclass
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

# "0" and 0 both mean general: the 2021 dump writes categories as strings
_CATEGORY_CODES: dict[object, int] = {**{c: c for c in CATEGORY_NAMES}, **{str(c): c for c in CATEGORY_NAMES}}
_HEX = re.compile(r"[0-9a-fA-F]{8,64}")
_EXT = re.compile(r"\.?[A-Za-z0-9]{1,8}")


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


def normalise_rating(value: object) -> str | None:
    """``"s"``, ``"safe"``, ``"Explicit"`` -> one lower-case letter; unknown -> None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().lower()
    return RATING_WORDS.get(text, text[:1] or None)


def _as_int(value: object) -> int | None:
    """Ids and sizes arrive as ints or as decimal strings (the 2021 dump); anything else: None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _tag(name: object) -> str:
    """A tag as one token: Danbooru names have no whitespace; stray whitespace becomes ``_``."""
    text = name if isinstance(name, str) else str(name)
    return text if text.isprintable() and " " not in text else "_".join(text.split())


def _split_tag_string(value: object) -> list[str]:
    if not isinstance(value, str):
        return []
    return value.split()


def detect_shape(obj: dict) -> str | None:
    """``dump`` when the post carries a ``tags`` list, ``api`` when it has ``tag_string*`` fields."""
    if isinstance(obj.get("tags"), list):
        return "dump"
    if any(key.startswith("tag_string") for key in obj):
        return "api"
    return None


@lru_cache(maxsize=16)
def template_fields(template: str) -> frozenset[str]:
    """The field names a path template uses, e.g. ``{"md5_0_2", "md5", "ext"}``."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def image_path(template: str, post_id: int, md5: object, ext: object) -> str | None:
    """Fill an image path template; None when it needs an md5 or extension the post lacks."""
    # Only hex digests and alphanumeric extensions: a value such as "../x" must never steer
    # the path outside the images root.
    md5 = md5.lower() if isinstance(md5, str) and _HEX.fullmatch(md5) else ""
    ext = ext.lower().lstrip(".") if isinstance(ext, str) and _EXT.fullmatch(ext) else ""
    needed = template_fields(template)
    if (not md5 and needed & {"md5", "md5_0_2", "md5_2_4"}) or (not ext and "ext" in needed):
        return None
    return template.format(
        id=post_id, bucket=f"{post_id % 1000:04d}", md5=md5, md5_0_2=md5[:2], md5_2_4=md5[2:4],
        ext=ext,
    )


def check_image_template(template: str) -> None:
    """Fail early, with the allowed names, on a template naming an unknown field."""
    probe = {name: "x" for name in IMAGE_PATH_FIELDS}
    try:
        template.format(**probe)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"image path template {template!r} is not valid ({err}); "
            f"allowed fields: {', '.join('{' + f + '}' for f in IMAGE_PATH_FIELDS)}"
        ) from None


def parse_post(obj: object, line: int, shape: str, template: str) -> Post | BadLine:
    """One decoded JSON value -> a :class:`Post`, or a :class:`BadLine` saying what is wrong."""
    if not isinstance(obj, dict):
        return BadLine(line, "invalid_post", f"expected a JSON object, got {type(obj).__name__}")
    post_id = _as_int(obj.get("id"))
    if post_id is None or post_id < 0:
        return BadLine(line, "invalid_post", f"missing or non-integer post id {obj.get('id')!r}")

    if shape == "dump":
        by_category: dict[int, list[str]] = {0: [], 1: [], 3: [], 4: [], 5: []}
        for tag in obj.get("tags") or ():
            if isinstance(tag, dict):
                name, category = tag.get("name"), tag.get("category")
                category = _CATEGORY_CODES.get(category) if isinstance(category, (str, int)) else None
            else:  # some older dumps list bare names; treat them as general tags
                name, category = tag, 0
            if name is None or category not in by_category:
                continue
            by_category[category].append(_tag(name))
        general, artist, copyright_, characters, meta = (
            by_category[0], by_category[1], by_category[3], by_category[4], by_category[5]
        )
    else:
        general = _split_tag_string(obj.get("tag_string_general"))
        artist = _split_tag_string(obj.get("tag_string_artist"))
        copyright_ = _split_tag_string(obj.get("tag_string_copyright"))
        characters = _split_tag_string(obj.get("tag_string_character"))
        meta = _split_tag_string(obj.get("tag_string_meta"))

    return Post(
        line=line,
        id=post_id,
        rating=normalise_rating(obj.get("rating")),
        width=_as_int(obj.get("image_width")),
        height=_as_int(obj.get("image_height")),
        image=image_path(template, post_id, obj.get("md5"), obj.get("file_ext", "jpg")),
        characters=tuple(dict.fromkeys(characters)),  # a tag listed twice is one character
        general=" ".join(general),
        copyright=" ".join(copyright_),
        artist=" ".join(artist),
        meta=" ".join(meta),
    )


def iter_posts(
    path: Path, shape: str = "auto", image_template: str | None = None
) -> Iterator[Post | BadLine]:
    """Stream ``path`` (JSON lines) and yield a :class:`Post` or :class:`BadLine` per line.

    ``shape`` is ``dump``, ``api`` or ``auto`` (decided by the first valid post of the file).
    Blank lines are skipped. The file is read as bytes, so a line that is not UTF-8 is reported
    as malformed rather than stopping the whole read.
    """
    if shape not in (*SHAPES, "auto"):
        raise ValueError(f"shape must be one of {SHAPES} or 'auto', got {shape!r}")
    decided = None if shape == "auto" else shape
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as err:
                yield BadLine(number, "malformed_json", str(err))
                continue
            if decided is None:
                decided = detect_shape(obj) if isinstance(obj, dict) else None
                if decided is None:
                    yield BadLine(number, "invalid_post", "neither a dump post ('tags' list) "
                                  "nor an API post ('tag_string_*' fields)")
                    continue
            template = image_template or DEFAULT_IMAGE_PATHS[decided]
            yield parse_post(obj, number, decided, template)


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
