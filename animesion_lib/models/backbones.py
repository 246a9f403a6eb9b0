"""Backbones: named configurations of timm models (never re-implemented here).

A *configuration name* is a short name the book uses ("vit_tiny_p8", "vit_b16", "resnet18");
it maps to a timm architecture plus keyword overrides, the way timm's own ``vit_*`` factory
functions are thin configurations of one ``VisionTransformer`` class. Any other timm model
name works as well (``timm.create_model`` decides).

The CPU configurations keep timm's ViT and change only width, depth, heads and patch size so
that a 64x64 image becomes an 8x8 grid of patches, which is small enough to train on two CPU
cores in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import timm
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from animesion_lib.errors import CheckpointError


@dataclass(frozen=True)
class BackboneConfig:
    """A named configuration: the timm architecture and the keyword overrides it is built with."""

    timm_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


# The Animesion paper's sizes use timm's ImageNet-21k -> 1k ViTs; the CPU ones share timm's
# VisionTransformer with smaller width/depth and patch 8 (64 px -> 8x8 patches).
BACKBONES: dict[str, BackboneConfig] = {
    "vit_micro_p8": BackboneConfig(
        "vit_tiny_patch16_224", dict(patch_size=8, embed_dim=128, depth=6, num_heads=4),
        "CPU ViT: width 128, depth 6, 4 heads, patch 8"),
    "vit_tiny_p8": BackboneConfig(
        "vit_tiny_patch16_224", dict(patch_size=8, embed_dim=192, depth=8, num_heads=3),
        "CPU ViT: width 192, depth 8, 3 heads, patch 8"),
    "vit_small_p8": BackboneConfig(
        "vit_small_patch16_224", dict(patch_size=8, embed_dim=384, depth=8, num_heads=6),
        "small GPU/CPU ViT: width 384, depth 8, 6 heads, patch 8"),
    "vit_b16": BackboneConfig("vit_base_patch16_224", {}, "ViT-B/16 (Animesion)"),
    "vit_b32": BackboneConfig("vit_base_patch32_224", {}, "ViT-B/32 (Animesion)"),
    "vit_l16": BackboneConfig("vit_large_patch16_224", {}, "ViT-L/16 (Animesion)"),
    "vit_l32": BackboneConfig("vit_large_patch32_224", {}, "ViT-L/32 (Animesion)"),
    "resnet18": BackboneConfig("resnet18", {}, "ResNet-18 baseline"),
    "resnet50": BackboneConfig("resnet50", {}, "ResNet-50 baseline"),
    "resnet152": BackboneConfig("resnet152", {}, "ResNet-152 baseline"),
    "efficientnet_b0": BackboneConfig("efficientnet_b0", {}, "EfficientNet-B0 baseline"),
}

# Configurations whose shape matches no published weights: pretrained=True would silently load
# a truncated / resampled checkpoint, so we refuse and point at pretrained_path instead.
_NO_HUB_WEIGHTS = {"vit_micro_p8", "vit_tiny_p8", "vit_small_p8"}


def resolve_backbone(name: str) -> BackboneConfig:
    """The timm architecture behind a configuration name, or the timm name itself."""
    if name in BACKBONES:
        return BACKBONES[name]
    if not timm.is_model(name.split(".")[0]):
        known = ", ".join(sorted(BACKBONES))
        raise ValueError(f"unknown model {name!r}: not one of ours ({known}) and not a timm model name")
    return BackboneConfig(name)


def create_backbone(
    name: str,
    image_size: int = 64,
    pretrained: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Build the timm model for ``name`` without a classifier (``num_classes=0``).

    ``overrides`` go to ``timm.create_model`` on top of the configuration (e.g. ``depth=2`` for
    tests). ``pretrained=True`` is the only path that reaches timm's hub.
    """
    cfg = resolve_backbone(name)
    if pretrained and name in _NO_HUB_WEIGHTS and not overrides.get("pretrained_cfg_overlay"):
        raise CheckpointError(
            f"{name} is a CPU configuration with no published weights; "
            "pass pretrained_path=FILE to start from a local checkpoint")
    kwargs = {**cfg.kwargs, **overrides}
    try:
        return timm.create_model(cfg.timm_name, pretrained=pretrained, num_classes=0,
                                 img_size=image_size, **kwargs)
    except TypeError as exc:
        # CNNs take any input size and have no img_size argument; only those get here.
        if "img_size" not in str(exc):
            raise
        return timm.create_model(cfg.timm_name, pretrained=pretrained, num_classes=0, **kwargs)


def is_vit(backbone: nn.Module) -> bool:
    """True for a timm VisionTransformer with a [CLS] token (what the IFA head and ViLT need)."""
    return isinstance(backbone, VisionTransformer) and backbone.cls_token is not None
