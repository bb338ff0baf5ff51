"""Opening label files on a scene's grid: polygons, lines and points (any format and CRS) or a mask raster.

:func:`open_labels` returns a source whose :meth:`read` gives the class-id
mask (uint8, unlabeled = 255) of any window of the scene. Vector labels are
reprojected to the scene's CRS once and burned per window (smaller polygons
on top); lines and points of a class with a buffer become corridors and
discs (in metres, also in geographic CRSs); a background class fills the
unlabeled pixels of its area under the labels. A mask raster on another
grid is resampled nearest to the scene's and keeps its own unlabeled value;
scene pixels outside its footprint are unlabeled (also without a nodata value).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.windows import Window

from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.errors import InputError, VectorError
from geoseg.core.labels import BACKGROUND_WITHIN, Background, LabelMap, burn
from geoseg.io.paths import is_remote, special_kind
from geoseg.io.vector import read_features, repair_polygons, split_layer, vector_layer

__all__ = ["SceneGrid", "VectorLabels", "RasterLabels", "open_labels", "is_vector", "VECTOR_SUFFIXES"]

VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml", ".sqlite", ".zip"}
_KINDS = {
    "Polygon": "polygon",
    "MultiPolygon": "polygon",
    "LineString": "line",
    "MultiLineString": "line",
    "LinearRing": "line",
    "Point": "point",
    "MultiPoint": "point",
}
BUFFER_HINT = (
    "buffer: METRES on their class in data.classes of a training config (geoseg evaluate reads it with --classes CONFIG), "
    "--buffer METRES for geoseg tile"
)
"""How to turn lines and points into labels, as error and warning messages say it."""

log = logging.getLogger("geoseg")


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
    """Polygons with a label field, reprojected to a scene's grid, over the background's ``area`` (if any).

    With an area, polygons of ignored values are kept (burned unlabeled), so
    the background never covers what the labels call unknown.
    """

    def __init__(self, path: str, frame: Any, grid: SceneGrid, label_map: LabelMap, area: Sequence[Any] = ()) -> None:
        import shapely

        self.path, self.grid, self.label_map = path, grid, label_map
        ids = label_map.lookup(frame["__label__"].to_numpy())
        keep = ids != IGNORE_INDEX if not len(area) else np.ones(len(ids), dtype=bool)
        geoms = frame.geometry.to_numpy()[keep]
        ids = ids[keep]
        order = np.argsort(-shapely.area(geoms), kind="stable")  # largest first: smaller on top
        under = np.asarray(list(area), dtype=object)  # the background, burned first: the labels go on top
        self.geometries = np.concatenate([under, geoms[order]])
        self.class_ids = np.concatenate([np.full(len(under), label_map.background or 0, dtype=np.uint8), ids[order]])
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
    """A mask raster on (or resampled nearest to) a scene's grid.

    On another grid (a part of the scene, another pixel size or CRS) it is
    seen through a warped view with an alpha band: scene pixels outside the
    mask's footprint are unlabeled whatever the mask's nodata (a mask without
    nodata would otherwise fill them with 0, a label value).
    """

    def __init__(self, path: str, ds: Any, grid: SceneGrid, label_map: LabelMap) -> None:
        from geoseg.io.resample import warp_onto

        self.path, self.grid, self.label_map = path, grid, label_map
        self.dataset = ds  # the mask file as opened (its own tags and nodata), whatever grid it is read on
        same = ds.crs == grid.crs and ds.transform == grid.transform and ds.width == grid.width and ds.height == grid.height
        self._src = ds if same else warp_onto(ds, grid, add_alpha=True)  # read_masks: the footprint and nodata

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
        if self._src is not self.dataset:
            self._src.close()
        self.dataset.close()


def _read_frame(name: str, grid: SceneGrid, label_field: str | None) -> Any:
    """The file's polygons, lines and points with a label value, in the scene's CRS (column ``__label__``)."""
    import pyogrio

    file, layer, where = split_layer(name)
    layer = vector_layer(file, layer, "labels")
    try:
        info = pyogrio.read_info(file, layer=layer)
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
    frame = read_features(file, layer, where, "labels", columns=[label_field])
    if frame.empty:
        kept = f" that its filter {where!r} keeps" if where else ""
        raise VectorError(f"labels {name} hold no features{kept}: give a file with labeled polygons, lines or points")
    if frame.crs is None:
        raise VectorError(f"labels {name} have no CRS: assign one (e.g. ogr2ogr -a_srs EPSG:4326)")
    frame = frame[~frame.geometry.isna() & ~frame.geometry.is_empty & frame[label_field].notna()]
    if (frame.geometry.geom_type == "GeometryCollection").any():
        frame = frame.explode(index_parts=False)
    frame = frame[frame.geometry.geom_type.isin(list(_KINDS))]
    if frame.empty:
        raise VectorError(f"labels {name} hold no polygons, lines or points with a {label_field!r} value: give labeled features")
    frame = frame.to_crs(grid.crs.to_wkt())
    polygons = (frame.geometry.geom_type.map(_KINDS) == "polygon").to_numpy()
    geoms = frame.geometry.to_numpy().copy()
    geoms[polygons] = repair_polygons(geoms[polygons], f"labels {name}", "check that the labels are as you meant")[0]
    frame = frame.set_geometry(geoms, crs=frame.crs)
    frame["__kind__"] = frame.geometry.geom_type.map(_KINDS).fillna("polygon").to_numpy()
    frame = frame.rename(columns={label_field: "__label__"})
    frame.attrs["label_field"] = label_field
    return frame


def _counted(counts: dict[str, int]) -> str:
    """``{"line": 9, "point": 1}`` as ``9 lines and 1 point``."""
    parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items() if n]
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)


def _buffered(frame: Any, name: str, grid: SceneGrid, label_map: LabelMap, buffer: float | None) -> Any:
    """``frame`` with lines and points buffered by their class's buffer (or ``buffer``); those without one left out.

    Left-out lines and points (of values that are not ignored) are one
    warning, or, when no labeled feature remains, one error that counts what
    the file holds and says how to buffer them.
    """
    from geoseg.io.vector import buffer_metres

    labels = frame["__label__"].to_numpy()
    ids = label_map.lookup(labels)
    counted = ~label_map.ignored(labels)
    kinds = frame["__kind__"].to_numpy()
    geoms = frame.geometry.to_numpy().copy()
    keep = kinds == "polygon"
    missing = {"line": 0, "point": 0}
    for cid in np.unique(ids[~keep]).tolist():
        rows = (ids == cid) & ~keep
        metres = label_map.buffers.get(int(cid), buffer) if cid != IGNORE_INDEX else buffer
        if metres is None:
            for kind in missing:
                missing[kind] += int((rows & counted & (kinds == kind)).sum())
            continue
        geoms[rows] = buffer_metres(geoms[rows], grid.crs, metres)
        keep |= rows
    if sum(missing.values()):
        if not (keep & (ids != IGNORE_INDEX)).any():
            raise VectorError(
                f"labels {name} hold {_counted(missing)} with a {frame.attrs['label_field']!r} value and no polygons: "
                f"give them a buffer in metres to make corridors and discs ({BUFFER_HINT})"
            )
        log.warning("labels %s: %s without a buffer left out (give them one: %s)", name, _counted(missing), BUFFER_HINT)
    frame = frame.set_geometry(geoms, crs=frame.crs)
    return frame[keep]


def _background_area(frame: Any, grid: SceneGrid, background: Background) -> list[Any]:
    """The polygons of the background's area in the scene's CRS: the labels' extent, the scene, or a file's polygons."""
    import shapely

    from geoseg.io.vector import read_polygons

    if background.within == "scene":
        return [shapely.box(*grid.bounds)]
    if background.within == "labels":
        return [shapely.box(*frame.total_bounds)]
    polygons = read_polygons(
        background.within,
        grid.crs,
        what="data.background.within",
        fix="give polygons of the area whose unlabeled pixels are background (or within: labels or scene)",
    )
    polygons = list(repair_polygons(polygons, f"data.background.within {background.within}", "check the area")[0])
    if not shapely.intersects(np.asarray(polygons, dtype=object), shapely.box(*grid.bounds)).any():
        raise InputError(
            f"data.background.within {background.within}: its polygons do not overlap the scene (bounds "
            f"{tuple(round(b) for b in grid.bounds)} in {grid.crs.to_string()}): give polygons over the scene "
            f"or within: {' or '.join(BACKGROUND_WITHIN)}"
        )
    return polygons


def _vector_labels(
    name: str,
    grid: SceneGrid,
    label_field: str | None,
    label_map: LabelMap | None,
    ignore: tuple,
    buffer: float | None,
    background: Background | None,
) -> VectorLabels:
    """Vector labels on the scene's grid: read, mapped to classes, buffered, checked to overlap the scene."""
    import shapely

    frame = _read_frame(name, grid, label_field)
    if label_map is None:  # classes from the values of the features that become labels
        usable = frame if buffer is not None else frame[frame["__kind__"] == "polygon"]
        found = (usable if not usable.empty else frame)["__label__"].unique().tolist()
        label_map = LabelMap.from_values(found, ignore, background, buffer, f"labels {name} field {label_field!r}")
    else:
        label_map.check_values(frame["__label__"].unique().tolist(), name)
    frame = _buffered(frame, name, grid, label_map, buffer)
    if not frame.empty and not frame.intersects(shapely.box(*grid.bounds)).any():
        raise VectorError(
            f"labels {name} do not overlap the scene (bounds {tuple(round(b) for b in grid.bounds)} "
            f"in {grid.crs.to_string()}): give labels for this scene"
        )
    area: list[Any] = []
    if background is not None and label_map.background is not None and not frame.empty:
        area = _background_area(frame, grid, background)
    return VectorLabels(name, frame, grid, label_map, area)


def _raster_values(ds: Any) -> set:
    values: set = set()
    for _, window in ds.block_windows(1):
        data = ds.read(1, window=window, masked=True)
        values.update(np.unique(data.compressed()).tolist())
    return values


def is_vector(path: str | os.PathLike) -> bool:
    """True when labels at ``path`` are a vector file (by its suffix; a layer may be named, ``f.gpkg|layername=x``).

    Example:
        >>> is_vector("labels.gpkg|layername=landuse"), is_vector("mask.tif")
        (True, False)
    """
    return Path(split_layer(path)[0]).suffix.lower() in VECTOR_SUFFIXES


def open_labels(
    path: str | os.PathLike,
    grid: SceneGrid,
    label_field: str | None = None,
    label_map: LabelMap | None = None,
    ignore: tuple = (),
    buffer: float | None = None,
    background: Background | None = None,
) -> VectorLabels | RasterLabels:
    """Open labels for a scene: polygons, lines and points (with ``label_field``) or a mask raster.

    Without ``label_map`` every distinct value (except ``ignore`` and nodata)
    becomes a class in sorted order, and ``background`` (if given) the last
    class. Values missing from a given map are an error that lists them.

    Vector labels only: lines and points become corridors and discs of their
    class's buffer (:attr:`LabelMap.buffers`), else of ``buffer`` (metres);
    those without either are left out with one warning, or are one error when
    nothing else is labeled. With ``background`` and a label map that has a
    background class, every unlabeled pixel inside ``background.within`` (the
    labels' extent, the scene, or a vector file's polygons) is that class.
    A mask raster keeps its own unlabeled value (``buffer`` and ``background``
    do not apply to it; a warning says so).

    Example:
        >>> labels = open_labels("roads.gpkg", grid, "highway", buffer=5)  # doctest: +SKIP
        >>> mask = labels.read(Window(0, 0, 256, 256))  # doctest: +SKIP
    """
    name = str(path)
    file = split_layer(name)[0]
    if not is_remote(file):
        p = Path(file)
        kind = special_kind(p)
        if kind:
            raise InputError(f"labels {name} are {kind}, not a regular file: give polygons or a mask raster")
        if not p.exists():
            raise InputError(f"labels {name} do not exist: check the path")
        if p.is_file() and p.stat().st_size == 0:
            raise InputError(f"labels {name} are an empty file: export them again")
    if is_vector(name):
        return _vector_labels(name, grid, label_field, label_map, ignore, buffer, background)
    if buffer is not None or background is not None:
        what = "a buffer applies to lines and points" if background is None else "data.background applies to vector labels"
        log.warning("labels %s are a mask raster: %s; its unlabeled pixels stay unlabeled", name, what)
    return _raster_labels(name, grid, label_map, ignore, background)


def _raster_labels(
    name: str, grid: SceneGrid, label_map: LabelMap | None, ignore: tuple, background: Background | None
) -> RasterLabels:
    """A mask raster on the scene's grid, its values checked against the classes and its extent against the scene."""
    from rasterio.warp import transform_bounds

    from geoseg.io.raster import open_scene

    ds = open_scene(name)
    try:
        if ds.count != 1:
            raise InputError(f"label mask {name} has {ds.count} bands: give a single-band mask raster")
        found = _raster_values(ds)
        if not found:
            raise InputError(f"label mask {name} holds only nodata: give a mask with labeled pixels")
        label_map = label_map or LabelMap.from_values(found, ignore, background, source=f"label mask {name}")
        label_map.check_values(found, name)
        source = RasterLabels(name, ds, grid, label_map)
    except BaseException:
        ds.close()
        raise
    (x0, x1), (y0, y1) = sorted(ds.bounds[0::2]), sorted(ds.bounds[1::2])  # a south-up mask's bottom is its top
    left, bottom, right, top = transform_bounds(ds.crs, grid.crs, x0, y0, x1, y1)
    (west, east), (south, north) = sorted(grid.bounds[0::2]), sorted(grid.bounds[1::2])
    if right <= west or left >= east or top <= south or bottom >= north:
        source.close()
        raise InputError(f"label mask {name} does not overlap the scene: give labels for this scene")
    return source
