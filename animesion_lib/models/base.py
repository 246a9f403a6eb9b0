"""What every Animesion model shares: the output dictionary, the loss, the rebuild config.

Every model's ``forward(images, input_ids=None, attention_mask=None)`` returns a dict:

* ``"logits"``      ``[B, C]`` character logits (always);
* ``"tag_logits"``  ``[B, T]`` multi-label tag logits, when built with ``num_tags > 0``;
* ``"mlm_logits"``  ``[B, L, V]`` masked-tag logits, multimodal models given ``input_ids``;
* ``"aux_loss"``    scalar, the weighted layer exclusion loss, when enabled.

``loss(out, batch)`` turns that dict and a collated batch into ``(total, parts)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from animesion_lib.models.losses import tag_loss
from animesion_lib.models.masking import IGNORE_INDEX


class AnimesionModel(nn.Module):
    """Base class: holds ``backbone`` (a timm model), ``config`` and the loss of the outputs.

    Subclasses set ``self.backbone`` and implement ``forward``. ``config`` is the plain dict that
    ``create_model(**config)`` turns back into the same architecture (set by the factory).
    """

    backbone: nn.Module

    def __init__(
        self,
        num_classes: int,
        tag_loss: str = "bce",
        asl: dict[str, float] | None = None,
        tag_loss_weight: float = 1.0,
        mlm_loss_weight: float = 1.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.tag_loss_kind = tag_loss
        self.asl = dict(asl or {})
        self.tag_loss_weight = tag_loss_weight
        self.mlm_loss_weight = mlm_loss_weight
        self.config: dict[str, Any] = {}

    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``total = CE(logits, label) + λ_tags·L_tags + λ_mlm·L_mlm + aux_loss``.

        Each term is included only when both its output and its batch key are present:
        ``"label"`` for CE, ``"tag_targets"`` for the tag loss (BCE or asymmetric),
        ``"mlm_labels"`` (``-100`` = not masked) for the masked-tag loss. ``parts`` holds each
        unweighted term, detached (log them without forcing a device sync every step).
        """
        parts: dict[str, torch.Tensor] = {}
        total = out["logits"].new_zeros((), dtype=torch.float32)
        if "label" in batch:
            parts["ce"] = F.cross_entropy(out["logits"].float(), batch["label"])
            total = total + parts["ce"]
        if "tag_logits" in out and "tag_targets" in batch:
            parts["tags"] = tag_loss(out["tag_logits"], batch["tag_targets"], self.tag_loss_kind, **self.asl)
            total = total + self.tag_loss_weight * parts["tags"]
        if "mlm_logits" in out and "mlm_labels" in batch:
            parts["mlm"] = masked_token_loss(out["mlm_logits"], batch["mlm_labels"])
            total = total + self.mlm_loss_weight * parts["mlm"]
        if "aux_loss" in out:
            parts["exclusion"] = out["aux_loss"]
            total = total + out["aux_loss"]
        return total, {k: v.detach() for k, v in parts.items()}

    def classifier_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of layers whose size depends on the class / tag count.

        Loading pretrained weights skips these when their shapes differ.
        """
        return ("head.fc.", "tag_head.fc.")


def masked_token_loss(mlm_logits: torch.Tensor, mlm_labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over masked positions only; 0 (not NaN) when a batch masks nothing.

    (A ``cosine`` curriculum masks nothing during warm-up; a mean over zero targets would be NaN.)
    """
    flat = F.cross_entropy(mlm_logits.float().flatten(0, 1), mlm_labels.flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    return flat / (mlm_labels != IGNORE_INDEX).sum().clamp_min(1)


def attention_weights(attn: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention weights ``[B, heads, N, N]`` of a timm ``Attention`` for normed input ``x``.

    timm's fused (SDPA) path never materialises the weights, so for analysis we recompute
    ``softmax(q kᵀ / √d_h)`` from the module's own ``qkv`` projection and q/k norms.
    """
    B, N, _ = x.shape
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, _ = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    scores = (q * attn.scale) @ k.transpose(-2, -1)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(dim=-1)
