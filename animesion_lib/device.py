"""Where and how a run computes: device, numeric precision, CPU threads, distributed ranks.

One decision per function, each a few lines, so that the training loop can say
``device = select_device(cfg.device)`` and a reader knows what happened:

- device: CUDA, then MPS, then CPU (``"auto"``), or whatever the config names;
- precision: bf16 autocast on CUDA where the GPU supports it, fp16 + GradScaler where it does
  not, fp32 on the CPU and MPS (CPU bf16 autocast is slower than fp32 on most machines, and
  fp32 keeps CPU runs bit-reproducible);
- threads: set deliberately on the CPU, because PyTorch's default (all cores) oversubscribes the
  machine as soon as a DataLoader worker or a second DDP process runs beside it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def select_device(requested: str = "auto") -> torch.device:
    """The device to run on: ``"auto"`` picks CUDA, then MPS, then the CPU."""
    if requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} asked for, but CUDA is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def select_precision(device: torch.device, requested: str = "auto") -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"``. Auto: bf16 on CUDA when supported, else fp16; fp32 elsewhere."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {requested!r}")
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context for the forward pass (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_cpu_threads(threads: int | None = None, local_world_size: int = 1) -> int:
    """Set torch's intra-op thread count and return it.

    ``None`` shares the cores evenly among the processes on this machine (DDP on the CPU runs
    several), at least one each.
    """
    if threads is None or threads <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, (cores or 1) // max(1, local_world_size))
    torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a (possibly one-process) run, read from torchrun's variables."""

    enabled: bool  # True when WORLD_SIZE > 1: wrap the model in DDP, all-reduce the logs
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and writes checkpoints; the others only train."""
        return self.rank == 0


def distributed_context() -> DistributedContext:
    """Read RANK / LOCAL_RANK / WORLD_SIZE as torchrun sets them (absent: a single process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return DistributedContext(
        enabled=world_size > 1,
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=world_size,
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))),
    )


def describe_device(device: torch.device) -> str:
    """A human name for the device, for logs and results records."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        import platform

        return platform.processor() or platform.machine() or "cpu"
    return device.type
