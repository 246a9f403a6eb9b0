"""Danbooru tags as model inputs: ``tokenizers.Tokenizer`` objects, trained and read offline.

:class:`TagTokenizer` is a ``WordLevel`` model (one token per tag, ``[UNK]`` for the others);
:class:`WordPieceTagTokenizer` a ``WordPiece`` model trained on the training split's tags, or read
from a local ``vocab.txt`` / ``tokenizer.json``, so that rare tags still get pieces. The Tokenizer
does the work (``TemplateProcessing`` puts ``[CLS]`` first, ``enable_padding`` and
``enable_truncation`` fix the length, ``Tokenizer.save`` writes the file). Ours is how tags become
its input: a tag is one pre-tokenized word (WordPiece: ``_`` becomes a space, and a ``[SEP]``
closes every tag so that the model sees where a tag ends), and truncation drops whole tags::

    TagTokenizer:           [CLS] long_hair smile blue_eyes [PAD] [PAD] ...
    WordPieceTagTokenizer:  [CLS] long hair [SEP] smile [SEP] blue eyes [SEP] [PAD] ...
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Encoding, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from animesion_lib.atomic import atomic_path
from animesion_lib.data.tag_vocabulary import TagVocabulary, check_header, check_tag_lists, check_tags, read_json_object
from animesion_lib.errors import DatasetError

__all__ = ["SPECIAL_TOKENS", "PAD_TOKEN", "UNK_TOKEN", "CLS_TOKEN", "SEP_TOKEN", "MASK_TOKEN", "TagVocabulary",
           "TagSequenceTokenizer", "TagTokenizer", "WordPieceTagTokenizer", "build_tokenizer", "load_tokenizer"]

PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)  # ids 0..4
REMAKE = "re-make it by training the run again (`animesion train`, which writes tokenizer.json)"


class TagSequenceTokenizer:
    """A ``tokenizers.Tokenizer`` reading tag lists, one pre-tokenized word per tag by default."""

    def __init__(self, tokenizer: Tokenizer):
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if missing := [t for t, i in zip(SPECIAL_TOKENS, ids) if i is None]:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}")
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = ids
        self.special_token_ids = frozenset(ids)  # what masking must leave alone and losses ignore
        # a loaded tokenizer.json may carry BERT's "[CLS] $A [SEP]", padding or truncation
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{CLS_TOKEN} $A", special_tokens=[(CLS_TOKEN, self.cls_token_id)])
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self._sized: dict[tuple[int | None, bool], Tokenizer] = {}  # copies with padding/truncation on
        self._tag_cache: dict[str, Encoding] = {}  # few distinct tags, many images

    def _tag_words(self, tag: str) -> list[str]:
        return [tag]  # the pre-tokenized words one tag becomes

    def _tag_encoding(self, tag: str) -> Encoding:
        if tag not in self._tag_cache:
            words = self._tag_words(tag)
            self._tag_cache[tag] = self.tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
        return self._tag_cache[tag]

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included (the size of a model's embedding table)."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        return self.unk_token_id if token_id is None else token_id

    def id_to_token(self, token_id: int) -> str:
        token = self.tokenizer.id_to_token(token_id)
        if token is None:
            raise IndexError(f"token id {token_id} is outside the vocabulary ({self.vocab_size})")
        return token

    def _fitting(self, tags: Sequence[str], max_length: int | None, shuffle: bool, rng: Any) -> Encoding:
        """The tokens of the whole tags that fit in ``max_length`` with ``[CLS]``, in one Encoding."""
        tags = check_tags(tags)
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 (room for [CLS]), got {max_length}")
        if shuffle:  # Danbooru's alphabetical order means nothing; never reorder the caller's list
            tags = tags.copy()  # rng None: the global generator, which torch reseeds in each DataLoader worker
            (random if rng is None else random.Random(rng) if isinstance(rng, int) else rng).shuffle(tags)
        encodings, room = [], max_length - 1 if max_length is not None else None  # [CLS] takes one
        for encoding in map(self._tag_encoding, tags):
            if room is not None and (room := room - len(encoding)) < 0:
                # not even the first tag fits: truncation cuts it, so a tiny max_length keeps some text
                encodings = encodings or [encoding]
                break
            encodings.append(encoding)
        return Encoding.merge(encodings, growing_offsets=True)

    def _sized_tokenizer(self, max_length: int | None, padding: bool) -> Tokenizer:
        if (max_length, padding) not in self._sized:
            sized = Tokenizer.from_str(self.tokenizer.to_str())
            if max_length is not None:
                sized.enable_truncation(max_length)
            if padding:
                sized.enable_padding(pad_id=self.pad_token_id, pad_token=PAD_TOKEN, length=max_length)
            self._sized[max_length, padding] = sized
        return self._sized[max_length, padding]

    def encode(self, tags: Sequence[str], max_length: int | None = 32, shuffle: bool = False,
               rng: random.Random | int | None = None, padding: bool = True) -> dict[str, list[int]]:
        """One image's tags (may be empty) as ``{"input_ids": [...], "attention_mask": [...]}``.
        ``max_length`` counts ``[CLS]``; longer inputs lose whole tags from the end, and ``None``
        keeps every tag, unpadded. ``shuffle`` takes its order from ``rng`` (a Random or a seed)."""
        sized = self._sized_tokenizer(max_length, padding and max_length is not None)
        enc = sized.post_process(self._fitting(tags, max_length, shuffle, rng))  # truncate, [CLS], pad
        return {"input_ids": enc.ids, "attention_mask": enc.attention_mask}

    def encode_batch(self, tag_lists: Sequence[Sequence[str]], max_length: int | None = 32, shuffle: bool = False,
                     rng: random.Random | int | None = None) -> dict[str, torch.Tensor]:
        """int64 tensors ``input_ids`` and ``attention_mask`` [B, L]; ``max_length=None`` pads to
        the longest row."""
        rng = random.Random(rng) if isinstance(rng, int) else rng  # one generator for the whole batch
        sized = self._sized_tokenizer(max_length, max_length is not None)
        encs = [sized.post_process(self._fitting(tags, max_length, shuffle, rng))
                for tags in check_tag_lists(tag_lists)]
        for enc in encs if max_length is None else ():  # to the longest row
            enc.pad(max(map(len, encs)), pad_id=self.pad_token_id, pad_token=PAD_TOKEN)
        return {"input_ids": torch.tensor([e.ids for e in encs], dtype=torch.int64),
                "attention_mask": torch.tensor([e.attention_mask for e in encs], dtype=torch.int64)}

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """The tags joined by ``", "``, for reading (or every token, special ones included)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return ", ".join(self.decode_tags(ids)) if skip_special_tokens else self.tokenizer.decode(ids, False)

    def save(self, path: str | Path) -> Path:
        """Write the Tokenizer's own JSON (``Tokenizer.from_file`` reads it back)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            self.tokenizer.save(str(tmp))
        return Path(path)


class TagTokenizer(TagSequenceTokenizer):
    """One token per tag (``WordLevel``): ids 0..4 are the special tokens, then the tags in
    :class:`TagVocabulary` order, so frequent tags get small ids. No ``[SEP]``: a token *is* a tag."""

    @classmethod
    def from_tags(cls, tags: Sequence[str]) -> TagTokenizer:
        tags = check_tags(tags, what="tags")
        if len(set(tags)) != len(tags) or set(tags) & set(SPECIAL_TOKENS):
            raise ValueError("tags must be distinct, and none named like a special token")
        # no normalizer, no pre-tokenizer and no added tokens: a tag is looked up exactly as written
        vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *tags])}
        return cls(Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN)))

    @classmethod
    def from_tag_lists(cls, tag_lists: Iterable[Sequence[str]], min_freq: int = 1,
                       max_size: int | None = None) -> TagTokenizer:
        """The tags of a :class:`TagVocabulary` (in >= ``min_freq`` training images, at most
        ``max_size``), less any spelled like a special token (it would be ambiguous)."""
        vocab = TagVocabulary.from_tag_lists(tag_lists, min_freq, max_size)
        return cls.from_tags([t for t in vocab.tags if t not in SPECIAL_TOKENS])

    def decode_tags(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """The tags an id sequence spells, in order (padding, ``[CLS]`` and ``[SEP]`` skipped)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return [self.id_to_token(i) for i in ids if i not in (self.pad_token_id, self.cls_token_id, self.sep_token_id)]


class WordPieceTagTokenizer(TagSequenceTokenizer):
    """``WordPiece`` with BERT's normalizer, pre-tokenizer and decoder; a ``[SEP]`` closes every tag.
    Build it with :meth:`train`, or read a local file with :func:`load_tokenizer` (never the hub)."""

    @staticmethod
    def _bert_pipeline(model: models.Model, lowercase: bool = True) -> Tokenizer:
        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # "reimu (cosplay)" -> reimu ( cosplay )
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        return tokenizer

    @classmethod
    def train(cls, tag_lists: Iterable[Sequence[str]], vocab_size: int = 8000,
              min_freq: int = 2) -> WordPieceTagTokenizer:
        """At most ``vocab_size`` tokens learnt from every tag occurrence; ``min_freq`` is the
        minimum pair frequency for a merge (no tag is dropped: rare tags are what pieces are for)."""
        tag_lists = check_tag_lists(tag_lists)
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens")
        tokenizer = cls._bert_pipeline(models.WordPiece(unk_token=UNK_TOKEN))
        # The trainer numbers the "##c" continuation tokens in hash-map order, and their ids break ties
        # between equal merges (huggingface/tokenizers#1794): registered up front, sorted, they do not.
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
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError(f"cannot read the vocabulary: {err}", path=path) from err
        vocab: dict[str, int] = {}
        for row, line in enumerate(lines, start=1):
            if not line.strip() or vocab.setdefault(line, row - 1) != row - 1:
                raise DatasetError(f"empty or repeated token {line!r}", path=path, row=row)
        if missing := [t for t in SPECIAL_TOKENS if t not in vocab]:
            raise DatasetError(f"vocabulary lacks the special tokens {missing}", path=path)
        tokenizer = cls._bert_pipeline(models.WordPiece(vocab, unk_token=UNK_TOKEN), lowercase=lowercase)
        tokenizer.add_special_tokens(list(SPECIAL_TOKENS))  # already in vocab: marks them special
        return cls(tokenizer)

    def _tag_words(self, tag: str) -> list[str]:
        text = _tag_text(tag)
        # a tag made only of characters the normalizer drops still takes a position
        return [text if self.tokenizer.encode(text, add_special_tokens=False).ids else UNK_TOKEN, SEP_TOKEN]

    def decode_tags(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Best-effort tags back from pieces: lower case, ``_`` for spaces, ``reimu_(cosplay)``."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        tags, unit = [], []
        for i in ids + [self.sep_token_id]:  # a trailing [SEP] flushes a truncated last tag
            if i == self.sep_token_id and unit:
                text = "_".join(self.tokenizer.decode(unit, skip_special_tokens=False).split())
                tags.append(text.replace("(_", "(").replace("_)", ")"))
            unit = [] if i == self.sep_token_id else unit + [i] * (i not in (self.pad_token_id, self.cls_token_id))
        return tags


def _tag_text(tag: str) -> str:
    """Danbooru spelling to words: ``long_hair`` -> ``long hair``."""
    return tag.replace("_", " ").strip()


def build_tokenizer(kind: str, tag_lists: Iterable[Sequence[str]], min_freq: int = 1,
                    vocab_size: int | None = None) -> TagSequenceTokenizer:
    """A ``"tag"`` or ``"wordpiece"`` tokenizer from the *training* split's tag lists. ``min_freq``:
    images a tag needs (tag) or the trainer's merge frequency (wordpiece); ``vocab_size``: a cap,
    special tokens included (tag; None: none) or the target size (wordpiece; None: 8000)."""
    if kind == "tag":
        max_size = None if vocab_size is None else max(vocab_size - len(SPECIAL_TOKENS), 0)
        return TagTokenizer.from_tag_lists(tag_lists, min_freq=min_freq, max_size=max_size)
    if kind == "wordpiece":
        return WordPieceTagTokenizer.train(tag_lists, vocab_size=vocab_size or 8000, min_freq=min_freq)
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected 'tag' or 'wordpiece'")


def load_tokenizer(path: str | Path) -> TagSequenceTokenizer:
    """A ``Tokenizer.save`` file (``WordLevel``: tags, ``WordPiece``: pieces), a ``vocab.txt``, a
    folder holding either, or a file in this library's earlier format (``type`` and ``version``)."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in ("tokenizer.json", "vocab.txt") if (path / name).is_file()]
        path = found[0] if found else path / "tokenizer.json"
    if path.suffix == ".txt":
        return WordPieceTagTokenizer.from_vocab_file(path)
    data = read_json_object(path, "tokenizer")
    if "type" in data:
        return _load_legacy(data, path)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises a bare Exception on malformed input
        raise DatasetError(f"not a readable tokenizers.Tokenizer file ({err}); {REMAKE}", path=path) from err
    return _wrap(tokenizer, path)


def _wrap(tokenizer: Tokenizer, path: Path) -> TagSequenceTokenizer:
    kinds = {models.WordLevel: TagTokenizer, models.WordPiece: WordPieceTagTokenizer}
    if type(tokenizer.model) not in kinds:
        raise DatasetError(f"a {type(tokenizer.model).__name__} tokenizer; expected WordLevel or WordPiece", path=path)
    try:
        return kinds[type(tokenizer.model)](tokenizer)
    except ValueError as err:
        raise DatasetError(f"{err}; {REMAKE}", path=path) from err


def _load_legacy(data: dict, path: Path) -> TagSequenceTokenizer:
    """A file from before tokenizers were ``Tokenizer.save`` files: ``type`` and ``version``, then
    TagTokenizer's ``vocab`` (id = position) or WordPieceTagTokenizer's Tokenizer under ``tokenizer``."""
    kind = data["type"]
    if kind not in ("TagTokenizer", "WordPieceTagTokenizer"):  # e.g. a TagVocabulary
        raise DatasetError(f"a {kind!r} file is not a tokenizer; {REMAKE}", path=path)
    check_header(data, kind, path)
    try:
        if kind == "TagTokenizer":
            tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(data["vocab"])}, unk_token=UNK_TOKEN))
        else:
            tokenizer = Tokenizer.from_str(json.dumps(data["tokenizer"]))
    except Exception as err:
        raise DatasetError(f"malformed {kind} file ({err!r}); {REMAKE}", path=path) from err
    return _wrap(tokenizer, path)
