"""Figures the chapters show. Each function draws on a given axes (or a new figure) and
returns the figure, so notebooks stay one call per plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image


def _axes(ax=None, figsize=(6, 3.5)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax.figure, ax


def plot_class_sizes(images_per_class: Sequence[int], ax=None, label: str | None = None, title: str | None = None):
    """Classes sorted by size, on a log scale: the long tail at a glance."""
    fig, ax = _axes(ax)
    sizes = np.sort(np.asarray(images_per_class))[::-1]
    ax.plot(np.arange(1, len(sizes) + 1), sizes, marker="." if len(sizes) < 200 else None, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("class rank")
    ax.set_ylabel("images")
    ax.set_title(title or "Images per class, largest first")
    ax.grid(True, which="both", alpha=0.3)
    if label:
        ax.legend()
    return fig


def plot_tags_per_image(tags_per_image: Sequence[int], ax=None, title: str | None = None):
    """Histogram of the number of tags an image carries, with the mean marked."""
    fig, ax = _axes(ax)
    counts = np.asarray(tags_per_image)
    ax.hist(counts, bins=np.arange(counts.min(), counts.max() + 2) - 0.5, color="tab:purple", alpha=0.8)
    ax.axvline(counts.mean(), color="black", linestyle="--", label=f"mean {counts.mean():.1f}")
    ax.set_xlabel("tags per image")
    ax.set_ylabel("images")
    ax.set_title(title or "Tags per image")
    ax.legend()
    return fig


def plot_image_grid(paths: Sequence[str | Path], captions: Sequence[str] | None = None, columns: int = 8,
                    cell: float = 1.3, title: str | None = None):
    """A grid of images (synthetic ones: real Danbooru images are never put in the book)."""
    rows = max(1, -(-len(paths) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * cell, rows * cell * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(paths):
            with Image.open(paths[i]) as image:
                ax.imshow(image.convert("RGB"))
            if captions is not None:
                ax.set_title(captions[i], fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(curves: dict[str, Sequence[dict]], metric: str, ax=None, title: str | None = None,
                ylabel: str | None = None):
    """One line per run: ``curves`` maps a label to a record's per-epoch rows."""
    fig, ax = _axes(ax)
    for label, rows in curves.items():
        points = [(row["epoch"], row[metric]) for row in rows if row.get(metric) is not None]
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title or metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_funnel(funnel: Sequence[dict], ax=None, title: str | None = None):
    """What each filter of a dataset recipe removed: one bar per filter, in the order applied."""
    names = [row["filter"] for row in funnel]
    fig, ax = _axes(ax, figsize=(7, 0.45 * len(names) + 1))
    ax.barh(names[::-1], [row["remaining"] for row in funnel][::-1], color="tab:blue", label="remaining")
    ax.barh(names[::-1], [row["excluded"] for row in funnel][::-1], left=[row["remaining"] for row in funnel][::-1],
            color="tab:red", alpha=0.7, label="excluded")
    ax.set_xlabel("posts")
    ax.set_title(title or "Posts remaining after each filter")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig
