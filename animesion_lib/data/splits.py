"""Opening one split of a dataset the way a run sees it: training, evaluation and a saved run
(:meth:`animesion_lib.run.TrainedRun.open_split`) all come here, so they agree on the inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from animesion_lib.data.datasets import CharacterDataset


def open_split(
    data: str | Path,
    split: str,
    layout: str = "dafre_faces",
    image_size: int = 64,
    transform: str = "animesion",
    train: bool = False,
    tokenizer: Any = None,
    tag_vocab: Any = None,
    max_text_len: int = 32,
    cache: bool = False,
    on_error: str = "raise",
    progress: bool = True,
) -> CharacterDataset:
    """The dataset of one split, reading tags only when a tokenizer or tag vocabulary needs them."""
    return CharacterDataset(
        data, split=split, layout=layout, image_size=image_size, transform=transform, train=train,
        with_tags=tokenizer is not None or tag_vocab is not None, tokenizer=tokenizer, tag_vocab=tag_vocab,
        max_text_len=max_text_len, cache=cache, on_error=on_error, progress=progress,
    )
