"""Finished regions as GeoDataFrame batches: geometry in the class map's CRS, the noded copy, the attributes.

:class:`Plan` carries what :func:`~geoseg.polygonize.api.polygon_batches`
checked to the batches it streams; :meth:`Plan.frame` measures a batch of
:class:`~geoseg.polygonize.strips.Region` and :meth:`Plan.simplified`
simplifies every region as one coverage first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseg.core.options import VectorizeOptions
from geoseg.polygonize.measure import area_perimeter, to_crs_coordinates
from geoseg.polygonize.nodes import drop_collinear
from geoseg.polygonize.regions import simplify_coverage

if TYPE_CHECKING:
    from geopandas import GeoDataFrame
    from rasterio.io import DatasetReader
    from shapely import Polygon

    from geoseg.polygonize.strips import Region

__all__ = ["Plan"]


@dataclass(frozen=True)
class Plan:
    """What :func:`~geoseg.polygonize.api.polygon_batches` checked, carried to the batches it streams.

    Example:
        >>> plan = Plan("classes.tif", VectorizeOptions(), None, {0: "water"}, 100.0, None)  # doctest: +SKIP
        >>> plan.frame(regions, ds)  # doctest: +SKIP
    """

    classes: str | os.PathLike
    options: VectorizeOptions
    confidence: str | os.PathLike | None
    names: dict[int, str]
    pixel_area: float
    strip_rows: int | None
    noded: bool = False

    @property
    def traced_noded(self) -> bool:
        """Whether regions are traced noded: for the column :data:`~geoseg.io.features.NODED`, and for
        coverage simplification, which needs a noded coverage."""
        return self.noded or bool(self.options.simplify)

    @property
    def min_pixels(self) -> int:
        """``options.min_area`` in pixels (0: no sieve)."""
        min_area = self.options.min_area
        return max(1, math.ceil(min_area / self.pixel_area - 1e-9)) if min_area else 0

    def frame(self, regions: list[Region], ds: DatasetReader, geoms: Sequence[Polygon] | None = None) -> GeoDataFrame:
        """A GeoDataFrame of finished regions: geometry in the CRS and the attributes.

        ``geoms`` (pixel coordinates, noded) replace the regions' polygons
        (simplified ones); the regions' own, when traced noded, are written
        without their collinear vertices. With ``noded`` the noded polygons
        are the column :data:`~geoseg.io.features.NODED` too.
        """
        import geopandas as gpd

        from geoseg.io.features import NODED

        noded = np.asarray([r.geometry for r in regions] if geoms is None else geoms, dtype=object)
        plain = drop_collinear(noded) if geoms is None and self.traced_noded else noded
        shapes = to_crs_coordinates(plain, ds.transform) if len(plain) else plain
        class_ids = np.array([r.class_id for r in regions], dtype=np.int32)
        area, perimeter = area_perimeter(list(shapes), ds.crs) if len(shapes) else (np.zeros(0), np.zeros(0))
        columns: dict[str, Any] = {
            "class_id": class_ids,
            "class_name": np.array([self.names.get(int(c), str(int(c))) for c in class_ids], dtype=object),  # text if empty
            "area_m2": np.round(area, 2),
            "perimeter_m": np.round(perimeter, 2),
        }
        if self.confidence is not None:
            means = [r.conf_sum / r.conf_count if r.conf_count else np.nan for r in regions]
            columns["mean_confidence"] = np.round(means, 2)
        crs = ds.crs.to_wkt() if ds.crs else None
        frame = gpd.GeoDataFrame(columns, geometry=list(shapes), crs=crs)
        if self.noded:
            same = plain is noded or not len(noded)
            frame[NODED] = gpd.GeoSeries(shapes if same else to_crs_coordinates(noded, ds.transform), crs=crs)
        return frame

    def simplified(self, regions: list[Region], ds: DatasetReader, skip: set[int]) -> GeoDataFrame:
        """The frame of the regions not in ``skip`` once every region's polygon is simplified as one coverage."""
        tolerance = (self.options.simplify or 0.0) / math.sqrt(self.pixel_area)
        geoms = simplify_coverage([r.geometry for r in regions], tolerance) if regions else []
        kept = [i for i, r in enumerate(regions) if r.class_id not in skip]
        return self.frame([regions[i] for i in kept], ds, [geoms[i] for i in kept])
