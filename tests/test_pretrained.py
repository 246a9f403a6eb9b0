"""Weights: local pretrained files (resized, classifier skipped, reported) and exact checkpoints."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from animesion_lib.errors import CheckpointError
from animesion_lib.models import create_model, load_model_weights, load_pretrained, read_state_dict

TINY = dict(embed_dim=32, depth=2, num_heads=2)


@pytest.fixture
def timm_vit_file(tmp_path):
    """A plain timm ViT (patch 8) trained at 32 px with a 10-class head, saved as safetensors."""
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", patch_size=8, img_size=32, num_classes=10, **TINY)
    path = tmp_path / "vit32.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    return path, vit.state_dict()


def test_timm_file_into_larger_image_size(timm_vit_file):
    path, source = timm_vit_file
    model = create_model("vit_tiny_p8", 5, image_size=64, head="ifa", pretrained_path=str(path), **TINY)
    report = model.load_report
    own = model.state_dict()
    # 4x4 grid -> 8x8 grid, through timm's resample_abs_pos_embed
    assert own["backbone.pos_embed"].shape == (1, 65, 32)
    expected = resample_abs_pos_embed(source["pos_embed"], new_size=(8, 8), num_prefix_tokens=1)
    torch.testing.assert_close(own["backbone.pos_embed"], expected)
    torch.testing.assert_close(own["backbone.blocks.1.attn.qkv.weight"], source["blocks.1.attn.qkv.weight"])
    assert set(report.skipped) == {"backbone.head.weight", "backbone.head.bias"}, "timm's 10-class head"
    assert "head.fc.weight" in report.missing and "head.mix.weight" in report.missing, "our new head"
    assert not any(k.startswith("backbone.") for k in report.missing)
    assert report.unexpected == []
    assert model(torch.randn(1, 3, 64, 64))["logits"].shape == (1, 5)


def test_own_model_file_with_other_class_count(tmp_path):
    torch.manual_seed(0)
    source = create_model("vit_tiny_p8", 14, image_size=32, **TINY)
    path = tmp_path / "ours.pth"
    state = source.state_dict()
    state["extra.weight"] = torch.zeros(3)
    torch.save({"model": state}, path)
    model = create_model("vit_tiny_p8", 100, image_size=32, **TINY)
    report = load_pretrained(model, path)
    assert set(report.skipped) == {"head.fc.weight", "head.fc.bias"}
    assert report.missing == ["head.fc.weight", "head.fc.bias"]
    assert report.unexpected == ["extra.weight"]
    torch.testing.assert_close(model.backbone.pos_embed, source.backbone.pos_embed)


def test_pretrained_with_other_width_is_an_error(timm_vit_file):
    path, _ = timm_vit_file
    with pytest.raises(CheckpointError, match="do not fit.*file \\(.*32.*\\) vs model \\(.*48"):
        create_model("vit_tiny_p8", 5, image_size=32, embed_dim=48, depth=2, num_heads=2, pretrained_path=str(path))


def test_pickles_and_bad_files_are_refused(tmp_path):
    pickled = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "obj": tmp_path}, pickled)  # a Path needs full unpickling
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(pickled)
    with pytest.raises(CheckpointError, match="no such"):
        read_state_dict(tmp_path / "missing.safetensors")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown weights format"):
        read_state_dict(tmp_path / "w.npz")


def test_checkpoint_round_trip_with_wrapper_prefixes():
    torch.manual_seed(0)
    model = create_model("vit_tiny_p8", 4, image_size=32, head="ifa", **TINY).eval()
    state = {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}  # DDP + compile
    fresh = create_model(**model.config).eval()
    load_model_weights(fresh, state, config=model.config)
    images = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(fresh(images)["logits"], model(images)["logits"])


def test_checkpoint_with_wrong_class_count():
    source = create_model("vit_small_p8", 14, image_size=32, **TINY)
    target = create_model("vit_tiny_p8", 100, image_size=32, **TINY)
    with pytest.raises(CheckpointError) as err:
        load_model_weights(target, source.state_dict(), config=source.config)
    assert "checkpoint was made for vit_small_p8 with 14 classes; this model is vit_tiny_p8 with 100 classes" \
        in str(err.value)
    with pytest.raises(CheckpointError, match="checkpoint has 14 outputs in head.fc.weight, this model has 100"):
        load_model_weights(target, source.state_dict())  # no config stored: found from the shapes


def test_checkpoint_from_another_architecture():
    source = create_model("resnet18", 4, image_size=32)
    target = create_model("vit_tiny_p8", 4, image_size=32, **TINY)
    with pytest.raises(CheckpointError, match="missing from checkpoint .*backbone.cls_token"):
        load_model_weights(target, source.state_dict())
    deeper = create_model("vit_tiny_p8", 4, image_size=32, head="ifa", embed_dim=32, depth=3, num_heads=2)
    shallow = create_model("vit_tiny_p8", 4, image_size=32, head="ifa", **TINY)
    with pytest.raises(CheckpointError, match=r"head.mix.weight: checkpoint \(1, 3\) vs model \(1, 2\)"):
        load_model_weights(shallow, deeper.state_dict())
    report = load_model_weights(shallow, {k: v for k, v in shallow.state_dict().items() if "head" not in k},
                                strict=False)
    assert "head.fc.weight" in report.missing
