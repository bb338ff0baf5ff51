"""``geoseg evaluate --report DIR``: tables, pictures and an error map people can look at; semantic default colours.

The maps are small generated rasters whose confusion matrix is computed by
hand from their regions (see :func:`maps`).
"""

from __future__ import annotations

import csv
import json
import os
import struct
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import rasterio

import geoseg
from geoseg.core.classes import CLASSES_TAG, class_colors, semantic_color
from geoseg.core.metrics import ConfusionMatrix, format_table
from geoseg.report.errormap import CORRECT_COLOR, error_codes
from tests.helpers import run, write_raster

TABLE = [
    {"id": 0, "name": "forest", "color": "#1b7837"},
    {"id": 1, "name": "water", "color": "#1f78b4"},
    {"id": 2, "name": "snow", "color": "#e0f3f8"},
]
# Rows 4..29: forest truth in columns 0..29, water in 30..49; predicted forest in 0..24, water in 25..49.
# Rows 30..39: truth only in columns 40..49 (water), predicted snow there. Rows 0..3: prediction nodata.
EXPECTED = [[26 * 25, 26 * 5, 0], [0, 26 * 20, 10 * 10], [0, 0, 0]]
REPORT = ["confusion.png", "errors.qml", "errors.tif", "metrics.json", "per_class.csv"]


def class_map(path: Path, pred: np.ndarray, table: list[dict] = TABLE) -> Path:
    """A class map as geoseg writes one: nodata 255 and the class table tag."""
    write_raster(path, pred, nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: json.dumps(table)})
    return path


@pytest.fixture
def maps(tmp_path: Path) -> tuple[Path, Path]:
    pred = np.full((40, 50), 255, np.uint8)
    pred[4:, :25], pred[4:, 25:] = 0, 1
    pred[30:, 40:] = 2  # snow predicted where the truth is water; snow has no truth anywhere
    truth = np.full((40, 50), 255, np.uint8)  # 255: unlabeled
    truth[:30, :30], truth[:30, 30:] = 0, 1
    truth[30:, 40:] = 1
    return class_map(tmp_path / "pred.tif", pred), write_raster(tmp_path / "truth.tif", truth, nodata=255)


def expected_errors() -> np.ndarray:
    """errors.tif of :func:`maps` by region: 0 correct, 1 + k wrong where the truth is class k, 255 not scored."""
    errors = np.full((40, 50), 255, np.uint8)  # prediction nodata (rows 0..3) and no truth (rows 30.., columns ..39)
    errors[4:30, :25] = 0
    errors[4:30, 25:30] = 1 + 0  # truth forest, predicted water
    errors[4:30, 30:] = 0
    errors[30:, 40:] = 1 + 1  # truth water, predicted snow
    return errors


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_holds_hand_computed_scores_and_an_error_map(maps: tuple[Path, Path], tmp_path: Path, runner) -> None:
    pred, truth = maps
    out = tmp_path / "eval"
    result = run(runner, "evaluate", pred, truth, "--report", out, "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == REPORT
    # the two classes rest on fewer than 1000 truth pixels: one warning line naming both
    warnings = [line for line in result.stderr.splitlines() if "warning" in line and "class table" not in line]
    assert len(warnings) == 1 and "forest (780 px)" in warnings[0] and "water (620 px)" in warnings[0], result.stderr
    assert "snow" not in warnings[0]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == EXPECTED
    assert metrics.pop("geoseg_version") == geoseg.__version__
    assert metrics == json.loads((tmp_path / "m.json").read_text())  # the report's metrics.json is what --json writes
    snow = metrics["classes"][2]
    assert snow["pixels"] == 0 and snow["predicted_pixels"] == 100
    assert snow["iou"] is snow["f1"] is snow["precision"] is snow["recall"] is None  # no truth: null, not 0
    assert metrics["mean_iou"] == pytest.approx((650 / 780 + 520 / 750) / 2)  # over classes with truth

    with (out / "per_class.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["class_id", "class_name", "iou", "precision", "recall", "f1", "truth_pixels", "predicted_pixels"]
    forest, water, snow_row = rows
    assert (forest["class_name"], forest["truth_pixels"], forest["predicted_pixels"]) == ("forest", "780", "650")
    assert float(forest["iou"]) == pytest.approx(650 / 780, abs=1e-6)
    assert float(forest["precision"]) == pytest.approx(1.0) and float(forest["recall"]) == pytest.approx(650 / 780, abs=1e-6)
    assert float(forest["f1"]) == pytest.approx(1300 / 1430, abs=1e-6)
    assert float(water["iou"]) == pytest.approx(520 / 750, abs=1e-6)
    assert float(water["precision"]) == pytest.approx(0.8) and float(water["recall"]) == pytest.approx(520 / 620, abs=1e-6)
    assert float(water["f1"]) == pytest.approx(1040 / 1270, abs=1e-6)
    assert (water["truth_pixels"], water["predicted_pixels"]) == ("620", "650")
    assert [snow_row[k] for k in ("iou", "precision", "recall", "f1", "truth_pixels", "predicted_pixels")] == [
        "",
        "",
        "",
        "",
        "0",
        "100",
    ]

    width, height = png_size(out / "confusion.png")
    assert 300 <= width <= 3000 and 300 <= height <= 3000
    snow_line = next(line for line in result.stdout.splitlines() if line.split()[:2] == ["2", "snow"])
    assert snow_line.split()[-4:] == ["-", "-", "-", "-"]  # the table shows snow's scores as "-"


def test_error_map_is_on_the_prediction_grid_with_colours_classes_and_style(maps: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = maps
    geoseg.evaluate(pred, truth, report=tmp_path / "eval")
    errors = tmp_path / "eval" / "errors.tif"
    with rasterio.open(pred) as p, rasterio.open(errors) as e:
        assert (e.crs, e.transform, e.width, e.height) == (p.crs, p.transform, p.width, p.height)
        assert e.dtypes[0] == "uint8" and e.nodata == 255
        assert (e.read(1) == expected_errors()).all()
        cmap = e.colormap(1)
        table = json.loads(e.tags()[CLASSES_TAG])
    hexes = [CORRECT_COLOR] + [t["color"] for t in TABLE]  # wrong pixels take the colour of the truth class missed
    assert [cmap[i][:3] for i in range(4)] == [tuple(int(h[j : j + 2], 16) for j in (1, 3, 5)) for h in hexes]
    assert cmap[255][3] == 0  # not scored: transparent
    assert [(t["id"], t["name"]) for t in table] == [
        (0, "correct"),
        (1, "wrong (truth: forest)"),
        (2, "wrong (truth: water)"),
        (3, "wrong (truth: snow)"),
    ]
    qml = ElementTree.parse(errors.with_suffix(".qml")).getroot()
    entries = qml.findall(".//rasterrenderer[@type='paletted']/colorPalette/paletteEntry")
    assert [(e.get("value"), e.get("label"), e.get("color")) for e in entries] == [
        (str(t["id"]), t["name"], t["color"]) for t in table
    ]


def test_error_map_streams_blocks_of_rows_like_the_whole_map(tmp_path: Path) -> None:
    """A map taller than one block of rows (1024): the streamed error map equals the whole-array computation."""
    rng = np.random.default_rng(3)
    pred = rng.integers(0, 3, (2100, 24)).astype(np.uint8)
    pred[rng.random(pred.shape) < 0.05] = 255
    truth = rng.integers(0, 3, (2100, 24)).astype(np.uint8)
    truth[rng.random(truth.shape) < 0.1] = 255
    p = class_map(tmp_path / "pred.tif", pred)
    t = write_raster(tmp_path / "truth.tif", truth, nodata=255)
    summary = geoseg.evaluate(p, t, report=tmp_path / "eval")
    with rasterio.open(tmp_path / "eval" / "errors.tif") as ds:
        assert (ds.read(1) == error_codes(truth, pred, 3)).all()
    cm = ConfusionMatrix(3)
    cm.update(truth, pred)
    assert summary["confusion_matrix"] == cm.matrix.tolist()


def test_python_api_report_and_overwrite(maps: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = maps
    out = tmp_path / "deeper" / "eval"  # missing parents are created
    summary = geoseg.evaluate(pred, truth, report=out)
    assert summary["confusion_matrix"] == EXPECTED and summary["warnings"]
    assert sorted(p.name for p in out.iterdir()) == REPORT
    with pytest.raises(geoseg.core.errors.OutputError, match="already exists: use --overwrite"):
        geoseg.evaluate(pred, truth, report=out)
    before = (out / "metrics.json").stat().st_mtime_ns
    geoseg.evaluate(pred, truth, report=out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == REPORT and (out / "metrics.json").stat().st_mtime_ns >= before
    assert not [p for p in out.parent.iterdir() if p.name != "eval"]  # no temporary folders left


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_existing_or_foreign_report_folders_are_refused_in_one_line(maps: tuple[Path, Path], tmp_path: Path) -> None:
    from tests.test_trust import geoseg as geoseg_process
    from tests.test_trust import refused

    pred, truth = maps
    out = tmp_path / "eval"
    assert geoseg_process("evaluate", pred, truth, "--report", out, cwd=tmp_path).returncode == 0
    before = _tree(tmp_path)
    refused(geoseg_process("evaluate", pred, truth, "--report", out, cwd=tmp_path), str(out), "--overwrite")
    assert _tree(tmp_path) == before  # nothing written, nothing changed

    (out / "notes.txt").write_text("mine")  # a report folder holding a user's file is never replaced
    before = _tree(tmp_path)
    refused(geoseg_process("evaluate", pred, truth, "--report", out, "--overwrite", cwd=tmp_path), "did not write")
    assert _tree(tmp_path) == before

    user = tmp_path / "user"
    user.mkdir()
    (user / "metrics.json").write_text("{}")  # not geoseg's: refused with or without --overwrite
    refused(geoseg_process("evaluate", pred, truth, "--report", user, "--overwrite", cwd=tmp_path), "did not write")
    assert _tree(tmp_path) == before | {"user/metrics.json": b"{}"}


def test_bad_input_with_a_report_writes_nothing(maps: tuple[Path, Path], tmp_path: Path, runner) -> None:
    _, truth = maps
    plain = write_raster(tmp_path / "plain.tif", np.zeros((40, 50), np.uint8))  # no class table
    result = run(runner, "evaluate", plain, truth, "--report", tmp_path / "a" / "eval")
    assert result.exit_code == 1 and "carries no class table" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "a").exists()  # parents made for the report are removed again
    result = run(runner, "evaluate", plain, truth, "--report", tmp_path)  # the folder holding the inputs
    assert result.exit_code == 1 and "lies inside the output folder" in result.stderr


def test_json_inside_the_report_is_refused(maps: tuple[Path, Path], tmp_path: Path, runner) -> None:
    pred, truth = maps
    (tmp_path / "eval").mkdir()
    result = run(runner, "evaluate", pred, truth, "--report", tmp_path / "eval", "--json", tmp_path / "eval" / "m.json")
    assert result.exit_code == 2 and "lies inside --report" in result.stderr
    assert not list((tmp_path / "eval").iterdir())


def test_help_describes_the_report(runner) -> None:
    result = run(runner, "evaluate", "--help")
    assert result.exit_code == 0
    for word in ("--report DIR", "per_class.csv", "confusion.png", "errors.tif", "errors.qml", "1+k wrong"):
        assert word in result.output, word


def test_no_truth_is_null_not_zero_and_shown_as_a_dash() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 2]))  # class 2 predicted, never true
    summary = cm.summary(["a", "b", "c"])
    c = summary["classes"][2]
    assert (c["pixels"], c["predicted_pixels"], c["iou"], c["f1"], c["precision"], c["recall"]) == (0, 2, None, None, None, None)
    assert summary["mean_iou"] == pytest.approx(0.5)
    line = format_table(summary).splitlines()[3]
    assert line.split()[-4:] == ["-", "-", "-", "-"]


@pytest.mark.parametrize(
    ("names", "color"),
    [
        (["water", "Water body", "RIVER", "lakes"], "#1f78b4"),
        (["forest", "Trees", "tree_cover", "woodland"], "#1b7837"),
        (["grass", "Meadow", "grassland"], "#9ad06b"),
        (["crops", "farm", "Agriculture", "cropland"], "#e8c95c"),
        (["built-up", "BuiltUp", "urban", "residential", "buildings"], "#d7301f"),
        (["road", "roads", "street"], "#7f7f7f"),
        (["bare", "sand", "bare_soil"], "#c9ae87"),
        (["snow", "Ice", "sea ice", "snow_and_ice"], "#e0f3f8"),
        (["wetland", "marsh"], "#35978f"),
        (["cloud", "Clouds"], "#f0f0f0"),
        (["shadow", "cloud shadow", "cloud_shadow"], "#404040"),
    ],
)
def test_common_land_cover_names_get_conventional_colours(names: list[str], color: str) -> None:
    assert [semantic_color(n) for n in names] == [color] * len(names)


def test_other_names_get_distinct_colours_away_from_the_conventional_ones() -> None:
    semantic = {semantic_color(n) for n in ("water", "forest", "grass", "crop", "urban", "road", "sand", "snow", "wetland")}
    semantic |= {semantic_color("cloud"), semantic_color("shadow"), semantic_color("background")}
    others = class_colors([f"class_{i}" for i in range(12)])
    assert len(set(others)) == 12 and not set(others) & semantic

    def rgb(h: str) -> np.ndarray:
        return np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)], float)

    nearest = min(np.linalg.norm(rgb(o) - rgb(s)) for o in others for s in semantic)
    assert nearest > 60  # no palette colour passes for water, forest, built-up...
    # a second class that would repeat a conventional colour gets a palette colour instead
    colors = class_colors(["water", "forest", "river", "class_x"])
    assert colors[:2] == ["#1f78b4", "#1b7837"] and len(set(colors)) == 4 and not set(colors[2:]) & semantic


def _has_qgis() -> bool:
    import subprocess

    python = Path("/usr/bin/python3")
    return python.exists() and subprocess.run([str(python), "-c", "import qgis.core"], capture_output=True).returncode == 0


# Run by Debian's python3 with QGIS: the paletted classes QGIS shows for a raster (labels come from errors.qml).
_PALETTE_CLIENT = """
import json, os, sys
from qgis.core import QgsApplication, QgsRasterLayer
app = QgsApplication([], False)
app.initQgis()
layer = QgsRasterLayer(sys.argv[1], "errors")
print(json.dumps([[int(c.value), c.label, c.color.name()] for c in layer.renderer().classes()]), flush=True)
os._exit(0)
"""


@pytest.mark.skipif(os.name == "nt" or not _has_qgis(), reason="QGIS (Debian python3-qgis) is not installed")
def test_qgis_opens_the_error_map_styled(maps: tuple[Path, Path], tmp_path: Path) -> None:
    import subprocess

    from tests.test_qgis import SYSTEM_PYTHON, open_in_qgis, qgis_env

    pred, truth = maps
    geoseg.evaluate(pred, truth, report=tmp_path / "eval")
    errors = tmp_path / "eval" / "errors.tif"
    layer = open_in_qgis(tmp_path, errors)[str(errors)]
    assert layer["valid"] and layer["crs"] == "EPSG:32633" and layer["renderer"] == "paletted"
    assert (layer["width"], layer["height"]) == (50, 40)
    client = tmp_path / "palette.py"
    client.write_text(_PALETTE_CLIENT)
    done = subprocess.run(
        [SYSTEM_PYTHON, str(client), str(errors)], capture_output=True, text=True, env=qgis_env(tmp_path), timeout=300
    )
    assert done.returncode == 0, done.stderr
    classes = json.loads(done.stdout.strip().splitlines()[-1])
    assert classes == [
        [0, "correct", CORRECT_COLOR],
        [1, "wrong (truth: forest)", "#1b7837"],
        [2, "wrong (truth: water)", "#1f78b4"],
        [3, "wrong (truth: snow)", "#e0f3f8"],
    ]  # QGIS applied errors.qml: named entries, only the map's codes


def test_a_truth_mask_without_a_class_table_is_said_to_be_read_as_class_ids(maps: tuple[Path, Path], tmp_path: Path) -> None:
    """Mask values 1..8 against a map's ids 0..7 score silently wrong: one warning says how values were read."""
    pred, truth = maps
    summary = geoseg.evaluate(pred, truth)
    notes = [w for w in summary["warnings"] if "carries no class table" in w]
    assert len(notes) == 1 and "0 forest, 1 water, 2 snow" in notes[0] and "--classes" in notes[0]
    tagged = class_map(tmp_path / "tagged.tif", rasterio.open(truth).read(1))  # the map's own table: nothing to say
    assert not any("class table" in w for w in geoseg.evaluate(pred, tagged)["warnings"])
    renamed = class_map(tmp_path / "renamed.tif", rasterio.open(truth).read(1), [{**c, "name": c["name"] + "s"} for c in TABLE])
    assert any("names its classes differently" in w for w in geoseg.evaluate(pred, renamed)["warnings"])
    mapping = tmp_path / "classes.json"
    mapping.write_text(json.dumps({"0": "forest", "1": "water", "2": "snow"}))
    assert not any("class table" in w for w in geoseg.evaluate(pred, truth, classes=mapping)["warnings"])


def test_the_class_id_note_leaves_out_the_masks_nodata(maps: tuple[Path, Path], tmp_path: Path) -> None:
    """A truth mask whose nodata is 0 is not scored there: the note must not show 0 as a class of it."""
    pred, truth = maps
    values = rasterio.open(truth).read(1)
    values[values == 255] = 0  # unlabeled as 0, declared nodata
    zero = write_raster(tmp_path / "zero.tif", values, nodata=0)
    note = next(w for w in geoseg.evaluate(pred, zero)["warnings"] if "carries no class table" in w)
    assert "0 forest" not in note and "1 water, 2 snow; 0 is its nodata, not scored" in note


def test_a_config_with_malformed_classes_is_one_line_for_evaluate_and_vectorize(maps: tuple[Path, Path], tmp_path: Path) -> None:
    """A training config given as --classes whose data.classes cannot be read is named in one line, no traceback."""
    import yaml

    pred, truth = maps
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"data": {"classes": [{"values": [1]}]}}), encoding="utf-8")  # no name
    from tests.test_trust import geoseg as geoseg_cli
    from tests.test_trust import refused

    for args in (
        ["evaluate", pred, truth, "--classes", config],
        ["vectorize", pred, "-o", tmp_path / "p.gpkg", "--classes", config],
    ):
        refused(geoseg_cli(*args, cwd=tmp_path), f"--classes {config}", "data.classes")
    assert not (tmp_path / "p.gpkg").exists()


@pytest.mark.parametrize("pixel", [10, 20], ids=["same-grid-subset", "resampled"])
def test_a_truth_mask_without_nodata_scores_only_its_footprint(maps: tuple[Path, Path], tmp_path: Path, pixel: int) -> None:
    """Truth over rows 4..23 and columns 15..34 of the map (a copy of it), no nodata value: 400 pixels, all right."""
    from affine import Affine

    pred, _ = maps
    values = rasterio.open(pred).read(1)[4:24:1, 15:35:1][:: pixel // 10, :: pixel // 10]
    origin = Affine(pixel, 0, 330000.0 + 150, 0, -pixel, 5822040.0 - 40)
    truth = class_map(tmp_path / "part.tif", values)  # the map's own class table, no warning
    with rasterio.open(truth, "r+") as ds:
        ds.nodata, ds.transform = None, origin
    summary = geoseg.evaluate(pred, truth)
    assert summary["confusion_matrix"] == [[200, 0, 0], [0, 200, 0], [0, 0, 0]]
    assert summary["pixels"] == 400 and summary["accuracy"] == summary["mean_iou"] == 1.0


def test_a_config_without_data_classes_gives_the_classes_training_did(tmp_path: Path) -> None:
    """Training numbers the label values (sorted) and puts data.background last: evaluate --classes reads it so."""
    import geopandas as gpd
    import shapely
    import yaml

    pred = np.ones((40, 50), np.uint8)  # land
    pred[:10, :15] = 0  # water: 150 px, 100 of them under the water polygon
    table = [{"id": 0, "name": "water", "color": "#1f78b4"}, {"id": 1, "name": "land", "color": "#cccccc"}]
    pred_path = class_map(tmp_path / "pred.tif", pred, table)
    water = shapely.box(330000.0, 5822040.0 - 100, 330000.0 + 100, 5822040.0)  # rows 0..9, columns 0..9
    gpd.GeoDataFrame({"fclass": ["water"]}, geometry=[water], crs="EPSG:32633").to_file(tmp_path / "water.gpkg")
    config = tmp_path / "water.yaml"
    scene = {"image": "scene.tif", "labels": "water.gpkg", "label_field": "fclass"}
    config.write_text(yaml.safe_dump({"data": {"scenes": [scene], "background": {"name": "land", "within": "scene"}}}))
    summary = geoseg.evaluate(pred_path, tmp_path / "water.gpkg", label_field="fclass", classes=config)
    assert summary["confusion_matrix"] == [[100, 0], [50, 1850]]
    saved = tmp_path / "config.yaml"  # as a run folder keeps it: JSON, classes null
    saved.write_text(
        json.dumps({"data": {"scenes": [scene], "classes": None, "background": {"name": "land", "within": "scene"}}})
    )
    assert geoseg.evaluate(pred_path, tmp_path / "water.gpkg", label_field="fclass", classes=saved)["confusion_matrix"] == [
        [100, 0],
        [50, 1850],
    ]
    other = class_map(tmp_path / "other.tif", pred, [{**table[0], "name": "lake"}, table[1]])
    with pytest.raises(geoseg.core.errors.InputError, match="label values water in .* are not in the class mapping"):
        geoseg.evaluate(other, tmp_path / "water.gpkg", label_field="fclass", classes=config)


def test_classes_json_of_a_chip_folder_maps_the_truth_values(tmp_path: Path, runner) -> None:
    """geoseg tile names mask values 3 and 7 classes "3" and "7" (ids 0, 1): its classes.json (or a config training on
    the chips) maps a truth mask of 3 and 7 onto the map; read as class ids they would not be classes at all."""
    import yaml

    from geoseg.training.evaluation import read_label_map

    values = np.where(np.arange(50)[None, :] < 20, 3, 7).repeat(40, 0).astype(np.uint8)
    values[:5] = 0  # nodata
    truth = write_raster(tmp_path / "truth.tif", values, nodata=0)
    scene = write_raster(tmp_path / "scene.tif", np.ones((2, 40, 50), np.uint16))
    result = run(runner, "tile", scene, "-o", tmp_path / "chips", "--labels", truth, "--chip-size", 32)
    assert result.exit_code == 0, result.output
    table = [{"id": 0, "name": "3", "color": "#1b7837"}, {"id": 1, "name": "7", "color": "#1f78b4"}]
    pred = class_map(tmp_path / "pred.tif", np.where(np.arange(50)[None, :] < 25, 0, 1).repeat(40, 0).astype(np.uint8), table)
    expected = [[35 * 20, 0], [35 * 5, 35 * 25]]
    assert geoseg.evaluate(pred, truth, classes=tmp_path / "chips" / "classes.json")["confusion_matrix"] == expected
    config = tmp_path / "chips.yaml"
    config.write_text(yaml.safe_dump({"data": {"chips": "chips"}}))
    assert geoseg.evaluate(pred, truth, classes=config)["confusion_matrix"] == expected
    config.write_text(yaml.safe_dump({"data": {"chips": "chips", "ignore_values": [7]}}))  # training leaves out class 7
    assert read_label_map(config, ["3"]).lookup([3, 7]).tolist() == [0, 255]
    config.write_text(yaml.safe_dump({"data": {"chips": "nochips"}}))
    with pytest.raises(geoseg.core.errors.InputError, match="class table .*classes.json does not exist"):
        geoseg.evaluate(pred, truth, classes=config)
    with pytest.raises(geoseg.core.errors.InputError, match="label values 3, 7 in .* are not in the class mapping"):
        geoseg.evaluate(pred, truth)


def test_json_creates_missing_parent_folders_as_the_report_does(maps: tuple[Path, Path], tmp_path: Path, runner) -> None:
    pred, truth = maps
    out = tmp_path / "new" / "deeper" / "m.json"
    result = run(runner, "evaluate", pred, truth, "--json", out, "--report", tmp_path / "new" / "eval")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["confusion_matrix"] == EXPECTED
    assert json.loads((tmp_path / "new" / "eval" / "metrics.json").read_text())["confusion_matrix"] == EXPECTED
    plain = write_raster(tmp_path / "plain.tif", np.zeros((40, 50), np.uint8))  # no class table: fails
    result = run(runner, "evaluate", plain, truth, "--json", tmp_path / "a" / "m.json")
    assert result.exit_code == 1 and "carries no class table" in result.stderr
    assert not (tmp_path / "a").exists()  # made only when the metrics are written
    result = run(runner, "evaluate", pred, truth, "--json", truth / "m.json")
    assert result.exit_code == 1 and "is a file, not a folder" in result.stderr
    result = run(
        runner, "evaluate", pred, truth, "--report", tmp_path / "b" / "eval", "--json", tmp_path / "b" / "eval" / "m.json"
    )
    assert result.exit_code == 2 and "lies inside --report" in result.stderr and not (tmp_path / "b").exists()


def test_a_class_table_refused_for_its_content_says_why(tmp_path: Path) -> None:
    """A classes.json whose classes are fine in form but too many says so, not that its form is wrong."""
    from geoseg.core.errors import InputError
    from geoseg.training.evaluation import read_label_map

    table = tmp_path / "classes.json"
    table.write_text(json.dumps([{"id": i, "name": f"c{i}", "values": [str(i)]} for i in range(300)]))
    with pytest.raises(InputError, match=r"--classes .*classes.json: 300 classes are more than the 255"):
        read_label_map(table, [f"c{i}" for i in range(300)])
    table.write_text(json.dumps([{"name": "no id"}]))
    with pytest.raises(InputError, match=r"a class table must be a list of \{id, name, values\}"):
        read_label_map(table, ["no id"])
