"""One dataset class for every on-disk layout, and the collate function that batches its items.

``CharacterDataset`` reads a split with the strict readers of ``layout.py``, decodes images with
PIL, and applies the two-stage transform of ``transforms.py`` (deterministic resize, then random
augmentation). With ``cache=True`` the resize stage runs once, into a memory-mapped
``DecodedImageCache``; with tags it also tokenizes them and builds multi-hot tag targets. With
``device_augment=True`` an item's image is the resize stage's uint8 output ``[side, side, 3]``,
and ``batch_augment.BatchAugment`` does the random stage on whole batches on the model's device.

``DanbooruFaces``, ``DanbooruFull`` and ``MoeImouto`` are the same class with the layout fixed.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from animesion_lib.data.cache import DecodedImageCache, cache_key
from animesion_lib.data.fingerprint import data_fingerprint
from animesion_lib.data.layout import Sample, class_file, get_layout, read_classes, read_split, split_file
from animesion_lib.data.transforms import build_augment, build_resize, resize_size
from animesion_lib.errors import DatasetError

ON_ERROR = ("raise", "skip")


class CharacterDataset(Dataset):
    """Images of characters with their class id, and optionally their tags.

    Args:
        root: dataset folder.
        split: ``train``, ``val`` or ``test`` (moeImouto: ``train``, ``test``).
        layout: ``dafre_faces``, ``dafre_full`` or ``moeimouto`` (see ``layout.py``).
        image_size: side of the square images the model sees.
        transform: ``animesion`` or ``plain`` (see ``transforms.py``).
        train: augment as for training; defaults to ``split == "train"``.
        with_tags: read ``{split}_tags.csv`` and return each image's tags.
        tokenizer: turns tags into ``input_ids`` / ``attention_mask`` of ``max_text_len``.
        tag_vocab: turns tags into multi-hot ``tag_targets``.
        shuffle_tags: shuffle tag order before tokenizing, anew every epoch; defaults to ``train``.
            Otherwise each image's tags are shuffled once, seeded by its row: the same policy
            (a random subset survives when the text is too long), repeatable across evaluations.
        cache: ``True`` for a decoded-image cache under ``$ANIMESION_CACHE_DIR`` or
            ``~/.cache/animesion``, or a folder to keep it in.
        on_error: ``raise`` (default) on an unreadable image, or ``skip`` it: every image is then
            checked once up front (by the cache build when caching), the skipped files are
            listed in a warning and in ``self.skipped``.
        device_augment: return uint8 ``[side, side, 3]`` images, not augmented and normalised
            ones; the caller runs ``BatchAugment`` on the batches.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str = "dafre_faces",
        image_size: int = 128,
        transform: str = "animesion",
        train: bool | None = None,
        with_tags: bool = False,
        tokenizer: Any = None,
        tag_vocab: Any = None,
        max_text_len: int = 32,
        shuffle_tags: bool | None = None,
        cache: bool | str | Path = False,
        on_error: str = "raise",
        progress: bool = True,
        device_augment: bool = False,
    ):
        if on_error not in ON_ERROR:
            raise ValueError(f"unknown on_error {on_error!r}; choose one of {', '.join(ON_ERROR)}")
        if (tokenizer is not None or tag_vocab is not None) and not with_tags:
            raise ValueError("a tokenizer or tag_vocab needs with_tags=True")
        self.progress = progress  # progress bars of the one-off image checks and cache builds
        self.root = Path(root).absolute()
        self.split = split
        self.layout = get_layout(layout).name
        self.image_size = image_size
        self.transform_name = transform
        self.train = split == "train" if train is None else train
        self.with_tags = with_tags
        self.tokenizer = tokenizer
        self.tag_vocab = tag_vocab
        self.max_text_len = max_text_len
        self.shuffle_tags = self.train if shuffle_tags is None else shuffle_tags
        self.on_error = on_error
        self.device_augment = device_augment

        self.classes: list[str] = read_classes(class_file(self.root, self.layout))
        self.label_file = split_file(self.root, self.layout, split, with_tags)
        rows = read_split(self.root, self.layout, split, with_tags, classes=self.classes)
        self.resize = build_resize(transform, image_size, self.train)
        self.augment = build_augment(transform, image_size, self.train)
        self.side = resize_size(transform, image_size, self.train)

        self._select_readable(rows, cache)

    def _select_readable(self, rows: list[Sample], cache: bool | str | Path) -> None:
        """Keep the rows whose images can be read (all of them, or an error, unless on_error="skip")."""
        self.cache: DecodedImageCache | None = None
        if cache:
            self.cache = self._open_cache(rows, cache_dir=None if cache is True else Path(cache))
            bad = self.cache.bad
            if bad and self.on_error == "raise":  # this cache was built earlier with on_error="skip"
                raise DatasetError(f"{bad[min(bad)]} (recorded when the image cache was built)")
        elif self.on_error == "skip":
            bad = self._find_unreadable(rows)
        else:
            bad = {}  # images are checked as they are loaded
        # cache_rows maps our index to the row of the cache (and of the label file's samples)
        self.cache_rows = [i for i in range(len(rows)) if i not in bad]
        self.samples: list[Sample] = [rows[i] for i in self.cache_rows]
        self.skipped: list[Path] = [rows[i].path for i in sorted(bad)]
        if self.skipped:
            warnings.warn(
                f"skipped {len(bad)} unreadable image(s) listed in {self.label_file}:\n  "
                + "\n  ".join(bad[i] for i in sorted(bad)),
                stacklevel=3,
            )

    # -- reading images -------------------------------------------------------------------

    def load_image(self, sample: Sample) -> Image.Image:
        """Decode one image to RGB; a missing or corrupt file raises DatasetError with its row."""
        try:
            with Image.open(sample.path) as image:
                return image.convert("RGB")  # convert() forces the full decode, so errors surface here
        except FileNotFoundError:
            raise DatasetError(f"image file {sample.path} not found", self.label_file, sample.row) from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise DatasetError(
                f"cannot decode image {sample.path} ({type(err).__name__}: {err})", self.label_file, sample.row
            ) from None

    def _find_unreadable(self, rows: list[Sample]) -> dict[int, str]:
        from tqdm.auto import tqdm

        bad = {}
        for i, sample in enumerate(tqdm(rows, desc=f"checking {self.split} images", unit="img", mininterval=1.0,
                                          disable=not self.progress)):
            try:
                self.load_image(sample)
            except DatasetError as err:
                bad[i] = str(err)
        return bad

    def _open_cache(self, rows: list[Sample], cache_dir: Path | None) -> DecodedImageCache:
        key = cache_key(data_fingerprint(self.root, self.layout), self.split, self.label_file.name,
                        self.side, resize="pil-bilinear")
        return DecodedImageCache.open_or_build(
            len(rows),
            lambda i: self.resize(self.load_image(rows[i])),
            key=key,
            side=self.side,
            names=[s.rel for s in rows],
            cache_dir=cache_dir,
            data_root=self.root,
            on_error=self.on_error,
            progress=self.progress,
            desc=f"caching {self.split} images at {self.side}px",
        )

    # -- the Dataset protocol -------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        """Class id of every sample, in order (for samplers and metrics)."""
        return [s.class_id for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        if self.cache is not None:
            # the cache holds the resize stage's output; only the random stage runs per epoch
            pixels = np.array(self.cache[self.cache_rows[index]])
            image = torch.from_numpy(pixels) if self.device_augment else self.augment(Image.fromarray(pixels))
        else:
            resized = self.resize(self.load_image(sample))
            image = torch.from_numpy(np.array(resized)) if self.device_augment else self.augment(resized)
        item: dict[str, Any] = {"image": image, "label": sample.class_id, "index": index}
        if self.with_tags:
            tags = list(sample.tags or ())
            item["tags"] = tags
            if self.tokenizer is not None:
                item.update(self._encode(tags, index))
            if self.tag_vocab is not None:
                item["tag_targets"] = torch.as_tensor(self.tag_vocab.multi_hot(tags), dtype=torch.float32)
        return item

    def _encode(self, tags: list[str], index: int) -> dict[str, torch.Tensor]:
        # training: seeded from torch's generator (torch.manual_seed and DataLoader worker seeding
        # govern it); evaluation: by the row, so that training and evaluation keep tags alike
        rng = random.Random(int(torch.randint(2**62, ()))) if self.shuffle_tags else random.Random(index)
        encoded = self.tokenizer.encode(tags, max_length=self.max_text_len, shuffle=True, rng=rng)
        out = {k: torch.as_tensor(encoded[k], dtype=torch.int64) for k in ("input_ids", "attention_mask")}
        if out["input_ids"].shape != (self.max_text_len,):
            raise ValueError(f"tokenizer returned {tuple(out['input_ids'].shape)} ids, expected {self.max_text_len}")
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, layout={self.layout!r}, "
            f"images={len(self)}, classes={self.num_classes}, transform={self.transform_name!r}, "
            f"train={self.train}, image_size={self.image_size}, cached={self.cache is not None})"
        )


class DanbooruFaces(CharacterDataset):
    """DAF:re face crops: ``ROOT/faces/``, labels in ``ROOT/labels/``."""

    def __init__(self, root: str | Path, split: str = "train", **kwargs: Any):
        super().__init__(root, split, layout="dafre_faces", **kwargs)


class DanbooruFull(CharacterDataset):
    """DAFull full images: ``ROOT/fullMin256/``, labels in ``ROOT/labels/``."""

    def __init__(self, root: str | Path, split: str = "train", **kwargs: Any):
        super().__init__(root, split, layout="dafre_full", **kwargs)


class MoeImouto(CharacterDataset):
    """moeImouto: ``ROOT/data/``, ``train.csv`` / ``test.csv`` / ``classid_classname.csv`` at the root."""

    def __init__(self, root: str | Path, split: str = "train", **kwargs: Any):
        super().__init__(root, split, layout="moeimouto", **kwargs)


def _stack(values: list[torch.Tensor]) -> torch.Tensor:
    # numpy copies on one thread; torch.stack fans out to intra-op threads, which stall on a busy
    # 2-core machine (measured 0.2 to 10 ms per image for the same batch in the main process)
    if all(v.device.type == "cpu" and not v.requires_grad for v in values):
        return torch.from_numpy(np.stack([v.numpy() for v in values]))
    return torch.stack(values)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of dataset items into a batch; ``tags`` stays a list of lists."""
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            batch[key] = _stack(values)
        elif isinstance(values[0], (int, np.integer)):
            batch[key] = torch.tensor(values, dtype=torch.int64)
        else:
            batch[key] = values
    return batch
