"""Checks before and during prediction: outputs, block columns, area of interest, pixel size, radiometry.

Each warning is logged once and kept in the result's ``warnings`` (run.json).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.errors import InputError
from geoseg.io.paths import canonical, check_output
from geoseg.io.raster import pixel_size_m
from geoseg.model.card import ModelCard

__all__ = ["Radiometry", "check_columns", "check_outputs", "check_pixel_size", "warn", "warn_all_nodata"]

log = logging.getLogger("geoseg")


def warn(warnings: list[str], message: str) -> None:
    """Log ``message`` as a warning and keep it in ``warnings``.

    Example:
        >>> kept = []
        >>> warn(kept, "scene.tif: pixel size differs")
        >>> kept
        ['scene.tif: pixel size differs']
    """
    log.warning(message)
    warnings.append(message)


def check_outputs(outputs: dict[str, Path], inputs: list[Any], overwrite: bool) -> None:
    """Each output may be written (see :func:`geoseg.io.paths.check_output`) and names a different file.

    Example:
        >>> check_outputs({"classes": Path("a.tif"), "confidence": Path("a.tif")}, [], True)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: --classes and --confidence name the same file a.tif: give different paths
    """
    seen: dict[str, str] = {}
    for kind, path in outputs.items():
        check_output(path, inputs, overwrite)
        key = os.path.normcase(str(canonical(path)))
        if key in seen:
            raise InputError(f"--{seen[key]} and --{kind} name the same file {path}: give different paths")
        seen[key] = kind


def check_columns(columns: tuple[int, int] | None, ds: Any) -> tuple[int, int]:
    """The scene columns ``[x0, x1)`` to predict: all of them, or ``columns`` when they lie inside the scene."""
    if columns is None:
        return 0, int(ds.width)
    x0, x1 = (int(v) for v in columns)
    if not 0 <= x0 < x1 <= ds.width:
        raise InputError(f"columns {x0}:{x1} are not inside {ds.name} (0:{ds.width}): give 0 <= x0 < x1 <= width")
    return x0, x1


def warn_all_nodata(name: str, warnings: list[str]) -> None:
    """Say (once) that a scene is nodata everywhere: not an error, its outputs are all nodata."""
    warn(
        warnings,
        f"{name}: every pixel is nodata (or outside the area of interest); the outputs are all nodata and the "
        "polygon layers empty",
    )


def check_pixel_size(ds: Any, model_size: float | None, warnings: list[str]) -> None:
    """Warn when the scene's pixel size differs from the model's by more than 25%."""
    if not model_size:
        return
    size = pixel_size_m(ds)
    if abs(size - model_size) > 0.25 * model_size:
        warn(
            warnings,
            f"{ds.name}: pixel size {size:.3g} m differs from the model's {model_size:.3g} m by "
            f"more than 25%; results may be poor (resample the scene to {model_size:.3g} m)",
        )


class Radiometry:
    """Compares the first chips' band means with the model's normalization (warns once).

    Example:
        >>> from geoseg.core.classes import ClassInfo
        >>> card = ModelCard("unet", "resnet18", ["B1"], [ClassInfo(0, "a", "#000000")], mean=[10.0], std=[1.0])
        >>> kept = []
        >>> r = Radiometry(card, kept, "scene.tif")
        >>> r.observe(np.full((1, 4, 4), 50.0), np.ones((4, 4), bool))
        >>> r.check()
        >>> kept[0].startswith("scene.tif: band statistics far outside")
        True
    """

    def __init__(self, card: ModelCard, warnings: list[str], name: str) -> None:
        self.card, self.warnings, self.name = card, warnings, name
        self.sums: np.ndarray | None = None
        self.count = 0
        self.done = card.mean is None

    def observe(self, data: np.ndarray, valid: np.ndarray) -> None:
        """Add a chip's valid pixels ``(C, H, W)``; checks once four chips' worth are in."""
        if self.done or not valid.any():
            return
        sums = data[:, valid].sum(axis=1, dtype=np.float64)
        self.sums = sums if self.sums is None else self.sums + sums
        self.count += int(valid.sum())
        if self.count >= 4 * 256 * 256:
            self.check()

    def check(self) -> None:
        """Warn when a band's mean lies more than three standard deviations from the model's."""
        if self.done or not self.count or self.sums is None:
            return
        self.done = True
        means = self.sums / self.count
        mean, std = np.asarray(self.card.mean), np.asarray(self.card.std)
        far = np.abs(means - mean) > 3 * std
        if far.any():
            bad = ", ".join(
                f"{b} mean {m:.4g} (model {mu:.4g} ± {s:.3g})"
                for b, m, mu, s, f in zip(self.card.bands, means, mean, std, far)
                if f
            )
            warn(
                self.warnings,
                f"{self.name}: band statistics far outside the model's normalization: {bad}; "
                "check the bands' order, scaling and units",
            )
