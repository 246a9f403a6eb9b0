"""Datasets in the papers' on-disk layouts, their transforms, fingerprint and image cache.

Tokenizers and the synthetic generator live in their own submodules
(``animesion_lib.data.tokenizers``, ``animesion_lib.data.synthetic``); import them from there.

Names are imported on first use (PEP 562), so that reading label files — ``animesion info``,
``animesion build-dataset``, ``--help`` — does not pay for importing torch.
"""

from __future__ import annotations

import importlib

# public name -> submodule that defines it
_EXPORTS = {
    "DecodedImageCache": "cache",
    "default_cache_dir": "cache",
    "CharacterDataset": "datasets",
    "DanbooruFaces": "datasets",
    "DanbooruFull": "datasets",
    "MoeImouto": "datasets",
    "collate": "datasets",
    "data_fingerprint": "fingerprint",
    "LAYOUTS": "layout",
    "Sample": "layout",
    "available_splits": "layout",
    "detect_layout": "layout",
    "read_classes": "layout",
    "read_split": "layout",
    "write_classes": "layout",
    "write_split": "layout",
    "TRANSFORMS": "transforms",
    "build_augment": "transforms",
    "build_resize": "transforms",
    "build_transforms": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
