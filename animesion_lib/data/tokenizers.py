"""Danbooru tags as model inputs and targets, fully offline.

Three objects, one concept each:

* :class:`TagVocabulary` -- the tags kept for *tag prediction*; turns a tag list into a
  multi-hot target vector.
* :class:`TagTokenizer` -- one token per tag (ViLT text input, masked-tag modelling over whole
  tags). Unknown tags become ``[UNK]``.
* :class:`WordPieceTagTokenizer` -- sub-word tokens from the Hugging Face ``tokenizers`` library,
  trained on the training split's tags or loaded from a local ``vocab.txt`` / ``tokenizer.json``
  (or from the hub where one is reachable). Rare and unseen tags still get meaningful pieces.

Both tokenizers share one interface (``encode``, ``encode_batch``, ``decode``, the special-token
ids, ``save``) so the dataset and the models never care which one they hold. Every encoded
sequence looks like::

    TagTokenizer:           [CLS] long_hair smile blue_eyes [PAD] [PAD] ...
    WordPieceTagTokenizer:  [CLS] long hair [SEP] smile [SEP] blue eyes [SEP] [PAD] ...

How a tag list becomes WordPiece text: each tag is encoded on its own, with underscores turned
into spaces (Danbooru writes ``long_hair``; a BERT-style vocabulary knows ``long`` and ``hair``),
and every tag is closed by ``[SEP]``. The separator is a special token, so masking schedules never
mask it and the model always sees where a tag ends; truncation can then drop whole tags.

An empty tag list is valid and encodes to ``[CLS]`` followed by padding. Tokenizer files are
JSON with a ``type`` field and a ``version``; :func:`load_tokenizer` returns the right class.
"""

from __future__ import annotations

import json
import os
import random
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from animesion_lib.errors import AnimesionError, DatasetError

__all__ = [
    "SPECIAL_TOKENS",
    "PAD_TOKEN",
    "UNK_TOKEN",
    "CLS_TOKEN",
    "SEP_TOKEN",
    "MASK_TOKEN",
    "TagVocabulary",
    "TagTokenizer",
    "WordPieceTagTokenizer",
    "build_tokenizer",
    "load_tokenizer",
]

PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
# order matters: for TagTokenizer these are ids 0..4
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)

FORMAT_VERSION = 1  # bump when the saved JSON changes; loaders refuse newer files


# --------------------------------------------------------------------------------------------
# input checks and file helpers


def _check_tags(tags: Any, what: str = "tags") -> list[str]:
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


def _check_tag_lists(tag_lists: Any) -> list[list[str]]:
    """Validate a list of tag lists (one per image)."""
    if isinstance(tag_lists, (str, bytes)) or not isinstance(tag_lists, Iterable):
        raise ValueError(f"tag_lists must be a list of lists of tags, got {type(tag_lists).__name__}")
    return [_check_tags(tags, what=f"tag_lists[{i}]") for i, tags in enumerate(tag_lists)]


def _make_rng(rng: random.Random | int | None) -> Any:
    """A seeded Random for an int, the given Random, or the global ``random`` module.

    The global module is the right default inside a DataLoader: torch reseeds it per worker.
    """
    if rng is None:
        return random
    if isinstance(rng, int):
        return random.Random(rng)
    return rng


def _read_json(path: Path, kind: str) -> dict:
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


def _check_header(data: dict, expected_type: str, path: Path) -> None:
    """Check the ``type`` and ``version`` fields every file we write carries."""
    found = data.get("type")
    if found != expected_type:
        raise DatasetError(f"expected a {expected_type} file, found type {found!r}", path=path)
    version = data.get("version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise DatasetError(
            f"unsupported {expected_type} file version {version!r} (this library reads up to "
            f"{FORMAT_VERSION}; a newer animesion_lib wrote it?)",
            path=path,
        )


def _write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename, so a crash never leaves a half-written tokenizer behind
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _count_tags(tag_lists: list[list[str]]) -> Counter:
    """Image frequency of each tag: a tag repeated within one image counts once."""
    counts: Counter = Counter()
    for tags in tag_lists:
        counts.update(set(tags))
    return counts


def _ordered_by_frequency(counts: Counter, min_freq: int, max_size: int | None) -> list[tuple[str, int]]:
    """Tags with count >= min_freq, by count descending then name, so the order is deterministic."""
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    kept = sorted(((t, c) for t, c in counts.items() if c >= min_freq), key=lambda tc: (-tc[1], tc[0]))
    return kept if max_size is None else kept[:max_size]


# --------------------------------------------------------------------------------------------
# targets for tag prediction


class TagVocabulary:
    """The set of tags a model predicts, in a fixed order (index = output unit).

    Built from the *training* split only, so that validation and test never leak into the
    targets. Tags below ``min_freq`` images are dropped: a tag seen twice cannot be learnt and
    only adds noise to the multi-label loss.

    Unknown tags are ignored by :meth:`multi_hot` (the target simply covers the vocabulary);
    use :meth:`coverage` to report how many tag occurrences a split loses that way.
    """

    def __init__(self, tags: Sequence[str], counts: Sequence[int] | None = None, min_freq: int = 1):
        tags = _check_tags(tags, what="tags")
        if len(set(tags)) != len(tags):
            dup = next(t for t, c in Counter(tags).items() if c > 1)
            raise ValueError(f"duplicate tag in vocabulary: {dup!r}")
        if counts is not None and len(counts) != len(tags):
            raise ValueError(f"{len(counts)} counts for {len(tags)} tags")
        self.tags: list[str] = tags
        self.counts: list[int] | None = list(counts) if counts is not None else None
        self.min_freq = min_freq
        self._index = {t: i for i, t in enumerate(tags)}

    @classmethod
    def from_tag_lists(
        cls, tag_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> TagVocabulary:
        """Count tags over images (one list per image); keep those in >= ``min_freq`` images.

        Order: frequency descending, then name. ``max_size`` keeps only the most frequent tags.
        """
        counts = _count_tags(_check_tag_lists(tag_lists))
        kept = _ordered_by_frequency(counts, min_freq, max_size)
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
        """Position of ``tag`` in the target vector; KeyError for a tag outside the vocabulary."""
        try:
            return self._index[tag]
        except KeyError:
            raise KeyError(f"tag {tag!r} is not in the vocabulary") from None

    def multi_hot(self, tags: Sequence[str]) -> torch.Tensor:
        """float32 tensor [len(self)]: 1.0 where the image has the tag. Unknown tags are ignored."""
        target = torch.zeros(len(self), dtype=torch.float32)
        ids = [self._index[t] for t in _check_tags(tags) if t in self._index]
        if ids:
            target[ids] = 1.0
        return target

    def coverage(self, tag_lists: Iterable[Sequence[str]]) -> float:
        """Fraction of tag occurrences in ``tag_lists`` that the vocabulary covers (1.0 if none)."""
        total = known = 0
        for tags in _check_tag_lists(tag_lists):
            total += len(tags)
            known += sum(t in self._index for t in tags)
        return known / total if total else 1.0

    def save(self, path: str | Path) -> Path:
        """Write JSON: type, version, min_freq, tags (in order) and their training counts."""
        return _write_json(
            path,
            {"type": "TagVocabulary", "version": FORMAT_VERSION, "min_freq": self.min_freq,
             "tags": self.tags, "counts": self.counts},
        )

    @classmethod
    def load(cls, path: str | Path) -> TagVocabulary:
        path = Path(path)
        data = _read_json(path, "tag vocabulary")
        _check_header(data, "TagVocabulary", path)
        try:
            return cls(data["tags"], data.get("counts"), min_freq=int(data.get("min_freq", 1)))
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"malformed tag vocabulary: {err}", path=path) from err


# --------------------------------------------------------------------------------------------
# tokenizers


class TagSequenceTokenizer(ABC):
    """What both tokenizers share: turning a tag list into a fixed-length id sequence.

    A subclass only says how one tag becomes ids (:meth:`_tag_ids`); this class shuffles,
    truncates whole tags, prepends ``[CLS]`` and pads.
    """

    # set by subclasses
    pad_token_id: int
    unk_token_id: int
    cls_token_id: int
    sep_token_id: int
    mask_token_id: int

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special tokens included (the size of a model's embedding table)."""

    @property
    def special_token_ids(self) -> frozenset[int]:
        """Ids that masking schedules must leave alone and losses must ignore."""
        return frozenset(
            (self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id)
        )

    @abstractmethod
    def _tag_ids(self, tag: str) -> list[int]:
        """Ids of one tag, including its terminator if the tokenizer uses one. Never empty."""

    @abstractmethod
    def id_to_token(self, token_id: int) -> str: ...

    @abstractmethod
    def save(self, path: str | Path) -> Path: ...

    def encode(
        self,
        tags: Sequence[str],
        max_length: int | None = 32,
        shuffle: bool = False,
        rng: random.Random | int | None = None,
        padding: bool = True,
    ) -> dict[str, list[int]]:
        """Encode one image's tags as ``{"input_ids": [...], "attention_mask": [...]}``.

        Args:
            tags: tag strings (Danbooru spelling, e.g. ``"long_hair"``); may be empty.
            max_length: total length including ``[CLS]``; longer inputs lose whole tags from the
                end. ``None`` keeps every tag and does not pad.
            shuffle: shuffle the tag order first. Danbooru stores tags alphabetically, an order
                that means nothing, so training shuffles (and truncation then drops random tags).
            rng: a ``random.Random`` or an int seed for a reproducible order; ``None`` uses the
                global ``random`` module (reseeded per DataLoader worker by torch).
            padding: pad with ``[PAD]`` (attention 0) up to ``max_length``.
        """
        tags = _check_tags(tags)
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 (room for [CLS]), got {max_length}")
        if shuffle:
            tags = tags.copy()  # never reorder the caller's list
            _make_rng(rng).shuffle(tags)

        ids = [self.cls_token_id]
        for i, tag in enumerate(tags):
            tag_ids = self._tag_ids(tag)
            if max_length is not None and len(ids) + len(tag_ids) > max_length:
                # drop whole tags; only when not even the first tag fits is one cut mid-tag,
                # so that a tiny max_length still carries some text
                if i == 0:
                    ids += tag_ids[: max_length - 1]
                break
            ids += tag_ids
        attention = [1] * len(ids)
        if padding and max_length is not None:
            n_pad = max_length - len(ids)
            ids += [self.pad_token_id] * n_pad
            attention += [0] * n_pad
        return {"input_ids": ids, "attention_mask": attention}

    def encode_batch(
        self,
        tag_lists: Sequence[Sequence[str]],
        max_length: int | None = 32,
        shuffle: bool = False,
        rng: random.Random | int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encode many tag lists into int64 tensors ``input_ids`` and ``attention_mask`` [B, L].

        With ``max_length=None`` the batch is padded to its longest sequence.
        """
        rng = _make_rng(rng)  # one generator for the batch, so an int seed is not reused per row
        rows = [
            self.encode(tags, max_length, shuffle, rng, padding=False) for tags in _check_tag_lists(tag_lists)
        ]
        length = max_length if max_length is not None else max((len(r["input_ids"]) for r in rows), default=1)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.int64)
        attention = torch.zeros((len(rows), length), dtype=torch.int64)
        for b, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[b, :n] = torch.tensor(row["input_ids"], dtype=torch.int64)
            attention[b, :n] = 1
        return {"input_ids": input_ids, "attention_mask": attention}

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Tokens as space-separated text, for inspection (``decode_tags`` gives the tags)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        special = self.special_token_ids
        return " ".join(self.id_to_token(i) for i in ids if not (skip_special_tokens and i in special))

    @abstractmethod
    def decode_tags(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """The tags an id sequence spells, in order (padding and ``[CLS]`` skipped)."""


class TagTokenizer(TagSequenceTokenizer):
    """One token per tag: ids 0..4 are ``[PAD] [UNK] [CLS] [SEP] [MASK]``, then the tags.

    The tag order is the training frequency order of :class:`TagVocabulary` (frequent tags get
    small ids, which keeps vocabularies of different ``min_freq`` prefix-compatible). A tag
    outside the vocabulary encodes to ``[UNK]``. No ``[SEP]`` is needed: a token *is* a tag.
    """

    def __init__(self, tags: Sequence[str], min_freq: int = 1):
        tags = _check_tags(tags, what="tags")
        clash = set(tags) & set(SPECIAL_TOKENS)
        if clash:
            raise ValueError(f"tags may not be named like special tokens: {sorted(clash)}")
        if len(set(tags)) != len(tags):
            raise ValueError("duplicate tags in the tokenizer vocabulary")
        self.tags = tags
        self.min_freq = min_freq
        self._id_to_token = list(SPECIAL_TOKENS) + tags
        self._token_to_id = {t: i for i, t in enumerate(self._id_to_token)}
        (self.pad_token_id, self.unk_token_id, self.cls_token_id,
         self.sep_token_id, self.mask_token_id) = range(len(SPECIAL_TOKENS))

    @classmethod
    def from_vocabulary(cls, vocab: TagVocabulary) -> TagTokenizer:
        # a real tag spelled like "[UNK]" would be ambiguous; it cannot be learnt as a tag anyway
        return cls([t for t in vocab.tags if t not in SPECIAL_TOKENS], min_freq=vocab.min_freq)

    @classmethod
    def from_tag_lists(
        cls, tag_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> TagTokenizer:
        """Vocabulary = tags in >= ``min_freq`` training images (at most ``max_size`` of them)."""
        return cls.from_vocabulary(TagVocabulary.from_tag_lists(tag_lists, min_freq, max_size))

    def __repr__(self) -> str:
        return f"TagTokenizer(vocab_size={self.vocab_size}, min_freq={self.min_freq})"

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

    def token_to_id(self, token: str) -> int:
        return self._token_to_id.get(token, self.unk_token_id)

    def id_to_token(self, token_id: int) -> str:
        return self._id_to_token[token_id]

    def _tag_ids(self, tag: str) -> list[int]:
        return [self._token_to_id.get(tag, self.unk_token_id)]

    def decode_tags(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        skip = {self.pad_token_id, self.cls_token_id, self.sep_token_id}
        return [self._id_to_token[i] for i in ids if i not in skip]

    def save(self, path: str | Path) -> Path:
        """Write JSON: type, version, special tokens and tags (id = position in ``vocab``)."""
        return _write_json(
            path,
            {"type": "TagTokenizer", "version": FORMAT_VERSION, "min_freq": self.min_freq,
             "vocab": self._id_to_token},
        )

    @classmethod
    def load(cls, path: str | Path) -> TagTokenizer:
        path = Path(path)
        data = _read_json(path, "tokenizer")
        _check_header(data, "TagTokenizer", path)
        return cls._from_data(data, path)

    @classmethod
    def _from_data(cls, data: dict, path: Path) -> TagTokenizer:
        vocab = data.get("vocab")
        if not isinstance(vocab, list) or tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise DatasetError(f"tokenizer vocab must start with {list(SPECIAL_TOKENS)}", path=path)
        try:
            return cls(vocab[len(SPECIAL_TOKENS):], min_freq=int(data.get("min_freq", 1)))
        except (TypeError, ValueError) as err:
            raise DatasetError(f"malformed tokenizer: {err}", path=path) from err


class WordPieceTagTokenizer(TagSequenceTokenizer):
    """Sub-word tokens for tags, built on the Hugging Face ``tokenizers`` library.

    Each tag is encoded on its own (underscores become spaces, then the normalizer lower-cases)
    and closed by ``[SEP]``, so tag boundaries survive and truncation drops whole tags. Per-tag
    encodings are cached: a dataset has few distinct tags and many images.

    Build one with :meth:`train` (on the training split's tags), :meth:`from_vocab_file` (a
    BERT-style ``vocab.txt``), :meth:`from_file` (``tokenizer.json``, ours or Hugging Face's) or
    :meth:`from_pretrained` (a hub name; needs the network).
    """

    def __init__(self, tokenizer: Any, source: str | None = None):
        from tokenizers import Tokenizer

        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"expected a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        # we add [CLS]/[SEP]/padding ourselves; a loaded tokenizer.json may carry its own settings
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.source = source
        missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"the WordPiece vocabulary lacks the special tokens {missing}")
        (self.pad_token_id, self.unk_token_id, self.cls_token_id,
         self.sep_token_id, self.mask_token_id) = (tokenizer.token_to_id(t) for t in SPECIAL_TOKENS)
        self._cache: dict[str, list[int]] = {}

    # --- construction ----------------------------------------------------------------------

    @staticmethod
    def _bert_pipeline(model: Any, lowercase: bool = True) -> Any:
        """A Tokenizer with BERT's normalizer, pre-tokenizer and decoder around ``model``."""
        from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers

        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        # splits on whitespace and punctuation: "reimu (cosplay)" -> reimu ( cosplay )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        return tokenizer

    @classmethod
    def train(
        cls, tag_lists: Iterable[Sequence[str]], vocab_size: int = 8000, min_freq: int = 2
    ) -> WordPieceTagTokenizer:
        """Train a WordPiece vocabulary of at most ``vocab_size`` tokens on the tags.

        Every tag occurrence counts (frequent tags become single tokens). ``min_freq`` is the
        trainer's minimum pair frequency for a merge; no tag is dropped, since rare tags are
        exactly what sub-words are for. Special tokens get ids 0..4.
        """
        from tokenizers import Tokenizer, models, trainers

        tag_lists = _check_tag_lists(tag_lists)
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens")
        tokenizer = cls._bert_pipeline(models.WordPiece(unk_token=UNK_TOKEN))
        # The Rust trainer numbers the "##c" continuation tokens in hash-map order, and those ids
        # break ties between equally frequent merges, so two runs can learn different vocabularies
        # (huggingface/tokenizers#1794). Registering them up front, sorted, fixes their ids.
        continuation = _continuation_tokens(tokenizer, {t for tags in tag_lists for t in tags})
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_freq,
            special_tokens=list(SPECIAL_TOKENS) + continuation,
            show_progress=False,
        )
        # each item is one image's batch of tag texts
        tokenizer.train_from_iterator(([_tag_text(t) for t in tags] for tags in tag_lists), trainer)
        # the "##c" tokens stay in the vocabulary but must not be special (decode would drop them)
        hf_json = json.loads(tokenizer.to_str())
        hf_json["added_tokens"] = [t for t in hf_json["added_tokens"] if t["content"] in SPECIAL_TOKENS]
        return cls(Tokenizer.from_str(json.dumps(hf_json)), source="trained")

    @classmethod
    def from_vocab_file(cls, path: str | Path, lowercase: bool = True) -> WordPieceTagTokenizer:
        """Load a BERT-style ``vocab.txt``: one token per line, id = line number - 1.

        The file must contain the five special tokens (BERT's does, at ids 0 and 100..103).
        """
        from tokenizers import models

        path = Path(path)
        if not path.is_file():
            raise DatasetError("vocabulary file not found", path=path)
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as err:
            raise DatasetError(f"vocabulary file is not UTF-8 text ({err.reason})", path=path) from err
        if lines and lines[-1] == "":
            lines.pop()  # the final newline
        vocab: dict[str, int] = {}
        for row, line in enumerate(lines, start=1):
            token = line.rstrip("\r")
            if not token.strip():
                raise DatasetError("empty token", path=path, row=row)
            if token in vocab:
                first = vocab[token] + 1
                raise DatasetError(f"duplicate token {token!r} (first on row {first})", path=path, row=row)
            vocab[token] = row - 1
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise DatasetError(f"vocabulary lacks the special tokens {missing}", path=path)
        tokenizer = cls._bert_pipeline(models.WordPiece(vocab, unk_token=UNK_TOKEN), lowercase=lowercase)
        tokenizer.add_special_tokens(list(SPECIAL_TOKENS))  # already in vocab: marks them special
        return cls(tokenizer, source=str(path))

    @classmethod
    def from_file(cls, path: str | Path) -> WordPieceTagTokenizer:
        """Load ``vocab.txt``, a Hugging Face ``tokenizer.json``, a file from :meth:`save`, or a
        directory holding ``tokenizer.json`` or ``vocab.txt``."""
        path = Path(path)
        if path.is_dir():
            for name in ("tokenizer.json", "vocab.txt"):
                if (path / name).is_file():
                    return cls.from_file(path / name)
            raise DatasetError("directory holds neither tokenizer.json nor vocab.txt", path=path)
        if path.suffix == ".txt":
            return cls.from_vocab_file(path)
        data = _read_json(path, "tokenizer")
        if "type" in data:
            _check_header(data, "WordPieceTagTokenizer", path)
            hf_json = data.get("tokenizer")
        else:
            hf_json = data  # a plain Hugging Face tokenizer.json
        return cls._from_hf_json(hf_json, path)

    @classmethod
    def _from_hf_json(cls, hf_json: Any, path: Path) -> WordPieceTagTokenizer:
        from tokenizers import Tokenizer

        if not isinstance(hf_json, dict) or "model" not in hf_json:
            raise DatasetError("not a Hugging Face tokenizer (no 'model' field)", path=path)
        try:
            tokenizer = Tokenizer.from_str(json.dumps(hf_json))
        except Exception as err:  # the Rust side raises a bare Exception on malformed input
            raise DatasetError(f"malformed tokenizer: {err}", path=path) from err
        try:
            return cls(tokenizer, source=str(path))
        except ValueError as err:
            raise DatasetError(str(err), path=path) from err

    @classmethod
    def from_pretrained(cls, name: str) -> WordPieceTagTokenizer:
        """A local path (see :meth:`from_file`) or a Hugging Face hub name such as
        ``"bert-base-uncased"``. The hub needs the network; offline this raises a clear error."""
        if Path(name).exists():
            return cls.from_file(name)
        from tokenizers import Tokenizer

        advice = (
            "download its tokenizer.json or vocab.txt where the hub is reachable and pass that "
            "local path instead"
        )
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
            raise AnimesionError(f"cannot fetch tokenizer {name!r}: HF_HUB_OFFLINE is set; {advice}")
        try:
            tokenizer = Tokenizer.from_pretrained(name)
        except Exception as err:
            raise AnimesionError(
                f"could not fetch tokenizer {name!r} from the Hugging Face hub ({err}); "
                f"this machine may have no network: {advice}"
            ) from err
        return cls(tokenizer, source=f"hub:{name}")

    # --- the shared interface ----------------------------------------------------------------

    def __repr__(self) -> str:
        return f"WordPieceTagTokenizer(vocab_size={self.vocab_size}, source={self.source!r})"

    def __getstate__(self) -> dict:
        # DataLoader workers get a copy; the cache is cheap to rebuild
        return {**self.__dict__, "_cache": {}}

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        return self.unk_token_id if token_id is None else token_id

    def id_to_token(self, token_id: int) -> str:
        token = self.tokenizer.id_to_token(token_id)
        if token is None:
            raise IndexError(f"token id {token_id} is outside the vocabulary ({self.vocab_size})")
        return token

    def _tag_ids(self, tag: str) -> list[int]:
        ids = self._cache.get(tag)
        if ids is None:
            pieces = self.tokenizer.encode(_tag_text(tag), add_special_tokens=False).ids
            # a tag made only of characters the normalizer drops still takes a position
            ids = (pieces or [self.unk_token_id]) + [self.sep_token_id]
            self._cache[tag] = ids
        return ids

    def decode_tags(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Best-effort tags back from pieces: lower-cased, spaces as underscores.

        Exact only where the tag was lower-case and had no punctuation: the pre-tokenizer splits
        ``reimu_(cosplay)`` into ``reimu ( cosplay )``; we glue brackets back the Danbooru way.
        """
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        tags: list[str] = []
        unit: list[int] = []
        for i in ids + [self.sep_token_id]:  # a trailing [SEP] flushes a truncated last tag
            if i == self.sep_token_id:
                if unit:
                    text = self.tokenizer.decode(unit, skip_special_tokens=False)
                    tags.append(re.sub(r"\(_", "(", re.sub(r"_\)", ")", "_".join(text.split()))))
                unit = []
            elif i not in (self.pad_token_id, self.cls_token_id):
                unit.append(i)
        return tags

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Tags joined by ``", "`` (or every token, ``##`` merged, with specials kept)."""
        if skip_special_tokens:
            return ", ".join(self.decode_tags(ids))
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def save(self, path: str | Path) -> Path:
        """Write JSON: type, version, and the full Hugging Face tokenizer inside it."""
        return _write_json(
            path,
            {"type": "WordPieceTagTokenizer", "version": FORMAT_VERSION, "source": self.source,
             "tokenizer": json.loads(self.tokenizer.to_str())},
        )

    @classmethod
    def load(cls, path: str | Path) -> WordPieceTagTokenizer:
        return cls.from_file(path)


def _tag_text(tag: str) -> str:
    """Danbooru spelling to words: ``long_hair`` -> ``long hair``."""
    return tag.replace("_", " ").strip()


def _continuation_tokens(tokenizer: Any, tags: Iterable[str]) -> list[str]:
    """Sorted ``##c`` for every character that follows another inside a pre-tokenized word."""
    chars: set[str] = set()
    for tag in tags:
        text = tokenizer.normalizer.normalize_str(_tag_text(tag))
        for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text):
            chars.update(word[1:])
    return sorted(f"##{c}" for c in chars)


# --------------------------------------------------------------------------------------------
# factory and loader


def build_tokenizer(
    kind: str,
    tag_lists: Iterable[Sequence[str]],
    min_freq: int = 1,
    vocab_size: int | None = None,
) -> TagSequenceTokenizer:
    """Build a tokenizer from the *training* split's tag lists.

    Args:
        kind: ``"tag"`` (one token per tag) or ``"wordpiece"``.
        min_freq: ``"tag"``: a tag needs this many images; ``"wordpiece"``: minimum merge
            frequency for the trainer.
        vocab_size: ``"tag"``: cap on the vocabulary, special tokens included (None: no cap);
            ``"wordpiece"``: target size, default 8000.
    """
    if kind == "tag":
        max_size = None if vocab_size is None else max(vocab_size - len(SPECIAL_TOKENS), 0)
        return TagTokenizer.from_tag_lists(tag_lists, min_freq=min_freq, max_size=max_size)
    if kind == "wordpiece":
        return WordPieceTagTokenizer.train(tag_lists, vocab_size=vocab_size or 8000, min_freq=min_freq)
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected 'tag' or 'wordpiece'")


def load_tokenizer(path: str | Path) -> TagSequenceTokenizer:
    """Load any tokenizer file: ours (by its ``type`` field), a Hugging Face ``tokenizer.json``,
    a BERT ``vocab.txt``, or a directory holding one of the last two."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".txt":
        return WordPieceTagTokenizer.from_file(path)
    data = _read_json(path, "tokenizer")
    kind = data.get("type")
    if kind == "TagTokenizer":
        _check_header(data, "TagTokenizer", path)
        return TagTokenizer._from_data(data, path)
    if kind == "WordPieceTagTokenizer":
        _check_header(data, "WordPieceTagTokenizer", path)
        return WordPieceTagTokenizer._from_hf_json(data.get("tokenizer"), path)
    if kind == "TagVocabulary":
        raise DatasetError("this is a tag vocabulary, not a tokenizer (use TagVocabulary.load)", path=path)
    if kind is None and "model" in data:
        return WordPieceTagTokenizer._from_hf_json(data, path)
    raise DatasetError(f"unknown tokenizer type {kind!r}", path=path)
