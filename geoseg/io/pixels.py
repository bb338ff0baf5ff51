"""Pixel sizes and areas in metres, for projected and geographic CRSs."""

from __future__ import annotations

import functools
import math
from typing import Any

import rasterio

__all__ = ["linear_factor", "needs_geodesic", "pixel_area_m2", "pixel_size_m", "pixel_sizes_m", "shown_sizes", "sizes_within"]


def pixel_sizes_m(ds: rasterio.io.DatasetReader) -> tuple[float, float]:
    """Pixel width and height in metres on the ground (at the scene's centre for geographic CRSs and Mercator).

    Example:
        >>> with rasterio.open("data_samples/brandenburg_s2_512.tif") as ds:  # doctest: +SKIP
        ...     pixel_sizes_m(ds)
        (10.0, 10.0)
    """
    t = ds.transform
    crs = ds.crs
    if crs is None:
        return float(abs(t.a)), float(abs(t.e))
    if crs.is_geographic:
        lat = math.radians(ds.bounds.bottom + (ds.bounds.top - ds.bounds.bottom) / 2)
        metres_per_degree = 111_320.0
        return float(abs(t.a) * math.cos(lat) * metres_per_degree), float(abs(t.e) * metres_per_degree)
    factor = linear_factor(crs)
    if _mercator(crs.to_wkt()):  # Mercator's "metres" grow away from its line of true scale: on the ground
        factor /= _scale_at_centre(ds)
    return float(abs(t.a) * factor), float(abs(t.e) * factor)


def _scale_at_centre(ds: rasterio.io.DatasetReader) -> float:
    """The projection's linear scale at the scene's centre (1/cos(latitude) for Web Mercator; conformal: one value)."""
    from pyproj import Proj

    proj = Proj(ds.crs.to_wkt())
    x, y = ds.transform * (ds.width / 2, ds.height / 2)
    lon, lat = proj(x, y, inverse=True)
    return math.sqrt(proj.get_factors(lon, lat).areal_scale)


def pixel_size_m(ds: rasterio.io.DatasetReader) -> float:
    """Mean pixel size in metres: the mean of :func:`pixel_sizes_m`."""
    x, y = pixel_sizes_m(ds)
    return (x + y) / 2


def sizes_within(sizes: tuple[float, float], size: float | tuple[float, float], tolerance: float) -> bool:
    """True when a pixel width and height (:func:`pixel_sizes_m`) each lie within ``tolerance`` (a fraction) of
    ``size`` metres (one size for both axes, or another scene's width and height).

    Each axis on its own: a geographic scene of 8.4 x 13.8 m pixels is not a 10 m scene, though their mean is 11.1.

    Example:
        >>> sizes_within((10.0, 10.0), 10.0, 0.25), sizes_within((8.4, 13.8), 10.0, 0.25)
        (True, False)
        >>> sizes_within((8.4, 13.8), (8.5, 13.7), 0.1)
        True
    """
    wanted = size if isinstance(size, tuple) else (size, size)
    return all(abs(axis - want) <= tolerance * want for axis, want in zip(sizes, wanted))


def shown_sizes(sizes: tuple[float, float]) -> str:
    """A pixel width and height (:func:`pixel_sizes_m`) for messages: ``10 m``, or ``8.4 x 13.8 m`` where they differ.

    Example:
        >>> shown_sizes((10.0, 10.0)), shown_sizes((8.4, 13.8))
        ('10 m', '8.4 x 13.8 m')
    """
    x, y = sizes
    return f"{x:.3g} m" if f"{x:.3g}" == f"{y:.3g}" else f"{x:.3g} x {y:.3g} m"


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
    """Area of one pixel in square metres (at the scene's centre for geographic CRSs and Mercator projections)."""
    if needs_geodesic(ds.crs):
        x, y = pixel_sizes_m(ds)
        return x * y
    t = ds.transform
    return abs(t.a * t.e) * linear_factor(ds.crs) ** 2


@functools.lru_cache(maxsize=32)
def _mercator(wkt: str) -> bool:
    text = wkt.lower().replace("transverse_mercator", "").replace("transverse mercator", "")
    if "mercator" not in text:  # UTM and most projections: no need to import pyproj (info starts fast)
        return False
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
