"""Opening label files on a scene's grid: polygons (any format and CRS) or a mask raster.

:func:`open_labels` returns a source whose :meth:`read` gives the class-id
mask (uint8, unlabeled = 255) of any window of the scene. Vector labels are
reprojected to the scene's CRS once and burned per window (smaller polygons
on top); a mask raster on another grid is resampled nearest to the scene's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.windows import Window

from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.errors import InputError, VectorError
from geoseg.core.labels import LabelMap, burn
from geoseg.io.paths import is_remote, special_kind

__all__ = ["SceneGrid", "VectorLabels", "RasterLabels", "open_labels", "VECTOR_SUFFIXES"]

VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml", ".sqlite", ".zip"}


@dataclass(frozen=True)
class SceneGrid:
    """The pixel grid labels are put on: CRS, transform and size."""

    crs: CRS
    transform: Any
    width: int
    height: int

    @classmethod
    def of(cls, ds: Any) -> SceneGrid:
        """The grid of an open raster."""
        return cls(ds.crs, ds.transform, ds.width, ds.height)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the grid's CRS."""
        from rasterio.transform import array_bounds

        return tuple(array_bounds(self.height, self.width, self.transform))


class VectorLabels:
    """Polygons with a label field, reprojected to a scene's grid."""

    def __init__(self, path: str, frame: Any, grid: SceneGrid, label_map: LabelMap) -> None:
        import shapely

        self.path, self.grid, self.label_map = path, grid, label_map
        ids = label_map.lookup(frame["__label__"].to_numpy())
        keep = ids != IGNORE_INDEX
        geoms = frame.geometry.to_numpy()[keep]
        ids = ids[keep]
        order = np.argsort(-shapely.area(geoms), kind="stable")  # largest first: smaller on top
        self.geometries, self.class_ids = geoms[order], ids[order]
        self._tree = shapely.STRtree(self.geometries)

    def read(self, window: Window) -> np.ndarray:
        """The class-id mask of ``window`` (may reach past the scene; there it is unlabeled)."""
        import shapely
        from rasterio.windows import bounds as window_bounds
        from rasterio.windows import transform as window_transform

        box = shapely.box(*window_bounds(window, self.grid.transform))
        hits = np.sort(self._tree.query(box, predicate="intersects"))
        shape = (int(window.height), int(window.width))
        return burn(self.geometries[hits], self.class_ids[hits], shape, window_transform(window, self.grid.transform))

    def close(self) -> None:
        """Nothing to release: the polygons are in memory."""


class RasterLabels:
    """A mask raster on (or resampled nearest to) a scene's grid."""

    def __init__(self, path: str, ds: Any, grid: SceneGrid, label_map: LabelMap) -> None:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.path, self.grid, self.label_map = path, grid, label_map
        self._ds = ds
        same = ds.crs == grid.crs and ds.transform == grid.transform and ds.width == grid.width and ds.height == grid.height
        self._src = (
            ds
            if same
            else WarpedVRT(
                ds,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=Resampling.nearest,
            )
        )

    def read(self, window: Window) -> np.ndarray:
        """Class ids (uint8, ``IGNORE_INDEX`` where unlabeled) of the mask over ``window`` of the scene."""
        h, w = int(window.height), int(window.width)
        out = np.full((h, w), IGNORE_INDEX, dtype=np.uint8)
        x0, y0 = max(0, int(window.col_off)), max(0, int(window.row_off))
        x1 = min(int(window.col_off) + w, self.grid.width)
        y1 = min(int(window.row_off) + h, self.grid.height)
        if x1 <= x0 or y1 <= y0:
            return out
        inner = Window(x0, y0, x1 - x0, y1 - y0)
        values = self._src.read(1, window=inner)
        mask = self._src.read_masks(1, window=inner) > 0
        ids = self.label_map.lookup(values)
        ids[~mask] = IGNORE_INDEX
        oy, ox = y0 - int(window.row_off), x0 - int(window.col_off)
        out[oy : oy + ids.shape[0], ox : ox + ids.shape[1]] = ids
        return out

    def close(self) -> None:
        """Close the mask raster (and its warped view)."""
        if self._src is not self._ds:
            self._src.close()
        self._ds.close()


def _read_frame(name: str, grid: SceneGrid, label_field: str | None) -> Any:
    import geopandas as gpd
    import pyogrio
    import shapely

    try:
        info = pyogrio.read_info(name)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"{name} is not a vector file GDAL can read ({str(exc).splitlines()[0]})") from None
    fields = [str(f) for f in info["fields"]]
    if label_field is None:
        raise InputError(
            f"labels {name}: give the field that holds the labels with --label-field "
            f"(label_field in a config), one of: {', '.join(fields) or 'none'}"
        )
    if label_field not in fields:
        raise InputError(f"labels {name} have no field {label_field!r}: fields are {', '.join(fields) or 'none'}")
    frame = gpd.read_file(name, engine="pyogrio", columns=[label_field])
    if frame.empty:
        raise VectorError(f"labels {name} hold no features: give a file with labeled polygons")
    if frame.crs is None:
        raise VectorError(f"labels {name} have no CRS: assign one (e.g. ogr2ogr -a_srs EPSG:4326)")
    frame = frame[~frame.geometry.isna() & ~frame.geometry.is_empty & frame[label_field].notna()]
    frame = frame[frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if frame.empty:
        raise VectorError(f"labels {name} hold no polygons with a {label_field!r} value: give labeled polygons")
    frame = frame.to_crs(grid.crs.to_wkt())
    frame["geometry"] = shapely.make_valid(frame.geometry.to_numpy())
    if not frame.intersects(shapely.box(*grid.bounds)).any():
        raise VectorError(
            f"labels {name} do not overlap the scene (bounds {tuple(round(b) for b in grid.bounds)} "
            f"in {grid.crs.to_string()}): give labels for this scene"
        )
    return frame.rename(columns={label_field: "__label__"})


def _raster_values(ds: Any) -> set:
    values: set = set()
    for _, window in ds.block_windows(1):
        data = ds.read(1, window=window, masked=True)
        values.update(np.unique(data.compressed()).tolist())
    return values


def open_labels(
    path: str | os.PathLike,
    grid: SceneGrid,
    label_field: str | None = None,
    label_map: LabelMap | None = None,
    ignore: tuple = (),
) -> VectorLabels | RasterLabels:
    """Open labels for a scene: polygons (with ``label_field``) or a mask raster.

    Without ``label_map`` every distinct value (except ``ignore`` and nodata)
    becomes a class in sorted order. Values missing from a given map are an
    error that lists them.

    Example:
        >>> labels = open_labels("labels.gpkg", grid, "fclass")  # doctest: +SKIP
        >>> mask = labels.read(Window(0, 0, 256, 256))  # doctest: +SKIP
    """
    name = str(path)
    if not is_remote(name):
        p = Path(name)
        kind = special_kind(p)
        if kind:
            raise InputError(f"labels {name} are {kind}, not a regular file: give polygons or a mask raster")
        if not p.exists():
            raise InputError(f"labels {name} do not exist: check the path")
        if p.is_file() and p.stat().st_size == 0:
            raise InputError(f"labels {name} are an empty file: export them again")
    if Path(name).suffix.lower() in VECTOR_SUFFIXES:
        frame = _read_frame(name, grid, label_field)
        found = frame["__label__"].unique().tolist()
        label_map = label_map or LabelMap.from_values(found, ignore)
        label_map.check_values(found, name)
        return VectorLabels(name, frame, grid, label_map)
    from geoseg.io.raster import open_scene

    ds = open_scene(name)
    try:
        if ds.count != 1:
            raise InputError(f"label mask {name} has {ds.count} bands: give a single-band mask raster")
        found = _raster_values(ds)
        if not found:
            raise InputError(f"label mask {name} holds only nodata: give a mask with labeled pixels")
        label_map = label_map or LabelMap.from_values(found, ignore)
        label_map.check_values(found, name)
        source = RasterLabels(name, ds, grid, label_map)
    except BaseException:
        ds.close()
        raise
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(ds.crs, grid.crs, *ds.bounds)
    west, south, east, north = grid.bounds
    if right <= west or left >= east or top <= south or bottom >= north:
        source.close()
        raise InputError(f"label mask {name} does not overlap the scene: give labels for this scene")
    return source
