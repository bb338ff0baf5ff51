"""Writing polygon layers, one registry entry per vector format: GeoPackage (with its QGIS style), Shapefile,
GeoJSON (RFC 7946), GeoJSON Lines, FlatGeobuf.

:data:`FORMATS` lists the formats as :class:`VectorFormat` entries; the
output's extension picks one (:func:`format_for_path`). Adding a format is
one entry there: its GDAL driver, extensions, CRS, field names, sidecar
files, creation options and how the scratch file becomes the output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from geoseg.core.classes import ClassInfo
from geoseg.core.errors import OptionError, OutputError
from geoseg.io.leftovers import remove_stale, temp_name
from geoseg.io.outputs import atomic_output, write_error
from geoseg.io.paths import check_output
from geoseg.io.renames import replace_file, replace_files

if TYPE_CHECKING:
    from geopandas import GeoDataFrame

__all__ = [
    "FORMATS",
    "LAYER",
    "NODED",
    "SHAPEFILE_INDEXES",
    "PolygonSink",
    "VectorFormat",
    "add_gpkg_style",
    "check_vector_output",
    "finish_converted",
    "finish_geojson_lines",
    "finish_in_place",
    "format_for_path",
    "format_named",
]

LAYER = "polygons"
"""Name of the polygon layer in every format that names layers."""

NODED = "geometry_noded"
"""A batch's optional column of the same polygons with a vertex wherever a neighbour's boundary meets their edges
(:mod:`geoseg.polygonize.nodes`): what :class:`PolygonSink` writes to the formats it reprojects (``wgs84``), so
neighbours keep sharing their borders once coordinates are reprojected and rounded; other formats get the
geometry column, and no format gets this column as a field."""

SHAPEFILE_INDEXES = (".qix", ".sbn", ".sbx")
"""A Shapefile's spatial indexes (GDAL/QGIS/MapServer's, ESRI's): they point into the ``.shp`` they were built
for, so they are part of its set of files (GDAL and QGIS trust a stale one and miss features)."""


def finish_in_place(sink: PolygonSink) -> None:
    """The scratch GeoPackage is the output: store the sink's QGIS style in it and rename it into place."""
    if sink.style is not None:
        add_gpkg_style(sink.scratch, LAYER, sink.style)
    replace_file(sink.scratch, sink.path)  # a file held open (Windows) is one clear error


def finish_converted(sink: PolygonSink) -> None:
    """GDAL converts the scratch GeoPackage into the output, written under a temporary name and renamed.

    A format with sidecar files is written into a scratch folder beside the output; its files replace the old ones
    all or none, and a sidecar it did not write this time (a stale one of the output it replaces) is then removed.
    """
    if not sink.format.sidecars:
        with atomic_output(sink.path) as tmp:
            sink.convert(tmp)
        return
    folder = sink.path.parent / temp_name(sink.path.stem, "partial")
    folder.mkdir()
    try:
        sink.convert(folder / sink.path.name)
        moves, stale = [], []
        for suffix in sink.format.sidecars:
            own = suffix.lower() == sink.path.suffix.lower()  # the output itself, spelled as given (UTM.SHP)
            side, written = sink.path if own else sink.path.with_suffix(suffix), (folder / sink.path.name).with_suffix(suffix)
            if written.exists():
                moves.append((written, side))
            else:
                stale.append(side)
        replace_files(moves)  # a Shapefile's files replace the old ones together
        for side in stale:
            side.unlink(missing_ok=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


GEOJSON_FEATURE = '{ "type": "Feature"'
"""How each line of a feature in GDAL's GeoJSON begins (one feature a line, then a comma)."""


def finish_geojson_lines(sink: PolygonSink) -> None:
    """GeoJSON Lines are GeoJSON's features one a line: the scratch layer is written as GeoJSON (RFC 7946: EPSG:4326,
    right-hand winding, split at the antimeridian) and its feature lines copied (each after an RS in ``.geojsons``),
    so both hold the same features; should GDAL's GeoJSON not hold one feature a line, GDAL converts it instead."""
    from pyogrio import read_info

    geojson = format_named("GeoJSON")
    between = sink.path.with_name(temp_name(sink.path.stem, "partial", geojson.extensions[0]))  # a killed one is removed
    separator = "\x1e" if sink.path.suffix.lower() == ".geojsons" else ""
    try:
        _convert(sink.scratch, LAYER, between, geojson, sink.precision)
        with atomic_output(sink.path) as tmp:
            copied = 0
            try:
                with between.open(encoding="utf-8") as lines, tmp.open("w", encoding="utf-8", newline="\n") as out:
                    for line in lines:
                        if line.startswith(GEOJSON_FEATURE):
                            out.write(separator + line.rstrip("\r\n").removesuffix(",") + "\n")
                            copied += 1
            except OSError as exc:  # a full disk, in one line
                raise write_error(sink.path, exc) from None
            if copied != read_info(sink.scratch, layer=LAYER)["features"]:
                tmp.unlink()
                _convert(between, None, tmp, sink.format, sink.precision)
    finally:
        between.unlink(missing_ok=True)


@dataclass(frozen=True)
class VectorFormat:
    """One vector format polygons are written to (an entry of :data:`FORMATS`).

    ``name`` is shown to people; ``driver`` is GDAL's; ``extensions`` pick
    the format by output path (the first is the one messages and ``--help``
    list). ``wgs84`` formats are written in EPSG:4326, the others in the class
    map's CRS. ``fields`` renames attribute fields (a Shapefile's names have
    at most 10 characters). ``sidecars`` are the suffixes of every file the
    format writes, and of the files other tools keep beside it that describe
    its contents (a Shapefile's spatial indexes, stale once the ``.shp`` is
    replaced): refused if one exists unless overwriting, replaced together,
    and one the format did not write this time is removed. ``layer_options``
    are GDAL layer creation options; ``precision`` is ``(option, default)``
    for the layer option that takes the decimal places of coordinates.
    ``empty`` says what an output without polygons is. ``named_layer``: the
    layer is named :data:`LAYER`. ``finish(sink)`` turns the sink's scratch
    GeoPackage into the output: :func:`finish_in_place`,
    :func:`finish_converted` or :func:`finish_geojson_lines`.

    Example:
        >>> fmt = format_for_path(Path("polygons.shp"))
        >>> fmt.driver, fmt.fields["perimeter_m"], fmt.wgs84
        ('ESRI Shapefile', 'perim_m', False)
    """

    name: str
    driver: str
    extensions: tuple[str, ...]
    wgs84: bool = False
    fields: Mapping[str, str] = field(default_factory=dict)
    sidecars: tuple[str, ...] = ()
    layer_options: Mapping[str, object] = field(default_factory=dict)
    precision: tuple[str, int] | None = None
    empty: str = "an empty layer"
    named_layer: bool = True
    finish: Callable[[PolygonSink], None] = field(default=finish_converted, repr=False)

    def options(self, precision: int | None = None) -> dict[str, object]:
        """GDAL layer creation options, with ``precision`` (or the default) where the format takes it.

        Example:
            >>> format_named("GeoJSON").options(4)["COORDINATE_PRECISION"]
            4
        """
        options = dict(self.layer_options)
        if self.precision is not None:
            option, default = self.precision
            options[option] = default if precision is None else precision
        return options


FORMATS: tuple[VectorFormat, ...] = (
    VectorFormat("GeoPackage", "GPKG", (".gpkg",), finish=finish_in_place),
    VectorFormat(
        "Shapefile",
        "ESRI Shapefile",
        (".shp",),
        fields={"perimeter_m": "perim_m", "mean_confidence": "mean_conf"},
        sidecars=(".shp", ".shx", ".dbf", ".prj", ".cpg", *SHAPEFILE_INDEXES),
        layer_options={"ENCODING": "UTF-8"},
        named_layer=False,
    ),
    VectorFormat(
        "GeoJSON",
        "GeoJSON",
        (".geojson", ".json"),
        wgs84=True,
        layer_options={"RFC7946": "YES", "WRITE_NAME": "NO"},
        precision=("COORDINATE_PRECISION", 7),
    ),
    VectorFormat(
        "GeoJSON Lines",
        "GeoJSONSeq",
        (".geojsonl", ".geojsons"),
        wgs84=True,
        precision=("COORDINATE_PRECISION", 7),
        empty="an empty file (0 bytes: a GeoJSON Sequence of no features, RFC 8142, as GDAL writes one; "
        "GDAL and QGIS cannot open it)",
        finish=finish_geojson_lines,
    ),
    VectorFormat("FlatGeobuf", "FlatGeobuf", (".fgb",)),
)
"""The vector formats polygons are written to; the output's extension picks one."""


def format_for_path(path: Path) -> VectorFormat:
    """The entry of :data:`FORMATS` for ``path``'s extension; an unknown one is an error listing the valid ones.

    Example:
        >>> format_for_path(Path("polygons.GeoJSON")).driver
        'GeoJSON'
    """
    suffix = path.suffix.lower()
    for fmt in FORMATS:
        if suffix in fmt.extensions:
            return fmt
    raise OptionError(
        f"output {path}: unknown extension {path.suffix or '(none)'!r}; "
        f"use one of {', '.join(sorted(fmt.extensions[0] for fmt in FORMATS))}"
    )


def format_named(driver: str) -> VectorFormat:
    """The entry of :data:`FORMATS` whose GDAL driver is ``driver``.

    Example:
        >>> format_named("FlatGeobuf").extensions
        ('.fgb',)
    """
    for fmt in FORMATS:
        if fmt.driver == driver:
            return fmt
    raise ValueError(f"no vector format with GDAL driver {driver!r}: use one of {', '.join(f.driver for f in FORMATS)}")


def check_vector_output(path: Path, inputs: Iterable[str | os.PathLike | None], overwrite: bool) -> VectorFormat:
    """The vector format for ``path``'s extension, after the usual output checks (also of its sidecar files).

    Example:
        >>> check_vector_output(Path("/tmp/new_polygons.fgb"), [], False).driver
        'FlatGeobuf'
    """
    fmt = format_for_path(path)
    given = [i for i in inputs if i is not None]
    check_output(path, given, overwrite)
    for suffix in fmt.sidecars:  # each is replaced or removed: checked like the output itself
        check_output(path.with_suffix(suffix), given, overwrite)
    journal = next((Path(f"{path}{s}") for s in ("-wal", "-journal") if Path(f"{path}{s}").exists()), None)
    if fmt.driver == "GPKG" and journal is not None:  # SQLite would apply the old file's journal to the new one
        raise OutputError(
            f"output {path} is open in another program ({journal.name} beside it): close it there "
            "(remove the layer in QGIS) and run again"
        )
    return fmt


class PolygonSink:
    """Stream batches of polygons into one vector file: memory holds a batch, not the layer.

    ``fmt`` is a :class:`VectorFormat` or the GDAL driver name of one in
    :data:`FORMATS` (``"GPKG"``). ``style`` (QML text) is stored in a
    GeoPackage as its layer's default QGIS style. ``precision`` is the
    decimal places of coordinates where the format takes them (GeoJSON).
    Batches are appended to a scratch GeoPackage beside ``path`` (in EPSG:4326
    and with renamed fields where the format asks). Closing turns it into the
    output with the format's ``finish``: a GeoPackage gets its QGIS style and
    is renamed into place; other formats are converted from the scratch file
    by GDAL as an Arrow stream, batch by batch. Nothing appears at ``path``
    unless every batch was written; an error removes the scratch file. A
    batch's column :data:`NODED`, when it has one, is the geometry of the
    formats written in EPSG:4326 and is left out of the others.

    Example:
        >>> with PolygonSink(Path("polygons.fgb"), "FlatGeobuf", classes) as sink:  # doctest: +SKIP
        ...     for frame in batches:
        ...         sink.write(frame)
    """

    def __init__(
        self,
        path: Path,
        fmt: VectorFormat | str,
        classes: Sequence[ClassInfo],
        precision: int | None = None,
        style: str | None = None,
    ) -> None:
        self.path, self.classes, self.precision, self.style = Path(path), classes, precision, style
        self.format = fmt if isinstance(fmt, VectorFormat) else format_named(fmt)
        self.scratch = self.path.with_name(temp_name(self.path.stem, "partial", ".gpkg"))
        self._started = False

    def write(self, frame: GeoDataFrame) -> None:
        """Append one batch (a GeoDataFrame in any CRS; an empty one still fixes the layer's fields)."""
        from pyogrio import write_dataframe

        if self._started and frame.empty:
            return
        if NODED in frame.columns:  # the noded polygons where coordinates are reprojected, else the plain ones
            name = frame.geometry.name
            frame = (
                frame.set_geometry(NODED).drop(columns=name).rename_geometry(name)
                if self.format.wgs84
                else frame.drop(columns=NODED)
            )
        if self.format.wgs84 and frame.crs is not None:
            frame = frame.to_crs("EPSG:4326")
        if self.format.fields:
            frame = frame.rename(columns=dict(self.format.fields))
        self._guard(
            lambda: write_dataframe(
                frame, self.scratch, layer=LAYER, driver="GPKG", geometry_type="Polygon", append=self._started, VERSION="1.2"
            )
        )
        self._started = True

    def close(self) -> None:
        """Turn the scratch file into the output (renamed into place only when complete)."""
        if not self._started:
            raise OutputError(f"no layer was written to {self.path}")
        try:
            self._guard(lambda: self.format.finish(self))
        finally:
            self.scratch.unlink(missing_ok=True)

    def convert(self, target: Path) -> None:
        """Write the scratch layer to ``target`` in this sink's format (GDAL, as an Arrow stream)."""
        _convert(self.scratch, LAYER, target, self.format, self.precision)

    def _guard(self, action: Callable[[], object]) -> None:
        from pyogrio.errors import DataLayerError, DataSourceError

        try:
            action()
        except (DataSourceError, DataLayerError) as exc:
            raise OutputError(f"cannot write {self.path} ({exc}): check the folder and free disk space") from None

    def __enter__(self) -> PolygonSink:
        remove_stale(self.path)  # the scratch files of a writer killed before it finished
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.scratch.unlink(missing_ok=True)


def _convert(source: Path, layer: str | None, target: Path, fmt: VectorFormat, precision: int | None) -> None:
    """Write ``layer`` of ``source`` (its one layer when ``None``) to ``target`` in ``fmt`` (GDAL, as an Arrow stream)."""
    from pyogrio import open_arrow, write_arrow

    with open_arrow(source, layer=layer, use_pyarrow=False) as (meta, stream):
        write_arrow(
            stream,
            target,
            layer=LAYER if fmt.named_layer else None,
            driver=fmt.driver,
            geometry_name=meta["geometry_name"] or "geom",
            geometry_type="Polygon",
            crs=meta["crs"],
            layer_options=fmt.options(precision),
        )


def add_gpkg_style(path: Path, layer: str, qml: str, name: str = "geoseg") -> None:
    """Store ``qml`` as the default QGIS style of ``layer`` in the GeoPackage's ``layer_styles`` table.

    Example:
        >>> add_gpkg_style(Path("polygons.gpkg"), "polygons", "<qgis>...</qgis>")  # doctest: +SKIP
    """
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), "
            "f_table_schema TEXT(256), f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), "
            "styleQML TEXT, styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
            "update_time DATETIME DEFAULT CURRENT_TIMESTAMP)"
        )
        db.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
            "VALUES ('layer_styles', 'attributes', 'layer_styles')"
        )
        geom = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)).fetchone()
        db.execute("DELETE FROM layer_styles WHERE f_table_name = ?", (layer,))
        db.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, styleName, "
            "styleQML, styleSLD, useAsDefault, description, owner, ui, update_time) "
            "VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', '', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            (layer, geom[0] if geom else "geom", name, qml, "class colours and names from geoseg"),
        )
