"""Vector formats come from one registry (geoseg.io.features.FORMATS): every entry writes and reads back the
polygons of the whole raster; GeoJSON Lines was added as one entry. A Shapefile's set of files includes its
spatial indexes. What names the classes (--classes), leaves some out (--background), and class maps of
wider integer types."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
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
    # 3 decimals (about 100 m) collapse some 10 m polygons to points or lines, as in GeoJSON: every number is rounded
    numbers = re.findall(
        r"-?\d+\.\d+", "".join(line.split('"coordinates"')[1] for line in (tmp_path / "a.geojsonl").read_text().splitlines())
    )
    assert numbers and all(len(v.split(".")[1]) <= 3 for v in numbers)


def test_cli_help_lists_the_registry_and_writes_geojson_lines(runner, tmp_path: Path) -> None:
    help_text = run(runner, "vectorize", "--help").output
    for fmt in FORMATS:
        assert fmt.extensions[0] in help_text
    path, _ = class_map(tmp_path)
    result = run(runner, "vectorize", path, "-o", tmp_path / "p.geojsonl", "--min-area", "300")
    assert result.exit_code == 0, result.output
    assert (read_back(tmp_path / "p.geojsonl").area_m2 >= 300 - 1e-6).all()


def test_overwriting_a_shapefile_replaces_its_spatial_indexes(runner, tmp_path: Path) -> None:
    path, _ = class_map(tmp_path, seed=8)
    out = tmp_path / "out"
    out.mkdir()
    (out / "fresh.qix").write_text("idx")  # an index left beside a Shapefile that is not there (any more)
    result = run(runner, "vectorize", path, "-o", out / "fresh.shp")
    assert result.exit_code == 1 and "fresh.qix already exists: use --overwrite" in result.stderr
    assert run(runner, "vectorize", path, "-o", out / "p.shp").exit_code == 0
    polygons = len(read_back(out / "p.shp"))
    for suffix in (".qix", ".sbn", ".sbx"):
        (out / f"p{suffix}").write_text("stale index")
    (out / "p.sbn").unlink()
    (out / "p.sbn").mkdir()  # never replaced: only regular files are
    result = run(runner, "vectorize", path, "-o", out / "p.shp", "--overwrite")
    assert result.exit_code == 1 and "p.sbn is a folder" in result.stderr
    assert (out / "p.qix").read_text() == "stale index" and len(read_back(out / "p.shp")) == polygons
    (out / "p.sbn").rmdir()
    result = run(runner, "vectorize", path, "-o", out / "p.shp", "--overwrite", "--background", "0")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "fresh.qix",
        *(f"p{s}" for s in (".cpg", ".dbf", ".prj", ".qml", ".shp", ".shx")),
    ]
    frame = read_back(out / "p.shp")
    assert 0 < len(frame) < polygons and 0 not in set(frame.class_id)
    minx, miny, maxx, maxy = frame.total_bounds  # a spatial filter sees every feature (no stale index)
    assert len(pyogrio.read_dataframe(out / "p.shp", bbox=(minx, miny, maxx, maxy))) == len(frame)


def test_a_geopackage_open_in_another_program_is_not_replaced(runner, tmp_path: Path) -> None:
    """SQLite's journal beside a GeoPackage (QGIS has it open) would be applied to the new file: refused, kept."""
    path, _ = class_map(tmp_path, seed=8)
    out = tmp_path / "p.gpkg"
    assert run(runner, "vectorize", path, "-o", out).exit_code == 0
    before = out.read_bytes()
    (tmp_path / "p.gpkg-wal").write_bytes(b"frames")
    result = run(runner, "vectorize", path, "-o", out, "--overwrite")
    assert result.exit_code == 1 and "p.gpkg-wal beside it" in result.stderr and "close it" in result.stderr
    assert out.read_bytes() == before and (tmp_path / "p.gpkg-wal").read_bytes() == b"frames"
    (tmp_path / "p.gpkg-wal").unlink()
    assert run(runner, "vectorize", path, "-o", out, "--overwrite").exit_code == 0


CONFIG = """name: t
model: {arch: unet, encoder: resnet18, chip_size: 64}
data:
  scenes: [{image: s.tif, labels: m.tif}]
  classes:
    - {name: forest, values: [1]}
    - {name: open land, values: [2, 3], color: "#e8c95c"}
    - wet
  background: {name: other, within: scene}
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("config.yaml", CONFIG),
        ("classes.json", json.dumps({"classes": ["forest", {"name": "open land", "color": "#e8c95c"}, "wet", "other"]})),
        ("classes.yml", "0: forest\n1: open land\n2: wet\n3: other\n"),
    ],
)
def test_classes_takes_what_evaluate_takes(runner, tmp_path: Path, name: str, text: str) -> None:
    data = np.repeat(np.repeat(np.array([[0, 1], [2, 3]], np.uint8), 6, axis=0), 6, axis=1)
    path = write_raster(tmp_path / "bare.tif", data)  # no class table of its own
    (tmp_path / name).write_text(text)
    result = run(runner, "vectorize", path, "-o", tmp_path / "p.gpkg", "--classes", tmp_path / name)
    assert result.exit_code == 0, result.output
    frame = read_back(tmp_path / "p.gpkg").sort_values("class_id")
    assert list(frame.class_name) == ["forest", "open land", "wet", "other"]  # config: data.classes, then background
    with contextlib.closing(sqlite3.connect(tmp_path / "p.gpkg")) as db:
        style = db.execute("SELECT styleQML FROM layer_styles").fetchone()[0]
    assert ("232,201,92,255" in style) == ("#e8c95c" in text)  # a colour the file gives is the polygons' colour


def test_classes_names_what_it_takes_when_given_something_else(runner, tmp_path: Path) -> None:
    path = write_raster(tmp_path / "bare.tif", np.zeros((4, 4), np.uint8))
    (tmp_path / "notes.txt").write_text("forest, water")
    result = run(runner, "vectorize", path, "-o", tmp_path / "p.gpkg", "--classes", tmp_path / "notes.txt")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "notes.txt is neither a geoseg model nor a class table" in result.stderr
    assert "training config" in result.stderr and "pickled" not in result.stderr
    (tmp_path / "bad.yaml").write_text("data:\n  classes: [forest, {color: '#ffffff'}]\n")
    result = run(runner, "vectorize", path, "-o", tmp_path / "p.gpkg", "--classes", tmp_path / "bad.yaml")
    assert result.exit_code == 1 and "bad.yaml" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "p.gpkg").exists()


def test_background_missing_from_map_and_table_is_warned(tmp_path: Path, caplog) -> None:
    path, data = class_map(tmp_path)  # classes 0..3 in its table, all present
    bare = write_raster(tmp_path / "bare.tif", np.array([[0, 0, 6], [1, 1, 6]], np.uint8))  # no class table
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        frame = gpd.read_file(geoseg.vectorize(path, tmp_path / "a.gpkg", background=[99, 3]).output, layer="polygons")
        geoseg.vectorize(bare, tmp_path / "b.gpkg", background=[6])  # a value of the map: taken silently
        geoseg.vectorize(bare, tmp_path / "c.gpkg", background=[7])
    assert 3 not in set(frame.class_id) and set(frame.class_id) == {0, 1, 2}
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 2, lines
    assert lines[0].startswith("--background 99: not a class id of") and "its classes are 0..3" in lines[0]
    assert lines[1].startswith("--background 7: not a class id of") and "it has no class table" in lines[1]


@pytest.mark.parametrize(
    ("values", "warned"),
    [(list(range(21)), False), ([100, 200], False), ([300, 1000, 65000], True)],
    ids=["ids 0..20", "ids 100 and 200", "ids beyond 255"],
)
def test_wide_integer_class_maps_are_taken(tmp_path: Path, caplog, values: list[int], warned: bool) -> None:
    ids = np.array(values)
    data = np.resize(np.repeat(ids, 7), (30, 40)).astype(np.uint16)
    path = write_raster(tmp_path / "c.tif", data, nodata=65535)
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        frame = gpd.read_file(geoseg.vectorize(path, tmp_path / "p.gpkg").output, layer="polygons")
    assert set(frame.class_id) == set(ids.tolist())
    lines = [r for r in caplog.records if "not ids of a geoseg class map" in r.getMessage()]
    assert len(lines) == (1 if warned else 0)
    if warned:
        assert "300, 1000, 65000" in lines[0].getMessage() and "geoseg predict" in lines[0].getMessage()
        assert "name them with --classes" in lines[0].getMessage()
        table = tmp_path / "classes.json"  # naming them silences the warning: they are classes
        table.write_text(json.dumps({str(v): f"class {v}" for v in values}))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="geoseg"):
            result = geoseg.vectorize(path, tmp_path / "named.gpkg", classes_table=table)
        assert not [r for r in caplog.records if "not ids of a geoseg class map" in r.getMessage()]
        assert set(gpd.read_file(result.output, layer="polygons").class_name) == {f"class {v}" for v in values}
        eight = write_raster(tmp_path / "c8.tif", np.zeros((30, 40), np.uint8))  # an 8-bit map's ids end at 254
        with pytest.raises(InputError, match="from 0 to 254"):  # an 8-bit map's ids
            geoseg.vectorize(eight, tmp_path / "eight.gpkg", classes_table=table)


def test_class_names_are_text_even_where_no_polygon_was_found(tmp_path: Path) -> None:
    """An all-nodata map gives an empty layer whose class_name is still a text field: a batch's merge of such a
    scene's polygons with another's keeps the names (a number field turned every name into 0.0)."""
    path, data = class_map(tmp_path, seed=3)
    empty = write_raster(tmp_path / "empty.tif", np.full_like(data, 255), nodata=255)
    with rasterio.open(path) as ds, rasterio.open(empty, "r+") as out:
        out.update_tags(**ds.tags())
    for suffix in (".gpkg", ".shp"):
        result = geoseg.vectorize(empty, tmp_path / f"nothing{suffix}")
        info = pyogrio.read_info(result.output, layer=0)
        fields = dict(zip(info["fields"], info["dtypes"], strict=True))
        assert fields["class_name"] == "object", fields
    nothing, table = polygons_frame(empty)
    found, _ = polygons_frame(path)
    merged = tmp_path / "merged.gpkg"
    write_batches([nothing, found], [PolygonSink(merged, "GPKG", table)])
    assert read_back(merged).class_name.tolist() == found.class_name.tolist()


def test_a_format_without_styles_gets_its_qml_beside_it(tmp_path: Path) -> None:
    """polygons.shp gets polygons.qml (QGIS loads it); the same style already there is kept, another is refused
    without --overwrite, and a style QGIS would also load for the class map (classes.qml) is not written."""
    from geoseg.core.errors import OutputError

    path, _ = class_map(tmp_path, seed=4)
    shp = geoseg.vectorize(path, tmp_path / "polygons.shp")
    assert shp.style == tmp_path / "polygons.qml" and "categorizedSymbol" in shp.style.read_text()
    assert geoseg.vectorize(path, tmp_path / "polygons.geojson").style == shp.style  # the same style: kept
    assert geoseg.vectorize(path, tmp_path / "polygons.gpkg").style is None  # stored inside
    shp.style.write_text("<qgis>mine</qgis>")
    with pytest.raises(OutputError, match="polygons.qml already exists: use --overwrite"):
        geoseg.vectorize(path, tmp_path / "polygons.fgb")
    assert not (tmp_path / "polygons.fgb").exists() and shp.style.read_text() == "<qgis>mine</qgis>"
    same = geoseg.vectorize(path, tmp_path / "classes.shp")  # classes.qml would style classes.tif too: not written
    assert same.style is None and (tmp_path / "classes.shp").exists() and not (tmp_path / "classes.qml").exists()


def test_ids_the_class_table_lacks_are_warned(tmp_path: Path, caplog) -> None:
    """A 4-class table for a map of ids 0..7: polygons of 4..7 are named by their id, and one warning says so."""
    data = np.resize(np.repeat(np.arange(8, dtype=np.uint8), 5), (20, 40))
    path = write_raster(tmp_path / "c.tif", data, nodata=255)
    table = tmp_path / "four.json"
    table.write_text(json.dumps({str(i): name for i, name in enumerate(["water", "forest", "farm", "town"])}))
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        frame = polygons_frame(path, classes_table=table)[0]
    lines = [r.getMessage() for r in caplog.records if "does not name" in r.getMessage()]
    assert len(lines) == 1 and "class ids 4..7" in lines[0] and "(0..3)" in lines[0]
    assert {"water", "town", "4", "7"} <= set(frame.class_name)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        polygons_frame(write_raster(tmp_path / "d.tif", data % 4, nodata=255), classes_table=table)
    assert not [r for r in caplog.records if "does not name" in r.getMessage()]


def test_missing_inputs_of_vectorize_are_named_by_their_role(tmp_path: Path) -> None:
    from geoseg.core.errors import InputError

    path, _ = class_map(tmp_path, seed=5)
    with pytest.raises(InputError, match=r"class map .*nope.tif does not exist"):
        geoseg.vectorize(tmp_path / "nope.tif", tmp_path / "p.gpkg")
    with pytest.raises(InputError, match=r"--confidence .*conf.tif does not exist"):
        geoseg.vectorize(path, tmp_path / "p.gpkg", confidence=tmp_path / "conf.tif")
    assert not (tmp_path / "p.gpkg").exists()


def test_an_upper_case_shapefile_name_is_written_as_given(runner, tmp_path: Path) -> None:
    path, _ = class_map(tmp_path, seed=8)
    for _ in range(2):  # new, then replaced
        result = run(runner, "vectorize", path, "-o", tmp_path / "UTM.SHP", "--overwrite")
        assert result.exit_code == 0, result.stderr
        assert "UTM.SHP" in {p.name for p in tmp_path.iterdir()} and len(read_back(tmp_path / "UTM.SHP")) > 0


def test_a_geojson_precision_coarser_than_the_pixels_is_warned(runner, tmp_path: Path) -> None:
    path, _ = class_map(tmp_path, seed=8)  # 10 m pixels
    coarse = run(runner, "vectorize", path, "-o", tmp_path / "a.geojson", "--precision", "4")
    assert coarse.exit_code == 0 and "--precision 4 rounds coordinates to about 11.1 m" in coarse.stderr
    assert "give --precision 5 or more" in coarse.stderr
    fine = run(runner, "vectorize", path, "-o", tmp_path / "b.geojson", "--precision", "6")
    assert fine.exit_code == 0 and "--precision" not in fine.stderr


def test_a_killed_writers_scratch_file_is_removed_by_the_next_writer(tmp_path: Path) -> None:
    """A polygon file's scratch GeoPackage left by a killed process (a batch killed while merging) no longer stays."""
    from geoseg.core.classes import ClassInfo
    from geoseg.io.features import PolygonSink, format_for_path

    out = tmp_path / "polygons.gpkg"
    left = tmp_path / ".polygons.999999999.abcdef12.partial.gpkg"  # no such process
    left.write_bytes(b"half a GeoPackage")
    sink = PolygonSink(out, format_for_path(out), [ClassInfo(0, "water", "#0000ff")])
    with pytest.raises(RuntimeError), sink:
        assert not left.exists()  # removed as the writer starts
        raise RuntimeError("stopped before any batch")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
