"""The difficulty card: how hard a DAF:re-layout dataset is for cheap baselines.

Written next to the synthetic data (``difficulty_card.json`` and ``difficulty_card.md``) so that
a reader sees at once whether tags alone or a tiny image model alone already solve it (they
should not: then the multimodal experiments would mean nothing). It works on any folder in the
DAF:re layout; the tag and attribute sections appear when the tag files / ``characters.json``
are there.

Baselines, all trained on ``train`` and reported on ``val`` and ``test``:

* ``chance``: 1 / number of classes; ``majority``: always answer the largest training class.
* ``tags_lr``: multinomial logistic regression on the bag of tags (multi-hot over the training
  vocabulary).
* ``image_lr``: logistic regression on 8x8 colour thumbnails of the face crops (a "small image
  model" cheap enough to fit at generation time; a real CNN does better).
* ``tags_image_lr``: the same on both feature sets concatenated.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from animesion_lib.atomic import atomic_write_text
from animesion_lib.data.layout import Layout, class_file, dafre_layout, read_classes, read_split, split_file
from animesion_lib.data.statistics import markdown_table

SPLITS = ("train", "val", "test")
THUMBNAIL = 8


def _read_split(root: Path, layout: Layout, split: str, classes: list[str]
                ) -> tuple[list[int], list[str], list[list[str]] | None]:
    """Class ids, image paths and (when the split has a tag file) tags of one split."""
    with_tags = split_file(root, layout, split, with_tags=True).is_file()
    samples = read_split(root, layout, split, with_tags, classes)
    return ([s.class_id for s in samples], [s.rel for s in samples],
            [list(s.tags) for s in samples] if with_tags else None)


def _thumbnails(folder: Path, rels: list[str]) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(rels), THUMBNAIL * THUMBNAIL * 3), dtype=np.float32)
    for i, rel in enumerate(rels):
        with Image.open(folder / rel) as im:
            im.draft("RGB", (THUMBNAIL * 4, THUMBNAIL * 4))  # JPEG: decode at reduced scale
            small = im.convert("RGB").resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
        out[i] = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
    return out


def _fit_score(x_train, y_train, evals: dict, c: float = 1.0, seed: int = 0) -> dict[str, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from threadpoolctl import threadpool_limits

    model = LogisticRegression(C=c, max_iter=300, random_state=seed)
    # one BLAS thread: faster for these small problems, and polite on a shared machine
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)  # plenty of iterations for a baseline
        model.fit(x_train, y_train)
    return {name: round(float((model.predict(x) == y).mean()), 4) for name, (x, y) in evals.items()
            if len(y)}


def _histogram(values: list[int], bins: int = 10) -> dict[str, list]:
    counts, edges = np.histogram(values, bins=bins)
    return {"bin_edges": [round(float(e), 1) for e in edges], "counts": counts.tolist()}


def _tag_baselines(card: dict, data: dict, thumbs: dict, y: dict, evals: list[str], seed: int) -> None:
    """The tag statistics and the tags-only and tags+thumbnail baselines, into ``card``."""
    from sklearn.preprocessing import MultiLabelBinarizer

    all_tags = [t for d in data.values() for t in d[2]]
    per_image = [len(t) for t in all_tags]
    vocab = sorted({t for tags in data["train"][2] for t in tags})
    binarizer = MultiLabelBinarizer(classes=vocab)
    with warnings.catch_warnings():  # tags unseen in train are simply dropped
        warnings.simplefilter("ignore", UserWarning)
        bags = {s: binarizer.fit_transform(d[2]).astype(np.float32) for s, d in data.items()}
    card["tags"] = {
        "vocabulary_size": len({t for tags in all_tags for t in tags}),
        "per_image": {"mean": round(float(np.mean(per_image)), 2), "min": int(min(per_image)),
                      "max": int(max(per_image)), "median": float(np.median(per_image))},
        "most_common": Counter(t for tags in all_tags for t in tags).most_common(15),
    }
    card["accuracy"]["tags_lr"] = _fit_score(
        bags["train"], y["train"], {s: (bags[s], y[s]) for s in evals}, seed=seed)
    both = {s: np.hstack([bags[s], thumbs[s] * 0.3]) for s in data}
    card["accuracy"]["tags_image_lr"] = _fit_score(
        both["train"], y["train"], {s: (both[s], y[s]) for s in evals}, seed=seed)


def _attribute_sharing(table: list[dict]) -> dict:
    """How many characters share each attribute value (from ``characters.json``)."""
    attrs: dict[str, Counter] = {}
    for ch in table:
        for key, value in ch["attributes"].items():
            if key == "accent":
                continue
            values = value if isinstance(value, list) else [value]
            for v in values or ["none"]:
                attrs.setdefault(key, Counter())[str(v)] += 1
    return {
        "attributes": {k: dict(sorted(c.items())) for k, c in attrs.items()},
        "attributes_unique_to_one_character": sorted(
            f"{k}={v}" for k, c in attrs.items() for v, n in c.items() if n == 1),
        "near_twin_characters": sum(1 for ch in table if ch.get("twin_of")),
    }


def difficulty_card(root: str | Path, seed: int = 0, generator: dict | None = None,
                    notes: dict[str, str] | None = None, image_dir: str = "faces") -> dict:
    """Compute the card for the dataset at ``root`` (see the module docstring)."""
    root, layout = Path(root), dafre_layout(image_dir)
    classes = read_classes(class_file(root, layout))
    num_classes = len(classes)
    data = {s: _read_split(root, layout, s, classes) for s in SPLITS
            if split_file(root, layout, s).is_file()}
    y = {s: np.array(d[0]) for s, d in data.items()}
    train_counts = Counter(data["train"][0])
    all_counts = Counter(c for d in data.values() for c in d[0])
    sizes = [all_counts.get(c, 0) for c in range(num_classes)]
    majority = train_counts.most_common(1)[0][0]
    evals = [s for s in ("val", "test") if s in data]

    card: dict = {
        "dataset": root.name,
        "num_classes": num_classes,
        "num_images": sum(len(d[0]) for d in data.values()),
        "split_sizes": {s: len(d[0]) for s, d in data.items()},
        "accuracy": {
            "chance": round(1.0 / num_classes, 4),
            "majority": {s: round(float((y[s] == majority).mean()), 4) for s in evals},
        },
        "class_size": {"min": min(sizes), "max": max(sizes), "mean": round(float(np.mean(sizes)), 2),
                       "median": float(np.median(sizes)), "histogram": _histogram(sizes)},
    }

    thumbs = {s: _thumbnails(root / image_dir, d[1]) for s, d in data.items()}
    mean, std = thumbs["train"].mean(0), thumbs["train"].std(0) + 1e-3
    thumbs = {s: (t - mean) / std for s, t in thumbs.items()}
    card["accuracy"]["image_lr"] = _fit_score(
        thumbs["train"], y["train"], {s: (thumbs[s], y[s]) for s in evals}, c=0.1, seed=seed)

    if data["train"][2] is not None:
        _tag_baselines(card, data, thumbs, y, evals, seed)
    characters = root / "characters.json"
    if characters.is_file():
        card.update(_attribute_sharing(json.loads(characters.read_text())))
    if generator is not None:
        card["generator"] = generator
    if notes:
        card["generator_notes"] = notes
    return card


def card_markdown(card: dict) -> str:
    """The card as a short Markdown page."""
    acc = card["accuracy"]
    lines = [f"# Difficulty card: {card['dataset']}", "",
             f"{card['num_images']} images of {card['num_classes']} classes; splits "
             + ", ".join(f"{k} {v}" for k, v in card["split_sizes"].items()) + ".", "",
             "## Baseline accuracy", ""]
    rows = [["chance", acc["chance"], acc["chance"]]]
    labels = {"majority": "majority class", "tags_lr": "tags only (logistic regression)",
              "image_lr": f"image only ({THUMBNAIL}x{THUMBNAIL} thumbnail, logistic regression)",
              "tags_image_lr": "tags + thumbnail (logistic regression)"}
    for key, label in labels.items():
        if key in acc:
            rows.append([label, acc[key].get("val", "-"), acc[key].get("test", "-")])
    lines += markdown_table(["baseline", "val", "test"], rows)
    cs = card["class_size"]
    lines += ["", "## Class sizes", "",
              f"min {cs['min']}, median {cs['median']}, mean {cs['mean']}, max {cs['max']}.", ""]
    edges, counts = cs["histogram"]["bin_edges"], cs["histogram"]["counts"]
    lines += markdown_table(["images per class (bin)", "classes"],
                            [[f"{edges[i]:.0f}-{edges[i + 1]:.0f}", counts[i]] for i in range(len(counts))])
    if "tags" in card:
        t = card["tags"]
        lines += ["", "## Tags", "", f"Vocabulary: {t['vocabulary_size']} tags. Per image: mean "
                  f"{t['per_image']['mean']}, min {t['per_image']['min']}, max {t['per_image']['max']}.",
                  "", "Most common: " + ", ".join(f"`{k}` ({n})" for k, n in t["most_common"]) + "."]
    if "attributes" in card:
        lines += ["", "## Characters sharing each attribute value", "",
                  f"Near-twin characters: {card['near_twin_characters']}.", ""]
        for key, counts in card["attributes"].items():
            lines.append(f"- **{key}**: " + ", ".join(f"{v} {n}" for v, n in counts.items()))
    if "generator" in card:
        lines += ["", "## Generator settings (noise levels)", ""]
        notes = card.get("generator_notes", {})
        for key, value in card["generator"].items():
            lines.append(f"- `{key}` = {value}" + (f": {notes[key]}" if key in notes else ""))
    return "\n".join(lines) + "\n"


def write_difficulty_card(root: str | Path, card: dict) -> tuple[Path, Path]:
    """Write ``difficulty_card.json`` and ``difficulty_card.md`` into ``root``."""
    root = Path(root)
    json_path, md_path = root / "difficulty_card.json", root / "difficulty_card.md"
    atomic_write_text(json_path, json.dumps(card, indent=1) + "\n")
    atomic_write_text(md_path, card_markdown(card))
    return json_path, md_path
