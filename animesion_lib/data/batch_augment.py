"""The random stage of the training transform, on whole batches on the model's device.

The PIL path (``transforms.build_augment``) crops, flips and colour-jitters one image at a time
in the loader: about 1.7 ms per image per process, a few hundred images/s, where a GPU trains
thousands. Here the loader only decodes (or reads the cache) and stacks uint8 images
``[B, side, side, 3]``; they travel as uint8 (4x fewer bytes than float), and
:class:`BatchAugment` applies the same recipe to the whole batch where the model runs:

    random crop ``size`` -> horizontal flip (p = 0.5) -> colour jitter -> float -> normalise

with torchvision's ``ColorJitter`` semantics: per image, brightness, contrast and saturation
factors from [1 - j, 1 + j], a hue shift from [-j, j], applied in a random order, each clamped to
[0, 1]. Brightness, contrast and saturation are all blends ``a x + b gray(x) + c mean(gray(x))``,
so one pass per position of the random order applies whichever of them each image draws there;
the hue shift (torchvision's HSV rotation, written for batches) runs on the images that draw it
at that position.

Every per-image random number comes from a seeded CPU ``torch.Generator`` (a few numbers per
image): the run is deterministic and resumable, the device never has to report back to the host
(no sync), and the same seed gives the same crops and factors on the CPU and on a GPU.
"""

from __future__ import annotations

import torch

from animesion_lib.data.transforms import MEAN, STD, _check, resize_size

JITTER = 0.1  # the Animesion recipe: brightness = contrast = saturation = hue = 0.1
GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision and PIL
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


class BatchAugment:
    """uint8 ``[B, side, side, 3]`` (the resize stage's output) in, normalised float ``[B, 3, size, size]`` out."""

    def __init__(self, name: str, image_size: int, train: bool = True):
        _check(name)
        self.size, self.side = image_size, resize_size(name, image_size, train)
        self.random = name == "animesion" and train

    def draw(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The per-image random parameters, on the CPU: crop corner, flip, jitter factors and order."""
        room = self.side - self.size + 1
        factors = 1 + JITTER * (2 * torch.rand(batch, 4, generator=generator) - 1)
        factors[:, HUE] -= 1  # hue: a shift in [-j, j], not a factor
        return {
            "top": torch.randint(room, (batch,), generator=generator),
            "left": torch.randint(room, (batch,), generator=generator),
            "flip": torch.rand(batch, generator=generator) < 0.5,
            "factors": factors,
            "order": torch.rand(batch, 4, generator=generator).argsort(dim=1),  # a permutation per image
        }

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.shape[1:] != (self.side, self.side, 3):
            raise ValueError(f"expected uint8 images [B, {self.side}, {self.side}, 3], got "
                             f"{images.dtype} {tuple(images.shape)}")
        if not self.random:
            return normalise(images.permute(0, 3, 1, 2).float().div_(255))
        if generator is None:
            raise ValueError("the animesion recipe draws random numbers: pass a seeded torch.Generator")
        params = self.draw(images.shape[0], generator)
        x = crop_and_flip(images, params, self.size).float().div_(255)
        return normalise(colour_jitter(x, params))


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host to device without waiting: on CUDA from pinned memory, asynchronously."""
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def crop_and_flip(images: torch.Tensor, params: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Per-image crop at (top, left) and optional mirror: uint8 ``[B, 3, size, size]``.

    On a GPU one gather kernel; on the CPU per-image slices, which are 7x faster there.
    """
    device = images.device
    if device.type == "cpu":
        corners = zip(images, params["top"].tolist(), params["left"].tolist(), params["flip"].tolist())
        crops = [image[t:t + size, l:l + size] for image, t, l, _ in corners]
        flips = params["flip"].tolist()
        return torch.stack([c.flip(1) if f else c for c, f in zip(crops, flips)]).permute(0, 3, 1, 2)
    offsets = torch.arange(size)
    rows = params["top"][:, None] + offsets  # [B, size]
    cols = params["left"][:, None] + offsets
    cols = torch.where(params["flip"][:, None], cols.flip(1), cols)  # mirrored: read columns backwards
    rows, cols = _to(rows, device), _to(cols, device)
    batch = torch.arange(images.shape[0], device=device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [B, size, size, 3] -> NCHW


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=1)
    return (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).unsqueeze(1)


def colour_jitter(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """torchvision's ColorJitter per image (own factors, own order) on a float batch in [0, 1]."""
    factors, order = params["factors"], params["order"]
    for position in range(4):
        op = order[:, position]
        f = factors.gather(1, op[:, None]).squeeze(1)
        # one blend a*x + b*gray + c*mean(gray) does brightness (b = c = 0), contrast (b = 0,
        # c = 1 - f) or saturation (c = 0, b = 1 - f); a = 1, b = c = 0 leaves the image alone
        a = torch.where(op == HUE, 1.0, f)
        b = torch.where(op == SATURATION, 1 - f, 0.0)
        c = torch.where(op == CONTRAST, 1 - f, 0.0)
        coefs = _to(torch.stack([a, b, c], dim=1), x.device)[:, :, None, None, None]
        gray = _gray(x)
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        x = torch.addcmul(coefs[:, 1] * gray + coefs[:, 2] * mean, coefs[:, 0], x).clamp_(0, 1)
        hue = (op == HUE).nonzero().squeeze(1)  # on the CPU: no device sync
        if hue.numel():
            rows = _to(hue, x.device)
            x = x.index_copy(0, rows, _shift_hue(x[rows], _to(f[hue], x.device)))
    return x


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_hue (RGB -> HSV, rotate the hue, back) with one shift per image.

    The same function written for whole batches: hue in sextants from whichever channel is the
    largest (ties: red, then green, as torchvision), then each channel of the rotated colour is
    ``V - C * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + hue) mod 6`` (n = 5, 3, 1 for R, G, B),
    V the largest channel and C the chroma. Agrees with torchvision to float rounding, in far
    fewer passes over memory than its HSV round trip.
    """
    r, g, b = x.unbind(dim=1)
    value, low = x.amax(dim=1), x.amin(dim=1)
    chroma = value - low
    safe = chroma.clamp_min(1e-12)  # grey pixels: every difference is 0, so is the hue
    hue = torch.where(value == r, (g - b) / safe, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = (hue + 6 * shift.to(x.dtype)[:, None, None]).remainder_(6)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype)
    k = (_to(n, x.device)[None, :, None, None] + hue[:, None]).remainder_(6)
    return value[:, None] - chroma[:, None] * torch.minimum(k, 4 - k).clamp_(0, 1)


def normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, dtype=x.dtype)[:, None, None]
    std = torch.tensor(STD, dtype=x.dtype)[:, None, None]
    return x.sub_(_to(mean, x.device)).div_(_to(std, x.device))
