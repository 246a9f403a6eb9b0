"""The hyper-parameter chapter as library code: one knob at a time, at equal optimizer steps.

Animesion varies image size, batch size, depth and patch size around a base configuration. Here
every arm fine-tunes the same pretrained backbone (the recognition chapter's, from the cache)
over several seeds, and every arm takes the *same number of optimizer steps*: a batch twice as
large trains twice as many epochs, so that a knob is not confounded with how far training got.
Each value is read against the base by :func:`animesion_lib.verdicts.compare`, and every arm
must beat the thumbnail logistic regression first.

Knobs that change the architecture (depth, patch size) no longer fit the one pretrained backbone
every arm starts from, so a plan with them must train from scratch (``pretrain_epochs: 0`` and no
``pretrained_path``).

    plan = HyperparameterPlan(data="data/synthetic-cpu", base={"image_size": 32, "batch_size": 64, ...}, ...)
    names = run_hyperparameters(plan)
    table, verdicts = hyperparameter_summary(load_records("results", "cpu"), names, plan, baseline=0.676)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from animesion_lib.analysis.grid import one_at_a_time
from animesion_lib.config import TrainConfig
from animesion_lib.pretraining import SourceUniverse
from animesion_lib.verdicts import Arm, compare, mean_and_se, plateaued

ARCHITECTURE_KNOBS = ("depth", "patch_size")


@dataclass
class HyperparameterPlan:
    """The base point, the grids, and the shared settings; the notebook's parameters fill it."""

    data: str
    base: dict[str, Any]          # image_size, batch_size, depth, patch_size
    grids: dict[str, list[Any]]
    profile: str = "smoke"
    results_dir: str = "results"
    runs_dir: str = "runs"
    seeds: list[int] = field(default_factory=lambda: [0])
    vit_model: str = "vit_micro_p8"
    embed_dim: int = 32
    num_heads: int = 2
    head: str = "cls"
    epochs: int = 1               # of the base; other batch sizes: as many optimizer steps
    lr: float = 1e-3
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.1
    transform: str = "plain"
    pretrain_epochs: int = 1      # 0: every arm from scratch
    pretrain_lr: float = 1e-3
    pretrained_path: str | None = None
    universe: SourceUniverse = SourceUniverse()
    processes: int = 2
    cache_dir: str | None = None

    def runs(self) -> list[tuple[str, dict[str, Any]]]:
        """``[(arm name, settings)]``: the base, then each knob's other values."""
        return one_at_a_time(self.base, self.grids)

    def epochs_for(self, batch_size: int) -> int:
        """Epochs that give ``batch_size`` as many optimizer steps as the base takes."""
        return max(1, round(self.epochs * batch_size / self.base["batch_size"]))

    def config(self, name: str, settings: dict[str, Any], seed: int, weights: str | None) -> TrainConfig:
        experiment = f"hyperparameters-{name}-s{seed}"
        kwargs = dict(embed_dim=self.embed_dim, num_heads=self.num_heads, depth=settings["depth"],
                      patch_size=settings["patch_size"])
        return TrainConfig(
            data=self.data, model=self.vit_model, head=self.head, model_kwargs=kwargs, pretrained_path=weights,
            image_size=settings["image_size"], batch_size=settings["batch_size"],
            epochs=self.epochs_for(settings["batch_size"]), lr=self.lr, label_smoothing=self.label_smoothing,
            warmup_fraction=self.warmup_fraction, transform=self.transform, cache=True, seed=seed,
            test_split="test", experiment=experiment, profile=self.profile, results_dir=self.results_dir,
            out_dir=f"{self.runs_dir}/{self.profile}/{experiment}", keep_checkpoints=1, progress=False, overwrite=True)


def pretrained_weights(plan: HyperparameterPlan) -> str | None:
    """The recognition chapter's backbone (the base's shape), or the plan's file, or None (from
    scratch); a ValueError when a knob changes the architecture and the arms would be pretrained."""
    from animesion_lib.experiments import recognition

    if not plan.pretrained_path and plan.pretrain_epochs <= 0:
        return None
    changed = [k for k in ARCHITECTURE_KNOBS if any(v != plan.base[k] for v in plan.grids.get(k, []))]
    if changed:
        raise ValueError(f"knobs {changed} change the architecture, which the one pretrained backbone does not fit: "
                         "drop them from the grids, or set pretrain_epochs: 0 and no pretrained_path (all from scratch)")
    if plan.pretrained_path:
        return plan.pretrained_path
    kwargs = dict(embed_dim=plan.embed_dim, depth=plan.base["depth"], num_heads=plan.num_heads,
                  patch_size=plan.base["patch_size"])
    return recognition.pretrained_weights(recognition.RecognitionPlan(
        data=plan.data, profile=plan.profile, results_dir=plan.results_dir, runs_dir=plan.runs_dir,
        vit_model=plan.vit_model, vit_kwargs=kwargs, image_size=plan.base["image_size"], lr=plan.pretrain_lr,
        pretrain_epochs=plan.pretrain_epochs, universe=plan.universe, batch_size=plan.base["batch_size"],
        label_smoothing=plan.label_smoothing, warmup_fraction=plan.warmup_fraction, transform=plan.transform,
        processes=plan.processes, cache_dir=plan.cache_dir))


def run_hyperparameters(plan: HyperparameterPlan) -> list[str]:
    """Train every arm with every seed (the slowest first), ``plan.processes`` at a time; their names."""
    from animesion_lib.experiments.parallel import train_many

    weights = pretrained_weights(plan)
    configs = [plan.config(name, settings, seed, weights) for seed in plan.seeds for name, settings in plan.runs()]
    configs.sort(key=lambda c: -c.epochs * (c.image_size / c.model_kwargs["patch_size"]) ** 2)
    train_many(configs, processes=plan.processes, reuse=True)
    return [c.experiment for c in configs]


def arm_of(experiment: str) -> str:
    """``hyperparameters-batch_size-128-s2`` -> ``batch_size-128``."""
    return re.sub(r"-s\d+$", "", experiment.removeprefix("hyperparameters-"))


def hyperparameter_summary(records: pd.DataFrame, experiments: list[str], plan: HyperparameterPlan, baseline: float,
                           metric: str = "metrics.test_top1") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per arm: settings, tokens, epochs, mean ± SE, plateau, speed; and each arm's verdict vs the base."""
    found = records[records.experiment.isin(experiments)].assign(arm=lambda r: r.experiment.map(arm_of))
    if found.empty:
        raise KeyError("no hyperparameters-* records among the experiments: run_hyperparameters first")
    arms, rows = {}, []
    for name, settings in plan.runs():
        group = found[found.arm == name]
        if group.empty:
            continue
        flat = all(plateaued([r.get("val_top1") for r in curve]) for curve in group.curves)
        arms[name] = Arm(name, dict(zip(group["config.seed"].astype(int), group[metric])),
                         baseline=("8×8 thumbnail LR", baseline), plateau=flat)
        mean, se = mean_and_se(list(group[metric]))
        rows.append({"arm": name, **settings, "tokens": (settings["image_size"] // settings["patch_size"]) ** 2,
                     "epochs": plan.epochs_for(settings["batch_size"]), "mean": mean, "se": se, "seeds": len(group),
                     "plateau": flat, "above_baseline": mean > baseline,
                     "train img/s": group["throughput.train_images_per_s"].mean(), "wall s": group["wall_time_s"].mean()})
    verdicts = {f"{name} vs base": compare(arm, arms["base"]) for name, arm in arms.items()
                if name != "base" and "base" in arms}
    return pd.DataFrame(rows).set_index("arm"), verdicts


def plan_from(parameters: dict[str, Any], runs_dir: str = "../runs") -> HyperparameterPlan:
    """A plan from the notebook's resolved parameters (``notebooks/params/06_hyperparameters.yml``)."""
    fields = set(HyperparameterPlan.__dataclass_fields__) - {"data", "universe", "runs_dir"}
    given = {k: v for k, v in parameters.items() if k in fields}
    universe = SourceUniverse(classes=parameters["source_classes"], images=parameters["source_images"])
    return HyperparameterPlan(data=parameters["data_root"], universe=universe, runs_dir=runs_dir, **given)


def plot_knobs(table: pd.DataFrame, plan: HyperparameterPlan, baseline: float):
    """Test top-1 (mean ± 2 SE over seeds) against each knob's values, one panel per knob."""
    import matplotlib.pyplot as plt

    knobs = [k for k, values in plan.grids.items() if len(values) > 1]
    fig, axes = plt.subplots(1, len(knobs), figsize=(3.4 * len(knobs), 3.2), constrained_layout=True, squeeze=False)
    for ax, knob in zip(axes[0], knobs):
        rows = table[(table.index == "base") | table.index.str.startswith(f"{knob}-")].sort_values(knob)
        ax.errorbar(rows[knob], rows["mean"], yerr=2 * rows["se"].fillna(0), marker="o", capsize=3, label="test top-1 ± 2 SE")
        ax.axhline(baseline, color="grey", linestyle="--", label="8×8 thumbnail LR")
        ax.set_xlabel(knob.replace("_", " ")); ax.set_xticks(list(rows[knob])); ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("test top-1"); axes[0][0].legend(fontsize=7)
    return fig
