"""The transfer regime: a source universe disjoint from the target, pretrained once, fine-tuned from."""

import json

import pytest
from safetensors.torch import load_file

from animesion_lib import pretraining
from animesion_lib.config import TrainConfig
from animesion_lib.data.synthetic import SyntheticConfig, character_looks, make_characters, make_synthetic
from animesion_lib.pretraining import SourceUniverse, pretrain, provenance, source_dataset

pytestmark = pytest.mark.slow
UNIVERSE = SourceUniverse(classes=14, images=320, seed=7)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("target")
    make_synthetic(root, SyntheticConfig.from_profile("smoke", progress=False, card=False))
    return root


def small_config(tmp_path, **kw):
    settings = dict(model="vit_micro_p8", model_kwargs={"embed_dim": 32, "depth": 2, "num_heads": 2},
                    image_size=32, epochs=1, batch_size=32, transform="plain", threads=1, device="cpu",
                    progress=False, results_dir=str(tmp_path / "results"), profile="smoke")
    return TrainConfig(**{**settings, **kw})


def test_excluded_looks_never_occur():
    target = make_characters(30, seed=3, twin_fraction=0.5)
    looks = {e.look for e in target}
    again = make_characters(30, seed=3, twin_fraction=0.5, exclude=looks)   # same seed: would repeat them all
    assert len(again) == 30
    assert not looks & {e.look for e in again}


def test_source_universe_is_disjoint_from_the_target_and_cached(target, tmp_path):
    source = source_dataset(target, UNIVERSE, cache_dir=tmp_path, progress=False)
    target_looks, source_looks = character_looks(target), character_looks(source)
    assert len(source_looks) == 14 and len(target_looks) == 12
    assert not target_looks & source_looks
    stamp = (source / "generator.json").stat().st_mtime_ns
    assert source_dataset(target, UNIVERSE, cache_dir=tmp_path, progress=False) == source
    assert (source / "generator.json").stat().st_mtime_ns == stamp   # reused, not regenerated


def test_pretrain_once_then_reuse_and_cite(target, tmp_path, monkeypatch):
    cfg = small_config(tmp_path, experiment="pretraining-vit")
    weights = pretrain(target, cfg, UNIVERSE, cache_dir=tmp_path / "cache")
    tensors = load_file(str(weights))
    assert tensors and all(k.startswith("backbone.") for k in tensors)
    record = json.loads((tmp_path / "results" / "smoke" / "pretraining-vit.json").read_text())
    assert record["config"]["data"] == str(source_dataset(target, UNIVERSE, tmp_path / "cache"))

    (tmp_path / "results" / "smoke" / "pretraining-vit.json").unlink()
    monkeypatch.setattr("animesion_lib.train.train", lambda *a, **k: pytest.fail("retrained a cached backbone"))
    assert pretrain(target, cfg, UNIVERSE, cache_dir=tmp_path / "cache") == weights
    assert (tmp_path / "results" / "smoke" / "pretraining-vit.json").is_file()  # the record comes back

    cited = provenance(weights)
    assert cited["universe"] == {"classes": 14, "images": 320, "seed": 7, "min_per_class": 20}
    assert cited["pretraining_experiment"] == "pretraining-vit"
    assert len(cited["weights_sha256"]) == 64
    assert provenance(tmp_path / "elsewhere.safetensors") is None


def test_another_training_config_is_another_cache_entry(target, tmp_path):
    a = pretraining._training_key(small_config(tmp_path), "fp")
    assert a == pretraining._training_key(small_config(tmp_path, threads=2, progress=True), "fp")
    assert a != pretraining._training_key(small_config(tmp_path, lr=3e-4), "fp")
    assert a != pretraining._training_key(small_config(tmp_path), "other source")


def test_fine_tuning_starts_from_the_pretrained_backbone(target, tmp_path):
    import torch

    from animesion_lib.models import create_model
    from animesion_lib.models.pretrained import load_pretrained

    weights = pretrain(target, small_config(tmp_path), UNIVERSE, cache_dir=tmp_path / "cache")
    model = create_model("vit_micro_p8", num_classes=12, image_size=32, head="ifa",
                         embed_dim=32, depth=2, num_heads=2)
    report = load_pretrained(model, weights)
    assert all(k.startswith("head.") for k in report.missing)   # only the new head starts fresh
    saved = load_file(str(weights))
    assert torch.equal(model.state_dict()["backbone.blocks.0.attn.qkv.weight"], saved["backbone.blocks.0.attn.qkv.weight"])


def test_target_not_made_by_the_generator_is_refused(tmp_path):
    from animesion_lib.errors import AnimesionError

    with pytest.raises(AnimesionError, match="characters.json: not found"):
        source_dataset(tmp_path, UNIVERSE, cache_dir=tmp_path)
