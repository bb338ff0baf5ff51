"""Vectorize: a class map's regions as polygons with attributes, streamed into vector files.

:func:`vectorize` (keywords) and :func:`write_polygons` (a
:class:`~geoseg.core.options.VectorizeOptions`) write one vector file.
Underneath, :func:`polygon_batches` reads the class map in strips
(:mod:`geoseg.polygonize.strips`), measures the finished regions
(:mod:`geoseg.polygonize.measure`) and hands them on as GeoDataFrame batches,
which :func:`write_batches` streams into any number of
:class:`~geoseg.io.features.PolygonSink`; :func:`polygons_frame` gathers them
into one frame instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geoseg.core.classes import NODATA, ClassInfo
from geoseg.core.errors import RasterError
from geoseg.core.options import Progress, VectorizeOptions
from geoseg.io.classmap import class_table_of
from geoseg.io.paths import check_input_file, is_remote
from geoseg.polygonize.checks import ValueCheck, check_class_map
from geoseg.polygonize.frames import Plan
from geoseg.polygonize.strips import Region, StripPolygonizer, StripReader
from geoseg.polygonize.tables import CLASSES_KINDS, WIDE_MAX_ID, read_class_table

if TYPE_CHECKING:
    from geopandas import GeoDataFrame
    from rasterio.io import DatasetReader

    from geoseg.io.features import PolygonSink

__all__ = [
    "VectorizeResult",
    "polygon_batches",
    "polygons_frame",
    "read_class_table",
    "vectorize",
    "write_batches",
    "write_polygons",
]

log = logging.getLogger("geoseg")

READ_CACHE_MB = 32
"""GDAL block cache while vectorizing (MB)."""

BATCH_POLYGONS = 10000
"""Finished polygons gathered before a batch is measured and handed on (written, when streaming)."""


@dataclass
class VectorizeResult:
    """What :func:`vectorize` wrote."""

    output: Path
    polygons: int
    per_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    style: Path | None = None
    """The QGIS style beside a format that cannot hold one (``polygons.qml`` beside ``polygons.shp``); None for a GeoPackage."""


def vectorize(
    classes: str | os.PathLike,
    output: str | os.PathLike,
    *,
    min_area: float | None = None,
    simplify: float | None = None,
    confidence: str | os.PathLike | None = None,
    background: Sequence[int] | int | None = None,
    classes_table: str | os.PathLike | None = None,
    precision: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> VectorizeResult:
    """Polygonize a class map into any vector format of :data:`geoseg.io.features.FORMATS` (by extension).

    ``min_area`` (m²) first merges smaller regions into the neighbour they
    share the longest border with; ``simplify`` (m) simplifies the polygons as
    a coverage, so neighbours keep shared borders; ``confidence`` adds each
    polygon's mean confidence; ``background`` leaves those class ids out;
    ``classes_table`` (a model file or JSON) names and colours the classes
    when the class map carries no class table; ``precision`` is the decimal
    places of coordinates where the format takes them (GeoJSON). The options
    become one :class:`~geoseg.core.options.VectorizeOptions`, checked here,
    for :func:`write_polygons`.

    Example:
        >>> vectorize("classes.tif", "polygons.gpkg", min_area=500, simplify=5)  # doctest: +SKIP
    """
    options = _options(min_area, simplify, background, precision)
    return write_polygons(
        classes, output, options, confidence=confidence, classes_table=classes_table, overwrite=overwrite, progress=progress
    )


def write_polygons(
    classes: str | os.PathLike,
    output: str | os.PathLike,
    options: VectorizeOptions | None = None,
    *,
    confidence: str | os.PathLike | None = None,
    classes_table: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> VectorizeResult:
    """:func:`vectorize` with its options as one :class:`~geoseg.core.options.VectorizeOptions` (the CLI's path).

    The output is checked before any work starts, and appears only when every
    polygon was written. A GeoPackage holds its QGIS style; other formats get
    it beside them with the output's name and ``.qml`` (QGIS loads it when it
    opens the file): it may not replace the class map's own style.

    Example:
        >>> write_polygons("classes.tif", "polygons.fgb", VectorizeOptions(min_area=500))  # doctest: +SKIP
        VectorizeResult(output=PosixPath('polygons.fgb'), polygons=1234, ...)
    """
    from geoseg.io.features import PolygonSink, check_vector_output
    from geoseg.io.outputs import style_beside, write_text_atomic
    from geoseg.report.styles import polygons_qml

    options = options or VectorizeOptions()
    started = time.perf_counter()
    out = Path(output)
    fmt = check_vector_output(out, [classes, confidence], overwrite)
    if fmt.precision is not None and options.precision is not None:
        _check_precision(classes, out, options.precision)
    table, batches = polygon_batches(
        classes, options, confidence=confidence, classes_table=classes_table, progress=progress, noded=fmt.wgs84
    )
    qml = polygons_qml(table)
    style = None if fmt.driver == "GPKG" else style_beside(out, classes, overwrite, qml)
    per_class = write_batches(batches, [PolygonSink(out, fmt, table, options.precision, style=qml)])
    if style is not None:
        write_text_atomic(style, qml)
    count = sum(per_class.values())
    if not count:
        log.warning("%s: no polygons (every pixel is nodata or background); wrote %s", out, fmt.empty)
    return VectorizeResult(out, count, per_class, time.perf_counter() - started, style)


METRES_PER_DEGREE = 111_320.0
"""About the length of a degree of latitude: what a coordinate precision in degrees (EPSG:4326 outputs) means."""


def _check_precision(classes: str | os.PathLike[str], out: Path, precision: int) -> None:
    """Warn when ``precision`` decimals of a degree are coarser than half the class map's pixel: polygons would
    collapse to lines or overlap their neighbours."""
    from geoseg.io.pixels import pixel_size_m
    from geoseg.io.raster import gdal_env, open_scene

    with gdal_env(), open_scene(classes) as ds:
        pixel = pixel_size_m(ds)
    step = 10.0**-precision * METRES_PER_DEGREE
    if pixel and step > pixel / 2:
        needed = math.ceil(-math.log10(pixel / 2 / METRES_PER_DEGREE))
        log.warning(
            "%s: --precision %d rounds coordinates to about %.3g m, coarser than half the class map's %.3g m pixels: "
            "polygons may collapse to lines or overlap; give --precision %d or more",
            out,
            precision,
            step,
            pixel,
            needed,
        )


def polygons_frame(
    classes: str | os.PathLike,
    *,
    min_area: float | None = None,
    simplify: float | None = None,
    confidence: str | os.PathLike | None = None,
    background: Sequence[int] | int | None = None,
    classes_table: str | os.PathLike | None = None,
    strip_rows: int | None = None,
) -> tuple[GeoDataFrame, list[ClassInfo]]:
    """Polygons of a class map as one GeoDataFrame in its CRS, and its class table.

    The batches of :func:`polygon_batches` (options as for :func:`vectorize`)
    concatenated: handy for small maps and tests; :func:`vectorize` streams
    the batches instead.

    Example:
        >>> frame, table = polygons_frame("classes.tif", min_area=500)  # doctest: +SKIP
    """
    import geopandas as gpd
    import pandas as pd

    options = _options(min_area, simplify, background)
    table, batches = polygon_batches(classes, options, confidence=confidence, classes_table=classes_table, strip_rows=strip_rows)
    frames = list(batches)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=frames[0].crs), table


def polygon_batches(
    classes: str | os.PathLike,
    options: VectorizeOptions | None = None,
    *,
    confidence: str | os.PathLike | None = None,
    classes_table: str | os.PathLike | None = None,
    progress: Progress | None = None,
    strip_rows: int | None = None,
    noded: bool = False,
) -> tuple[list[ClassInfo], Iterator[GeoDataFrame]]:
    """The class table of a class map and an iterator over its polygons, GeoDataFrame batches in its CRS.

    The inputs are checked before this returns (a class map has one band of
    integer ids); the map is then read and
    polygonized in strips of rows (``strip_rows``, default
    :data:`~geoseg.polygonize.strips.STRIP_PIXELS` pixels) as the iterator is
    consumed. Regions cut at strip edges are merged again, so the polygons
    equal those of the whole raster, and each region is handed on as soon as
    it is finished: memory holds a strip, the regions that still reach its
    last row, and one batch. With ``options.simplify`` every polygon is held
    until the end, because a coverage is simplified as a whole. The iterator
    yields at least one batch (empty when there are no polygons). Its
    values are checked as the strips are read (:class:`~geoseg.polygonize.checks.ValueCheck`):
    more than :data:`~geoseg.polygonize.checks.MAX_CLASS_VALUES` different
    values the class table does not name raise :class:`RasterError` (not a
    class map), and background ids that are neither in the class table nor
    in the map get one warning line. With ``noded`` each batch also has the
    column :data:`~geoseg.io.features.NODED`: the same polygons with a vertex
    wherever a neighbour's boundary meets their edges, which
    :class:`~geoseg.io.features.PolygonSink` writes to the formats it
    reprojects, so neighbours still share their borders once coordinates are
    reprojected and rounded. See :func:`vectorize` for the options.

    Example:
        >>> table, batches = polygon_batches("classes.tif", VectorizeOptions(background=[0]))  # doctest: +SKIP
        >>> sum(len(b) for b in batches)  # doctest: +SKIP
        1234
    """
    from geoseg.io.pixels import pixel_area_m2
    from geoseg.io.raster import gdal_env, open_scene

    inputs = ((classes_table, "--classes", CLASSES_KINDS), (classes, "class map", _MAP), (confidence, "--confidence", _CONF))
    for path, what, kinds in inputs:  # before any is opened: a FIFO or a missing file is one line
        if path is not None and not is_remote(str(path)) and str(path) != "default":
            check_input_file(path, what, f"give {kinds}")
    with gdal_env(), open_scene(classes) as ds:
        check_class_map(ds)
        wide = np.dtype(ds.dtypes[0]).itemsize > 1  # a 16-bit map's ids: CORINE's 111..523
        given = read_class_table(classes_table, WIDE_MAX_ID if wide else NODATA - 1) if classes_table else None
        table = given if given is not None else class_table_of(ds)
        if confidence:
            _open_confidence(confidence, ds).close()
        pixel_area = pixel_area_m2(ds)
    names = {c.id: c.name for c in table}
    plan = Plan(classes, options or VectorizeOptions(), confidence, names, pixel_area, strip_rows, noded)
    return table, _stream(plan, progress)


def write_batches(batches: Iterable[GeoDataFrame], sinks: Sequence[PolygonSink]) -> dict[str, int]:
    """Write every batch to each :class:`~geoseg.io.features.PolygonSink`; returns polygons per class name.

    The sinks are closed (their files renamed into place) only when all
    batches were written; on an error their scratch files are removed.

    Example:
        >>> table, batches = polygon_batches("classes.tif")  # doctest: +SKIP
        >>> write_batches(batches, [PolygonSink(Path("p.gpkg"), "GPKG", table)])  # doctest: +SKIP
        {'water': 12, 'forest': 40}
    """
    with contextlib.ExitStack() as stack:
        close = getattr(batches, "close", None)  # a generator holds the class map open: closed when this ends
        if close is not None:
            stack.callback(close)
        for sink in sinks:
            stack.enter_context(sink)
        per_class: dict[str, int] = {}
        for frame in batches:
            for sink in sinks:
                sink.write(frame)
            for name, n in frame.class_name.value_counts(sort=False).items():
                per_class[str(name)] = per_class.get(str(name), 0) + int(n)
    return per_class


def _options(
    min_area: float | None,
    simplify: float | None,
    background: Sequence[int] | int | None,
    precision: int | None = None,
) -> VectorizeOptions:
    """The options of the keyword API (``background`` may be a single class id)."""
    ids = (background,) if isinstance(background, int) else tuple(background or ())
    return VectorizeOptions(min_area=min_area, simplify=simplify, background=ids, precision=precision)


_MAP = "a class map (geoseg predict writes one)"
_CONF = "the confidence.tif geoseg predict wrote with this class map (--confidence)"


def _stream(plan: Plan, progress: Progress | None) -> Iterator[GeoDataFrame]:
    """Open the class map (and its confidence) for reading in strips, and yield the batches."""
    from geoseg.io.raster import gdal_env, open_scene

    # strips are read once, top to bottom: a small block cache is enough
    with gdal_env(cache_mb=READ_CACHE_MB), open_scene(plan.classes) as ds:
        with _open_confidence(plan.confidence, ds) if plan.confidence else contextlib.nullcontext() as conf_ds:
            yield from _batches(plan, StripReader(ds, conf_ds, plan.min_pixels, plan.strip_rows), progress)


def _batches(plan: Plan, reader: StripReader, progress: Progress | None) -> Iterator[GeoDataFrame]:
    """Polygons of the strips, handed on ``BATCH_POLYGONS`` at a time as their regions finish.

    With ``simplify`` they come as one batch at the end: background regions
    are traced too and simplified with the others as one coverage (so the
    polygons keep their borders with them), then left out; nodata stays
    outside the coverage, whose boundary is not simplified. At least one
    batch is yielded, empty when there are no polygons.
    """
    simplify, skip = plan.options.simplify, set(plan.options.background)
    values = ValueCheck(str(plan.classes), plan.names, plan.options.background)
    traced = StripPolygonizer(noded=plan.traced_noded)
    held: list[Region] = []
    yielded = False
    count = len(reader.strips)
    for i, (y0, y1) in enumerate(reader.strips):
        if progress:
            progress("vectorize", i, count)
        classes, valid, conf = reader.read(y0, y1)
        values.see(classes, valid)
        if skip and not simplify:  # background is never a polygon: not traced (after the sieve, which sees it)
            valid = valid & ~np.isin(classes, list(skip))
        traced.add(y0, classes, valid, conf)
        last = i == count - 1
        if last:
            traced.finish()
        held.extend(r for r in traced.take() if simplify or r.class_id not in skip)
        if not simplify and (len(held) >= BATCH_POLYGONS or last):
            if held or not yielded:
                yield plan.frame(held, reader.ds)
                yielded = True
            held = []
    values.finish()
    if simplify:  # without it, the last strip yielded everything
        yield plan.simplified(held, reader.ds, skip)
    if progress:
        progress("vectorize", count, count)


def _open_confidence(path: str | os.PathLike, ref: DatasetReader) -> DatasetReader:
    """The confidence raster at ``path``, checked to lie on the grid of the class map ``ref``."""
    from geoseg.io.raster import open_scene

    ds = open_scene(path)
    if (ds.width, ds.height) != (ref.width, ref.height) or ds.transform != ref.transform or ds.crs != ref.crs:
        ds.close()
        raise RasterError(
            f"confidence raster {path} is not on the class map's grid (CRS, transform and size "
            "must match): give the confidence.tif written with these classes"
        )
    return ds
