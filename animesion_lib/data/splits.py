"""Splits: how many of a class's images go to train, val and test when a dataset is written, and
how one split is opened the way a run sees it.

* :func:`split_counts` is the one rule for every dataset we write: the synthetic generator and
  the Danbooru builder both split each class on its own (stratified) with it, so a class of ``n``
  images is cut the same way wherever it comes from.
* :func:`open_split` opens one split for training, evaluation and a saved run
  (:meth:`animesion_lib.run.TrainedRun.open_split`), so they agree on the inputs. It imports the
  dataset (and torch) only when called: the generator needs split_counts alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from animesion_lib.data.datasets import CharacterDataset


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """``(train, val, test)`` image counts for a class of ``n`` images.

    Val and test get ``round(n * fraction)`` (Python's rounding, half to even: the synthetic
    data the committed results cite was cut this way), at least one each when their fraction
    is positive and ``n >= 3``; a zero fraction gets none. Train gets the rest and always keeps
    at least one image (tiny classes give up test first, then val).
    """
    _, f_val, f_test = fractions

    def share(fraction: float) -> int:
        if fraction <= 0:
            return 0
        k = round(n * fraction)
        return max(k, 1) if n >= 3 else k

    n_val, n_test = share(f_val), share(f_test)
    while n - n_val - n_test < 1 and n_val + n_test > 0:
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


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
    from animesion_lib.data.datasets import CharacterDataset

    return CharacterDataset(
        data, split=split, layout=layout, image_size=image_size, transform=transform, train=train,
        with_tags=tokenizer is not None or tag_vocab is not None, tokenizer=tokenizer, tag_vocab=tag_vocab,
        max_text_len=max_text_len, cache=cache, on_error=on_error, progress=progress,
    )
