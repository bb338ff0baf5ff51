"""Measures of polygons: pixel coordinates to the CRS, areas (m²) and perimeters (m).

Areas and perimeters are planar in a projected CRS (scaled to metres by the
CRS's linear unit) and geodesic on the CRS's ellipsoid in a geographic CRS
and in Mercator projections (Web Mercator), whose planar areas are far off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine

if TYPE_CHECKING:
    from rasterio.crs import CRS
    from shapely import Polygon

__all__ = ["area_perimeter", "to_crs_coordinates"]


def area_perimeter(geoms: Sequence[Polygon], crs: CRS | None) -> tuple[np.ndarray, np.ndarray]:
    """Area (m²) and perimeter (m) of polygons in ``crs``; geodesic on the ellipsoid for geographic CRSs.

    Example:
        >>> import shapely
        >>> from rasterio.crs import CRS
        >>> area, perimeter = area_perimeter([shapely.box(0, 0, 10, 20)], CRS.from_epsg(32633))
        >>> area.tolist(), perimeter.tolist()
        ([200.0], [60.0])
    """
    import shapely

    from geoseg.io.pixels import linear_factor, needs_geodesic

    if needs_geodesic(crs):
        from pyproj import CRS as ProjCRS
        from pyproj import Geod, Transformer

        source = ProjCRS.from_user_input(crs.to_wkt())  # type: ignore[union-attr]  # needs_geodesic: not None
        geod = Geod(ellps="WGS84")
        if source.ellipsoid is not None:
            geod = Geod(a=source.ellipsoid.semi_major_metre, rf=source.ellipsoid.inverse_flattening or 0.0)
        if not source.is_geographic and source.geodetic_crs is not None:  # Mercator: measured in degrees
            to_degrees = Transformer.from_crs(source, source.geodetic_crs, always_xy=True)
            geoms = shapely.transform(np.asarray(geoms, dtype=object), lambda xy: np.column_stack(to_degrees.transform(*xy.T)))
        # pyproj subtracts a hole only when it turns against its exterior: coverage_simplify's output may not
        oriented = shapely.orient_polygons(np.asarray(geoms, dtype=object))
        pairs = [geod.geometry_area_perimeter(g) for g in oriented]
        return np.abs(np.array([p[0] for p in pairs])), np.array([p[1] for p in pairs])

    factor = linear_factor(crs)
    arr = np.asarray(geoms, dtype=object)
    return shapely.area(arr) * factor**2, shapely.length(arr) * factor


def to_crs_coordinates(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Map polygons from pixel (col, row) coordinates to the CRS as GDAL does (x = c + a*col + b*row).

    Example:
        >>> import shapely
        >>> to_crs_coordinates(np.array([shapely.box(0, 0, 1, 1)]), Affine(10, 0, 500, 0, -10, 900))[0].bounds
        (500.0, 890.0, 510.0, 900.0)
    """
    import shapely

    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def affine(xy: np.ndarray) -> np.ndarray:
        col, row = xy[:, 0], xy[:, 1]
        return np.column_stack([c + a * col + b * row, f + d * col + e * row])

    return shapely.transform(geoms, affine)
