"""Losses for imbalanced, sparsely labeled segmentation; all skip ``ignore_index`` pixels.

``make_loss({"ce": 1.0, "dice": 0.5})`` is the weighted sum of the named
losses. Class weights apply to cross-entropy and focal loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from geoseg.core.classes import IGNORE_INDEX

__all__ = ["auto_class_weights", "dice_loss", "focal_loss", "make_loss"]


def auto_class_weights(counts: Sequence[int]) -> list[float]:
    """Inverse square-root frequency weights, mean 1 over present classes, 0 for absent ones.

    Example:
        >>> [round(w, 3) for w in auto_class_weights([900, 100, 0])]
        [0.5, 1.5, 0.0]
    """
    c = np.asarray(counts, dtype=np.float64)
    w = np.zeros_like(c)
    present = c > 0
    if present.any():
        w[present] = 1.0 / np.sqrt(c[present] / c[present].sum())
        w[present] /= w[present].mean()
    return [float(v) for v in w]


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``."""
    ce = F.cross_entropy(logits, target, reduction="none", ignore_index=IGNORE_INDEX)
    valid = target != IGNORE_INDEX
    if not valid.any():
        return logits.sum() * 0
    pt = torch.exp(-ce[valid])
    loss = (1 - pt) ** gamma * ce[valid]
    if weight is not None:
        w = weight[target[valid]]
        return (loss * w).sum() / w.sum().clamp_min(1e-12)
    return loss.mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft multi-class Dice loss over labeled pixels, averaged over the classes present in the batch."""
    k = logits.shape[1]
    valid = target != IGNORE_INDEX
    if not valid.any():
        return logits.sum() * 0
    probs = torch.softmax(logits.float(), dim=1).permute(0, 2, 3, 1)[valid]  # (N, K)
    onehot = F.one_hot(target[valid].long(), k).float()
    inter = (probs * onehot).sum(0)
    denom = probs.sum(0) + onehot.sum(0)
    dice = (2 * inter + eps) / (denom + eps)
    present = onehot.sum(0) > 0
    return 1 - dice[present].mean()


def make_loss(weights: dict[str, float], class_weights: Sequence[float] | None = None, gamma: float = 2.0):
    """The weighted sum of ``ce``, ``dice`` and ``focal`` as a function ``(logits, target) -> loss``.

    Example:
        >>> loss = make_loss({"ce": 1.0, "dice": 1.0})
        >>> x = torch.zeros(1, 2, 2, 2); y = torch.tensor([[[0, 1], [255, 1]]])
        >>> round(float(loss(x, y)), 4)
        1.0741
    """
    cw = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        w = None if cw is None else cw.to(logits.device)
        total = logits.new_zeros(())
        if weights.get("ce"):
            if (target != IGNORE_INDEX).any():
                total = total + weights["ce"] * F.cross_entropy(logits.float(), target, weight=w, ignore_index=IGNORE_INDEX)
            else:
                total = total + logits.sum() * 0
        if weights.get("focal"):
            total = total + weights["focal"] * focal_loss(logits.float(), target, gamma, w)
        if weights.get("dice"):
            total = total + weights["dice"] * dice_loss(logits, target)
        return total

    return loss
