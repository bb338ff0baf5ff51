"""The geoseg command end to end: outputs reopened, every bad input answered in one line."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from tests.helpers import SAMPLE, bad_raster_files, random_scene, run, write_raster

PROGRESS_LINE = re.compile(r"^geoseg: [\w /]+: \d+% \(\d+/\d+ \w+\)$")
"""What ``--progress auto`` logs off a terminal (CliRunner's stderr is not one) before a failure."""


def assert_one_line_error(result, *words: str) -> None:
    assert result.exit_code not in (0, None), result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def test_predict_names_its_map_first_and_never_writes_the_scenes_style(
    runner, unet_path: Path, scene4: Path, tmp_path: Path
) -> None:
    """A rerun is refused naming the map (not its style); scene4.tif predicted into scene4.tiff would write scene4.qml,
    the scene's own style in QGIS: the map is written without one, and a warning says so."""
    out = tmp_path / "c.tif"
    assert run(runner, "predict", scene4, "-m", unet_path, "-o", out).exit_code == 0
    again = run(runner, "predict", scene4, "-m", unet_path, "-o", out)
    assert again.exit_code == 1 and f"output {out} already exists" in again.stderr
    beside = scene4.with_suffix(".tiff")
    result = run(runner, "predict", scene4, "-m", unet_path, "-o", beside)
    assert result.exit_code == 0 and "its QGIS style was not written" in result.stderr and beside.exists()
    assert not scene4.with_suffix(".qml").exists()


def test_predict_end_to_end_and_reopen(runner, unet_path: Path, scene4: Path, tmp_path: Path) -> None:
    out, conf = tmp_path / "classes.tif", tmp_path / "confidence.tif"
    result = run(runner, "predict", scene4, "-m", unet_path, "-o", out, "--confidence", conf, "--progress", "json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert events[0] == {"stage": "predict", "done": 0, "total": 2} and events[-1]["done"] == 2
    with rasterio.open(out) as ds, rasterio.open(scene4) as src:
        assert (ds.crs, ds.transform, ds.shape) == (src.crs, src.transform, src.shape)
        assert ds.read(1).max() < 3
    with rasterio.open(conf) as ds:
        assert 0 < ds.read(1).min() <= ds.read(1).max() <= 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.qml", "classes.tif", "confidence.tif", "scene4.tif"]


def test_existing_output_needs_overwrite_and_is_kept(runner, unet_path: Path, scene4: Path, tmp_path: Path) -> None:
    out = tmp_path / "classes.tif"
    out.write_bytes(b"precious")
    assert_one_line_error(run(runner, "predict", scene4, "-m", unet_path, "-o", out), "already exists", "--overwrite")
    assert out.read_bytes() == b"precious"
    assert run(runner, "predict", scene4, "-m", unet_path, "-o", out, "--overwrite").exit_code == 0
    with rasterio.open(out) as ds:
        assert ds.count == 1


def test_info_on_model_and_scene(runner, unet_path: Path) -> None:
    result = run(runner, "info", unet_path)
    assert result.exit_code == 0 and "B02, B03, B04, B08" in result.output and "class_2" in result.output
    result = run(runner, "info", SAMPLE, "--json")
    data = json.loads(result.output)
    assert data["crs"] == "EPSG:32633" and data["count"] == 10 and data["bands"][0] == "B02"
    assert data["georeferenced"] == "yes"


def test_info_says_what_predict_would_refuse(runner, tmp_path: Path) -> None:
    rotated = write_raster(tmp_path / "r.tif", random_scene((3, 20, 20)), transform=Affine(10, 2, 330000, 2, -10, 5822040))
    result = run(runner, "info", rotated)
    assert result.exit_code == 0 and result.stderr == ""
    assert "georeferenced no: scene" in " ".join(result.output.split()) and "rotated" in result.output


def test_debug_shows_the_traceback(runner, unet_path: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    result = run(runner, "predict", text, "-m", unet_path, "-o", tmp_path / "c.tif", "--debug")
    assert result.exit_code == 1 and "Traceback" in result.stderr


def _bad_inputs(tmp: Path, scene: Path, model: Path) -> list[tuple[str, list, tuple[str, ...]]]:
    bad = bad_raster_files(tmp)
    text, jpeg, empty = bad["text"], bad["jpeg"], bad["empty"]
    data = random_scene((4, 40, 40))
    no_crs = write_raster(tmp / "nocrs.tif", data, crs=None)
    no_transform = write_raster(tmp / "notransform.tif", data, transform=None, crs="EPSG:32633")
    rotated = write_raster(tmp / "rotated.tif", data, transform=Affine(10, 2, 330000, 2, -10, 5822040))
    three = write_raster(tmp / "three.tif", data[:3])
    photo = tmp / "photo.png"
    with warnings.catch_warnings():  # a PNG with no georeferencing at all
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(photo, "w", driver="PNG", width=40, height=40, count=3, dtype="uint8") as ds:
            ds.write(np.zeros((3, 40, 40), np.uint8))
    truncated_model = tmp / "truncated.pt"
    truncated_model.write_bytes(model.read_bytes()[:5000])
    readonly = tmp / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    aoi = tmp / "far.geojson"
    aoi.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
                    }
                ],
            }
        )
    )
    out = ["-o", tmp / "out.tif"]
    return [
        ("missing scene", [tmp / "nope.tif", "-m", model, *out], ("nope.tif", "does not exist")),
        ("text file", [text, "-m", model, *out], ("text.tif", "not a raster")),
        ("jpeg header", [jpeg, "-m", model, *out], ("photo.tif", "not a raster")),
        ("empty file", [empty, "-m", model, *out], ("empty.tif", "empty")),
        ("no crs", [no_crs, "-m", model, *out], ("nocrs.tif", "no CRS", "gdal_edit")),
        ("no transform", [no_transform, "-m", model, *out], ("notransform.tif", "no geotransform")),
        ("rotated", [rotated, "-m", model, *out], ("rotated.tif", "rotated", "gdalwarp")),
        ("not georeferenced", [photo, "-m", model, *out], ("photo.png", "not georeferenced", "-a_ullr")),
        ("band count", [three, "-m", model, *out], ("expects 4 band(s)", "all of the model's bands")),
        ("band names", [scene, "-m", model, "--bands", "B02,B03,B04,B99", *out], ("B99",)),
        ("negative overlap", [scene, "-m", model, "--overlap", "-0.1", *out], ("overlap -0.1",)),
        ("overlap one", [scene, "-m", model, "--overlap", "1", *out], ("overlap 1",)),
        ("overlap px", [scene, "-m", model, "--overlap", "64px", *out], ("overlap 64px", "63px")),
        ("chip zero", [scene, "-m", model, "--chip-size", "0", *out], ("--chip-size 0",)),
        ("chip stride", [scene, "-m", model, "--chip-size", "60", *out], ("--chip-size 60", "56 or 64")),
        ("aoi misses", [scene, "-m", model, "--aoi", aoi, *out], ("far.geojson", "does not overlap")),
        ("aoi missing", [scene, "-m", model, "--aoi", tmp / "no.gpkg", *out], ("no.gpkg", "does not exist")),
        ("model missing", [scene, "-m", tmp / "none.pt", *out], ("none.pt", "does not exist")),
        ("model truncated", [scene, "-m", truncated_model, *out], ("truncated.pt", "truncated")),
        ("model not geoseg", [scene, "-m", text, *out], ("text.tif", "not a geoseg model")),
        ("output folder", [scene, "-m", model, "-o", tmp / "nofolder" / "c.tif"], ("nofolder", "does not exist")),
        ("output readonly", [scene, "-m", model, "-o", readonly / "c.tif"], ("readonly", "not writable")),
        ("output is input", [scene, "-m", model, "-o", scene], ("is the input",)),
        ("output twice", [scene, "-m", model, "-o", tmp / "c.tif", "--confidence", tmp / "c.tif"], ("same file",)),
        ("batch size", [scene, "-m", model, "--batch-size", "0", *out], ("--batch-size 0",)),
        ("block width", [scene, "-m", model, "--block-width", "100", *out], ("--block-width 100",)),
    ]


def test_bad_inputs_get_one_line_and_leave_nothing(runner, unet_path: Path, scene4: Path, tmp_path: Path) -> None:
    cases = _bad_inputs(tmp_path, scene4, unet_path)
    before = {p for p in tmp_path.rglob("*")}
    failures = []
    for name, args, words in cases:
        if name == "output readonly" and os.geteuid() == 0:
            continue  # root writes anywhere; covered on non-root machines
        result = run(runner, "predict", *args)
        try:
            assert_one_line_error(result, *words)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)
    assert {p for p in tmp_path.rglob("*")} == before, "no output may be left behind"


def test_unknown_option_is_a_usage_error(runner, scene4: Path) -> None:
    result = run(runner, "predict", scene4, "--frobnicate")
    assert result.exit_code == 2


def _option_cases(scene: Path, model: Path, tmp: Path) -> dict[str, tuple[list, tuple[str, ...]]]:
    """Option values wrong whatever the scene, model and machine, per command: args and words of the one line."""
    predict = ["predict", scene, "-m", model, "-o", tmp / "c.tif"]
    run_ = ["run", scene, "-o", tmp / "out", "-m", model]
    tile = ["tile", scene, "-o", tmp / "chips"]
    export = ["export", model, "-o", tmp / "m.onnx"]
    change = ["change", scene, scene, "-o", tmp / "change"]
    return {
        "predict chip size": ([*predict, "--chip-size", "-5"], ("--chip-size -5", "positive number of pixels")),
        "predict overlap": ([*predict, "--overlap", "1.5"], ("overlap 1.5", "[0, 1)")),
        "predict overlap text": ([*predict, "--overlap", "abc"], ("overlap 'abc'", "not a number")),
        "predict batch size": ([*predict, "--batch-size", "0"], ("--batch-size 0",)),
        "predict chip and overlap": ([*predict, "--chip-size", "64", "--overlap", "64px"], ("overlap 64px", "(64 px)")),
        "predict resolution": ([*predict, "--resolution", "abc"], ("--resolution abc",)),
        "predict bands": ([*predict, "--bands", "1,,3,4"], ("--bands", "has an empty item")),
        "predict same output twice": ([*predict, "--confidence", tmp / "c.tif"], ("-o/--output and --confidence",)),
        "predict png": (["predict", scene, "-m", model, "-o", tmp / "c.png"], ("-o/--output", "c.png", "ending in .tif")),
        "predict confidence gpkg": ([*predict, "--confidence", tmp / "c.gpkg"], ("--confidence", "ending in .tif")),
        "run simplify": ([*run_, "--simplify", "-3"], ("--simplify -3",)),
        "run batch bands": (["run", scene, scene, "-o", tmp / "b", "--bands", "1,,3"], ("--bands '1,,3'", "empty item")),
        "run preview bands": ([*run_, "--preview-bands", "4,3"], ("--preview-bands '4,3'", "names 2 bands")),
        "vectorize min area": (["vectorize", scene, "-o", tmp / "p.gpkg", "--min-area", "-1"], ("--min-area -1",)),
        "tile min labeled": ([*tile, "--min-labeled", "1.5"], ("--min-labeled 1.5",)),
        "tile overlap": ([*tile, "--overlap", "abc"], ("overlap 'abc'",)),
        "tile buffer": ([*tile, "--buffer", "-5"], ("--buffer -5",)),
        "tile chip and overlap": ([*tile, "--chip-size", "64", "--overlap", "64px"], ("overlap 64px", "(64 px)")),
        "evaluate json in report": (
            ["evaluate", scene, scene, "--report", tmp / "eval", "--json", tmp / "eval" / "m.json"],
            ("--json", "lies inside --report"),
        ),
        "export quantize": ([*export, "--quantize", "int4"], ("--quantize 'int4'",)),
        "export calibration": ([*export, "--calibration", scene], ("--calibration", "needs --quantize int8")),
        "export smooth": ([*export, "--smooth", "-1"], ("--smooth -1",)),
        "export chip size": ([*export, "--chip-size", "-64"], ("--chip-size -64",)),
        "export chip size 0": ([*export, "--chip-size", "0"], ("--chip-size 0",)),
        "export suffix": (["export", model, "-o", tmp / "m.pt"], ("must end in .onnx",)),
        "change prediction option": ([*change, "--batch-size", "2"], ("--batch-size applies to predicting scenes",)),
        "change min area": ([*change, "--min-area", "-1"], ("--min-area -1",)),
    }


@pytest.mark.parametrize("case", list(_option_cases(Path("s"), Path("m"), Path("t"))))
def test_a_bad_option_value_is_a_usage_error(case: str, runner, unet_path: Path, scene4: Path, tmp_path: Path) -> None:
    """DESIGN.md: a value wrong whatever the inputs exits 2 with geoseg's one line, like click's own usage errors."""
    (tmp_path / "eval").mkdir()  # --json's folder exists: the pair of options is what is refused
    args, words = _option_cases(scene4, unet_path, tmp_path)[case]
    before = set(tmp_path.rglob("*"))
    result = run(runner, *args)
    assert_one_line_error(result, *words)
    assert result.exit_code == 2 and result.stderr.startswith("geoseg: error: "), result.stderr
    assert set(tmp_path.rglob("*")) == before, "no output may be written"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--overlap", "64px"], ("overlap 64px", "smaller than the chip size (64 px)")),  # the model's chip
        (["--chip-size", "60"], ("--chip-size 60", "56 or 64")),  # the model's encoder stride
        (["--bands", "1,2,3,9"], ("--bands index 9 is out of range", "bands 1..4")),  # the scene's bands
    ],
    ids=["overlap of the model's chip", "chip size off the model's stride", "band beyond the scene's"],
)
def test_a_value_that_does_not_fit_the_inputs_exits_1(args, words, runner, unet_path: Path, scene4: Path, tmp_path: Path):
    before = set(tmp_path.rglob("*"))
    result = run(runner, "predict", scene4, "-m", unet_path, "-o", tmp_path / "c.tif", *args)
    assert_one_line_error(result, *words)
    assert result.exit_code == 1 and result.stderr.startswith("geoseg: error: "), result.stderr
    assert set(tmp_path.rglob("*")) == before


def test_nothing_left_behind_when_the_model_fails_midway(runner, scene4: Path, tmp_path: Path, monkeypatch) -> None:
    import geoseg.inference.backends as engine

    calls = {"n": 0}
    real = engine.TorchRunner.__call__

    def failing(self, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated failure")
        return real(self, data)

    monkeypatch.setattr(engine.TorchRunner, "__call__", failing)
    from tests.helpers import tiny_unet

    model = tiny_unet(["B02", "B03", "B04", "B08"], 3).save(tmp_path / "m.pt")
    out = tmp_path / "c.tif"
    out.write_bytes(b"old result")
    result = run(runner, "predict", scene4, "-m", model, "-o", out, "--overwrite", "--batch-size", "2", "--chip-size", "32")
    assert_one_line_error(result, "simulated failure")
    assert out.read_bytes() == b"old result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "m.pt", "scene4.tif"]


def test_model_refuses_file_without_descriptions_in_wrong_count_but_works_with_bands(runner, unet_path, tmp_path):
    data = random_scene((6, 40, 40))
    scene = write_raster(tmp_path / "six.tif", data)
    out = tmp_path / "c.tif"
    assert_one_line_error(run(runner, "predict", scene, "-m", unet_path, "-o", out), "6 band(s) without descriptions")
    assert run(runner, "predict", scene, "-m", unet_path, "-o", out, "--bands", "1,2,3,5").exit_code == 0
    with rasterio.open(out) as ds:
        assert np.all(ds.read(1) < 3)


def test_unwritable_output_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    """Root writes anywhere, so the permission answer is simulated here (the check uses os.access)."""
    from geoseg.core.errors import OutputError
    from geoseg.io.paths import check_output

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        check_output(tmp_path / "c.tif")


def test_scene_with_an_internal_mask_band(runner, unet_path: Path, tmp_path: Path) -> None:
    data = random_scene((4, 45, 67))
    scene = write_raster(tmp_path / "masked.tif", data, descriptions=["B02", "B03", "B04", "B08"])
    mask = np.full((45, 67), 255, np.uint8)
    mask[:10, :20] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(scene, "r+") as ds:
        ds.write_mask(mask)
    out = tmp_path / "c.tif"
    assert run(runner, "predict", scene, "-m", unet_path, "-o", out).exit_code == 0
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    assert (classes[:10, :20] == 255).all() and (classes[mask > 0] != 255).all()


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupted_predict_keeps_the_previous_output(tmp_path: Path, signame: str) -> None:
    """A real run interrupted mid-way: the old output stays, no temporary file is left."""
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import tiny_unet

    scene = write_raster(tmp_path / "big.tif", random_scene((4, 1024, 1024)), descriptions=["B02", "B03", "B04", "B08"])
    model = tiny_unet(["B02", "B03", "B04", "B08"], 3).save(tmp_path / "m.pt")
    out = tmp_path / "c.tif"
    out.write_bytes(b"previous result")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "geoseg",
            "predict",
            str(scene),
            "-m",
            str(model),
            "-o",
            str(out),
            "--overwrite",
            "--batch-size",
            "1",
            "--progress",
            "json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until chips are being predicted
        if line.startswith("{") and json.loads(line)["done"] >= 2:
            break
    time.sleep(0.2)
    proc.send_signal(getattr(signal, signame))
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0
    assert "interrupted" in rest and "Traceback" not in rest
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tif", "c.tif", "m.pt"]


def test_quiet_keeps_the_closing_lines_off_stderr(runner, unet_path: Path, scene4: Path, tmp_path: Path) -> None:
    """-q is "only errors": tile's and export's closing lines appear without it and not with it."""
    for args in (["tile", scene4, "--chip-size", "32"], ["export", unet_path]):
        loud = run(runner, *args, "-o", tmp_path / f"{args[0]}.onnx" if args[0] == "export" else tmp_path / "a")
        quiet = run(runner, *args, "-q", "-o", tmp_path / "b.onnx" if args[0] == "export" else tmp_path / "b")
        assert loud.exit_code == 0 and quiet.exit_code == 0, loud.output + quiet.output
        assert ("chips written" in loud.stderr or "wrote" in loud.stderr) and quiet.stderr == "", quiet.stderr


def test_an_interrupted_train_says_what_it_kept(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in train: with an epoch saved the line says to --resume; before one, to run the command again."""
    import geoseg.training.trainer

    run_dir = tmp_path / "run"

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(geoseg.training.trainer, "train", interrupted)
    config = tmp_path / "c.yaml"
    config.write_text("data: {}\n")
    result = run(runner, "train", config, "-o", run_dir)
    assert result.exit_code == 130
    assert result.stderr.strip() == "geoseg: interrupted; no epoch was completed: run the same command again to start over"
    run_dir.mkdir()
    (run_dir / "resume.pt").write_bytes(b"")
    result = run(runner, "train", config, "-o", run_dir)
    assert result.stderr.strip() == f"geoseg: interrupted; the epochs completed are kept in {run_dir}: continue with --resume"
