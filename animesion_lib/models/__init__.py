"""Models of the Animesion book: timm ViTs with [CLS]/IFA heads, CNN baselines, ViLT-style multimodal.

    from animesion_lib.models import create_model, MaskSchedule
    model = create_model("vit_tiny_p8", num_classes=100, image_size=64, head="ifa")
    out = model(images)                      # {"logits": [B, C], ...}
    total, parts = model.loss(out, batch)
"""

from animesion_lib.models.backbones import BACKBONES, create_backbone
from animesion_lib.models.base import AnimesionModel
from animesion_lib.models.factory import create_model, list_models
from animesion_lib.models.heads import ClsHead, ExclusionLoss, IFAHead, layer_exclusion_loss
from animesion_lib.models.losses import asymmetric_loss
from animesion_lib.models.masking import MaskSchedule
from animesion_lib.models.pretrained import LoadReport, load_model_weights, load_pretrained, read_state_dict
from animesion_lib.models.tag_head import MaskedTagHead, TagHead
from animesion_lib.models.timm_classifier import TimmClassifier
from animesion_lib.models.vilt import ViLT
from animesion_lib.models.vit import ViTClassifier

__all__ = [
    "AnimesionModel", "BACKBONES", "ClsHead", "ExclusionLoss", "IFAHead", "LoadReport", "MaskSchedule",
    "MaskedTagHead", "TagHead", "TimmClassifier", "ViLT", "ViTClassifier", "asymmetric_loss",
    "create_backbone", "create_model", "layer_exclusion_loss", "list_models", "load_model_weights",
    "load_pretrained", "read_state_dict",
]
