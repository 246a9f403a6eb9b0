"""Tag vocabulary and tokenizers: built from tiny tag lists written here, all offline."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models

from animesion_lib.data.tokenizers import (
    SPECIAL_TOKENS,
    TagTokenizer,
    TagVocabulary,
    WordPieceTagTokenizer,
    build_tokenizer,
    load_tokenizer,
)
from animesion_lib.errors import DatasetError

# smile: 4 images, long_hair: 3, blue_eyes: 2, the rest once
TAG_LISTS = [
    ["long_hair", "smile", "blue_eyes"],
    ["long_hair", "smile"],
    ["long_hair", "smile", "blue_eyes", "open_mouth"],
    ["short_hair", "smile", "hakurei_reimu_(cosplay)"],
]
MANY_TAGS = [f"tag_{i:02d}" for i in range(40)]


@pytest.fixture(scope="module")
def wordpiece() -> WordPieceTagTokenizer:
    return build_tokenizer("wordpiece", TAG_LISTS * 3, min_freq=1, vocab_size=200)


def content_ids(tok, enc) -> list[int]:
    return [i for i in enc["input_ids"] if i not in tok.special_token_ids]


# --- TagVocabulary ---------------------------------------------------------------------------


def test_vocabulary_order_and_min_freq():
    vocab = TagVocabulary.from_tag_lists(TAG_LISTS, min_freq=2)
    assert vocab.tags == ["smile", "long_hair", "blue_eyes"]  # frequency desc
    assert vocab.counts == [4, 3, 2]
    assert "short_hair" not in vocab and len(vocab) == 3
    everything = TagVocabulary.from_tag_lists(TAG_LISTS)
    # ties (count 1) are broken by name, so the order never depends on input order
    assert everything.tags[3:] == ["hakurei_reimu_(cosplay)", "open_mouth", "short_hair"]
    assert TagVocabulary.from_tag_lists(TAG_LISTS[::-1]).tags == everything.tags
    assert TagVocabulary.from_tag_lists(TAG_LISTS, max_size=2).tags == ["smile", "long_hair"]


def test_vocabulary_counts_a_repeated_tag_once_per_image():
    vocab = TagVocabulary.from_tag_lists([["a", "a", "b"], ["b"]])
    assert dict(zip(vocab.tags, vocab.counts)) == {"b": 2, "a": 1}


def test_multi_hot():
    vocab = TagVocabulary.from_tag_lists(TAG_LISTS, min_freq=2)
    target = vocab.multi_hot(["blue_eyes", "smile", "never_seen"])  # unknown: ignored
    assert target.dtype == torch.float32 and target.shape == (3,)
    assert target.tolist() == [1.0, 0.0, 1.0]
    assert vocab.multi_hot([]).sum() == 0
    assert vocab.index("long_hair") == 1
    with pytest.raises(KeyError, match="never_seen"):
        vocab.index("never_seen")
    assert vocab.coverage([["smile", "never_seen"]]) == 0.5


def test_vocabulary_save_load(tmp_path):
    vocab = TagVocabulary.from_tag_lists(TAG_LISTS, min_freq=2)
    path = vocab.save(tmp_path / "tags.json")
    assert json.loads(path.read_text())["type"] == "TagVocabulary"
    loaded = TagVocabulary.load(path)
    assert loaded == vocab and loaded.counts == vocab.counts and loaded.min_freq == 2
    with pytest.raises(DatasetError, match="not a tokenizer"):
        load_tokenizer(path)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("long_hair smile", "must be a list"),
        ([["ok"], "long_hair"], r"tag_lists\[1\] must be a list"),
        ([["ok", 3]], r"tag_lists\[0\]\[1\] must be a str"),
        ([["ok", ""]], "empty tag"),
    ],
)
def test_bad_tag_lists_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        TagVocabulary.from_tag_lists(bad)


# --- TagTokenizer ----------------------------------------------------------------------------


def test_tag_tokenizer_special_ids_and_vocab():
    tok = TagTokenizer.from_tag_lists(TAG_LISTS, min_freq=2)
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        0, 1, 2, 3, 4)
    assert tok.special_token_ids == {0, 1, 2, 3, 4}
    assert [tok.id_to_token(i) for i in range(5)] == list(SPECIAL_TOKENS)
    assert tok.vocab_size == 5 + 3
    assert tok.token_to_id("smile") == 5 and tok.token_to_id("short_hair") == tok.unk_token_id


def test_tag_tokenizer_encode_pads_and_maps_unknown_to_unk():
    tok = TagTokenizer.from_tag_lists(TAG_LISTS, min_freq=2)
    enc = tok.encode(["smile", "short_hair", "blue_eyes"], max_length=6)
    assert enc["input_ids"] == [2, 5, 1, 7, 0, 0]
    assert enc["attention_mask"] == [1, 1, 1, 1, 0, 0]
    assert tok.decode_tags(enc["input_ids"]) == ["smile", "[UNK]", "blue_eyes"]
    assert tok.decode(enc["input_ids"]) == "smile, [UNK], blue_eyes"
    assert tok.decode(enc["input_ids"], skip_special_tokens=False) == "[CLS] smile [UNK] blue_eyes [PAD] [PAD]"


def test_wordpiece_training_is_reproducible(wordpiece):
    # the raw HF trainer gives a different vocabulary almost every run (tokenizers#1794)
    for _ in range(3):
        again = build_tokenizer("wordpiece", TAG_LISTS * 3, min_freq=1, vocab_size=200)
        assert again.tokenizer.to_str() == wordpiece.tokenizer.to_str()
    assert wordpiece.special_token_ids == {0, 1, 2, 3, 4}
    # continuation pieces stay ordinary tokens: decoding keeps them
    assert wordpiece.decode_tags(wordpiece.encode(["open_mouth"])["input_ids"]) == ["open_mouth"]


@pytest.mark.parametrize("kind", ["tag", "wordpiece"])
def test_empty_tag_list_is_cls_then_padding(kind, wordpiece):
    tok = wordpiece if kind == "wordpiece" else build_tokenizer("tag", TAG_LISTS)
    enc = tok.encode([], max_length=5)
    assert enc["input_ids"] == [tok.cls_token_id] + [tok.pad_token_id] * 4
    assert enc["attention_mask"] == [1, 0, 0, 0, 0]


@pytest.mark.parametrize("kind", ["tag", "wordpiece"])
def test_truncation_and_padding_lengths(kind, wordpiece):
    tok = wordpiece if kind == "wordpiece" else build_tokenizer("tag", [MANY_TAGS])
    for max_length in (1, 2, 7, 32):
        enc = tok.encode(MANY_TAGS, max_length=max_length)
        assert len(enc["input_ids"]) == len(enc["attention_mask"]) == max_length
        assert enc["input_ids"][0] == tok.cls_token_id
    short = tok.encode(["smile"], max_length=32)
    assert len(short["input_ids"]) == 32 and sum(short["attention_mask"]) < 32
    unpadded = tok.encode(MANY_TAGS, max_length=None)
    assert all(unpadded["attention_mask"]) and len(unpadded["input_ids"]) > 32


def test_wordpiece_truncates_whole_tags(wordpiece):
    tags = ["hakurei_reimu_(cosplay)", "smile", "long_hair"]
    full = wordpiece.encode(tags, max_length=None)["input_ids"]
    sep = wordpiece.sep_token_id
    first_tag_end = full.index(sep) + 1
    # one token short of the first two tags: the second tag is dropped, not cut
    second_tag_end = full.index(sep, first_tag_end) + 1
    enc = wordpiece.encode(tags, max_length=second_tag_end - 1)
    real = [i for i, m in zip(enc["input_ids"], enc["attention_mask"]) if m]
    assert real == full[:first_tag_end]
    assert wordpiece.decode_tags(real) == ["hakurei_reimu_(cosplay)"]


@pytest.mark.parametrize("kind", ["tag", "wordpiece"])
def test_shuffle_is_deterministic_and_changes_order(kind, wordpiece):
    tok = wordpiece if kind == "wordpiece" else build_tokenizer("tag", TAG_LISTS)
    tags = sorted({t for tags in TAG_LISTS for t in tags})  # alphabetical, as Danbooru stores them
    original = tags.copy()
    plain = tok.encode(tags, max_length=None)
    a = tok.encode(tags, max_length=None, shuffle=True, rng=random.Random(7))
    b = tok.encode(tags, max_length=None, shuffle=True, rng=random.Random(7))
    c = tok.encode(tags, max_length=None, shuffle=True, rng=7)  # an int seed works too
    assert a == b == c
    assert a["input_ids"] != plain["input_ids"]
    assert sorted(a["input_ids"]) == sorted(plain["input_ids"])  # same tokens, new order
    assert tags == original  # the caller's list is not shuffled in place


@pytest.mark.parametrize("kind", ["tag", "wordpiece"])
def test_encode_batch(kind, wordpiece):
    tok = wordpiece if kind == "wordpiece" else build_tokenizer("tag", TAG_LISTS)
    batch = tok.encode_batch(TAG_LISTS + [[]], max_length=12)
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.int64
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (5, 12)
    assert batch["input_ids"][0].tolist() == tok.encode(TAG_LISTS[0], max_length=12)["input_ids"]
    assert batch["attention_mask"][4].tolist() == [1] + [0] * 11
    longest = tok.encode_batch(TAG_LISTS, max_length=None)
    assert longest["attention_mask"].all(dim=0).any() and not longest["attention_mask"].all()


@pytest.mark.parametrize("kind", ["tag", "wordpiece"])
def test_save_load_round_trip(kind, tmp_path, wordpiece):
    tok = wordpiece if kind == "wordpiece" else build_tokenizer("tag", TAG_LISTS, min_freq=2)
    path = tok.save(tmp_path / "sub" / "tok.json")
    saved = json.loads(path.read_text())  # the Tokenizer's own format
    assert saved["model"]["type"] == {"tag": "WordLevel", "wordpiece": "WordPiece"}[kind]
    assert saved["padding"] is None and saved["truncation"] is None
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
    assert loaded.special_token_ids == tok.special_token_ids
    probe = ["smile", "unseen_tag", "hakurei_reimu_(cosplay)", "long_hair"]
    for max_length in (4, 16):
        assert loaded.encode(probe, max_length=max_length) == tok.encode(probe, max_length=max_length)
    # DataLoader workers receive pickled copies
    assert pickle.loads(pickle.dumps(tok)).encode(probe) == tok.encode(probe)


def test_saved_file_is_a_plain_tokenizers_file(tmp_path):
    tok = build_tokenizer("tag", TAG_LISTS, min_freq=2)
    plain = Tokenizer.from_file(str(tok.save(tmp_path / "tok.json")))
    # anyone with `tokenizers` reads it: [CLS] first, one token per tag, [UNK] for unknown tags
    assert plain.encode(["smile", "short_hair", "blue_eyes"], is_pretokenized=True).ids == [2, 5, 1, 7]


def test_unknown_tag_in_wordpiece_uses_pieces_or_unk(wordpiece):
    enc = wordpiece.encode(["long_smile", "ッ"], max_length=None)
    ids = enc["input_ids"]
    assert ids.count(wordpiece.sep_token_id) == 2  # each tag still closed by [SEP]
    assert wordpiece.unk_token_id in ids  # a character never seen in training
    assert wordpiece.decode_tags(ids)[0] == "long_smile"  # built from known pieces


# --- WordPiece from local files --------------------------------------------------------------

VOCAB_TXT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "long", "hair", "smile", "blue", "eye", "##s"]


def test_wordpiece_from_vocab_txt(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB_TXT) + "\n", encoding="utf-8")
    tok = load_tokenizer(path)
    assert isinstance(tok, WordPieceTagTokenizer) and tok.vocab_size == len(VOCAB_TXT)
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        0, 1, 2, 3, 4)
    enc = tok.encode(["long_hair", "Blue_Eyes", "cat"], max_length=12)
    assert enc["input_ids"] == [2, 5, 6, 3, 8, 9, 10, 3, 1, 3, 0, 0]
    assert tok.decode_tags(enc["input_ids"]) == ["long_hair", "blue_eyes", "[UNK]"]
    # a directory holding vocab.txt works, and so does a round trip through our format
    assert load_tokenizer(tmp_path).encode(["smile"]) == tok.encode(["smile"])
    assert load_tokenizer(tok.save(tmp_path / "tok.json")).encode(["long_hair"]) == tok.encode(["long_hair"])


def test_wordpiece_from_hf_tokenizer_json(tmp_path, wordpiece):
    path = tmp_path / "tokenizer.json"
    path.write_text(wordpiece.tokenizer.to_str(), encoding="utf-8")  # plain Hugging Face format
    tok = load_tokenizer(path)
    assert isinstance(tok, WordPieceTagTokenizer)
    assert tok.encode(TAG_LISTS[3]) == wordpiece.encode(TAG_LISTS[3])


def test_vocab_txt_without_special_tokens_names_the_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("long\nhair\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="special tokens") as err:
        load_tokenizer(path)
    assert str(path) in str(err.value)


def test_a_directory_without_tokenizer_files(tmp_path):
    with pytest.raises(DatasetError, match="tokenizer file not found") as err:
        load_tokenizer(tmp_path)
    assert err.value.path == tmp_path / "tokenizer.json"


def test_other_tokenizer_models_are_refused(tmp_path):
    path = tmp_path / "bpe.json"
    path.write_text(Tokenizer(models.BPE()).to_str(), encoding="utf-8")
    with pytest.raises(DatasetError, match="a BPE tokenizer; expected WordLevel or WordPiece"):
        load_tokenizer(path)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"type": "TagTokenizer", "vocab": [', "not valid JSON"),
        ('["a", "b"]', "JSON object"),
        ('{"type": "Mystery", "version": 1}', "'Mystery' file is not a tokenizer"),
        ('{"type": "TagTokenizer", "version": 99, "vocab": []}', "version"),
        ('{"type": "TagTokenizer", "version": 1, "vocab": ["a"]}', "lacks the special tokens.*animesion train"),
        ('{"type": "WordPieceTagTokenizer", "version": 1, "tokenizer": {"x": 1}}', "malformed.*animesion train"),
        ('{"type": "Mystery"}', "not a tokenizer.*animesion train"),
        ('{"model": {"type": "WordLevel"}}', "not a readable tokenizers.Tokenizer file.*animesion train"),
    ],
)
def test_corrupt_tokenizer_file_names_the_file(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as err:
        load_tokenizer(path)
    assert err.value.path == path and str(path) in str(err.value)


def test_missing_tokenizer_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_tokenizer(tmp_path / "nope.json")


@pytest.mark.parametrize("bad", ["long_hair", ["ok", None], 5])
def test_encode_rejects_non_string_tags(bad):
    tok = build_tokenizer("tag", TAG_LISTS)
    with pytest.raises(ValueError):
        tok.encode(bad)


def test_build_tokenizer_kinds():
    tag_tok = build_tokenizer("tag", TAG_LISTS, vocab_size=7)
    assert isinstance(tag_tok, TagTokenizer) and tag_tok.vocab_size == 7
    with pytest.raises(ValueError, match="kind"):
        build_tokenizer("bpe", TAG_LISTS)


# --- the same ids as before tokenizers.Tokenizer -----------------------------------------------
# tokenizer_fixture.json: every 7th image's tags of the synthetic smoke train split
# (`animesion make-synthetic --profile smoke`), and tokenizer files built from them in the
# format this library wrote before; the ids below are what that code gave for these probes.

FIXTURE = json.loads((Path(__file__).parent / "tokenizer_fixture.json").read_text(encoding="utf-8"))
PROBES = [
    ["ahoge", "bangs", "black_hair", "black_jacket", "blush", "book", "closed_mouth", "glasses",
     "hair_between_eyes", "long_hair", "looking_at_viewer", "looking_back", "necktie", "parted_bangs",
     "portrait", "scarf", "school_uniform", "signature", "simple_background", "solo", "swept_bangs",
     "white_background"],
    ["ahoge", "bangs", "black_hair", "closed_eyes", "cloud", "collared_shirt"],
    ["Long_Hair", "reimu_(cosplay)", "ッ"],
    [],
]
EXPECTED = {
    "tag": {  # build_tokenizer("tag", train_tags, min_freq=2): 135 ids
        12: [[2, 23, 7, 30, 1, 24, 1, 15, 74, 106, 1, 6], [2, 23, 7, 30, 31, 46, 1, 0, 0, 0, 0, 0],
             [2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0], [2] + [0] * 11],
        None: [[2, 23, 7, 30, 1, 24, 1, 15, 74, 106, 1, 6, 1, 1, 51, 16, 65, 28, 1, 10, 5, 35, 14],
               [2, 23, 7, 30, 31, 46, 1], [2, 1, 1, 1], [2]],
        "shuffled": [[2, 35, 1, 10, 14, 1, 51, 24, 15, 1], [2, 7, 23, 31, 1, 30, 46, 0, 0, 0]],
    },
    "wordpiece": {  # build_tokenizer("wordpiece", train_tags, vocab_size=150)
        12: [[2, 34, 78, 11, 9, 3, 90, 3, 132, 77, 3, 0]] * 2 + [[2, 45, 122, 11, 77, 3] + [0] * 6, [2] + [0] * 11],
        None: [[2, 34, 78, 11, 9, 3, 90, 3, 132, 77, 3, 132, 43, 107, 9, 23, 3, 103, 22, 12, 3, 114, 18, 14, 3, 147,
                106, 3, 40, 15, 5, 22, 22, 67, 3, 77, 35, 9, 23, 117, 108, 101, 3, 45, 122, 11, 77, 3, 94, 98, 100, 3,
                94, 80, 3, 47, 9, 68, 23, 75, 3, 49, 71, 96, 8, 90, 3, 49, 18, 92, 21, 62, 23, 3, 52, 7, 71, 10, 3, 52,
                7, 78, 63, 54, 17, 13, 10, 18, 21, 16, 3, 52, 13, 11, 17, 130, 24, 109, 3, 52, 104, 111, 84, 3, 86, 3,
                52, 117, 19, 23, 90, 3, 115, 84, 3],
               [2, 34, 78, 11, 9, 3, 90, 3, 132, 77, 3, 147, 101, 3, 137, 24, 8, 3, 36, 131, 71, 73, 52, 95, 92, 3],
               [2, 45, 122, 11, 77, 3, 51, 9, 104, 24, 30, 36, 18, 22, 19, 15, 5, 28, 31, 3, 1, 3], [2]],
        "shuffled": [[2, 52, 117, 19, 23, 90, 3, 0, 0, 0], [2, 90, 3, 34, 78, 11, 9, 3, 0, 0]],
    },
}


def check_expected_ids(tok, expected):
    for max_length in (12, None):
        assert [tok.encode(p, max_length=max_length)["input_ids"] for p in PROBES] == expected[max_length]
    shuffled = [tok.encode(p, max_length=10, shuffle=True, rng=5)["input_ids"] for p in PROBES[:2]]
    assert shuffled == expected["shuffled"]


@pytest.mark.parametrize("kind", ["tag", "wordpiece"])
def test_same_ids_as_the_tokenizers_before(kind, tmp_path):
    tok = build_tokenizer(kind, FIXTURE["train_tags"], **({"min_freq": 2} if kind == "tag" else {"vocab_size": 150}))
    check_expected_ids(tok, EXPECTED[kind])
    check_expected_ids(load_tokenizer(tok.save(tmp_path / "tokenizer.json")), EXPECTED[kind])


@pytest.mark.parametrize("kind", ["tag", "wordpiece"])
def test_files_in_the_earlier_format_still_load(kind, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(FIXTURE[f"legacy_{kind}_tokenizer"]), encoding="utf-8")
    assert json.loads(path.read_text())["type"] in ("TagTokenizer", "WordPieceTagTokenizer")
    tok = load_tokenizer(path)
    assert type(tok) is {"tag": TagTokenizer, "wordpiece": WordPieceTagTokenizer}[kind]
    check_expected_ids(tok, EXPECTED[kind])
    # saving again writes the Tokenizer's own format, same ids
    check_expected_ids(load_tokenizer(tok.save(path)), EXPECTED[kind])
    assert "type" not in json.loads(path.read_text())


def test_wordpiece_file_read_by_plain_tokenizers_gives_the_same_ids(tmp_path, wordpiece):
    plain = Tokenizer.from_file(str(wordpiece.save(tmp_path / "tokenizer.json")))
    words = ["long hair", "[SEP]", "hakurei reimu (cosplay)", "[SEP]"]  # what our wrapper feeds it
    expected = wordpiece.encode(["long_hair", "hakurei_reimu_(cosplay)"], max_length=None)["input_ids"]
    assert plain.encode(words, is_pretokenized=True).ids == expected


@pytest.mark.parametrize("lines, message, row", [(VOCAB_TXT + ["long"], "repeated token 'long'", 12),
                                                 (VOCAB_TXT[:3] + [""] + VOCAB_TXT[3:], "empty", 4)])
def test_bad_vocab_txt_names_file_and_row(tmp_path, lines, message, row):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as err:
        load_tokenizer(path)
    assert err.value.path == path and err.value.row == row


def test_missing_vocab_txt_names_the_file(tmp_path):
    with pytest.raises(DatasetError, match="cannot read the vocabulary") as err:
        load_tokenizer(tmp_path / "vocab.txt")
    assert err.value.path == tmp_path / "vocab.txt"
