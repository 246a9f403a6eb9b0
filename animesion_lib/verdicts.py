"""Verdicts: when a comparison of two methods says something about the methods.

A chapter may say "A beats B" only when three things hold (see the reproducibility chapter):

1. every model it compares has *learned the task*: its score beats its matched trivial baseline
   (an image-only model beats the 8×8-thumbnail logistic regression, a model that reads tags beats
   the tags logistic regression, tag mAP beats the tag-prevalence prior, ...) on the same split;
2. every model has *trained to a plateau* (see :func:`plateaued`);
3. the *paired* difference over at least three seeds exceeds two standard errors.

Otherwise the verdict is "inconclusive", with the reason. One function decides, :func:`compare`,
so every chapter applies the same rule and the rule is tested once.

    a = Arm("IFA", {0: .71, 1: .74, 2: .72}, baseline=("8×8 thumbnail LR", .675), plateau=True)
    b = Arm("[CLS]", {0: .70, 1: .71, 2: .70}, baseline=("8×8 thumbnail LR", .675), plateau=True)
    compare(a, b).text   # 'IFA beats [CLS] by +2.0 points (± 0.6 SE, 3 paired seeds)'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MIN_SEEDS = 3
Z = 2.0  # "beyond noise" means more than two standard errors of the paired difference


@dataclass(frozen=True)
class Arm:
    """One method's score per seed, with what it must beat to count as trained.

    ``baseline`` is ``(name, score)`` of the matched trivial baseline on the same split, or a list
    of them (a model that reads tags must beat the tags LR *and* its image-only twin).
    ``plateau`` is whether its validation curve levelled off (None: not known, counts as no).
    """

    name: str
    scores: Mapping[int, float]
    baseline: tuple[str, float] | Sequence[tuple[str, float]] | None = None
    plateau: bool | None = True

    def baselines(self) -> list[tuple[str, float]]:
        if self.baseline is None:
            return []
        if isinstance(self.baseline, tuple) and isinstance(self.baseline[0], str):
            return [self.baseline]
        return list(self.baseline)

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores)


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`compare`: ``status`` is one of ``better``, ``worse``, ``no effect``
    (both learned, difference within noise) or ``inconclusive`` (with ``reasons``)."""

    status: str
    text: str
    difference: float = math.nan
    standard_error: float = math.nan
    seeds: int = 0
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def conclusive(self) -> bool:
        return self.status != "inconclusive"


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n)); SE is nan below two values."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_and_se needs at least one value")
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[float, float, int]:
    """Mean and standard error of ``a[s] - b[s]`` over the seeds both arms ran, and their count."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return math.nan, math.nan, 0
    mean, se = mean_and_se([a[s] - b[s] for s in seeds])
    return mean, se, len(seeds)


def plateaued(curve: Sequence[float], tail: float = 0.2, tolerance: float = 0.01) -> bool:
    """Whether a validation curve levelled off: its last ``tail`` of epochs (at least two) gained,
    on average, less than ``tolerance`` (one point of accuracy) over the best epoch before them.

    The tail's mean, not its best: a validation split of a few hundred images moves a point or so
    from epoch to epoch by chance alone, and one lucky epoch at the end would otherwise count as
    a curve still rising. A curve of fewer than five epochs cannot show a plateau.
    """
    values = [v for v in curve if v is not None and not math.isnan(v)]
    if len(values) < 5:
        return False
    k = max(2, math.ceil(tail * len(values)))
    before, last = values[:-k], values[-k:]
    return sum(last) / k - max(before) < tolerance


def not_learned(arm: Arm) -> list[str]:
    """Why an arm cannot be read as a method (empty when it beats its baselines on a plateau)."""
    reasons = []
    for name, score in arm.baselines():
        if not arm.mean > score:
            reasons.append(f"{arm.name} ({arm.mean:.1%}) is below {name} ({score:.1%})")
    if not arm.plateau:
        reasons.append(f"{arm.name}'s validation curve had not levelled off")
    return reasons


def compare(a: Arm, b: Arm, min_seeds: int = MIN_SEEDS, z: float = Z, unit: str = "points") -> Verdict:
    """Decide whether ``a`` beats ``b``: the one rule every chapter uses (module docstring)."""
    diff, se, n = paired_difference(a.scores, b.scores)
    reasons = not_learned(a) + not_learned(b)
    if n < min_seeds:
        reasons.append(f"{n} paired seed{'s' if n != 1 else ''}, fewer than {min_seeds}")
    scale = 100 if unit == "points" else 1
    digits = 1 if not se * scale < 0.05 else 2  # a standard error below 0.05 would print as "± 0.0"
    size = f"{diff * scale:+.{digits}f} {unit} (± {se * scale:.{digits}f} SE, {n} paired seeds)" if n > 1 else ""
    if reasons:
        text = "inconclusive: " + "; ".join(reasons)
        return Verdict("inconclusive", text, diff, se, n, tuple(reasons))
    if abs(diff) > z * se:
        status = "better" if diff > 0 else "worse"
        text = f"{a.name} {'beats' if diff > 0 else 'is worse than'} {b.name} by {size}"
    else:
        status, text = "no effect", f"{a.name} and {b.name} do not differ beyond seed noise: {size}"
    return Verdict(status, text, diff, se, n, ())


def record_verdicts(verdicts: Mapping[str, Verdict], *, experiment: str, profile: str, results_dir: str,
                    config: Mapping[str, object] | None = None, data_fingerprint: str | None = None) -> str:
    """Write a chapter's verdicts as a results record (``kind: "verdicts"``), so that the
    reproduction report can tell when a fresh run changes one; returns the record's path.

    Its metrics are each verdict's paired difference and standard error.
    """
    from animesion_lib.results import make_record, write_record

    metrics = {}
    for key, v in verdicts.items():
        metrics[f"{key}.difference"] = None if math.isnan(v.difference) else v.difference
        metrics[f"{key}.standard_error"] = None if math.isnan(v.standard_error) else v.standard_error
    record = make_record(experiment=experiment, profile=profile, kind="verdicts", config=dict(config or {}),
                         seed=0, metrics=metrics, wall_time_s=0.0, data_fingerprint=data_fingerprint,
                         verdicts={k: {"status": v.status, "text": v.text, "seeds": v.seeds,
                                       "reasons": list(v.reasons)} for k, v in verdicts.items()})
    return str(write_record(record, results_dir))
