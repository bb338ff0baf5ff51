"""geoseg run: the complete output folder, atomic replacement, refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from tests.helpers import SAMPLE, run


def test_run_writes_every_file(runner, unet_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "result"
    result = run(runner, "run", SAMPLE, "-o", out, "-m", unet_path, "--min-area", "400", "--simplify", "5")
    assert result.exit_code == 0, result.output
    from geoseg.io.outputs import RUN_FILES

    assert sorted(p.name for p in out.iterdir()) == sorted(set(RUN_FILES) - {"clouds.tif", "clouds.qml"})  # no --mask-clouds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]  # no temporary folder left
    record = json.loads((out / "run.json").read_text())
    assert record["model"]["sha256"] and len(record["model"]["sha256"]) == 64
    assert set(record["timings_s"]) >= {"predict", "vectorize", "total"}
    with rasterio.open(out / "classes.tif") as ds, rasterio.open(SAMPLE) as src:
        assert (ds.crs, ds.transform, ds.shape) == (src.crs, src.transform, src.shape)
        classes = ds.read(1)
    with (out / "areas.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["pixels"]) for r in rows] == [int((classes == i).sum()) for i in range(3)]
    assert abs(sum(float(r["share"]) for r in rows) - 1) < 1e-4
    gpkg = gpd.read_file(out / "polygons.gpkg", layer="polygons")
    geojson = gpd.read_file(out / "polygons.geojson")
    assert len(gpkg) == len(geojson) == record["counts"]["polygons"] and gpkg.area_m2.min() >= 400
    assert geojson.crs.to_epsg() == 4326 and gpkg.crs == src.crs
    assert {"mean_confidence", "perimeter_m"} <= set(gpkg.columns)
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'type="paletted"' in (out / "classes.qml").read_text()


def test_existing_outdir_is_kept_without_overwrite_and_replaced_with(runner, unet_path: Path, tmp_path: Path) -> None:
    """A folder geoseg did not write is never replaced; its own run folder only with --overwrite."""
    out = tmp_path / "result"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        result = run(runner, "run", SAMPLE, "-o", out, "-m", unet_path, *extra)
        assert result.exit_code == 1 and "did not write" in result.stderr and "--overwrite" in result.stderr
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()  # an empty folder is the user's answer: geoseg may write there
    assert run(runner, "run", SAMPLE, "-o", out, "-m", unet_path).exit_code == 0
    first = (out / "run.json").read_bytes()
    result = run(runner, "run", SAMPLE, "-o", out, "-m", unet_path)
    assert result.exit_code == 1 and "--overwrite" in result.stderr and (out / "run.json").read_bytes() == first
    assert run(runner, "run", SAMPLE, "-o", out, "-m", unet_path, "--overwrite").exit_code == 0
    assert (out / "run.json").read_bytes() != first and not (out / ".geoseg.lock").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_run_refusals(runner, unet_path: Path, tmp_path: Path) -> None:
    inside = tmp_path / "data"
    inside.mkdir()
    scene = inside / "scene.tif"
    scene.write_bytes(SAMPLE.read_bytes())
    result = run(runner, "run", scene, "-o", inside, "-m", unet_path, "--overwrite")
    assert result.exit_code == 1 and "inside the output folder" in result.stderr
    assert scene.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    result = run(runner, "run", SAMPLE, SAMPLE, "-o", tmp_path / "x", "-m", unet_path)  # the same scene twice: once
    assert result.exit_code == 0 and len(json.loads((tmp_path / "x" / "batch.json").read_text())["scenes"]) == 1


def test_failed_run_leaves_no_folder(runner, unet_path: Path, tmp_path: Path) -> None:
    data = np.zeros((3, 20, 20), np.uint16)
    from tests.helpers import write_raster

    scene = write_raster(tmp_path / "three.tif", data)
    result = run(runner, "run", scene, "-o", tmp_path / "out", "-m", unet_path)
    assert result.exit_code == 1 and "expects 4 band(s)" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.tif"]


def test_a_run_folder_opened_in_qgis_is_still_geosegs(tmp_path: Path) -> None:
    """QGIS writes classes.tif.aux.xml beside the map it shows (and SQLite's -wal and -shm beside a GeoPackage it
    has open): --overwrite may still replace the folder."""
    from geoseg.core.errors import OutputError
    from geoseg.io.outputs import check_outdir

    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"geoseg_version": "0.2.0"}))
    (out / "classes.tif").write_bytes(b"")
    (out / "classes.tif.aux.xml").write_text("<PAMDataset/>")
    for name in ("polygons.gpkg", "polygons.gpkg-wal", "polygons.gpkg-shm"):  # SQLite's, while QGIS has it open
        (out / name).write_bytes(b"")
    check_outdir(out, [], overwrite=True)
    with pytest.raises(OutputError, match="already exists: use --overwrite"):
        check_outdir(out, [], overwrite=False)
    (out / "notes.txt.aux.xml").write_text("<PAMDataset/>")  # a sidecar of a file geoseg does not write
    with pytest.raises(OutputError, match="holds files geoseg did not write"):
        check_outdir(out, [], overwrite=True)


def test_run_json_records_what_ran_where_options_said_auto(runner, unet_path: Path, tmp_path: Path) -> None:
    """parameters keep what was asked (auto, not set); effective says what ran: the chip, overlap, batch, backend,
    device and the scene's bands read, so a map can be made again."""
    for name, extra, chip, overlap in (("auto", [], 64, 16), ("given", ["--chip-size", "96", "--overlap", "0.5"], 96, 48)):
        out = tmp_path / name
        assert run(runner, "run", SAMPLE, "-o", out, "-m", unet_path, "--batch-size", "3", *extra).exit_code == 0
        record = json.loads((out / "run.json").read_text())
        assert record["parameters"]["device"] == "auto" and record["parameters"]["backend"] == "auto"
        effective = record["effective"]
        assert (effective["chip_size"], effective["overlap_px"], effective["batch_size"]) == (chip, overlap, 3)
        assert effective["backend"] in ("torch", "onnx") and effective["device"] == "cpu"
        assert effective["bands"] == ["B02", "B03", "B04", "B08"]
