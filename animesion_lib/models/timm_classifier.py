"""Any timm model as an image-only classifier (the CNN baselines: ResNet, EfficientNet, ...).

The model keeps timm's own pooling and classifier (``reset_classifier(num_classes)``); only the
plain head applies. The IFA head needs per-layer [CLS] tokens, which a CNN does not have.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from animesion_lib.models.base import AnimesionModel
from animesion_lib.models.tag_head import TagHead


class TimmClassifier(AnimesionModel):
    """``logits = classifier(pool(features(images)))``, all timm's; optional tag head on the pooled feature."""

    def __init__(self, backbone: nn.Module, num_classes: int, num_tags: int = 0, head_drop: float = 0.0,
                 **loss_kwargs):
        super().__init__(num_classes, **loss_kwargs)
        self.backbone = backbone
        self.backbone.reset_classifier(num_classes)
        self.tag_head = TagHead(backbone.num_features, num_tags, head_drop) if num_tags else None

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if input_ids is not None:
            raise ValueError(f"{self.config.get('name', 'this model')} is image-only: pass input_ids=None")
        pooled = self.backbone.forward_head(self.backbone.forward_features(images), pre_logits=True)
        out = {"logits": self.backbone.get_classifier()(pooled)}
        if self.tag_head is not None:
            out["tag_logits"] = self.tag_head(pooled)
        return out

    def classifier_prefixes(self) -> tuple[str, ...]:
        name = self.backbone.pretrained_cfg.get("classifier", "fc")
        names = name if isinstance(name, (list, tuple)) else (name,)
        return tuple(f"backbone.{n}." for n in names) + ("tag_head.fc.",)
