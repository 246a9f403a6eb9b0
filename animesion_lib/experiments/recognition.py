"""The recognition chapter as library code: [CLS] vs IFA (± the exclusion loss) on a ViT.

The papers fine-tune pretrained ViTs, so the heads are compared in the transfer regime: one
backbone pretrained on the synthetic source universe (:mod:`animesion_lib.pretraining`),
fine-tuned with each head over several seeds. Beside them: the same ViT trained from scratch
(what pretraining buys) and CNN baselines. Every arm is read against the difficulty card's
8×8-thumbnail logistic regression on the same test split, and a head's gain is a verdict only
by :func:`animesion_lib.verdicts.compare`.

    plan = RecognitionPlan(data="data/synthetic-cpu", profile="cpu", seeds=[0, 1, 2], ...)
    run_recognition(plan)                                   # trains, writes the records
    table, verdicts = summarise(load_records("results", "cpu"), plan, baseline=0.676)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from animesion_lib.config import TrainConfig
from animesion_lib.pretraining import SourceUniverse, pretrain
from animesion_lib.verdicts import Arm, Verdict, compare, mean_and_se, plateaued

HEADS = {"cls": dict(head="cls"), "ifa": dict(head="ifa"), "ifa+excl": dict(head="ifa")}
ARM_ORDER = ["vit-cls", "vit-ifa", "vit-ifa+excl", "vit-cls-scratch"]  # then the CNNs, by name


@dataclass
class RecognitionPlan:
    """Everything the chapter varies; the notebook's parameters fill it."""

    data: str
    profile: str = "smoke"
    results_dir: str = "results"
    runs_dir: str = "runs"
    seeds: list[int] = field(default_factory=lambda: [0])
    vit_model: str = "vit_micro_p8"
    vit_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 32
    epochs: int = 1               # fine-tuning epochs (and from-scratch epochs)
    lr: float = 1e-3
    pretrain_epochs: int = 1      # 0: no transfer, the heads train from scratch
    pretrained_path: str | None = None  # real pretrained weights (e.g. ImageNet-21k) instead of the source universe
    universe: SourceUniverse = SourceUniverse()
    scratch: bool = True          # the [CLS] ViT from scratch beside the fine-tuned ones ...
    scratch_epochs: int = 1       # ... trained to its own plateau (from scratch needs more epochs)
    scratch_lr: float = 1e-3
    real_data: str | None = None  # real face crops (DAF:re layout): each head fine-tuned there too
    real_epochs: int = 1
    cnn_models: list[str] = field(default_factory=list)
    cnn_epochs: int = 1
    cnn_lr: float = 1e-3
    exclusion_weight: float = 0.1
    batch_size: int = 64
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.1
    transform: str = "plain"
    processes: int = 2            # trainings at once (one thread each)
    cache_dir: str | None = None  # pretraining cache (default: $ANIMESION_CACHE_DIR)

    def base(self, name: str, **overrides: Any) -> TrainConfig:
        """The shared settings of one run named ``recognition-<name>``."""
        settings = dict(data=self.data, image_size=self.image_size, transform=self.transform, cache=True,
                        batch_size=self.batch_size, lr=self.lr, epochs=self.epochs, test_split="test",
                        label_smoothing=self.label_smoothing, warmup_fraction=self.warmup_fraction,
                        experiment=f"recognition-{name}", profile=self.profile, results_dir=self.results_dir,
                        out_dir=f"{self.runs_dir}/{self.profile}/recognition-{name}", keep_checkpoints=1,
                        progress=False, overwrite=True)
        return TrainConfig(**{**settings, **overrides})


def pretrained_weights(plan: RecognitionPlan) -> str | None:
    """The source-universe backbone (trained once, then cached), the plan's own pretrained weights
    file when it names one, or None without transfer."""
    if plan.pretrained_path:
        return plan.pretrained_path
    if plan.pretrain_epochs <= 0:
        return None
    config = plan.base("pretrain", model=plan.vit_model, model_kwargs=plan.vit_kwargs, epochs=plan.pretrain_epochs,
                       threads=plan.processes)
    return str(pretrain(plan.data, config, plan.universe, cache_dir=plan.cache_dir))


def arms(plan: RecognitionPlan, weights: str | None) -> list[TrainConfig]:
    """Every training run of the chapter, in the order they are started."""
    vit = dict(model=plan.vit_model, model_kwargs=plan.vit_kwargs, pretrained_path=weights)
    # the CNNs first: each is the slowest run, and started first it overlaps the ViTs
    runs = [plan.base(f"syn-{cnn}", model=cnn, epochs=plan.cnn_epochs, lr=plan.cnn_lr) for cnn in plan.cnn_models]
    for seed in plan.seeds:
        for head, kw in HEADS.items():
            excl = plan.exclusion_weight if head == "ifa+excl" else 0.0
            runs.append(plan.base(f"syn-vit-{head}-s{seed}", seed=seed, exclusion_weight=excl, **vit, **kw))
        if plan.scratch and weights is not None:
            runs.append(plan.base(f"syn-vit-cls-scratch-s{seed}", seed=seed, epochs=plan.scratch_epochs,
                                  lr=plan.scratch_lr, **{**vit, "pretrained_path": None}))
    if plan.real_data:  # synthetic source -> real faces: the domain shift, one seed per head
        runs += [plan.base(f"real-vit-{head}", data=plan.real_data, epochs=plan.real_epochs, head=head, **vit)
                 for head in ("cls", "ifa")]
    return runs


def run_recognition(plan: RecognitionPlan) -> list[str]:
    """Pretrain (or reuse), then train every arm, ``plan.processes`` at a time; their experiment names."""
    from animesion_lib.experiments.parallel import train_many

    runs = arms(plan, pretrained_weights(plan))
    train_many(runs, processes=plan.processes)
    return [r.experiment for r in runs]


def arm_name(experiment: str) -> str:
    """``recognition-syn-vit-ifa-s2`` -> ``vit-ifa``."""
    return re.sub(r"-s\d+$", "", experiment.removeprefix("recognition-syn-"))


def summarise(records: pd.DataFrame, experiments: list[str], baseline: float, metric: str = "metrics.test_top1"
              ) -> tuple[pd.DataFrame, dict[str, Verdict]]:
    """Per arm: mean ± SE over seeds, seeds, plateau, above the baseline, the near-twin characters'
    top-1 (mean over seeds; nan for records made before it was measured); and the heads' verdicts.

    ``records`` is :func:`animesion_lib.results.load_records` of the profile, of which only
    ``experiments`` (what :func:`run_recognition` trained) are read: an older record of an arm
    this plan no longer has must not join the table. ``baseline`` is the 8×8-thumbnail logistic
    regression's test accuracy on the same split.
    """
    syn = records[records.experiment.isin(experiments) & records.experiment.str.startswith("recognition-syn-")].copy()
    if syn.empty:
        raise ValueError("no recognition-syn-* records: run_recognition first")
    syn["arm"] = syn.experiment.map(arm_name)
    syn["plateau"] = syn.curves.map(lambda rows: plateaued([r.get("val_top1") for r in rows]))
    rows, scored = [], {}
    for arm, group in syn.groupby("arm", sort=False):
        mean, se = mean_and_se(list(group[metric]))
        scored[arm] = Arm(arm, dict(zip(group["config.seed"], group[metric])),
                          baseline=("8×8 thumbnail LR", baseline), plateau=bool(group.plateau.all()))
        twin = group["metrics.test_twin_top1"].mean() if "metrics.test_twin_top1" in group else float("nan")
        rows.append(dict(arm=arm, mean=mean, se=se, seeds=len(group), plateau=bool(group.plateau.all()),
                         above_baseline=mean > baseline, near_twin_top1=twin))
    table = pd.DataFrame(rows).set_index("arm")
    table = table.loc[sorted(table.index, key=lambda a: (ARM_ORDER.index(a) if a in ARM_ORDER else len(ARM_ORDER), a))]
    verdicts = {f"{a} vs vit-cls": compare(scored[a], scored["vit-cls"])
                for a in ("vit-ifa", "vit-ifa+excl") if a in scored and "vit-cls" in scored}
    if "vit-cls-scratch" in scored and "vit-cls" in scored:
        verdicts["pretrained vs scratch"] = compare(scored["vit-cls"], scored["vit-cls-scratch"])
    return table, verdicts


def relative_gains(records: pd.DataFrame, experiments: list[str], metric: str = "metrics.test_top1") -> pd.DataFrame:
    """Animesion's measure, per seed: ``acc_head / acc_cls - 1`` for IFA and IFA + exclusion."""
    vit = records[records.experiment.isin(experiments)
                  & records.experiment.str.match(r"recognition-syn-vit-(cls|ifa|ifa\+excl)-s\d+$")]
    by_seed = vit.assign(arm=vit.experiment.map(arm_name)).pivot_table(index="config.seed", columns="arm", values=metric)
    gain = pd.DataFrame({f"{a} vs cls": by_seed[f"vit-{a}"] / by_seed["vit-cls"] - 1 for a in ("ifa", "ifa+excl")})
    gain.index = gain.index.astype(int).rename("seed")
    return gain
