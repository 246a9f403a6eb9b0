"""The configuration of a training run: one plain dataclass, every field a CLI option.

Kept apart from :mod:`animesion_lib.train` so that building ``animesion train --help`` does not
import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _opt(default: Any, help: str) -> Any:
    """A dataclass field with the help text the CLI shows for it."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every option of a training run. Defaults suit a small CPU run on the synthetic data."""

    # data
    data: str = _opt("data/synthetic", "dataset folder (DAF:re, DAFull or moeImouto layout)")
    layout: str = _opt("dafre_faces", "on-disk layout: dafre_faces | dafre_full | moeimouto")
    image_size: int = _opt(64, "side of the square images the model sees (the papers: 128 or 224)")
    transform: str = _opt("animesion", "augmentation: animesion (the paper's) | plain (resize only)")
    cache: bool = _opt(False, "decode+resize every image once into a memory-mapped cache")
    num_workers: int | None = _opt(None, "DataLoader worker processes (default: 0 on the CPU, up to 8 per GPU; "
                                         "0: load in the training process)")
    augment_on: str = _opt("auto", "where training augmentation runs: batch (whole uint8 batches on the model's "
                                   "device) | loader (per image, PIL, in the loader) | auto (batch on a GPU, and on the CPU "
                                   "from the image cache without workers, unless the transform is plain; else loader)")
    train_split: str = _opt("train", "split to train on")
    val_split: str | None = _opt("val", "split evaluated after each epoch ('none' to skip)")
    test_split: str | None = _opt(None, "split evaluated once at the end (e.g. test)")
    # model
    model: str = _opt("vit_tiny_p8", "architecture: vit_tiny_p8, vit_b16, resnet50, vilt_*, any timm name")
    head: str = _opt("cls", "classification head: cls | ifa (Intermediate Features Aggregation)")
    pretrained: bool = _opt(False, "start from pretrained weights (needs the hub, or --pretrained-path)")
    pretrained_path: str | None = _opt(None, "local pretrained weights file (.safetensors / .npz)")
    exclusion_weight: float = _opt(0.0, "weight of the layer-wise exclusion loss (0: off)")
    exclusion_temperature: float = _opt(1.0, "softmax temperature of the exclusion loss")
    exclusion_distance: int = _opt(1, "exclusion loss compares layer i with layer i+distance")
    model_kwargs: dict = field(default_factory=dict, metadata={
        "help": "extra create_model / timm keywords as JSON, e.g. '{\"depth\": 2, \"drop_path_rate\": 0.1}'"})
    # tags: text input of multimodal (vilt_*) models, and tag prediction
    predict_tags: bool = _opt(False, "add a tag-prediction head; targets from the split's tag file")
    tokenizer: str = _opt("tag", "tag tokenizer for multimodal models: tag | wordpiece")
    tokenizer_vocab_size: int | None = _opt(None, "cap (tag) or target size (wordpiece) of the vocabulary")
    tag_min_freq: int = _opt(1, "a tag must occur on this many training images to be kept")
    max_text_len: int = _opt(32, "tag tokens per image, [CLS] included")
    mask_schedule: str = _opt("none", "text masking during training: none | bert | full | cosine")
    mask_prob: float = _opt(0.15, "masking probability of the bert schedule")
    mask_warmup: float = _opt(0.1, "cosine schedule: fraction of training with no masking")
    mask_cooldown: float = _opt(0.1, "cosine schedule: final fraction of training with full masking")
    # optimisation
    epochs: int = _opt(3, "passes over the training split")
    batch_size: int = _opt(32, "images per process per micro-step (global batch = this x grad_accum x world size)")
    eval_batch_size: int | None = _opt(None, "images per evaluation batch (default: 2 x batch_size)")
    grad_accum: int = _opt(1, "micro-steps whose gradients are summed before one optimizer step")
    optimizer: str = _opt("adamw", "adamw | sgd (momentum)")
    lr: float = _opt(1e-3, "peak learning rate, reached after the warm-up")
    min_lr_ratio: float = _opt(0.01, "the cosine decays to lr x this at the end")
    warmup_fraction: float = _opt(0.05, "fraction of the optimizer steps spent warming up linearly")
    weight_decay: float = _opt(0.05, "decoupled weight decay, applied to weight matrices only")
    momentum: float = _opt(0.9, "SGD momentum (AdamW: beta1)")
    grad_clip: float = _opt(1.0, "clip the global gradient norm to this (0: off)")
    label_smoothing: float = _opt(0.0, "label smoothing of the character cross-entropy")
    # runtime
    seed: int = _opt(0, "seed of every random generator")
    device: str = _opt("auto", "auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:1 | mps")
    precision: str = _opt("auto", "auto (bf16 on CUDA, fp16 where bf16 is missing, fp32 elsewhere) | fp32 | bf16 | fp16")
    threads: int | None = _opt(None, "CPU threads per process (default: the cores shared among local processes)")
    compile: bool = _opt(False, "torch.compile the model (GPU runs; slow to start)")
    deterministic: bool = _opt(False, "deterministic kernels and no TF32 on CUDA (slower; CPU runs are "
                                      "bit-reproducible either way)")
    dist_timeout_minutes: float = _opt(60.0, "DDP: how long a rank may wait for the others (rank 0 evaluates "
                                             "while they wait)")
    log_every: int = _opt(50, "optimizer steps between loss read-backs (progress, NaN check); each one "
                              "waits for the GPU")
    # output
    out_dir: str = _opt("runs/default", "run directory: config, log.csv, checkpoints")
    resume: bool = _opt(False, "continue from the newest checkpoint in out_dir (a fresh start if none)")
    overwrite: bool = _opt(False, "start afresh in an out_dir that holds an earlier run's checkpoints "
                                  "(they are deleted); without it such a run stops with an error")
    keep_checkpoints: int = _opt(2, "keep the newest N epoch checkpoints (0: keep all)")
    eval_text_modes: str = _opt("tags,none,drop", "multimodal evaluation: with tags, no tags, some dropped")
    drop_fraction: float = _opt(0.5, "fraction of tags dropped in the 'drop' evaluation")
    tensorboard: bool = _opt(False, "also log to TensorBoard in out_dir/tb (if installed)")
    progress: bool = _opt(True, "show tqdm progress bars")
    experiment: str | None = _opt(None, "write a results record results_dir/<profile>/<experiment>.json")
    profile: str = _opt("smoke", "profile the record belongs to: smoke | cpu | paper")
    results_dir: str = _opt("results", "where results records go")
