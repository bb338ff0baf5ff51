"""Hints on common slips: a scene list without its ``@``, a quoted glob given to predict, ``--bands`` indexes that
contradict the scene's band names, and torchrun's closing lines printed once."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from geoseg.core.bands import select_bands
from tests.helpers import random_scene, run, write_raster


def test_text_list_of_scenes_suggests_the_at_sign(tmp_path: Path, runner, unet_path: Path) -> None:
    for name in ("a.tif", "b.tif"):
        write_raster(tmp_path / name, random_scene((4, 40, 40)))
    listing = tmp_path / "scenes.txt"
    listing.write_text("a.tif\nb.tif\n")
    result = run(runner, "run", listing, "-o", tmp_path / "out", "-m", unet_path)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "holds 4 bands" in lines[0] and f"geoseg run @{listing} -o OUTDIR" in lines[0]
    assert not (tmp_path / "out").exists()


def test_band_list_naming_a_folder_suggests_the_at_sign(tmp_path: Path, runner, unet_path: Path) -> None:
    write_raster(tmp_path / "a.tif", random_scene((1, 40, 40)))
    (tmp_path / "tile_b").mkdir()
    listing = tmp_path / "scenes.txt"
    listing.write_text("a.tif\ntile_b\n")
    result = run(runner, "predict", listing, "-o", tmp_path / "x.tif", "-m", unet_path)
    assert result.exit_code == 1
    assert "names tile_b, a folder" in result.stderr and f"@{listing}" in result.stderr


def test_quoted_glob_given_to_predict_points_to_run(tmp_path: Path, runner, unet_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.tif", "b.tif"):
        write_raster(tmp_path / "in" / name, random_scene((4, 40, 40)))
    pattern = str(tmp_path / "in" / "*.tif")
    result = run(runner, "predict", pattern, "-m", unet_path, "-o", tmp_path / "x.tif")
    assert result.exit_code == 1
    assert "pattern matching 2 file(s)" in result.stderr and f"geoseg run '{pattern}' -o OUTDIR" in result.stderr
    # a pattern matching nothing, and a plain missing file: no hint
    for missing in (str(tmp_path / "in" / "*.tiff"), str(tmp_path / "in" / "c.tif")):
        result = run(runner, "predict", missing, "-m", unet_path, "-o", tmp_path / "x.tif")
        assert result.exit_code == 1 and "does not exist" in result.stderr and "geoseg run" not in result.stderr


def _fake_train(*args: object, on_epoch=None, **kwargs: object) -> SimpleNamespace:
    row = {"epoch": 1, "train_loss": 0.5, "val_miou": 0.4, "val_loss": 0.6, "val_accuracy": 0.7, "seconds": 1.0}
    if on_epoch:
        on_epoch(row)
    return SimpleNamespace(best_miou=0.4, best_epoch=1, model_path=Path("run/model.pt"))


@pytest.mark.parametrize(("rank", "shown"), [("0", True), ("1", False)])
def test_train_lines_are_printed_by_rank_0_only(tmp_path: Path, runner, monkeypatch, rank: str, shown: bool) -> None:
    import geoseg.training.trainer

    monkeypatch.setattr(geoseg.training.trainer, "train", _fake_train)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    result = run(runner, "train", tmp_path / "config.yaml", "-o", tmp_path / "run", "--progress", "none")
    assert result.exit_code == 0, result.output
    assert ("geoseg: epoch 1, loss 0.5000" in result.stderr) is shown
    assert ("geoseg: best epoch 1" in result.stderr) is shown


def test_train_lines_are_printed_in_one_process(tmp_path: Path, runner, monkeypatch) -> None:
    import geoseg.training.trainer

    monkeypatch.setattr(geoseg.training.trainer, "train", _fake_train)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "3")  # left over from another job: no torchrun without WORLD_SIZE
    result = run(runner, "train", tmp_path / "config.yaml", "-o", tmp_path / "run", "--progress", "none")
    assert result.exit_code == 0 and "geoseg: best epoch 1" in result.stderr


def test_band_indexes_against_band_names_warn_naming_the_fix() -> None:
    model = ["B02", "B03", "B04"]
    indexes, note = select_bands(["B01 (coastal)", "B02 (blue)", "B03 (green)", "B04 (red)"], model, "1,2,3")
    assert indexes == [1, 2, 3], "indexes are taken as given"
    assert note is not None and "scene band 1 (B01) to the model's B02 (and 2 more bands" in note
    assert note.endswith("--bands B02,B03,B04")
    assert select_bands(["B01", "B02", "B03", "B04"], model, "2,3,4")[1] is None
    assert select_bands(["B01", "B02", "B03", "B04"], model, [2, 3, 4])[1] is None
    assert select_bands(["band 1", "band 2", "band 3", "band 4"], model, "1,2,3")[1] is None
    assert select_bands([None, None, None, None], model, "1,2,3")[1] is None
    rgb = ["red", "green", "blue"]  # GDAL's colour interpretation of any 3-band byte GeoTIFF: no band name to trust
    assert select_bands([None, None, None], rgb, "3,2,1", colorinterp=rgb)[1] is None
    assert select_bands(["B01", "B02", "B05", "B06"], model, "1,2,3")[1] is None, "no band named as each model band"
    # a band picked by name is taken as meant (a scene's own names): only indexes are checked
    assert select_bands(["B01", "B02", "B03", "B04"], model, "B01,3,4")[1] is None
    assert "scene band 1 (B01)" in (select_bands(["B01", "B02", "B03", "B04"], model, "1,B03,B04")[1] or "")


def test_band_indexes_against_a_band_folder_land_in_run_json(tmp_path: Path, runner, unet_path: Path) -> None:
    folder = tmp_path / "scene"
    folder.mkdir()
    data = random_scene((5, 64, 64))
    for band, name in zip(data, ("B01", "B02", "B03", "B04", "B08")):
        write_raster(folder / f"T33UUU_20200601_{name}.tif", band[None].astype(np.uint16))
    out = tmp_path / "out"
    result = run(runner, "run", folder, "-o", out, "-m", unet_path, "--bands", "1,2,3,4", "--progress", "none")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "indexes are taken as given" in line]
    assert len(warned) == 1 and "scene band 1 (B01) to the model's B02" in warned[0]
    assert warned[0].endswith("--bands B02,B03,B04,B08")
    record = json.loads((out / "run.json").read_text())
    assert any("--bands B02,B03,B04,B08" in w for w in record["warnings"])
