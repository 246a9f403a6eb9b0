"""The knobs of the Dan:mul / DAF:re recipe (:class:`BuildConfig`) and its two presets.

:mod:`animesion_lib.data.danbooru` runs the recipe; its docstring says what each filter does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from animesion_lib.data.danbooru_metadata import RATING_WORDS, check_image_template
from animesion_lib.data.image_export import IMAGE_MODES

TAG_CATEGORIES = ("general", "copyright", "artist", "meta")
IMAGE_FOLDERS = ("fullMin256", "faces")


@dataclass(frozen=True)
class BuildConfig:
    """Every knob of the recipe. Start from a preset: ``preset_config("danmul", seed=1)``."""

    preset: str = "danmul"
    # reading
    shape: str = "auto"  # "auto" | "dump" | "api"
    image_template: str | None = None  # None: DEFAULT_IMAGE_PATHS[shape]
    on_error: str = "stop"  # "stop" | "skip" for malformed / invalid lines
    # post filters
    ratings: tuple[str, ...] | None = None  # e.g. ("g", "s"); None keeps every rating
    min_images: int = 10
    # splits
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    seed: int = 0
    # tag filters
    tag_categories: tuple[str, ...] = ("general", "copyright")
    min_tag_count: int = 10
    min_tag_importance: float | None = 0.0  # None: no importance floor
    max_tags_per_image: int | None = 24  # None: no cap
    # images
    image_mode: str = "resize"  # "resize" | "link" | "copy"
    image_folder: str = "fullMin256"  # "fullMin256" | "faces"
    size: int = 256  # shorter side after resizing
    quality: int = 90
    dry_run: bool = False  # metadata stages only: no image is opened, linked or written
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # engine / output
    memory_limit: str = "2GB"
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.shape not in ("auto", "dump", "api"):
            problems.append(f"shape must be auto, dump or api, not {self.shape!r}")
        if self.on_error not in ("stop", "skip"):
            problems.append(f"on_error must be stop or skip, not {self.on_error!r}")
        if self.min_images < 1:
            problems.append("min_images must be at least 1")
        if len(self.split) != 3 or any(f < 0 for f in self.split) or abs(sum(self.split) - 1) > 1e-6:
            problems.append(f"split must be three non-negative fractions summing to 1, not {self.split}")
        elif self.split[0] == 0:
            problems.append("the train fraction must be positive")
        unknown = set(self.tag_categories) - set(TAG_CATEGORIES)
        if unknown:
            problems.append(f"unknown tag categories {sorted(unknown)}; choose from {TAG_CATEGORIES}")
        if self.image_mode not in IMAGE_MODES:
            problems.append(f"image_mode must be one of {IMAGE_MODES}, not {self.image_mode!r}")
        if self.image_folder not in IMAGE_FOLDERS:
            problems.append(f"image_folder must be one of {IMAGE_FOLDERS}, not {self.image_folder!r}")
        if self.max_tags_per_image is not None and self.max_tags_per_image < 0:
            problems.append("max_tags_per_image must be >= 0")
        if self.ratings is not None:
            bad = [r for r in self.ratings if r not in set(RATING_WORDS.values())]
            if bad:
                problems.append(f"unknown ratings {bad}; use letters g, s, q, e")
        if self.image_template is not None:
            try:
                check_image_template(self.image_template)
            except ValueError as err:
                problems.append(str(err))
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def importance_filter(self) -> bool:
        return self.min_tag_importance is not None or self.max_tags_per_image is not None


PRESETS: dict[str, dict] = {
    # Dan:mul (2023): one character per post, >= 10 images per character, artist and meta tags
    # dropped, rare and uninformative tags dropped (the paper reports 24 tags/image after it).
    "danmul": dict(
        min_images=10,
        split=(0.7, 0.1, 0.2),
        tag_categories=("general", "copyright"),
        min_tag_count=10,
        min_tag_importance=0.0,
        max_tags_per_image=24,
        image_folder="fullMin256",
    ),
    # DAF:re (Animesion, 2022): >= 20 images per character, split 0.7/0.1/0.2, general tags.
    "dafre": dict(
        min_images=20,
        split=(0.7, 0.1, 0.2),
        tag_categories=("general",),
        min_tag_count=1,
        min_tag_importance=None,
        max_tags_per_image=None,
        image_folder="fullMin256",
    ),
}


def preset_config(name: str = "danmul", **overrides) -> BuildConfig:
    """A :class:`BuildConfig` from a preset's values, with ``overrides`` on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return BuildConfig(preset=name, **{**PRESETS[name], **overrides})
