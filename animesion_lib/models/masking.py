"""Text-masking schedules for the multimodal models (Animesion's ViLT; Dan:mul's curriculum).

``MaskSchedule.prob(progress)`` is the probability that a tag token is hidden at training
progress ``progress ∈ [0, 1]`` (fraction of all training steps done):

* ``none``   – 0: every tag is always visible.
* ``bert``   – ``mask_prob`` (15%): BERT's masked-language-model rate.
* ``full``   – 1: no tag is ever visible (image-only training through the multimodal model).
* ``cosine`` – the curriculum: 0 during the warm-up fraction ``w`` (all tags visible), then

      prob(t) = (1 − cos(π · (t − w) / (1 − w − c))) / 2

  rising from 0 to 1 over the middle, and 1 (no tag visible) during the cool-down fraction ``c``,
  so the model ends training in the same condition as image-only inference.

``apply`` hides the chosen tokens either by ``[MASK]`` (``replace="mask"``) or by a random
non-special token (``replace="random"``). Special tokens ([CLS], [SEP], [PAD], ...) and padding
are never masked; ``mlm_labels`` holds the original id where masked and ``-100`` elsewhere
(``cross_entropy``'s ``ignore_index``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import torch

KINDS = ("none", "bert", "full", "cosine")
REPLACEMENTS = ("mask", "random")
IGNORE_INDEX = -100


@dataclass(frozen=True)
class MaskSchedule:
    """How many tag tokens to hide as training progresses, and what to hide them with."""

    kind: str = "none"
    mask_prob: float = 0.15
    warmup: float = 0.1
    cooldown: float = 0.1
    replace: str = "mask"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"MaskSchedule kind must be one of {KINDS}, not {self.kind!r}")
        if self.replace not in REPLACEMENTS:
            raise ValueError(f"MaskSchedule replace must be one of {REPLACEMENTS}, not {self.replace!r}")
        if not 0.0 <= self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in [0, 1], not {self.mask_prob}")
        if self.warmup < 0 or self.cooldown < 0 or self.warmup + self.cooldown > 1:
            raise ValueError(f"warmup ({self.warmup}) and cooldown ({self.cooldown}) must be >= 0 "
                             "and add up to at most 1")

    def prob(self, progress: float) -> float:
        """Probability that a maskable token is hidden at ``progress`` (clamped to [0, 1])."""
        t = min(max(float(progress), 0.0), 1.0)
        if self.kind == "none":
            return 0.0
        if self.kind == "bert":
            return self.mask_prob
        if self.kind == "full":
            return 1.0
        if t < self.warmup:
            return 0.0
        if t >= 1.0 - self.cooldown:
            return 1.0
        ramp = 1.0 - self.warmup - self.cooldown
        return 0.5 * (1.0 - math.cos(math.pi * (t - self.warmup) / ramp))

    def apply(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        progress: float,
        special_ids: Iterable[int],
        mask_token_id: int,
        vocab_size: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hide tag tokens: returns ``(masked_ids, mlm_labels)``, both shaped like ``input_ids``.

        ``generator`` makes the draw reproducible; random numbers are drawn on the generator's
        device and moved to ``input_ids``' device (give it a generator on that device: no copy).
        No step waits for the GPU: the constant tensors are made once per device and cached.
        """
        special_key = tuple(sorted(set(int(i) for i in special_ids)))
        special = _constant(special_key, input_ids.device)
        maskable = attention_mask.bool() & ~torch.isin(input_ids, special)
        p = self.prob(progress)
        rand_device = generator.device if generator is not None else input_ids.device
        draw = torch.rand(input_ids.shape, generator=generator, device=rand_device).to(input_ids.device)
        masked = maskable & (draw < p)  # rand ∈ [0, 1): p = 1 masks everything maskable

        labels = torch.where(masked, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        if self.replace == "mask":
            fill = torch.full_like(input_ids, mask_token_id)
        else:
            excluded = set(special_key) | {mask_token_id}
            choices = _constant(tuple(i for i in range(vocab_size) if i not in excluded), input_ids.device)
            if choices.numel() == 0:
                raise ValueError("random replacement needs at least one non-special token in the vocabulary")
            pick = torch.randint(0, choices.numel(), input_ids.shape, generator=generator, device=rand_device)
            fill = choices[pick.to(input_ids.device)].to(input_ids.dtype)
        return torch.where(masked, fill, input_ids), labels


@lru_cache(maxsize=32)
def _constant(ids: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An int64 tensor of ``ids`` on ``device``, made once (a fresh host-to-GPU copy every step
    would make each step wait for the GPU)."""
    return torch.tensor(ids, dtype=torch.int64).to(device)
