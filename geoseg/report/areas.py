"""Class areas of a class map: pixels, m² and share per class, read block by block (``areas.csv``)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.classes import NODATA, ClassInfo
from geoseg.io.raster import gdal_env, open_scene, pixel_area_m2

__all__ = ["areas_table", "write_areas_csv"]


def areas_table(classes: Path, table: Sequence[ClassInfo]) -> list[dict[str, Any]]:
    """Pixels, area (m²) and share of the classified area for each class of a class map, read in blocks.

    Example:
        >>> rows = areas_table(Path("out/classes.tif"), table)  # doctest: +SKIP
        >>> rows[0]  # doctest: +SKIP
        {'class_id': 0, 'class_name': 'forest', 'pixels': 1200, 'area_m2': 120000.0, 'share': 0.3}
    """
    with gdal_env(), open_scene(classes) as ds:
        counts = np.zeros(256, dtype=np.int64)
        for _, window in ds.block_windows(1):
            counts += np.bincount(ds.read(1, window=window).ravel(), minlength=256)
        pixel_area = pixel_area_m2(ds)
    total = counts[:NODATA].sum()
    return [
        {
            "class_id": c.id,
            "class_name": c.name,
            "pixels": int(counts[c.id]),
            "area_m2": round(float(counts[c.id] * pixel_area), 2),
            "share": round(float(counts[c.id] / total), 6) if total else 0.0,
        }
        for c in table
    ]


def write_areas_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Write :func:`areas_table` rows as CSV (header ``class_id`` alone when there are no classes)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["class_id"])
        writer.writeheader()
        writer.writerows(rows)
