"""Chips read, checked and normalized into batches for the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from geoseg.core.grid import Chip

__all__ = ["Batch", "iter_batches"]


@dataclass
class Batch:
    """Chips ready for the model: normalized data ``(B, C, S, S)`` and validity ``(B, S, S)``."""

    chips: list[Chip]
    data: np.ndarray
    valid: np.ndarray
    skipped: int = 0


def iter_batches(
    chips: Iterable[Chip],
    read: Callable[[Chip], tuple[np.ndarray, np.ndarray]],
    normalize: Callable[[np.ndarray], np.ndarray],
    batch_size: int,
) -> Iterator[Batch]:
    """Read chips, drop those with no valid pixel, normalize, and group them in batches.

    Invalid pixels are set to 0 after normalization (the band mean when the
    model has a normalization). A batch may be empty of chips when all were
    skipped; its ``skipped`` count still reports progress.
    """
    pending: list[tuple[Chip, np.ndarray, np.ndarray]] = []
    skipped = 0
    for chip in chips:
        data, valid = read(chip)
        if not valid.any():
            skipped += 1
        else:
            data = normalize(data)
            if not valid.all():
                data[:, ~valid] = 0
            pending.append((chip, data, valid))
        if len(pending) == batch_size or (skipped and skipped % batch_size == 0 and not pending):
            yield _stack(pending, skipped)
            pending, skipped = [], 0
    if pending or skipped:
        yield _stack(pending, skipped)


def _stack(items: list[tuple[Chip, np.ndarray, np.ndarray]], skipped: int) -> Batch:
    if not items:
        return Batch([], np.empty((0,)), np.empty((0,)), skipped)
    return Batch(
        [c for c, _, _ in items],
        np.stack([d for _, d, _ in items]),
        np.stack([v for _, _, v in items]),
        skipped,
    )
