"""create_model: every model family's outputs, the multimodal model's text handling, training steps."""

from __future__ import annotations

import pytest
import torch

from animesion_lib.models import MaskSchedule, create_model, list_models

TINY = dict(image_size=32, embed_dim=32, depth=2, num_heads=2)
VOCAB, TEXT_LEN, SPECIALS, MASK = 30, 8, (0, 1, 2, 3, 4), 4


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def text() -> tuple[torch.Tensor, torch.Tensor]:
    """Two tag sequences as the tokenizers emit them: [CLS] tags [SEP] [PAD]..."""
    ids = torch.tensor([[2, 10, 11, 12, 3, 0, 0, 0], [2, 20, 3, 0, 0, 0, 0, 0]])
    return ids, (ids != 0).long()


def _vilt(**kw):
    torch.manual_seed(0)
    return create_model("vilt_tiny_p8", 5, vocab_size=VOCAB, max_text_len=TEXT_LEN, **TINY, **kw).eval()


@pytest.mark.parametrize("head", ["cls", "ifa"])
def test_vit_outputs(images, head):
    model = create_model("vit_tiny_p8", 5, head=head, num_tags=7, **TINY)
    out = model(images)
    assert out["logits"].shape == (2, 5)
    assert out["tag_logits"].shape == (2, 7)
    assert "aux_loss" not in out and "mlm_logits" not in out


def test_cnn_baselines(images):
    resnet = create_model("resnet18", 5, image_size=32)
    assert resnet(images)["logits"].shape == (2, 5)
    effnet = create_model("efficientnet_b0", 5, image_size=32, num_tags=3)
    with torch.no_grad():
        out = effnet.eval()(images)
    assert out["logits"].shape == (2, 5) and out["tag_logits"].shape == (2, 3)


def test_ifa_on_a_cnn_is_a_clear_error():
    with pytest.raises(ValueError, match="not a ViT"):
        create_model("resnet18", 5, head="ifa")


@pytest.mark.parametrize("call,match", [
    (dict(name="vilt_tiny_p8"), "vocab_size"),
    (dict(name="vit_tiny_p8", vocab_size=10), "image-only"),
    (dict(name="no_such_model"), "unknown model"),
    (dict(name="vit_tiny_p8", head="pool"), "head"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        create_model(num_classes=3, **{**TINY, **call})


def test_registry_names():
    names = list_models()
    for name in ["vit_tiny_p8", "vit_b16", "vit_b32", "vit_l16", "vit_l32", "resnet18", "resnet50",
                 "resnet152", "efficientnet_b0", "vilt_tiny_p8", "vilt_b16"]:
        assert name in names
    with torch.device("meta"):  # the paper's size, built without allocating 86M parameters
        paper = create_model("vit_b16", 10, image_size=224).backbone
    assert (paper.embed_dim, len(paper.blocks), paper.patch_embed.patch_size) == (768, 12, (16, 16))


def test_config_rebuilds_the_same_architecture():
    model = create_model("vilt_tiny_p8", 5, head="ifa", vocab_size=VOCAB, max_text_len=TEXT_LEN, num_tags=4,
                         exclusion_loss=dict(weight=0.1), **TINY)
    rebuilt = create_model(**model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_image_only_model_refuses_text(images, text):
    with pytest.raises(ValueError, match="image-only"):
        create_model("vit_tiny_p8", 5, **TINY)(images, *text)


def test_vilt_outputs_with_and_without_tags(images, text):
    model = _vilt(num_tags=6)
    with_tags = model(images, *text)
    assert with_tags["logits"].shape == (2, 5)
    assert with_tags["tag_logits"].shape == (2, 6)
    assert with_tags["mlm_logits"].shape == (2, TEXT_LEN, VOCAB)
    image_only = model(images)
    assert set(image_only) == {"logits", "tag_logits"}
    assert not torch.allclose(image_only["logits"], with_tags["logits"]), "tags must influence the prediction"


def test_image_only_equals_fully_masked_text(images, text):
    """What the `full` schedule trains for is exactly what input_ids=None computes."""
    model = _vilt()
    ids, mask = text
    fully_masked, _ = MaskSchedule("full").apply(ids, mask, 1.0, SPECIALS, MASK, VOCAB)
    torch.testing.assert_close(model(images, fully_masked, mask)["logits"], model(images)["logits"])
    some, _ = MaskSchedule("bert", mask_prob=0.5).apply(ids, mask, 0.0, SPECIALS, MASK, VOCAB,
                                                       torch.Generator().manual_seed(1))
    assert model(images, some, mask)["logits"].shape == (2, 5)  # some tags visible


def test_padding_is_ignored(images, text):
    model = _vilt()
    ids, mask = text
    garbage = torch.where(mask.bool(), ids, torch.full_like(ids, 17))  # real tokens under attention_mask 0
    torch.testing.assert_close(model(images, garbage, mask)["logits"], model(images, ids, mask)["logits"])


def test_mlm_head_is_tied_to_word_embeddings():
    model = _vilt()
    assert model.mlm_head.decoder.weight is model.word_embed.weight


def test_layer_cls_and_attention_maps(images, text):
    model = _vilt()
    assert model.forward_layer_cls(images, *text).shape == (2, 2, 32)
    maps = model.attention_maps(images, *text)
    n_image = 1 + 16  # [CLS] + 4x4 patches at 32 px, patch 8
    assert maps.shape == (2, 2, n_image + TEXT_LEN, n_image + TEXT_LEN)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, n_image + TEXT_LEN))
    assert (maps[:, :, :, n_image] == 0).all(), "the text [CLS] is hidden as a key"
    vit_maps = create_model("vit_tiny_p8", 5, **TINY).attention_maps(images)
    assert vit_maps.shape == (2, 2, n_image, n_image)


def test_mlm_loss_is_zero_not_nan_when_nothing_is_masked(images, text):
    model = _vilt()
    ids, mask = text
    out = model(images, ids, mask)
    total, parts = model.loss(out, {"label": torch.tensor([0, 1]), "mlm_labels": torch.full_like(ids, -100)})
    assert parts["mlm"].item() == 0.0 and torch.isfinite(total)


def _overfit(model, batch, forward, steps=8):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        total, _ = model.loss(forward(model), batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()


def test_vit_ifa_overfits_a_batch():
    torch.manual_seed(0)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    model = create_model("vit_tiny_p8", 4, head="ifa", exclusion_loss=dict(weight=0.1), **TINY)
    _overfit(model, {"label": labels}, lambda m: m(images))
    assert model.eval()(images)["logits"].argmax(dim=1).tolist() == [0, 1, 2, 3]  # the batch is learnt


def test_vilt_curriculum_model_overfits_a_batch(text):
    torch.manual_seed(0)
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    ids, mask = text
    masked, mlm_labels = MaskSchedule("full").apply(ids, mask, 1.0, SPECIALS, MASK, VOCAB)
    batch = {"label": labels, "mlm_labels": mlm_labels, "tag_targets": torch.tensor([[1., 0, 1], [0, 1, 0]])}
    model = create_model("vilt_tiny_p8", 2, head="ifa", num_tags=3, vocab_size=VOCAB, max_text_len=TEXT_LEN, **TINY)
    _overfit(model, batch, lambda m: m(images, masked, mask), steps=15)
    out = model.eval()(images, masked, mask)
    # every head learns the batch: the characters, the tags, and the tag tokens the schedule hid
    assert out["logits"].argmax(dim=1).tolist() == [0, 1]
    assert (out["tag_logits"] > 0).long().tolist() == [[1, 0, 1], [0, 1, 0]]
    assert out["mlm_logits"].argmax(dim=-1)[mlm_labels != -100].tolist() == [10, 11, 12, 20]
    _, parts = model.loss(out, batch)
    assert set(parts) == {"ce", "tags", "mlm"}
