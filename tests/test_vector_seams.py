"""Seams of written polygons: neighbours keep their shared borders in the formats that are reprojected (GeoJSON,
GeoJSON Lines) whatever strip or batch they come in; GeoJSON Lines is split at the antimeridian as GeoJSON is and
says what an empty one is; simplified polygons never reach over nodata."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import shapes

import geoseg
import geoseg.io.features as vector_formats
import geoseg.polygonize.api as api
import geoseg.polygonize.strips as strips
from geoseg.io.features import NODED
from geoseg.polygonize.api import polygon_batches, polygons_frame
from tests.helpers import write_raster
from tests.test_vector_formats import normalized, read_back
from tests.test_vectorize import class_map


def seams(reference: np.ndarray, written: np.ndarray) -> tuple[int, int]:
    """Pairs of polygons that touch in ``reference`` and are apart (a gap) or overlap in ``written`` (same order)."""
    first, second = shapely.STRtree(reference).query(reference, predicate="intersects")
    first, second = first[first < second], second[first < second]
    gaps = shapely.distance(written[first], written[second]) > 0
    overlaps = shapely.area(shapely.intersection(written[first], written[second])) > 0
    return int(gaps.sum()), int(overlaps.sum())


@pytest.mark.parametrize(("ext", "simplify"), [(".geojson", None), (".geojsonl", None), (".geojson", 15.0)])
def test_reprojected_neighbours_keep_their_shared_borders(tmp_path: Path, monkeypatch, ext: str, simplify: float | None) -> None:
    """Long straight edges face their neighbours' corners (T-junctions); in EPSG:4326 rounded to 7 decimals an edge
    and a corner on it drift apart unless the edge has that vertex too. Strips of 16 rows and batches of 25
    polygons: a batch lacks most of its neighbours."""
    path, _ = class_map(tmp_path, seed=2, shape=(96, 130))
    monkeypatch.setattr(strips, "STRIP_PIXELS", 16 * 130)
    monkeypatch.setattr(api, "BATCH_POLYGONS", 25)
    reference, _ = polygons_frame(path, simplify=simplify)
    assert seams(reference.geometry.values, reference.geometry.values) == (0, 0)
    out = tmp_path / f"p{ext}"
    geoseg.vectorize(path, out, simplify=simplify)
    written = read_back(out)
    assert list(written.class_id) == list(reference.class_id)
    pairs = len(shapely.STRtree(reference.geometry.values).query(reference.geometry.values, predicate="intersects")[0])
    assert pairs > 500
    assert seams(reference.geometry.values, written.geometry.values) == (0, 0)
    if simplify is None:  # the other formats keep GDAL's vertices
        gpkg = read_back(geoseg.vectorize(path, tmp_path / "p.gpkg").output)
        assert normalized(gpkg) == normalized(reference)
        assert (
            shapely.get_num_coordinates(written.geometry.values).sum() > shapely.get_num_coordinates(gpkg.geometry.values).sum()
        )


@pytest.mark.parametrize("rows", [1, 5, 23])
def test_noded_polygons_are_a_coverage_in_strips_as_whole(tmp_path: Path, rows: int) -> None:
    """The noded copy (what GeoJSON gets) has a vertex wherever a neighbour's boundary meets an edge, the same
    vertices whatever the strips; without its collinear vertices it is GDAL's polygon."""
    path, data = class_map(tmp_path, seed=rows)

    def frame(strip_rows: int) -> gpd.GeoDataFrame:
        frames = list(polygon_batches(path, strip_rows=strip_rows, noded=True)[1])
        return gpd.GeoDataFrame(np.concatenate([f.values for f in frames]), columns=frames[0].columns, geometry="geometry")

    whole, cut = frame(data.shape[0]), frame(rows)
    assert sorted(shapely.normalize(whole[NODED].values).tolist(), key=str) == sorted(
        shapely.normalize(cut[NODED].values).tolist(), key=str
    )
    assert sorted(map(str, shapely.normalize(whole.geometry.values))) == sorted(map(str, shapely.normalize(cut.geometry.values)))
    assert shapely.coverage_is_valid(cut[NODED].values)
    assert not shapely.coverage_is_valid(cut.geometry.values), "GDAL's polygons are not noded: T-junctions"
    assert (shapely.get_num_coordinates(cut[NODED].values) >= shapely.get_num_coordinates(cut.geometry.values)).all()
    assert NODED not in polygons_frame(path)[0].columns


@pytest.mark.parametrize("layout", ["one feature a line", "another"])
def test_geojson_lines_are_split_at_the_antimeridian_as_geojson_is(tmp_path: Path, monkeypatch, layout: str) -> None:
    """RFC 7946 §3.1.9: a UTM zone 60 map reaching past 180° gives polygons cut in two, not ones around the globe.
    GeoJSON Lines are GeoJSON's feature lines; were GDAL's GeoJSON laid out otherwise, GDAL converts it."""
    if layout == "another":
        monkeypatch.setattr(vector_formats, "GEOJSON_FEATURE", "no line begins so")
    data = np.zeros((20, 80), np.uint8)
    data[:, 40:] = 1
    data[5:10, 10:70] = 2
    path = write_raster(
        tmp_path / "c.tif", data, crs="EPSG:32660", transform=Affine(1000.0, 0, 800000.0, 0, -1000.0, 20000.0), nodata=255
    )
    geoseg.vectorize(path, tmp_path / "p.geojson")
    geoseg.vectorize(path, tmp_path / "p.geojsonl")
    geoseg.vectorize(path, tmp_path / "p.geojsons")  # RFC 8142: each feature after an RS character
    assert (tmp_path / "p.geojsons").read_text().replace("\x1e", "") == (tmp_path / "p.geojsonl").read_text()
    assert (tmp_path / "p.geojsons").read_text().count("\x1e") == 3
    features = json.loads((tmp_path / "p.geojson").read_text())["features"]
    assert [json.loads(line) for line in (tmp_path / "p.geojsonl").read_text().splitlines()] == features
    frame = read_back(tmp_path / "p.geojsonl")
    assert (frame.geometry.geom_type == "MultiPolygon").sum() == 2
    parts = frame.geometry.explode(index_parts=False)
    assert ((parts.bounds.maxx - parts.bounds.minx) < 1).all(), "no part spans the globe"
    np.testing.assert_allclose(sorted(frame.to_crs("EPSG:32660").area), [3e8, 6.5e8, 6.5e8], rtol=1e-4)  # whole again


def test_an_empty_geojson_lines_file_is_what_gdal_writes_and_is_warned(tmp_path: Path, caplog) -> None:
    """No polygons: a GeoJSON Sequence of no features is 0 bytes (RFC 8142), as GDAL's own driver writes it; GDAL
    cannot open such a file, so the one warning line says so."""
    path = write_raster(tmp_path / "empty.tif", np.full((10, 10), 255, np.uint8), nodata=255)
    gdal = tmp_path / "gdal.geojsonl"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"class_id": []}, geometry=[], crs="EPSG:4326"), gdal, driver="GeoJSONSeq")
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        result = geoseg.vectorize(path, tmp_path / "p.geojsonl")
    assert result.polygons == 0
    assert (tmp_path / "p.geojsonl").read_bytes() == gdal.read_bytes() == b""
    lines = [r.getMessage() for r in caplog.records if "no polygons" in r.getMessage()]
    assert len(lines) == 1 and "0 bytes" in lines[0] and "RFC 8142" in lines[0] and "cannot open" in lines[0], lines


def test_simplified_polygons_never_cover_nodata(tmp_path: Path) -> None:
    """Nodata (here a corner, small gaps and a one-pixel line) stays outside the simplified coverage, whose
    boundary is kept as traced; the classes still cover every valid pixel, without gaps or overlaps."""
    path, data = class_map(tmp_path, shape=(90, 120))
    for rows, cols in ((slice(40, 42), slice(50, 53)), (slice(60, 65), slice(10, 15)), (slice(5, 80), slice(90, 91))):
        data[rows, cols] = 255
    with rasterio.open(path, "r+") as ds:
        ds.write(data, 1)
        transform = ds.transform
    nodata = shapely.union_all([shapely.geometry.shape(g) for g, _ in shapes(data, mask=data == 255, transform=transform)])
    frame = read_back(geoseg.vectorize(path, tmp_path / "p.gpkg", simplify=40).output)
    assert shapely.area(shapely.intersection(frame.geometry.values, nodata)).sum() < 1e-6
    assert shapely.coverage_is_valid(frame.geometry.values)
    assert shapely.union_all(frame.geometry.values).area == pytest.approx((data != 255).sum() * 100.0, rel=1e-9)
    plain = read_back(geoseg.vectorize(path, tmp_path / "plain.gpkg").output)
    assert shapely.get_num_coordinates(frame.geometry.values).sum() < shapely.get_num_coordinates(plain.geometry.values).sum()


def test_background_is_simplified_with_its_neighbours_and_left_out(tmp_path: Path) -> None:
    """--background with --simplify gives the polygons of the whole coverage simplified, less the background's:
    their borders with it are simplified as shared edges, and they never reach over it more than over a neighbour."""
    path, _ = class_map(tmp_path, seed=9)
    every = read_back(geoseg.vectorize(path, tmp_path / "all.gpkg", simplify=25).output)
    without = read_back(geoseg.vectorize(path, tmp_path / "without.gpkg", simplify=25, background=[0]).output)
    assert 0 not in set(without.class_id)
    assert normalized(without) == normalized(every[every.class_id != 0])
