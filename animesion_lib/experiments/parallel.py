"""Several trainings at once: a chapter's arms, two at a time on two cores.

Two runs side by side with one thread each, or one run after another on two threads: which
finishes a chapter sooner depends on the model (``benchmarks/parallel_runs.py`` times both
schedules side by side). Each run is a separate process (``spawn``: no forked torch state),
trains with ``threads`` threads and writes its own record, so the result is the same as running
the configurations one by one.

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


def train_many(configs: Sequence[TrainConfig], processes: int = 2, threads: int = 1,
               reuse: bool = False) -> list[dict[str, Any]]:
    """Train every configuration, ``processes`` at a time; summaries in the order given.

    ``processes=1`` trains in this process, one after another (no pool: tracebacks stay simple).
    A failing run raises its error here after the runs already started have finished.
    ``reuse``: a configuration that already finished unchanged (:mod:`.reuse`) is not trained
    again; its summary is then ``{"reused": True, ...}`` from the run's stamp.
    """
    from animesion_lib.experiments.reuse import finished_run

    done = {i: finished_run(c) for i, c in enumerate(configs)} if reuse else {}
    todo = [c for i, c in enumerate(configs) if not done.get(i)]
    if reuse and len(todo) < len(configs):
        print(f"reusing {len(configs) - len(todo)} finished run(s) of the same configuration; training {len(todo)}")
    if processes <= 1 or len(todo) <= 1:
        trained = iter([_train_one(c, reuse) for c in todo])
    else:
        todo = [replace(c, threads=threads) for c in todo]
        with ProcessPoolExecutor(max_workers=processes, mp_context=mp.get_context("spawn")) as pool:
            trained = iter(list(pool.map(_train_one, todo, [reuse] * len(todo))))
    return [{"reused": True, **done[i]} if done.get(i) else next(trained) for i in range(len(configs))]
