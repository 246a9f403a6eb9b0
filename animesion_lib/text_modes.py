"""Multimodal results across text-evaluation modes: the tables and the figure of chapters 3–5.

A multimodal (ViLT) run is evaluated three ways (``animesion_lib.evaluate``): with all of an
image's tags, with a fraction of them dropped, and with no text at all (image only). Its record
stores them as ``test_top1``, ``test_drop50.top1`` and ``test_notags.top1`` (likewise for every
metric). An image-only model has only the first. This module turns records into one table
*run × text mode* — the shape of Dan:mul's central claim (a curriculum keeps image-only accuracy
while using tags when present) — and draws it; it also reads the synthetic dataset's difficulty
card so the models can be put beside the cheap tags-only / thumbnail baselines.

    frame = load_records(results_dir, profile)
    table = text_mode_table(frame, {"none": "curriculum-none", "cosine": "curriculum-cosine"})
    plot_text_modes(table)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

# column label -> the text mode of animesion_lib.evaluate (in the order the book shows them)
MODE_LABELS = {"tags": "all tags", "drop": "half the tags", "none": "no tags (image only)"}


def metric_column(metric: str, mode: str = "tags", split: str = "test", drop_fraction: float = 0.5) -> str:
    """The ``load_records`` column holding ``metric`` of ``split`` under one text ``mode``."""
    prefix = {"tags": "", "none": "notags.", "drop": f"drop{round(drop_fraction * 100)}."}
    if mode not in prefix:
        raise ValueError(f"mode must be one of {sorted(prefix)}, not {mode!r}")
    return f"metrics.{split}_{prefix[mode]}{metric}"


def text_mode_table(
    records: pd.DataFrame,
    runs: Mapping[str, str],
    metric: str = "top1",
    split: str = "test",
    modes: tuple[str, ...] = ("tags", "drop", "none"),
    drop_fraction: float = 0.5,
) -> pd.DataFrame:
    """One row per run (label -> experiment name), one column per text mode.

    A mode the run was not evaluated in is NaN, except that an image-only model (a record with no
    ``notags`` metric) has the same number in every mode: it never sees tags, so giving or
    withholding them changes nothing. Raises KeyError naming a run with no record.
    """
    rows = {}
    for label, experiment in runs.items():
        match = records[records["experiment"] == experiment] if len(records) else records
        if match.empty:
            raise KeyError(f"no record for experiment {experiment!r} (label {label!r})")
        row = match.iloc[-1]
        image_only = pd.isna(row.get(metric_column(metric, "none", split, drop_fraction)))
        values = {}
        for mode in modes:
            column = metric_column(metric, "tags" if image_only else mode, split, drop_fraction)
            values[MODE_LABELS[mode]] = float(row[column]) if column in row and pd.notna(row[column]) else float("nan")
        rows[label] = values
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "run"
    return table


def difficulty_baselines(data_root: str | Path, split: str = "test") -> pd.Series:
    """The difficulty card's logistic-regression baselines (accuracy on ``split``) of a synthetic dataset."""
    card = json.loads((Path(data_root) / "difficulty_card.json").read_text())
    acc = card["accuracy"]
    return pd.Series({
        "chance": acc["chance"],
        "majority class": acc["majority"][split],
        "tags only (LR)": acc["tags_lr"][split],
        "8×8 thumbnail (LR)": acc["image_lr"][split],
        "tags + thumbnail (LR)": acc["tags_image_lr"][split],
    }, name=f"{split} accuracy")


def curve_table(records: pd.DataFrame, runs: Mapping[str, str], column: str) -> pd.DataFrame:
    """``column`` of each run's per-epoch curve, one column per run (index: epoch)."""
    out = {}
    for label, experiment in runs.items():
        match = records[records["experiment"] == experiment]
        if match.empty:
            raise KeyError(f"no record for experiment {experiment!r} (label {label!r})")
        curve: list[dict[str, Any]] = match.iloc[-1]["curves"]
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
