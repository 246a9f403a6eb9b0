"""Danbooru tags as model inputs and targets, on Hugging Face ``tokenizers``, fully offline.

* :class:`TagVocabulary` -- the tags a model *predicts*; a tag list becomes a multi-hot target.
* :class:`TagTokenizer` -- a ``tokenizers.Tokenizer`` with a ``WordLevel`` model: one token per
  tag, ``[UNK]`` for tags outside the training vocabulary.
* :class:`WordPieceTagTokenizer` -- a ``WordPiece`` model trained on the training split's tags
  (or read from a local ``vocab.txt`` / ``tokenizer.json``): rare tags still get pieces.

The ``Tokenizer`` does the work (``TemplateProcessing`` puts ``[CLS]`` first, ``enable_padding``
and ``enable_truncation`` fix the length) and is saved with its own ``Tokenizer.save``. What is
ours is how tags become its input: each tag is one pre-tokenized word (WordPiece: underscores
become spaces and a ``[SEP]`` closes every tag, so the model sees where a tag ends and masking
never hides it), and truncation drops whole tags::

    TagTokenizer:           [CLS] long_hair smile blue_eyes [PAD] [PAD] ...
    WordPieceTagTokenizer:  [CLS] long hair [SEP] smile [SEP] blue eyes [SEP] [PAD] ...
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from animesion_lib.atomic import atomic_path, atomic_write_text
from animesion_lib.errors import DatasetError

__all__ = ["SPECIAL_TOKENS", "PAD_TOKEN", "UNK_TOKEN", "CLS_TOKEN", "SEP_TOKEN", "MASK_TOKEN", "TagVocabulary",
           "TagSequenceTokenizer", "TagTokenizer", "WordPieceTagTokenizer", "build_tokenizer", "load_tokenizer"]

PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)  # ids 0..4
FORMAT_VERSION = 1  # of TagVocabulary files (and of the tokenizer files written before tokenizers.Tokenizer)
REMAKE = "re-make it by training the run again (`animesion train`, which writes tokenizer.json)"


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
    if isinstance(tag_lists, (str, bytes)) or not isinstance(tag_lists, Iterable):
        raise ValueError(f"tag_lists must be a list of lists of tags, got {type(tag_lists).__name__}")
    return [_check_tags(tags, what=f"tag_lists[{i}]") for i, tags in enumerate(tag_lists)]


def _make_rng(rng: random.Random | int | None) -> Any:
    """A seeded Random for an int, the given Random, or the global ``random`` module (which
    torch reseeds in every DataLoader worker)."""
    return random if rng is None else random.Random(rng) if isinstance(rng, int) else rng


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
        tags = _check_tags(tags, what="tags")
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
        counts = Counter(t for tags in _check_tag_lists(tag_lists) for t in set(tags))
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
        target[[self._index[t] for t in _check_tags(tags) if t in self._index]] = 1.0
        return target

    def coverage(self, tag_lists: Iterable[Sequence[str]]) -> float:
        """Fraction of tag occurrences in ``tag_lists`` that the vocabulary covers (1.0 if none)."""
        tags = [t for tags in _check_tag_lists(tag_lists) for t in tags]
        return sum(t in self._index for t in tags) / len(tags) if tags else 1.0

    def save(self, path: str | Path) -> Path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        data = {"type": "TagVocabulary", "version": FORMAT_VERSION, "min_freq": self.min_freq,
                "tags": self.tags, "counts": self.counts}
        return atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TagVocabulary:
        path = Path(path)
        data = _read_json(path, "tag vocabulary")
        _check_header(data, "TagVocabulary", path)
        try:
            return cls(data["tags"], data.get("counts"), min_freq=int(data.get("min_freq", 1)))
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"malformed tag vocabulary: {err}", path=path) from err


class TagSequenceTokenizer:
    """A ``tokenizers.Tokenizer`` reading tag lists; subclasses say which words a tag becomes."""

    def __init__(self, tokenizer: Tokenizer):
        missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}")
        (self.pad_token_id, self.unk_token_id, self.cls_token_id,
         self.sep_token_id, self.mask_token_id) = (tokenizer.token_to_id(t) for t in SPECIAL_TOKENS)
        # a loaded tokenizer.json may carry BERT's "[CLS] $A [SEP]", padding or truncation
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{CLS_TOKEN} $A", special_tokens=[(CLS_TOKEN, self.cls_token_id)])
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self._sized: dict[tuple[int | None, bool], Tokenizer] = {}  # copies with padding/truncation on

    def _tag_words(self, tag: str) -> tuple[list[str], int]:
        """The pre-tokenized words one tag becomes, and how many tokens they make."""
        raise NotImplementedError

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_sized": {}}  # DataLoader workers rebuild the copies

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included (the size of a model's embedding table)."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def special_token_ids(self) -> frozenset[int]:
        """Ids that masking schedules must leave alone and losses must ignore."""
        return frozenset((self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id,
                          self.mask_token_id))

    def token_to_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        return self.unk_token_id if token_id is None else token_id

    def id_to_token(self, token_id: int) -> str:
        token = self.tokenizer.id_to_token(token_id)
        if token is None:
            raise IndexError(f"token id {token_id} is outside the vocabulary ({self.vocab_size})")
        return token

    def _words(self, tags: Sequence[str], max_length: int | None, shuffle: bool, rng: Any) -> list[str]:
        """Whole tags that fit in ``max_length`` with ``[CLS]``, as the Tokenizer's input words."""
        tags = _check_tags(tags)
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 (room for [CLS]), got {max_length}")
        if shuffle:  # Danbooru's alphabetical order means nothing; never reorder the caller's list
            tags = tags.copy()
            _make_rng(rng).shuffle(tags)
        words, used = [], 1
        for tag in tags:
            tag_words, n = self._tag_words(tag)
            if max_length is not None and used + n > max_length:
                # not even the first tag fits: let the Tokenizer's truncation cut it, so that a
                # tiny max_length still carries some text
                return words or tag_words
            words, used = words + tag_words, used + n
        return words

    def _sized_tokenizer(self, max_length: int | None, padding: bool) -> Tokenizer:
        if (max_length, padding) not in self._sized:
            sized = Tokenizer.from_str(self.tokenizer.to_str())
            if max_length is not None:
                sized.enable_truncation(max_length)
            if padding:  # to max_length, or to the longest row of a batch
                sized.enable_padding(pad_id=self.pad_token_id, pad_token=PAD_TOKEN, length=max_length)
            self._sized[max_length, padding] = sized
        return self._sized[max_length, padding]

    def encode(self, tags: Sequence[str], max_length: int | None = 32, shuffle: bool = False,
               rng: random.Random | int | None = None, padding: bool = True) -> dict[str, list[int]]:
        """One image's tags (may be empty) as ``{"input_ids": [...], "attention_mask": [...]}``.

        ``max_length`` counts ``[CLS]``; longer inputs lose whole tags from the end, and ``None``
        keeps every tag, unpadded. ``shuffle`` draws the order from ``rng`` (a Random, an int
        seed, or None for the global ``random`` module).
        """
        sized = self._sized_tokenizer(max_length, padding and max_length is not None)
        enc = sized.encode(self._words(tags, max_length, shuffle, rng), is_pretokenized=True)
        return {"input_ids": enc.ids, "attention_mask": enc.attention_mask}

    def encode_batch(self, tag_lists: Sequence[Sequence[str]], max_length: int | None = 32, shuffle: bool = False,
                     rng: random.Random | int | None = None) -> dict[str, torch.Tensor]:
        """int64 tensors ``input_ids`` and ``attention_mask`` [B, L]; ``max_length=None`` pads to
        the longest row."""
        rng = _make_rng(rng)  # one generator for the batch, so an int seed is not reused per row
        words = [self._words(tags, max_length, shuffle, rng) for tags in _check_tag_lists(tag_lists)]
        encs = self._sized_tokenizer(max_length, True).encode_batch(words, is_pretokenized=True)
        return {"input_ids": torch.tensor([e.ids for e in encs], dtype=torch.int64),
                "attention_mask": torch.tensor([e.attention_mask for e in encs], dtype=torch.int64)}

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Tokens as space-separated text, for inspection (``decode_tags`` gives the tags)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return " ".join(self.id_to_token(i) for i in ids if not (skip_special_tokens and i in self.special_token_ids))

    def save(self, path: str | Path) -> Path:
        """Write the Tokenizer's own JSON (``Tokenizer.from_file`` reads it back)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            self.tokenizer.save(str(tmp))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> TagSequenceTokenizer:
        return load_tokenizer(path)


class TagTokenizer(TagSequenceTokenizer):
    """One token per tag (``WordLevel``): ids 0..4 are the special tokens, then the tags in
    :class:`TagVocabulary` order, so frequent tags get small ids. No ``[SEP]``: a token *is* a tag."""

    @classmethod
    def from_tags(cls, tags: Sequence[str]) -> TagTokenizer:
        tags = _check_tags(tags, what="tags")
        if set(tags) & set(SPECIAL_TOKENS):
            raise ValueError(f"tags may not be named like special tokens: {sorted(set(tags) & set(SPECIAL_TOKENS))}")
        if len(set(tags)) != len(tags):
            raise ValueError("duplicate tags in the tokenizer vocabulary")
        # no normalizer, no pre-tokenizer and no added tokens: a tag is looked up exactly as written
        vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *tags])}
        return cls(Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN)))

    @classmethod
    def from_vocabulary(cls, vocab: TagVocabulary) -> TagTokenizer:
        # a real tag spelled like "[UNK]" would be ambiguous; it cannot be learnt as a tag anyway
        return cls.from_tags([t for t in vocab.tags if t not in SPECIAL_TOKENS])

    @classmethod
    def from_tag_lists(cls, tag_lists: Iterable[Sequence[str]], min_freq: int = 1,
                       max_size: int | None = None) -> TagTokenizer:
        """Vocabulary = tags in >= ``min_freq`` training images (at most ``max_size`` of them)."""
        return cls.from_vocabulary(TagVocabulary.from_tag_lists(tag_lists, min_freq, max_size))

    @property
    def tags(self) -> list[str]:
        vocab = self.tokenizer.get_vocab()
        return [t for t in sorted(vocab, key=vocab.get) if t not in SPECIAL_TOKENS]

    def _tag_words(self, tag: str) -> tuple[list[str], int]:
        return [tag], 1

    def decode_tags(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """The tags an id sequence spells, in order (padding, ``[CLS]`` and ``[SEP]`` skipped)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return [self.id_to_token(i) for i in ids if i not in (self.pad_token_id, self.cls_token_id, self.sep_token_id)]


class WordPieceTagTokenizer(TagSequenceTokenizer):
    """Sub-word tokens (``WordPiece`` with BERT's normalizer, pre-tokenizer and decoder); every
    tag is closed by ``[SEP]``. Build with :meth:`train` or read a local ``vocab.txt`` or
    ``tokenizer.json`` with :func:`load_tokenizer`; never from the hub."""

    def __init__(self, tokenizer: Tokenizer):
        super().__init__(tokenizer)
        self._tags: dict[str, tuple[list[str], int]] = {}  # few distinct tags, many images

    @staticmethod
    def _bert_pipeline(model: models.Model, lowercase: bool = True) -> Tokenizer:
        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # "reimu (cosplay)" -> reimu ( cosplay )
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        return tokenizer

    @classmethod
    def train(cls, tag_lists: Iterable[Sequence[str]], vocab_size: int = 8000, min_freq: int = 2) -> WordPieceTagTokenizer:
        """At most ``vocab_size`` tokens learnt from every tag occurrence; ``min_freq`` is the
        minimum pair frequency for a merge (no tag is dropped: rare tags are what pieces are for)."""
        tag_lists = _check_tag_lists(tag_lists)
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens")
        tokenizer = cls._bert_pipeline(models.WordPiece(unk_token=UNK_TOKEN))
        # The trainer numbers the "##c" continuation tokens in hash-map order, and those ids break
        # ties between equally frequent merges (huggingface/tokenizers#1794): registering them up
        # front, sorted, makes training reproducible.
        chars = {c for tags in tag_lists for tag in tags for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(
            tokenizer.normalizer.normalize_str(_tag_text(tag))) for c in word[1:]}
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_freq, show_progress=False,
                                            special_tokens=[*SPECIAL_TOKENS, *sorted(f"##{c}" for c in chars)])
        tokenizer.train_from_iterator(([_tag_text(t) for t in tags] for tags in tag_lists), trainer)
        # the "##c" tokens stay in the vocabulary but must not be special (decode would drop them)
        hf_json = json.loads(tokenizer.to_str())
        hf_json["added_tokens"] = [t for t in hf_json["added_tokens"] if t["content"] in SPECIAL_TOKENS]
        return cls(Tokenizer.from_str(json.dumps(hf_json)))

    @classmethod
    def from_vocab_file(cls, path: str | Path, lowercase: bool = True) -> WordPieceTagTokenizer:
        """A BERT-style ``vocab.txt``: one token per line, id = line number - 1."""
        path = Path(path)
        if not path.is_file():
            raise DatasetError("vocabulary file not found", path=path)
        vocab: dict[str, int] = {}
        for row, line in enumerate(path.read_text(encoding="utf-8", errors="strict").splitlines(), start=1):
            if not line.strip() or line in vocab:
                raise DatasetError(f"empty or repeated token {line!r}", path=path, row=row)
            vocab[line] = row - 1
        if missing := [t for t in SPECIAL_TOKENS if t not in vocab]:
            raise DatasetError(f"vocabulary lacks the special tokens {missing}", path=path)
        tokenizer = cls._bert_pipeline(models.WordPiece(vocab, unk_token=UNK_TOKEN), lowercase=lowercase)
        tokenizer.add_special_tokens(list(SPECIAL_TOKENS))  # already in vocab: marks them special
        return cls(tokenizer)

    def _tag_words(self, tag: str) -> tuple[list[str], int]:
        if tag not in self._tags:
            n = len(self.tokenizer.encode(_tag_text(tag), add_special_tokens=False).ids)
            # a tag made only of characters the normalizer drops still takes a position
            self._tags[tag] = ([_tag_text(tag), SEP_TOKEN], n + 1) if n else ([UNK_TOKEN, SEP_TOKEN], 2)
        return self._tags[tag]

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_tags": {}}

    def decode_tags(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Best-effort tags back from pieces, lower-cased, spaces as underscores (brackets glued
        back the Danbooru way: ``reimu_(cosplay)``)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        tags, unit = [], []
        for i in ids + [self.sep_token_id]:  # a trailing [SEP] flushes a truncated last tag
            if i == self.sep_token_id and unit:
                text = "_".join(self.tokenizer.decode(unit, skip_special_tokens=False).split())
                tags.append(text.replace("(_", "(").replace("_)", ")"))
            unit = [] if i == self.sep_token_id else unit + [i] * (i not in (self.pad_token_id, self.cls_token_id))
        return tags

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Tags joined by ``", "`` (or every token, ``##`` merged, with specials kept)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return ", ".join(self.decode_tags(ids)) if skip_special_tokens else self.tokenizer.decode(ids, skip_special_tokens=False)


def _tag_text(tag: str) -> str:
    """Danbooru spelling to words: ``long_hair`` -> ``long hair``."""
    return tag.replace("_", " ").strip()


def build_tokenizer(kind: str, tag_lists: Iterable[Sequence[str]], min_freq: int = 1,
                    vocab_size: int | None = None) -> TagSequenceTokenizer:
    """A ``"tag"`` or ``"wordpiece"`` tokenizer from the *training* split's tag lists.

    ``min_freq``: images a tag needs (tag) or the trainer's merge frequency (wordpiece);
    ``vocab_size``: cap with special tokens (tag; None: no cap) or target size (wordpiece; 8000).
    """
    if kind == "tag":
        max_size = None if vocab_size is None else max(vocab_size - len(SPECIAL_TOKENS), 0)
        return TagTokenizer.from_tag_lists(tag_lists, min_freq=min_freq, max_size=max_size)
    if kind == "wordpiece":
        return WordPieceTagTokenizer.train(tag_lists, vocab_size=vocab_size or 8000, min_freq=min_freq)
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected 'tag' or 'wordpiece'")


def load_tokenizer(path: str | Path) -> TagSequenceTokenizer:
    """A ``Tokenizer.save`` file (``WordLevel``: tags, ``WordPiece``: pieces), a BERT
    ``vocab.txt``, a directory holding ``tokenizer.json`` or ``vocab.txt``, or a file in the
    format this library wrote before (``type``/``version`` fields)."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("tokenizer.json", "vocab.txt") if (path / n).is_file()]
        if not found:
            raise DatasetError("directory holds neither tokenizer.json nor vocab.txt", path=path)
        path = found[0]
    if path.suffix == ".txt":
        return WordPieceTagTokenizer.from_vocab_file(path)
    data = _read_json(path, "tokenizer")
    if "type" in data:
        return _load_legacy(data, path)
    try:
        return _wrap(Tokenizer.from_file(str(path)), path)
    except Exception as err:  # the Rust side raises a bare Exception on malformed input
        raise DatasetError(f"not a readable tokenizers.Tokenizer file ({err}); {REMAKE}", path=path) from err


def _wrap(tokenizer: Tokenizer, path: Path) -> TagSequenceTokenizer:
    kinds = {models.WordLevel: TagTokenizer, models.WordPiece: WordPieceTagTokenizer}
    if type(tokenizer.model) not in kinds:
        raise DatasetError(f"a {type(tokenizer.model).__name__} tokenizer; expected WordLevel or WordPiece", path=path)
    try:
        return kinds[type(tokenizer.model)](tokenizer)
    except ValueError as err:
        raise DatasetError(str(err), path=path) from err


def _load_legacy(data: dict, path: Path) -> TagSequenceTokenizer:
    """Files written before tokenizers were ``tokenizers.Tokenizer`` files: TagTokenizer held its
    ``vocab`` list, WordPieceTagTokenizer the Tokenizer's JSON under ``tokenizer``."""
    kind = data["type"]
    if kind == "TagVocabulary":
        raise DatasetError("this is a tag vocabulary, not a tokenizer (use TagVocabulary.load)", path=path)
    if kind not in ("TagTokenizer", "WordPieceTagTokenizer"):
        raise DatasetError(f"unknown tokenizer type {kind!r}; {REMAKE}", path=path)
    _check_header(data, kind, path)
    vocab = data.get("vocab")
    if kind == "TagTokenizer" and (not isinstance(vocab, list) or tuple(vocab[:5]) != SPECIAL_TOKENS):
        raise DatasetError(f"tokenizer vocab must start with {list(SPECIAL_TOKENS)}; {REMAKE}", path=path)
    try:
        if kind == "TagTokenizer":
            return TagTokenizer.from_tags(vocab[len(SPECIAL_TOKENS):])
        return _wrap(Tokenizer.from_str(json.dumps(data.get("tokenizer"))), path)
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"malformed {kind} file ({err}); {REMAKE}", path=path) from err
