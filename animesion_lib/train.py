"""Training: one loop, top to bottom, in the spirit of nanoGPT's ``train.py``.

    from animesion_lib.train import TrainConfig, train
    summary = train(TrainConfig(data="data/synthetic", model="vit_tiny_p8", head="ifa", epochs=3))
    summary["metrics"]["val_top1"]

or from the shell (every field of TrainConfig is an option)::

    animesion train --data data/synthetic --model vit_tiny_p8 --head ifa --epochs 3
    torchrun --nproc_per_node 4 -m animesion_lib.cli train --data /data/dafre --model vit_b16 ...

The same function runs on one CPU, one GPU, or many GPUs/nodes under torchrun: DDP is switched
on by torchrun's environment variables (WORLD_SIZE > 1), not by a separate code path. Rank 0
logs, evaluates and writes checkpoints; every rank trains on its share of each global batch.

Reproducibility: all randomness of epoch ``e`` (data order, augmentation, tag shuffling, text
masking, dropout) is seeded from ``(seed, e, rank)`` at the start of the epoch, so a run resumed
from the checkpoint of epoch ``e`` continues exactly as the uninterrupted run would have.

Run directory (``out_dir``)::

    config.json          the TrainConfig
    log.csv              one row per epoch (losses, learning rate, validation metrics, speed)
    tokenizer.json, tag_vocab.json    when the run uses tags
    checkpoints/epoch_0001/ ...       see animesion_lib.checkpoint
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from animesion_lib.config import TrainConfig  # re-exported: `from animesion_lib.train import TrainConfig`
from animesion_lib.errors import AnimesionError


class TrainingDiverged(AnimesionError, RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


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
    import random

    import numpy as np

    s = (seed * 1_000_003 + epoch * 1009 + rank) % 2**31
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s)
    return s


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    out = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


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
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _json_config(cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg)))


# --------------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate each epoch, checkpoint; return the run's summary (see the end of the loop).

    Raises TrainingDiverged on a NaN/inf loss, DatasetError / CheckpointError on bad input.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler
    from tqdm.auto import tqdm

    from animesion_lib import checkpoint as ckpt
    from animesion_lib.data import collate, data_fingerprint, read_split
    from animesion_lib.data.tokenizers import TagVocabulary, build_tokenizer, load_tokenizer
    from animesion_lib.device import (
        autocast, describe_device, distributed_context, select_device, select_precision, set_cpu_threads,
    )
    from animesion_lib.evaluate import evaluate_model, open_split
    from animesion_lib.models import MaskSchedule, create_model

    wall_start = time.perf_counter()
    out_dir = Path(cfg.out_dir)
    val_split = None if cfg.val_split in (None, "", "none") else cfg.val_split

    # ---- where we run: device, precision, threads, ranks -----------------------------------
    dist_ctx = distributed_context()
    device = select_device(cfg.device)
    if dist_ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_ctx.local_rank)
        torch.cuda.set_device(device)
    if dist_ctx.enabled and not dist.is_initialized():
        # MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE come from torchrun (or the caller's env)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    precision = select_precision(device, cfg.precision)
    threads = set_cpu_threads(cfg.threads, dist_ctx.local_world_size) if device.type == "cpu" else torch.get_num_threads()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: free speed on Ampere+
        torch.backends.cudnn.allow_tf32 = True
    main = dist_ctx.is_main
    try:
        latest = ckpt.latest_checkpoint(out_dir) if cfg.resume else None
        earlier = ckpt.list_checkpoints(out_dir) if not cfg.resume else []
        if earlier and not cfg.overwrite:
            # a fresh run would mix its epochs with the earlier run's (and pruning keeps the newest)
            raise AnimesionError(
                f"{out_dir} holds checkpoints of an earlier run (up to {earlier[-1].name}); pass --resume "
                "to continue it, --overwrite to start again (deletes them), or another --out-dir")
        if main:
            for old in earlier:
                shutil.rmtree(old)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.json").write_text(json.dumps(_json_config(cfg), indent=2) + "\n")

        # ---- tokenizer and tag vocabulary: from the training split, or from the checkpoint ------
        multimodal_name = cfg.model.startswith("vilt_")
        tokenizer = tag_vocab = None
        if multimodal_name or cfg.predict_tags:
            if latest is not None:  # resume with exactly the files the run started with
                files = ckpt.load_meta(latest).get("files", [])
                tokenizer = load_tokenizer(latest / "tokenizer.json") if "tokenizer.json" in files else None
                tag_vocab = TagVocabulary.load(latest / "tag_vocab.json") if "tag_vocab.json" in files else None
            else:
                train_rows = read_split(cfg.data, cfg.layout, cfg.train_split, with_tags=True)
                tag_lists = [list(s.tags or ()) for s in train_rows]
                if multimodal_name:
                    tokenizer = build_tokenizer(cfg.tokenizer, tag_lists, min_freq=cfg.tag_min_freq,
                                                vocab_size=cfg.tokenizer_vocab_size)
                if cfg.predict_tags:
                    tag_vocab = TagVocabulary.from_tag_lists(tag_lists, min_freq=cfg.tag_min_freq)
        extra_files = {}
        if main and tokenizer is not None:
            tokenizer.save(out_dir / "tokenizer.json")
            extra_files["tokenizer.json"] = out_dir / "tokenizer.json"
        if main and tag_vocab is not None:
            tag_vocab.save(out_dir / "tag_vocab.json")
            extra_files["tag_vocab.json"] = out_dir / "tag_vocab.json"

        # ---- data ------------------------------------------------------------------------------
        split_kw = dict(data=cfg.data, layout=cfg.layout, image_size=cfg.image_size, transform=cfg.transform,
                        tokenizer=tokenizer, tag_vocab=tag_vocab, max_text_len=cfg.max_text_len, cache=cfg.cache,
                        progress=cfg.progress and main)
        train_ds = open_split(split=cfg.train_split, train=True, **split_kw)
        fingerprint = data_fingerprint(cfg.data, cfg.layout)  # cited by the checkpoints and the record
        # Every process, even a lone one, takes its share of a seeded permutation: a one-process
        # run sees exactly the global batches that N DDP processes see together.
        sampler = DistributedSampler(train_ds, num_replicas=dist_ctx.world_size, rank=dist_ctx.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=False)
        loader_generator = torch.Generator()
        train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate,
                                  num_workers=cfg.num_workers, drop_last=True, generator=loader_generator,
                                  pin_memory=device.type == "cuda")
        eval_batch = cfg.eval_batch_size or 2 * cfg.batch_size
        eval_loader = lambda ds: DataLoader(ds, batch_size=eval_batch, shuffle=False, collate_fn=collate,  # noqa: E731
                                            num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
        val_loader = eval_loader(open_split(split=val_split, train=False, **split_kw)) if main and val_split else None
        steps_per_epoch = len(train_loader) // cfg.grad_accum
        if steps_per_epoch == 0:
            raise AnimesionError(
                f"{cfg.data}: {len(train_ds)} training images are fewer than one optimizer step "
                f"(batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x world size {dist_ctx.world_size})")
        total_steps = cfg.epochs * steps_per_epoch
        warmup_steps = int(cfg.warmup_fraction * total_steps)

        # ---- model, optimizer, (resumed) state -------------------------------------------------
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
        exclusion = None
        if cfg.exclusion_weight > 0:
            exclusion = dict(weight=cfg.exclusion_weight, temperature=cfg.exclusion_temperature,
                             distance=cfg.exclusion_distance)
        # ViLT must know which tokens are special (never masked, never predicted)
        text_kw = {"special_token_ids": sorted(tokenizer.special_token_ids)} if tokenizer is not None else {}
        raw_model = create_model(
            cfg.model, num_classes=train_ds.num_classes, image_size=cfg.image_size, head=cfg.head,
            pretrained=cfg.pretrained, pretrained_path=cfg.pretrained_path,
            vocab_size=tokenizer.vocab_size if tokenizer is not None else None,
            max_text_len=cfg.max_text_len, num_tags=len(tag_vocab) if tag_vocab is not None else 0,
            exclusion_loss=exclusion, **text_kw, **cfg.model_kwargs,
        ).to(device)
        channels_last = device.type == "cuda" and is_cnn(raw_model)
        if channels_last:
            raw_model = raw_model.to(memory_format=torch.channels_last)
        multimodal = is_multimodal(raw_model)
        optimizer = build_optimizer(raw_model, cfg, device)
        # fp16 needs loss scaling (its range is too small for small gradients); bf16/fp32 do not
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        mask_schedule = MaskSchedule(kind=cfg.mask_schedule, mask_prob=cfg.mask_prob, warmup=cfg.mask_warmup,
                                     cooldown=cfg.mask_cooldown) if multimodal else None

        start_epoch, step, history = 0, 0, []
        if latest is not None:
            meta = ckpt.load_weights(latest, raw_model, device=device)
            state = ckpt.load_training_state(latest, map_location=device)
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            start_epoch, step = int(state["epoch"]), int(state["step"])
            history = meta.get("history", [])
            ckpt.set_rng_state(state["rng"])
            if main:
                print(f"resuming from {latest} (epoch {start_epoch}, step {step})")

        model = torch.compile(raw_model) if cfg.compile else raw_model
        if dist_ctx.enabled:
            model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        text_modes = [m for m in cfg.eval_text_modes.split(",") if m] if multimodal else ["tags"]
        eval_kw = dict(num_classes=train_ds.num_classes, device=device, precision=precision, text_modes=text_modes,
                       drop_fraction=cfg.drop_fraction, tokenizer=tokenizer, classes=train_ds.classes)

        tb = None
        if main and cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                tb = SummaryWriter(str(out_dir / "tb"))
            except ImportError:
                print("tensorboard is not installed; logging to log.csv only")

        if main:
            print(f"training {cfg.model} ({sum(p.numel() for p in raw_model.parameters()) / 1e6:.2f}M params) "
                  f"on {len(train_ds)} images, {train_ds.num_classes} classes | {device} {precision} "
                  f"threads={threads} world={dist_ctx.world_size} | {total_steps} steps")

        # ---- the loop ------------------------------------------------------------------------
        step_losses: list[float] = []
        eval_seconds = eval_images = 0.0
        last_good = latest
        for epoch in range(start_epoch, cfg.epochs):
            epoch_seed = seed_epoch(cfg.seed, epoch, dist_ctx.rank)
            sampler.set_epoch(epoch)
            loader_generator.manual_seed(epoch_seed)  # DataLoader worker seeds derive from it
            mask_generator = torch.Generator().manual_seed(epoch_seed)
            model.train()
            sums: dict[str, float] = {}
            epoch_start, images = time.perf_counter(), 0
            batches = iter(train_loader)
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (main and cfg.progress),
                       leave=False, unit="step")
            for _ in bar:
                lr = lr_at(step, total_steps, cfg.lr, warmup_steps, cfg.lr * cfg.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                step_loss = torch.zeros((), device=device)
                step_parts: dict[str, torch.Tensor] = {}
                for micro in range(cfg.grad_accum):
                    batch = to_device(next(batches), device, channels_last)
                    if mask_schedule is not None and "input_ids" in batch:
                        batch["input_ids"], batch["mlm_labels"] = mask_schedule.apply(
                            batch["input_ids"], batch["attention_mask"], progress=step / total_steps,
                            special_ids=tokenizer.special_token_ids, mask_token_id=tokenizer.mask_token_id,
                            vocab_size=tokenizer.vocab_size, generator=mask_generator)
                    # DDP all-reduces gradients on backward; skip that on all but the last micro-step
                    last_micro = micro == cfg.grad_accum - 1
                    with model.no_sync() if dist_ctx.enabled and not last_micro else nullcontext():
                        with autocast(device, precision):
                            out = model(batch["image"], input_ids=batch.get("input_ids"),
                                        attention_mask=batch.get("attention_mask"))
                            loss, parts = compute_loss(raw_model, out, batch, cfg.label_smoothing)
                        scaler.scale(loss / cfg.grad_accum).backward()
                    step_loss += loss.detach().float() / cfg.grad_accum
                    for k, v in parts.items():
                        step_parts[k] = step_parts.get(k, 0.0) + v.float() / cfg.grad_accum
                    images += batch["image"].shape[0]
                # one loss per step, the mean over all ranks: a NaN anywhere stops every rank together
                logged = torch.stack([step_loss, *step_parts.values()])
                if dist_ctx.enabled:
                    dist.all_reduce(logged)
                    logged /= dist_ctx.world_size
                values = logged.tolist()
                loss_value = values[0]
                if not math.isfinite(loss_value):
                    optimizer.zero_grad(set_to_none=True)
                    raise TrainingDiverged(
                        f"loss is {loss_value} at step {step + 1} (epoch {epoch + 1}); training stopped. "
                        f"Last good checkpoint: {last_good or 'none (no epoch finished)'}. "
                        f"Try a lower --lr, a longer warm-up or --grad-clip.")
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                step_losses.append(loss_value)
                sums["train_loss"] = sums.get("train_loss", 0.0) + loss_value
                for k, v in zip(step_parts, values[1:]):
                    sums[f"train_{k}"] = sums.get(f"train_{k}", 0.0) + v
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}",
                                img_s=f"{images * dist_ctx.world_size / (time.perf_counter() - epoch_start):.0f}")
            bar.close()
            train_seconds = time.perf_counter() - epoch_start
            row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": lr}
            row.update({k: v / steps_per_epoch for k, v in sums.items()})
            row["train_images_per_s"] = images * dist_ctx.world_size / train_seconds
            row["epoch_time_s"] = train_seconds

            # ---- rank 0: evaluate, log, checkpoint (the others wait at the barrier) --------------
            if main:
                if val_loader is not None:
                    eval_start = time.perf_counter()
                    evaluation = evaluate_model(raw_model, val_loader, **eval_kw)
                    eval_seconds += time.perf_counter() - eval_start
                    eval_images += len(val_loader.dataset) * len(text_modes)
                    row.update({f"val_{k}": v for k, v in evaluation.metrics.items()})
                history.append(row)
                _write_csv(out_dir / "log.csv", history)
                if tb is not None:
                    for k, v in row.items():
                        if k != "epoch" and isinstance(v, (int, float)):
                            tb.add_scalar(k.replace(".", "/"), v, epoch + 1)
                    tb.flush()
                shown = {k: row[k] for k in ("train_loss", "val_loss", "val_top1", "val_mean_class_acc") if k in row}
                print(f"epoch {epoch + 1}/{cfg.epochs} step {step} " +
                      " ".join(f"{k} {v:.4f}" for k, v in shown.items()) +
                      f" | {row['train_images_per_s']:.0f} img/s")
                training_state = {
                    "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                    "schedule": {"kind": "warmup_cosine", "step": step, "total_steps": total_steps,
                                 "warmup_steps": warmup_steps},
                    "epoch": epoch + 1, "step": step, "rng": ckpt.rng_state(),
                }
                meta = {"epoch": epoch + 1, "step": step, "classes": train_ds.classes,
                        "train_config": _json_config(cfg), "history": history,
                        "precision": precision, "metrics": row, "data_fingerprint": fingerprint}
                last_good = ckpt.save_checkpoint(out_dir / "checkpoints" / ckpt.checkpoint_name(epoch + 1),
                                                 raw_model, meta, training_state, extra_files)
                ckpt.prune_checkpoints(out_dir, cfg.keep_checkpoints)
            else:
                history.append(row)
            if dist_ctx.enabled:
                dist.barrier()

        # ---- the end: test split, summary, results record -----------------------------------
        metrics = {k: v for k, v in (history[-1] if history else {}).items()
                   if k.startswith(("train_loss", "val_"))}
        if main and cfg.test_split:
            tuned = metrics.get("val_tag_threshold_tuned")  # chosen on validation, applied to test
            test_ds = open_split(split=cfg.test_split, train=False, **split_kw)
            eval_start = time.perf_counter()
            evaluation = evaluate_model(raw_model, eval_loader(test_ds), tuned_threshold=tuned, **eval_kw)
            eval_seconds += time.perf_counter() - eval_start
            eval_images += len(test_ds) * len(text_modes)
            metrics.update({f"test_{k}": v for k, v in evaluation.metrics.items()})
        if tb is not None:
            tb.close()
        run_rows = [r for r in history if r["epoch"] > start_epoch]
        throughput = {
            "train_images_per_s": (sum(r["train_images_per_s"] for r in run_rows) / len(run_rows)) if run_rows else None,
            "eval_images_per_s": eval_images / eval_seconds if eval_seconds else None,
        }
        summary = {
            "metrics": metrics,
            "curves": history,
            "step_losses": step_losses,  # this invocation's steps (a resumed run: from the resume on)
            "steps": step,
            "epochs": len(history),
            "out_dir": str(out_dir),
            "checkpoint": str(last_good) if last_good else None,
            "wall_time_s": time.perf_counter() - wall_start,
            "throughput": throughput,
            "device": {"type": device.type, "name": describe_device(device), "precision": precision,
                       "threads": threads, "world_size": dist_ctx.world_size},
            "config": _json_config(cfg),
            "record": None,
        }
        if main and cfg.experiment:
            from animesion_lib.results import make_record, write_record

            record = make_record(
                experiment=cfg.experiment, profile=cfg.profile, kind="train", config=summary["config"],
                seed=cfg.seed, metrics=metrics, curves=history, wall_time_s=summary["wall_time_s"],
                throughput=throughput, device=summary["device"],
                data_fingerprint=fingerprint,
            )
            summary["record"] = str(write_record(record, cfg.results_dir))
        return summary
    finally:
        if dist_ctx.enabled and dist.is_initialized():
            dist.destroy_process_group()
