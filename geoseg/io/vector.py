"""Reading vector files (areas of interest) in the scene's CRS."""

from __future__ import annotations

import os

from rasterio.crs import CRS

from geoseg.core.errors import VectorError
from geoseg.io.paths import check_input_file, is_remote

__all__ = ["read_polygons"]


def read_polygons(path: str | os.PathLike, crs: CRS) -> list:
    """Polygons of a vector file reprojected to ``crs`` (shapely geometries as they are; empty ones dropped).

    Example:
        >>> polys = read_polygons("aoi.gpkg", CRS.from_epsg(32633))  # doctest: +SKIP
    """
    import geopandas as gpd

    name = str(path)
    if not is_remote(name):
        check_input_file(name, "vector file", "give a vector file such as a GeoPackage", VectorError, folder_ok=True)
    try:
        frame = gpd.read_file(name, engine="pyogrio")
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"{name} is not a vector file GDAL can read ({str(exc).splitlines()[0]})") from None
    if frame.crs is None:
        raise VectorError(f"vector file {name} has no CRS: assign one (e.g. ogr2ogr -a_srs EPSG:4326)")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    frame = frame[frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if frame.empty:
        raise VectorError(f"vector file {name} holds no polygons: give an area of interest as polygons")
    frame = frame.to_crs(crs.to_wkt())
    return list(frame.geometry)  # invalid polygons are repaired (and said) by the caller, never silently
