"""Writing polygon layers: GeoPackage (with its QGIS style), Shapefile, GeoJSON (RFC 7946), FlatGeobuf."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from geoseg.errors import InputError, OutputError
from geoseg.io.paths import atomic_output, check_output
from geoseg.model.card import ClassInfo

__all__ = ["FORMATS", "LAYER", "SHAPEFILE_FIELDS", "check_vector_output", "write_polygons"]

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
        raise InputError(f"output {path}: unknown extension {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(sorted(set(FORMATS) - {'.json'}))}")
    inputs = [i for i in inputs if i is not None]
    check_output(path, inputs, overwrite)
    if driver == "ESRI Shapefile" and not overwrite:
        for suffix in _SIDECARS:
            side = path.with_suffix(suffix)
            if side.exists():
                raise OutputError(f"output {side} already exists: use --overwrite to replace it")
    return driver


def write_polygons(frame, path: Path, driver: str, classes: Sequence[ClassInfo], precision: int | None = None) -> None:
    """Write ``frame`` to ``path`` under a temporary name, then rename (a Shapefile's files together)."""
    from pyogrio import write_dataframe
    from pyogrio.errors import DataSourceError

    options: dict[str, object] = {}
    if driver == "GeoJSON":
        frame = frame.to_crs("EPSG:4326") if frame.crs is not None else frame
        options = {"RFC7946": "YES", "COORDINATE_PRECISION": 7 if precision is None else precision, "WRITE_NAME": "NO"}
    elif driver == "GPKG":
        options = {"VERSION": "1.2"}  # readable by older GDAL and QGIS releases without warnings
    try:
        if driver == "ESRI Shapefile":
            _write_shapefile(frame.rename(columns=SHAPEFILE_FIELDS), path)
            return
        with atomic_output(path) as tmp:
            write_dataframe(frame, tmp, layer=LAYER, driver=driver, geometry_type="Polygon", **options)
            if driver == "GPKG":
                from geoseg.styles import polygons_qml

                add_gpkg_style(tmp, LAYER, polygons_qml(classes))
    except DataSourceError as exc:
        raise OutputError(f"cannot write {path} ({exc}): check the folder and free disk space") from None


def _write_shapefile(frame, path: Path) -> None:
    from pyogrio import write_dataframe

    folder = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".partial", dir=path.parent))
    try:
        tmp = folder / path.name
        write_dataframe(frame, tmp, driver="ESRI Shapefile", geometry_type="Polygon", encoding="UTF-8")
        for suffix in _SIDECARS:
            side = path.with_suffix(suffix)
            if tmp.with_suffix(suffix).exists():
                os.replace(tmp.with_suffix(suffix), side)
            elif side.exists():
                side.unlink()  # a stale sidecar of the file we replace
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def add_gpkg_style(path: Path, layer: str, qml: str, name: str = "geoseg") -> None:
    """Store ``qml`` as the default QGIS style of ``layer`` in the GeoPackage's ``layer_styles`` table."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), "
            "f_table_schema TEXT(256), f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), "
            "styleQML TEXT, styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
            "update_time DATETIME DEFAULT CURRENT_TIMESTAMP)")
        db.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('layer_styles', 'attributes', 'layer_styles')")
        geom = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)).fetchone()
        db.execute("DELETE FROM layer_styles WHERE f_table_name = ?", (layer,))
        db.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, styleName, "
            "styleQML, styleSLD, useAsDefault, description, owner, ui, update_time) "
            "VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', '', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            (layer, geom[0] if geom else "geom", name, qml, "class colours and names from geoseg"))
