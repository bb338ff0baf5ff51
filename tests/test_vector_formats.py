"""Vector formats come from one registry (geoseg.io.features.FORMATS): every entry writes and reads back the
polygons of the whole raster; GeoJSON Lines was added as one entry."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely

import geoseg
from geoseg.core.errors import InputError
from geoseg.io.features import FORMATS, LAYER, PolygonSink, VectorFormat, format_for_path, format_named
from geoseg.polygonize.api import polygon_batches, polygons_frame, write_batches
from tests.helpers import run, write_raster
from tests.test_vectorize import class_map


def read_back(path: Path) -> gpd.GeoDataFrame:
    layers = [name for name, _ in pyogrio.list_layers(path)]
    return gpd.read_file(path, layer=LAYER if LAYER in layers else layers[0])


def normalized(frame: gpd.GeoDataFrame) -> list[str]:
    return sorted(shapely.normalize(g).wkt for g in frame.geometry)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.extensions[0])
def test_every_registered_format_writes_the_polygons_of_the_whole_raster(tmp_path: Path, fmt: VectorFormat) -> None:
    path, data = class_map(tmp_path, seed=5)
    conf = ((np.arange(data.size) % 97).reshape(data.shape)).astype(np.uint8)
    with rasterio.open(path) as ds:
        conf_path = write_raster(tmp_path / "conf.tif", conf, transform=ds.transform, nodata=255)
    whole, _ = polygons_frame(path, confidence=conf_path)
    out = tmp_path / f"polygons{fmt.extensions[0]}"
    result = geoseg.vectorize(path, out, confidence=conf_path)
    frame = read_back(out)
    assert result.polygons == len(frame) == len(whole)
    renamed = [fmt.fields.get(c, c) for c in ("class_id", "class_name", "area_m2", "perimeter_m", "mean_confidence")]
    assert [c for c in frame.columns if c != "geometry"] == renamed
    area = fmt.fields.get("area_m2", "area_m2")
    assert sorted(frame[area]) == sorted(whole.area_m2)
    if fmt.wgs84:
        assert frame.crs.to_epsg() == 4326
        back = frame.to_crs(whole.crs)
        np.testing.assert_allclose(sorted(back.area), sorted(whole.area), rtol=2e-3)  # 7 decimals of a degree
    else:
        assert frame.crs == whole.crs
        assert normalized(frame) == normalized(whole)
    assert not list(tmp_path.glob(".*partial*"))


def test_geojson_lines_holds_the_geojson_features_one_per_line(tmp_path: Path) -> None:
    path, _ = class_map(tmp_path, seed=6)
    geoseg.vectorize(path, tmp_path / "p.geojson", precision=6, background=0)
    geoseg.vectorize(path, tmp_path / "p.geojsonl", precision=6, background=0)
    features = json.loads((tmp_path / "p.geojson").read_text())["features"]
    lines = (tmp_path / "p.geojsonl").read_text().splitlines()
    assert len(lines) == len(features) > 0
    assert [json.loads(line) for line in lines] == features  # same coordinates (RFC 7946 winding) and fields
    lines_frame, geojson_frame = read_back(tmp_path / "p.geojsonl"), read_back(tmp_path / "p.geojson")
    assert normalized(lines_frame) == normalized(geojson_frame)
    assert 0 not in set(lines_frame.class_id)


def test_registry_lookups_and_errors(tmp_path: Path) -> None:
    extensions = [ext for fmt in FORMATS for ext in fmt.extensions]
    assert len(extensions) == len(set(extensions)), "an extension picks one format"
    assert all(ext == ext.lower() and ext.startswith(".") for ext in extensions)
    assert format_for_path(Path("A.GeoJSONL")).driver == "GeoJSONSeq"
    assert format_named("GPKG").extensions == (".gpkg",)
    with pytest.raises(InputError, match=r"unknown extension '\.kml'; use one of .*\.geojsonl"):
        format_for_path(Path("a.kml"))
    with pytest.raises(ValueError, match="KML"):
        format_named("KML")
    assert format_named("GeoJSON").options() == {"RFC7946": "YES", "WRITE_NAME": "NO", "COORDINATE_PRECISION": 7}
    assert format_named("FlatGeobuf").options(3) == {}


def test_a_sink_takes_a_registry_entry(tmp_path: Path) -> None:
    path, _ = class_map(tmp_path, seed=7)
    table, batches = polygon_batches(path)
    counts = write_batches(batches, [PolygonSink(tmp_path / "a.geojsonl", format_named("GeoJSONSeq"), table, precision=3)])
    frame = read_back(tmp_path / "a.geojsonl")
    assert sum(counts.values()) == len(frame) > 0
    coords = json.loads((tmp_path / "a.geojsonl").read_text().splitlines()[0])["geometry"]["coordinates"][0]
    assert all(len(str(v).split(".")[-1]) <= 3 for xy in coords for v in xy)


def test_cli_help_lists_the_registry_and_writes_geojson_lines(runner, tmp_path: Path) -> None:
    help_text = run(runner, "vectorize", "--help").output
    for fmt in FORMATS:
        assert fmt.extensions[0] in help_text
    path, _ = class_map(tmp_path)
    result = run(runner, "vectorize", path, "-o", tmp_path / "p.geojsonl", "--min-area", "300")
    assert result.exit_code == 0, result.output
    assert (read_back(tmp_path / "p.geojsonl").area_m2 >= 300 - 1e-6).all()
