"""Images per second of the training input pipeline: decode + augment + collate.

Runs the train split through a DataLoader (workers 0 and 2) with and without the decoded-image
cache, with the augmentation on either path side by side -- ``loader`` (PIL, per image, in the
loader) and ``batch`` (uint8 batches, augmented as whole batches by ``BatchAugment`` where the
model runs: here the CPU, in the training process) -- on the real faces and optionally on a
synthetic dataset, and prints one markdown table headed by the exact command. The cache is built into a temporary folder, so its build time is
measured every run and nothing is left behind. A second table splits one image's cost into the
pipeline's stages (decode, resize, each random op, normalisation), which says what the cache can
save and what it cannot. A measurement, not a test: no timed assertions.

    python benchmarks/data_pipeline.py --real-data ../shared/data/holo14 --epochs 3
    python benchmarks/data_pipeline.py --synthetic data/synthetic-smoke --device cuda   # batch path on a GPU
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from animesion_lib.data import CharacterDataset, collate
from animesion_lib.data.batch_augment import BatchAugment

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-data", type=Path, default=Path(os.environ.get("ANIMESION_REAL_DATA", REPO.parent / "shared" / "data" / "holo14")),
                        help="real faces in the DAF:re layout")
    parser.add_argument("--synthetic", type=Path, default=None, help="a synthetic dataset (animesion make-synthetic)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per configuration (later epochs = 2..N)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--transform", default="animesion")
    parser.add_argument("--paths", nargs="+", default=["loader", "batch"], choices=["loader", "batch"],
                        help="where the augmentation runs (see the module docstring)")
    parser.add_argument("--device", default="cpu", help="where the batch path augments (cpu | cuda)")
    return parser.parse_args()


def time_epochs(ds: CharacterDataset, workers: int, batch_size: int, epochs: int,
                augment: BatchAugment | None = None, device: str = "cpu") -> list[float]:
    """Images per second of each epoch through a shuffling DataLoader (and ``augment`` on ``device``)."""
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate,
                        persistent_workers=workers > 0, pin_memory=device.startswith("cuda"))
    generator = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for batch in loader:
            if augment is not None:
                augment(batch["image"].to(device, non_blocking=True), generator)
            seen += batch["image"].shape[0]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - start))
    return rates


def stage_costs(root: Path, args: argparse.Namespace, count: int = 200) -> dict[str, float]:
    """Milliseconds per image of each stage of the train pipeline, on the first ``count`` images.

    One thread, as in a DataLoader worker. "cache read" is what replaces decode + resize when
    the decoded-image cache is on: a memory-mapped uint8 row turned back into an image.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ds = CharacterDataset(root, "train", image_size=args.image_size, transform=args.transform, progress=False)
    costs: dict[str, float] = {}

    def timed(stage: str, fn, *fn_args):
        start = time.perf_counter()
        out = fn(*fn_args)
        costs[stage] = costs.get(stage, 0.0) + time.perf_counter() - start
        return out

    for sample in ds.samples[:count]:
        image = timed("decode (JPEG to RGB)", ds.load_image, sample)
        image = timed("resize", ds.resize, image)
        pixels = np.asarray(image)
        timed("cache read (replaces decode + resize)", lambda: Image.fromarray(np.array(pixels)))
        for op in ds.augment.transforms:
            image = timed(type(op).__name__, op, image)
    batch = torch.from_numpy(np.stack([np.asarray(ds.resize(ds.load_image(s))) for s in ds.samples[:64]]))
    augment = BatchAugment(args.transform, args.image_size)
    start = time.perf_counter()
    augment(batch, torch.Generator().manual_seed(0))
    batch_path_ms = 1000 * (time.perf_counter() - start) / batch.shape[0]
    torch.set_num_threads(threads)
    n = min(count, len(ds))
    ms = {stage: 1000 * total / n for stage, total in costs.items()}
    per_epoch = sum(v for stage, v in ms.items() if not stage.startswith(("decode", "resize", "cache read")))
    uncached = per_epoch + ms["decode (JPEG to RGB)"] + ms["resize"]
    cached = per_epoch + ms["cache read (replaces decode + resize)"]
    return ms | {"**total, uncached**": uncached, "**total, cached**": cached,
                 "**the most the cache can give (uncached / cached)**": uncached / cached,
                 "batch path: crop + flip + jitter + normalise, per image of a batch of 64": batch_path_ms}


def bench(name: str, root: Path, args: argparse.Namespace, cache_dir: Path) -> list[str]:
    rows = []
    baseline = None
    for cache in (False, True):
        start = time.perf_counter()
        ds = CharacterDataset(root, "train", image_size=args.image_size, transform=args.transform,
                              cache=cache_dir / name if cache else False)
        build = time.perf_counter() - start
        for workers in args.workers:
            for path in args.paths:
                ds.device_augment = path == "batch"
                augment = BatchAugment(args.transform, args.image_size) if path == "batch" else None
                rates = time_epochs(ds, workers, args.batch_size, args.epochs, augment, args.device)
                later = sum(rates[1:]) / len(rates[1:]) if len(rates) > 1 else rates[0]
                baseline = baseline or later  # the first row: no cache, the first worker count, loader path
                first = workers == args.workers[0] and path == args.paths[0]
                build_cell = f"{build:.1f}" if cache and first else ("(built)" if cache else "-")
                where = f"batch ({args.device})" if path == "batch" else "loader (PIL)"
                rows.append(f"| {name} ({len(ds)} imgs) | {'on' if cache else 'off'} | {workers} | {where} "
                            f"| {build_cell} | {rates[0]:.0f} | {later:.0f} | {later / baseline:.1f}x |")
                print(rows[-1], file=sys.stderr, flush=True)  # progress while the table is built
    return rows


def main() -> None:
    args = parse_args()
    header = [
        f"$ python {shlex.join(sys.argv)}",
        "",
        f"train split, {args.transform} transform at {args.image_size} px, batch {args.batch_size}, "
        f"{args.epochs} epochs; cpu cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}, {platform.processor() or platform.machine()}",
        "",
        "| data | cache | workers | augmentation | cache build s | epoch 1 img/s | later epochs img/s | vs the first row |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows, notes, costs = [], [], {}
    with tempfile.TemporaryDirectory(prefix="animesion-bench-cache-") as tmp:
        datasets = [("real faces", args.real_data), ("synthetic", args.synthetic)]
        for name, root in datasets:
            if root is None:
                notes.append(f"{name}: skipped (no --synthetic DIR given; make one with `animesion make-synthetic`)")
            elif not (root / "labels" / "train.csv").is_file():
                notes.append(f"{name}: skipped ({root} has no labels/train.csv)")
            else:
                rows += bench(name.replace(" ", "-"), root, args, Path(tmp))
                costs[name] = stage_costs(root, args)
    print("\n".join(header + rows))
    if costs:
        names = list(costs)
        stages = list(dict.fromkeys(stage for c in costs.values() for stage in c))
        print("\nPer-image cost of each stage, ms (one thread, first 200 train images):\n")
        print(f"| stage | {' | '.join(names)} |")
        print(f"| --- |{' ---: |' * len(names)}")
        for stage in stages:
            cells = [f"{costs[n][stage]:.3f}" if stage in costs[n] else "–" for n in names]
            print(f"| {stage} | {' | '.join(cells)} |")
    for note in notes:
        print(f"\nNote: {note}")


if __name__ == "__main__":
    main()
