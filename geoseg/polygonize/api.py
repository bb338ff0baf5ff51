"""Vectorize: class regions of a class map as polygons with attributes.

Array functions first (:func:`label_regions`, :func:`sieve_regions`,
:func:`polygonize`), then :func:`vectorize`, which reads a class map and
writes a vector file. Regions are 4-connected groups of pixels of one class,
exactly as GDAL's polygonizer (``rasterio.features.shapes``) traces them, so
the polygons rasterize back to the class map pixel for pixel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine

from geoseg.core.classes import NODATA, ClassInfo, default_colors
from geoseg.core.errors import InputError, RasterError
from geoseg.io.classmap import class_table_of

__all__ = [
    "VectorizeResult",
    "label_regions",
    "polygon_batches",
    "polygonize",
    "polygons_frame",
    "sieve_regions",
    "vectorize",
]

log = logging.getLogger("geoseg")


def label_regions(classes: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label 4-connected regions of equal class; returns (labels, class of each label).

    Label 0 is nodata; ``region_class[label]`` is the class of a region.

    Example:
        >>> labels, region_class = label_regions(np.array([[0, 0, 1], [2, 0, 1]]), np.ones((2, 3), bool))
        >>> labels.tolist(), region_class.tolist()
        ([[1, 1, 2], [3, 1, 2]], [255, 0, 1, 2])
    """
    from scipy import ndimage

    labels = np.zeros(classes.shape, dtype=np.int32)
    region_class = [NODATA]
    for value in np.unique(classes[valid]):
        lab, count = ndimage.label((classes == value) & valid)
        inside = lab > 0
        labels[inside] = lab[inside] + (len(region_class) - 1)
        region_class.extend([int(value)] * count)
    return labels, np.asarray(region_class, dtype=np.int64)


def sieve_regions(classes: np.ndarray, valid: np.ndarray, min_pixels: int, max_passes: int = 50) -> np.ndarray:
    """Merge regions smaller than ``min_pixels`` into the neighbour they share the longest border with.

    Ties go to the larger neighbour. Nodata pixels never change, and a small
    region with no valid neighbour stays. Returns a new class array.

    Example:
        >>> a = np.array([[0, 0, 0, 0], [0, 1, 2, 2], [0, 0, 2, 2]])
        >>> sieve_regions(a, np.ones(a.shape, bool), 2).tolist()
        [[0, 0, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]
    """
    out = classes.copy()
    for _ in range(max_passes):
        labels, region_class = label_regions(out, valid)
        sizes = np.bincount(labels.ravel(), minlength=len(region_class))
        small = sizes < min_pixels
        small[0] = False
        if not small.any():
            break
        pairs = []
        for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
            touching = (a != b) & (a > 0) & (b > 0)
            pairs.append(np.stack([a[touching], b[touching]]))
        edges = np.concatenate(pairs, axis=1)
        edges = np.concatenate([edges, edges[::-1]], axis=1)
        edges = edges[:, small[edges[0]]]
        if not edges.size:
            break
        n = len(sizes)
        keys, counts = np.unique(edges[0].astype(np.int64) * n + edges[1], return_counts=True)
        src, dst = keys // n, keys % n
        order = np.lexsort((dst, sizes[dst], counts, src))
        src, dst = src[order], dst[order]
        last = np.r_[src[1:] != src[:-1], True]
        src, dst = src[last], dst[last]
        # merge only into a neighbour that is larger (size, then label): no two regions swap classes
        ok = (sizes[dst] > sizes[src]) | ((sizes[dst] == sizes[src]) & (dst > src))
        if not ok.any():
            break
        new_class = region_class.copy()
        new_class[src[ok]] = region_class[dst[ok]]
        inside = labels > 0
        out[inside] = new_class[labels[inside]]
    return out


def polygonize(labels: np.ndarray, transform: Affine, batch: int = 2000) -> tuple[list, np.ndarray]:
    """Polygons of labelled regions (GDAL's polygonizer, 4-connected); returns (geometries, label of each).

    The rings GDAL traces become shapely polygons in vectorized calls, ``batch`` polygons at a time.

    Example:
        >>> geoms, ids = polygonize(np.array([[1, 1], [0, 2]], dtype=np.int32), Affine.identity())
        >>> [g.area for g in geoms], ids.tolist()
        ([2.0, 1.0], [1, 2])
    """
    from rasterio.features import shapes

    polygons: list = []
    ids: list[int] = []
    rings: list[list] = []
    for geom, value in shapes(labels, mask=labels > 0, connectivity=4, transform=transform):
        ids.append(int(value))
        rings.append(geom["coordinates"])
        if len(rings) == batch:
            polygons.extend(_build_polygons(rings))
            rings = []
    if rings:
        polygons.extend(_build_polygons(rings))
    return polygons, np.asarray(ids, dtype=np.int64)


def _build_polygons(polygon_rings: list[list]) -> list:
    import shapely

    sizes = [len(ring) for rings in polygon_rings for ring in rings]
    owner = [i for i, rings in enumerate(polygon_rings) for _ in rings]
    coords = np.fromiter(
        (v for rings in polygon_rings for ring in rings for xy in ring for v in xy), dtype=np.float64, count=2 * sum(sizes)
    ).reshape(-1, 2)
    made = shapely.linearrings(coords, indices=np.repeat(np.arange(len(sizes)), sizes))
    return list(shapely.polygons(made, indices=np.asarray(owner)))


@dataclass
class VectorizeResult:
    """What :func:`vectorize` wrote."""

    output: Path
    polygons: int
    per_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def read_class_table(path: str | os.PathLike) -> list[ClassInfo]:
    """A class table from a geoseg model file, or a JSON file: ``[{"id", "name", "color"}...]`` or ``{"0": "name"}``.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "classes.json"
        >>> _ = f.write_text('{"0": "water", "1": "forest"}')
        >>> [c.name for c in read_class_table(f)]
        ['water', 'forest']
    """
    from geoseg.model.checkpoint import read_card

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--classes {p} does not exist: give a geoseg model file or a JSON class table")
    if p.suffix.lower() != ".json":
        return list(read_card(p).classes)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = [{"id": int(k), "name": str(v)} for k, v in data.items()]
        colors = default_colors(256)
        return [ClassInfo(int(c["id"]), str(c["name"]), str(c.get("color", colors[int(c["id"]) % 16]))) for c in data]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"--classes {p}: expected a JSON list of {{id, name, color}} or an object of id: name") from None


def measure(geoms: Sequence, crs) -> tuple[np.ndarray, np.ndarray]:
    """Area (m²) and perimeter (m) of polygons; geodesic on the ellipsoid for geographic CRSs."""
    import shapely

    if crs is not None and crs.is_geographic:
        from pyproj import CRS, Geod

        geod = Geod(ellps="WGS84")
        ellps = CRS.from_user_input(crs.to_wkt()).ellipsoid
        if ellps is not None:
            geod = Geod(a=ellps.semi_major_metre, rf=ellps.inverse_flattening or 0.0)
        pairs = [geod.geometry_area_perimeter(g) for g in geoms]
        return np.abs(np.array([p[0] for p in pairs])), np.array([p[1] for p in pairs])
    from geoseg.io.raster import linear_factor

    factor = linear_factor(crs)
    arr = np.asarray(geoms, dtype=object)
    return shapely.area(arr) * factor**2, shapely.length(arr) * factor


STRIP_PIXELS = 8192 * 512
"""Pixels per strip when polygonizing (512 rows of an 8192-wide map); regions cut at strip edges are merged
again, so memory is bounded by a strip, the regions crossing its last row and one batch of polygons."""

SIEVE_IN_MEMORY = 16384 * 16384
"""Class maps up to this many pixels are sieved whole; larger ones per strip with a halo (approximate at seams)."""

SIEVE_HALO = 256


def _strips(height: int, width: int, rows: int | None = None) -> list[tuple[int, int]]:
    """Row ranges of equal-height strips of at most ``STRIP_PIXELS`` (or ``rows`` rows).

    Example:
        >>> _strips(100, 10, rows=40)
        [(0, 40), (40, 80), (80, 100)]
    """
    if rows is None:
        count = max(1, math.ceil(height * width / STRIP_PIXELS))
        rows = max(64, math.ceil(height / count))
    return [(y, min(y + rows, height)) for y in range(0, height, rows)]


def polygons_frame(classes: str | os.PathLike, **options):
    """Polygons of a class map as one GeoDataFrame in its CRS, and its class table.

    The batches of :func:`polygon_batches` (same options) concatenated: handy
    for small maps and tests; :func:`vectorize` streams the batches instead.

    Example:
        >>> frame, table = polygons_frame("classes.tif", min_area=500)  # doctest: +SKIP
    """
    import geopandas as gpd
    import pandas as pd

    table, batches = polygon_batches(classes, **options)
    frames = list(batches)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=frames[0].crs), table


READ_CACHE_MB = 32
"""GDAL block cache while vectorizing (MB)."""

BATCH_POLYGONS = 10000
"""Finished polygons gathered before a batch is measured and handed on (written, when streaming)."""


def polygon_batches(
    classes: str | os.PathLike,
    *,
    min_area: float | None = None,
    simplify: float | None = None,
    confidence: str | os.PathLike | None = None,
    background: Sequence[int] | int | None = None,
    classes_table: str | os.PathLike | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    strip_rows: int | None = None,
) -> tuple[list[ClassInfo], Iterator]:
    """The class table of a class map and an iterator over its polygons, GeoDataFrame batches in its CRS.

    The inputs are checked before this returns; the map is then read and
    polygonized in strips of rows (``strip_rows``, default ``STRIP_PIXELS``
    pixels) as the iterator is consumed. Regions cut at strip edges are
    merged again, so the polygons equal those of the whole raster, and each
    region is handed on as soon as it is finished: memory holds a strip, the
    regions that still reach its last row, and one batch. With ``simplify``
    every polygon is held until the end, because a coverage is simplified as a
    whole. The iterator yields at least one batch (empty when there are no
    polygons). See :func:`vectorize` for the options.

    Example:
        >>> table, batches = polygon_batches("classes.tif", background=0)  # doctest: +SKIP
        >>> sum(len(b) for b in batches)  # doctest: +SKIP
        1234
    """
    from geoseg.io.raster import gdal_env, open_scene, pixel_area_m2

    if min_area is not None and min_area < 0:
        raise InputError(f"--min-area {min_area} must be zero or more square metres")
    if simplify is not None and simplify < 0:
        raise InputError(f"--simplify {simplify} must be zero or more metres")
    with gdal_env(), open_scene(classes) as ds:
        if np.dtype(ds.dtypes[0]).kind not in "iu":
            raise RasterError(f"{ds.name} holds {ds.dtypes[0]} values, not class ids: give an integer class map")
        table = read_class_table(classes_table) if classes_table else class_table_of(ds)
        if confidence:
            _open_confidence(confidence, ds).close()
        pixel_area = pixel_area_m2(ds)
    skip = {background} if isinstance(background, int) else set(background or ())
    min_pixels = max(1, math.ceil(min_area / pixel_area - 1e-9)) if min_area else 0
    names = {c.id: c.name for c in table}

    def batches() -> Iterator:
        from geoseg.polygonize.strips import StripPolygonizer

        traced = StripPolygonizer()
        held: list = []
        yielded = False
        # strips are read once, top to bottom: a small block cache is enough
        with gdal_env(GDAL_CACHEMAX=READ_CACHE_MB), open_scene(classes) as ds:
            conf_ds = _open_confidence(confidence, ds) if confidence else None
            try:
                sieved = None
                if min_pixels and ds.width * ds.height <= SIEVE_IN_MEMORY:
                    sieved = sieve_regions(ds.read(1), ds.read_masks(1) > 0, min_pixels)
                strips = _strips(ds.height, ds.width, strip_rows)
                for i, (y0, y1) in enumerate(strips):
                    if progress:
                        progress("vectorize", i, len(strips))
                    traced.add(y0, *_read_strip(ds, conf_ds, y0, y1, sieved, min_pixels))
                    if i == len(strips) - 1:
                        traced.finish()
                    held.extend(r for r in traced.done if r.class_id not in skip)
                    traced.done.clear()
                    if not simplify and (len(held) >= BATCH_POLYGONS or i == len(strips) - 1):
                        if held or not yielded:
                            yield _frame(held, ds, names, pixel_area, None, confidence is not None)
                            yielded = True
                        held = []
                if simplify:  # the last strip yielded everything otherwise
                    yield _frame(held, ds, names, pixel_area, simplify, confidence is not None)
                if progress:
                    progress("vectorize", len(strips), len(strips))
            finally:
                if conf_ds is not None:
                    conf_ds.close()

    return table, batches()


def _read_strip(ds, conf_ds, y0: int, y1: int, sieved: np.ndarray | None, min_pixels: int) -> tuple:
    """Class ids, validity and confidence of rows ``y0:y1`` (sieved when asked)."""
    from rasterio.windows import Window

    window = Window(0, y0, ds.width, y1 - y0)
    valid = ds.read_masks(1, window=window) > 0
    if sieved is not None:
        data = sieved[y0:y1]
    elif min_pixels:
        data = _sieve_with_halo(ds, y0, y1, min_pixels)
    else:
        data = ds.read(1, window=window)
    conf = conf_ds.read(1, window=window) if conf_ds is not None else None
    return data, valid, conf


def _frame(regions: list, ds, names: dict, pixel_area: float, simplify: float | None, with_confidence: bool):
    """A GeoDataFrame of finished regions: geometry in the CRS and the attributes."""
    import geopandas as gpd

    geoms = [r.geometry for r in regions]
    class_ids = np.array([r.class_id for r in regions], dtype=np.int32)
    if simplify and geoms:
        geoms = _simplify(geoms, simplify / math.sqrt(pixel_area))
    geoms = list(_to_crs_coordinates(np.asarray(geoms, dtype=object), ds.transform)) if geoms else []
    area, perimeter = measure(geoms, ds.crs) if geoms else (np.zeros(0), np.zeros(0))
    columns = {
        "class_id": class_ids,
        "class_name": [names.get(int(c), str(int(c))) for c in class_ids],
        "area_m2": np.round(area, 2),
        "perimeter_m": np.round(perimeter, 2),
    }
    if with_confidence:
        columns["mean_confidence"] = np.round([r.conf_sum / r.conf_count if r.conf_count else np.nan for r in regions], 2)
    return gpd.GeoDataFrame(columns, geometry=geoms, crs=ds.crs.to_wkt() if ds.crs else None)


def _sieve_with_halo(ds, y0: int, y1: int, min_pixels: int) -> np.ndarray:
    from rasterio.windows import Window

    top, bottom = max(0, y0 - SIEVE_HALO), min(ds.height, y1 + SIEVE_HALO)
    window = Window(0, top, ds.width, bottom - top)
    block = sieve_regions(ds.read(1, window=window), ds.read_masks(1, window=window) > 0, min_pixels)
    return block[y0 - top : y1 - top]


def vectorize(
    classes: str | os.PathLike,
    output: str | os.PathLike,
    *,
    min_area: float | None = None,
    simplify: float | None = None,
    confidence: str | os.PathLike | None = None,
    background: Sequence[int] | int | None = None,
    precision: int | None = None,
    classes_table: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> VectorizeResult:
    """Polygonize a class map into GeoPackage, Shapefile, GeoJSON or FlatGeobuf (by extension).

    ``min_area`` (m²) first merges smaller regions into the neighbour they
    share the longest border with; ``simplify`` (m) simplifies the polygons as
    a coverage, so neighbours keep shared borders; ``confidence`` adds each
    polygon's mean confidence; ``background`` leaves those class ids out;
    ``classes_table`` (a model file or JSON) names and colours the classes
    when the class map carries no class table.

    Example:
        >>> vectorize("classes.tif", "polygons.gpkg", min_area=500, simplify=5)  # doctest: +SKIP
    """
    from geoseg.io.features import PolygonSink, check_vector_output
    from geoseg.report.styles import polygons_qml

    started = time.perf_counter()
    out = Path(output)
    fmt = check_vector_output(out, [classes, confidence], overwrite)
    table, batches = polygon_batches(
        classes,
        min_area=min_area,
        simplify=simplify,
        confidence=confidence,
        background=background,
        classes_table=classes_table,
        progress=progress,
    )
    per_class = write_batches(batches, [PolygonSink(out, fmt, table, precision, style=polygons_qml(table))])
    count = sum(per_class.values())
    if not count:
        log.warning("%s: no polygons (every pixel is nodata or background); wrote an empty layer", out)
    return VectorizeResult(out, count, per_class, time.perf_counter() - started)


def write_batches(batches: Iterator, sinks: list) -> dict[str, int]:
    """Write every batch to each :class:`~geoseg.io.features.PolygonSink`; returns polygons per class name.

    The sinks are closed (their files renamed into place) only when all
    batches were written; on an error their scratch files are removed.

    Example:
        >>> table, batches = polygon_batches("classes.tif")  # doctest: +SKIP
        >>> write_batches(batches, [PolygonSink(Path("p.gpkg"), "GPKG", table)])  # doctest: +SKIP
        {'water': 12, 'forest': 40}
    """
    with contextlib.ExitStack() as stack:
        for sink in sinks:
            stack.enter_context(sink)
        per_class: dict[str, int] = {}
        for frame in batches:
            for sink in sinks:
                sink.write(frame)
            for name, n in frame.class_name.value_counts(sort=False).items():
                per_class[str(name)] = per_class.get(str(name), 0) + int(n)
    return per_class


def _open_confidence(path: str | os.PathLike, ref):
    from geoseg.io.raster import open_scene

    ds = open_scene(path)
    if (ds.width, ds.height) != (ref.width, ref.height) or ds.transform != ref.transform or ds.crs != ref.crs:
        ds.close()
        raise RasterError(
            f"confidence raster {path} is not on the class map's grid (CRS, transform and size "
            "must match): give the confidence.tif written with these classes"
        )
    return ds


def _simplify(geoms: list, tolerance_px: float) -> list:
    """Coverage simplification in pixel coordinates.

    GDAL's polygons share edges but not always vertices (a long edge of one
    polygon faces several of its neighbours' corners); GEOS needs a noded
    coverage, so every edge first gets a vertex at each pixel corner, which is
    exact in integer pixel coordinates.
    """
    import shapely

    noded = shapely.segmentize(np.asarray(geoms, dtype=object), 1.0)
    simplified = shapely.coverage_simplify(noded, tolerance_px)
    return [g if not g.is_empty else o for g, o in zip(simplified, geoms)]


def _to_crs_coordinates(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Map pixel (col, row) coordinates to the CRS as GDAL does (x = c + a*col + b*row)."""
    import shapely

    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def affine(xy: np.ndarray) -> np.ndarray:
        col, row = xy[:, 0], xy[:, 1]
        return np.column_stack([c + a * col + b * row, f + d * col + e * row])

    return shapely.transform(geoms, affine)
