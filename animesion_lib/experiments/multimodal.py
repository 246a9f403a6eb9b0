"""The multimodal chapters as library code: one family of runs shared by three chapters.

The multimodal (ViLT vs the image-only ViT, tokenizers), curriculum (masking schedules) and
tag-prediction chapters compare arms of *one* family: the same pretrained backbone (the source
universe of :mod:`animesion_lib.pretraining`), the same fine-tuning settings, a tag-prediction
head on every model, and the same auxiliary losses for every arm — the masked-tag (MLM) objective
is an arm of its own, never a side effect of a schedule. An arm is trained once per seed and read
by every chapter that needs it (the curriculum's ``none`` schedule *is* the multimodal chapter's
ViLT), through :func:`animesion_lib.experiments.parallel.train_many`'s reuse of finished runs.

    plan = MultimodalPlan(data="data/synthetic-cpu", profile="cpu", seeds=[0, 1, 2], ...)
    names = run_arms(plan, ["vit", "vilt", "vilt-cosine"])   # trains what is not there yet
    arm = read_arm(records, names, "vilt-cosine", TextMode.NONE, baseline=("8×8 thumbnail LR", 0.676))
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from animesion_lib.config import TrainConfig
from animesion_lib.pretraining import SourceUniverse
from animesion_lib.text_modes import TextMode, metric_column, metric_name
from animesion_lib.verdicts import Arm, mean_and_se, plateaued

# arm -> what it changes from the plan's shared settings (see MultimodalPlan.config)
ARMS: dict[str, dict[str, Any]] = {
    "vit": dict(image_only=True),                                     # image only, the ViLTs' twin
    "vit-asl": dict(image_only=True, tag_loss="asl"),                 # the same, asymmetric tag loss
    "vilt": dict(mask_schedule="none"),                               # every tag, always (Animesion's ViLT)
    "vilt-wordpiece": dict(mask_schedule="none", tokenizer="wordpiece"),
    "vilt-bert": dict(mask_schedule="bert"),                          # 15% of the tags hidden
    "vilt-full": dict(mask_schedule="full"),                          # every tag hidden: image-only training
    "vilt-cosine": dict(mask_schedule="cosine"),                      # Dan:mul's curriculum
    "vilt-cosine-mlm": dict(mask_schedule="cosine", mlm=True),        # ... plus the masked-tag objective
}
LENGTH_ARM = re.compile(r"vilt-len(\d+)$")  # "vilt-len8": the ViLT with a shorter text


@dataclass
class MultimodalPlan:
    """Everything the three chapters share; each notebook's parameters fill it."""

    data: str
    profile: str = "smoke"
    results_dir: str = "results"
    runs_dir: str = "runs"
    seeds: list[int] = field(default_factory=lambda: [0])
    vit_model: str = "vit_micro_p8"
    vilt_model: str = "vilt_micro_p8"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 32
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 64
    max_text_len: int = 16
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.1
    transform: str = "plain"
    mask_warmup: float = 0.1     # cosine: fraction of training with every tag visible
    mask_cooldown: float = 0.2   # cosine: final fraction with every tag hidden
    drop_fraction: float = 0.5   # the "half the tags" evaluation
    wordpiece_vocab: int = 1000
    asl: dict[str, float] = field(default_factory=lambda: {"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05})
    # the pretrained backbone: the recognition chapter's, reused from the cache when its settings match
    pretrain_epochs: int = 1
    pretrain_lr: float = 1e-3
    pretrained_path: str | None = None
    universe: SourceUniverse = SourceUniverse()
    processes: int = 2
    cache_dir: str | None = None

    def config(self, arm: str, seed: int, weights: str | None) -> TrainConfig:
        """The run of ``arm`` with ``seed``, named ``multimodal-<arm>-s<seed>``."""
        spec = dict(ARMS.get(arm) or _length_arm(arm))
        image_only = spec.pop("image_only", False)
        kwargs = dict(self.model_kwargs)
        if "tag_loss" in spec:
            kwargs.update(tag_loss=spec.pop("tag_loss"), asl=self.asl)
        if not image_only:
            kwargs["mlm"] = spec.pop("mlm", False)
            spec.update(model=self.vilt_model, eval_text_modes="tags,drop,none", mask_warmup=self.mask_warmup,
                        mask_cooldown=self.mask_cooldown, drop_fraction=self.drop_fraction)
            if spec.get("tokenizer") == "wordpiece":
                spec["tokenizer_vocab_size"] = self.wordpiece_vocab
        name = f"multimodal-{arm}-s{seed}"
        settings = dict(data=self.data, model=self.vit_model, model_kwargs=kwargs, pretrained_path=weights,
                        image_size=self.image_size, transform=self.transform, cache=True, epochs=self.epochs,
                        lr=self.lr, batch_size=self.batch_size, max_text_len=self.max_text_len,
                        label_smoothing=self.label_smoothing, warmup_fraction=self.warmup_fraction,
                        predict_tags=True, seed=seed, test_split="test", experiment=name, profile=self.profile,
                        results_dir=self.results_dir, out_dir=f"{self.runs_dir}/{self.profile}/{name}",
                        keep_checkpoints=1, progress=False, overwrite=True)
        return TrainConfig(**{**settings, **spec})


def _length_arm(arm: str) -> dict[str, Any]:
    match = LENGTH_ARM.match(arm)
    if not match:
        raise ValueError(f"unknown multimodal arm {arm!r}; choose from {', '.join(ARMS)} or vilt-len<N>")
    return dict(mask_schedule="none", max_text_len=int(match.group(1)))


def pretrained_weights(plan: MultimodalPlan) -> str | None:
    """The recognition chapter's source-universe backbone (from the cache when it was trained with
    these settings), the plan's own weights file, or None without transfer."""
    from animesion_lib.experiments import recognition

    if plan.pretrained_path or plan.pretrain_epochs <= 0:
        return plan.pretrained_path
    kwargs = {k: v for k, v in plan.model_kwargs.items() if k not in ("mlm",)}
    return recognition.pretrained_weights(recognition.RecognitionPlan(
        data=plan.data, profile=plan.profile, results_dir=plan.results_dir, runs_dir=plan.runs_dir,
        vit_model=plan.vit_model, vit_kwargs=kwargs, image_size=plan.image_size, lr=plan.pretrain_lr,
        pretrain_epochs=plan.pretrain_epochs, universe=plan.universe, batch_size=plan.batch_size,
        label_smoothing=plan.label_smoothing, warmup_fraction=plan.warmup_fraction, transform=plan.transform,
        processes=plan.processes, cache_dir=plan.cache_dir))


def run_arms(plan: MultimodalPlan, arms: Sequence[str], seeds: Sequence[int] | None = None) -> list[str]:
    """Train every seed (``plan.seeds``, or ``seeds``) of ``arms`` that has not finished with these
    settings; the experiment names.

    ViLTs are started first (they are the slow runs), so the image-only ones fill the gaps.
    """
    from animesion_lib.experiments.parallel import train_many

    weights = pretrained_weights(plan)
    order = sorted(arms, key=lambda a: a.startswith("vit"))
    configs = [plan.config(arm, seed, weights) for seed in (plan.seeds if seeds is None else seeds) for arm in order]
    train_many(configs, processes=plan.processes, reuse=True)
    return [c.experiment for c in configs]


def arm_of(experiment: str) -> str:
    """``multimodal-vilt-cosine-s2`` -> ``vilt-cosine``."""
    return re.sub(r"-s\d+$", "", experiment.removeprefix("multimodal-"))


def arm_records(records: pd.DataFrame, experiments: Sequence[str], arm: str) -> pd.DataFrame:
    """The records of ``arm`` among ``experiments`` (what :func:`run_arms` returned)."""
    found = records[records.experiment.isin(experiments) & (records.experiment.map(arm_of) == arm)]
    if found.empty:
        raise KeyError(f"no records of arm {arm!r} among the experiments run: run_arms(plan, [{arm!r}]) first")
    return found


def scores(records: pd.DataFrame, experiments: Sequence[str], arm: str, mode: TextMode | str | None,
           metric: str = "top1") -> dict[int, float]:
    """Seed -> test ``metric`` of ``arm`` given ``mode``'s tags (image-only arms: whatever the mode)."""
    found = arm_records(records, experiments, arm)
    mode = None if arm.startswith("vit") else mode
    return {int(s): float(v) for s, v in zip(found["config.seed"], found[metric_column(metric, mode)])}


def read_arm(records: pd.DataFrame, experiments: Sequence[str], arm: str, mode: TextMode | str | None,
             baseline: Any = None, metric: str = "top1", label: str | None = None) -> Arm:
    """``arm`` under ``mode`` as a :class:`~animesion_lib.verdicts.Arm`: its test scores per seed, its
    baseline(s), and whether every seed's validation curve in that mode levelled off."""
    found = arm_records(records, experiments, arm)
    mode = None if arm.startswith("vit") else mode
    key = metric_name(metric, mode, "val")
    flat = all(plateaued([row.get(key) for row in curve]) for curve in found.curves)
    return Arm(label or arm, scores(records, experiments, arm, mode, metric), baseline=baseline, plateau=flat)


def arm_table(arms: Sequence[Arm]) -> pd.DataFrame:
    """Per arm: mean ± SE over seeds, seeds, plateau, and which baselines it beats."""
    rows = []
    for a in arms:
        mean, se = mean_and_se(list(a.scores.values()))
        beats = [f"{'✓' if mean > score else '✗'} {name} ({score:.1%})" for name, score in a.baselines()]
        rows.append({"arm": a.name, "mean": mean, "se": se, "seeds": len(a.scores), "plateau": bool(a.plateau),
                     "baselines": "; ".join(beats) or "–"})
    return pd.DataFrame(rows).set_index("arm")


def run_late_fusion(plan: MultimodalPlan, experiments: Sequence[str]) -> list[str]:
    """Late fusion (:mod:`animesion_lib.late_fusion`) of each seed's image-only ViT with the tags
    logistic regression, written as records ``multimodal-late-fusion-s<seed>``; their names."""
    import time

    from animesion_lib.data.fingerprint import data_fingerprint
    from animesion_lib.late_fusion import late_fusion
    from animesion_lib.results import make_record, write_record

    names = []
    for experiment in [e for e in experiments if arm_of(e) == "vit"]:
        config = plan.config("vit", int(experiment.rsplit("-s", 1)[1]), None)
        start = time.perf_counter()
        # the regression sees the tags the tag-token ViLT sees: at most max_text_len - 1 ([CLS] takes one)
        metrics = late_fusion(config.out_dir, seed=config.seed, max_tags=plan.max_text_len - 1)
        name = f"multimodal-late-fusion-s{config.seed}"
        write_record(make_record(experiment=name, profile=plan.profile, kind="evaluate", seed=config.seed,
                                 config={"image_model": config.out_dir, "tags_model": "logistic regression on the bag of tags",
                                         "max_tags": plan.max_text_len - 1,
                                         "weight_chosen_on": "val"},
                                 metrics=metrics, wall_time_s=time.perf_counter() - start,
                                 data_fingerprint=data_fingerprint(plan.data)), plan.results_dir)
        names.append(name)
    return names


THUMBNAIL, TAGS_LR = "8×8 thumbnail (LR)", "tags only (LR)"


def image_baseline(card: pd.Series) -> tuple[str, float]:
    """What an image-only model must beat: the difficulty card's thumbnail logistic regression."""
    return THUMBNAIL, float(card[THUMBNAIL])


def text_baselines(card: pd.Series, twin: Arm) -> list[tuple[str, float]]:
    """What a model that reads tags must beat: the tags logistic regression *and* its image-only twin."""
    return [(TAGS_LR, float(card[TAGS_LR])), (f"its image-only twin, {twin.name}", twin.mean)]


def multimodal_summary(records: pd.DataFrame, experiments: Sequence[str], card: pd.Series
                       ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The multimodal chapter: each arm against its baselines, and the three verdicts
    (ViLT vs its image-only twin, ViLT vs late fusion, WordPiece vs one token per tag)."""
    from animesion_lib.verdicts import compare

    vit = read_arm(records, experiments, "vit", None, image_baseline(card), label="ViT (image only)")
    need = text_baselines(card, vit)
    vilt = read_arm(records, experiments, "vilt", TextMode.TAGS, need, label="ViLT, tag tokens")
    arms = [vit, vilt]
    verdicts = {"vilt vs vit": compare(vilt, vit)}
    fused = records[records.experiment.isin(experiments) & records.experiment.str.startswith("multimodal-late-fusion-")]
    if len(fused):
        fusion = Arm("late fusion (ViT + tags LR)", dict(zip(fused["seed"].astype(int), fused["metrics.test_top1"])),
                     baseline=need, plateau=vit.plateau)
        arms.append(fusion)
        verdicts["vilt vs late fusion"] = compare(vilt, fusion)
    if any(arm_of(e) == "vilt-wordpiece" for e in experiments):
        wordpiece = read_arm(records, experiments, "vilt-wordpiece", TextMode.TAGS, need, label="ViLT, WordPiece")
        arms.append(wordpiece)
        verdicts["wordpiece vs tag tokens"] = compare(wordpiece, vilt)
    return arm_table(arms), verdicts


def plan_from(parameters: dict[str, Any], runs_dir: str = "../runs") -> MultimodalPlan:
    """A plan from a notebook's resolved parameters (``notebooks/params/multimodal_family.yml``)."""
    fields = set(MultimodalPlan.__dataclass_fields__) - {"data", "universe", "runs_dir"}
    given = {k: v for k, v in parameters.items() if k in fields}
    universe = SourceUniverse(classes=parameters["source_classes"], images=parameters["source_images"])
    return MultimodalPlan(data=parameters["data_root"], universe=universe, runs_dir=runs_dir, **given)


def settings(plan: MultimodalPlan) -> pd.Series:
    """The plan's settings as a reader wants them (one row each)."""
    kw = plan.model_kwargs
    return pd.Series({
        "image size": plan.image_size, "image tokens": (plan.image_size // kw.get("patch_size", 16)) ** 2,
        "text tokens ([CLS] included)": plan.max_text_len, **{f"transformer {k}": v for k, v in kw.items()},
        "starting weights": plan.pretrained_path or (f"source universe ({plan.universe.classes} characters, "
                                                     f"{plan.pretrain_epochs} epochs)" if plan.pretrain_epochs > 0
                                                     else "none (from scratch)"),
        "fine-tuning epochs": plan.epochs, "learning rate": plan.lr, "batch size": plan.batch_size,
        "seeds": len(plan.seeds), "heads": "character + tags (every model)",
        "cosine curriculum": f"{plan.mask_warmup:.0%} all tags, ramp, {plan.mask_cooldown:.0%} none",
    }, name="setting", dtype=object).to_frame()
