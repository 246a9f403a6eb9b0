"""Statistics of a dataset folder, in the form of Dan:mul's Table 2.

Only label files are read, plus a small sample of images for the resolution, so this is quick
even on the full DAF:re. The datasets chapter and ``animesion info`` both use it, and
:func:`markdown_table` is the one writer of the statistics tables (the Danbooru builder's
``statistics.md``, the difficulty card).
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from animesion_lib.data.fingerprint import data_fingerprint
from animesion_lib.data.layout import available_splits, class_file, detect_layout, read_classes, read_split


def markdown_table(header: Sequence[str], rows: Iterable[Sequence], align: str | None = None) -> list[str]:
    """A GitHub Markdown table as lines; ``align`` has one ``l`` or ``r`` per column (default all l).

    Cells are written as they are, unpadded (``| a | 1 |``), so a table reads the same in a diff
    and in a rendered page.
    """
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} columns, the header {len(header)}")

    def line(cells: Iterable) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    rule = line("---:" if a == "r" else "---" for a in align)
    return [line(header), rule, *(line(row) for row in rows)]


@dataclass
class DatasetStatistics:
    """What a reader wants to know about a dataset before training on it."""

    root: str
    layout: str
    classes: int
    images: int
    images_per_split: dict[str, int]
    images_per_class: list[int]  # indexed by class id, all splits together
    resolution: tuple[int, int] | None  # median (width, height) of a sample of images
    tags_per_image: list[int] = field(default_factory=list)  # empty when the dataset has no tags
    distinct_tags: int = 0
    fingerprint: str = ""

    @property
    def has_tags(self) -> bool:
        return bool(self.tags_per_image)

    @property
    def mean_tags_per_image(self) -> float | None:
        return statistics.fmean(self.tags_per_image) if self.tags_per_image else None

    @property
    def imbalance(self) -> float:
        """Largest class over smallest: how long the tail is."""
        nonzero = [n for n in self.images_per_class if n]
        return max(nonzero) / min(nonzero) if nonzero else 0.0

    def table_row(self) -> dict[str, object]:
        """One row of a Table-2-style comparison (images, classes, resolution, tags per image)."""
        return {
            "images": self.images,
            "classes": self.classes,
            "resolution": f"{self.resolution[0]}×{self.resolution[1]}" if self.resolution else "-",
            "tags per image": round(self.mean_tags_per_image, 1) if self.has_tags else None,
            "distinct tags": self.distinct_tags if self.has_tags else None,
        }

    def as_metrics(self) -> dict[str, float | int]:
        """Flat numbers for a results record."""
        metrics: dict[str, float | int] = {
            "images": self.images,
            "classes": self.classes,
            "min_images_per_class": min(self.images_per_class, default=0),
            "max_images_per_class": max(self.images_per_class, default=0),
            "median_images_per_class": statistics.median(self.images_per_class) if self.images_per_class else 0,
            "imbalance": self.imbalance,
        }
        metrics.update({f"images_{split}": n for split, n in self.images_per_split.items()})
        if self.resolution:
            metrics["width"], metrics["height"] = self.resolution
        if self.has_tags:
            metrics["mean_tags_per_image"] = self.mean_tags_per_image
            metrics["min_tags_per_image"] = min(self.tags_per_image)
            metrics["max_tags_per_image"] = max(self.tags_per_image)
            metrics["distinct_tags"] = self.distinct_tags
        return metrics

    def to_dict(self) -> dict:
        return asdict(self)


def dataset_statistics(root: str | Path, layout: str | None = None, sample_images: int = 64,
                       seed: int = 0) -> DatasetStatistics:
    """Count images, classes and tags of every split of ``root``; sample image sizes."""
    layout = layout or detect_layout(root)
    classes = read_classes(class_file(root, layout))
    per_split, per_class, samples = {}, Counter(), []
    for split in available_splits(root, layout):
        split_samples = read_split(root, layout, split, classes=classes)
        per_split[split] = len(split_samples)
        per_class.update(s.class_id for s in split_samples)
        samples += split_samples

    tags_per_image, vocabulary = [], set()
    for split in available_splits(root, layout, with_tags=True):
        for s in read_split(root, layout, split, with_tags=True, classes=classes):
            tags_per_image.append(len(s.tags or ()))
            vocabulary.update(s.tags or ())

    resolution = None
    if samples:
        picked = random.Random(seed).sample(samples, min(sample_images, len(samples)))
        sizes = []
        for s in picked:
            with Image.open(s.path) as image:  # reads the header only
                sizes.append(image.size)
        resolution = (int(statistics.median(w for w, _ in sizes)), int(statistics.median(h for _, h in sizes)))

    return DatasetStatistics(
        root=str(root),
        layout=layout,
        classes=len(classes),
        images=sum(per_split.values()),
        images_per_split=per_split,
        images_per_class=[per_class.get(i, 0) for i in range(len(classes))],
        resolution=resolution,
        tags_per_image=tags_per_image,
        distinct_tags=len(vocabulary),
        fingerprint=data_fingerprint(root, layout),
    )


def sample_images(root: str | Path, layout: str | None = None, classes: int = 8, per_class: int = 4,
                  split: str = "train", seed: int = 0) -> tuple[list[Path], list[str]]:
    """A few images of each of the largest classes of one split, for a sample grid.

    Returns the image paths and a caption for each (the class name, shortened).
    """
    layout = layout or detect_layout(root)
    names = read_classes(class_file(root, layout))
    by_class: dict[int, list] = {}
    for s in read_split(root, layout, split, classes=names):
        by_class.setdefault(s.class_id, []).append(s)
    largest = sorted(by_class, key=lambda c: (-len(by_class[c]), c))[:classes]
    rng = random.Random(seed)
    paths, captions = [], []
    for class_id in largest:
        for s in rng.sample(by_class[class_id], min(per_class, len(by_class[class_id]))):
            paths.append(s.path)
            captions.append(names[class_id].split("_(")[0][:18])
    return paths, captions
