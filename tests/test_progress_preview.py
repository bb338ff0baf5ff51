"""preview.png's bands (natural colour by band name, ``--preview-bands``) and progress lines in logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

import geoseg
from geoseg.core.errors import InputError
from geoseg.core.options import RunOptions
from geoseg.report.preview import choose_bands, scene_preview_bands
from tests.helpers import ROOT, random_scene, run, tiny_unet, write_raster

S2 = ["B02", "B03", "B04", "B08"]
TM_SR = ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"]
OLI_SR = ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"]
PLAIN = ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]


@pytest.mark.parametrize(
    ("descriptions", "metadata", "expected", "reason"),
    [
        (S2, "", (3, 2, 1), "Sentinel-2 band names"),
        (["B08", "B02", "B04", "B03"], "", (3, 4, 2), "Sentinel-2 band names"),
        (["B2", "B3", "B4", "B8", "B8A", "B11", "B12"], "", (3, 2, 1), "Sentinel-2 band names"),
        (["nir", "Blue", "green", "RED"], "", (4, 3, 2), "band names red, green, blue"),
        (OLI_SR, "", (4, 3, 2), "Landsat 8/9 OLI"),
        (TM_SR, "", (3, 2, 1), "Landsat 4-7 TM/ETM+"),  # no SR_B6 (band 6 is thermal on TM/ETM+)
        (["SR_B1", "SR_B2", "SR_B3", "SR_B4", "ST_B6"], "", (3, 2, 1), "Landsat 4-7 TM/ETM+"),
        (["B1", "B2", "B3", "B4", "B5", "B6_VCID_1", "B6_VCID_2", "B7", "B8"], "", (3, 2, 1), "Landsat 4-7 TM/ETM+"),
        (PLAIN, "LE07_L2SP_193023_20010601_stack.tif", (3, 2, 1), "Landsat 4-7 TM/ETM+"),
        (PLAIN, "LANDSAT_5 TM scene.tif", (3, 2, 1), "Landsat 4-7 TM/ETM+"),
        (PLAIN, "LC09_L1TP_193023_20220601_stack.tif", (4, 3, 2), "Landsat 8/9 OLI"),
        (PLAIN + ["B9", "B10", "B11"], "", (4, 3, 2), "Landsat 8/9 OLI"),
        (PLAIN, "", (4, 3, 2), "Sentinel-2 / Landsat 8-9 band numbering"),  # nothing says TM/ETM+: B4 is red
        (["SR_B2", "SR_B3", "SR_B4"], "", (3, 2, 1), "assumed"),
    ],
)
def test_natural_colour_bands_by_name(descriptions: list[str], metadata: str, expected: tuple, reason: str) -> None:
    picked = choose_bands(descriptions, metadata=metadata)
    assert picked.indexes == expected and reason in picked.reason, picked
    assert picked.label == ", ".join(descriptions[i - 1] for i in expected)


def test_colour_interpretation_and_fallbacks() -> None:
    ci = ColorInterp
    assert choose_bands([None] * 4, [ci.blue, ci.green, ci.red, ci.undefined]).indexes == (3, 2, 1)
    # names say more than GDAL's default RGB interpretation of a 3-band byte file
    assert choose_bands(["blue", "green", "red"], [ci.red, ci.green, ci.blue]).indexes == (3, 2, 1)
    fallback = choose_bands([None] * 5, [ci.gray] + [ci.undefined] * 4)
    assert fallback.indexes == (1, 2, 3) and fallback.reason.endswith("the first three bands") and not fallback.grey
    assert "no red, green and blue bands found by band name or colour interpretation" in fallback.reason
    for count in (1, 2):
        grey = choose_bands(["VV", "VH"][:count])
        assert grey.indexes == (1, 1, 1) and grey.grey and grey.label == "VV" and grey.reason.endswith("band 1 in grey")
    assert choose_bands(S2, requested="B08").indexes == (4, 4, 4)
    assert choose_bands(S2, requested="4,b04,2").indexes == (4, 3, 2)  # indexes and names, names in any case


def test_preview_bands_values_are_checked() -> None:
    assert RunOptions.from_mapping({"preview_bands": " 4, 3 ,2"}).preview_bands == ("4", "3", "2")
    assert RunOptions().record()["preview_bands"] is None
    assert RunOptions(preview_bands="B08").record()["preview_bands"] == "B08"
    for value, words in (
        ("4,3", "names 2 bands: give 1 (shown in grey) or 3"),
        ("1,2,3,4", "names 4 bands"),
        ("4,,2", "has the item ''"),
        ("0", "has the item '0'"),
        ("", "has the item ''"),
    ):
        with pytest.raises(InputError, match=re.escape(words)):
            RunOptions(preview_bands=value)
    with pytest.raises(InputError, match=re.escape("--preview-bands index 5 is out of range: the scene has bands 1..4")):
        choose_bands(S2, requested="5,3,2")
    with pytest.raises(InputError, match=re.escape("--preview-bands name 'purple' is not a band description of the scene")):
        choose_bands(S2, requested="purple,3,2")
    assert choose_bands(S2, requested="red,3,2").indexes[0] == 3  # a common name finds its band (B04)


def test_sensor_metadata_of_the_scene_file(tmp_path: Path) -> None:
    """The dataset's SPACECRAFT_ID tag tells Landsat 7 from Landsat 8 when the band names alone cannot."""
    path = write_raster(tmp_path / "stack.tif", random_scene((7, 16, 16)), descriptions=PLAIN)
    assert scene_preview_bands(path).indexes == (4, 3, 2)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(SPACECRAFT_ID="LANDSAT_7", SENSOR_ID="ETM")
    picked = scene_preview_bands(path)
    assert picked.indexes == (3, 2, 1) and "Landsat 4-7 TM/ETM+" in picked.reason


def stripes(path: Path, descriptions: list[str]) -> Path:
    """Band k (of the first four) bright (3000) in the k-th of four vertical stripes, dark (100) elsewhere and
    in a margin on both sides; further bands dark. After the 2-98% stretch each band is white in its stripe and
    black elsewhere, so the preview's colour in stripe k says which of red, green, blue shows band k."""
    data = np.full((len(descriptions), 40, 96), 100, "uint16")
    for k in range(min(4, len(descriptions))):
        data[k, :, 8 + 20 * k : 28 + 20 * k] = 3000
    return write_raster(path, data, descriptions=descriptions)


def stripe_colours(png: Path) -> list[tuple[int, int, int]]:
    """The colours of the four stripes of the scene (left panel of preview.png), left to right (0 or 255 each)."""
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB"))
    left = image[:, : image.shape[1] // 2].astype(int)
    drawn = (left < 250).any(axis=2)  # the page is white; the scene has dark margins on both sides
    row = int(np.argmax(drawn.sum(axis=1)))  # a row through the scene: it is the widest drawn thing
    columns = np.flatnonzero(drawn[row])
    x0, x1 = columns[0], columns[-1] + 1
    return [tuple(int(v) for v in (left[row, x0 + int((x1 - x0) * (18 + 20 * k) / 96)] > 127) * 255) for k in range(4)]


BLACK, WHITE, RED, GREEN, BLUE = (0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_preview_png_shows_the_bands_picked(tmp_path: Path) -> None:
    from geoseg.report.preview import write_preview

    model = tiny_unet(S2, 3, pixel_size=10.0)
    scene = stripes(tmp_path / "scene.tif", ["B08", "B02", "B04", "B03"])  # bands matched to the model by name
    result = geoseg.run(scene, tmp_path / "out", model, preview_bands="1,3,4")  # through the Python API
    assert stripe_colours(tmp_path / "out" / "preview.png") == [RED, BLACK, GREEN, BLUE]
    assert result.record["parameters"]["preview_bands"] == "1,3,4"
    classes = tmp_path / "out" / "classes.tif"
    for value, colours in (
        (None, [BLACK, BLUE, RED, GREEN]),  # by name: red = B04 (band 3), green = B03 (band 4), blue = B02 (band 2)
        ("B08", [WHITE, BLACK, BLACK, BLACK]),  # one band: grey
    ):
        png = write_preview(scene, classes, model.card.classes, tmp_path / "p.png", bands=scene_preview_bands(scene, value))
        assert stripe_colours(png) == colours, value


def test_bad_preview_bands_are_one_line_and_write_nothing(tmp_path: Path, runner, unet_path: Path) -> None:
    scene = stripes(tmp_path / "scene.tif", S2)
    before = sorted(p.name for p in tmp_path.iterdir())
    for value, words, code in (  # what the scene decides exits 1; a value wrong for any scene is a usage error, 2
        ("5", ["--preview-bands index 5 is out of range", "bands 1..4"], 1),
        ("extra,B03,B02", ["--preview-bands name 'extra'", "found: B02, B03, B04, B08; bands 1..4"], 1),
        ("4,3", ["--preview-bands '4,3' names 2 bands"], 2),
    ):
        result = run(runner, "run", scene, "-o", tmp_path / "out" / "deeper", "-m", unet_path, "--preview-bands", value)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == code and len(lines) == 1 and lines[0].startswith("geoseg: error: "), result.stderr
        assert all(w in lines[0] for w in words), lines[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_batch_runs_take_preview_bands_per_scene(tmp_path: Path, runner, unet_path: Path) -> None:
    """A name one scene lacks fails that scene only (the batch goes on); a bad count is refused before any scene."""
    with_nir = stripes(tmp_path / "a.tif", [*S2, "extra"])
    without = stripes(tmp_path / "b.tif", S2)
    result = run(runner, "run", with_nir, without, "-o", tmp_path / "out", "-m", unet_path, "--preview-bands", "extra")
    assert result.exit_code == 3, result.output
    record = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert [s["status"] for s in record["scenes"]] == ["done", "failed"]
    assert "--preview-bands name 'extra'" in record["scenes"][1]["reason"]
    assert stripe_colours(tmp_path / "out" / "a" / "preview.png") == [BLACK] * 4  # 'extra' is band 5: no stripe
    result = run(runner, "run", with_nir, without, "-o", tmp_path / "out2", "-m", unet_path, "--preview-bands", "1,2")
    assert result.exit_code == 2 and "names 2 bands" in result.stderr and not (tmp_path / "out2").exists()


def geoseg_cli(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """The geoseg command in a fresh process: stderr is a pipe, not a terminal."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "geoseg", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


PROGRESS = re.compile(r"^geoseg: ([\w /]+): (\d+)% \((\d+)/(\d+) (\w+)\)$")


def progress_lines(stderr: str) -> dict[str, list[tuple[int, int, int]]]:
    """Percent, done, total of each progress line, per stage."""
    stages: dict[str, list[tuple[int, int, int]]] = {}
    for line in stderr.splitlines():
        if m := PROGRESS.match(line):
            stages.setdefault(m.group(1), []).append((int(m.group(2)), int(m.group(3)), int(m.group(4))))
    return stages


@pytest.mark.slow
def test_progress_lines_in_logs(tmp_path: Path) -> None:
    """Off a terminal ``--progress auto`` logs a line every ~10% of each stage; -q silences it; json stays JSON."""
    from geoseg.model.onnx import export_onnx

    model = export_onnx(tiny_unet(S2, 3, pixel_size=10.0), tmp_path / "tiny.onnx")  # no torch in the subprocesses
    scene = write_raster(tmp_path / "scene.tif", random_scene((4, 300, 420)), descriptions=S2)
    done = geoseg_cli("run", scene, "-o", tmp_path / "out", "-m", model, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stages = progress_lines(done.stderr)
    assert set(stages) == {"predict"}, done.stderr  # vectorize has one strip here: no progress to tell
    predict = stages["predict"]
    total = predict[0][2]
    assert total > 20 and predict[-1] == (100, total, total)
    assert 5 <= len(predict) <= 11, predict  # about one line per 10%, not one per chip
    assert all(b[0] // 10 > a[0] // 10 for a, b in zip(predict, predict[1:])), predict  # one line per tenth at most
    assert all(p == 100 * d // t for p, d, t in predict)
    assert all(PROGRESS.match(line) for line in done.stderr.splitlines()), done.stderr  # nothing else at this verbosity
    quiet = geoseg_cli("run", scene, "-o", tmp_path / "quiet", "-m", model, "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    machine = geoseg_cli("run", scene, "-o", tmp_path / "json", "-m", model, "--progress", "json", cwd=tmp_path)
    assert machine.returncode == 0, machine.stderr
    events = [json.loads(line) for line in machine.stderr.splitlines()]  # every line is JSON
    assert events and all(set(e) == {"stage", "done", "total"} for e in events)
    assert {"stage": "predict", "done": total, "total": total} in events


@pytest.mark.slow
def test_training_logs_each_epoch_off_a_terminal(tmp_path: Path) -> None:
    from tests.test_train import learnable_scene, small_config

    image, labels, _ = learnable_scene(tmp_path)
    config = tmp_path / "config.yaml"
    settings = small_config(image, labels, epochs=2, samples_per_epoch=16, threads=1)
    settings["split"].update(val_fraction=0.01, block_size=32)  # one 32 px validation block: under 1000 pixels a class
    config.write_text(json.dumps(settings))
    done = geoseg_cli("train", config, "-o", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    epochs = [line for line in done.stderr.splitlines() if re.match(r"^geoseg: epoch \d+, loss ", line)]
    assert [line.split(",")[0] for line in epochs] == ["geoseg: epoch 1", "geoseg: epoch 2"], done.stderr
    stages = progress_lines(done.stderr)
    assert stages["epoch 1/2"][-1] == (100, 2, 2) and stages["epoch 2/2"][-1] == (100, 2, 2), done.stderr
    # the small validation set: classes scored on fewer than 1000 pixels are named once, not every epoch
    assert done.stderr.count("warning: validation: scores of") == 1, done.stderr
    assert (tmp_path / "run" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    quiet = geoseg_cli("train", config, "-o", tmp_path / "quiet", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and not progress_lines(quiet.stderr), quiet.stderr
    assert not re.search(r"epoch \d+, loss", quiet.stderr), quiet.stderr
