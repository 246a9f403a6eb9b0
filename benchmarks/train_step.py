"""Training and evaluation speed of the models, and how much of the machine they use.

For each configuration: training images/s (forward + backward + optimizer step, with a
GradScaler in fp16 as in training), evaluation images/s (forward only), and model FLOP
utilisation (MFU) = FLOPs of one training step (counted by torch.utils.flop_counter) x steps/s /
a peak rate, twice: the peak matmul rate measured on this same machine and dtype, and the GPU's
datasheet dense bf16/fp16 tensor-core peak. CNN inputs and weights are channels_last on a GPU.
Variants side by side in one run: timm fused attention (SDPA) on/off, the fused AdamW (GPU
only), and end-to-end training from the decoded-image cache with the augmentation in the
loader (PIL) or on the device (batch), beside the model-only figure of the same model.
Inputs are random tensors except in the end-to-end rows. A measurement, never an assertion.

    python benchmarks/train_step.py                 # CPU rows; ViT-B/16 rows are short
    python benchmarks/train_step.py --device cuda   # adds ViT-B/16 @128, batch 64, bf16
    python benchmarks/train_step.py --device cuda --models vit_b16 --batch 256 \
        --e2e-model vit_b16 --e2e-size 128 --e2e-batch 256 --data DIR    # what gpu_check.sh runs
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from animesion_lib.train import is_cnn

REPO = Path(__file__).resolve().parents[1]

# (model, image size, batch size, timed steps) per device kind
CPU_CONFIGS = [("vit_micro_p8", 64, 32, 3), ("vit_tiny_p8", 64, 32, 3), ("resnet18", 64, 32, 2), ("vit_b16", 128, 4, 1)]
GPU_CONFIGS = [("vit_tiny_p8", 64, 256, 20), ("vit_b16", 128, 64, 20), ("resnet50", 128, 64, 20)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synthetic",
                        help="dataset for the end-to-end cache rows (skipped when absent)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--quick", action="store_true", help="one timed step per row (a smoke check)")
    parser.add_argument("--models", nargs="+", default=None, help="only these rows' models")
    parser.add_argument("--batch", type=int, default=None, help="batch size of every row (default: per row)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps of every row")
    parser.add_argument("--e2e-model", default="vit_micro_p8", help="model of the end-to-end rows")
    parser.add_argument("--e2e-size", type=int, default=64)
    parser.add_argument("--e2e-batch", type=int, default=32)
    parser.add_argument("--e2e-steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=None, help="loader workers of the end-to-end rows "
                        "(default: 0 on the CPU, 8 on a GPU)")
    return parser.parse_args()


# Dense (no sparsity) bf16/fp16 tensor-core peak, TFLOP/s, from NVIDIA's datasheets; first match wins.
DATASHEET_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
                    ("GH200", 989.0), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
                    ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0), ("V100", 125.0), ("T4", 65.0)]


def datasheet_peak(device: torch.device, precision: str) -> float | None:
    """The datasheet peak FLOP/s of this GPU in bf16/fp16, or None (CPU, fp32, an unlisted GPU)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in DATASHEET_TFLOPS if key in name), None)


def peak_matmul_flops(device: torch.device, dtype: torch.dtype) -> float:
    """Best-of measured FLOP/s of a large square matmul: the denominator of MFU."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        for _ in range(3):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t) / 3)
    return 2 * n**3 / best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(name: str, size: int, device: torch.device, fused_attn: bool):
    import timm.layers

    from animesion_lib.models import create_model

    timm.layers.set_fused_attn(fused_attn)  # read by timm's Attention when it is built
    torch.manual_seed(0)
    model = create_model(name, num_classes=100, image_size=size).to(device)
    if device.type == "cuda" and is_cnn(model):
        model = model.to(memory_format=torch.channels_last)
    return model


def measure(name, size, batch, steps, device, precision, fused_attn, fused_opt, warmup, peak) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from animesion_lib.device import autocast

    model = build(name, size, device, fused_attn)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused_opt) if device.type == "cuda" else \
        torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    if device.type == "cuda" and is_cnn(model):
        x = x.contiguous(memory_format=torch.channels_last)  # as the training loop feeds a CNN
    y = torch.randint(0, 100, (batch,), device=device)
    batch_dict = {"image": x, "label": y}
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")  # as in training

    def train_step():
        with autocast(device, precision):
            loss, _ = model.loss(model(x), batch_dict)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:  # forward + backward of one step
        with autocast(device, precision):
            loss, _ = model.loss(model(x), batch_dict)
        loss.backward()
    flops = counter.get_total_flops()
    opt.zero_grad(set_to_none=True)

    model.train()
    for _ in range(warmup):
        train_step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        train_step()
    sync(device)
    train_s = (time.perf_counter() - t) / steps

    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            with autocast(device, precision):
                model(x)
        sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            with autocast(device, precision):
                model(x)
        sync(device)
        eval_s = (time.perf_counter() - t) / steps
    return {"train img/s": batch / train_s, "eval img/s": batch / eval_s, "MFU %": 100 * flops / train_s / peak,
            "GFLOP/step": flops / 1e9, "FLOP/s": flops / train_s}


def end_to_end(args, cache: bool, augment_on: str, device, precision, cache_dir: Path) -> float:
    """Training images/s of ``--e2e-model`` reading the dataset (decode or cache, augment), as
    ``train()`` does: loader workers, pinned memory, fused AdamW on a GPU, fp16 with a scaler."""
    from torch.utils.data import DataLoader, RandomSampler

    from animesion_lib.data import CharacterDataset, collate
    from animesion_lib.data.batch_augment import BatchAugment
    from animesion_lib.device import autocast

    size, batch, steps = args.e2e_size, args.e2e_batch, (2 if args.quick else args.e2e_steps)
    ds = CharacterDataset(args.data, "train", image_size=size, cache=cache_dir if cache else False,
                          device_augment=augment_on == "batch", progress=False)
    augment = BatchAugment("animesion", size) if augment_on == "batch" else None
    workers = args.workers if args.workers is not None else (8 if device.type == "cuda" else 0)
    # sampling with replacement: as many batches as asked for, from one iterator (workers start once)
    sampler = RandomSampler(ds, replacement=True, num_samples=(steps + args.warmup + 1) * batch)
    loader = DataLoader(ds, batch_size=batch, sampler=sampler, collate_fn=collate, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda")
    model = build(args.e2e_model, size, device, True)
    layout = torch.channels_last if device.type == "cuda" and is_cnn(model) else torch.contiguous_format
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    generator = torch.Generator().manual_seed(0)
    timed, start = 0, None
    for i, batch_data in enumerate(loader):
        if i == args.warmup + 1:  # the first steps (worker start, kernels' warm-up) are not timed
            sync(device)
            start, timed = time.perf_counter(), 0
        image = batch_data["image"].to(device, non_blocking=True)
        image = (augment(image, generator) if augment is not None else image).contiguous(memory_format=layout)
        label = batch_data["label"].to(device, non_blocking=True)
        with autocast(device, precision):
            loss, _ = model.loss(model(image), {"label": label})
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        timed += image.shape[0]
    sync(device)
    return timed / (time.perf_counter() - start)


def print_model_rows(args, device, precision, peak: float, datasheet: float | None) -> None:
    configs = GPU_CONFIGS if device.type == "cuda" else CPU_CONFIGS
    header = ("| model | size | batch | SDPA | fused AdamW | train img/s | eval img/s | GFLOP/step "
              "| MFU % (measured peak) | MFU % (datasheet peak) |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name, size, batch, steps in configs:
        if args.models and name not in args.models:
            continue
        batch, steps = args.batch or batch, 1 if args.quick else (args.steps or steps)
        variants = [(True, True), (False, True)] if name.startswith("vit") else [(True, True)]
        if device.type == "cuda":
            variants = variants[:1] + [(True, False)] if args.models else variants + [(True, False)]
        for fused_attn, fused_opt in variants:
            r = measure(name, size, batch, steps, device, precision, fused_attn, fused_opt, args.warmup, peak)
            opt_label = ("on" if fused_opt else "off") if device.type == "cuda" else "n/a (CPU)"
            sheet = f"{100 * r['FLOP/s'] / datasheet:.1f}" if datasheet else "n/a"
            print(f"| {name} | {size} | {batch} | {'on' if fused_attn else 'off'} | {opt_label} | "
                  f"{r['train img/s']:.1f} | {r['eval img/s']:.1f} | {r['GFLOP/step']:.2f} | {r['MFU %']:.1f} "
                  f"| {sheet} |", flush=True)


def print_end_to_end(args, device, precision) -> None:
    import tempfile

    print(f"\nend to end from {args.data}, {args.e2e_model} @{args.e2e_size}, batch {args.e2e_batch}, "
          f"{2 if args.quick else args.e2e_steps} steps, {precision}; model only = random tensors already on the device:\n")
    print("| input | augmentation | train img/s |\n|---|---|---|")
    model_only = measure(args.e2e_model, args.e2e_size, args.e2e_batch, 2 if args.quick else args.e2e_steps,
                         device, precision, True, device.type == "cuda", args.warmup, float("inf"))
    print(f"| model only | - | {model_only['train img/s']:.1f} |", flush=True)
    rows = [(False, "loader"), (True, "loader"), (True, "batch")]
    with tempfile.TemporaryDirectory() as cache_dir:
        for cache, augment_on in rows:
            rate = end_to_end(args, cache, augment_on, device, precision, Path(cache_dir))
            where = f"batch ({device.type})" if augment_on == "batch" else "loader (PIL)"
            print(f"| {'decoded-image cache' if cache else 'image files'} | {where} | {rate:.1f} |", flush=True)


def main() -> int:
    from animesion_lib.device import describe_device, select_device, select_precision

    args = parse_args()
    device = select_device(args.device)
    precision = select_precision(device, "auto")
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    peak = peak_matmul_flops(device, dtype)
    datasheet = datasheet_peak(device, precision)

    print(f"$ python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"\ndevice: {describe_device(device)} ({device.type}), precision {precision}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}, python {platform.python_version()}")
    print(f"peak matmul ({precision}): {peak / 1e12:.3f} TFLOP/s measured, "
          + (f"{datasheet / 1e12:.0f} TFLOP/s datasheet (dense)\n" if datasheet else "no datasheet figure\n"))
    print_model_rows(args, device, precision, peak, datasheet)
    if (args.data / "labels" / "train.csv").is_file():
        print_end_to_end(args, device, precision)
    else:
        print(f"\n(no dataset at {args.data}: end-to-end rows skipped; `make data` writes one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
