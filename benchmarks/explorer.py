"""How fast the model explorer answers on the CPU, for the book's model sizes.

Each row is one model trained for one epoch on the smoke data (the weights do not change the
speed), loaded once into the explorer's ``LoadedRun``; then the median of repeated calls of:
an image-only answer, an answer with 8 tags given and the attention map, the tag-effects table
(8 tags given, 3 to add: 12 tag sets in one batch), and the whole widget refresh (all of these
plus the tables and the overlay). Beside them, ``predict_images`` per call (it reloads the
checkpoint every time, as the chapter's widget did before the explorer). A measurement, never
an assertion.

    python benchmarks/explorer.py                        # data/synthetic-smoke, one thread
    python benchmarks/explorer.py --threads 2 --repeats 50
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

# name, model, image size, model kwargs: the chapters' CPU models, then a ViT-Tiny-sized ViLT
CONFIGS = [
    ("inference chapter (smoke)", "vilt_micro_p8", 32, {"embed_dim": 64, "depth": 3, "num_heads": 2}),
    ("tag prediction (cpu)", "vilt_micro_p8", 32, {"embed_dim": 64, "depth": 4, "num_heads": 2}),
    ("recognition ViT (cpu)", "vit_micro_p8", 32, {"embed_dim": 64, "depth": 4, "num_heads": 2}),
    ("ViLT-Tiny @64", "vilt_tiny_p8", 64, {}),
]


def median_ms(call, repeats: int) -> float:
    call()  # warm-up: first-call allocations are not what a reader waits for on every change
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(data: Path, workdir: Path, name: str, model: str, size: int, kwargs: dict, repeats: int) -> dict:
    from PIL import Image

    from animesion_lib.data import read_split
    from animesion_lib.prediction import predict_images
    from animesion_lib.explore import LoadedRun, ModelExplorer, tag_effects
    from animesion_lib.train import TrainConfig, train

    out = workdir / model / str(size) / str(kwargs.get("depth", ""))
    multimodal = model.startswith("vilt")
    train(TrainConfig(data=str(data), out_dir=str(out), model=model, model_kwargs=kwargs, image_size=size,
                      predict_tags=True, epochs=1, batch_size=64, progress=False, threads=torch.get_num_threads(),
                      **({"max_text_len": 24} if multimodal else {})))
    sample = max(read_split(data, "dafre_faces", "test", with_tags=True), key=lambda s: len(s.tags))
    image, tags = Image.open(sample.path).convert("RGB"), list(sample.tags[:8]) if multimodal else []
    start = time.perf_counter()
    run = LoadedRun(out)
    load_ms = (time.perf_counter() - start) * 1000
    explorer = ModelExplorer({name: out}, [sample])
    explorer.top_k.value = 5
    return {
        "model": f"{name}: {model} {size}px {sum(p.numel() for p in run.model.parameters()) / 1e6:.2f}M",
        "load once": load_ms,
        "image only": median_ms(lambda: run.answer(image, top_k=5), repeats),
        "8 tags + attention": median_ms(lambda: run.answer(image, tags, top_k=5, attention=True), repeats),
        "tag effects (12 sets)": median_ms(lambda: tag_effects(run, image, tags, ["smile", "blush", "solo"]), repeats)
        if multimodal else float("nan"),  # an image-only model reads no tags
        "widget refresh": median_ms(lambda: explorer.show(sample.rel, image, sample, tags), repeats),
        "predict_images per call": median_ms(lambda: predict_images(out, [sample.path], top_k=5, tags=tags,
                                                                     device="cpu"), max(3, repeats // 5)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synthetic-smoke")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from animesion_book.runner import ensure_synthetic

    ensure_synthetic(args.data, "smoke")
    with tempfile.TemporaryDirectory() as workdir:
        rows = [measure(args.data, Path(workdir), *config, args.repeats) for config in CONFIGS]
    columns = list(rows[0])
    print(f"$ python {' '.join(map(shlex.quote, sys.argv))}   (torch {torch.__version__}, {args.threads} thread(s), "
          f"median ms of {args.repeats} calls)\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(v if isinstance(v, str) else "—" if v != v else f"{v:.1f}" for v in row.values()) + " |")


if __name__ == "__main__":
    main()
