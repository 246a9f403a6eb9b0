"""ViLT-style multimodal transformer (Animesion's ViLT; our Dan:mul curriculum model).

Image patches and tag tokens go through *one* transformer: the blocks, patch embedding and
final norm of a timm ``VisionTransformer``, plus text embeddings added here (Kim et al. 2021):

    image tokens: [CLS; P_1 … P_n] + E_pos^img + E_type[1]           (timm's patch_embed/_pos_embed)
    text tokens:  E_word[t_1 … t_m] + E_pos^txt[1 … m] + E_type[0]
    h_0 = [image tokens; text tokens],  h_l = Block_l(h_{l−1}, key mask)

The image [CLS] (token 0) is the classification token for either head; the text positions feed
the masked-tag head (tied to ``E_word``).

Which text tokens other tokens may attend to (the key mask): only real tags. Padding, the
tokenizer's special tokens ([CLS], [SEP], [UNK]) and [MASK] are hidden as keys (they still
compute outputs as queries, so masked positions are predicted from the image and the visible
tags). Consequence, and the reason for this choice: a fully masked text segment leaves every
image token exactly as if there were no text, so **image-only inference (``input_ids=None``,
the text segment is absent) is the condition the ``full`` schedule and the cool-down of the
``cosine`` curriculum train for** — no [MASK] count or [SEP] position leaks how many tags an
image has. Some tags or all tags may be given at inference just as well.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from animesion_lib.models.base import AnimesionModel, attention_weights
from animesion_lib.models.heads import ExclusionLoss, build_head
from animesion_lib.models.tag_head import MaskedTagHead, TagHead

# TagTokenizer's [PAD] [UNK] [CLS] [SEP] [MASK]; pass tokenizer.special_token_ids for others.
DEFAULT_SPECIAL_IDS = (0, 1, 2, 3, 4)


class ViLT(AnimesionModel):
    """Multimodal transformer over image patches and tag tokens, with a [CLS]/IFA head."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        vocab_size: int,
        max_text_len: int = 32,
        head: str = "cls",
        num_tags: int = 0,
        exclusion_loss: ExclusionLoss | None = None,
        mlm: bool = True,
        special_token_ids: Iterable[int] = DEFAULT_SPECIAL_IDS,
        head_drop: float = 0.0,
        **loss_kwargs,
    ):
        super().__init__(num_classes, **loss_kwargs)
        self.backbone = backbone
        dim, depth = backbone.embed_dim, len(backbone.blocks)
        self.max_text_len = max_text_len
        self.word_embed = nn.Embedding(vocab_size, dim)
        self.text_pos_embed = nn.Parameter(torch.zeros(1, max_text_len, dim))
        self.type_embed = nn.Embedding(2, dim)  # 0: text, 1: image
        for weight in (self.word_embed.weight, self.text_pos_embed, self.type_embed.weight):
            trunc_normal_(weight, std=0.02)
        self.register_buffer("special_ids", torch.tensor(sorted(set(special_token_ids)), dtype=torch.long),
                             persistent=False)

        self.head = build_head(head, dim, depth, num_classes, head_drop)
        self.tag_head = TagHead(dim, num_tags, head_drop) if num_tags else None
        self.mlm_head = MaskedTagHead(self.word_embed) if mlm else None
        self.exclusion = exclusion_loss

    def embed(self, images: torch.Tensor, input_ids: torch.Tensor | None = None,
              attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token sequence ``h_0`` ``[B, 1+n+m, d]`` and the boolean key mask ``[B, 1, 1, 1+n+m]`` (or None)."""
        vit = self.backbone
        x = vit.patch_drop(vit._pos_embed(vit.patch_embed(images))) + self.type_embed.weight[1]
        if input_ids is None:
            return vit.norm_pre(x), None
        length = input_ids.shape[1]
        if length > self.max_text_len:
            raise ValueError(f"text of {length} tokens is longer than max_text_len={self.max_text_len}")
        text = self.word_embed(input_ids) + self.text_pos_embed[:, :length] + self.type_embed.weight[0]
        visible = ~torch.isin(input_ids, self.special_ids)
        if attention_mask is not None:
            visible &= attention_mask.bool()
        keys = torch.cat([visible.new_ones(x.shape[:2]), visible], dim=1)
        return vit.norm_pre(torch.cat([x, text], dim=1)), keys[:, None, None, :]

    def _encode(self, images, input_ids, attention_mask):
        """Final tokens ``[B, N, d]`` and per-layer [CLS] ``[B, L, d]``, both final-LayerNorm'd."""
        x, key_mask = self.embed(images, input_ids, attention_mask)
        layer_cls = []
        for blk in self.backbone.blocks:
            x = blk(x) if key_mask is None else blk(x, attn_mask=key_mask)
            layer_cls.append(x[:, 0])
        norm = self.backbone.norm  # as timm's forward_intermediates(norm=True)
        return norm(x), norm(torch.stack(layer_cls, dim=1))

    def forward_layer_cls(self, images: torch.Tensor, input_ids: torch.Tensor | None = None,
                          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, L, d]``: the image [CLS] after each of the ``L`` blocks, final-LayerNorm'd."""
        return self._encode(images, input_ids, attention_mask)[1]

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        tokens, layer_cls = self._encode(images, input_ids, attention_mask)
        out = {"logits": self.head(layer_cls)}
        if self.tag_head is not None:
            out["tag_logits"] = self.tag_head(layer_cls[:, -1])
        if self.mlm_head is not None and input_ids is not None:
            out["mlm_logits"] = self.mlm_head(tokens[:, -input_ids.shape[1]:])
        if self.exclusion is not None:
            out["aux_loss"] = self.exclusion(layer_cls)
        return out

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor, input_ids: torch.Tensor | None = None,
                       attention_mask: torch.Tensor | None = None, block: int = -1) -> torch.Tensor:
        """Attention weights ``[B, heads, N, N]`` of one block; tokens: [CLS], patches, then text."""
        blocks = self.backbone.blocks
        block = block % len(blocks)
        x, key_mask = self.embed(images, input_ids, attention_mask)
        for blk in blocks[:block]:
            x = blk(x) if key_mask is None else blk(x, attn_mask=key_mask)
        blk = blocks[block]
        return attention_weights(blk.attn, blk.norm1(x), key_mask)
