"""Finished rows on the model's device (a GPU): the outputs are computed there and only integer rows come back.

With a GPU runner the chips' probabilities never leave the device: the
:class:`~geoseg.inference.stitch.TorchStitcher` blends them there and hands
finished rows over as tensors; :func:`reduce_rows` turns them into the same
uint8 (uint16) rows as :data:`geoseg.io.classmap.RASTER_OUTPUTS` would on
the CPU (argmax with the first class winning ties, percentages rounded half
to even), so a row of ``K`` float32 probabilities crosses the bus as one
byte per pixel for the class map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from geoseg.core.classes import NODATA
from geoseg.inference.checks import DOMAIN_STEP
from geoseg.io.classmap import GRID_PROBABILITIES, NODATA16, RASTER_OUTPUTS, SCALE16

__all__ = ["DEVICE_OUTPUTS", "mask_rows", "reduce_rows"]


def _classes(probs: Any) -> Any:
    return probs.argmax(0).to(_uint8())


def _uint8() -> Any:
    import torch

    return torch.uint8


def _confidence(probs: Any) -> Any:
    return (probs.amax(0) * 100).round().to(_uint8())


def _probabilities(probs: Any) -> Any:
    return (probs * 100).round().to(_uint8())


def _grid_probabilities(probs: Any) -> Any:
    import torch

    return (torch.nan_to_num(probs, nan=0.0).clamp(0, 1) * SCALE16).round().to(torch.int32)


DEVICE_OUTPUTS: dict[str, Callable[[Any], Any]] = {
    "classes": _classes,
    "confidence": _confidence,
    "probabilities": _probabilities,
    GRID_PROBABILITIES: _grid_probabilities,
}
"""How each raster output is computed from probability tensors on the device (the rest go through the CPU)."""


def reduce_rows(probs: Any, weight: Any, kinds: Iterable[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Finished rows as tensors ``(K, h, w)`` / ``(h, w)`` on the device → host arrays.

    Returns the pixels any chip covered ``(h, w)``, each output of ``kinds``
    (not yet masked: see :func:`mask_rows`) and every ``DOMAIN_STEP``-th
    pixel's probabilities for the domain check.

    Example:
        >>> import torch
        >>> covered, rows, sample = reduce_rows(torch.tensor([[[0.2, 0.6]], [[0.8, 0.4]]]), torch.ones(1, 2), ["classes"])
        >>> rows["classes"].tolist(), covered.tolist(), sample.shape
        ([[1, 0]], [[True, True]], (2, 1, 1))
    """
    out = {}
    for kind in kinds:
        compute = DEVICE_OUTPUTS.get(kind)
        if compute is None:  # an output registered later without a device form: on the CPU
            host = probs.cpu().numpy()
            out[kind] = RASTER_OUTPUTS[kind].compute(host, np.ones(host.shape[1:], bool))
        else:
            out[kind] = compute(probs).cpu().numpy()
    if GRID_PROBABILITIES in out:
        out[GRID_PROBABILITIES] = out[GRID_PROBABILITIES].astype(np.uint16)
    covered = (weight > 0).cpu().numpy()
    sample = probs[:, ::DOMAIN_STEP, ::DOMAIN_STEP].cpu().numpy()
    return covered, out, sample


def mask_rows(rows: dict[str, np.ndarray], valid: np.ndarray) -> dict[str, np.ndarray]:
    """Set the pixels outside ``valid`` to each output's nodata (255, or 65535 for uint16 rows), in place.

    Example:
        >>> mask_rows({"classes": np.zeros((1, 2), np.uint8)}, np.array([[True, False]]))["classes"].tolist()
        [[0, 255]]
    """
    for kind, array in rows.items():
        array[..., ~valid] = NODATA16 if kind == GRID_PROBABILITIES else NODATA
    return rows
