"""Predicting the character (and tags) of images with a trained run.

    predictor = TrainedRun.load("runs/vit").predictor(device="auto")
    predictions, skipped = predictor.predict(["faces/", "one.png"], top_k=5)

A :class:`Predictor` holds the model, so a notebook or a service predicts as many images as it
likes, in as many calls as it likes, with one load. :func:`predict_images` is the one-call form
behind ``animesion predict``.

Each prediction: ``{"image", "top_k": [{"class_id", "class_name", "probability"}, ...],
"tags": [{"tag", "probability"}, ...]}`` (``tags`` for tag-predicting models: every tag whose
probability reaches the threshold, most probable first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from animesion_lib.errors import DatasetError
from animesion_lib.text_modes import TextMode

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
ImageInput = str | Path | Image.Image

if TYPE_CHECKING:
    from animesion_lib.run import TrainedRun


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files named, or found (recursively, sorted) in the folders named; a missing path raises."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise DatasetError("no such image file or folder", path=path)
    return found


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file to RGB; a missing or undecodable file raises DatasetError naming it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # forces the full decode: a truncated file fails here
    except FileNotFoundError:
        raise DatasetError("image file not found", path=path) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot decode image ({type(err).__name__}: {err})", path=path) from None


class Predictor:
    """A trained run's model, ready to predict batches of images (see :meth:`predict`)."""

    def __init__(self, run: TrainedRun, precision: str = "auto"):
        from animesion_lib.data import build_transforms
        from animesion_lib.device import select_precision

        self.run, self.classes = run, run.classes
        self.precision = select_precision(run.device, precision)
        self.transform = build_transforms(run.config.transform, run.config.image_size, train=False)

    def predict(
        self,
        images: Iterable[ImageInput] | ImageInput,
        top_k: int = 5,
        tags: Sequence[str] | Sequence[Sequence[str]] | None = None,
        tag_threshold: float | None = None,
        batch_size: int = 32,
        on_error: str = "raise",
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """Top-k characters (and tags) of each image; returns ``(predictions, skipped)``.

        ``images``: image files, folders of them (searched recursively) and PIL images.
        ``tags``: text input of a multimodal model: one tag list for every image, or one list per
        image (after folders are expanded); none: image only. ``tag_threshold``: default, the
        threshold tuned on validation during training (with or without tags, as this image is
        given), else 0.5. A missing or undecodable file raises DatasetError naming it, or with
        ``on_error="skip"`` is listed in ``skipped`` as ``{"image", "error"}``.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        inputs = _expand(images)
        tag_lists = _tags_per_image(tags, len(inputs))
        predictions, skipped, pending = [], [], []
        for i, item in enumerate(inputs):
            try:
                image = item if isinstance(item, Image.Image) else load_image(item)
            except DatasetError as err:
                if on_error == "raise":
                    raise
                skipped.append({"image": str(item), "error": str(err)})
                continue
            pending.append((_name(item, i), self.transform(image), tag_lists[i]))
            if len(pending) == batch_size:
                predictions += self._predict_batch(pending, top_k, tag_threshold)
                pending = []
        if pending:
            predictions += self._predict_batch(pending, top_k, tag_threshold)
        return predictions, skipped

    def _predict_batch(self, pending: list[tuple[str, torch.Tensor, list[str]]], top_k: int,
                       tag_threshold: float | None) -> list[dict[str, Any]]:
        run = self.run
        # images given tags and images given none go through the model apart: "no tags" means no
        # text input at all (image only), not an empty tag sequence
        with_text = [bool(tags) and run.tokenizer is not None for _, _, tags in pending]
        probs, tag_probs = [None] * len(pending), [None] * len(pending)
        for group in (True, False):
            rows = [i for i, w in enumerate(with_text) if w == group]
            if rows:
                p, t = self._forward([pending[i][1] for i in rows], [pending[i][2] for i in rows] if group else None)
                for j, i in enumerate(rows):
                    probs[i], tag_probs[i] = p[j], None if t is None else t[j]
        found = []
        for (name, _, _), p, t, given in zip(pending, probs, tag_probs, with_text):
            top, idx = p.topk(min(top_k, p.shape[0]))
            item = {"image": name, "top_k": [{"class_id": int(c), "class_name": self.classes[int(c)],
                                              "probability": float(q)} for q, c in zip(top, idx)]}
            if t is not None and run.tag_vocab is not None:
                item["tags"] = self._tags_above(t, tag_threshold, given)
            found.append(item)
        return found

    @torch.no_grad()
    def _forward(self, images: list[torch.Tensor], tag_lists: list[list[str]] | None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class probabilities and tag probabilities (None without a tag head), on the host."""
        from animesion_lib.device import autocast

        run, dev = self.run, self.run.device
        text = {}
        if tag_lists is not None:
            encoded = run.tokenizer.encode_batch(tag_lists, max_length=run.config.max_text_len)
            text = {k: v.to(dev) for k, v in encoded.items()}
        with autocast(dev, self.precision):
            out = run.model(torch.stack(images).to(dev), **text)
        tag_probs = torch.sigmoid(out["tag_logits"].float()).cpu() if "tag_logits" in out else None
        return out["logits"].float().softmax(dim=1).cpu(), tag_probs

    def _tags_above(self, probs: torch.Tensor, threshold: float | None, given_tags: bool) -> list[dict[str, Any]]:
        if threshold is None:
            tuned = self.run.tuned_tag_threshold(TextMode.TAGS if given_tags else TextMode.NONE)
            threshold = 0.5 if tuned is None else tuned
        order = probs.argsort(descending=True)
        return [{"tag": self.run.tag_vocab.tags[int(j)], "probability": float(probs[j])}
                for j in order if probs[j] >= threshold]


def _expand(images: Iterable[ImageInput] | ImageInput) -> list[Path | Image.Image]:
    """Folders become their image files; PIL images and files stay as they are, in order."""
    if isinstance(images, (str, Path, Image.Image)):
        images = [images]
    out: list[Path | Image.Image] = []
    for item in images:
        out += [item] if isinstance(item, Image.Image) else find_images([item])
    return out


def _tags_per_image(tags: Sequence[str] | Sequence[Sequence[str]] | None, n: int) -> list[list[str]]:
    """One tag list for every image, or one per image (their count must match)."""
    if not tags:
        return [[] for _ in range(n)]
    if all(isinstance(t, str) for t in tags):
        return [list(tags) for _ in range(n)]
    if len(tags) != n:
        raise ValueError(f"{len(tags)} tag lists for {n} images: give one list for all, or one per image")
    return [list(t or ()) for t in tags]


def _name(item: Path | Image.Image, position: int) -> str:
    """How a prediction names its image: the file, else the PIL image's file name, else its position."""
    if isinstance(item, Image.Image):
        return getattr(item, "filename", "") or f"image {position}"
    return str(item)


def predict_images(
    checkpoint: str | Path,
    paths: Iterable[str | Path],
    top_k: int = 5,
    tags: Sequence[str] | None = None,
    tag_threshold: float | None = None,
    on_error: str = "raise",
    device: str = "auto",
    batch_size: int = 32,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Load a checkpoint (or a run's newest) and predict ``paths`` once; see :meth:`Predictor.predict`.

    To predict more images later, keep ``TrainedRun.load(checkpoint).predictor()`` instead.
    """
    from animesion_lib.run import TrainedRun

    predictor = TrainedRun.load(checkpoint, device=device).predictor()
    return predictor.predict(paths, top_k=top_k, tags=tags, tag_threshold=tag_threshold,
                             batch_size=batch_size, on_error=on_error)
