"""Training: a loop a reader follows in one screen, in the spirit of nanoGPT's ``train.py``.

    from animesion_lib.train import TrainConfig, train
    summary = train(TrainConfig(data="data/synthetic", model="vit_tiny_p8", head="ifa", epochs=3))
    summary["metrics"]["val_top1"]

or from the shell (every field of TrainConfig is an option)::

    animesion train --data data/synthetic --model vit_tiny_p8 --head ifa --epochs 3
    torchrun --nproc_per_node 4 -m animesion_lib.cli train --data /data/dafre --model vit_b16 ...

:func:`train` reads top to bottom: :func:`prepare` gathers the pieces (device, precision, ranks,
data, model, optimizer, schedule, resume point) into a :class:`Run`; :func:`train_epoch` runs the
optimizer steps of one epoch; :func:`end_epoch` evaluates, logs and checkpoints; :func:`finish`
evaluates the test split and writes the summary and the results record.

The same function runs on one CPU, one GPU, or many GPUs/nodes under torchrun: DDP is switched
on by torchrun's environment variables (WORLD_SIZE > 1), not by a separate code path. Rank 0
decides which checkpoint to resume, builds the image cache first, logs, evaluates and writes
checkpoints; every rank trains on its share of each global batch.

Reproducibility: all randomness of epoch ``e`` (data order, augmentation, tag shuffling, text
masking, dropout) is seeded from ``(seed, e, rank)`` at the start of the epoch, so a run resumed
from the checkpoint of epoch ``e`` continues exactly as the uninterrupted run would have. On the
CPU two runs agree bit for bit; on a GPU only with ``deterministic=True`` (no TF32, deterministic
kernels); each summary states which held. The losses are read back from the device every
``log_every`` steps, not every step, so that the GPU never waits for the host.

Run directory (``out_dir``)::

    config.json          the TrainConfig
    log.csv              one row per epoch (losses, training accuracy, learning rate, validation metrics, speed)
    tokenizer.json, tag_vocab.json    when the run uses tags
    checkpoints/epoch_0001/ ...       see animesion_lib.checkpoint
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from animesion_lib import checkpoint as ckpt
from animesion_lib import models
from animesion_lib.atomic import atomic_path, atomic_write_text
from animesion_lib.config import TrainConfig  # re-exported: `from animesion_lib.train import TrainConfig`
from animesion_lib.data import collate, data_fingerprint, read_split
from animesion_lib.data.batch_augment import BatchAugment
from animesion_lib.data.tokenizers import TagVocabulary, build_tokenizer, load_tokenizer
from animesion_lib.data.twins import near_twins
from animesion_lib.device import (
    DistributedContext, agree, autocast, barrier, describe_device, distributed_session, main_first,
    select_precision, set_cpu_threads, set_numerics,
)
from animesion_lib.errors import AnimesionError
# the split reader and the evaluation loop (moving to their own modules: repoint this line)
from animesion_lib.data.splits import open_split
from animesion_lib.evaluation import evaluate_model
from animesion_lib.text_modes import metric_name
from animesion_lib.models import MaskSchedule


class TrainingDiverged(AnimesionError, RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


# --------------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate each epoch, checkpoint; return the run's summary (see :func:`finish`).

    Raises TrainingDiverged on a NaN/inf loss, DatasetError / CheckpointError on bad input.
    """
    wall_start = time.perf_counter()
    with distributed_session(cfg.device, cfg.dist_timeout_minutes) as (ctx, device):
        run = prepare(cfg, ctx, device)
        for epoch in range(run.start_epoch, cfg.epochs):
            row = train_epoch(run, epoch)
            end_epoch(run, row)
        return finish(run, wall_start)


@dataclass
class Data:
    """The training loader and what evaluation needs; ``augment`` runs on the model's device."""

    train: Any
    loader: DataLoader
    sampler: DistributedSampler
    generator: torch.Generator  # re-seeded each epoch: DataLoader worker seeds derive from it
    augment: BatchAugment | None
    open_eval: Callable[[str], DataLoader]  # split name -> evaluation loader
    val: DataLoader | None
    fingerprint: str


@dataclass
class Run:
    """Everything :func:`prepare` sets up, and the counters the loop moves on."""

    cfg: TrainConfig
    ctx: DistributedContext
    device: torch.device
    precision: str
    numerics: dict[str, Any]
    out_dir: Path
    tokenizer: Any
    tag_vocab: Any
    extra_files: dict[str, Path]
    data: Data
    raw_model: torch.nn.Module  # the bare model: evaluated and checkpointed
    model: torch.nn.Module  # what trains: maybe DDP-wrapped, maybe compiled
    ddp: DDP | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    mask: MaskSchedule | None
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    start_epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    last_good: Path | None = None
    step_losses: list[float] = field(default_factory=list)
    part_names: list[str] = field(default_factory=list)
    eval_seconds: float = 0.0
    eval_images: float = 0.0
    tb: Any = None

    @property
    def text_modes(self) -> list[str]:
        return [m for m in self.cfg.eval_text_modes.split(",") if m] if is_multimodal(self.raw_model) else ["tags"]

    def metric(self, name: str, split: str) -> str:
        """The name evaluation gives ``name`` of ``split``: prefixed by the first text mode when the model reads tags."""
        mode = self.text_modes[0] if is_multimodal(self.raw_model) else None
        return metric_name(name, mode, split, self.cfg.drop_fraction)

    def eval_kw(self) -> dict[str, Any]:
        return dict(num_classes=self.data.train.num_classes, device=self.device, precision=self.precision,
                    text_modes=self.text_modes, drop_fraction=self.cfg.drop_fraction, tokenizer=self.tokenizer,
                    classes=self.data.train.classes, twins=near_twins(self.cfg.data, self.data.train.classes))


def prepare(cfg: TrainConfig, ctx: DistributedContext, device: torch.device) -> Run:
    """Precision, threads, resume point, tokenizer, data, model, optimizer: the pieces of a run."""
    precision = select_precision(device, cfg.precision)
    numerics = set_numerics(device, cfg.deterministic)
    numerics["threads"] = (set_cpu_threads(cfg.threads, ctx.local_world_size) if device.type == "cpu"
                           else torch.get_num_threads())
    out_dir = Path(cfg.out_dir)
    latest = resume_point(cfg, ctx)
    tokenizer, tag_vocab = text_files(cfg, latest)
    extra_files = write_run_files(cfg, ctx, tokenizer, tag_vocab) if ctx.is_main else {}
    data = prepare_data(cfg, ctx, device, tokenizer, tag_vocab)
    steps_per_epoch = len(data.loader) // cfg.grad_accum
    if steps_per_epoch == 0:
        raise AnimesionError(
            f"{cfg.data}: {len(data.train)} training images are fewer than one optimizer step "
            f"(batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x world size {ctx.world_size})")
    raw_model = build_model(cfg, ctx, device, data.train.num_classes, tokenizer, tag_vocab)
    multimodal = is_multimodal(raw_model)
    run = Run(
        cfg=cfg, ctx=ctx, device=device, precision=precision, numerics=numerics, out_dir=out_dir,
        tokenizer=tokenizer, tag_vocab=tag_vocab, extra_files=extra_files, data=data, raw_model=raw_model,
        model=raw_model, ddp=None, optimizer=build_optimizer(raw_model, cfg, device),
        # fp16 needs loss scaling (its range is too small for small gradients); bf16/fp32 do not
        scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        mask=MaskSchedule(kind=cfg.mask_schedule, mask_prob=cfg.mask_prob, warmup=cfg.mask_warmup,
                          cooldown=cfg.mask_cooldown) if multimodal else None,
        steps_per_epoch=steps_per_epoch, total_steps=cfg.epochs * steps_per_epoch,
        warmup_steps=int(cfg.warmup_fraction * cfg.epochs * steps_per_epoch), last_good=latest,
    )
    if latest is not None:
        resume(run, latest)
    run.model, run.ddp = wrap_model(raw_model, cfg, ctx, device)
    run.tb = open_tensorboard(out_dir) if ctx.is_main and cfg.tensorboard else None
    if ctx.is_main:
        print(f"training {cfg.model} ({sum(p.numel() for p in raw_model.parameters()) / 1e6:.2f}M params) "
              f"on {len(data.train)} images, {data.train.num_classes} classes | {device} {precision} "
              f"threads={numerics['threads']} world={ctx.world_size} | {run.total_steps} steps")
    return run


def train_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """One epoch of optimizer steps; returns its log row (mean losses, training accuracy, speed)."""
    cfg, ctx = run.cfg, run.ctx
    seed = seed_epoch(cfg.seed, epoch, ctx.rank)
    run.data.sampler.set_epoch(epoch)
    run.data.generator.manual_seed(seed)
    generators = {"mask": torch.Generator(device=run.device).manual_seed(seed),
                  "augment": torch.Generator().manual_seed(seed ^ 0x5EED)}
    run.model.train()
    sums: dict[str, float] = {}
    correct = torch.zeros((), dtype=torch.int64, device=run.device)
    window: list[torch.Tensor] = []  # per-step losses still on the device
    start, batches = time.perf_counter(), iter(run.data.loader)
    bar = tqdm(range(run.steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="step",
               disable=not (ctx.is_main and cfg.progress))
    for i in bar:
        lr = lr_at(run.step, run.total_steps, cfg.lr, run.warmup_steps, cfg.lr * cfg.min_lr_ratio)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        window.append(optimizer_step(run, batches, generators, correct))
        run.step += 1
        if len(window) == max(1, cfg.log_every) or i == run.steps_per_epoch - 1:
            loss = read_back(run, window, epoch, sums)  # the one wait for the device
            window = []
            images = (i + 1) * cfg.grad_accum * cfg.batch_size * ctx.world_size
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{images / (time.perf_counter() - start):.0f}")
    bar.close()
    seconds = time.perf_counter() - start
    images = run.steps_per_epoch * cfg.grad_accum * cfg.batch_size * ctx.world_size
    if ctx.enabled:
        dist.all_reduce(correct)
    row: dict[str, Any] = {"epoch": epoch + 1, "step": run.step, "lr": lr}
    row.update({k: v / run.steps_per_epoch for k, v in sums.items()})
    # accuracy on the batches as trained: augmented, and the model still changing during the epoch
    row["train_top1"] = int(correct) / images
    row["train_images_per_s"] = images / seconds
    row["epoch_time_s"] = seconds
    return row


def optimizer_step(run: Run, batches, generators: dict[str, torch.Generator], correct: torch.Tensor) -> torch.Tensor:
    """``grad_accum`` forward/backward passes, then one optimizer step; returns ``[loss, *parts]`` on the device."""
    cfg = run.cfg
    logged = None
    for micro in range(cfg.grad_accum):
        batch = next_batch(run, batches, generators)
        # DDP all-reduces gradients on backward; skip that on all but the last micro-step
        last_micro = micro == cfg.grad_accum - 1
        with run.ddp.no_sync() if run.ddp is not None and not last_micro else nullcontext():
            with autocast(run.device, run.precision):
                out = run.model(batch["image"], input_ids=batch.get("input_ids"),
                                attention_mask=batch.get("attention_mask"))
                loss, parts = compute_loss(run.raw_model, out, batch, cfg.label_smoothing)
            run.scaler.scale(loss / cfg.grad_accum).backward()
        run.part_names = list(parts)
        values = torch.stack([loss.detach().float(), *(v.float() for v in parts.values())]) / cfg.grad_accum
        logged = values if logged is None else logged + values
        correct += (out["logits"].detach().argmax(dim=1) == batch["label"]).sum()
    if cfg.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return logged


def next_batch(run: Run, batches, generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """The next batch on the device: augmented there (batch path), tag tokens masked."""
    batch = {k: v.to(run.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
             for k, v in next(batches).items()}
    if run.data.augment is not None:
        batch["image"] = run.data.augment(batch["image"], generators["augment"])
    layout = torch.channels_last if run.device.type == "cuda" and is_cnn(run.raw_model) else torch.contiguous_format
    batch["image"] = batch["image"].contiguous(memory_format=layout)
    if run.mask is not None and "input_ids" in batch:
        tok = run.tokenizer
        batch["input_ids"], batch["mlm_labels"] = run.mask.apply(
            batch["input_ids"], batch["attention_mask"], progress=run.step / run.total_steps,
            special_ids=tok.special_token_ids, mask_token_id=tok.mask_token_id, vocab_size=tok.vocab_size,
            generator=generators["mask"])
    return batch


def read_back(run: Run, window: list[torch.Tensor], epoch: int, sums: dict[str, float]) -> float:
    """Bring the window's step losses to the host (mean over ranks), stop on NaN; returns the last loss."""
    logged = torch.stack(window)
    if run.ctx.enabled:  # every rank reads back at the same steps: a NaN anywhere stops them all
        dist.all_reduce(logged)
        logged /= run.ctx.world_size
    first_step = run.step - len(window) + 1
    for offset, (loss, *parts) in enumerate(logged.tolist()):
        if not math.isfinite(loss):
            run.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(
                f"loss is {loss} at step {first_step + offset} (epoch {epoch + 1}); training stopped. "
                f"Last good checkpoint: {run.last_good or 'none (no epoch finished)'}. "
                f"Try a lower --lr, a longer warm-up or --grad-clip.")
        run.step_losses.append(loss)
        sums["train_loss"] = sums.get("train_loss", 0.0) + loss
        for name, value in zip(run.part_names, parts):
            sums[f"train_{name}"] = sums.get(f"train_{name}", 0.0) + value
    return loss


def end_epoch(run: Run, row: dict[str, Any]) -> None:
    """Rank 0 evaluates, logs and checkpoints; the other ranks wait at the barrier."""
    if run.ctx.is_main:
        if run.data.val is not None:
            row.update({f"val_{k}": v for k, v in evaluate(run, run.data.val).metrics.items()})
        run.history.append(row)
        log_epoch(run, row)
        save_epoch(run, row)
    else:
        run.history.append(row)
    barrier(run.ctx)


def finish(run: Run, wall_start: float) -> dict[str, Any]:
    """Evaluate the test split (rank 0), close the logs, write the record; return the summary."""
    cfg = run.cfg
    metrics = {k: v for k, v in (run.history[-1] if run.history else {}).items()
               if k.startswith(("train_loss", "val_"))}
    if run.ctx.is_main and cfg.test_split:
        tuned = metrics.get(run.metric("tag_threshold_tuned", "val"))  # chosen on validation, applied to test
        evaluation = evaluate(run, run.data.open_eval(cfg.test_split), tuned_threshold=tuned)
        metrics.update({f"test_{k}": v for k, v in evaluation.metrics.items()})
    if run.tb is not None:
        run.tb.close()
    rows = [r for r in run.history if r["epoch"] > run.start_epoch]
    throughput = {
        "train_images_per_s": (sum(r["train_images_per_s"] for r in rows) / len(rows)) if rows else None,
        "eval_images_per_s": run.eval_images / run.eval_seconds if run.eval_seconds else None,
    }
    summary = {
        "metrics": metrics,
        "curves": run.history,
        "step_losses": run.step_losses,  # this invocation's steps (a resumed run: from the resume on)
        "steps": run.step,
        "epochs": len(run.history),
        "out_dir": str(run.out_dir),
        "checkpoint": str(run.last_good) if run.last_good else None,
        "wall_time_s": time.perf_counter() - wall_start,
        "throughput": throughput,
        "device": {"type": run.device.type, "name": describe_device(run.device), "precision": run.precision,
                   "world_size": run.ctx.world_size, "augment_on": "batch" if run.data.augment else "loader",
                   **run.numerics},
        "config": _json_config(cfg),
        "record": None,
    }
    if run.ctx.is_main and cfg.experiment:
        from animesion_lib.pretraining import provenance
        from animesion_lib.results import make_record, write_record

        record = make_record(
            experiment=cfg.experiment, profile=cfg.profile, kind="train", config=summary["config"], seed=cfg.seed,
            metrics=metrics, curves=run.history, wall_time_s=summary["wall_time_s"], throughput=throughput,
            device=summary["device"], data_fingerprint=run.data.fingerprint,
            pretrained=provenance(cfg.pretrained_path),  # where the starting weights came from, if pretrained here
        )
        summary["record"] = str(write_record(record, cfg.results_dir))
    return summary


# ------------------------------------------------------------------------- preparing a run


def resume_point(cfg: TrainConfig, ctx: DistributedContext) -> Path | None:
    """The checkpoint to resume (``--resume``), as rank 0 sees it; refuses to mix with an earlier run."""
    out_dir = Path(cfg.out_dir)
    decision = None
    if ctx.is_main:  # ranks on several nodes may see different files: rank 0's view is the one
        latest = ckpt.latest_checkpoint(out_dir) if cfg.resume else None
        earlier = ckpt.list_checkpoints(out_dir) if not cfg.resume else []
        error = None
        if earlier and not cfg.overwrite:
            # a fresh run would mix its epochs with the earlier run's (and pruning keeps the newest)
            error = (f"{out_dir} holds checkpoints of an earlier run (up to {earlier[-1].name}); pass --resume "
                     "to continue it, --overwrite to start again (deletes them), or another --out-dir")
        decision = (latest, earlier, error)
    latest, earlier, error = agree(ctx, decision)
    if error:
        raise AnimesionError(error)
    if ctx.is_main:
        for old in earlier:
            shutil.rmtree(old)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.json", json.dumps(_json_config(cfg), indent=2) + "\n")
    return latest


def text_files(cfg: TrainConfig, latest: Path | None) -> tuple[Any, Any]:
    """Tokenizer and tag vocabulary: from the checkpoint when resuming, else from the training split."""
    if not (cfg.model.startswith("vilt_") or cfg.predict_tags):
        return None, None
    if latest is not None:  # resume with exactly the files the run started with
        meta = ckpt.load_meta(latest)
        files = meta.get("files", [])
        tokenizer = load_tokenizer(ckpt.verify_file(latest, "tokenizer.json", meta)) if "tokenizer.json" in files else None
        tag_vocab = TagVocabulary.load(ckpt.verify_file(latest, "tag_vocab.json", meta)) if "tag_vocab.json" in files else None
        return tokenizer, tag_vocab
    tag_lists = [list(s.tags or ()) for s in read_split(cfg.data, cfg.layout, cfg.train_split, with_tags=True)]
    tokenizer = build_tokenizer(cfg.tokenizer, tag_lists, min_freq=cfg.tag_min_freq,
                                vocab_size=cfg.tokenizer_vocab_size) if cfg.model.startswith("vilt_") else None
    tag_vocab = TagVocabulary.from_tag_lists(tag_lists, min_freq=cfg.tag_min_freq) if cfg.predict_tags else None
    return tokenizer, tag_vocab


def write_run_files(cfg: TrainConfig, ctx: DistributedContext, tokenizer: Any, tag_vocab: Any) -> dict[str, Path]:
    """Save the tokenizer / tag vocabulary into out_dir; each checkpoint copies them."""
    files = {}
    for name, obj in (("tokenizer.json", tokenizer), ("tag_vocab.json", tag_vocab)):
        if obj is not None:
            obj.save(Path(cfg.out_dir) / name)
            files[name] = Path(cfg.out_dir) / name
    return files


def default_workers(device: torch.device, ctx: DistributedContext) -> int:
    """0 on the CPU (the cores train); on a GPU, this process's share of the cores, at most 8."""
    if device.type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores // max(1, ctx.local_world_size) - 1))


def on_batches(cfg: TrainConfig, device: torch.device, workers: int) -> bool:
    """Whether ``augment_on="auto"`` augments whole batches on the device rather than per image in the loader.

    Measured (benchmarks/data_pipeline.py, README): on a GPU the batch path takes the per-image work
    off the loader; on the CPU it is faster from the decoded cache in the training process (436 vs
    262 images/s), while PIL in loader workers wins (383 vs 274) and without the cache they are level.
    That holds for ``plain`` too, which only normalises: from the cache at 32 px, 60,700 vs 16,900
    images/s, because the batch path skips a PIL image and a float array per image.
    """
    if cfg.augment_on != "auto":
        return cfg.augment_on == "batch"
    return device.type != "cpu" or (bool(cfg.cache) and workers == 0)


def prepare_data(cfg: TrainConfig, ctx: DistributedContext, device: torch.device, tokenizer: Any,
                 tag_vocab: Any) -> Data:
    """The training loader (each rank its share), the augmentation on the device, the evaluation loaders."""
    if cfg.augment_on not in ("auto", "batch", "loader"):
        raise ValueError(f"augment_on must be auto, batch or loader, not {cfg.augment_on!r}")
    split_kw = dict(data=cfg.data, layout=cfg.layout, image_size=cfg.image_size, transform=cfg.transform,
                    tokenizer=tokenizer, tag_vocab=tag_vocab, max_text_len=cfg.max_text_len, cache=cfg.cache,
                    progress=cfg.progress and ctx.is_main)
    with main_first(ctx):  # rank 0 builds the image cache once; the others then open it
        train_ds = open_split(split=cfg.train_split, train=True, **split_kw)
    workers = cfg.num_workers if cfg.num_workers is not None else default_workers(device, ctx)
    augment = BatchAugment(cfg.transform, cfg.image_size, train=True) if on_batches(cfg, device, workers) else None
    train_ds.device_augment = augment is not None  # uint8 images travel; BatchAugment does the rest
    # Every process, even a lone one, takes its share of a seeded permutation: a one-process
    # run sees exactly the global batches that N DDP processes see together.
    sampler = DistributedSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    generator = torch.Generator()
    # workers are not persistent: they re-seed from `generator` every epoch, so a resumed run
    # draws what the uninterrupted one drew (tag shuffling, and augmentation on the loader path)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=workers, drop_last=True, generator=generator,
                        pin_memory=device.type == "cuda")
    eval_batch = cfg.eval_batch_size or 2 * cfg.batch_size

    def open_eval(split: str) -> DataLoader:
        return DataLoader(open_split(split=split, train=False, **split_kw), batch_size=eval_batch, shuffle=False,
                          collate_fn=collate, num_workers=workers, pin_memory=device.type == "cuda")

    val_split = None if cfg.val_split in (None, "", "none") else cfg.val_split
    return Data(train=train_ds, loader=loader, sampler=sampler, generator=generator, augment=augment,
                open_eval=open_eval, val=open_eval(val_split) if ctx.is_main and val_split else None,
                fingerprint=data_fingerprint(cfg.data, cfg.layout))


def build_model(cfg: TrainConfig, ctx: DistributedContext, device: torch.device, num_classes: int,
                tokenizer: Any, tag_vocab: Any) -> torch.nn.Module:
    """The bare model on its device, the same initial weights on every rank and every run."""
    torch.manual_seed(cfg.seed)
    exclusion = None
    if cfg.exclusion_weight > 0:
        exclusion = dict(weight=cfg.exclusion_weight, temperature=cfg.exclusion_temperature,
                         distance=cfg.exclusion_distance)
    # ViLT must know which tokens are special (never masked, never predicted)
    text_kw = {"special_token_ids": sorted(tokenizer.special_token_ids)} if tokenizer is not None else {}
    model = models.create_model(  # looked up at call time: tests substitute their own
        cfg.model, num_classes=num_classes, image_size=cfg.image_size, head=cfg.head,
        pretrained=cfg.pretrained, pretrained_path=cfg.pretrained_path,
        vocab_size=tokenizer.vocab_size if tokenizer is not None else None,
        max_text_len=cfg.max_text_len, num_tags=len(tag_vocab) if tag_vocab is not None else 0,
        exclusion_loss=exclusion, **text_kw, **cfg.model_kwargs,
    )
    if ctx.enabled and device.type == "cuda":  # batch statistics over the global batch, as on one GPU
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if device.type == "cuda" and is_cnn(model):
        model = model.to(memory_format=torch.channels_last)
    return model


def wrap_model(model: torch.nn.Module, cfg: TrainConfig, ctx: DistributedContext, device: torch.device
               ) -> tuple[torch.nn.Module, DDP | None]:
    """DDP (under torchrun), then torch.compile: compiling the DDP module lets it split the graph
    at the gradient buckets, so the all-reduce overlaps the backward pass."""
    ddp = None
    if ctx.enabled:
        ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=has_unused_parameters(model, cfg))
    trained = ddp if ddp is not None else model
    return (torch.compile(trained) if cfg.compile else trained), ddp


def has_unused_parameters(model: torch.nn.Module, cfg: TrainConfig) -> bool:
    """ViLT without text masking never trains its masked-tag head (DDP must be told, or it hangs)."""
    return getattr(model, "mlm_head", None) is not None and cfg.mask_schedule == "none"


def resume(run: Run, latest: Path) -> None:
    """Weights, optimizer, scaler, counters, curves and RNG states of the checkpoint ``latest``."""
    meta = ckpt.load_weights(latest, run.raw_model, device=run.device)
    state = ckpt.load_training_state(latest)  # on the CPU: RNG states live there
    run.optimizer.load_state_dict(state["optimizer"])  # moves its tensors to the parameters' device
    run.scaler.load_state_dict(state["scaler"])
    run.start_epoch, run.step = int(state["epoch"]), int(state["step"])
    run.history = meta.get("history", [])
    ckpt.set_rng_state(state["rng"])
    if run.ctx.is_main:
        print(f"resuming from {latest} (epoch {run.start_epoch}, step {run.step})")


def open_tensorboard(out_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed; logging to log.csv only")
        return None
    return SummaryWriter(str(out_dir / "tb"))


# ------------------------------------------------------------------------- end of an epoch


def evaluate(run: Run, loader: DataLoader, **kw: Any) -> Any:
    """Evaluate the bare model (not the compiled / DDP one) on every text mode; count the time."""
    start = time.perf_counter()
    evaluation = evaluate_model(run.raw_model, loader, **run.eval_kw(), **kw)
    run.eval_seconds += time.perf_counter() - start
    run.eval_images += len(loader.dataset) * len(run.text_modes)
    return evaluation


def log_epoch(run: Run, row: dict[str, Any]) -> None:
    _write_csv(run.out_dir / "log.csv", run.history)
    if run.tb is not None:
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                run.tb.add_scalar(k.replace(".", "/"), v, row["epoch"])
        run.tb.flush()
    names = ["train_loss", "train_top1"] + [run.metric(m, "val") for m in ("loss", "top1", "mean_class_acc")]
    shown = {k: row[k] for k in names if k in row}
    print(f"epoch {row['epoch']}/{run.cfg.epochs} step {row['step']} "
          + " ".join(f"{k} {v:.4f}" for k, v in shown.items()) + f" | {row['train_images_per_s']:.0f} img/s")


def save_epoch(run: Run, row: dict[str, Any]) -> None:
    """The epoch's checkpoint (weights, training state, meta), then prune the older ones."""
    state = {
        "optimizer": run.optimizer.state_dict(), "scaler": run.scaler.state_dict(),
        "schedule": {"kind": "warmup_cosine", "step": run.step, "total_steps": run.total_steps,
                     "warmup_steps": run.warmup_steps},
        "epoch": row["epoch"], "step": run.step, "rng": ckpt.rng_state(),
    }
    meta = {"epoch": row["epoch"], "step": run.step, "classes": run.data.train.classes,
            "train_config": _json_config(run.cfg), "history": run.history, "precision": run.precision,
            "metrics": row, "data_fingerprint": run.data.fingerprint}
    path = run.out_dir / "checkpoints" / ckpt.checkpoint_name(row["epoch"])
    run.last_good = ckpt.save_checkpoint(path, run.raw_model, meta, state, run.extra_files)
    ckpt.prune_checkpoints(run.out_dir, run.cfg.keep_checkpoints)


# ------------------------------------------------------------------------------ small pieces


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int, min_lr: float) -> float:
    """Linear warm-up to ``base_lr``, then cosine decay to ``min_lr`` (the Animesion recipe)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - min_lr)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA) or SGD; weight decay on matrices only, not on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), fused=device.type == "cuda")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    raise ValueError(f"optimizer must be adamw or sgd, not {cfg.optimizer!r}")


def seed_epoch(seed: int, epoch: int, rank: int) -> int:
    """Seed torch/python/numpy for one epoch of one rank; returns the seed (for the generators)."""
    s = (seed * 1_000_003 + epoch * 1009 + rank) % 2**31
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s)
    return s


def compute_loss(
    model: torch.nn.Module, out: dict[str, torch.Tensor], batch: dict[str, Any], label_smoothing: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The model's own loss, with the character CE label-smoothed when asked."""
    if label_smoothing <= 0:
        return model.loss(out, batch)
    rest, parts = model.loss(out, {k: v for k, v in batch.items() if k != "label"})
    ce = F.cross_entropy(out["logits"].float(), batch["label"], label_smoothing=label_smoothing)
    return rest + ce, {"ce": ce.detach(), **parts}


def is_cnn(model: torch.nn.Module) -> bool:
    """More than one conv layer (a ViT has exactly one, its patch embedding): use channels_last."""
    return sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) > 1


def is_multimodal(model: torch.nn.Module) -> bool:
    """Models that read tag tokens (ViLT) are built with a text vocabulary."""
    return bool(getattr(model, "config", {}).get("vocab_size"))


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _json_config(cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg)))
