"""Reading scenes: open with clear errors, windowed reads with padding and a validity mask."""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from geoseg.core.errors import RasterError
from geoseg.io.paths import check_input_file, is_remote

__all__ = [
    "GDAL_CACHE_MB",
    "gdal_env",
    "linear_factor",
    "needs_geodesic",
    "open_scene",
    "pixel_area_m2",
    "pixel_size_m",
    "read_window",
    "scene_has_mask",
]

GDAL_CACHE_MB = 256
"""GDAL's block cache is bounded to this many MB while geoseg reads and writes."""


def gdal_env(**options: object) -> rasterio.Env:
    """A rasterio environment with GDAL's block cache bounded (reading does not grow with the scene)."""
    return rasterio.Env(**{"GDAL_CACHEMAX": GDAL_CACHE_MB, "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", **options})


def open_scene(path: str | os.PathLike, require_georef: bool = True) -> rasterio.io.DatasetReader:
    """Open a raster GDAL reads (GeoTIFF, VRT, JP2, ``/vsicurl/`` COGs...) with one-line errors.

    With ``require_georef`` a scene without CRS, without geotransform, or with a
    rotated geotransform is refused.

    Example:
        >>> with open_scene("data_samples/brandenburg_s2_512.tif") as ds:  # doctest: +SKIP
        ...     ds.count
        10
    """
    name = str(path)
    if not is_remote(name):
        check_input_file(name, "scene", "give a raster file", RasterError)
    try:
        ds = rasterio.open(name)
    except RasterioIOError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "unrecognised format"
        raise RasterError(f"{name} is not a raster GDAL can read ({detail}): give a GeoTIFF or another GDAL raster") from None
    try:
        if np.dtype(ds.dtypes[0]).kind == "c":
            raise RasterError(
                f"scene {name} has complex pixels ({ds.dtypes[0]}): geoseg reads real bands; write the amplitude or the "
                "real part first (gdal_translate -ot Float32 keeps the real part)"
            )
        if require_georef:
            check_georeferencing(ds, name)
    except RasterError:
        ds.close()
        raise
    return ds


def check_georeferencing(ds: rasterio.io.DatasetReader, name: str) -> None:
    """Refuse scenes whose pixels cannot be placed on the map."""
    t = ds.transform
    if t.is_identity and ds.gcps[0]:
        raise RasterError(
            f"scene {name} is placed by ground control points only: warp it onto a grid first, "
            f"e.g. gdalwarp -tps {name} warped.tif"
        )
    if ds.crs is None:
        raise RasterError(f"scene {name} has no CRS: assign one, e.g. gdal_edit.py -a_srs EPSG:32633 {name}")
    if t.is_identity:
        raise RasterError(f"scene {name} has no geotransform: georeference it (e.g. gdalwarp with its GCPs) first")
    if t.b != 0 or t.d != 0:
        raise RasterError(f"scene {name} has a rotated or sheared geotransform: warp it north-up with gdalwarp first")


def scene_has_mask(ds: rasterio.io.DatasetReader) -> bool:
    """False when GDAL reports every pixel of every band valid (no nodata, mask band or alpha)."""
    return not all(flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums)


def _nodata_beside_mask(ds: rasterio.io.DatasetReader, indexes: list[int]) -> list[tuple[int, float]] | None:
    """``(position, nodata)`` of the read bands when the scene has a mask band or alpha and nodata values too.

    GDAL's dataset mask then follows the mask alone; a pixel at the nodata
    value of every read band is invalid as well (as with nodata alone).
    """
    flags = ds.mask_flag_enums
    if all(MaskFlags.nodata in f or MaskFlags.all_valid in f for f in flags):
        return None
    pairs = [(i, ds.nodatavals[b - 1]) for i, b in enumerate(indexes) if ds.nodatavals[b - 1] is not None]
    return pairs if pairs and len(pairs) == len(indexes) else None


def read_window(
    ds: rasterio.io.DatasetReader,
    window: Window,
    indexes: list[int],
    out: np.ndarray | None = None,
    masked: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` of bands ``indexes`` as float32, padding past the scene's edges.

    Returns ``(data, valid)``: data ``(C, h, w)`` and a boolean validity mask
    ``(h, w)``, False for nodata (GDAL's dataset mask), non-finite values and
    padding. Padding and invalid pixels are 0 in ``data``.
    """
    h, w = int(window.height), int(window.width)
    data = out if out is not None else np.empty((len(indexes), h, w), dtype=np.float32)
    valid = np.zeros((h, w), dtype=bool)
    x0, y0 = int(window.col_off), int(window.row_off)
    x1, y1 = min(x0 + w, ds.width), min(y0 + h, ds.height)
    inner = Window(x0, y0, x1 - x0, y1 - y0)
    if x1 - x0 < w or y1 - y0 < h:
        data[...] = 0
    raw = ds.read(indexes, window=inner)
    with np.errstate(over="ignore"):  # float64 values beyond float32's range become inf
        data[:, : y1 - y0, : x1 - x0] = raw
    if masked is None:
        masked = scene_has_mask(ds)
    if masked:
        valid[: y1 - y0, : x1 - x0] = ds.dataset_mask(window=inner) > 0
        nodata = _nodata_beside_mask(ds, indexes)
        if nodata is not None:  # GDAL's mask band hides the nodata value: honour both
            valid[: y1 - y0, : x1 - x0] &= ~np.all([raw[i] == v for i, v in nodata], axis=0)
    else:
        valid[: y1 - y0, : x1 - x0] = True
    if raw.dtype.kind == "f":
        valid[: y1 - y0, : x1 - x0] &= np.isfinite(raw).all(axis=0)
    if not valid.all():
        data[:, ~valid] = 0
    return data, valid


def pixel_size_m(ds: rasterio.io.DatasetReader) -> float:
    """Mean pixel size in metres (degrees converted at the scene's centre for geographic CRSs)."""
    t = ds.transform
    size = (abs(t.a) + abs(t.e)) / 2
    crs = ds.crs
    if crs is None:
        return float(size)
    if crs.is_geographic:
        lat = math.radians(ds.bounds.bottom + (ds.bounds.top - ds.bounds.bottom) / 2)
        metres_per_degree = 111_320.0
        return float((abs(t.a) * math.cos(lat) + abs(t.e)) / 2 * metres_per_degree)
    return float(size * linear_factor(crs))


def linear_factor(crs: Any) -> float:
    """Metres per unit of a projected CRS (1.0 when unknown).

    Example:
        >>> from rasterio.crs import CRS
        >>> linear_factor(CRS.from_epsg(2263))  # NAD83 / New York Long Island (ftUS)
        0.30480060960121924
    """
    if crs is None or not crs.linear_units_factor:
        return 1.0
    return float(crs.linear_units_factor[1])


def pixel_area_m2(ds: rasterio.io.DatasetReader) -> float:
    """Area of one pixel in square metres (at the scene's centre for geographic CRSs)."""
    if ds.crs is not None and ds.crs.is_geographic:
        return pixel_size_m(ds) ** 2
    t = ds.transform
    return abs(t.a * t.e) * linear_factor(ds.crs) ** 2


@functools.lru_cache(maxsize=32)
def _mercator(wkt: str) -> bool:
    from pyproj import CRS as ProjCRS

    try:
        operation = ProjCRS.from_user_input(wkt).coordinate_operation
    except Exception:  # noqa: BLE001 - pyproj raises CRSError and others for odd definitions
        return False
    method = (operation.method_name if operation is not None else "").lower()
    return "mercator" in method and "transverse" not in method


def needs_geodesic(crs: Any) -> bool:
    """True where planar areas are far from true ones: geographic CRSs, and Mercator projections (Web Mercator).

    Web Mercator's "metres" are 1/cos(latitude) too long (2.7x the area at
    52°N), so areas there are measured on the ellipsoid, as in degrees.

    Example:
        >>> from rasterio.crs import CRS
        >>> needs_geodesic(CRS.from_epsg(3857)), needs_geodesic(CRS.from_epsg(32633)), needs_geodesic(CRS.from_epsg(4326))
        (True, False, True)
    """
    if crs is None:
        return False
    return bool(crs.is_geographic) or _mercator(crs.to_wkt())
