"""Class areas of a class map: pixels, m² (geodesic in geographic CRSs) and share per class (``areas.csv``)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.classes import NODATA, ClassInfo
from geoseg.io.pixels import needs_geodesic, pixel_area_m2
from geoseg.io.raster import gdal_env, open_scene

__all__ = ["areas_table", "csv_safe", "row_areas_m2", "write_areas_csv", "write_csv"]


def row_areas_m2(ds: Any) -> np.ndarray:
    """Area (m²) of one pixel in each row of ``ds``: geodesic on the ellipsoid for geographic CRSs and Mercator.

    In a projected CRS every pixel has the same area; in a geographic one a
    pixel row's area shrinks toward the poles, so class areas are summed row
    by row instead of using the pixel area at the scene's centre.

    Example:
        >>> row_areas_m2(ds)[:2]  # doctest: +SKIP
        array([7.7e+09, 7.7e+09])
    """
    if not needs_geodesic(ds.crs):
        return np.full(ds.height, pixel_area_m2(ds))
    from pyproj import CRS as ProjCRS
    from pyproj import Geod, Transformer

    source = ProjCRS.from_user_input(ds.crs.to_wkt())
    geod = source.get_geod() or Geod(ellps="WGS84")
    t = ds.transform
    x0 = t.c + t.a * (ds.width // 2)  # a row of a Mercator map is a parallel: one pixel's area holds for the row
    x = np.array([x0, x0 + t.a])
    top = t.f + t.e * np.arange(ds.height)
    bottom = top + t.e
    if not source.is_geographic and source.geodetic_crs is not None:
        to_degrees = Transformer.from_crs(source, source.geodetic_crs, always_xy=True)
        x, _ = to_degrees.transform(x, np.full(2, top[0] if len(top) else 0.0))
        _, top = to_degrees.transform(np.full(len(top), x0), top)
        _, bottom = to_degrees.transform(np.full(len(bottom), x0), bottom)
    width = abs(float(x[1] - x[0]))
    areas = np.empty(ds.height)
    for row, (y0, y1) in enumerate(zip(top, bottom)):
        lat0, lat1 = np.clip([y0, y1], -90.0, 90.0)
        area, _ = geod.polygon_area_perimeter([0.0, width, width, 0.0], [lat0, lat0, lat1, lat1])
        areas[row] = abs(area)
    return areas


def areas_table(classes: Path, table: Sequence[ClassInfo]) -> list[dict[str, Any]]:
    """Pixels, area (m²) and share of the classified area for each class of a class map, read in blocks.

    Areas are geodesic when the class map's CRS is geographic or Mercator (summed row by row).

    Example:
        >>> rows = areas_table(Path("out/classes.tif"), table)  # doctest: +SKIP
        >>> rows[0]  # doctest: +SKIP
        {'class_id': 0, 'class_name': 'forest', 'pixels': 1200, 'area_m2': 120000.0, 'share': 0.3}
    """
    with gdal_env(), open_scene(classes) as ds:
        counts = np.zeros(NODATA + 1, dtype=np.int64)
        area = np.zeros(NODATA + 1, dtype=np.float64)
        rows = row_areas_m2(ds)
        geographic = needs_geodesic(ds.crs)  # rows differ in area
        for _, window in ds.block_windows(1):
            block = ds.read(1, window=window)
            counts += np.bincount(block.ravel(), minlength=NODATA + 1)
            if geographic:
                row_area = rows[int(window.row_off) : int(window.row_off) + block.shape[0]]
                area += np.bincount(block.ravel(), weights=np.repeat(row_area, block.shape[1]), minlength=NODATA + 1)
        if not geographic:  # every pixel has the same area
            area = counts.astype(np.float64) * float(rows[0]) if len(rows) else area
    total = counts[:NODATA].sum()
    return [
        {
            "class_id": c.id,
            "class_name": c.name,
            "pixels": int(counts[c.id]),
            "area_m2": round(float(area[c.id]), 2),
            "share": round(float(counts[c.id] / total), 6) if total else 0.0,
        }
        for c in table
    ]


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """Text that spreadsheets would run as a formula (``=``, ``+``, ``-``, ``@``...) gets a leading ``'``.

    Example:
        >>> csv_safe("=cmd|' /C calc'!A0"), csv_safe("forest"), csv_safe(12)
        ("'=cmd|' /C calc'!A0", 'forest', 12)
    """
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA) else value


def write_csv(rows: Iterable[dict[str, Any]], path: Path, fields: Sequence[str]) -> Path:
    """Write rows as CSV with the header ``fields``: None is an empty cell, and text a spreadsheet would run
    as a formula is written as text (:func:`csv_safe`). The one CSV writer of the reports.

    Example:
        >>> import tempfile
        >>> path = write_csv([{"class": "=1+1", "iou": None}], Path(tempfile.mkdtemp()) / "t.csv", ["class", "iou"])
        >>> path.read_text().splitlines()
        ['class,iou', "'=1+1,"]
    """
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows({k: "" if v is None else csv_safe(v) for k, v in row.items()} for row in rows)
    return Path(path)


def write_areas_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Write :func:`areas_table` rows as CSV (header ``class_id`` alone when there are no classes)."""
    write_csv(rows, path, list(rows[0]) if rows else ["class_id"])
