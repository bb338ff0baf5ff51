"""The learning-rate schedule: cosine decay over the epochs, optionally after a linear warm-up.

The schedule steps once per epoch. Epoch ``e`` (1-based) of ``E`` with ``W`` warm-up epochs trains at
``lr * e / (W + 1)`` while ``e <= W``, then at ``lr * (1 + cos(pi * (e - W - 1) / (E - W))) / 2``: the full
rate on the first epoch after the warm-up, decaying towards zero at the end. Without a warm-up (``W = 0``) it is
torch's ``CosineAnnealingLR(T_max=E)``, the schedule of every run before warm-up existed, step for step.

The epoch loop sets each epoch's rate from :func:`lr_factor` (closed form, from the epoch and the config's ``E``)
rather than stepping a scheduler: a recursive scheduler such as ``CosineAnnealingLR`` that has reached zero stays
there, so a run resumed with more epochs would train at zero.

Example:
    >>> [round(lr_factor(e, epochs=10, warmup=2), 3) for e in (1, 2, 3, 10)]
    [0.333, 0.667, 1.0, 0.038]
"""

from __future__ import annotations

import math

__all__ = ["lr_factor"]


def lr_factor(epoch: int, epochs: int, warmup: int = 0) -> float:
    """The share of the base learning rate that epoch ``epoch`` (1-based) of ``epochs`` trains at.

    Example:
        >>> round(lr_factor(1, epochs=60), 4), round(lr_factor(31, epochs=60), 4), lr_factor(1, epochs=60, warmup=3)
        (1.0, 0.5, 0.25)
    """
    if epoch <= warmup:
        return epoch / (warmup + 1)
    span = max(1, epochs - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch - warmup - 1, span) / span))
