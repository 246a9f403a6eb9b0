"""A trained run on disk, read once: its configuration, model, tokenizer and tag vocabulary.

    run = TrainedRun.load("runs/cpu/multimodal-vilt-cosine-mlm-s0")      # a run folder (newest checkpoint)
    run = TrainedRun.load("runs/vit/checkpoints/epoch_0003")  # or one checkpoint
    run.config.image_size                                     # a TrainConfig, not a dict
    test = run.open_split("test")                             # as the model was trained to see it
    predictor = run.predictor(device="auto")                  # predicts many images, one model

Everything that evaluates, predicts or inspects a saved model starts here, so the run's settings
come from one place: the ``TrainConfig`` saved with each checkpoint (the run's ``config.json``,
copied into the checkpoint's ``meta.json``), whose defaults are the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from animesion_lib.config import TrainConfig
from animesion_lib.errors import CheckpointError
from animesion_lib.text_modes import TextMode, metric_name


@dataclass
class TrainedRun:
    """One checkpoint of a run, loaded: use :meth:`load`."""

    checkpoint: Path  # the checkpoint directory (``RUN/checkpoints/epoch_NNNN``)
    config: TrainConfig
    meta: dict[str, Any]  # the checkpoint's meta.json
    model: torch.nn.Module  # in eval mode, on ``device``
    tokenizer: Any  # the run's tag tokenizer (multimodal runs), else None
    tag_vocab: Any  # the run's TagVocabulary (tag-predicting runs), else None
    device: torch.device

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
        """Load a checkpoint directory, or a run directory's newest checkpoint, onto ``device``.

        Raises CheckpointError when the folder is not a checkpoint, when its weights do not fit
        the model its meta.json describes (another model), or when its files disagree.
        """
        from animesion_lib.checkpoint import load_meta, load_model, resolve_checkpoint
        from animesion_lib.device import select_device

        ckpt = resolve_checkpoint(path)
        meta = load_meta(ckpt)
        dev = select_device(device) if isinstance(device, str) else device
        model, _ = load_model(ckpt, device=dev)
        tokenizer, tag_vocab = load_text_files(ckpt)
        run = cls(ckpt, _train_config(ckpt, meta), meta, model, tokenizer, tag_vocab, dev)
        run._check_consistent()
        return run

    @property
    def classes(self) -> list[str]:
        """Class names, in the order of the model's outputs."""
        return list(self.meta["classes"])

    @property
    def reads_text(self) -> bool:
        """Whether the model takes tag tokens as input (a multimodal model)."""
        return bool((self.meta.get("model_config") or {}).get("vocab_size"))

    def open_split(self, split: str, data: str | Path | None = None, layout: str | None = None, **options: Any):
        """A split of the run's dataset (or of ``data``), opened as the model was trained to see it:
        same image size, transform, tokenizer, tag vocabulary and text length, no augmentation.

        ``options`` go to :func:`animesion_lib.data.splits.open_split` (e.g. ``cache``, ``progress``).
        Raises CheckpointError when the split lists other classes than the model was trained on.
        """
        from animesion_lib.data.splits import open_split

        cfg = self.config
        data = cfg.data if data is None else data
        kw = dict(layout=layout or cfg.layout, image_size=cfg.image_size, transform=cfg.transform, train=False,
                  tokenizer=self.tokenizer, tag_vocab=self.tag_vocab, max_text_len=cfg.max_text_len)
        dataset = open_split(data, split, **{**kw, **options})
        if dataset.classes != self.classes:
            raise CheckpointError(f"{self.checkpoint}: the model was trained on other classes than {data} lists")
        return dataset

    def tuned_tag_threshold(self, mode: TextMode | str | None = None) -> float | None:
        """The tag threshold chosen on validation during training, for ``mode`` (None for a model
        that reads no text); None when the run recorded none."""
        if not self.reads_text:
            mode = None
        value = (self.meta.get("metrics") or {}).get(metric_name("tag_threshold_tuned", mode, "val"))
        return None if value is None else float(value)

    def predictor(self, device: str | torch.device | None = None, precision: str = "auto"):
        """A :class:`~animesion_lib.prediction.Predictor` holding this run's model (moved to
        ``device`` when one is given: the run and its predictors share one model)."""
        from animesion_lib.device import select_device
        from animesion_lib.prediction import Predictor

        if device is not None:
            self.device = select_device(device) if isinstance(device, str) else device
            self.model.to(self.device)
        return Predictor(self, precision=precision)

    def _check_consistent(self) -> None:
        """The model, class list, tokenizer and tag vocabulary were saved together: check they agree."""
        model_config = self.meta.get("model_config") or {}
        expected = {"num_classes": len(self.classes),
                    "vocab_size": self.tokenizer.vocab_size if self.tokenizer is not None else None,
                    "num_tags": len(self.tag_vocab) if self.tag_vocab is not None else 0}
        wrong = [f"{k}: model {model_config.get(k)!r} vs files {v!r}" for k, v in expected.items()
                 if k in model_config and (model_config.get(k) or None) != (v or None)]
        if wrong:
            raise CheckpointError(f"{self.checkpoint}: its files do not belong to its model ({'; '.join(wrong)})")


def _train_config(ckpt: Path, meta: dict[str, Any]) -> TrainConfig:
    """The run's TrainConfig, from the copy of config.json in meta.json."""
    saved = meta.get("train_config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{ckpt / 'meta.json'}: has no train_config (the run's config.json)")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise CheckpointError(f"{ckpt / 'meta.json'}: train_config has fields TrainConfig does not know: "
                              f"{', '.join(unknown)} (saved by another version of animesion_lib?)")
    return TrainConfig(**saved)


def load_text_files(checkpoint: str | Path) -> tuple[Any, Any]:
    """The tokenizer and tag vocabulary saved beside a checkpoint (None where the run had none),
    without loading the model (a resumed training run needs only these)."""
    from animesion_lib.checkpoint import load_meta, resolve_checkpoint, verify_file
    from animesion_lib.data.tokenizers import TagVocabulary, load_tokenizer

    ckpt = resolve_checkpoint(checkpoint)
    meta = load_meta(ckpt)
    files = meta.get("files", [])
    # checked against the sha256 recorded beside them, as the weights are
    tokenizer = load_tokenizer(verify_file(ckpt, "tokenizer.json", meta)) if "tokenizer.json" in files else None
    tag_vocab = TagVocabulary.load(verify_file(ckpt, "tag_vocab.json", meta)) if "tag_vocab.json" in files else None
    return tokenizer, tag_vocab
