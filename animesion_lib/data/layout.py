"""The on-disk layouts the papers use, and the strict readers of their label files.

Three layouts share one reader:

* ``dafre_faces`` (DAF:re face crops): ``ROOT/faces/<dir>``, labels in ``ROOT/labels/``
* ``dafre_full``  (DAFull, full images): ``ROOT/fullMin256/<dir>``, labels in ``ROOT/labels/``
* ``moeimouto``: ``ROOT/data/<dir>``, labels at ``ROOT``

Split files (``{split}.csv``) and the class file (``classid_classname.csv``) have no header and
two columns, ``class_id,dir`` / ``class_id,class_name``. Tag files (``{split}_tags.csv``) have a
header ``class_id,dir,tags_cat0`` where ``tags_cat0`` is a Python list literal of tag strings.

Rows are validated when a split is read, which is cheap; images are only opened later. Every
problem raises :class:`~animesion_lib.errors.DatasetError` naming the file and the 1-based row.

This module is the one home of the format: every reader (datasets, statistics, the difficulty
card, the synthetic Danbooru dump) and every writer (the synthetic generator, the Danbooru
builder) goes through :func:`read_classes` / :func:`read_split` / :func:`parse_tags` and
:func:`write_classes` / :func:`write_split` / :func:`format_tags`.
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path, PurePosixPath, PureWindowsPath

from animesion_lib.atomic import atomic_path
from animesion_lib.errors import DatasetError

CLASS_FILE = "classid_classname.csv"
TAG_COLUMNS = ("class_id", "dir", "tags_cat0")


@dataclass(frozen=True)
class Layout:
    """Where one dataset layout keeps its images and label files, relative to the root."""

    name: str
    image_dir: str
    labels_dir: str  # "" for label files at the root
    splits: tuple[str, ...]


LAYOUTS: dict[str, Layout] = {
    "dafre_faces": Layout("dafre_faces", "faces", "labels", ("train", "val", "test")),
    "dafre_full": Layout("dafre_full", "fullMin256", "labels", ("train", "val", "test")),
    "moeimouto": Layout("moeimouto", "data", "", ("train", "test")),
}


@dataclass(frozen=True)
class Sample:
    """One labelled image. ``row`` is the 1-based line in the label file, for error messages."""

    path: Path  # absolute
    rel: str  # as written in the label file, relative to the image folder
    class_id: int
    tags: tuple[str, ...] | None
    row: int


def get_layout(layout: str | Layout) -> Layout:
    """Look a layout up by name; an unknown name lists the known ones."""
    if isinstance(layout, Layout):
        return layout
    if layout not in LAYOUTS:
        raise ValueError(f"unknown dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[layout]


def detect_layout(root: str | Path) -> str:
    """Guess the layout of ``root`` from the folders it has (faces/ wins over fullMin256/)."""
    root = Path(root)
    for layout in LAYOUTS.values():
        labels = root / layout.labels_dir
        if (root / layout.image_dir).is_dir() and (labels / CLASS_FILE).is_file():
            return layout.name
    expected = "; ".join(
        f"{lay.name}: {lay.image_dir}/ + {Path(lay.labels_dir, CLASS_FILE)}" for lay in LAYOUTS.values()
    )
    raise DatasetError(f"not a known dataset layout (expected one of {expected})", path=root)


def dafre_layout(image_dir: str) -> Layout:
    """The DAF:re layout whose images live in ``image_dir`` (``faces`` or ``fullMin256``)."""
    for layout in LAYOUTS.values():
        if layout.labels_dir == "labels" and layout.image_dir == image_dir:
            return layout
    raise ValueError(f"no DAF:re layout keeps its images in {image_dir!r}; use faces or fullMin256")


def image_root(root: str | Path, layout: str | Layout) -> Path:
    return Path(root).absolute() / get_layout(layout).image_dir


def labels_root(root: str | Path, layout: str | Layout) -> Path:
    return Path(root).absolute() / get_layout(layout).labels_dir


def class_file(root: str | Path, layout: str | Layout) -> Path:
    return labels_root(root, layout) / CLASS_FILE


def split_file(root: str | Path, layout: str | Layout, split: str, with_tags: bool = False) -> Path:
    """The label file a split is read from: ``{split}.csv``, or ``{split}_tags.csv`` with tags."""
    name = f"{split}_tags.csv" if with_tags else f"{split}.csv"
    return labels_root(root, layout) / name


def available_splits(root: str | Path, layout: str | Layout, with_tags: bool = False) -> list[str]:
    """Splits whose label file exists, in the layout's order."""
    lay = get_layout(layout)
    return [s for s in lay.splits if split_file(root, lay, s, with_tags).is_file()]


def _rows(path: Path):
    """Yield (1-based row number, fields) for every non-blank CSV row."""
    # utf-8-sig: label files written by Excel start with a byte-order mark
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row, fields in enumerate(csv.reader(f), start=1):
            if fields and any(field.strip() for field in fields):
                yield row, fields


def _parse_class_id(text: str, path: Path, row: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        hint = " (label files have no header row)" if row == 1 else ""
        raise DatasetError(f"class id {text!r} is not an integer{hint}", path=path, row=row) from None


def read_classes(path: str | Path) -> list[str]:
    """Read ``classid_classname.csv``; returns class names indexed by class id (ids 0..N-1)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("class file not found", path=path)
    names: dict[int, str] = {}
    for row, fields in _rows(path):
        if len(fields) != 2:
            raise DatasetError(
                f"expected 2 columns (class_id,class_name), found {len(fields)}", path=path, row=row
            )
        class_id = _parse_class_id(fields[0], path, row)
        if class_id in names:
            raise DatasetError(f"class id {class_id} appears twice", path=path, row=row)
        names[class_id] = fields[1].strip()
    if not names:
        raise DatasetError("class file has no classes", path=path)
    missing = sorted(set(range(len(names))) - names.keys())
    if missing:
        raise DatasetError(
            f"class ids must be 0..{len(names) - 1} without gaps; missing {missing[:10]}", path=path
        )
    return [names[i] for i in range(len(names))]


def _check_rel(rel: str, path: Path, row: int) -> str:
    """Reject image paths that could leave the image folder (``../x.jpg``, absolute paths)."""
    rel = rel.strip()
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    if not rel:
        raise DatasetError("empty image path", path=path, row=row)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or rel.startswith(("/", "\\")):
        raise DatasetError(f"image path {rel!r} is absolute; it must be relative", path=path, row=row)
    if ".." in posix.parts or ".." in windows.parts:
        raise DatasetError(f"image path {rel!r} escapes the dataset folder", path=path, row=row)
    return rel


def parse_tags(text: str, path: Path, row: int) -> tuple[str, ...]:
    """Parse a ``tags_cat0`` cell: a Python list literal of strings (literal_eval, never eval)."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DatasetError(
            f"tags_cat0 {text[:60]!r} is not a Python list literal like \"['long_hair', 'smile']\"",
            path=path,
            row=row,
        ) from None
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise DatasetError(f"tags_cat0 must be a list of strings, got {text[:60]!r}", path=path, row=row)
    return tuple(t.strip() for t in value if t.strip())


def read_split(
    root: str | Path,
    layout: str | Layout = "dafre_faces",
    split: str = "train",
    with_tags: bool = False,
    classes: list[str] | None = None,
) -> list[Sample]:
    """Read and validate one split's label file into :class:`Sample` rows.

    ``classes`` (from :func:`read_classes`) is read from the layout's class file when not given;
    every class id must be one of them. Image files are not opened here.
    """
    lay = get_layout(layout)
    path = split_file(root, lay, split, with_tags)
    if not path.is_file():
        present = available_splits(root, lay, with_tags)
        raise DatasetError(
            f"split {split!r} not found; splits present: {', '.join(present) or 'none'}", path=path
        )
    if classes is None:
        classes = read_classes(class_file(root, lay))
    images = image_root(root, lay)

    rows = _rows(path)
    n_columns = 2
    if with_tags:  # tag files carry a header; extra tag columns (tags_cat1...) are allowed
        header_row, header = next(rows, (1, []))
        header = [h.strip() for h in header]
        if header[:3] != list(TAG_COLUMNS):
            raise DatasetError(
                f"expected the header {','.join(TAG_COLUMNS)}, found {','.join(header) or 'nothing'}",
                path=path,
                row=header_row,
            )
        n_columns = len(header)

    samples = []
    for row, fields in rows:
        if len(fields) != n_columns:
            want = ",".join(TAG_COLUMNS) if with_tags else "class_id,dir"
            raise DatasetError(
                f"expected {n_columns} columns ({want}), found {len(fields)}", path=path, row=row
            )
        class_id = _parse_class_id(fields[0], path, row)
        if not 0 <= class_id < len(classes):
            raise DatasetError(
                f"class id {class_id} is not in {CLASS_FILE} (ids 0..{len(classes) - 1})",
                path=path,
                row=row,
            )
        rel = _check_rel(fields[1], path, row)
        tags = parse_tags(fields[2], path, row) if with_tags else None
        samples.append(Sample(images / rel, rel, class_id, tags, row))
    return samples


# The csv module's own line end; the synthetic generator has always written "\n" and keeps it,
# since the committed results cite the fingerprint of its files' bytes.
CSV_LINE_END = "\r\n"


def format_tags(tags: Iterable[str]) -> str:
    """A ``tags_cat0`` cell: the Python list literal that :func:`parse_tags` reads back."""
    return repr(list(tags))


def write_classes(path: str | Path, classes: Iterable[str], line_end: str = CSV_LINE_END) -> None:
    """Write ``classid_classname.csv`` so that :func:`read_classes` reads it back."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator=line_end).writerows(enumerate(classes))


def write_split(path: str | Path, rows: Iterable[tuple], with_tags: bool | None = None,
                line_end: str = CSV_LINE_END) -> None:
    """Write a split file; rows ``(class_id, dir)``, or ``(class_id, dir, tags)`` for ``*_tags.csv``.

    ``rows`` may be a stream (written as it comes); ``with_tags=None`` decides from the first row.
    With ``with_tags=False``, a row's tags, if any, are left out: one stream can feed both files.
    """
    rows = iter(rows)
    first = next(rows, None)
    if with_tags is None:
        with_tags = first is not None and len(first) == 3
    rows = rows if first is None else chain([first], rows)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator=line_end)
        if with_tags:
            writer.writerow(TAG_COLUMNS)
            writer.writerows((c, d, format_tags(tags)) for c, d, tags in rows)
        else:
            writer.writerows(row[:2] for row in rows)
