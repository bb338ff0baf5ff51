"""Lines and points as labels (per-class ``buffer`` in metres, ``geoseg tile --buffer``) and a background class
from the labelled area (``data.background``): pixel counts against hand-computed distances, the one-line
refusals through the CLI, and a binary road model trained from road centre lines on a SpaceNet-style sample."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.errors import InputError, VectorError
from geoseg.core.labels import Background, LabelMap
from geoseg.io.label_files import SceneGrid, open_labels
from tests.helpers import SAMPLE, UTM33, WGS84, run, write_raster
from tests.test_trust import geoseg as geoseg_cli
from tests.test_trust import refused

X0, Y0 = 330000.0, 5822040.0
UTM_GRID = SceneGrid(CRS.from_string(UTM33), Affine(10.0, 0, X0, 0, -10.0, Y0), 60, 50)
# the same ground in EPSG:4326 (lon 12.49-12.51, lat 52.517-52.522): pixels of about 6.8 m x 5.6 m
WGS_GRID = SceneGrid(CRS.from_string(WGS84), Affine(0.0001, 0, 12.4940, 0, -0.00005, 52.5220), 120, 100)


def _write(path: Path, values: list, geoms: list, crs: str = UTM33, field: str = "kind") -> Path:
    import geopandas as gpd

    gpd.GeoDataFrame({field: values}, geometry=geoms, crs=crs).to_file(path)
    return path


def _centres(grid: SceneGrid, to: str) -> np.ndarray:
    """Pixel centres of ``grid`` as shapely points in the CRS ``to``."""
    from pyproj import Transformer

    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    xs, ys = grid.transform * (cols + 0.5, rows + 0.5)
    xs, ys = Transformer.from_crs(grid.crs.to_wkt(), to, always_xy=True).transform(xs, ys)
    return shapely.points(xs, ys)


def _within(grid: SceneGrid, geom: shapely.Geometry, metres: float) -> int:
    """How many pixel centres lie within ``metres`` of ``geom`` (a geometry in UTM 33N): the expected count."""
    return int((shapely.distance(_centres(grid, UTM33), geom) <= metres).sum())


def _in_utm(geom: shapely.Geometry, crs: CRS) -> shapely.Geometry:
    import geopandas as gpd

    return gpd.GeoSeries([geom], crs=crs.to_wkt()).to_crs(UTM33).iloc[0]


def _in_crs(geom: shapely.Geometry, crs: str) -> shapely.Geometry:
    """A geometry in UTM 33N reprojected to ``crs``."""
    import geopandas as gpd

    return gpd.GeoSeries([geom], crs=UTM33).to_crs(crs).iloc[0]


def _mask(labels: object, grid: SceneGrid) -> np.ndarray:
    return labels.read(Window(0, 0, grid.width, grid.height))  # type: ignore[attr-defined]


# A 400 m road drawn diagonally and a tree, in UTM 33N; pixel centres are never within 0.3 m of a buffer's edge.
ROAD = shapely.LineString([(X0 + 62.0, Y0 - 83.0), (X0 + 331.0, Y0 - 379.0)])
TREE = shapely.Point(X0 + 453.0, Y0 - 148.0)
TOP = shapely.LineString([(X0, Y0 - 5), (X0 + 590, Y0 - 5)])  # through the centres of row 0: a 15 m buffer is rows 0-1


@pytest.mark.parametrize("grid", [UTM_GRID, WGS_GRID], ids=["utm", "epsg4326"])
def test_buffered_lines_and_points_burn_the_pixels_within_that_many_metres(tmp_path: Path, grid: SceneGrid) -> None:
    """A 15 m buffer (a 30 m-wide corridor) and a 25 m disc cover exactly the pixels whose centres lie that close,
    counted in metres on the ground, in a projected scene and in a geographic one (labels given in the other CRS)."""
    crs = WGS84 if grid is UTM_GRID else UTM33
    labels = _write(tmp_path / "l.gpkg", ["road", "tree"], [ROAD, TREE])
    if crs == WGS84:
        import geopandas as gpd

        gpd.read_file(labels).to_crs(WGS84).to_file(tmp_path / "l84.gpkg")
        labels = tmp_path / "l84.gpkg"
    table = LabelMap.from_spec([{"name": "road", "buffer": 15}, {"name": "tree", "buffer": 25}])
    mask = _mask(open_labels(labels, grid, "kind", table), grid)
    road, tree = _within(grid, ROAD, 15.0), _within(grid, TREE, 25.0)
    print(f"{grid.crs}: road {int((mask == 0).sum())} px (expected {road}), tree {int((mask == 1).sum())} px (expected {tree})")
    assert (mask == 0).sum() == road and (mask == 1).sum() == tree
    pixel_m2 = float(_in_utm(shapely.box(*grid.bounds), grid.crs).area) / (grid.width * grid.height)
    assert road * pixel_m2 == pytest.approx(30.0 * ROAD.length + np.pi * 15.0**2, rel=0.1)  # corridor + round caps
    assert ((mask == IGNORE_INDEX).sum() + road + tree) == grid.width * grid.height


def test_buffer_is_in_metres_in_a_feet_crs() -> None:
    from geoseg.io.vector import buffer_metres

    feet = CRS.from_epsg(2263)  # NAD83 / New York Long Island, US survey feet
    disc = buffer_metres([shapely.Point(1_000_000.0, 200_000.0)], feet, 10.0)[0]
    assert shapely.area(disc) * 0.3048006096**2 == pytest.approx(np.pi * 100.0, rel=0.01)


def test_mixed_file_keeps_polygons_and_says_how_many_lines_and_points_it_left_out(tmp_path: Path, caplog) -> None:
    field = shapely.box(X0 + 300, Y0 - 400, X0 + 500, Y0 - 200)  # cols 30..49, rows 20..39: 400 px
    path = _write(
        tmp_path / "mixed.gpkg",
        ["field", "road", "road", "tree"],
        [field, ROAD, shapely.LineString([(X0, Y0 - 5), (X0 + 200, Y0 - 5)]), TREE],
    )
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        labels = open_labels(path, UTM_GRID, "kind")
    assert labels.label_map.names == ["field"]  # classes come from what becomes labels
    assert (_mask(labels, UTM_GRID) == 0).sum() == 400
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 lines and 1 point without a buffer left out" in warnings[0], warnings
    assert "buffer: METRES" in warnings[0] and "--buffer METRES" in warnings[0]
    # one class with a buffer, another without: only the unbuffered one is left out
    table = LabelMap.from_spec(["field", {"name": "road", "buffer": 15}, "tree"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        mask = _mask(open_labels(path, UTM_GRID, "kind", table), UTM_GRID)
    assert [r.getMessage() for r in caplog.records if "left out" in r.getMessage()][0].count("1 point") == 1
    assert (mask == 1).sum() > 0 and (mask == 2).sum() == 0 and (mask == 0).sum() < 400  # the road crosses the field
    # the same file with a buffer for every class (geoseg tile --buffer): nothing left out
    labels = open_labels(path, UTM_GRID, "kind", buffer=25.0)
    assert labels.label_map.names == ["field", "road", "tree"]
    assert (_mask(labels, UTM_GRID) == 2).sum() == _within(UTM_GRID, TREE, 25.0)


def test_lines_and_points_without_a_buffer_are_one_error_that_counts_them(tmp_path: Path) -> None:
    path = _write(tmp_path / "roads.gpkg", ["a"] * 3 + ["b"] * 2, [ROAD] * 3 + [TREE] * 2, field="highway")
    with pytest.raises(VectorError) as err:
        open_labels(path, UTM_GRID, "highway")
    message = str(err.value)
    assert "hold 3 lines and 2 points with a 'highway' value and no polygons" in message
    assert "buffer: METRES on their class in data.classes" in message and "--buffer METRES for geoseg tile" in message


def test_background_fills_the_unlabelled_pixels_of_its_area_under_the_labels(tmp_path: Path) -> None:
    field = shapely.box(X0 + 100, Y0 - 200, X0 + 200, Y0 - 100)  # cols 10..19, rows 10..19
    scrub = shapely.box(X0 + 300, Y0 - 300, X0 + 350, Y0 - 250)  # an ignored value: stays unlabelled
    path = _write(tmp_path / "l.gpkg", ["field", "scrub"], [field, scrub])
    counts = {}
    for within in ("labels", "scene", "area"):
        if within == "area":
            area = _write(tmp_path / "area.geojson", ["x"], [_in_crs(shapely.box(X0, Y0 - 100, X0 + 600, Y0), WGS84)], WGS84)
            within = str(area)
        bg = Background("other", within)
        table = LabelMap.from_spec(["field"], ignore=["scrub"], background=bg)
        mask = _mask(open_labels(path, UTM_GRID, "kind", table, ("scrub",), background=bg), UTM_GRID)
        assert table.names == ["field", "other"] and (mask == 0).sum() == 100
        assert (mask[25:30, 30:35] == IGNORE_INDEX).all()  # the ignored polygon is not background
        counts[within] = int((mask == 1).sum())
    assert counts["labels"] == 25 * 20 - 100 - 25  # cols 10..34, rows 10..29: the labels' extent
    assert counts["scene"] == 60 * 50 - 100 - 25
    assert counts[str(tmp_path / "area.geojson")] == 60 * 10  # rows 0..9: outside the labels
    # a mask raster keeps its own unlabelled value
    write_raster(tmp_path / "mask.tif", np.where(np.arange(60)[None, :] < 30, 1, 0).repeat(50, 0).astype("uint8"), nodata=0)
    bg = Background("other")
    table = LabelMap.from_spec([{"name": "a", "values": [1]}], background=bg)
    mask = _mask(open_labels(tmp_path / "mask.tif", UTM_GRID, None, table, background=bg), UTM_GRID)
    assert (mask == 0).sum() == 30 * 50 and (mask == IGNORE_INDEX).sum() == 30 * 50


def test_tile_buffer_turns_lines_into_corridor_masks(tmp_path: Path, runner) -> None:
    image = write_raster(tmp_path / "s.tif", np.ones((2, 50, 60), "uint16"))
    roads = _write(tmp_path / "roads.gpkg", ["road"], [ROAD], field="highway")
    result = run(runner, "tile", image, "-o", tmp_path / "c", "--labels", roads, "--label-field", "highway", "--chip-size", 64)
    assert result.exit_code == 1 and "hold 1 line with a 'highway' value and no polygons" in result.stderr
    assert not (tmp_path / "c").exists()
    args = ["tile", image, "-o", tmp_path / "c", "--labels", roads, "--label-field", "highway", "--chip-size", 64]
    result = run(runner, *args, "--buffer", 15)
    assert result.exit_code == 0, result.output
    assert [c["name"] for c in json.loads((tmp_path / "c" / "classes.json").read_text())] == ["road"]
    assert json.loads((tmp_path / "c" / "tile.json").read_text())["buffer"] == 15.0
    (chip,) = sorted((tmp_path / "c" / "masks").iterdir())
    with rasterio.open(chip) as ds:
        assert (ds.read(1) == 0).sum() == _within(UTM_GRID, ROAD, 15.0)
    result = run(runner, *args[:3], tmp_path / "d", *args[4:], "--buffer", -5)
    assert result.exit_code == 2 and "--buffer -5 is not a positive distance in metres" in result.stderr  # a usage error
    assert not (tmp_path / "d").exists()


def _config(tmp: Path, **data: object) -> Path:
    import yaml

    image = write_raster(tmp / "scene.tif", np.ones((2, 50, 60), "uint16") * 1000, descriptions=["B04", "B08"])
    roads = _write(tmp / "roads.gpkg", ["road", "road"], [ROAD, TOP])
    cfg = {
        "model": {"chip_size": 32, "params": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}},
        "data": {"scenes": [{"image": str(image), "labels": str(roads), "label_field": "kind"}], "stride": 8}
        | {"classes": [{"name": "road", "buffer": 15}], "background": {"name": "background"}}
        | data,
        "train": {"epochs": 1, "samples_per_epoch": 2, "batch_size": 2, "threads": 1},
    }
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


BAD_CONFIGS = [
    ({"background": None}, ["only one class (road)", "add data.background: {name: background}"]),
    ({"classes": [{"name": "road"}]}, ["hold 2 lines with a 'kind' value and no polygons", "buffer: METRES"]),
    ({"classes": [{"name": "road", "buffer": -5}]}, ["data.classes[0].buffer", "got -5", "positive distance in metres"]),
    ({"background": {"name": "road"}}, ["data.background.name: 'road' is already a class", "another name"]),
    ({"background": {"name": "bg", "within": "missing.gpkg"}}, ["data.background.within: 'missing.gpkg'", "vector file"]),
    ({"background": {"name": "bg", "within": "far.geojson"}}, ["data.background.within", "do not overlap the scene"]),
]


@pytest.mark.parametrize(("change", "words"), BAD_CONFIGS, ids=["one-class", "no-buffer", "negative", "taken", "missing", "far"])
def test_bad_line_and_background_configs_are_one_line(tmp_path: Path, change: dict, words: list[str]) -> None:
    _write(tmp_path / "far.geojson", ["x"], [shapely.box(0, 0, 100, 100)])
    result = geoseg_cli("train", _config(tmp_path, **change), "-o", tmp_path / "run", cwd=tmp_path)
    print(refused(result, *words))
    assert not (tmp_path / "run").exists()


def test_background_config_gives_a_class_table_with_background_last(tmp_path: Path) -> None:
    from geoseg.training.config import read_config
    from geoseg.training.prepare import open_scenes

    config = read_config(_config(tmp_path))
    assert config.data.background == Background("background", "labels", None)
    scenes, bands, table, pixel = open_scenes(config, None, tmp_path)
    try:
        assert table.names == ["road", "background"] and table.background == 1 and bands == ["B04", "B08"]
        counts = scenes[0].class_counts.sum((0, 1))
        assert counts[0] == _within(UTM_GRID, ROAD, 15.0) + 60 * 2  # the diagonal road and the top one
        extent = shapely.box(*shapely.union(shapely.buffer(ROAD, 15.0), shapely.buffer(TOP, 15.0)).bounds)
        assert counts.sum() == shapely.contains(extent, _centres(UTM_GRID, UTM33)).sum()  # road or background
    finally:
        for scene in scenes:
            scene.close()


def road_sample(tmp: Path, size: int = 256, seed: int = 0) -> tuple[Path, Path, np.ndarray]:
    """A SpaceNet-style sample: bright roads 30 m wide drawn over a crop of the bundled Sentinel-2 scene (its texture),
    their centre lines in a GeoPackage (EPSG:4326, field ``highway``), and the true road mask."""
    import geopandas as gpd
    from rasterio.features import rasterize

    with rasterio.open(SAMPLE) as ds:
        window = Window(64, 64, size, size)
        data = ds.read([1, 2, 3, 4], window=window).astype(np.float64)
        transform = ds.window_transform(window)
    rng = np.random.default_rng(seed)
    x0, y0, ext = transform.c, transform.f, size * 10.0
    lines = []
    for i in range(6):
        a, b = rng.uniform(0.1, 0.9, 2) * ext
        if i % 2 == 0:  # west to east with a bend
            bend = (x0 + ext / 2, y0 - (a + b) / 2 + rng.uniform(-200, 200))
            lines.append(shapely.LineString([(x0, y0 - a), bend, (x0 + ext, y0 - b)]))
        else:  # north to south
            lines.append(shapely.LineString([(x0 + a, y0), (x0 + b, y0 - ext)]))
    road = rasterize([(shapely.buffer(line, 15.0), 1) for line in lines], out_shape=(size, size), transform=transform)
    spectrum = np.array([1900.0, 1800.0, 1900.0, 1700.0])
    pixels = np.where(road[None] == 1, spectrum[:, None, None] + rng.normal(0, 120, (4, size, size)), data)
    image = write_raster(
        tmp / "roads_scene.tif",
        pixels.clip(0, 65535).astype("uint16"),
        transform=transform,
        descriptions=["B02", "B03", "B04", "B08"],
    )
    frame = gpd.GeoDataFrame({"highway": ["residential"] * len(lines)}, geometry=lines, crs=UTM33).to_crs(WGS84)
    frame.to_file(tmp / "roads.gpkg")
    return image, tmp / "roads.gpkg", road.astype(bool)


@pytest.mark.slow
def test_binary_road_model_trains_from_road_lines_and_finds_the_roads(tmp_path: Path) -> None:
    import geoseg
    from geoseg.training.prepare import open_scenes, split_scenes

    image, roads, truth = road_sample(tmp_path)
    config = {
        "name": "roads",
        "model": {"chip_size": 64, "overlap": "16px", "params": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}},
        "data": {
            "scenes": [{"image": str(image), "labels": str(roads), "label_field": "highway"}],
            "classes": [{"name": "road", "values": ["residential"], "buffer": 15}],
            "background": {"name": "background"},
            "stride": 16,
            "min_labeled": 0.1,
        },
        "split": {"val_fraction": 0.25, "block_size": 64, "gap": 16, "seed": 1},
        "train": {"epochs": 5, "batch_size": 8, "lr": 0.01, "samples_per_epoch": 48, "loss": {"ce": 1.0, "dice": 0.5}}
        | {"seed": 0, "threads": 2},
    }
    result = geoseg.train(config, tmp_path / "run")
    card = geoseg.load_model(result.model_path).card
    assert [c.name for c in card.classes] == ["road", "background"]
    geoseg.predict(image, result.model_path, tmp_path / "classes.tif")
    with rasterio.open(tmp_path / "classes.tif") as ds:
        found = ds.read(1) == 0
    scenes, *_ = open_scenes(config, None, tmp_path)
    held_out = np.kron(split_scenes(config, scenes).val_cells[0], np.ones((16, 16), bool))
    for scene in scenes:
        scene.close()
    iou = (found & truth & held_out).sum() / ((found | truth) & held_out).sum()
    trivial = (truth & held_out).sum() / held_out.sum()  # IoU of calling every pixel road; all background scores 0
    print(f"road IoU on held-out blocks {iou:.3f} (all-road map {trivial:.3f}), best validation mIoU {result.best_miou:.3f}")
    assert iou > 0.6 and iou > 5 * trivial


def test_evaluate_reads_road_lines_as_training_did(tmp_path: Path) -> None:
    """evaluate --classes CONFIG buffers truth lines and fills the background as the training config says."""
    import yaml

    import geoseg
    from geoseg.core.classes import ClassInfo
    from tests.test_change import class_map

    grid = UTM_GRID
    roads = _write(tmp_path / "roads.gpkg", ["road"], [TOP], field="highway")
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data": {"classes": [{"name": "road", "buffer": 15}], "background": {"name": "background", "within": "scene"}}}
        ),
        encoding="utf-8",
    )
    pred = np.ones((grid.height, grid.width), np.uint8)  # background everywhere ...
    pred[:2] = 0  # ... and the two rows the 15 m road corridor covers
    table = [ClassInfo(0, "road", "#7f7f7f"), ClassInfo(1, "background", "#ffffff")]
    path = class_map(tmp_path / "pred.tif", pred, table=table, transform=grid.transform)
    metrics = geoseg.evaluate(path, roads, label_field="highway", classes=config)
    assert metrics["accuracy"] == 1.0 and metrics["pixels"] == grid.width * grid.height
    assert [(c["name"], c["iou"]) for c in metrics["classes"]] == [("road", 1.0), ("background", 1.0)]


# A mask without a nodata value over part of UTM_GRID: rows 5..24 and columns 10..29 (20 x 20 pixels of 10 m).
PART = (slice(5, 25), slice(10, 30))
PART_VALUES = np.where(np.arange(20)[None, :] < 8, 1, 0).repeat(20, 0).astype("uint8")  # 0 is a label value here


def _part_mask(tmp: Path, pixel: float) -> Path:
    """PART_VALUES as a mask without nodata, at 10 m (a subset of the scene's grid) or 20 m (resampled onto it)."""
    step = int(pixel // 10)
    origin = Affine(pixel, 0, X0 + 10 * PART[1].start, 0, -pixel, Y0 - 10 * PART[0].start)
    return write_raster(tmp / f"part_{step}.tif", PART_VALUES[::step, ::step], transform=origin, nodata=None)


@pytest.mark.parametrize("pixel", [10.0, 20.0], ids=["same-grid-subset", "resampled"])
def test_a_mask_without_nodata_labels_only_its_footprint(tmp_path: Path, pixel: float) -> None:
    """Scene pixels outside a mask's footprint are unlabeled, not the class of value 0 (the warp's fill)."""
    labels = open_labels(_part_mask(tmp_path, pixel), UTM_GRID)
    assert labels.label_map.names == ["0", "1"]
    expected = np.full((UTM_GRID.height, UTM_GRID.width), IGNORE_INDEX, np.uint8)
    expected[PART] = PART_VALUES  # each 20 m pixel covers 2 x 2 scene pixels of the same value
    try:
        np.testing.assert_array_equal(_mask(labels, UTM_GRID), expected)
        window = Window(-8, 20, 32, 32)  # past the scene's edge, across the footprint's corner
        np.testing.assert_array_equal(labels.read(window), np.pad(expected, ((0, 2), (8, 0)), constant_values=255)[20:52, :32])
    finally:
        labels.close()


def test_tile_with_a_partial_mask_writes_unlabeled_pixels_outside_it(tmp_path: Path, runner) -> None:
    image = write_raster(tmp_path / "s.tif", np.ones((2, 50, 60), "uint16"))
    result = run(runner, "tile", image, "-o", tmp_path / "c", "--labels", _part_mask(tmp_path, 20.0), "--chip-size", 32)
    assert result.exit_code == 0, result.output
    expected = np.full((50, 60), IGNORE_INDEX, np.uint8)
    expected[PART] = PART_VALUES
    import pyogrio

    index = pyogrio.read_dataframe(tmp_path / "c" / "index.gpkg", layer="chips", read_geometry=False)
    offsets = {(int(r.y_off), int(r.x_off)) for r in index.itertuples()}
    grid = {(y, x) for y in (0, 18) for x in (0, 28)}  # 32 px chips over 50 x 60: the last row and column snapped
    assert offsets == {(y, x) for y, x in grid if (expected[y : y + 32, x : x + 32] != IGNORE_INDEX).any()}
    for row in index.itertuples():
        with rasterio.open(tmp_path / "c" / row.mask) as ds:
            y, x = int(row.y_off), int(row.x_off)
            np.testing.assert_array_equal(ds.read(1), expected[y : y + 32, x : x + 32])


def test_more_label_values_than_a_class_map_holds_are_one_line(tmp_path: Path, runner) -> None:
    """300 distinct values (an id field given as --label-field) cannot each be a class of a uint8 map."""
    boxes = [shapely.box(X0 + 2 * i, Y0 - 10, X0 + 2 * i + 2, Y0) for i in range(300)]
    ids = _write(tmp_path / "ids.gpkg", list(range(1000, 1300)), boxes, field="osm_id")
    image = write_raster(tmp_path / "s.tif", np.ones((2, 50, 60), "uint16"))
    result = run(runner, "tile", image, "-o", tmp_path / "c", "--labels", ids, "--label-field", "osm_id")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "unexpected" not in lines[0], result.stderr
    assert "300 distinct label values in labels" in lines[0] and "field 'osm_id' (1000, 1001, 1002, ...)" in lines[0]
    assert "at most 255 classes" in lines[0] and "--label-field" in lines[0] and "data.classes" in lines[0]
    assert not (tmp_path / "c").exists()
    mask = write_raster(tmp_path / "ids.tif", np.arange(3000, dtype="uint16").reshape(50, 60) % 300)
    with pytest.raises(InputError, match="300 distinct label values in label mask .*ids.tif"):
        open_labels(mask, UTM_GRID)
    assert len(LabelMap.from_values(range(255)).classes) == 255  # ids 0..254: the most a map holds
    with pytest.raises(InputError, match="at most 254 classes besides the background"):
        LabelMap.from_values(range(255), background=Background("other"))
    with pytest.raises(InputError, match="256 classes are more than the 255"):
        LabelMap.from_spec([str(i) for i in range(256)])
