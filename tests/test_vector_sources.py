"""Vector files as users have them: a GeoPackage of several layers (a layer named as QGIS does,
``file.gpkg|layername=x``, or refused listing them, never the first layer read silently) and invalid polygons
(repaired with one warning that counts them, for labels as for an area of interest)."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geoseg.core.errors import VectorError
from geoseg.core.labels import LabelMap
from geoseg.io.label_files import open_labels
from geoseg.io.vector import read_polygons
from tests.test_line_labels import UTM33, UTM_GRID, X0, Y0, _mask

FIELD = shapely.box(X0 + 100, Y0 - 300, X0 + 300, Y0 - 100)  # 20 x 20 pixels of UTM_GRID: rows 10..29, columns 10..29
LINE = shapely.LineString([(X0, Y0 - 5), (X0 + 590, Y0 - 5)])


def _two_layers(path: Path) -> Path:
    """Lines first (a boundaries layer), the labelled polygons second: the first layer is the wrong one."""
    gpd.GeoDataFrame({"kind": ["edge"]}, geometry=[LINE], crs=UTM33).to_file(path, layer="boundaries")
    gpd.GeoDataFrame({"kind": ["crop"]}, geometry=[FIELD], crs=UTM33).to_file(path, layer="fields")
    return path


def test_labels_of_several_layers_are_named_or_refused_listing_them(tmp_path: Path) -> None:
    path = _two_layers(tmp_path / "labels.gpkg")
    table = LabelMap.from_spec(["crop"], ignore=["edge"])
    with pytest.raises(
        VectorError, match=r'holds 2 layers \(boundaries, fields\): name one as ".*labels.gpkg\|layername=boundaries"'
    ):
        open_labels(path, UTM_GRID, "kind", table)
    with pytest.raises(VectorError, match="has no layer 'roads': its layers are boundaries, fields"):
        open_labels(f"{path}|layername=roads", UTM_GRID, "kind", table)
    mask = _mask(open_labels(f"{path}|layername=fields", UTM_GRID, "kind", table), UTM_GRID)
    assert (mask == 0).sum() == 400 and (mask[10:30, 10:30] == 0).all()


def test_a_geopackage_with_its_style_table_is_one_layer(tmp_path: Path) -> None:
    """geoseg's own polygons.gpkg carries QGIS's layer_styles table: a table without geometries is not a layer to name."""
    import sqlite3

    path = tmp_path / "polygons.gpkg"
    gpd.GeoDataFrame({"kind": ["crop"]}, geometry=[FIELD], crs=UTM33).to_file(path, layer="polygons")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE layer_styles (id INTEGER PRIMARY KEY, styleQML TEXT)")
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) VALUES ('layer_styles', 'attributes', 'ls')")
    mask = _mask(open_labels(path, UTM_GRID, "kind", LabelMap.from_spec(["crop"])), UTM_GRID)
    assert (mask == 0).sum() == 400


def test_an_area_of_interest_of_several_layers_is_named(tmp_path: Path) -> None:
    path = _two_layers(tmp_path / "aoi.gpkg")
    with pytest.raises(VectorError, match=r"--aoi .*aoi.gpkg holds 2 layers"):
        read_polygons(path, UTM_GRID.crs, "--aoi")
    assert [p.equals(FIELD) for p in read_polygons(f"{path}|layername=fields", UTM_GRID.crs)] == [True]


def test_invalid_label_polygons_are_repaired_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A bow-tie polygon becomes two triangles: the labels change, so one warning says how many were repaired."""
    x0, y0, x1, y1 = FIELD.bounds
    bowtie = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    path = tmp_path / "labels.gpkg"
    gpd.GeoDataFrame({"kind": ["crop", "crop", "crop"]}, geometry=[bowtie, bowtie, FIELD], crs=UTM33).to_file(path)
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        mask = _mask(open_labels(path, UTM_GRID, "kind", LabelMap.from_spec(["crop"])), UTM_GRID)
    lines = [r.getMessage() for r in caplog.records if "repaired with make_valid" in r.getMessage()]
    assert len(lines) == 1 and f"labels {path}: 2 invalid polygon(s)" in lines[0]
    assert (mask == 0).sum() == 400 and np.all(mask[10:30, 10:30] == 0)


def test_qgis_sources_with_layerid_and_subset_are_read_as_qgis_reads_them(tmp_path: Path) -> None:
    """QGIS's layer source carries |layerid=N and |subset=EXPRESSION: the layer by its index, the filter applied (it
    was read unfiltered); an option geoseg does not read is one line."""
    path = _two_layers(tmp_path / "labels.gpkg")
    extra = shapely.box(X0 + 400, Y0 - 300, X0 + 500, Y0 - 200)  # 10 x 10 pixels of "fallow" in the fields layer
    gpd.GeoDataFrame({"kind": ["crop", "fallow"]}, geometry=[FIELD, extra], crs=UTM33).to_file(path, layer="fields")
    table = LabelMap.from_spec(["crop", "fallow"])
    both = _mask(open_labels(f"{path}|layerid=1", UTM_GRID, "kind", table), UTM_GRID)
    assert (both == 0).sum() == 400 and (both == 1).sum() == 100
    crop = _mask(open_labels(f"{path}|layername=fields|subset=\"kind\" = 'crop'", UTM_GRID, "kind", table), UTM_GRID)
    assert (crop == 0).sum() == 400 and (crop == 1).sum() == 0
    assert len(read_polygons(f"{path}|layername=fields|subset=kind = 'fallow'", UTM_GRID.crs)) == 1
    with pytest.raises(VectorError, match="not 'geometrytype=Polygon'"):
        open_labels(f"{path}|layername=fields|geometrytype=Polygon", UTM_GRID, "kind", table)
    with pytest.raises(VectorError, match="has no layer 5 \\(layerid\\)"):
        open_labels(f"{path}|layerid=5", UTM_GRID, "kind", table)


def test_a_background_area_may_name_a_layer(tmp_path: Path) -> None:
    from geoseg.training.schema import parse_config
    from tests.helpers import random_scene, write_raster

    path = _two_layers(tmp_path / "areas.gpkg")
    image = str(write_raster(tmp_path / "s.tif", random_scene((3, 16, 16))))
    scene = {"image": image, "labels": f"{path}|layername=fields", "label_field": "kind"}
    background = {"name": "other", "within": f"{path}|layername=fields"}
    parsed = parse_config({"data": {"scenes": [scene], "classes": ["crop"], "background": background}}, tmp_path)
    assert parsed["data"]["background"]["within"] == f"{path}|layername=fields"
