"""Reading vector files (areas of interest, background areas) in the scene's CRS, and buffering in metres."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from rasterio.crs import CRS

from geoseg.core.errors import VectorError
from geoseg.io.paths import check_input_file, is_remote

__all__ = ["buffer_metres", "read_polygons"]


def read_polygons(
    path: str | os.PathLike, crs: CRS, what: str = "vector file", fix: str = "give an area of interest as polygons"
) -> list:
    """Polygons of a vector file reprojected to ``crs`` (shapely geometries as they are; empty ones dropped).

    ``what`` names the file in errors and ``fix`` says what to give instead.

    Example:
        >>> polys = read_polygons("aoi.gpkg", CRS.from_epsg(32633))  # doctest: +SKIP
    """
    import geopandas as gpd

    name = str(path)
    if not is_remote(name):
        check_input_file(name, what, "give a vector file such as a GeoPackage", VectorError, folder_ok=True)
    try:
        frame = gpd.read_file(name, engine="pyogrio")
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"{what} {name} is not a vector file GDAL can read ({str(exc).splitlines()[0]})") from None
    if frame.crs is None:
        raise VectorError(f"{what} {name} has no CRS: assign one (e.g. ogr2ogr -a_srs EPSG:4326)")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    frame = frame[frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if frame.empty:
        raise VectorError(f"{what} {name} holds no polygons: {fix}")
    frame = frame.to_crs(crs.to_wkt())
    return list(frame.geometry)  # invalid polygons are repaired (and said) by the caller, never silently


def buffer_metres(geometries: Any, crs: CRS, metres: float) -> np.ndarray:
    """Geometries (in ``crs``) buffered by ``metres``: lines become corridors, points discs, in ``crs``.

    In a projected CRS the distance is converted to its linear unit (feet
    too); in a geographic CRS the geometries are buffered in the local UTM
    zone (estimated from their extent) and reprojected back, so a 5 m buffer
    is 5 m on the ground at any latitude.

    Example:
        >>> import shapely
        >>> disc = buffer_metres([shapely.Point(13.4, 52.5)], CRS.from_epsg(4326), 10.0)[0]
        >>> import geopandas as gpd
        >>> round(float(gpd.GeoSeries([disc], crs=4326).to_crs(32633).area.iloc[0]))  # pi * 10**2
        314
    """
    import geopandas as gpd
    import shapely

    from geoseg.io.pixels import linear_factor

    geoms = np.asarray(geometries, dtype=object)
    if len(geoms) == 0:
        return geoms
    if not crs.is_geographic:
        return np.asarray(shapely.buffer(geoms, metres / linear_factor(crs)), dtype=object)
    series = gpd.GeoSeries(geoms, crs=crs.to_wkt())
    local = series.estimate_utm_crs()
    buffered = series.to_crs(local).buffer(metres).to_crs(crs.to_wkt())  # UTM zones are in metres
    return np.asarray(buffered.to_numpy(), dtype=object)
