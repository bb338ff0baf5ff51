"""Scenes as users have them: odd grids, CRSs, dtypes, band counts and values; labels with broken
geometries; a full disk. Each either works correctly or gets one clear line."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine

import geoseg
from tests.helpers import bad_raster_files, random_scene, run, tiny_unet, write_raster

ODD_SCENES = {
    "south-up": dict(data=random_scene((4, 50, 60)), transform=Affine(10, 0, 330000, 0, 10, 5800000)),
    "geographic": dict(data=random_scene((4, 50, 60)), crs="EPSG:4326", transform=Affine(1e-3, 0, 13.0, 0, -1e-3, 52.5)),
    "antimeridian": dict(data=random_scene((4, 50, 60)), crs="EPSG:4326", transform=Affine(0.01, 0, 179.8, 0, -0.01, 10.0)),
    "1x1": dict(data=random_scene((4, 1, 1))),
    "1xN": dict(data=random_scene((4, 1, 300))),
    "Nx1": dict(data=random_scene((4, 200, 1))),
    "nan": dict(data=np.where(np.random.default_rng(0).random((4, 40, 40)) < 0.2, np.nan, 0.5).astype("float32")),
    "inf": dict(data=np.where(np.random.default_rng(1).random((4, 40, 40)) < 0.2, np.inf, 0.5).astype("float32")),
    "uint16 max": dict(data=np.full((4, 40, 40), 65535, "uint16")),
    "float64 huge": dict(data=(np.random.default_rng(2).random((4, 40, 40)) * 1e300).astype("float64")),
    "constant": dict(data=np.full((4, 40, 40), 7, "int16")),
}


@pytest.fixture(scope="module")
def model4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_unet(4, 3, mean=[1000.0] * 4, std=[300.0] * 4).save(tmp_path_factory.mktemp("m") / "m.pt")


@pytest.mark.parametrize("name", list(ODD_SCENES))
def test_odd_scenes_run_end_to_end(name: str, model4: Path, tmp_path: Path, runner) -> None:
    scene = write_raster(tmp_path / "scene.tif", **ODD_SCENES[name])
    out = tmp_path / "out"
    result = run(runner, "run", scene, "-m", model4, "-o", out, "--min-area", 100)
    assert result.exit_code == 0, result.output
    with rasterio.open(scene) as src, rasterio.open(out / "classes.tif") as cls, rasterio.open(out / "confidence.tif") as conf:
        assert (cls.crs, cls.transform, cls.width, cls.height) == (src.crs, src.transform, src.width, src.height)
        classes, confidence = cls.read(1), conf.read(1)
        raw = src.read()
    finite = np.isfinite(raw.astype(np.float64)).all(axis=0)
    assert ((classes < 3) == finite).all() and (classes[~finite] == 255).all()
    assert (confidence[finite] <= 100).all() and (confidence[~finite] == 255).all()
    geojson = json.loads((out / "polygons.geojson").read_text())
    coords = np.array([xy for f in geojson["features"] for xy in _points(f["geometry"]["coordinates"])])
    if name == "antimeridian":  # RFC 7946: polygons crossing 180° are split, never wrapped around the globe
        assert any(f["geometry"]["type"] == "MultiPolygon" for f in geojson["features"])
    if finite.any():
        assert len(coords) and np.isfinite(coords).all()
        assert (np.abs(coords[:, 0]) <= 180).all() and (np.abs(coords[:, 1]) <= 90).all()


def _points(coords: list) -> list:
    if coords and isinstance(coords[0], (int, float)):
        return [coords]
    return [p for c in coords for p in _points(c)]


@pytest.mark.parametrize("bands", [1, 3, 4, 13])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "uint16", "int16", "uint32", "float32", "float64"])
def test_band_counts_and_dtypes(bands: int, dtype: str, tmp_path: Path) -> None:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    rng = np.random.default_rng(bands)
    values = rng.integers(info.min, info.max, (bands, 33, 41), endpoint=True) if info else rng.normal(0, 1e6, (bands, 33, 41))
    scene = write_raster(tmp_path / "s.tif", values.astype(dtype))
    model = tiny_unet(bands, 2)
    geoseg.predict(scene, model, tmp_path / "c.tif")
    with rasterio.open(scene) as src:
        valid = src.dataset_mask() > 0  # GDAL reads a 4th uint8 band as alpha: its zeros are nodata
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    assert valid.mean() > 0.9 and (classes[valid] < 2).all() and (classes[~valid] == 255).all()


def test_all_nodata_scene_succeeds_with_nodata_outputs_and_one_warning(model4: Path, tmp_path: Path, runner) -> None:
    """An empty tile of a grid is normal: all-nodata maps, empty layers, zero areas, one warning (also in run.json)."""
    scene = write_raster(tmp_path / "empty.tif", np.zeros((4, 30, 30), "uint16"), nodata=0)
    out = tmp_path / "out"
    result = run(runner, "run", scene, "-m", model4, "-o", out)
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "empty.tif" in line and "nodata" in line]
    assert len(lines) == 1 and lines[0].startswith("geoseg: warning:")
    for name in ("classes.tif", "confidence.tif"):
        with rasterio.open(out / name) as ds:
            assert (ds.read() == 255).all()
    for name, layer in (("polygons.gpkg", "polygons"), ("polygons.geojson", None)):
        assert len(gpd.read_file(out / name, layer=layer)) == 0
    record = json.loads((out / "run.json").read_text())
    assert all(a["pixels"] == 0 and a["area_m2"] == 0 for a in record["areas"])
    assert any("every pixel is nodata" in w for w in record["warnings"]) and record["counts"]["polygons"] == 0


def test_full_disk_is_one_line_and_leaves_nothing(model4: Path, tmp_path: Path, runner, monkeypatch) -> None:
    from geoseg.io import classmap

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(classmap.ClassMapWriter, "write_rows", full)
    scene = write_raster(tmp_path / "s.tif", random_scene((4, 40, 40)))
    for args in (
        ["predict", scene, "-m", model4, "-o", tmp_path / "c.tif"],
        ["run", scene, "-m", model4, "-o", tmp_path / "out"],
    ):
        result = run(runner, *args)
        assert result.exit_code == 1 and "no space left on the device" in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]


def test_labels_with_broken_geometries(tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    from geoseg.core.errors import VectorError
    from geoseg.io.label_files import SceneGrid, open_labels

    scene = write_raster(tmp_path / "s.tif", np.ones((1, 40, 40), "uint16"))
    with rasterio.open(scene) as ds:
        grid = SceneGrid.of(ds)
    x, y = 330000.0, 5822040.0
    bowtie = shapely.Polygon([(x, y), (x + 200, y - 200), (x + 200, y), (x, y - 200), (x, y)])  # self-crossing
    frame = gpd.GeoDataFrame(
        {"kind": ["a", "b", "c", "d"]},
        geometry=[bowtie, shapely.Polygon(), shapely.Point(x + 50, y - 50), shapely.box(x + 250, y - 350, x + 350, y - 250)],
        crs="EPSG:32633",
    )
    frame.to_file(tmp_path / "mixed.gpkg")
    labels = open_labels(tmp_path / "mixed.gpkg", grid, "kind")
    mask = labels.read(rasterio.windows.Window(0, 0, 40, 40))
    assert labels.label_map.names == ["a", "d"]  # empty geometry and point left out
    assert (mask == 0).sum() > 100 and (mask == 1).sum() == 100
    gpd.GeoDataFrame({"kind": ["a"]}, geometry=[shapely.Point(x, y)], crs="EPSG:32633").to_file(tmp_path / "pts.gpkg")
    with pytest.raises(VectorError, match="hold 1 point with a .kind. value and no polygons: give them a buffer"):
        open_labels(tmp_path / "pts.gpkg", grid, "kind")
    gpd.GeoDataFrame({"kind": ["a"]}, geometry=[shapely.box(x, y - 100, x + 100, y)]).to_file(tmp_path / "nocrs.gpkg")
    with pytest.raises(VectorError, match="have no CRS"):
        open_labels(tmp_path / "nocrs.gpkg", grid, "kind")


@pytest.mark.parametrize("command", ["predict", "run", "vectorize", "tile", "evaluate", "info", "export", "train", "change"])
def test_every_command_answers_bad_files_in_one_line(command: str, model4: Path, tmp_path: Path, runner) -> None:
    bad = bad_raster_files(tmp_path)
    before = set(tmp_path.rglob("*"))
    for kind, path in bad.items():
        if command == "info" and kind == "truncated":
            continue  # info reads the header only, which is intact
        args = {
            "predict": ["predict", path, "-m", model4, "-o", tmp_path / "c.tif"],
            "run": ["run", path, "-m", model4, "-o", tmp_path / "out"],
            "vectorize": ["vectorize", path, "-o", tmp_path / "p.gpkg"],
            "tile": ["tile", path, "-o", tmp_path / "chips"],
            "evaluate": ["evaluate", path, path],
            "info": ["info", path],
            "change": ["change", path, path, "-o", tmp_path / "change"],
            "export": ["export", str(path).replace(".tif", ".pt"), "-o", tmp_path / "m.onnx"],
            "train": ["train", str(path).replace(".tif", ".yaml"), "-o", tmp_path / "run"],
        }[command]
        if command in ("export", "train") and kind != "missing":
            target = Path(args[1])
            target.write_bytes(path.read_bytes() if path.exists() else b"")
        result = run(runner, *args)
        assert result.exit_code == 1, (kind, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("geoseg: error: ") and "Traceback" not in result.output, (
            kind,
            result.output,
        )
        assert Path(args[1]).name in lines[0] or "config" in lines[0], (kind, lines[0])
        if command in ("export", "train") and kind != "missing":
            Path(args[1]).unlink()
    assert set(tmp_path.rglob("*")) == before, "no output may be left behind"


@pytest.mark.skipif(__import__("os").name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("command", ["run", "vectorize"])
def test_interrupted_run_and_vectorize_keep_the_previous_output(command: str, model4: Path, tmp_path: Path) -> None:
    """Real processes interrupted mid-way (SIGINT): previous outputs untouched, no temporary files."""
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(0)
    if command == "run":
        scene = write_raster(tmp_path / "scene.tif", random_scene((4, 768, 768)))
        target = tmp_path / "out"
        target.mkdir()
        (target / "classes.tif").write_text("previous run")
        (target / "run.json").write_text(
            '{"geoseg_version": "0.1.0"}'
        )  # a previous run's folder: geoseg's own, replaced with --overwrite
        args = ["run", str(scene), "-m", str(model4), "-o", str(target), "--overwrite", "--batch-size", "1"]
        stage = "predict"
    else:
        classes = np.kron(rng.integers(0, 6, (700, 700)), np.ones((4, 4))).astype("uint8")
        scene = write_raster(tmp_path / "classes.tif", classes, nodata=255)
        target = tmp_path / "polygons.gpkg"
        target.write_bytes(b"previous polygons")
        args = ["vectorize", str(scene), "-o", str(target), "--overwrite", "--min-area", "2000"]
        stage = "vectorize"
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", *args, "--progress", "json"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("{") and json.loads(line)["stage"].startswith(stage):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if command == "run":
        assert sorted(p.name for p in target.iterdir()) == ["classes.tif", "run.json"]
        assert (target / "classes.tif").read_text() == "previous run"
    else:
        assert target.read_bytes() == b"previous polygons"


def test_train_into_a_folder_of_other_files_does_not_suggest_resume(tmp_path: Path, runner) -> None:
    """--resume is suggested only for a folder holding a run it can continue; a user's folder is named as such."""
    import yaml

    from geoseg.core.errors import OutputError
    from geoseg.training.rundir import check_run_dir

    scene = write_raster(tmp_path / "s.tif", random_scene((4, 40, 40)))
    write_raster(tmp_path / "mask.tif", np.where(np.arange(40) < 20, 1, 2).repeat(40).reshape(40, 40).astype("uint8"))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"scenes": [{"image": str(scene), "labels": str(tmp_path / "mask.tif")}]}}))
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "a.txt").write_text("mine")
    result = run(runner, "train", config, "-o", user)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "userdir already exists and is not empty (a.txt; no run geoseg train can continue)" in lines[0]
    assert "--resume" not in lines[0] and "choose another folder" in lines[0]
    assert sorted(p.name for p in user.iterdir()) == ["a.txt"]
    (user / "resume.pt").write_bytes(b"")  # a run's folder: continue it
    with pytest.raises(OutputError, match="not empty: use --resume to continue it"):
        check_run_dir(user, resume=False)
    with pytest.raises(OutputError, match="is a file: choose another folder"):
        check_run_dir(user / "a.txt", resume=False)
