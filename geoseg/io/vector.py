"""Reading vector files (areas of interest, background areas) in the scene's CRS, and buffering in metres.

A file of several layers (a GeoPackage) is read by naming the layer as QGIS
does, ``file.gpkg|layername=landuse`` (or ``|layerid=1``), with QGIS's
filter ``|subset=...`` applied; without a name, a file of several layers
with geometries is refused naming them (:func:`vector_layer`), never read
from whichever layer comes first.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from rasterio.crs import CRS

from geoseg.core.errors import VectorError
from geoseg.io.paths import check_input_file, is_remote

__all__ = ["LAYER_NAME", "buffer_metres", "read_features", "read_polygons", "repair_polygons", "split_layer", "vector_layer"]

log = logging.getLogger("geoseg")

LAYER_NAME = "|layername="
"""How a layer of a vector file is named in a path, as QGIS writes its sources: ``fields.gpkg|layername=fields``."""


def split_layer(path: str | os.PathLike) -> tuple[str, str | int | None, str | None]:
    """The file, the layer (a name, or an index from ``layerid``; None where none is named) and the attribute filter
    (QGIS's ``subset``, an OGR SQL expression) of a vector source written as QGIS writes its layers' sources.

    Example:
        >>> split_layer("labels.gpkg|layername=landuse|subset=fclass = 'water'")
        ('labels.gpkg', 'landuse', "fclass = 'water'")
        >>> split_layer("labels.gpkg|layerid=1"), split_layer("labels.gpkg")
        (('labels.gpkg', 1, None), ('labels.gpkg', None, None))
    """
    name, where = str(path), None
    if "|subset=" in name:  # last in QGIS's sources, and an expression may hold "|"
        name, where = name.split("|subset=", 1)
    file, *options = name.split("|")
    layer: str | int | None = None
    for option in options:
        key, _, value = option.partition("=")
        if key == "layername":
            layer = value
        elif key == "layerid" and value.isdigit():
            layer = int(value)
        else:
            raise VectorError(f"{path}: geoseg reads a layer's name, layerid and subset, not {option!r}: leave it out")
    return file, layer, where.strip() or None if where is not None else None


def vector_layer(file: str, layer: str | int | None, what: str) -> str | None:
    """The layer of ``file`` to read: ``layer`` (checked; an index is ``layerid``'s), else its one layer with
    geometries (None: it has none).

    A file of several layers with geometries and no layer named is refused in
    one line that lists them; tables without geometries (a GeoPackage's
    ``layer_styles``) are not counted.

    Example:
        >>> vector_layer("labels.gpkg", None, "labels")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        geoseg.core.errors.VectorError: labels labels.gpkg holds 2 layers (roads, landuse): name one as ...
    """
    import pyogrio

    try:
        layers = [(str(n), g) for n, g in pyogrio.list_layers(file)]
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"{what} {file} is not a vector file GDAL can read ({str(exc).splitlines()[0]})") from None
    spatial = [n for n, geometry in layers if geometry is not None]
    names = [n for n, _ in layers]
    if isinstance(layer, int):
        if layer >= len(names):
            raise VectorError(f"{what} {file} has no layer {layer} (layerid): it has {len(names)}, {', '.join(names)}")
        return names[layer]
    if layer is not None:
        if layer not in names:
            shown = ", ".join(spatial or names) or "none"
            raise VectorError(f"{what} {file} has no layer {layer!r}: its layers are {shown}")
        return layer
    if len(spatial) > 1:
        raise VectorError(
            f'{what} {file} holds {len(spatial)} layers ({", ".join(spatial)}): name one as "{file}{LAYER_NAME}{spatial[0]}"'
        )
    return spatial[0] if spatial else None


def read_features(file: str, layer: str | None, where: str | None, what: str, **options: Any) -> Any:
    """The layer's features (a GeoDataFrame) with QGIS's ``subset`` filter applied; a filter GDAL cannot read is one
    line naming it.

    Example:
        >>> frame = read_features("labels.gpkg", "landuse", "fclass = 'water'", "labels")  # doctest: +SKIP
    """
    import geopandas as gpd

    try:
        return gpd.read_file(file, engine="pyogrio", layer=layer, where=where, **options)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several types for unreadable files and filters
        if where is not None:  # the file was listed: a filter GDAL cannot parse is what failed
            raise VectorError(f"{what} {file}: the filter {where!r} is not one GDAL reads ({str(exc).splitlines()[0]})") from None
        raise VectorError(f"{what} {file} is not a vector file GDAL can read ({str(exc).splitlines()[0]})") from None


def check_vector_source(path: str | os.PathLike, what: str) -> tuple[str, str | int | None, str | None]:
    """:func:`split_layer` of a vector source whose local file is checked first (it exists, is a regular file or a
    folder such as a Shapefile's; a FIFO never hangs): the file, the layer and the filter.

    Example:
        >>> check_vector_source("/nonexistent/aoi.gpkg|layername=fields", "--aoi")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.VectorError: --aoi /nonexistent/aoi.gpkg does not exist: give a vector file such as a GeoPackage
    """
    file, layer, where = split_layer(path)
    if not is_remote(file):
        check_input_file(file, what, "give a vector file such as a GeoPackage", VectorError, folder_ok=True)
    return file, layer, where


def read_polygons(
    path: str | os.PathLike, crs: CRS, what: str = "vector file", fix: str = "give an area of interest as polygons"
) -> list:
    """Polygons of a vector file reprojected to ``crs`` (shapely geometries as they are; empty ones dropped).

    ``what`` names the file in errors and ``fix`` says what to give instead;
    a layer is named as in ``fields.gpkg|layername=fields`` (see :func:`vector_layer`), with QGIS's ``|subset=``.

    Example:
        >>> polys = read_polygons("aoi.gpkg", CRS.from_epsg(32633))  # doctest: +SKIP
    """
    name = str(path)
    file, layer, where = check_vector_source(name, what)
    frame = read_features(file, vector_layer(file, layer, what), where, what)
    if frame.crs is None:
        raise VectorError(f"{what} {name} has no CRS: assign one (e.g. ogr2ogr -a_srs EPSG:4326)")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    frame = frame[frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if frame.empty:
        raise VectorError(f"{what} {name} holds no polygons: {fix}")
    frame = frame.to_crs(crs.to_wkt())
    return list(frame.geometry)  # invalid polygons are repaired (and said) by the caller, never silently


def repair_polygons(geoms: Any, what: str, check: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """``geoms`` with invalid polygons repaired by ``make_valid``, which ones were, and the warning line that says so
    (logged here; None when all were valid).

    Every reader of polygons repairs them this way and says so: an area of
    interest, labels, a background's area.

    Example:
        >>> import shapely
        >>> bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
        >>> fixed, invalid, message = repair_polygons(np.array([bowtie], dtype=object), "labels x.gpkg", "check them")
        >>> fixed[0].geom_type, invalid.tolist(), message.split(": ")[1]
        ('MultiPolygon', [True], '1 invalid polygon(s) (e.g. self-intersecting) repaired with make_valid; check them')
    """
    import shapely

    geoms = np.asarray(geoms, dtype=object)
    invalid = ~shapely.is_valid(geoms) if len(geoms) else np.zeros(0, bool)
    if not invalid.any():
        return geoms, invalid, None
    geoms = geoms.copy()
    geoms[invalid] = shapely.make_valid(geoms[invalid])
    message = f"{what}: {int(invalid.sum())} invalid polygon(s) (e.g. self-intersecting) repaired with make_valid; {check}"
    log.warning(message)
    return geoms, invalid, message


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
