"""DDP on the CPU (gloo, two processes): the same loop as torchrun runs, the same loss curve.

Each process gets the variables torchrun would set (RANK, WORLD_SIZE, MASTER_ADDR/PORT on
127.0.0.1 with a free port) and calls the ordinary ``train()``. Two processes with batch 4 see
together exactly the global batches of one process with batch 8, so the per-step losses agree up
to floating-point summation order. Devices are pinned to the CPU: on a GPU machine "auto" would
ask each rank for its own GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from train_fixtures import write_tiny_dataset

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(data: Path, out: Path, batch_size: int, **kw):
    from animesion_lib.train import TrainConfig

    # plain transform: random augmentations would differ between one and two processes
    base = dict(data=str(data), out_dir=str(out), model="vit_micro_p8", model_kwargs={"depth": 2},
                image_size=32, epochs=2, batch_size=batch_size, lr=3e-3, transform="plain",
                threads=1, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def _set_rank(rank: int, world_size: int, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _worker(rank: int, world_size: int, port: int, data: str, out: str, result_dir: str) -> None:
    _set_rank(rank, world_size, port)
    from animesion_lib.train import train

    summary = train(_config(Path(data), Path(out), batch_size=4))
    Path(result_dir, f"rank{rank}.json").write_text(json.dumps(summary, default=str))


def test_two_gloo_processes_match_one_process(tmp_path):
    from animesion_lib.checkpoint import list_checkpoints
    from animesion_lib.train import train

    data = write_tiny_dataset(tmp_path / "data")
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(tmp_path / "ddp"), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    single = train(_config(data, tmp_path / "single", batch_size=8))

    assert ranks[0]["device"]["world_size"] == 2
    assert ranks[0]["steps"] == single["steps"] == 8
    # every rank logs the same all-reduced loss; it matches the single process within float noise
    assert ranks[0]["step_losses"] == pytest.approx(ranks[1]["step_losses"], rel=1e-6)
    assert ranks[0]["step_losses"] == pytest.approx(single["step_losses"], rel=1e-4, abs=1e-5)
    assert ranks[0]["metrics"]["val_loss"] == pytest.approx(single["metrics"]["val_loss"], rel=1e-3)
    # only rank 0 evaluates and checkpoints
    assert "val_loss" in ranks[0]["metrics"] and "val_loss" not in ranks[1]["metrics"]
    assert [p.name for p in list_checkpoints(tmp_path / "ddp")] == ["epoch_0001", "epoch_0002"]


# (name, model, extra config): ViLT without masking leaves its masked-tag head unused (DDP must
# be told); IFA reads every layer; ResNet-18 has batch norms.
MODELS = [
    ("vilt", "vilt_micro_p8", {"mask_schedule": "none", "predict_tags": True, "eval_text_modes": "tags"}),
    ("ifa", "vit_micro_p8", {"head": "ifa", "augment_on": "batch"}),
    ("resnet18", "resnet18", {"model_kwargs": {}}),
]


def _models_worker(rank: int, ports: list[int], data: str, root: str) -> None:
    """Three models with grad_accum=2 and the image cache, then a resume that only rank 0 can see."""
    from animesion_lib import checkpoint as ckpt
    from animesion_lib.data import cache as cache_module
    from animesion_lib.train import train

    real_build = cache_module.DecodedImageCache.open_or_build.__func__
    found_built = []  # per cache opened by this rank: did it exist already?

    def spy(cls, count, load, *, key, cache_dir=None, **kw):
        found_built.append((Path(cache_dir or cache_module.default_cache_dir()) / key / "meta.json").is_file())
        return real_build(cls, count, load, key=key, cache_dir=cache_dir, **kw)

    cache_module.DecodedImageCache.open_or_build = classmethod(spy)
    results = {}
    for (name, model, extra), port in zip(MODELS, ports):
        _set_rank(rank, 2, port)
        os.environ["ANIMESION_CACHE_DIR"] = str(Path(root, "cache", name))
        found_built.clear()
        summary = train(_config(Path(data), Path(root, name), batch_size=4, model=model, grad_accum=2, epochs=1,
                                cache=True, **extra))
        results[name] = {"step_losses": summary["step_losses"], "found_built": list(found_built)}
    if rank == 1:  # a node whose filesystem shows no checkpoint: it must follow rank 0's choice
        ckpt.latest_checkpoint = lambda run_dir: None
        ckpt.list_checkpoints = lambda run_dir: []
    _set_rank(rank, 2, ports[-1])
    summary = train(_config(Path(data), Path(root, "resumed"), batch_size=4, resume=True))
    results["resumed"] = {"step_losses": summary["step_losses"], "epochs": len(summary["curves"])}
    Path(root, f"rank{rank}.json").write_text(json.dumps(results))


def test_grad_accum_over_vilt_ifa_resnet_cache_built_once_and_rank_0_picks_the_checkpoint(tmp_path):
    from animesion_lib import checkpoint as ckpt
    from animesion_lib.train import train

    data = write_tiny_dataset(tmp_path / "data")
    single = train(_config(data, tmp_path / "resumed", batch_size=8, keep_checkpoints=0))
    shutil.rmtree(ckpt.latest_checkpoint(tmp_path / "resumed"))  # as if killed during epoch 2
    ports = [_free_port() for _ in range(len(MODELS) + 1)]
    mp.spawn(_models_worker, args=(ports, str(data), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    for name, _, _ in MODELS:
        losses = [r[name]["step_losses"] for r in ranks]
        assert len(losses[0]) == 2 and losses[0] == pytest.approx(losses[1], rel=1e-6), name  # 32 / (4 x 2 x 2)
        assert ranks[0][name]["found_built"][0] is False  # rank 0 built the training cache ...
        assert ranks[1][name]["found_built"] == [True], name  # ... rank 1 waited and opened it
    # rank 1 saw no checkpoint but resumed from rank 0's epoch 1, as one process would have
    for r in ranks:
        assert r["resumed"]["epochs"] == 2 and len(r["resumed"]["step_losses"]) == 4
    assert ranks[0]["resumed"]["step_losses"] == pytest.approx(single["step_losses"][4:], rel=1e-4, abs=1e-5)
