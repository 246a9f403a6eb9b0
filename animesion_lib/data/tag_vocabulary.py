"""The tags a model *predicts* (multi-hot targets), and the checks every tag list goes through.

:class:`TagVocabulary` is built from the training split only, so that validation and test never
leak into the targets; the tokenizers (``tokenizers.py``) turn the same tag lists into inputs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from animesion_lib.atomic import atomic_write_text
from animesion_lib.errors import DatasetError

__all__ = ["TagVocabulary", "check_tags", "check_tag_lists", "read_json_object", "check_header"]

FORMAT_VERSION = 1  # of the files written with a "type" and "version" field; loaders refuse newer


def check_tags(tags: Any, what: str = "tags") -> list[str]:
    """Return ``tags`` as a list of strings, or raise a ValueError that says what is wrong."""
    # a bare string is a sequence of characters: the classic silent bug, so refuse it
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Sequence):
        raise ValueError(f"{what} must be a list of tag strings, got {type(tags).__name__}: {tags!r:.80}")
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise ValueError(f"{what}[{i}] must be a str, got {type(tag).__name__}: {tag!r:.80}")
        if not tag.strip():
            raise ValueError(f"{what}[{i}] is an empty tag")
    return list(tags)


def check_tag_lists(tag_lists: Any) -> list[list[str]]:
    if isinstance(tag_lists, (str, bytes)) or not isinstance(tag_lists, Iterable):
        raise ValueError(f"tag_lists must be a list of lists of tags, got {type(tag_lists).__name__}")
    return [check_tags(tags, what=f"tag_lists[{i}]") for i, tags in enumerate(tag_lists)]


def read_json_object(path: Path, kind: str) -> dict:
    """Read a JSON object, turning every way it can fail into a DatasetError naming the file."""
    if not path.is_file():
        raise DatasetError(f"{kind} file not found", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DatasetError(f"{kind} file is not UTF-8 text ({err.reason})", path=path) from err
    except json.JSONDecodeError as err:
        raise DatasetError(f"{kind} file is not valid JSON: {err.msg}", path=path, row=err.lineno) from err
    if not isinstance(data, dict):
        raise DatasetError(f"{kind} file must hold a JSON object, got {type(data).__name__}", path=path)
    return data


def check_header(data: dict, expected_type: str, path: Path) -> None:
    version = data.get("version")
    if data.get("type") != expected_type:
        raise DatasetError(f"expected a {expected_type} file, found type {data.get('type')!r}", path=path)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise DatasetError(f"unsupported {expected_type} file version {version!r} (this library reads up to "
                           f"{FORMAT_VERSION}; a newer animesion_lib wrote it?)", path=path)


class TagVocabulary:
    """The tags a model predicts, in a fixed order (index = output unit), from the *training*
    split only. Tags in fewer than ``min_freq`` images are dropped (they cannot be learnt);
    :meth:`multi_hot` ignores unknown tags and :meth:`coverage` says how many that loses."""

    def __init__(self, tags: Sequence[str], counts: Sequence[int] | None = None, min_freq: int = 1):
        tags = check_tags(tags, what="tags")
        if len(set(tags)) != len(tags):
            raise ValueError(f"duplicate tag in vocabulary: {next(t for t, c in Counter(tags).items() if c > 1)!r}")
        if counts is not None and len(counts) != len(tags):
            raise ValueError(f"{len(counts)} counts for {len(tags)} tags")
        self.tags, self.min_freq = tags, min_freq
        self.counts: list[int] | None = list(counts) if counts is not None else None
        self._index = {t: i for i, t in enumerate(tags)}

    @classmethod
    def from_tag_lists(cls, tag_lists: Iterable[Sequence[str]], min_freq: int = 1,
                       max_size: int | None = None) -> TagVocabulary:
        """Tags in >= ``min_freq`` images (a tag repeated in one image counts once), by count
        descending then name; ``max_size`` keeps the most frequent."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts = Counter(t for tags in check_tag_lists(tag_lists) for t in set(tags))
        kept = sorted(((t, c) for t, c in counts.items() if c >= min_freq), key=lambda tc: (-tc[1], tc[0]))
        kept = kept[:max_size] if max_size is not None else kept
        return cls([t for t, _ in kept], [c for _, c in kept], min_freq=min_freq)

    def __len__(self) -> int:
        return len(self.tags)

    def __contains__(self, tag: object) -> bool:
        return tag in self._index

    def __repr__(self) -> str:
        return f"TagVocabulary({len(self)} tags, min_freq={self.min_freq})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TagVocabulary) and self.tags == other.tags

    def index(self, tag: str) -> int:
        if tag not in self._index:
            raise KeyError(f"tag {tag!r} is not in the vocabulary")
        return self._index[tag]

    def multi_hot(self, tags: Sequence[str]) -> torch.Tensor:
        """float32 tensor [len(self)]: 1.0 where the image has the tag. Unknown tags are ignored."""
        target = torch.zeros(len(self), dtype=torch.float32)
        target[[self._index[t] for t in check_tags(tags) if t in self._index]] = 1.0
        return target

    def coverage(self, tag_lists: Iterable[Sequence[str]]) -> float:
        """Fraction of tag occurrences in ``tag_lists`` that the vocabulary covers (1.0 if none)."""
        tags = [t for tags in check_tag_lists(tag_lists) for t in tags]
        return sum(t in self._index for t in tags) / len(tags) if tags else 1.0

    def save(self, path: str | Path) -> Path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        data = {"type": "TagVocabulary", "version": FORMAT_VERSION, "min_freq": self.min_freq,
                "tags": self.tags, "counts": self.counts}
        return atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TagVocabulary:
        path = Path(path)
        data = read_json_object(path, "tag vocabulary")
        check_header(data, "TagVocabulary", path)
        try:
            return cls(data["tags"], data.get("counts"), min_freq=int(data.get("min_freq", 1)))
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"malformed tag vocabulary: {err}", path=path) from err
