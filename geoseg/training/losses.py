"""Losses for imbalanced, sparsely labeled segmentation, as a registry; all skip ``IGNORE_INDEX`` pixels.

:data:`LOSSES` maps each loss name to a factory; the config schema takes its
choices from it, so a new loss is one factory and one entry. ``make_loss({"ce":
1.0, "dice": 0.5})`` is the weighted sum of the named losses. Class weights
apply to cross-entropy and focal loss.

segmentation_models_pytorch's losses are used where they compute what geoseg
needs: ``lovasz`` is smp's ``LovaszLoss``. The others are geoseg's own, because
smp's give other numbers (and the bundled default model must train bit for bit):
``ce`` is torch's cross-entropy (smp has none with class weights and an ignore
index); smp's ``DiceLoss`` takes the intersection as ``sum(min(p, t))`` instead
of ``sum(p * t)``, smooths differently and averages over all classes, counting
absent ones as 0 (0.303 instead of 0.381 on the example of :func:`dice_loss`);
smp's ``FocalLoss`` sums one-vs-rest sigmoid focal losses over the classes
instead of the softmax focal loss of Lin et al. (0.316 instead of 0.814 on
random logits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["LOSSES", "LossContext", "auto_class_weights", "dice_loss", "focal_loss", "make_loss"]

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""``(logits (B, K, H, W) float, target (B, H, W) int64) -> scalar loss``."""


@dataclass(frozen=True)
class LossContext:
    """What a loss factory may use: per-class weights (or None) and the focal loss's gamma."""

    class_weights: torch.Tensor | None = None
    gamma: float = 2.0


def auto_class_weights(counts: Sequence[int] | np.ndarray) -> list[float]:
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
    """Focal loss (Lin et al. 2017): softmax cross-entropy scaled by ``(1 - p_true) ** gamma``.

    Example:
        >>> import torch
        >>> round(float(focal_loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 255]]]))), 4)
        0.1733
    """
    import torch
    import torch.nn.functional as F

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
    """Soft multi-class Dice loss over labeled pixels, averaged over the classes present in the batch.

    Example:
        >>> import torch
        >>> round(float(dice_loss(torch.zeros(1, 2, 2, 2), torch.tensor([[[0, 1], [255, 1]]]))), 4)
        0.381
    """
    import torch
    import torch.nn.functional as F

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


def _cross_entropy(ctx: LossContext) -> LossFn:
    import torch.nn.functional as F

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != IGNORE_INDEX).any():
            return logits.sum() * 0
        w = None if ctx.class_weights is None else ctx.class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), target, weight=w, ignore_index=IGNORE_INDEX)

    return loss


def _focal(ctx: LossContext) -> LossFn:
    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = None if ctx.class_weights is None else ctx.class_weights.to(logits.device)
        return focal_loss(logits.float(), target, ctx.gamma, w)

    return loss


def _dice(ctx: LossContext) -> LossFn:
    return dice_loss


def _lovasz(ctx: LossContext) -> LossFn:
    from geoseg._compat import import_smp

    import_smp()  # loads smp (and torchvision) the way the model factory does
    from segmentation_models_pytorch.losses import LovaszLoss

    lovasz = LovaszLoss("multiclass", ignore_index=IGNORE_INDEX)

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != IGNORE_INDEX).any():
            return logits.sum() * 0  # smp returns an empty tensor when every pixel is ignored
        return lovasz(logits.float(), target)

    return loss


LOSSES: dict[str, Callable[[LossContext], LossFn]] = {
    "ce": _cross_entropy,
    "focal": _focal,
    "dice": _dice,
    "lovasz": _lovasz,
}
"""Loss name -> factory ``(LossContext) -> loss function``. :func:`make_loss` sums the chosen losses in this
order (ce, focal, dice, ...: the order the bundled default model was trained with)."""


def make_loss(weights: dict[str, float], class_weights: Sequence[float] | None = None, gamma: float = 2.0) -> LossFn:
    """The weighted sum of the losses named in ``weights`` (keys of :data:`LOSSES`) as ``(logits, target) -> loss``.

    Example:
        >>> import torch
        >>> loss = make_loss({"ce": 1.0, "dice": 1.0})
        >>> x = torch.zeros(1, 2, 2, 2); y = torch.tensor([[[0, 1], [255, 1]]])
        >>> round(float(loss(x, y)), 4)
        1.0741
    """
    import torch

    unknown = [name for name in weights if name not in LOSSES]
    if unknown:
        raise InputError(f"loss {unknown[0]!r} is not one of {', '.join(sorted(LOSSES))}")
    cw = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
    ctx = LossContext(cw, gamma)
    parts = [(weights[name], factory(ctx)) for name, factory in LOSSES.items() if weights.get(name)]

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        total = logits.new_zeros(())
        for weight, fn in parts:
            total = total + weight * fn(logits, target)
        return total

    return loss
