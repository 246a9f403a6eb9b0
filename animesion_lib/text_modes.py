"""Which tags a multimodal model sees when it is evaluated: the text modes, their metric names,
and the tables and figure of chapters 3–5 that set them side by side.

One name per mode: :class:`TextMode` holds the option value (``--eval-text-modes tags,none,drop``),
the prefix of its metrics and the label the book shows:

    =================  ==================  ==========================
    ``TextMode``       metric prefix       label
    =================  ==================  ==========================
    ``TAGS`` "tags"    ``tags.``           all tags
    ``DROP`` "drop"    ``drop50.``         50% of tags dropped
    ``NONE`` "none"    ``notags.``         no tags (image only)
    =================  ==================  ==========================

(the drop prefix and label carry the drop fraction actually used). The naming rule of records:
**a model that reads tags has every evaluation metric prefixed by its mode** (``test_tags.top1``,
``test_notags.top1``, ``val_drop50.loss``), whatever order the modes were evaluated in; **a model
that reads no text** (ViT, CNN) has one evaluation, whose metrics carry **no prefix**
(``test_top1``): no text mode applies to it. So ``test_top1`` always means an image-only model.

    frame = load_records(results_dir, profile)
    table = text_mode_table(frame, {"none": "curriculum-none", "cosine": "curriculum-cosine"})
    plot_text_modes(table)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any


class TextMode(str, Enum):
    """Which tags a multimodal model is given at evaluation; the value is the option's spelling."""

    TAGS = "tags"  # every tag of the image
    DROP = "drop"  # a random fraction of the tags removed (seeded: the same ones every time)
    NONE = "none"  # no text at all: image only, what curriculum training is meant to make work

    @classmethod
    def parse(cls, value: str | TextMode) -> TextMode:
        """``"tags"`` / ``"drop"`` / ``"none"`` (or a TextMode) -> TextMode; anything else: ValueError."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown text mode {value!r}; choose from {', '.join(m.value for m in cls)}") from None

    @classmethod
    def parse_list(cls, values: str | Iterable[str | TextMode]) -> list[TextMode]:
        """A comma-separated option (``"tags,none"``) or a list, in order, without repeats."""
        items = values.split(",") if isinstance(values, str) else list(values)
        return list(dict.fromkeys(cls.parse(v.strip() if isinstance(v, str) else v) for v in items if v != ""))

    def prefix(self, drop_fraction: float = 0.5) -> str:
        """The prefix of this mode's metric names: ``tags.``, ``notags.``, ``drop50.``."""
        return {"tags": "tags.", "none": "notags.", "drop": f"drop{_percent(drop_fraction)}."}[self.value]

    def label(self, drop_fraction: float = 0.5) -> str:
        """How the book names this mode in tables and figures."""
        return {"tags": "all tags", "none": "no tags (image only)",
                "drop": f"{_percent(drop_fraction)}% of tags dropped"}[self.value]


def _percent(fraction: float) -> int:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"drop fraction must be within [0, 1], not {fraction}")
    return round(fraction * 100)


def metric_name(metric: str, mode: TextMode | str | None, split: str | None = None, drop_fraction: float = 0.5) -> str:
    """``"top1"`` of ``split`` under ``mode`` -> ``"test_tags.top1"``; ``mode=None`` (a model that
    reads no text) -> ``"test_top1"``; without ``split``, the name :func:`evaluate_model` returns."""
    prefix = "" if mode is None else TextMode.parse(mode).prefix(drop_fraction)
    return f"{split + '_' if split else ''}{prefix}{metric}"


def metric_column(metric: str, mode: TextMode | str | None, split: str = "test", drop_fraction: float = 0.5) -> str:
    """The ``load_records`` column holding ``metric`` of ``split`` under ``mode`` (None: image-only model)."""
    return "metrics." + metric_name(metric, mode, split, drop_fraction)


def text_mode_table(
    records: pd.DataFrame,
    runs: Mapping[str, str],
    metric: str = "top1",
    split: str = "test",
    modes: Iterable[TextMode | str] = (TextMode.TAGS, TextMode.DROP, TextMode.NONE),
    drop_fraction: float = 0.5,
) -> pd.DataFrame:
    """One row per run (label -> experiment name), one column per text mode (its label).

    A mode the run was not evaluated in is NaN. An image-only model (its record holds the
    unprefixed metric) has the same number in every column: it never sees tags, so giving or
    withholding them changes nothing. Raises KeyError naming a run with no record.
    """
    import pandas as pd

    modes = TextMode.parse_list(modes)
    rows = {}
    for label, experiment in runs.items():
        match = records[records["experiment"] == experiment] if len(records) else records
        if match.empty:
            raise KeyError(f"no record for experiment {experiment!r} (label {label!r})")
        row = match.iloc[-1]
        image_only = pd.notna(row.get(metric_column(metric, None, split)))
        columns = {mode: metric_column(metric, None if image_only else mode, split, drop_fraction) for mode in modes}
        rows[label] = {mode.label(drop_fraction): float(row.get(column, float("nan")))
                       for mode, column in columns.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "run"
    return table


def difficulty_baselines(data_root: str | Path, split: str = "test") -> pd.Series:
    """The difficulty card's logistic-regression baselines (accuracy on ``split``) of a synthetic dataset."""
    import pandas as pd

    card = json.loads((Path(data_root) / "difficulty_card.json").read_text())
    acc = card["accuracy"]
    return pd.Series({
        "chance": acc["chance"],
        "majority class": acc["majority"][split],
        "tags only (LR)": acc["tags_lr"][split],
        "8×8 thumbnail (LR)": acc["image_lr"][split],
        "tags + thumbnail (LR)": acc["tags_image_lr"][split],
    }, name=f"{split} accuracy")


def curve_table(records: pd.DataFrame, runs: Mapping[str, str], metric: str, mode: TextMode | str = TextMode.TAGS,
                split: str = "val", drop_fraction: float = 0.5) -> pd.DataFrame:
    """``metric`` of ``split`` under ``mode`` along each run's per-epoch curve, one column per run
    (index: epoch). An image-only model's curve (unprefixed) stands in every mode, as in
    :func:`text_mode_table`."""
    import pandas as pd

    out = {}
    for label, experiment in runs.items():
        match = records[records["experiment"] == experiment]
        if match.empty:
            raise KeyError(f"no record for experiment {experiment!r} (label {label!r})")
        curve: list[dict[str, Any]] = match.iloc[-1]["curves"]
        image_only = any(metric_name(metric, None, split) in row for row in curve)
        column = metric_name(metric, None if image_only else mode, split, drop_fraction)
        out[label] = pd.Series({row["epoch"]: row.get(column) for row in curve}, dtype=float)
    return pd.DataFrame(out).rename_axis("epoch")


def plot_text_modes(table: pd.DataFrame, baselines: Mapping[str, float] | None = None, ax=None,
                    ylabel: str = "test top-1", title: str | None = None):
    """Grouped bars: one group per run, one bar per text mode; baselines as dashed lines."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    else:
        fig = ax.figure
    x = np.arange(len(table.index))
    width = 0.8 / max(1, len(table.columns))
    for i, column in enumerate(table.columns):
        bars = ax.bar(x + (i - (len(table.columns) - 1) / 2) * width, table[column].to_numpy(), width, label=column)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    for j, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, color=f"C{len(table.columns) + j}", linestyle="--", linewidth=1, label=name)
    ax.set_xticks(x, [str(i) for i in table.index])
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig
