"""Device decisions of a run, checked on the CPU by standing in for what only a GPU machine has."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from animesion_lib import device as dev
from animesion_lib.train import TrainConfig, build_model, has_unused_parameters, wrap_model


def test_bf16_is_chosen_only_where_the_gpu_has_it_natively(monkeypatch):
    asked = {}

    def is_bf16_supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return including_emulation  # a Turing/Volta GPU: bf16 only by emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert dev.select_precision(torch.device("cuda")) == "fp16"  # fp16 + GradScaler, not slow bf16
    assert asked == {"including_emulation": False}
    assert dev.select_precision(torch.device("cpu")) == "fp32"
    assert dev.select_precision(torch.device("cuda"), "bf16") == "bf16"


def test_the_process_group_gets_the_configured_timeout_and_is_torn_down(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(calls) and calls[-1][0] == "init")
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(("init", kw)))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append(("destroy", {})))
    with pytest.raises(RuntimeError, match="boom"):
        with dev.distributed_session("cpu", timeout_minutes=90) as (ctx, device):
            assert ctx.enabled and ctx.rank == 1 and device == torch.device("cpu")
            raise RuntimeError("boom")
    assert calls == [("init", {"backend": "gloo", "timeout": timedelta(minutes=90)}), ("destroy", {})]


def test_numerics_are_stated():
    assert dev.set_numerics(torch.device("cpu"), deterministic=False) == {"tf32": False, "deterministic": False}
    try:
        assert dev.set_numerics(torch.device("cpu"), deterministic=True)["deterministic"] is True
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        dev.set_numerics(torch.device("cpu"), deterministic=False)


@pytest.fixture
def one_rank_group(tmp_path):
    """A real one-process gloo group, so that DDP can be built in this process."""
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    yield dev.DistributedContext(enabled=True, rank=0, local_rank=0, world_size=1, local_world_size=1)
    dist.destroy_process_group()


def test_compile_wraps_the_ddp_module_not_the_other_way_round(one_rank_group, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)
    model = torch.nn.Linear(3, 2)
    trained, ddp = wrap_model(model, TrainConfig(compile=True), one_rank_group, torch.device("cpu"))
    assert isinstance(ddp, torch.nn.parallel.DistributedDataParallel) and ddp.module is model
    assert compiled == [ddp] and trained is ddp  # compile(DDP(model)): all-reduce overlaps backward
    assert dev.agree(one_rank_group, ("rank 0's", 1)) == ("rank 0's", 1)


def test_unused_parameters_are_declared_for_vilt_without_masking():
    vilt = torch.nn.Module()
    vilt.mlm_head = torch.nn.Linear(2, 2)
    assert has_unused_parameters(vilt, TrainConfig(mask_schedule="none"))
    assert not has_unused_parameters(vilt, TrainConfig(mask_schedule="cosine"))
    assert not has_unused_parameters(torch.nn.Linear(2, 2), TrainConfig())


def test_cnns_get_synchronised_batchnorm_under_ddp_on_gpus(monkeypatch):
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **kw: self)  # no GPU here: stay put
    ddp = dev.DistributedContext(enabled=True, rank=0, local_rank=0, world_size=2, local_world_size=2)
    cfg = TrainConfig(model="resnet18", image_size=32)
    model = build_model(cfg, ddp, torch.device("cuda"), 4, None, None)
    norms = [type(m) for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and set(norms) == {torch.nn.SyncBatchNorm}
    single = build_model(cfg, dev.distributed_context(), torch.device("cuda"), 4, None, None)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in single.modules())
