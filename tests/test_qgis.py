"""Real clients: Debian's QGIS and GDAL's command-line tools open geoseg's outputs.

These tests drive QGIS through Debian's own python3 in a subprocess (QGIS's
Python bindings are built for it, not for the venv). They skip, saying why,
when QGIS or ogrinfo is not installed; .ci/run installs both. The QGIS plugin
is tested in test_qgis_plugin.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import geoseg
from tests.test_vectorize import TABLE

CLIENT = Path(__file__).parent / "clients" / "qgis_open.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def _has_qgis() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True)
    return probe.returncode == 0


needs_qgis = pytest.mark.skipif(not _has_qgis(), reason="QGIS (Debian python3-qgis) is not installed")
needs_ogrinfo = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo (Debian gdal-bin) is not installed")


def qgis_env(tmp: Path) -> dict[str, str]:
    home = tmp / "qgis_home"
    home.mkdir(exist_ok=True)
    home.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(home), TMPDIR=str(home), XDG_RUNTIME_DIR=str(home))
    return env


def open_in_qgis(tmp: Path, *paths: Path) -> dict:
    done = subprocess.run(
        [SYSTEM_PYTHON, str(CLIENT), *map(str, paths)], capture_output=True, text=True, env=qgis_env(tmp), timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def outputs(tmp_path: Path) -> tuple[Path, dict[str, Path], int]:
    """A class map written by geoseg.predict (colour table, class tag) and its polygons in every format."""
    import geopandas as gpd

    from geoseg.core.classes import ClassInfo
    from tests.helpers import BandLogits, random_scene, wrap, write_raster

    scene = write_raster(tmp_path / "scene.tif", random_scene((4, 61, 83), seed=3))
    model = wrap(BandLogits(), 4, 4, 32, "8px")
    model.card.classes = [ClassInfo(t["id"], t["name"], t["color"]) for t in TABLE]
    path = geoseg.predict(scene, model, tmp_path / "classes.tif").outputs["classes"]
    files = {ext: geoseg.vectorize(path, tmp_path / f"polygons.{ext}").output for ext in ("gpkg", "shp", "geojson", "fgb")}
    return path, files, len(gpd.read_file(files["fgb"]))


@needs_qgis
def test_qgis_opens_every_output_styled(tmp_path: Path, outputs) -> None:
    raster, files, count = outputs
    report = open_in_qgis(tmp_path, raster, *files.values())
    assert report[str(raster)]["valid"] and report[str(raster)]["crs"] == "EPSG:32633"
    assert report[str(raster)]["renderer"] == "paletted"
    for ext, path in files.items():
        layer = report[str(path)]
        assert layer["valid"], ext
        assert layer["count"] == count, ext
        assert layer["crs"] == ("EPSG:4326" if ext == "geojson" else "EPSG:32633"), ext
    gpkg = report[str(files["gpkg"])]
    assert gpkg["renderer"] == "categorizedSymbol"
    assert [c[1] for c in gpkg["categories"]] == [t["name"] for t in TABLE]
    assert [c[2] for c in gpkg["categories"]] == [t["color"] for t in TABLE]
    assert report[str(files["shp"])]["fields"] == ["class_id", "class_name", "area_m2", "perim_m"]


@needs_ogrinfo
def test_ogrinfo_reads_every_output(tmp_path: Path, outputs) -> None:
    _, files, count = outputs
    for ext, path in files.items():
        done = subprocess.run(["ogrinfo", "-so", "-al", str(path)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"Feature Count: {count}" in done.stdout, (ext, done.stdout)


@needs_qgis
def test_qgis_opens_a_run_folder(runner, unet_path: Path, tmp_path: Path) -> None:
    from tests.helpers import SAMPLE, run

    out = tmp_path / "result"
    assert run(runner, "run", SAMPLE, "-o", out, "-m", unet_path, "--min-area", "300").exit_code == 0
    report = open_in_qgis(tmp_path, out / "classes.tif", out / "confidence.tif", out / "polygons.gpkg", out / "polygons.geojson")
    record = json.loads((out / "run.json").read_text())
    assert report[str(out / "classes.tif")]["renderer"] == "paletted"
    assert report[str(out / "confidence.tif")]["valid"]
    assert report[str(out / "polygons.gpkg")]["renderer"] == "categorizedSymbol"
    for name in ("polygons.gpkg", "polygons.geojson"):
        assert report[str(out / name)]["count"] == record["counts"]["polygons"]


@needs_qgis
def test_qgis_opens_what_predict_and_vectorize_write_styled(runner, unet_path: Path, tmp_path: Path) -> None:
    """predict writes classes.qml beside its map (else QGIS lists 256 numbered entries of the GeoTIFF's palette);
    vectorize writes NAME.qml beside a format that cannot hold a style: each opens with its classes' names."""
    from tests.helpers import SAMPLE, run

    names = [c.name for c in geoseg.load_model(unet_path).card.classes]
    classes = tmp_path / "map.tif"
    assert run(runner, "predict", SAMPLE, "-m", unet_path, "-o", classes).exit_code == 0
    files = [tmp_path / f"polygons.{ext}" for ext in ("shp", "geojson", "fgb")]
    for path in files:
        assert run(runner, "vectorize", classes, "-o", path).exit_code == 0
    assert sorted(p.name for p in tmp_path.glob("*.qml")) == ["map.qml", "polygons.qml"]
    report = open_in_qgis(tmp_path, classes, *files)
    assert [label for _, label in report[str(classes)]["classes"]] == names
    for path in files:
        assert report[str(path)]["renderer"] == "categorizedSymbol", path
        assert {c[1] for c in report[str(path)]["categories"]} <= set(names) and report[str(path)]["categories"], path
