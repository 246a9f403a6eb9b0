"""Image-only Vision Transformer classifier (Animesion): a timm ViT with a [CLS] or IFA head.

The transformer is timm's ``VisionTransformer`` built without its classifier; the per-layer
[CLS] tokens come from timm's documented ``forward_intermediates`` (``return_prefix_tokens=True,
norm=True``): every layer's [CLS] passed through the ViT's final LayerNorm, so all layers are on
one scale before the IFA head mixes them or the exclusion loss compares them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from animesion_lib.models.base import AnimesionModel, attention_weights
from animesion_lib.models.heads import ExclusionLoss, build_head
from animesion_lib.models.tag_head import TagHead


class ViTClassifier(AnimesionModel):
    """``logits = head([CLS]_1 … [CLS]_L)`` with ``head="cls"`` (last layer) or ``"ifa"`` (all layers)."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        head: str = "cls",
        num_tags: int = 0,
        exclusion_loss: ExclusionLoss | None = None,
        head_drop: float = 0.0,
        **loss_kwargs,
    ):
        super().__init__(num_classes, **loss_kwargs)
        self.backbone = backbone
        dim, depth = backbone.embed_dim, len(backbone.blocks)
        self.head = build_head(head, dim, depth, num_classes, head_drop)
        self.tag_head = TagHead(dim, num_tags, head_drop) if num_tags else None
        self.exclusion = exclusion_loss
        # The cheap path (one LayerNorm, no per-layer tokens) suffices when nothing reads layers.
        self._needs_layers = head == "ifa" or exclusion_loss is not None

    def forward_layer_cls(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, L, d]``: the [CLS] token after each of the ``L`` blocks, final-LayerNorm'd."""
        _, intermediates = self.backbone.forward_intermediates(
            images, return_prefix_tokens=True, norm=True, output_fmt="NLC")
        return torch.stack([prefix[:, 0] for _, prefix in intermediates], dim=1)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if input_ids is not None:
            raise ValueError(f"{self.config.get('name', 'this model')} is image-only: pass input_ids=None "
                             "(use a vilt_* model to read tags)")
        if self._needs_layers:
            layer_cls = self.forward_layer_cls(images)
        else:
            layer_cls = self.backbone.forward_features(images)[:, :1]
        out = {"logits": self.head(layer_cls)}
        if self.tag_head is not None:
            out["tag_logits"] = self.tag_head(layer_cls[:, -1])
        if self.exclusion is not None:
            out["aux_loss"] = self.exclusion(layer_cls)
        return out

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor, block: int = -1) -> torch.Tensor:
        """Attention weights ``[B, heads, N, N]`` of one block (default: the last); token 0 is [CLS]."""
        vit = self.backbone
        block = block % len(vit.blocks)
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
        for blk in vit.blocks[:block]:
            x = blk(x)
        blk = vit.blocks[block]
        return attention_weights(blk.attn, blk.norm1(x))
