"""Training and evaluation speed of the models, and how much of the machine they use.

For each configuration: training images/s (forward + backward + optimizer step), evaluation
images/s (forward only), and model FLOP utilisation (MFU) = FLOPs of one training step (counted by
torch.utils.flop_counter) x steps/s / the peak matmul rate measured on this same machine and
dtype. Variants side by side in one run: timm fused attention (SDPA) on/off, the fused AdamW
(GPU only), and end-to-end training from the image files with the decoded-image cache off/on.
Inputs are random tensors except in the end-to-end rows. A measurement, never an assertion.

    python benchmarks/train_step.py                 # CPU rows; ViT-B/16 rows are short
    python benchmarks/train_step.py --device cuda   # adds ViT-B/16 @128, batch 64, bf16
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
    return parser.parse_args()


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
    if device.type == "cuda" and sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) > 1:
        model = model.to(memory_format=torch.channels_last)
    return model


def measure(name, size, batch, steps, device, precision, fused_attn, fused_opt, warmup, peak) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from animesion_lib.device import autocast

    model = build(name, size, device, fused_attn)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused_opt) if device.type == "cuda" else \
        torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 100, (batch,), device=device)
    batch_dict = {"image": x, "label": y}

    def train_step():
        with autocast(device, precision):
            loss, _ = model.loss(model(x), batch_dict)
        loss.backward()
        opt.step()
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
            "GFLOP/step": flops / 1e9}


def end_to_end(data: Path, cache: bool, device, precision, steps: int) -> float:
    """Training images/s of vit_micro_p8 @64 reading the real files (decode + augment), cache off/on."""
    import tempfile

    from torch.utils.data import DataLoader

    from animesion_lib.data import CharacterDataset, collate
    from animesion_lib.device import autocast

    with tempfile.TemporaryDirectory() as cache_dir:
        ds = CharacterDataset(data, "train", image_size=64, cache=Path(cache_dir) if cache else False)
        loader = DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate, drop_last=True)
        model = build("vit_micro_p8", 64, device, True)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        it = iter(loader)
        timed = 0
        for i in range(steps + 1):
            if i == 1:  # the first step (and the cache build) is not timed
                sync(device)
                t, timed = time.perf_counter(), 0
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with autocast(device, precision):
                loss, _ = model.loss(model(batch["image"]), batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            timed += batch["image"].shape[0] if i else 0
        sync(device)
        return timed / (time.perf_counter() - t)


def main() -> int:
    from animesion_lib.device import describe_device, select_device, select_precision

    args = parse_args()
    device = select_device(args.device)
    precision = select_precision(device, "auto")
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    peak = peak_matmul_flops(device, dtype)

    print(f"$ python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"\ndevice: {describe_device(device)} ({device.type}), precision {precision}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}, python {platform.python_version()}")
    print(f"peak matmul ({precision}): {peak / 1e12:.3f} TFLOP/s (measured)\n")

    configs = GPU_CONFIGS if device.type == "cuda" else CPU_CONFIGS
    header = "| model | size | batch | SDPA | fused AdamW | train img/s | eval img/s | GFLOP/step | MFU % |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name, size, batch, steps in configs:
        steps = 1 if args.quick else steps
        is_vit = name.startswith("vit")
        variants = [(True, True), (False, True)] if is_vit else [(True, True)]
        if device.type == "cuda":
            variants += [(True, False)]  # the fused optimizer only exists on the GPU
        for fused_attn, fused_opt in variants:
            r = measure(name, size, batch, steps, device, precision, fused_attn, fused_opt, args.warmup, peak)
            opt_label = ("on" if fused_opt else "off") if device.type == "cuda" else "n/a (CPU)"
            print(f"| {name} | {size} | {batch} | {'on' if fused_attn else 'off'} | {opt_label} | "
                  f"{r['train img/s']:.1f} | {r['eval img/s']:.1f} | {r['GFLOP/step']:.2f} | {r['MFU %']:.1f} |",
                  flush=True)

    if (args.data / "labels" / "train.csv").is_file():
        steps = 2 if args.quick else 10
        print(f"\nend to end from image files ({args.data}), vit_micro_p8 @64, batch 32, {steps} steps:\n")
        print("| decoded-image cache | train img/s |\n|---|---|")
        for cache in (False, True):
            print(f"| {'on' if cache else 'off'} | {end_to_end(args.data, cache, device, precision, steps):.1f} |",
                  flush=True)
    else:
        print(f"\n(no dataset at {args.data}: end-to-end cache rows skipped; `make data` writes one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
