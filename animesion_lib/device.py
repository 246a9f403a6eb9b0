"""Where and how a run computes: device, numeric precision, CPU threads, distributed ranks.

One decision per function, each a few lines, so that the training loop can say
``device = select_device(cfg.device)`` and a reader knows what happened:

- device: CUDA, then MPS, then CPU (``"auto"``), or whatever the config names;
- precision: bf16 autocast on CUDA where the GPU supports it, fp16 + GradScaler where it does
  not, fp32 on the CPU and MPS (CPU bf16 autocast is slower than fp32 on most machines, and
  fp32 keeps CPU runs bit-reproducible);
- threads: set deliberately on the CPU, because PyTorch's default (all cores) oversubscribes the
  machine as soon as a DataLoader worker or a second DDP process runs beside it;
- numerics: TF32 and deterministic algorithms on CUDA, stated in every run's summary;
- ranks: :func:`distributed_session` sets up and tears down the process group, :func:`main_first`
  lets rank 0 do a one-off job (building the image cache) before the others, and
  :func:`agree` makes every rank use rank 0's answer (which checkpoint to resume).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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
        # counting emulation, every CUDA GPU "supports" bf16 (slowly); ask for the native kind
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context for the forward pass (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_numerics(device: torch.device, deterministic: bool) -> dict[str, bool]:
    """TF32 matmuls (free speed on Ampere+) unless ``deterministic``, which also asks for
    deterministic kernels; returns what was chosen, for the run's summary.

    On the CPU runs are bit-reproducible either way; on a GPU only with ``deterministic``
    (same GPU model, same software), at some cost in speed.
    """
    tf32 = device.type == "cuda" and not deterministic
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = not deterministic
        if deterministic:  # cuBLAS needs a fixed workspace to be deterministic
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    return {"tf32": tf32, "deterministic": deterministic}


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


@contextlib.contextmanager
def distributed_session(requested_device: str = "auto", timeout_minutes: float = 60.0
                        ) -> Iterator[tuple[DistributedContext, torch.device]]:
    """Set up this process's rank (process group, its own GPU), yield ``(context, device)``,
    tear the group down on the way out, even after an error.

    The timeout covers the longest wait of any rank, e.g. the others at the barrier while rank 0
    evaluates and checkpoints; NCCL's default (10 minutes) is shorter than an evaluation of DAF:re.
    """
    import torch.distributed as dist

    ctx = distributed_context()
    device = select_device(requested_device)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # the "current" GPU: NCCL, RNG state and new tensors follow it
    owns_group = ctx.enabled and not dist.is_initialized()
    if owns_group:  # MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE come from torchrun
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(minutes=timeout_minutes))
    try:
        yield ctx, device
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def barrier(ctx: DistributedContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_first(ctx: DistributedContext) -> Iterator[None]:
    """Rank 0 runs the block first, the others after it (they then find, e.g., the built cache)."""
    if not ctx.is_main:
        barrier(ctx)
    yield
    if ctx.is_main:
        barrier(ctx)


def agree(ctx: DistributedContext, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (each rank's own filesystem view may differ)."""
    if not ctx.enabled:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
