"""Two cores, several small trainings: one at a time with two threads, or two at once with one each?

    python benchmarks/parallel_runs.py --data data/synthetic-cpu --runs 4 --epochs 2

Trains the same ``--runs`` configurations (the recognition chapter's ViT, seeds 0..runs-1) one
at a time on one thread and on two, and two at a time (``train_many``'s schedule), side by side in
one invocation, and prints the wall time and the images per second of the whole batch of runs.
The first two rows say what a run left alone gains from the second core. Run it on an otherwise
idle machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

from animesion_lib.config import TrainConfig
from animesion_lib.experiments.parallel import train_many


def configs(data: str, runs: int, epochs: int, out: str) -> list[TrainConfig]:
    base = TrainConfig(data=data, model="vit_micro_p8", image_size=32, transform="plain", cache=True, epochs=epochs,
                       batch_size=64, model_kwargs={"embed_dim": 64, "depth": 4, "num_heads": 4, "patch_size": 8},
                       device="cpu", progress=False, overwrite=True, keep_checkpoints=1, val_split="none")
    return [replace(base, seed=s, out_dir=f"{out}/run{s}") for s in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synthetic-cpu")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        train_many(configs(args.data, 1, 1, out), processes=1)  # build the image cache once, outside the timing
        for label, processes, threads in (("one at a time, 1 thread", 1, 1), ("one at a time, 2 threads", 1, 2),
                                          ("two at once, 1 thread each (an odd last run: alone, 2 threads)", 2, 1)):
            runs = [replace(c, threads=threads) for c in configs(args.data, args.runs, args.epochs, out)]
            start = time.perf_counter()
            summaries = train_many(runs, processes=processes, threads=threads)
            seconds = time.perf_counter() - start
            images = sum(s["steps"] * c.batch_size for s, c in zip(summaries, runs))
            rows.append((label, seconds, images / seconds))
    print(f"\n`python benchmarks/parallel_runs.py --data {args.data} --runs {args.runs} --epochs {args.epochs}`\n")
    print("| schedule | wall time (s) | training images / s |\n|---|---:|---:|")
    for label, seconds, rate in rows:
        print(f"| {label} | {seconds:.1f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
