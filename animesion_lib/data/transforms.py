"""Image transforms, split into a deterministic resize and a random augmentation.

The split is what lets the decoded-image cache (``cache.py``) store pixels once: the cache holds
the output of :func:`build_resize`, and every epoch applies only :func:`build_augment`. The
uncached path runs exactly the same two stages on the decoded image, so both paths draw from the
same distribution (and give identical pixels in eval mode).

Recipes, selected by name:

* ``animesion`` (Rios et al. 2022): train = resize to ``size+32``, random crop ``size``,
  horizontal flip, colour jitter 0.1 (brightness, contrast, saturation, hue); eval = resize to
  ``size``. Normalised with mean = std = 0.5. The +32 margin is the paper's for its 128-224 px
  inputs; below 128 px it would crop away most of the image (a 32 px crop of 64 px trains on a
  quarter of what the model is tested on), so small sizes keep the paper's proportion at 128 px
  instead: resize to ``1.25 * size`` (the crop keeps 80% of the side, as 128 of 160 does).
* ``plain``: resize to ``size`` and normalise, in train and eval alike.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

TRANSFORMS = ("animesion", "plain")
MEAN = STD = (0.5, 0.5, 0.5)


def _check(name: str) -> None:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; choose one of {', '.join(TRANSFORMS)}")


def resize_size(name: str, image_size: int, train: bool) -> int:
    """Side of the square the deterministic stage resizes to (and the cache stores)."""
    _check(name)
    if name != "animesion" or not train:
        return image_size
    # resize larger so that the random crop has room to move (see the module docstring)
    return image_size + 32 if image_size >= 128 else round(image_size * 1.25)


class ToNormalizedTensor:
    """PIL image or uint8 tensor [3, H, W] in, float32 tensor ``(x / 255 - mean) / std`` out.

    PIL images go through numpy: per-image torch ops fan out to intra-op threads, and on a busy
    2-core machine that costs tens of milliseconds per op (measured: 40 ms for ToDtype on a
    128 px image with 2 threads vs 0.4 ms with 1), more than decoding the JPEG.
    """

    def __init__(self, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD):
        self.mean, self.std = mean, std
        self._mean, self._std = np.array(mean, np.float32), np.array(std, np.float32)

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(image, Image.Image):
            array = np.asarray(image.convert("RGB"), dtype=np.float32)
            array = (array * np.float32(1 / 255) - self._mean) / self._std
            return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        image = v2.functional.to_dtype(image.as_subclass(torch.Tensor), torch.float32, scale=True)
        return v2.functional.normalize(image, list(self.mean), list(self.std))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


def build_resize(name: str, image_size: int, train: bool) -> v2.Transform:
    """The deterministic stage: PIL image or uint8 tensor in, same type out, square ``resize_size``."""
    side = resize_size(name, image_size, train)
    return v2.Resize((side, side), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def build_augment(name: str, image_size: int, train: bool) -> v2.Transform:
    """The random stage plus normalisation: resized image in, float32 tensor [3, size, size] out."""
    _check(name)
    random_ops: list[v2.Transform] = []
    if name == "animesion" and train:
        random_ops = [
            v2.RandomCrop(image_size),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1),
        ]
    # the random ops run on PIL images when given PIL: colour jitter is faster there
    return v2.Compose([*random_ops, ToNormalizedTensor(MEAN, STD)])


def build_transforms(name: str, image_size: int, train: bool) -> v2.Compose:
    """The whole transform, resize then augment: PIL or uint8 tensor in, normalised float out."""
    return v2.Compose([build_resize(name, image_size, train), build_augment(name, image_size, train)])
