"""Heads that predict tags: the multi-label tag head and the masked-tag (MLM) head."""

from __future__ import annotations

import torch
import torch.nn as nn


class TagHead(nn.Module):
    """Multi-label tag prediction from the pooled [CLS] feature: ``tag_logits = W · cls + b``.

    One independent logit per tag of the tag vocabulary (train with BCE or asymmetric loss).
    """

    def __init__(self, dim: int, num_tags: int, drop: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(dim, num_tags)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(cls))


class MaskedTagHead(nn.Module):
    """BERT/ViLT masked-language-model head whose output matrix *is* the word embedding.

        h = LN(GELU(W_t · x + b_t));   mlm_logits = E · h + b      (E: the word embeddings)

    Tying (``decoder.weight is word_embed.weight``) makes predicting a tag and embedding it the
    same vectors, which matters with few examples per tag.
    """

    def __init__(self, word_embed: nn.Embedding):
        super().__init__()
        vocab_size, dim = word_embed.weight.shape
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.decoder = nn.Linear(dim, vocab_size)
        self.decoder.weight = word_embed.weight  # tied: the same Parameter, not a copy

    def forward(self, text_tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(text_tokens))
