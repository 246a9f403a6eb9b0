"""Loss-landscape slices along random filter-normalised directions (Li et al., 2018).

A trained network sits at a point ``θ*`` of a space with millions of dimensions; we look at the
loss on a line ``θ* + α·d`` (1-D) or a plane ``θ* + α·d₁ + β·d₂`` (2-D) through it. A random
direction on its own says little, because a ViT's weight matrices have very different scales and
a step that is tiny for one layer wrecks another. *Filter normalisation* rescales the random
direction so that every filter (every output row of a weight matrix, every output channel of a
convolution) has the same norm as the corresponding filter of the trained weights; vectors
(biases, LayerNorm gains, the [CLS] token) get a zero direction, as in the paper. Then
``α = 1`` means "move every filter by its own size", and slices of two models are comparable.

    from animesion_lib.analysis.landscape import (
        filter_normalized_direction, loss_slice_1d, loss_surface_2d, sharpness)
    batches = collect_batches(loader, max_images=512)
    d = filter_normalized_direction(model, seed=0)
    losses = loss_slice_1d(model, batches, d, alphas=np.linspace(-1, 1, 21))
    sharpness(alphas, losses, radius=0.25)   # {"curvature": ..., "rise": ...}

Every function restores the model's weights before it returns (even on an exception).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Direction = dict[str, torch.Tensor]


def _parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def filter_normalized_direction(model: torch.nn.Module, seed: int = 0, ignore_vectors: bool = True) -> Direction:
    """A Gaussian direction with, filter by filter, the norm of the model's own weights.

    For a parameter ``W`` of shape ``(out, ...)`` (Linear, Conv, embeddings) each slice
    ``d[i]`` is drawn from N(0, 1) and rescaled to ``‖d[i]‖ = ‖W[i]‖``. One-dimensional
    parameters (biases, norms) get zeros when ``ignore_vectors`` (Li et al.'s choice), otherwise
    the whole vector is rescaled to the parameter's norm.
    """
    generator = torch.Generator().manual_seed(seed)
    direction = {}
    for name, weight in _parameters(model).items():
        w = weight.detach().float().cpu()
        if w.dim() <= 1:
            if ignore_vectors:
                d = torch.zeros_like(w)
            else:
                d = torch.randn(w.shape, generator=generator)
                d *= w.norm() / (d.norm() + 1e-10)
        else:
            d = torch.randn(w.shape, generator=generator)
            w_rows, d_rows = w.reshape(w.shape[0], -1), d.reshape(d.shape[0], -1)
            d = (d_rows * (w_rows.norm(dim=1, keepdim=True) / (d_rows.norm(dim=1, keepdim=True) + 1e-10))).reshape(w.shape)
        direction[name] = d.to(weight.device, weight.dtype)
    return direction


@contextmanager
def _restored(model: torch.nn.Module):
    """Snapshot the trainable weights and put them back afterwards; the model runs in eval mode."""
    saved = {name: p.detach().clone() for name, p in _parameters(model).items()}
    was_training = model.training
    model.eval()
    try:
        yield saved
    finally:
        with torch.no_grad():
            for name, p in _parameters(model).items():
                p.copy_(saved[name])
        model.train(was_training)


def _move_to(model: torch.nn.Module, origin: Direction, steps: Sequence[tuple[float, Direction]]) -> None:
    """Set the weights to ``origin + Σ coef·direction``."""
    with torch.no_grad():
        for name, p in _parameters(model).items():
            value = origin[name].clone()
            for coef, direction in steps:
                if coef:
                    value.add_(direction[name], alpha=float(coef))
            p.copy_(value)


def collect_batches(loader: Iterable[dict[str, Any]], max_images: int) -> list[dict[str, torch.Tensor]]:
    """The first ``max_images`` images of a loader, as a fixed list of ``{"image", "label"}`` batches.

    A slice must evaluate every point on the same images; a fixed list (of a non-shuffling,
    non-augmenting loader) guarantees it.
    """
    batches, seen = [], 0
    for batch in loader:
        take = min(len(batch["label"]), max_images - seen)
        batches.append({"image": batch["image"][:take], "label": batch["label"][:take]})
        seen += take
        if seen >= max_images:
            break
    return batches


@torch.no_grad()
def mean_loss(model: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> float:
    """Mean character cross-entropy over the batches (no auxiliary losses: the landscape of the task)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches:
        logits = model(batch["image"].to(device))["logits"].float()
        labels = batch["label"].to(device)
        total += F.cross_entropy(logits, labels, reduction="sum").item()
        count += len(labels)
    return total / max(count, 1)


def loss_slice_1d(model: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]], direction: Direction,
                  alphas: Sequence[float]) -> np.ndarray:
    """``L(θ* + α·d)`` for every α (float64 array, the order of ``alphas``)."""
    with _restored(model) as origin:
        losses = []
        for alpha in alphas:
            _move_to(model, origin, [(alpha, direction)])
            losses.append(mean_loss(model, batches))
    return np.asarray(losses, dtype=np.float64)


def loss_surface_2d(model: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]], direction_x: Direction,
                    direction_y: Direction, alphas: Sequence[float], betas: Sequence[float]) -> np.ndarray:
    """``L(θ* + α·d_x + β·d_y)`` as an array ``[len(betas), len(alphas)]`` (rows: β, as contour plots want)."""
    with _restored(model) as origin:
        surface = np.empty((len(betas), len(alphas)), dtype=np.float64)
        for i, beta in enumerate(betas):
            for j, alpha in enumerate(alphas):
                _move_to(model, origin, [(alpha, direction_x), (beta, direction_y)])
                surface[i, j] = mean_loss(model, batches)
    return surface


def sharpness(alphas: Sequence[float], losses: Sequence[float], radius: float) -> dict[str, float]:
    """Numbers for how sharp a 1-D slice is around its centre ``α = 0``.

    * ``curvature``: ``2a`` of the least-squares parabola ``a α² + b α + c`` through the points
      with ``|α| ≤ radius`` (the second derivative along the direction, in loss per unit²);
    * ``rise``: the mean loss at ``α = ±radius`` (interpolated) minus the loss at ``α = 0`` — how
      much the loss grows when every filter moves by ``radius`` times its own norm;
    * ``loss_at_0``: the centre itself.
    Larger values mean a sharper (less smooth) minimum.
    """
    alphas, losses = np.asarray(alphas, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    order = np.argsort(alphas)
    alphas, losses = alphas[order], losses[order]
    if not (alphas.min() <= -radius and alphas.max() >= radius):
        raise ValueError(f"the slice spans [{alphas.min()}, {alphas.max()}], which does not cover ±{radius}")
    near = np.abs(alphas) <= radius + 1e-12
    if near.sum() < 3:
        raise ValueError(f"need at least 3 points with |alpha| <= {radius} to fit a parabola, got {int(near.sum())}")
    a, _, _ = np.polyfit(alphas[near], losses[near], 2)
    centre = float(np.interp(0.0, alphas, losses))
    rise = 0.5 * (np.interp(-radius, alphas, losses) + np.interp(radius, alphas, losses)) - centre
    return {"curvature": float(2 * a), "rise": float(rise), "loss_at_0": centre}


__all__ = ["Direction", "collect_batches", "filter_normalized_direction", "loss_slice_1d", "loss_surface_2d",
           "mean_loss", "sharpness"]
