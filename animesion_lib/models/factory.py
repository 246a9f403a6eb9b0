"""``create_model``: every model of the book from a name and a few settings.

Names (see :func:`list_models`):

* image-only ViTs — the CPU configurations ``vit_micro_p8``, ``vit_tiny_p8``, ``vit_small_p8``
  and the Animesion sizes ``vit_b16``, ``vit_b32``, ``vit_l16``, ``vit_l32``; any timm
  VisionTransformer name (``vit_small_patch16_224``) is handled the same way, with either head;
* CNN baselines ``resnet18``, ``resnet50``, ``resnet152``, ``efficientnet_b0``, and any other
  timm name, with timm's own classifier (``head="cls"`` only);
* multimodal ``vilt_*``: ``vilt_tiny_p8`` is ``vit_tiny_p8`` plus tag tokens (likewise
  ``vilt_b16`` ...; ``vilt_<timm ViT name>`` works too). The Dan:mul curriculum model is a ``vilt_*`` model with ``num_tags > 0`` trained under
  ``MaskSchedule("cosine")``; the schedule belongs to training, not to the architecture.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from animesion_lib.models.backbones import BACKBONES, create_backbone, is_vit
from animesion_lib.models.base import AnimesionModel
from animesion_lib.models.heads import ExclusionLoss
from animesion_lib.models.pretrained import load_pretrained
from animesion_lib.models.timm_classifier import TimmClassifier
from animesion_lib.models.vilt import DEFAULT_SPECIAL_IDS, ViLT
from animesion_lib.models.vit import ViTClassifier

MULTIMODAL_PREFIX = "vilt_"
# Keywords our models take; everything else goes to timm.create_model (depth=, drop_path_rate=, ...).
_MODEL_KWARGS = {"head_drop", "tag_loss", "asl", "tag_loss_weight", "mlm_loss_weight"}
_VILT_KWARGS = {"mlm", "special_token_ids"}


def list_models() -> list[str]:
    """The configuration names this library defines (any timm model name works too)."""
    image = sorted(BACKBONES)
    return image + [MULTIMODAL_PREFIX + n[len("vit_"):] for n in image if n.startswith("vit_")]


def create_model(
    name: str,
    num_classes: int,
    image_size: int = 64,
    head: str = "cls",
    pretrained: bool = False,
    pretrained_path: str | None = None,
    vocab_size: int | None = None,
    max_text_len: int = 32,
    num_tags: int = 0,
    exclusion_loss: dict[str, float] | ExclusionLoss | None = None,
    **kwargs: Any,
) -> AnimesionModel:
    """Build a model; ``model.config`` is the dict that rebuilds it: ``create_model(**model.config)``.

    Args:
        name: configuration name, ``vilt_<vit name>``, or any timm model name.
        num_classes: number of characters.
        image_size: input resolution (ViTs are built for it; CNNs take any size).
        head: ``"cls"`` (plain [CLS] head) or ``"ifa"`` (Intermediate Features Aggregation; ViT/ViLT only).
        pretrained: timm hub weights (needs the network).
        pretrained_path: local ``.safetensors``/``.pth``/``.bin`` to start from (see ``load_pretrained``);
            the report is kept as ``model.load_report``.
        vocab_size, max_text_len: the tokenizer's, for ``vilt_*`` models (required there).
        num_tags: size of the tag vocabulary for a multi-label tag head (0: none).
        exclusion_loss: ``dict(weight, temperature, distance)`` for the layer exclusion loss (ViT/ViLT).
        **kwargs: ``head_drop``, ``tag_loss`` ("bce"|"asl"), ``asl`` (dict of gamma_neg, gamma_pos, clip),
            ``tag_loss_weight``, ``mlm_loss_weight``; for ``vilt_*`` also ``mlm`` (bool, default True)
            and ``special_token_ids`` (tokenizer.special_token_ids; default TagTokenizer's 0..4);
            anything else is passed to ``timm.create_model`` (``depth``, ``embed_dim``, ``drop_path_rate``...).
    """
    exclusion = ExclusionLoss.from_config(exclusion_loss)
    multimodal = name.startswith(MULTIMODAL_PREFIX)
    model_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _MODEL_KWARGS}
    vilt_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _VILT_KWARGS}
    if vilt_kwargs and not multimodal:
        raise ValueError(f"{sorted(vilt_kwargs)} only apply to {MULTIMODAL_PREFIX}* models, not {name!r}")
    if head not in ("cls", "ifa"):
        raise ValueError(f"head must be 'cls' or 'ifa', not {head!r}")

    backbone_name = _vilt_backbone(name) if multimodal else name
    backbone = create_backbone(backbone_name, image_size, pretrained, **kwargs)

    if multimodal:
        model = _multimodal_model(name, backbone, num_classes, vocab_size, max_text_len, head, num_tags, exclusion,
                                  vilt_kwargs, model_kwargs)
    else:
        model = _image_model(name, backbone, num_classes, vocab_size, head, num_tags, exclusion, model_kwargs)

    model.config = _plain(dict(
        name=name, num_classes=num_classes, image_size=image_size, head=head,
        vocab_size=vocab_size, max_text_len=max_text_len, num_tags=num_tags,
        exclusion_loss=None if exclusion is None else vars(exclusion).copy(),
        **model_kwargs, **vilt_kwargs, **kwargs))
    if pretrained_path is not None:
        model.load_report = load_pretrained(model, pretrained_path)
    return model


def _multimodal_model(name: str, backbone: Any, num_classes: int, vocab_size: int | None, max_text_len: int,
                      head: str, num_tags: int, exclusion: ExclusionLoss | None, vilt_kwargs: dict[str, Any],
                      model_kwargs: dict[str, Any]) -> AnimesionModel:
    if vocab_size is None:
        raise ValueError(f"{name} reads tags: pass vocab_size=tokenizer.vocab_size")
    if not is_vit(backbone):
        raise ValueError(f"{name}: the multimodal model needs a ViT with a [CLS] token, "
                         f"not {type(backbone).__name__}")
    if "special_token_ids" in vilt_kwargs:
        vilt_kwargs["special_token_ids"] = sorted(int(i) for i in vilt_kwargs["special_token_ids"])
    return ViLT(backbone, num_classes, vocab_size, max_text_len, head, num_tags, exclusion, **vilt_kwargs,
                **model_kwargs)


def _image_model(name: str, backbone: Any, num_classes: int, vocab_size: int | None, head: str, num_tags: int,
                 exclusion: ExclusionLoss | None, model_kwargs: dict[str, Any]) -> AnimesionModel:
    if vocab_size is not None:
        raise ValueError(f"{name} is image-only; vocab_size is for {MULTIMODAL_PREFIX}* models")
    if is_vit(backbone):
        return ViTClassifier(backbone, num_classes, head, num_tags, exclusion, **model_kwargs)
    if head == "ifa" or exclusion is not None:
        raise ValueError(f"{name} is a {type(backbone).__name__}, not a ViT: the IFA head and the exclusion "
                         "loss need the [CLS] token of every transformer layer; use head='cls'")
    return TimmClassifier(backbone, num_classes, num_tags, **model_kwargs)


def _vilt_backbone(name: str) -> str:
    """``vilt_tiny_p8`` -> ``vit_tiny_p8``; ``vilt_vit_small_patch16_224`` -> the timm name."""
    rest = name[len(MULTIMODAL_PREFIX):]
    return f"vit_{rest}" if f"vit_{rest}" in BACKBONES else rest


def _plain(value: Any) -> Any:
    """JSON-friendly copy (tuples to lists) so a checkpoint can store the config as-is."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


__all__ = ["create_model", "list_models", "DEFAULT_SPECIAL_IDS"]
