"""Training labels under clouds: a scene's ``mask_clouds: true`` makes its cloud and shadow pixels unlabelled.

Labels digitized on a clear day (or on another image) say "forest" where this
scene shows a cloud; training on them teaches the model that clouds are
forest. With ``mask_clouds: true`` in a ``data.scenes`` item the scene's cloud
and shadow mask is made first (:func:`geoseg.inference.clouds.write_cloud_mask`,
into the run's work folder) and :class:`CloudMaskedLabels` reads the labels
with those pixels set to the ignore index.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.labels import LabelMap

__all__ = ["CloudMaskedLabels", "mask_cloudy_labels"]

log = logging.getLogger("geoseg")

CLOUD_BUFFER = 0
"""Pixels the cloud and shadow mask grows by before labels under it are ignored (as predict does: none)."""


class CloudMaskedLabels:
    """Labels whose pixels under clouds and cloud shadows read as unlabelled (:data:`IGNORE_INDEX`).

    Example:
        >>> labels = CloudMaskedLabels(open_labels("fields.gpkg", grid), CloudExclusion("clouds.tif"))  # doctest: +SKIP
        >>> labels.read(Window(0, 0, 256, 256))  # doctest: +SKIP
    """

    def __init__(self, labels: Any, exclude: Any) -> None:
        self.labels, self.exclude = labels, exclude

    @property
    def label_map(self) -> LabelMap:
        """The wrapped labels' class table."""
        return self.labels.label_map

    def read(self, window: Any) -> np.ndarray:
        """The class-id mask of ``window``, unlabelled under clouds and shadows."""
        out = self.labels.read(window)
        out[self.exclude(window)] = IGNORE_INDEX
        return out

    def close(self) -> None:
        """Close the labels and the cloud mask."""
        try:
            self.labels.close()
        finally:
            self.exclude.close()


def mask_cloudy_labels(labels: Any, image: str | Path, ds: Any, target: Path) -> CloudMaskedLabels:
    """Mask the clouds of ``image`` (open as ``ds``) into ``target`` and wrap ``labels`` to ignore them.

    Example:
        >>> labels = mask_cloudy_labels(labels, "scene.tif", ds, work / "clouds_0.tif")  # doctest: +SKIP
    """
    from geoseg.inference.clouds import CloudExclusion, write_cloud_mask

    made = write_cloud_mask(image, target, overwrite=True, style=False)
    for line in made.warnings:
        log.warning(line)
    log.info(
        "%s: labels under clouds (%.1f%%) and cloud shadows (%.1f%%) are ignored",
        image,
        made.shares["cloud"],
        made.shares["shadow"],
    )
    try:
        return CloudMaskedLabels(labels, CloudExclusion(target, buffer=CLOUD_BUFFER, like=ds))
    except BaseException:
        labels.close()
        raise
