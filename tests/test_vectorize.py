"""Vectorize: exact round trip, areas, validity, formats, sieve, coverage simplification, styles."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize

import geoseg
from geoseg.core.errors import InputError, OutputError, RasterError
from geoseg.polygonize.regions import label_regions, sieve_regions
from tests.helpers import WGS84, run, write_raster

TABLE = [
    {"id": i, "name": n, "color": c}
    for i, (n, c) in enumerate([("water", "#1f78b4"), ("forest", "#33a02c"), ("field", "#ffd92f"), ("urban", "#e31a1c")])
]


def class_map(
    tmp_path: Path,
    name: str = "classes.tif",
    crs: str = "EPSG:32633",
    transform: Affine | None = None,
    seed: int = 0,
    shape: tuple[int, int] = (61, 83),
) -> tuple[Path, np.ndarray]:
    """Blobby classes with holes, single pixels and a nodata corner."""
    rng = np.random.default_rng(seed)
    h, w = shape
    coarse = rng.integers(0, 4, (h // 6 + 1, w // 6 + 1))
    data = np.kron(coarse, np.ones((6, 6), np.uint8))[:h, :w].astype(np.uint8)
    noise = rng.random((h, w)) < 0.03
    data[noise] = rng.integers(0, 4, noise.sum())
    data[20:30, 20:30] = 1
    data[24:26, 24:26] = 2  # a hole in a polygon
    data[:8, -10:] = 255
    transform = transform or Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0)
    path = write_raster(tmp_path / name, data, crs=crs, transform=transform, nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(GEOSEG_CLASSES=json.dumps(TABLE))
    return path, data


@pytest.mark.parametrize("ext", ["gpkg", "fgb", "shp"])
def test_polygons_rasterize_back_exactly(tmp_path: Path, ext: str) -> None:
    path, data = class_map(tmp_path)
    out = tmp_path / f"polygons.{ext}"
    result = geoseg.vectorize(path, out)
    frame = gpd.read_file(out, layer="polygons" if ext == "gpkg" else None)
    with rasterio.open(path) as ds:
        back = rasterize(
            zip(frame.geometry, frame.class_id), out_shape=data.shape, transform=ds.transform, fill=255, dtype="uint8"
        )
        assert frame.crs == ds.crs
    assert np.array_equal(back, data)
    assert result.polygons == len(frame)
    assert shapely.is_valid(frame.geometry.values).all()
    assert any(len(g.interiors) for g in frame.geometry), "holes are kept"
    assert not (frame.class_id == 255).any()
    # areas add up to the class pixel areas; names come from the class table
    for cid, group in frame.groupby("class_id"):
        assert group.area_m2.sum() == pytest.approx((data == cid).sum() * 100.0)
        assert set(group.class_name) == {TABLE[cid]["name"]}
    perimeter = "perim_m" if ext == "shp" else "perimeter_m"
    np.testing.assert_allclose(frame[perimeter], frame.geometry.length, rtol=1e-9)


def test_labels_match_gdal_regions(tmp_path: Path) -> None:
    _, data = class_map(tmp_path)
    labels, region_class = label_regions(data, data != 255)
    frame_count = len(list(rasterio.features.shapes(data, mask=data != 255, connectivity=4)))
    assert labels.max() == frame_count == len(region_class) - 1


def test_geojson_is_wgs84_with_right_hand_winding(tmp_path: Path) -> None:
    path, data = class_map(tmp_path)
    out = tmp_path / "p.geojson"
    geoseg.vectorize(path, out, precision=6)
    raw = json.loads(out.read_text())
    assert "crs" not in raw
    frame = gpd.read_file(out)
    assert frame.crs.to_epsg() == 4326
    lon, lat = frame.geometry.iloc[0].exterior.coords[0]
    assert 12 < lon < 14 and 52 < lat < 53
    for g in frame.geometry:
        assert g.exterior.is_ccw and all(not ring.is_ccw for ring in g.interiors)
    coords = raw["features"][0]["geometry"]["coordinates"][0][0]
    assert all(len(str(v).split(".")[1]) <= 6 for v in coords)


def test_geographic_class_map_areas_are_true_square_metres(tmp_path: Path) -> None:
    transform = Affine(0.0001, 0, 13.0, 0, -0.0001, 52.5)
    path, data = class_map(tmp_path, crs=WGS84, transform=transform)
    frame = gpd.read_file(geoseg.vectorize(path, tmp_path / "p.gpkg").output, layer="polygons")
    total = frame.area_m2.sum()
    expected = (data != 255).sum() * (0.0001 * 111_320 * np.cos(np.radians(52.497))) * (0.0001 * 111_250)
    assert total == pytest.approx(expected, rel=0.01)
    simplified = gpd.read_file(geoseg.vectorize(path, tmp_path / "s.gpkg", simplify=5).output, layer="polygons")
    assert simplified.area_m2.sum() == pytest.approx(expected, rel=0.01)  # holes subtracted, however they turn
    for ring_area, geometry in zip(simplified.area_m2, simplified.geometry, strict=True):
        planar = geometry.area * (0.0001 * 111_320 * np.cos(np.radians(52.497))) * (0.0001 * 111_250) / 0.0001**2
        assert ring_area == pytest.approx(planar, rel=0.02)


def test_sieve_merges_into_the_longest_border_and_keeps_nodata() -> None:
    a = np.array(
        [
            [1, 1, 1, 1, 2, 2],
            [1, 1, 1, 1, 2, 2],
            [1, 3, 3, 3, 2, 2],  # region 3 (3 px) shares 3 edges with 1 and 1 edge with 2... and 3 with 0 below
            [0, 0, 0, 0, 2, 2],
            [0, 0, 0, 0, 2, 2],
        ],
        dtype=np.uint8,
    )
    valid = np.ones(a.shape, bool)
    out = sieve_regions(a, valid, 4)
    assert (out[2, 1:4] == 1).all()  # 1 shares 4 edges (3 above + 1 left); 0 shares 3; 2 shares 1
    valid[0, 0] = False
    out = sieve_regions(np.where(valid, a, 255).astype(np.uint8), valid, 100)
    assert out[0, 0] == 255


def test_min_area_leaves_no_small_region_and_no_hole(tmp_path: Path) -> None:
    path, data = class_map(tmp_path)
    frame = gpd.read_file(geoseg.vectorize(path, tmp_path / "p.gpkg", min_area=500).output, layer="polygons")
    assert frame.area_m2.min() >= 500 - 1e-6
    union = shapely.union_all(frame.geometry.values)
    assert union.area == pytest.approx((data != 255).sum() * 100.0)


def test_coverage_simplification_keeps_shared_borders(tmp_path: Path) -> None:
    path, _ = class_map(tmp_path)
    plain = gpd.read_file(geoseg.vectorize(path, tmp_path / "a.gpkg").output, layer="polygons")
    simple = gpd.read_file(geoseg.vectorize(path, tmp_path / "b.gpkg", simplify=15).output, layer="polygons")
    assert len(simple) == len(plain)
    assert sum(len(g.exterior.coords) for g in simple.geometry) < sum(len(g.exterior.coords) for g in plain.geometry)
    assert shapely.coverage_is_valid(simple.geometry.values)  # no overlaps, no slivers between neighbours
    assert simple.geometry.is_valid.all()
    union = shapely.union_all(simple.geometry.values)
    assert union.area == pytest.approx(simple.geometry.area.sum(), rel=1e-9)  # no overlaps
    assert union.area == pytest.approx(plain.geometry.area.sum(), rel=0.02)  # no gaps opened


def test_mean_confidence_and_background(tmp_path: Path) -> None:
    path, data = class_map(tmp_path)
    conf = np.where(data == 1, 80, 40).astype(np.uint8)
    conf[data == 255] = 255
    with rasterio.open(path) as ds:
        conf_path = write_raster(tmp_path / "conf.tif", conf, transform=ds.transform, nodata=255)
    frame = gpd.read_file(
        geoseg.vectorize(path, tmp_path / "p.gpkg", confidence=conf_path, background=[0]).output, layer="polygons"
    )
    assert 0 not in set(frame.class_id)
    assert (frame[frame.class_id == 1].mean_confidence == 80).all()
    assert (frame[frame.class_id != 1].mean_confidence == 40).all()


def test_gpkg_carries_its_qgis_style(tmp_path: Path) -> None:
    path, _ = class_map(tmp_path)
    out = geoseg.vectorize(path, tmp_path / "p.gpkg").output
    with sqlite3.connect(out) as db:
        rows = db.execute("SELECT f_table_name, useAsDefault, styleQML FROM layer_styles").fetchall()
    assert len(rows) == 1 and rows[0][:2] == ("polygons", 1)
    assert 'attr="class_id"' in rows[0][2] and 'label="forest"' in rows[0][2] and "51,160,44,255" in rows[0][2]


def test_all_nodata_writes_an_empty_layer(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "empty.tif", np.full((10, 10), 255, np.uint8), nodata=255)
    for ext in ("gpkg", "geojson", "shp", "fgb"):
        result = geoseg.vectorize(path, tmp_path / f"e.{ext}")
        assert result.polygons == 0
        frame = gpd.read_file(tmp_path / f"e.{ext}", layer="polygons" if ext == "gpkg" else None)
        assert len(frame) == 0


def test_class_map_without_table_uses_ids_as_names(tmp_path: Path) -> None:
    data = np.array([[0, 0, 3], [5, 5, 3]], np.uint8)
    path = write_raster(tmp_path / "c.tif", data)
    frame = gpd.read_file(geoseg.vectorize(path, tmp_path / "p.gpkg").output, layer="polygons")
    assert sorted(frame.class_name) == ["0", "3", "5"]


def test_bad_inputs(tmp_path: Path) -> None:
    path, _ = class_map(tmp_path)
    floats = write_raster(tmp_path / "f.tif", np.zeros((5, 5), np.float32))
    with pytest.raises(RasterError, match="not class ids"):
        geoseg.vectorize(floats, tmp_path / "x.gpkg")
    with pytest.raises(InputError, match="unknown extension '.kml'"):
        geoseg.vectorize(path, tmp_path / "x.kml")
    (tmp_path / "exists.gpkg").write_text("keep")
    with pytest.raises(OutputError, match="--overwrite"):
        geoseg.vectorize(path, tmp_path / "exists.gpkg")
    (tmp_path / "old.dbf").write_text("keep")
    with pytest.raises(OutputError, match="old.dbf already exists"):
        geoseg.vectorize(path, tmp_path / "old.shp")
    other = write_raster(tmp_path / "conf.tif", np.zeros((7, 7), np.uint8))
    with pytest.raises(RasterError, match="not on the class map's grid"):
        geoseg.vectorize(path, tmp_path / "x.gpkg", confidence=other)
    assert (tmp_path / "exists.gpkg").read_text() == "keep"
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob("*partial*"))


def test_cli_vectorize(runner, tmp_path: Path) -> None:
    path, _ = class_map(tmp_path)
    result = run(runner, "vectorize", path, "-o", tmp_path / "p.fgb", "--min-area", "300", "--simplify", "5", "-v")
    assert result.exit_code == 0, result.output
    assert "polygons" in result.stderr
    result = run(runner, "vectorize", path, "-o", tmp_path / "p.txt")
    assert result.exit_code == 2 and "unknown extension" in result.stderr and "Traceback" not in result.output


HEAVY = {"torch", "segmentation_models_pytorch", "onnxruntime", "matplotlib", "dask"}


def _cli_leaves_unimported(args: list[str], modules: set[str]) -> None:
    """Run ``geoseg ARGS`` in a fresh interpreter; it succeeds and none of ``modules`` (packages or dotted modules)
    is imported."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom geoseg.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        f"unwanted = set({sorted(modules)!r}) & ({{m.split('.')[0] for m in sys.modules}} | set(sys.modules))\n"
        "assert not unwanted, unwanted\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_vectorize_does_not_need_torch(tmp_path: Path, unet_path: Path) -> None:
    path, _ = class_map(tmp_path)
    _cli_leaves_unimported(["vectorize", str(path), "-o", str(tmp_path / "p.gpkg"), "--classes", str(unet_path)], HEAVY)
    assert (tmp_path / "p.gpkg").exists()
    # geoseg info on a scene is lighter still: rasterio and numpy, no geopandas or scipy either, nor the package
    # metadata for the version (importlib.metadata: read only for --version and the records that carry it)
    _cli_leaves_unimported(["info", str(path)], HEAVY | {"geopandas", "scipy", "importlib.metadata"})


def test_classes_option_names_a_bare_class_map(runner, tmp_path: Path, unet_path: Path) -> None:
    data = np.array([[0, 0, 2], [1, 1, 2]], np.uint8)
    path = write_raster(tmp_path / "c.tif", data)
    table = tmp_path / "classes.json"
    table.write_text(json.dumps({"0": "water", "1": "forest", "2": "field"}))
    assert run(runner, "vectorize", path, "-o", tmp_path / "a.gpkg", "--classes", table).exit_code == 0
    assert sorted(gpd.read_file(tmp_path / "a.gpkg", layer="polygons").class_name) == ["field", "forest", "water"]
    assert run(runner, "vectorize", path, "-o", tmp_path / "b.gpkg", "--classes", unet_path).exit_code == 0
    assert sorted(gpd.read_file(tmp_path / "b.gpkg", layer="polygons").class_name) == ["class_0", "class_1", "class_2"]
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = run(runner, "vectorize", path, "-o", tmp_path / "c.gpkg", "--classes", bad)
    assert result.exit_code == 1 and "--classes" in result.stderr
    config = tmp_path / "train.yaml"  # classes numbered from the labels' values: only the model knows them
    config.write_text("data:\n  scenes: [{image: a.tif, labels: b.gpkg, label_field: kind}]\n  stride: 64\n")
    result = run(runner, "vectorize", path, "-o", tmp_path / "d.gpkg", "--classes", config)
    assert result.exit_code == 1 and "training config without data.classes" in result.stderr and "model.pt" in result.stderr


@pytest.mark.parametrize("rows", [1, 7, 20])
def test_strips_give_the_same_polygons_as_the_whole_raster(tmp_path: Path, rows: int) -> None:
    from geoseg.polygonize.api import polygons_frame

    path, data = class_map(tmp_path, seed=rows)
    conf = ((np.arange(data.size) % 97).reshape(data.shape)).astype(np.uint8)
    with rasterio.open(path) as ds:
        conf_path = write_raster(tmp_path / "conf.tif", conf, transform=ds.transform, nodata=255)
    whole, _ = polygons_frame(path, confidence=conf_path, strip_rows=data.shape[0])
    strips, _ = polygons_frame(path, confidence=conf_path, strip_rows=rows)
    assert len(whole) == len(strips)

    def key(frame):
        norm = [shapely.normalize(g).wkt for g in frame.geometry]
        return frame.assign(norm=norm).sort_values("norm").reset_index(drop=True)

    a, b = key(whole), key(strips)
    assert list(a.norm) == list(b.norm), "same polygons, vertex for vertex"
    for column in ("class_id", "area_m2", "perimeter_m", "mean_confidence"):
        np.testing.assert_allclose(a[column], b[column])
    sieved_whole, _ = polygons_frame(path, min_area=500, strip_rows=data.shape[0])
    sieved_strips, _ = polygons_frame(path, min_area=500, strip_rows=rows)
    assert sorted(shapely.normalize(g).wkt for g in sieved_whole.geometry) == sorted(
        shapely.normalize(g).wkt for g in sieved_strips.geometry
    )


def test_huge_maps_are_sieved_per_strip_with_a_halo(tmp_path: Path, monkeypatch) -> None:
    import geoseg.polygonize.api as vz
    import geoseg.polygonize.strips as vz_strips

    path, data = class_map(tmp_path)
    monkeypatch.setattr(vz_strips, "SIEVE_IN_MEMORY", 0)
    monkeypatch.setattr(vz_strips, "SIEVE_HALO", 8)
    frame, _ = vz.polygons_frame(path, min_area=500, strip_rows=20)
    assert shapely.is_valid(frame.geometry.values).all()
    assert frame.area_m2.sum() == pytest.approx((data != 255).sum() * 100.0)
    assert (frame.area_m2 >= 500).mean() > 0.9  # approximate only where a region crosses a strip seam


def test_polygons_stream_to_every_format_in_batches(tmp_path: Path, monkeypatch) -> None:
    """Small strips and batches: regions are handed on while strips are still being read, and each format
    holds exactly the polygons of the whole raster."""
    import geoseg.polygonize.api as vz
    import geoseg.polygonize.strips as vz_strips

    path, data = class_map(tmp_path, seed=3)
    whole, _ = vz.polygons_frame(path, strip_rows=data.shape[0])
    events: list[str] = []
    monkeypatch.setattr(vz, "BATCH_POLYGONS", 5)
    table, batches = vz.polygon_batches(path, strip_rows=4, progress=lambda stage, i, n: events.append(f"strip {i}"))
    for frame in batches:
        events.append(f"batch {len(frame)}")
    strips = [i for i, e in enumerate(events) if e.startswith("strip")]
    handed = [i for i, e in enumerate(events) if e.startswith("batch")]
    assert len(handed) > 3 and handed[0] < strips[1] and handed[-2] < strips[-1], (
        "batches leave while strips are still being read"
    )
    assert sum(int(e.split()[1]) for e in events if e.startswith("batch")) == len(whole)

    monkeypatch.setattr(vz_strips, "STRIP_PIXELS", 4 * data.shape[1])
    expected = sorted(shapely.normalize(g).wkt for g in whole.geometry)
    for name in ("p.gpkg", "p.shp", "p.fgb", "p.geojson"):
        result = vz.vectorize(path, tmp_path / name)
        frame = gpd.read_file(tmp_path / name, layer="polygons" if name.endswith(".gpkg") else None)
        assert result.polygons == len(frame) == len(whole)
        if name.endswith(".geojson"):
            assert frame.crs.to_epsg() == 4326
            frame = frame.to_crs(whole.crs)
            assert sorted(frame.area_m2) == sorted(whole.area_m2)
            assert np.allclose(sorted(frame.area), sorted(whole.area), rtol=2e-3)  # 7 decimals of a degree
        else:
            assert sorted(shapely.normalize(g).wkt for g in frame.geometry) == expected
    assert not list(tmp_path.glob(".*partial*")), "no scratch files left"


def test_a_failure_while_streaming_leaves_no_output(tmp_path: Path, monkeypatch) -> None:
    import geoseg.polygonize.api as vz
    from geoseg.io.features import PolygonSink

    path, data = class_map(tmp_path, seed=4)
    target = tmp_path / "p.gpkg"
    target.write_text("previous result")
    monkeypatch.setattr(vz, "BATCH_POLYGONS", 3)
    table, batches = vz.polygon_batches(path, strip_rows=3)

    def failing():
        for i, frame in enumerate(batches):
            if i == 2:
                raise RuntimeError("interrupted")
            yield frame

    with pytest.raises(RuntimeError):
        vz.write_batches(failing(), [PolygonSink(target, "GPKG", table)])
    assert target.read_text() == "previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["p.gpkg", path.name])


def test_a_scene_is_refused_as_a_class_map_in_one_line(runner, tmp_path: Path) -> None:
    from tests.helpers import random_scene

    scene = write_raster(tmp_path / "scene.tif", random_scene((3, 20, 20)))
    with pytest.raises(RasterError, match="scene.tif has 3 bands: it looks like a scene, not a class map.*geoseg predict"):
        geoseg.vectorize(scene, tmp_path / "x.gpkg")
    result = run(runner, "vectorize", scene, "-o", tmp_path / "p.gpkg")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1 and "3 bands" in result.stderr and "geoseg run" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_a_band_of_many_values_is_refused_and_leaves_no_output(tmp_path: Path, monkeypatch) -> None:
    from geoseg.io.features import PolygonSink
    from geoseg.polygonize import api

    band = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) + 1160  # 1600 values: reflectance, not classes
    path = write_raster(tmp_path / "band.tif", band)
    with pytest.raises(RasterError, match=r"more than 255 different values \(1160\.\.2759\).* not a class map"):
        geoseg.vectorize(path, tmp_path / "x.gpkg")
    # strips of one row, polygons written one at a time: the 256th value comes in the 7th strip, after writing began
    monkeypatch.setattr(api, "BATCH_POLYGONS", 1)
    table, batches = api.polygon_batches(path, strip_rows=1)
    written = []
    with pytest.raises(RasterError, match="more than 255"):
        api.write_batches(
            (written.append(len(b)) or b for b in batches), [PolygonSink(tmp_path / "x.shp", "ESRI Shapefile", table)]
        )
    assert written and sorted(p.name for p in tmp_path.iterdir()) == ["band.tif"]
