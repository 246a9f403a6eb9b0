"""DDP on the CPU (gloo, two processes): the same loop as torchrun runs, the same loss curve.

Each process gets the variables torchrun would set (RANK, WORLD_SIZE, MASTER_ADDR/PORT on
127.0.0.1 with a free port) and calls the ordinary ``train()``. Two processes with batch 4 see
together exactly the global batches of one process with batch 8, so the per-step losses agree up
to floating-point summation order.
"""

from __future__ import annotations

import json
import os
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


def _config(data: Path, out: Path, batch_size: int):
    from animesion_lib.train import TrainConfig

    # plain transform: random augmentations would differ between one and two processes
    return TrainConfig(data=str(data), out_dir=str(out), model="vit_micro_p8", model_kwargs={"depth": 2},
                       image_size=32, epochs=2, batch_size=batch_size, lr=3e-3, transform="plain",
                       threads=1, progress=False)


def _worker(rank: int, world_size: int, port: int, data: str, out: str, result_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
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
