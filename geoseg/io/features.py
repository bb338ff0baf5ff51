"""Writing polygon layers: GeoPackage (with its QGIS style), Shapefile, GeoJSON (RFC 7946), FlatGeobuf."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from geoseg.core.classes import ClassInfo
from geoseg.core.errors import InputError, OutputError
from geoseg.io.paths import atomic_output, check_output

__all__ = ["FORMATS", "LAYER", "SHAPEFILE_FIELDS", "PolygonSink", "check_vector_output"]

LAYER = "polygons"
FORMATS = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".json": "GeoJSON", ".fgb": "FlatGeobuf"}
SHAPEFILE_FIELDS = {"perimeter_m": "perim_m", "mean_confidence": "mean_conf"}
_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def check_vector_output(path: Path, inputs: Iterable, overwrite: bool) -> str:
    """The OGR driver for ``path``'s extension, after the usual output checks.

    Example:
        >>> check_vector_output(Path("/tmp/new_polygons.fgb"), [], False)
        'FlatGeobuf'
    """
    driver = FORMATS.get(path.suffix.lower())
    if driver is None:
        raise InputError(
            f"output {path}: unknown extension {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(set(FORMATS) - {'.json'}))}"
        )
    inputs = [i for i in inputs if i is not None]
    check_output(path, inputs, overwrite)
    if driver == "ESRI Shapefile" and not overwrite:
        for suffix in _SIDECARS:
            side = path.with_suffix(suffix)
            if side.exists():
                raise OutputError(f"output {side} already exists: use --overwrite to replace it")
    return driver


class PolygonSink:
    """Stream batches of polygons into one vector file: memory holds a batch, not the layer.

    ``style`` (QML text) is stored in a GeoPackage as its layer's default QGIS style.
    Batches are appended to a scratch GeoPackage beside ``path`` (in EPSG:4326
    for GeoJSON, with Shapefile field names for a Shapefile). Closing turns it
    into the output: a GeoPackage gets its QGIS style and is renamed into
    place; other formats are converted from the scratch file by GDAL as an
    Arrow stream, batch by batch. Nothing appears at ``path`` unless every
    batch was written; an error removes the scratch file.

    Example:
        >>> with PolygonSink(Path("polygons.fgb"), "FlatGeobuf", classes) as sink:  # doctest: +SKIP
        ...     for frame in batches:
        ...         sink.write(frame)
    """

    def __init__(
        self, path: Path, driver: str, classes: Sequence[ClassInfo], precision: int | None = None, style: str | None = None
    ) -> None:
        self.path, self.driver, self.classes, self.precision = Path(path), driver, classes, precision
        self.style = style
        self.scratch = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:8]}.partial.gpkg")
        self._started = False

    def write(self, frame) -> None:
        """Append one batch (a GeoDataFrame in any CRS; an empty one still fixes the layer's fields)."""
        from pyogrio import write_dataframe

        if self._started and frame.empty:
            return
        if self.driver == "GeoJSON" and frame.crs is not None:
            frame = frame.to_crs("EPSG:4326")
        if self.driver == "ESRI Shapefile":
            frame = frame.rename(columns=SHAPEFILE_FIELDS)
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
            if self.driver == "GPKG":
                if self.style is not None:
                    style = self.style
                    self._guard(lambda: add_gpkg_style(self.scratch, LAYER, style))
                os.replace(self.scratch, self.path)
            elif self.driver == "ESRI Shapefile":
                folder = Path(tempfile.mkdtemp(prefix=f".{self.path.stem}.", suffix=".partial", dir=self.path.parent))
                try:
                    self._guard(lambda: self._convert(folder / self.path.name))
                    for suffix in _SIDECARS:
                        side = self.path.with_suffix(suffix)
                        if (folder / self.path.name).with_suffix(suffix).exists():
                            os.replace((folder / self.path.name).with_suffix(suffix), side)
                        elif side.exists():
                            side.unlink()  # a stale sidecar of the file we replace
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            else:
                with atomic_output(self.path) as tmp:
                    self._guard(lambda: self._convert(tmp))
        finally:
            self.scratch.unlink(missing_ok=True)

    def _convert(self, target: Path) -> None:
        from pyogrio import open_arrow, write_arrow

        options: dict[str, object] = {}
        if self.driver == "GeoJSON":
            options = {
                "RFC7946": "YES",
                "WRITE_NAME": "NO",
                "COORDINATE_PRECISION": 7 if self.precision is None else self.precision,
            }
        elif self.driver == "ESRI Shapefile":
            options = {"ENCODING": "UTF-8"}
        with open_arrow(self.scratch, layer=LAYER, use_pyarrow=False) as (meta, stream):
            write_arrow(
                stream,
                target,
                layer=None if self.driver == "ESRI Shapefile" else LAYER,
                driver=self.driver,
                geometry_name=meta["geometry_name"] or "geom",
                geometry_type="Polygon",
                crs=meta["crs"],
                layer_options=options,
            )

    def _guard(self, action) -> None:
        from pyogrio.errors import DataLayerError, DataSourceError

        try:
            action()
        except (DataSourceError, DataLayerError) as exc:
            raise OutputError(f"cannot write {self.path} ({exc}): check the folder and free disk space") from None

    def __enter__(self) -> PolygonSink:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.scratch.unlink(missing_ok=True)


def add_gpkg_style(path: Path, layer: str, qml: str, name: str = "geoseg") -> None:
    """Store ``qml`` as the default QGIS style of ``layer`` in the GeoPackage's ``layer_styles`` table."""
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
