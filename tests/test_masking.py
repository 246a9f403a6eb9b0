"""MaskSchedule: masking probabilities over training, what may be masked, and with what."""

from __future__ import annotations

import math

import pytest
import torch

from animesion_lib.models import MaskSchedule

SPECIALS = {0, 1, 2, 3, 4}  # TagTokenizer: [PAD] [UNK] [CLS] [SEP] [MASK]
MASK, VOCAB = 4, 40


def _batch(rows: int = 64, length: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] tags... [SEP] [PAD]...: a random number of tags per row, like the tokenizers emit."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(rows, length, dtype=torch.long)
    mask = torch.zeros(rows, length, dtype=torch.long)
    for r in range(rows):
        n = int(torch.randint(1, length - 2, (1,), generator=g))
        ids[r, 0], ids[r, n + 1] = 2, 3
        ids[r, 1:n + 1] = torch.randint(5, VOCAB, (n,), generator=g)
        mask[r, : n + 2] = 1
    return ids, mask


def _apply(schedule: MaskSchedule, ids, mask, progress: float, seed: int = 0):
    return schedule.apply(ids, mask, progress, SPECIALS, MASK, VOCAB, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("progress", [0.0, 0.05, 0.5, 0.95, 1.0])
def test_constant_schedules(progress):
    assert MaskSchedule("none").prob(progress) == 0.0
    assert MaskSchedule("bert").prob(progress) == pytest.approx(0.15)
    assert MaskSchedule("full").prob(progress) == 1.0


def test_cosine_curriculum_warmup_middle_cooldown():
    s = MaskSchedule("cosine", warmup=0.2, cooldown=0.2)
    assert s.prob(0.0) == 0.0 and s.prob(0.19) == 0.0  # warm-up: all tags visible
    assert s.prob(0.5) == pytest.approx(0.5)  # cosine midpoint
    assert s.prob(0.35) == pytest.approx(0.5 * (1 - math.cos(math.pi * 0.25)))
    assert s.prob(0.8) == 1.0 and s.prob(1.0) == 1.0  # cool-down: no tag visible
    ramp = [s.prob(t / 100) for t in range(101)]
    assert all(a <= b for a, b in zip(ramp, ramp[1:])), "the curriculum never un-hides tags"


def test_specials_and_padding_never_masked_and_labels():
    ids, mask = _batch()
    masked, labels = _apply(MaskSchedule("full"), ids, mask, 0.5)
    maskable = mask.bool() & (ids >= 5)
    assert torch.equal(masked[maskable], torch.full_like(masked[maskable], MASK))
    assert torch.equal(masked[~maskable], ids[~maskable]), "specials and padding must stay as they are"
    assert torch.equal(labels[maskable], ids[maskable])
    assert (labels[~maskable] == -100).all()


def test_none_masks_nothing_and_warmup_masks_nothing():
    ids, mask = _batch()
    for schedule, progress in [(MaskSchedule("none"), 0.5), (MaskSchedule("cosine"), 0.05)]:
        masked, labels = _apply(schedule, ids, mask, progress)
        assert torch.equal(masked, ids)
        assert (labels == -100).all()


def test_bert_rate_is_about_fifteen_percent():
    ids, mask = _batch(rows=512)
    masked, labels = _apply(MaskSchedule("bert"), ids, mask, 0.3)
    maskable = mask.bool() & (ids >= 5)
    rate = (labels != -100).sum().item() / maskable.sum().item()
    assert 0.12 < rate < 0.18
    assert ((masked == MASK) == (labels != -100)).all()


def test_random_replacement_stays_in_vocab_and_avoids_specials():
    ids, mask = _batch(rows=256)
    masked, labels = _apply(MaskSchedule("full", replace="random"), ids, mask, 0.5)
    chosen = masked[labels != -100]
    assert chosen.numel() > 0
    assert ((chosen >= 5) & (chosen < VOCAB)).all(), "random tokens must be real, non-special tokens"
    assert (chosen != ids[labels != -100]).any(), "replacement should actually change tokens"


def test_deterministic_with_generator():
    ids, mask = _batch()
    s = MaskSchedule("bert", replace="random")
    a = _apply(s, ids, mask, 0.5, seed=7)
    b = _apply(s, ids, mask, 0.5, seed=7)
    c = _apply(s, ids, mask, 0.5, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("kwargs", [dict(kind="sigmoid"), dict(replace="zero"), dict(warmup=0.6, cooldown=0.5),
                                    dict(mask_prob=1.5)])
def test_invalid_schedules_are_refused(kwargs):
    with pytest.raises(ValueError):
        MaskSchedule(**kwargs)
