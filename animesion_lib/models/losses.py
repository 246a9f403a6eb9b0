"""Multi-label losses for tag prediction."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al., ICCV 2021) for long-tailed multi-label targets.

    With ``p = σ(x)`` and the shifted probability ``p_m = max(p − m, 0)`` (``m = clip``):

        L+ = (1 − p)^{γ+} · log(p)
        L− = p_m^{γ−} · log(1 − p_m)
        L  = −mean( y · L+ + (1 − y) · L− )

    Negatives (most tags on most images) are down-weighted by ``γ−`` and easy ones discarded by
    the margin ``m``. With ``γ+ = γ− = 0`` and ``m = 0`` this is exactly
    ``binary_cross_entropy_with_logits`` (mean reduction), which the tests check.
    """
    logits = logits.float()
    targets = targets.float()
    prob = torch.sigmoid(logits)
    log_pos = F.logsigmoid(logits)
    if clip > 0:
        prob_neg = (prob - clip).clamp_min(0)
        log_neg = torch.log((1 - prob_neg).clamp_min(eps))
    else:
        prob_neg = prob
        log_neg = F.logsigmoid(-logits)  # log(1 - p), numerically stable
    loss = targets * log_pos + (1 - targets) * log_neg
    if gamma_pos > 0 or gamma_neg > 0:
        focus = targets * (1 - prob).pow(gamma_pos) + (1 - targets) * prob_neg.pow(gamma_neg)
        loss = loss * focus
    return -loss.mean()


def tag_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str = "bce", **asl: float) -> torch.Tensor:
    """``kind="bce"``: binary cross-entropy; ``kind="asl"``: :func:`asymmetric_loss` with ``asl`` settings."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())
    if kind == "asl":
        return asymmetric_loss(logits, targets, **asl)
    raise ValueError(f"tag_loss must be 'bce' or 'asl', not {kind!r}")
