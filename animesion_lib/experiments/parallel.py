"""Several trainings at once: a chapter's arms, two at a time on two cores.

Two runs side by side with one thread each, or one run after another on two threads: which
finishes a chapter sooner depends on the model (``benchmarks/parallel_runs.py`` times both
schedules side by side). Runs started together are separate processes (``spawn``: no forked
torch state); each trains with its own threads and writes its own record, so the result is the
same as running the configurations one by one.

Runs are started in rounds of ``processes``. The runs of a last, partial round (the ninth of nine
on two cores) would leave cores idle, so they start after the full rounds and share every core:
one run alone trains about 1.25 times as fast on two threads as on one (2,078 vs 1,677
images/s, ``benchmarks/parallel_runs.py --runs 2 --epochs 8``).
The thread counts follow from the number of runs alone, so a schedule is the same on every rerun.

    summaries = train_many([cfg_a, cfg_b, cfg_c], processes=2)
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from animesion_lib.config import TrainConfig


def _train_one(config: TrainConfig, reuse: bool = False) -> dict[str, Any]:
    from animesion_lib.experiments.reuse import stamp_run
    from animesion_lib.train import train

    summary = train(config)
    summary.pop("step_losses", None)  # per-step detail stays in the run's log, not the parent
    if reuse:
        stamp_run(config, summary)
    return summary


def thread_plan(runs: int, processes: int, threads: int = 1) -> list[int]:
    """Threads for each of ``runs`` runs in order: ``threads`` in the full rounds of ``processes``;
    the cores of the last, partial round shared by its runs (at least one thread each)."""
    rest = runs % processes
    return [threads] * (runs - rest) + [max(1, threads * processes // max(1, rest))] * rest


def train_many(configs: Sequence[TrainConfig], processes: int = 2, threads: int = 1,
               reuse: bool = False) -> list[dict[str, Any]]:
    """Train every configuration, ``processes`` at a time; summaries in the order given.

    ``processes=1`` trains in this process, one after another (no pool: tracebacks stay simple).
    Otherwise each run gets :func:`thread_plan`'s threads, and a last, partial round starts once
    the full rounds have finished. A failing run raises its error here after the runs already
    started have finished.
    ``reuse``: a configuration that already finished unchanged (:mod:`.reuse`) is not trained
    again; its summary is then ``{"reused": True, ...}`` from the run's stamp.
    """
    from animesion_lib.experiments.reuse import finished_run

    done = {i: finished_run(c) for i, c in enumerate(configs)} if reuse else {}
    todo = [c for i, c in enumerate(configs) if not done.get(i)]
    if reuse and len(todo) < len(configs):
        print(f"reusing {len(configs) - len(todo)} finished run(s) of the same configuration; training {len(todo)}")
    if processes <= 1:
        trained = [_train_one(c, reuse) for c in todo]
    else:
        todo = [replace(c, threads=t) for c, t in zip(todo, thread_plan(len(todo), processes, threads))]
        full = len(todo) - len(todo) % processes
        trained = _in_pool(todo[:full], processes, reuse) + _in_pool(todo[full:], len(todo) - full, reuse)
    runs = iter(trained)
    return [{"reused": True, **done[i]} if done.get(i) else next(runs) for i in range(len(configs))]


def _in_pool(configs: list[TrainConfig], processes: int, reuse: bool) -> list[dict[str, Any]]:
    if len(configs) <= 1:  # one run: in this process, no interpreter to start
        return [_train_one(c, reuse) for c in configs]
    with ProcessPoolExecutor(max_workers=processes, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_train_one, configs, [reuse] * len(configs)))
