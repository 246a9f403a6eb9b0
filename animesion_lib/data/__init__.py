"""Datasets in the papers' on-disk layouts, their transforms, fingerprint and image cache.

Tokenizers and the synthetic generator live in their own submodules
(``animesion_lib.data.tokenizers``, ``animesion_lib.data.synthetic``); import them from there.
"""

from animesion_lib.data.cache import DecodedImageCache, default_cache_dir
from animesion_lib.data.datasets import CharacterDataset, DanbooruFaces, DanbooruFull, MoeImouto, collate
from animesion_lib.data.fingerprint import data_fingerprint
from animesion_lib.data.layout import (
    LAYOUTS,
    Sample,
    available_splits,
    detect_layout,
    read_classes,
    read_split,
    write_classes,
    write_split,
)
from animesion_lib.data.transforms import TRANSFORMS, build_augment, build_resize, build_transforms

__all__ = [
    "LAYOUTS",
    "TRANSFORMS",
    "CharacterDataset",
    "DanbooruFaces",
    "DanbooruFull",
    "DecodedImageCache",
    "MoeImouto",
    "Sample",
    "available_splits",
    "build_augment",
    "build_resize",
    "build_transforms",
    "collate",
    "data_fingerprint",
    "default_cache_dir",
    "detect_layout",
    "read_classes",
    "read_split",
    "write_classes",
    "write_split",
]
