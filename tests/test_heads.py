"""Heads and losses: the IFA head mixes every layer, the exclusion loss pushes layers apart, ASL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from animesion_lib.models import ClsHead, IFAHead, asymmetric_loss, create_model, layer_exclusion_loss

TINY = dict(image_size=32, embed_dim=32, depth=3, num_heads=2)


def test_ifa_gradient_reaches_every_layer():
    torch.manual_seed(0)
    model = create_model("vit_tiny_p8", 4, head="ifa", **TINY)
    out = model(torch.randn(2, 3, 32, 32))
    F.cross_entropy(out["logits"], torch.tensor([0, 3])).backward()
    mix = model.head.mix.weight
    assert mix.shape == (1, 3), "Linear(L, 1) over the L=3 layers"
    assert (mix.grad.abs() > 0).all(), "every layer's [CLS] must reach the classifier"
    for block in model.backbone.blocks:  # and through it, every block's parameters
        assert block.attn.qkv.weight.grad.abs().sum() > 0


def test_layer_cls_from_forward_intermediates_equals_running_blocks():
    torch.manual_seed(0)
    model = create_model("vit_tiny_p8", 4, head="ifa", **TINY).eval()
    images = torch.randn(2, 3, 32, 32)
    vit = model.backbone
    x = vit.norm_pre(vit._pos_embed(vit.patch_embed(images)))
    manual = []
    for block in vit.blocks:
        x = block(x)
        manual.append(vit.norm(x)[:, 0])
    layer_cls = model.forward_layer_cls(images)
    assert layer_cls.shape == (2, 3, 32)
    torch.testing.assert_close(layer_cls, torch.stack(manual, 1))
    # the last layer's [CLS] is what the plain head sees
    torch.testing.assert_close(layer_cls[:, -1], vit.forward_features(images)[:, 0])


def test_cls_head_reads_only_the_last_layer_and_ifa_reads_all():
    torch.manual_seed(0)
    layer_cls = torch.randn(2, 4, 8)
    changed = layer_cls.clone()
    changed[:, 0] += 1.0
    cls_head, ifa_head = ClsHead(8, 3), IFAHead(8, 4, 3)
    torch.testing.assert_close(cls_head(layer_cls), cls_head(changed))
    assert not torch.allclose(ifa_head(layer_cls), ifa_head(changed))


def test_exclusion_loss_is_highest_for_identical_layers():
    torch.manual_seed(0)
    same = torch.randn(4, 1, 16).expand(4, 5, 16)
    assert layer_exclusion_loss(same).item() == pytest.approx(1.0)


@pytest.mark.parametrize("temperature,expected", [
    (1.0, 3 ** 0.5 / 2),  # p = (1/2, 1/2), q = (3/4, 1/4): KL = ln(4/3) / 2
    (0.5, 3 / 5),  # q = (9/10, 1/10): KL = ln(25/9) / 2, sharper, so further apart
    (2.0, 2 * 3 ** 0.25 / (1 + 3 ** 0.5)),  # q = (√3, 1) / (1 + √3): softer, so closer
])
def test_exclusion_loss_by_hand(temperature, expected):
    """Two layers whose softened [CLS] are known distributions: the loss is exp(-KL) exactly."""
    layers = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0]]])
    assert layer_exclusion_loss(layers, temperature=temperature).item() == pytest.approx(expected, rel=1e-6)


def test_exclusion_loss_gradient_pushes_layers_apart():
    torch.manual_seed(0)
    tokens = (torch.randn(2, 1, 16) + 0.1 * torch.randn(2, 3, 16)).requires_grad_()

    def mean_kl(t):
        log_p = F.log_softmax(t, -1)
        return (log_p[:, :-1].exp() * (log_p[:, :-1] - log_p[:, 1:])).sum(-1).mean()

    before = mean_kl(tokens).item()
    layer_exclusion_loss(tokens).backward()
    with torch.no_grad():
        stepped = tokens - 1.0 * tokens.grad
    assert mean_kl(stepped).item() > before, "minimising the loss must increase the KL between layers"


def test_exclusion_loss_distance():
    a, b = [0.0, 0.0], [math.log(3), 0.0]
    tokens = torch.tensor([[a, b, a, b]])  # layers i and i+2 identical: distance 2 sees only that
    assert layer_exclusion_loss(tokens, distance=2).item() == pytest.approx(1.0)
    # distance 1 compares a->b, b->a, a->b: exp(-KL(a||b)) = √3/2, exp(-KL(b||a)) = 1.5^-0.75 · 2^0.25
    expected = (2 * 3 ** 0.5 / 2 + 1.5 ** -0.75 * 2 ** 0.25) / 3
    assert layer_exclusion_loss(tokens, distance=1).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="distance"):
        layer_exclusion_loss(tokens, distance=4)


def test_model_reports_weighted_exclusion_loss():
    torch.manual_seed(0)
    model = create_model("vit_tiny_p8", 4, exclusion_loss=dict(weight=0.5, temperature=2.0, distance=2), **TINY)
    images = torch.randn(2, 3, 32, 32)
    out = model(images)
    expected = 0.5 * layer_exclusion_loss(model.forward_layer_cls(images), 2.0, 2)
    torch.testing.assert_close(out["aux_loss"], expected)
    total, parts = model.loss(out, {"label": torch.tensor([1, 2])})
    torch.testing.assert_close(total, parts["ce"] + parts["exclusion"])


def test_asymmetric_loss_is_bce_without_focusing_and_clip():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 10) * 3, (torch.rand(6, 10) < 0.2).float()
    torch.testing.assert_close(asymmetric_loss(logits, targets, gamma_neg=0, gamma_pos=0, clip=0),
                               F.binary_cross_entropy_with_logits(logits, targets))


def test_asymmetric_loss_discounts_easy_negatives():
    logits = torch.full((1, 4), -3.0)  # confidently negative
    targets = torch.zeros(1, 4)
    p = 1 / (1 + math.exp(3))  # σ(-3) = 0.047
    bce = -math.log(1 - p)
    assert F.binary_cross_entropy_with_logits(logits, targets).item() == pytest.approx(bce)
    # no margin: the negative's loss is scaled by p^γ- (γ- = 4), 2e-5 of its BCE
    assert asymmetric_loss(logits, targets, clip=0.0).item() == pytest.approx(p ** 4 * bce, rel=1e-5)
    assert asymmetric_loss(logits, targets).item() == 0.0, "p < clip (0.05): the negative is dropped"


def test_tag_loss_kind_in_model():
    torch.manual_seed(0)
    model = create_model("vit_tiny_p8", 4, num_tags=6, tag_loss="asl", asl=dict(gamma_neg=2, clip=0.0), **TINY)
    out = model(torch.randn(2, 3, 32, 32))
    targets = (torch.rand(2, 6) < 0.3).float()
    _, parts = model.loss(out, {"label": torch.tensor([0, 1]), "tag_targets": targets})
    torch.testing.assert_close(parts["tags"], asymmetric_loss(out["tag_logits"], targets, gamma_neg=2, clip=0.0).detach())
