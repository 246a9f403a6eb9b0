"""The CUDA paths, on a GPU: run by ``benchmarks/gpu_check.sh`` (``pytest -m cuda -v``).

On a machine without a GPU every test here skips with the reason. Devices are pinned ("cuda"),
never "auto". Where exactness holds it is asserted; where a GPU kernel has no deterministic
version, the tolerance is stated beside the assertion.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from animesion_lib import checkpoint as ckpt
from animesion_lib.train import TrainConfig, train
from train_fixtures import write_tiny_dataset

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA not available)")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out_dir=str(out), model="vit_micro_p8", model_kwargs={"depth": 2},
                image_size=32, epochs=2, batch_size=8, lr=3e-3, progress=False, device="cuda", num_workers=0)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_resume_after_an_interrupt_continues_the_run(tiny, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16")
    straight = train(_cfg(tiny, tmp_path, precision=precision, deterministic=True, keep_checkpoints=0))
    state = ckpt.load_training_state(ckpt.latest_checkpoint(tmp_path))
    assert state["rng"]["cuda"].device.type == "cpu"  # the state is loaded onto the CPU
    shutil.rmtree(ckpt.latest_checkpoint(tmp_path))  # as if killed during epoch 2
    resumed = train(_cfg(tiny, tmp_path, precision=precision, deterministic=True, resume=True))
    assert resumed["device"]["precision"] == precision and resumed["device"]["deterministic"]
    # deterministic kernels: equal but for the few ops PyTorch has no deterministic CUDA version of
    assert resumed["step_losses"] == pytest.approx(straight["step_losses"][4:], rel=1e-5)
    assert resumed["metrics"]["val_loss"] == pytest.approx(straight["metrics"]["val_loss"], rel=1e-5)


def test_autocast_dtype_and_fused_adamw():
    from animesion_lib.device import autocast, select_precision
    from animesion_lib.train import build_optimizer

    device = torch.device("cuda")
    precision = select_precision(device)
    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    assert precision == ("bf16" if native_bf16 else "fp16")
    layer = torch.nn.Linear(8, 8).to(device)
    with autocast(device, precision):
        out = layer(torch.randn(2, 8, device=device))
    assert out.dtype == (torch.bfloat16 if precision == "bf16" else torch.float16)
    optimizer = build_optimizer(layer, TrainConfig(), device)
    assert optimizer.defaults["fused"] is True


def test_channels_last_cnn_trains(tiny, tmp_path):
    from animesion_lib.device import distributed_context
    from animesion_lib.train import build_model

    model = build_model(_cfg(tiny, tmp_path, model="resnet18", model_kwargs={}), distributed_context(),
                        torch.device("cuda"), 4, None, None)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    summary = train(_cfg(tiny, tmp_path / "run", model="resnet18", model_kwargs={}, epochs=1))
    assert all(torch.isfinite(torch.tensor(summary["step_losses"])))


def test_vilt_attention_runs_on_fused_kernels_and_matches_the_explicit_path(monkeypatch):
    import timm.layers
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from animesion_lib.models import create_model

    # full fp32 matmuls in the explicit path (an earlier run may have switched TF32 on)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)

    def build(fused: bool):
        timm.layers.set_fused_attn(fused)
        torch.manual_seed(0)
        return create_model("vilt_micro_p8", num_classes=4, image_size=32, vocab_size=50,
                            max_text_len=8).cuda().eval()

    try:
        fused, explicit = build(True), build(False)
    finally:
        timm.layers.set_fused_attn(True)
    images = torch.randn(4, 3, 32, 32, device="cuda")
    ids = torch.randint(5, 50, (4, 8), device="cuda")
    mask = torch.ones(4, 8, dtype=torch.long, device="cuda")
    mask[:, 5:] = 0  # padding: the key mask is in play
    with torch.no_grad(), sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                       SDPBackend.CUDNN_ATTENTION]):  # no math fallback
        a = fused(images, input_ids=ids, attention_mask=mask)["logits"]
    with torch.no_grad():
        b = explicit(images, input_ids=ids, attention_mask=mask)["logits"]
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)  # fp32: kernels sum in another order


def test_compiled_training_compiles_once(tiny, tmp_path, monkeypatch):
    import torch._dynamo.config
    from torch._dynamo.utils import counters

    torch.compiler.reset()
    counters.clear()
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)  # a recompile fails the run
    summary = train(_cfg(tiny, tmp_path, compile=True, epochs=2))
    graphs = counters["stats"]["unique_graphs"]
    print(f"compiled graphs: {graphs}, frames ok: {counters['frames']['ok']}, "
          f"cache misses: {counters['dynamo_cache']['dynamo_cache_miss']}")
    assert all(torch.isfinite(torch.tensor(summary["step_losses"])))
    assert 1 <= graphs <= 4  # the forward (+ a graph break or two), compiled once for every step and epoch


def test_ddp_over_nccl_on_one_rank_matches_the_plain_model(tmp_path):
    import torch.distributed as dist

    from animesion_lib.device import DistributedContext
    from animesion_lib.train import wrap_model

    dist.init_process_group("nccl", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).cuda()
        plain = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).cuda()
        plain.load_state_dict(model.state_dict())
        ctx = DistributedContext(enabled=True, rank=0, local_rank=0, world_size=1, local_world_size=1)
        trained, ddp = wrap_model(model, TrainConfig(), ctx, torch.device("cuda", 0))
        x = torch.randn(8, 16, device="cuda")
        with ddp.no_sync():  # grad accumulation: the first micro-step does not all-reduce
            trained(x[:4]).sum().backward()
        trained(x[4:]).sum().backward()
        plain(x).sum().backward()
        for a, b in zip(model.parameters(), plain.parameters()):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)  # summed in two halves
    finally:
        dist.destroy_process_group()


def _ddp_worker(rank: int, port: int, data: str, root: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    summary = train(_cfg(Path(data), Path(root, "ddp"), batch_size=4, transform="plain", grad_accum=2,
                         cache=True, augment_on="batch"))
    Path(root, f"rank{rank}.json").write_text(json.dumps(summary, default=str))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_ddp_over_nccl_on_two_gpus(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMESION_CACHE_DIR", str(tmp_path / "cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(tiny), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["device"]["world_size"] == 2
    assert ranks[0]["step_losses"] == ranks[1]["step_losses"]  # all-reduced: the same numbers on every rank


def test_no_host_sync_inside_a_training_step(tiny, tmp_path):
    """ViLT with tags, text masking, batch augmentation and bf16/fp16: a step never waits for the GPU."""
    from animesion_lib.device import distributed_context
    from animesion_lib.train import optimizer_step, prepare

    cfg = _cfg(tiny, tmp_path, model="vilt_micro_p8", predict_tags=True, mask_schedule="bert",
               augment_on="batch", grad_clip=1.0, batch_size=4)
    run = prepare(cfg, distributed_context(), torch.device("cuda"))
    if run.precision == "fp16":
        pytest.skip("fp16: GradScaler.step reads found_inf on the host by design")
    run.model.train()
    generators = {"mask": torch.Generator(device="cuda").manual_seed(0), "augment": torch.Generator().manual_seed(0)}
    correct = torch.zeros((), dtype=torch.int64, device="cuda")
    batches = iter(run.data.loader)
    optimizer_step(run, batches, generators, correct)  # warm-up: lazy initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            optimizer_step(run, batches, generators, correct)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_workers_pinned_memory_and_the_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMESION_CACHE_DIR", str(tmp_path / "cache"))
    summary = train(_cfg(tiny, tmp_path / "run", num_workers=2, cache=True, epochs=1))
    assert summary["device"]["augment_on"] == "batch"  # the default on a GPU
    assert all(torch.isfinite(torch.tensor(summary["step_losses"])))
    assert list((tmp_path / "cache").iterdir())  # the decoded cache was built and used


def test_batch_augmentation_on_the_gpu_draws_what_the_cpu_draws():
    from animesion_lib.data.batch_augment import BatchAugment

    aug = BatchAugment("animesion", 64)
    images = torch.randint(0, 256, (16, aug.side, aug.side, 3), dtype=torch.uint8)
    cpu = aug(images, torch.Generator().manual_seed(3))
    gpu = aug(images.cuda(), torch.Generator().manual_seed(3))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)  # same draws; float rounding only
