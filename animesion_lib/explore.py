"""The model explorer: a trained run held in memory and asked about any image, in JupyterLab.

Pick a run (the runs trained on the data at hand, found by its data fingerprint), then a test
image or an uploaded one, and see the top-k characters, the predicted tags, how the answer moves
as tags are given or taken away (multimodal models) and where the last block's [CLS] looks (ViTs).

All model access goes through :class:`LoadedRun`: it holds a run (:class:`~animesion_lib.run.TrainedRun`,
loaded once) and answers many questions, so a change in the widget costs one forward pass, never a
reload; everything else here works on its answers.

    explorer = ModelExplorer(runs_for_data("../runs/smoke", data_root), test_samples)
    explorer          # in JupyterLab: the widget
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from animesion_lib.errors import DatasetError
from animesion_lib.run import TrainedRun
from animesion_lib.text_modes import TextMode


@dataclass
class Answer:
    """What a run says about one image with one set of given tags."""

    characters: list[tuple[str, float]]  # top-k (name, probability), most likely first
    tags: list[tuple[str, float]]  # tags at or above the run's threshold, most likely first
    attention: np.ndarray | None  # [rows, cols] share of the last block's [CLS] attention per patch (sums to 1)
    seconds: float


class LoadedRun:
    """One checkpoint, loaded once: the explorer's only door to a model.

    ``answer_many`` runs one image with several tag lists in a single batch; ``answer`` is the
    one-list case. It wraps a :class:`~animesion_lib.run.TrainedRun` (given, or loaded from a path).
    """

    def __init__(self, run: TrainedRun | str | Path, device: str = "cpu"):
        self.run = run if isinstance(run, TrainedRun) else TrainedRun.load(run, device=device)
        self.checkpoint, self.model, self.meta = self.run.checkpoint, self.run.model, self.run.meta
        self.device = self.run.device
        self.tokenizer, self.tag_vocab, self.classes = self.run.tokenizer, self.run.tag_vocab, self.run.classes
        self.max_text_len = self.run.config.max_text_len
        self.transform = self.run.predictor().transform
        self.tag_threshold: float | None = None  # None: the one tuned on validation, as Predictor does

    def threshold(self, given_tags: bool) -> float:
        """The tag threshold in use: ``tag_threshold`` if set, else the one tuned on validation
        for answers with or without tags (0.5 when the run recorded none)."""
        if self.tag_threshold is not None:
            return self.tag_threshold
        tuned = self.run.tuned_tag_threshold(TextMode.TAGS if given_tags else TextMode.NONE)
        return 0.5 if tuned is None else tuned

    @property
    def multimodal(self) -> bool:
        """Whether the model reads tags as text input."""
        return self.tokenizer is not None

    @property
    def has_attention(self) -> bool:
        """Whether the backbone is a timm ViT (blocks with a qkv attention) whose [CLS] attention can be shown."""
        blocks = getattr(getattr(self.model, "backbone", None), "blocks", None)  # EfficientNet has blocks too
        return blocks is not None and hasattr(getattr(blocks[-1], "attn", None), "qkv")

    @torch.no_grad()
    def answer_many(self, image: Image.Image, tag_lists: Sequence[Sequence[str]], top_k: int = 5,
                    attention: bool = False) -> list[Answer]:
        """The answers for ``image`` given each tag list in turn, in one batch per kind of input.

        An empty tag list means no text input at all (image only), as ``animesion predict`` does,
        so those rows run apart from the rows with tags.
        """
        start = time.perf_counter()
        pixels = self.transform(image.convert("RGB"))
        with_text = [bool(tags) and self.multimodal for tags in tag_lists]
        outputs: list[tuple] = [()] * len(tag_lists)
        for group in (True, False):
            rows = [i for i, w in enumerate(with_text) if w == group]
            if rows:
                texts = [list(tag_lists[i]) for i in rows] if group else None
                for i, out in zip(rows, self._forward(pixels, len(rows), texts, attention)):
                    outputs[i] = out
        seconds = (time.perf_counter() - start) / len(tag_lists)
        return [self._answer(*out, top_k=top_k, seconds=seconds, given_tags=w) for out, w in zip(outputs, with_text)]

    def _forward(self, pixels: torch.Tensor, n: int, tag_lists: list[list[str]] | None,
                 attention: bool) -> list[tuple]:
        """``(class probabilities, tag probabilities or None, attention map or None)`` per row."""
        ids = mask = None
        if tag_lists is not None:
            text = self.tokenizer.encode_batch(tag_lists, max_length=self.max_text_len)
            ids, mask = text["input_ids"].to(self.device), text["attention_mask"].to(self.device)
        with capture_last_qkv(self.model) if attention and self.has_attention else nullcontext({}) as qkv:
            out = self.model(pixels.unsqueeze(0).expand(n, -1, -1, -1).to(self.device), input_ids=ids,
                             attention_mask=mask)
        maps = cls_patch_attention(self.model.backbone, qkv["qkv"]).numpy() if qkv else [None] * n
        probs = out["logits"].float().softmax(dim=1).cpu()
        tag_probs = torch.sigmoid(out["tag_logits"].float()).cpu() if "tag_logits" in out else [None] * n
        return list(zip(probs, tag_probs, maps))

    def _answer(self, probs: torch.Tensor, tag_probs: torch.Tensor | None, attention: np.ndarray | None,
                top_k: int, seconds: float, given_tags: bool) -> Answer:
        top, idx = probs.topk(min(top_k, probs.shape[0]))
        tags = []
        if tag_probs is not None and self.tag_vocab is not None:
            tags = [(self.tag_vocab.tags[int(j)], float(tag_probs[j]))
                    for j in tag_probs.argsort(descending=True) if tag_probs[j] >= self.threshold(given_tags)]
        return Answer([(self.classes[int(c)], float(q)) for q, c in zip(top, idx)], tags, attention, seconds)

    def answer(self, image: Image.Image, tags: Sequence[str] = (), top_k: int = 5, attention: bool = False) -> Answer:
        """The top-k characters, predicted tags (and attention map) for one image and its given tags."""
        return self.answer_many(image, [list(tags)], top_k, attention)[0]


# ------------------------------------------------------------------------------------ attention


@contextmanager
def capture_last_qkv(model: torch.nn.Module):
    """Keep the output of the last block's ``attn.qkv`` projection during a normal forward pass.

    Hooking the projection reads the attention of the very pass that made the prediction (with
    the model's own masks and norms) instead of re-running the transformer by hand.
    """
    captured: dict[str, torch.Tensor] = {}
    handle = model.backbone.blocks[-1].attn.qkv.register_forward_hook(
        lambda module, inputs, output: captured.__setitem__("qkv", output.detach()))
    try:
        yield captured
    finally:
        handle.remove()


def cls_patch_attention(vit: torch.nn.Module, qkv: torch.Tensor) -> torch.Tensor:
    """``[B, rows, cols]``: the [CLS] token's attention over the image patches, mean over heads.

    Each head's softmax is taken over the patch keys only, i.e. its attention restricted to the
    patches and renormalised; so every map sums to 1, whatever text or register tokens follow.
    """
    attn = vit.blocks[-1].attn
    batch, tokens, _ = qkv.shape
    q, k, _ = qkv.reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    rows, cols = vit.patch_embed.grid_size
    first = vit.num_prefix_tokens
    scores = (q[:, :, :1] * attn.scale) @ k[:, :, first:first + rows * cols].transpose(-2, -1)
    return scores.float().softmax(dim=-1).mean(dim=1).reshape(batch, rows, cols).cpu()


def attention_overlay(image: Image.Image, attention: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """``image`` with the attention map laid over it as a heat map (scaled to its own maximum)."""
    from matplotlib import colormaps

    scaled = attention / max(float(attention.max()), 1e-12)
    heat = Image.fromarray((colormaps["inferno"](scaled)[..., :3] * 255).astype(np.uint8))
    base = image.convert("RGB")
    return Image.blend(base, heat.resize(base.size, Image.Resampling.NEAREST), alpha)  # one square per patch


# ------------------------------------------------------------------------------ questions, tables


def image_from_bytes(data: bytes, name: str) -> Image.Image:
    """Decode an uploaded file; anything that is not an image raises DatasetError naming it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")  # forces the full decode: a truncated upload fails here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot decode the uploaded image ({type(err).__name__}: {err})", path=name) from None


def prediction_table(answer: Answer, truth: str | None = None) -> pd.DataFrame:
    """Rank, character and probability of the top-k answer (✓ marks ``truth`` when known)."""
    return pd.DataFrame(
        [{"character": name + (" ✓" if name == truth else ""), "probability": round(p, 3)} for name, p in answer.characters],
        index=pd.RangeIndex(1, len(answer.characters) + 1, name="rank"))


def tag_table(answer: Answer, true_tags: Sequence[str] | None = None) -> pd.DataFrame:
    """The predicted tags with their probabilities (and whether the image really has them, when known)."""
    table = pd.DataFrame(answer.tags, columns=["tag", "probability"]).round({"probability": 3})
    if true_tags is not None:
        table["true"] = table["tag"].isin(set(true_tags))
    return table


def tag_effects(run: LoadedRun, image: Image.Image, given: Sequence[str],
                candidates: Sequence[str] = ()) -> pd.DataFrame:
    """How the answer moves as tags are taken away (each given one, then all) or added (``candidates``).

    One row per tag set: the top character, its probability, and the probability of the answer
    with the tags as given, so a row shows both a change of mind and a loss of confidence.
    """
    variants = {"as given": list(given)}
    variants |= {f"− {t}": [g for g in given if g != t] for t in given}
    variants |= {f"+ {t}": [*given, t] for t in candidates if t not in given}
    variants["no tags"] = []
    answers = run.answer_many(image, list(variants.values()), top_k=len(run.classes))  # every class: p(reference)
    reference = answers[0].characters[0][0]
    return pd.DataFrame([{"tags": label, "given": len(tags), "top character": a.characters[0][0],
                          "probability": round(a.characters[0][1], 3),
                          f"p({reference})": round(dict(a.characters)[reference], 3)}
                         for (label, tags), a in zip(variants.items(), answers)]).set_index("tags")


def runs_for_data(runs_dir: str | Path, data_root: str | Path) -> dict[str, Path]:
    """Run name -> newest checkpoint, for the runs under ``runs_dir`` trained on ``data_root``.

    "Trained on" means the same data fingerprint, as the chapters decide which checkpoint to reuse.
    """
    from animesion_lib.checkpoint import latest_checkpoint, load_meta
    from animesion_lib.data import data_fingerprint

    fingerprint = data_fingerprint(data_root)
    found = {}
    for run in sorted(p for p in Path(runs_dir).glob("*") if p.is_dir()):
        ckpt = latest_checkpoint(run)
        if ckpt is not None and load_meta(ckpt).get("data_fingerprint") == fingerprint:
            found[run.name] = ckpt
    return found


def live_jupyter_session() -> bool:
    """True in a kernel that a Jupyter server started for a notebook (JupyterLab), not under papermill or nbval."""
    return bool(os.environ.get("JPY_SESSION_NAME"))


def png_bytes(image: Image.Image, width: int | None = None) -> bytes:
    """``image`` as PNG, scaled up to ``width`` pixels (nearest: a 32 px face stays crisp)."""
    if width and image.width < width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------- widget


SHOWN_TAGS = 12  # the widget's tag table: the most likely ones (an undertrained model passes hundreds)


class ModelExplorer:
    """The JupyterLab widget: a run, a test image or an upload, the tags given, top-k, attention.

    A run is loaded the first time it is picked and kept, so switching back costs nothing; every
    other change is one or two forward passes of the run in memory. ``show(...)`` is what each
    change calls, and can be called directly (the tests and the book do).
    """

    def __init__(self, runs: dict[str, Path], samples: Sequence[Any] = (), top_k: int = 5):
        import ipywidgets as w

        if not runs:
            raise ValueError("no run to explore: train one first (the chapters leave theirs in runs/<profile>/)")
        self.runs, self._loaded = dict(runs), {}
        self.samples = {f"{Path(s.rel).name} · {s.rel.split('/')[0]}": s for s in samples}
        self.run_picker = w.Dropdown(options=list(self.runs), description="run")
        self.image_picker = w.Dropdown(options=list(self.samples), description="test image")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="upload an image")
        self.tags = w.TagsInput(value=[], allowed_tags=[], placeholder="tags given…")
        self.own_tags = w.Button(description="give its own tags")
        self.top_k = w.IntSlider(top_k, 1, 20, description="top-k")
        self.attention = w.Checkbox(True, description="attention overlay")
        self.picture = w.Image(format="png", layout=w.Layout(width="192px", flex="0 0 auto"))  # never squeezed
        self.tables, self.status = w.HTML(), w.HTML()
        self._source = "test"
        self.run_picker.observe(lambda _: self._pick_run(), "value")
        self.image_picker.observe(lambda _: self._pick("test"), "value")
        self.upload.observe(lambda _: self._pick("upload"), "value")
        for control in (self.tags, self.top_k, self.attention):
            control.observe(lambda _: self.refresh(), "value")
        self.own_tags.on_click(lambda _: self._give_own_tags())
        controls = w.VBox([self.run_picker, w.HBox([self.image_picker, self.upload]),
                           w.HBox([self.tags, self.own_tags]), w.HBox([self.top_k, self.attention])])
        answer = w.HBox([self.picture, self.tables], layout=w.Layout(align_items="flex-start"))  # no stretched picture
        self.widget = w.VBox([controls, answer, self.status])
        self._pick_run()

    @property
    def run(self) -> LoadedRun:
        """The picked run, loaded on first use and kept."""
        checkpoint = self.runs[self.run_picker.value]
        if checkpoint not in self._loaded:
            self._loaded[checkpoint] = LoadedRun(checkpoint)
        return self._loaded[checkpoint]

    def _pick_run(self) -> None:
        run = self.run
        self.tags.allowed_tags = list(run.tag_vocab.tags) if run.tag_vocab is not None else []
        self.tags.disabled = self.own_tags.disabled = not run.multimodal
        self.refresh()

    def _pick(self, source: str) -> None:
        self._source = source
        if self.tags.value:
            self.tags.value = []  # a new image starts with no tags given; the change refreshes
        else:
            self.refresh()

    def _give_own_tags(self) -> None:
        sample = self.samples.get(self.image_picker.value)
        if self._source == "test" and sample is not None and sample.tags:
            self.tags.value = list(sample.tags)

    def _image(self) -> tuple[str, Image.Image, Any]:
        """Name, picture and (for a test image) the sample with its true label and tags."""
        if self._source == "upload" and self.upload.value:
            file = self.upload.value[0]
            return file["name"], image_from_bytes(bytes(file["content"]), file["name"]), None
        sample = self.samples[self.image_picker.value]
        return sample.rel, Image.open(sample.path).convert("RGB"), sample

    def refresh(self) -> None:
        """Answer for the current choices and show it (an unreadable upload is reported, not raised)."""
        if not self.samples and self._source == "test":
            self.status.value = "upload an image to start"
            return
        try:
            name, image, sample = self._image()
        except DatasetError as err:
            self.status.value = f"<b>{err}</b>"
            return
        self.show(name, image, sample, list(self.tags.value))

    def show(self, name: str, image: Image.Image, sample: Any = None, tags: Sequence[str] = ()) -> Answer:
        """Predict for ``image`` with ``tags`` given and display the picture, the tables and the time."""
        run, start = self.run, time.perf_counter()
        truth = run.classes[sample.class_id] if sample is not None else None
        answer = run.answer(image, tags, self.top_k.value, attention=self.attention.value)
        parts = [f"<h4>{name}</h4>", prediction_table(answer, truth).to_html(classes="animesion-prediction")]
        if run.tag_vocab is not None:
            tags_found = tag_table(answer, sample.tags if sample else None)
            parts += [f"<h4>predicted tags ({len(tags_found)} above {run.threshold(bool(tags) and run.multimodal):.2f}; the first {SHOWN_TAGS})</h4>",
                      tags_found.head(SHOWN_TAGS).to_html(index=False)]
        if run.multimodal:
            candidates = [t for t, _ in answer.tags if t not in tags][:3]
            parts += ["<h4>as tags are taken away or added</h4>",
                      tag_effects(run, image, tags, candidates).to_html(classes="animesion-tag-effects")]
        seconds = time.perf_counter() - start
        shown = attention_overlay(image, answer.attention) if answer.attention is not None else image
        self.picture.value = png_bytes(shown, width=192)
        self.tables.value = "".join(parts)
        self.status.value = f"run {self.run_picker.value}: answered in {seconds * 1000:.0f} ms (model kept in memory)"
        return answer

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
