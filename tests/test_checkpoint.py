"""Checkpoints: atomic, safe to load, and refused by a model they do not fit."""

from __future__ import annotations

import json

import pytest
import torch

from animesion_lib import checkpoint as ckpt
from animesion_lib.errors import CheckpointError
from animesion_lib.models import create_model


def _model(classes=4, **kw):
    torch.manual_seed(0)
    return create_model("vit_micro_p8", num_classes=classes, image_size=32, depth=1, **kw)


def test_save_and_load_round_trip(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 3, 32, 32))["logits"].sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "epoch": 1, "step": 7, "rng": ckpt.rng_state()}
    path = ckpt.save_checkpoint(tmp_path / "checkpoints" / "epoch_0001", model, {"classes": list("abcd")}, state)
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.safetensors", "training_state.pt"]
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary left behind

    loaded, meta = ckpt.load_model(tmp_path)  # a run directory resolves to its newest checkpoint
    assert meta["classes"] == list("abcd")
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    restored = ckpt.load_training_state(path)
    assert restored["step"] == 7
    assert torch.equal(restored["rng"]["torch"], state["rng"]["torch"])
    fresh = torch.optim.AdamW(loaded.parameters())
    fresh.load_state_dict(restored["optimizer"])  # the saved state fits a freshly built optimizer


def test_rng_state_round_trip():
    import random

    import numpy as np

    state = ckpt.rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    ckpt.set_rng_state(state)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]


def test_other_class_count_or_model_is_refused(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "c", _model(classes=4), {})
    with pytest.raises(CheckpointError, match="num_classes"):
        ckpt.load_weights(path, _model(classes=5))
    with pytest.raises(CheckpointError, match="head"):
        ckpt.load_weights(path, _model(classes=4, head="ifa"))
    # a model without a config (plain module) is still checked tensor by tensor
    other = torch.nn.Linear(3, 3)
    with pytest.raises(CheckpointError):
        ckpt.load_weights(path, other)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        ckpt.resolve_checkpoint(tmp_path)
    path = ckpt.save_checkpoint(tmp_path / "c", _model(), {})
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        ckpt.load_weights(path, _model())
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps(dict(meta, format="something-else")))
    with pytest.raises(CheckpointError, match="format"):
        ckpt.load_meta(path)


def test_training_state_is_loaded_without_pickle(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "c", _model(), {}, {"epoch": 1})

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"epoch": Evil()}, path / "training_state.pt")
    with pytest.raises(CheckpointError, match="training_state.pt"):
        ckpt.load_training_state(path)


def test_overwrite_and_prune(tmp_path):
    for epoch in (1, 2, 3):
        ckpt.save_checkpoint(tmp_path / "checkpoints" / ckpt.checkpoint_name(epoch), _model(), {"epoch": epoch})
    ckpt.save_checkpoint(tmp_path / "checkpoints" / ckpt.checkpoint_name(3), _model(), {"epoch": 33})
    assert ckpt.load_meta(tmp_path)["epoch"] == 33
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["epoch_0002", "epoch_0003"]
    # an unfinished (temporary) directory is never taken for a checkpoint
    (tmp_path / "checkpoints" / ".epoch_0004.tmp-1").mkdir()
    (tmp_path / "checkpoints" / "epoch_0005").mkdir()  # no meta.json: half-made by hand
    assert ckpt.latest_checkpoint(tmp_path).name == "epoch_0003"


def test_find_checkpoint_prefers_named_runs_and_asks_the_caller(tmp_path):
    model = _model()
    for run, epochs, data in (("alpha-1", 2, "x"), ("beta-1", 1, "y"), ("beta-2", 1, "x")):
        for epoch in range(1, epochs + 1):
            ckpt.save_checkpoint(tmp_path / run / "checkpoints" / ckpt.checkpoint_name(epoch), model,
                                 {"classes": list("abcd"), "data_fingerprint": data})
    (tmp_path / "empty-run").mkdir()
    on_x = lambda c: ckpt.load_meta(c)["data_fingerprint"] == "x"  # noqa: E731
    assert ckpt.find_checkpoint(tmp_path, on_x).parent.parent.name == "alpha-1"
    assert ckpt.find_checkpoint(tmp_path, on_x).name == "epoch_0002"  # the run's newest
    assert ckpt.find_checkpoint(tmp_path, on_x, prefer=["beta"]).parent.parent.name == "beta-2"
    assert ckpt.find_checkpoint(tmp_path, lambda c: False) is None
    assert ckpt.find_checkpoint(tmp_path / "absent") is None


def test_a_damaged_file_is_named_and_an_old_checkpoint_without_hashes_still_loads(tmp_path):
    model = _model()
    path = ckpt.save_checkpoint(tmp_path / "c", model, {}, {"epoch": 1})
    meta = json.loads((path / "meta.json").read_text())
    assert sorted(meta["sha256"]) == ["model.safetensors", "training_state.pt"]
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # silent corruption: the header still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: damaged"):
        ckpt.load_weights(path, _model())
    with pytest.raises(CheckpointError, match=r"model\.safetensors: damaged"):
        ckpt.load_model(path)
    # a checkpoint written before hashes were recorded loads unchecked (here: the damaged bytes too)
    del meta["sha256"]
    (path / "meta.json").write_text(json.dumps(meta))
    ckpt.load_weights(path, _model())
    assert ckpt.load_training_state(path)["epoch"] == 1


def test_training_state_always_loads_onto_the_cpu(tmp_path):
    state = {"epoch": 1, "rng": ckpt.rng_state(), "t": torch.ones(2)}
    path = ckpt.save_checkpoint(tmp_path / "c", _model(), {}, state)
    loaded = ckpt.load_training_state(path)
    assert loaded["t"].device.type == "cpu" and loaded["rng"]["torch"].device.type == "cpu"
    ckpt.set_rng_state(loaded["rng"])


class _FakeCuda:
    """Stands in for torch.cuda on a machine with ``count`` GPUs, this process on GPU ``current``."""

    def __init__(self, current: int, count: int):
        self.current, self.count, self.restored = current, count, []

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": torch.full((4,), self.current, dtype=torch.uint8))
        monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": self.restored.append(state))
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("restored every GPU"))


def test_only_this_processs_gpu_rng_state_is_saved_and_restored(monkeypatch):
    fake = _FakeCuda(current=1, count=2)
    fake.install(monkeypatch)
    state = ckpt.rng_state()
    assert torch.equal(state["cuda"], torch.full((4,), 1, dtype=torch.uint8))  # one GPU's, not a list
    ckpt.set_rng_state(state)
    assert len(fake.restored) == 1 and torch.equal(fake.restored[0], state["cuda"])
    # an older checkpoint holds every GPU of an 8-GPU machine: take this process's GPU's state only
    fake.restored.clear()
    ckpt.set_rng_state(dict(state, cuda=[torch.full((4,), g, dtype=torch.uint8) for g in range(8)]))
    assert torch.equal(fake.restored[0], torch.full((4,), 1, dtype=torch.uint8))
    # ... and a machine with fewer GPUs than the saved list does not fail
    fake.current, fake.restored[:] = 5, []
    ckpt.set_rng_state(dict(state, cuda=[torch.zeros(4, dtype=torch.uint8)] * 2))
    assert fake.restored == []
