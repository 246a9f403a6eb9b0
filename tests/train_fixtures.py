"""A tiny dataset in the DAF:re layout, written by the training/evaluation tests themselves.

Each class is a colour with a little noise (learnable in a few steps) and has two tags of its
own plus a shared one, so tag prediction and ViLT inputs have something to learn as well.
Small enough that a 2-layer ViT trains an epoch in well under a second on one CPU core.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(230, 40, 40), (40, 200, 40), (40, 60, 230), (220, 220, 40), (200, 40, 200), (40, 200, 200)]
SPLITS = {"train": 8, "val": 3, "test": 3}  # images per class


def write_tiny_dataset(root: Path, classes: int = 4, size: int = 32, seed: int = 0,
                       per_class: dict[str, int] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    names = [f"char_{i}" for i in range(classes)]
    with open(root / "labels" / "classid_classname.csv", "w", newline="") as f:
        csv.writer(f).writerows([(i, n) for i, n in enumerate(names)])
    for split, n in (per_class or SPLITS).items():
        rows, tag_rows = [], []
        for c, name in enumerate(names):
            folder = root / "faces" / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.clip(np.array(COLOURS[c % len(COLOURS)]) + rng.normal(0, 25, (size, size, 3)), 0, 255)
                rel = f"{name}/{split}_{i}.png"
                Image.fromarray(pixels.astype(np.uint8)).save(root / "faces" / rel)
                rows.append((c, rel))
                tags = [f"hair_{c}", f"eyes_{c}"] + (["smile"] if i % 2 == 0 else [])
                tag_rows.append((c, rel, repr(tags)))
        with open(root / "labels" / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
        with open(root / "labels" / f"{split}_tags.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["class_id", "dir", "tags_cat0"])
            writer.writerows(tag_rows)
    return root
