"""Classification heads on top of a transformer's [CLS] tokens, and the layer exclusion loss.

Two heads, one input convention: both take ``layer_cls`` of shape ``(B, L, d)``, the [CLS]
token after every one of the ``L`` transformer blocks, each passed through the backbone's final
LayerNorm (timm's ``forward_intermediates(..., norm=True)``). The last slice ``layer_cls[:, -1]``
is exactly the ViT's usual pooled [CLS] feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class ClsHead(nn.Module):
    """The plain ViT head: ``logits = W · LN(cls_L) + b``.

    The LayerNorm is the backbone's own final norm (``vit.norm``, which carries pretrained
    weights); the head adds only dropout and the Linear so that no second LayerNorm is stacked.
    """

    def __init__(self, dim: int, num_classes: int, drop: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, layer_cls: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(layer_cls[:, -1]))


class IFAHead(nn.Module):
    """Intermediate Features Aggregation (Animesion, Rios et al. 2022).

    The [CLS] tokens of all ``L`` layers are stacked to ``X ∈ R^{B×d×L}`` and mixed across layers
    by one learned ``Linear(L, 1)``:

        z = X w + c                       (w ∈ R^L, c ∈ R;  z ∈ R^{B×d})
        logits = W · LN(ReLU(z)) + b      (LayerNorm over d, W ∈ R^{C×d})

    so every layer's representation reaches the classifier with its own learned weight.
    """

    def __init__(self, dim: int, num_layers: int, num_classes: int, drop: float = 0.0):
        super().__init__()
        self.mix = nn.Linear(num_layers, 1)
        self.act = nn.ReLU()
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, layer_cls: torch.Tensor) -> torch.Tensor:
        stacked = layer_cls.transpose(1, 2)  # (B, L, d) -> (B, d, L), as in the paper
        z = self.mix(stacked).squeeze(-1)  # (B, d)
        return self.fc(self.drop(self.norm(self.act(z))))


@dataclass(frozen=True)
class ExclusionLoss:
    """Settings of the layer-wise exclusion loss: ``weight``, ``temperature`` T, layer ``distance`` k."""

    weight: float = 0.1
    temperature: float = 1.0
    distance: int = 1

    @classmethod
    def from_config(cls, cfg: "ExclusionLoss | dict | None") -> "ExclusionLoss | None":
        if cfg is None or isinstance(cfg, ExclusionLoss):
            return cfg
        unknown = set(cfg) - {"weight", "temperature", "distance"}
        if unknown:
            raise ValueError(f"exclusion_loss: unknown keys {sorted(unknown)} (use weight, temperature, distance)")
        return cls(**cfg)

    def __call__(self, layer_cls: torch.Tensor) -> torch.Tensor:
        return self.weight * layer_exclusion_loss(layer_cls, self.temperature, self.distance)


def build_head(kind: str, dim: int, depth: int, num_classes: int, drop: float = 0.0) -> nn.Module:
    """The classification head by name: ``cls`` (last layer's [CLS]) or ``ifa`` (every layer's)."""
    if kind == "cls":
        return ClsHead(dim, num_classes, drop)
    if kind == "ifa":
        return IFAHead(dim, depth, num_classes, drop)
    raise ValueError(f"head must be 'cls' or 'ifa', not {kind!r}")


def layer_exclusion_loss(layer_cls: torch.Tensor, temperature: float = 1.0, distance: int = 1) -> torch.Tensor:
    """Penalty that is large when layers ``i`` and ``i+k`` carry the same [CLS] representation.

    Each layer's [CLS] is *softened* into a distribution over the ``d`` feature dimensions,
    ``p_i = softmax(cls_i / T)``, and two layers are compared with ``KL(p_i ‖ p_{i+k})``.
    Animesion uses this to push layers *apart*, so the loss must fall as the KL grows.
    We minimise

        L_excl = mean_{b, i} exp(−KL(p_i ‖ p_{i+k}))        for i = 1 … L−k

    rather than ``−KL``: ``exp(−KL)`` is 1 for identical layers and decays to 0 as they differ,
    so it is bounded below and its gradient fades once layers are distinct, whereas ``−KL`` is
    unbounded and lets the network win by inflating a few feature dimensions without limit.
    """
    num_layers = layer_cls.shape[1]
    if not 1 <= distance < num_layers:
        raise ValueError(f"exclusion loss distance k={distance} needs 1 <= k < number of layers ({num_layers})")
    log_p = F.log_softmax(layer_cls.float() / temperature, dim=-1)  # (B, L, d)
    near, far = log_p[:, :-distance], log_p[:, distance:]
    kl = (near.exp() * (near - far)).sum(-1)  # (B, L-k)
    return torch.exp(-kl).mean()
