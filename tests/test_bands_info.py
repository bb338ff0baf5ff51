"""``--bands`` that contradicts the model's band names, and ``geoseg info`` on class maps and mistyped names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

import geoseg
from geoseg.core.bands import crossed_bands, select_bands
from geoseg.core.classes import CLASSES_TAG, ClassInfo, class_table_json
from geoseg.core.errors import BandMismatchError
from geoseg.core.transitions import TRANSITIONS_TAG, Transitions
from tests.helpers import random_scene, run, tiny_unet, write_raster

MODEL = ["B02", "B03", "B04", "B08"]
SWAPPED = (
    "--bands feeds scene band B04 to the model's B02 and B02 to its B04: check the order "
    "(the model's bands are B02, B03, B04, B08)"
)


# ------------------------------------------------------------------------------------------- --bands against the model


def test_bands_naming_other_model_bands_are_warned() -> None:
    assert select_bands(tuple(MODEL), MODEL, "B04,B03,B02,B08") == ([3, 2, 1, 4], SWAPPED)
    assert select_bands(tuple(MODEL), MODEL, ["b04", "B03", "B02", "B08"])[1] == SWAPPED.replace("band B04", "band b04")
    one = crossed_bands("B02,B03,B08,B08", MODEL)  # B08 fed to B04 (and B08, rightly): one crossing, said with B08 repeated
    assert one == "--bands feeds scene band B08 to the model's B04: check the order (the model's bands are B02, B03, B04, B08)"
    indexes, note = select_bands(tuple(MODEL), MODEL, "B02,B03,B08,B08")
    assert indexes == [1, 2, 4, 4] and note == f"--bands feeds one scene band to several model bands: band 4 as B04, B08; {one}"
    three = crossed_bands("B03,B04,B02,B08", MODEL)
    assert three and "scene band B03 to the model's B02, B04 to its B03 and B02 to its B04: check" in three


def test_bands_by_index_or_scene_names_stay_silent() -> None:
    indexes, note = select_bands(tuple(MODEL), MODEL, "3,2,1,4")  # indexes: taken as given, but named otherwise: said
    assert indexes == [3, 2, 1, 4] and note and note.startswith("--bands 3,2,1,4 feeds scene band 3 (B04) to the model's B02")
    assert select_bands(tuple(MODEL), MODEL, "B02,B03,B04,B08") == ([1, 2, 3, 4], None)
    landsat = ("SR_B2", "SR_B3", "SR_B4", "SR_B5")  # the scene's own names, none of them a model band's
    assert select_bands(landsat, MODEL, "SR_B4,SR_B3,SR_B2,SR_B5") == ([3, 2, 1, 4], None)
    generic = ["band_1", "band_2"]  # a model without band names: nothing to contradict
    assert select_bands(("band_1", "band_2"), generic, "band_2,band_1", bands_are_named=False) == ([2, 1], None)
    assert select_bands(("B02 (blue)", "B04 (red)"), ["B02 (blue)", "B04 (red)"], "B04,B02")[1] == (
        "--bands feeds scene band B04 to the model's B02 (blue) and B02 to its B04 (red): check the order "
        "(the model's bands are B02 (blue), B04 (red))"
    )


def test_predict_warns_once_and_run_keeps_the_warning(runner, unet_path: Path, scene4: Path, tmp_path: Path) -> None:
    result = run(runner, "predict", scene4, "-m", unet_path, "-o", tmp_path / "c.tif", "--bands", "B04,B03,B02,B08")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "--bands" in line]
    assert len(warned) == 1 and warned[0].endswith(f"scene4.tif: {SWAPPED}"), result.stderr
    out = geoseg.run(scene4, tmp_path / "run", unet_path, bands="B04,B03,B02,B08").outdir
    assert any(w.endswith(SWAPPED) for w in json.loads((out / "run.json").read_text())["warnings"])


# ----------------------------------------------------------------------------------------- colour interpretation

RGB = ["red", "green", "blue"]


def test_colour_interpretation_names_bands_without_descriptions() -> None:
    bgr, rgba = ["blue", "green", "red"], [*RGB, "alpha"]
    said = "model bands matched by the scene's colour interpretation (it has no band descriptions): "
    assert select_bands((None,) * 3, RGB, colorinterp=bgr) == (
        [3, 2, 1],
        f"{said}red=band 3 (red), green=band 2 (green), blue=band 1 (blue)",
    )
    assert select_bands((None,) * 3, RGB, colorinterp=RGB) == ([1, 2, 3], None)  # an orthophoto: as it is, silent
    assert select_bands((None,) * 4, RGB, colorinterp=rgba) == ([1, 2, 3], None)  # the alpha band is the mask
    assert select_bands((None,) * 3, ["B02", "B03", "B04"], colorinterp=RGB) == (
        [3, 2, 1],
        f"{said}B02=band 3 (blue), B03=band 2 (green), B04=band 1 (red)",
    )
    assert select_bands((None,) * 3, ["B04"], colorinterp=RGB) == ([1], "model bands matched by common name: B04=red (red)")
    assert select_bands((None,) * 3, RGB, "red,green,blue", colorinterp=bgr) == ([3, 2, 1], None)
    unnamed = ["band_1", "band_2", "band_3"]
    assert select_bands((None,) * 4, unnamed, bands_are_named=False, colorinterp=rgba) == ([1, 2, 3], None)
    # what GDAL gives any 3-band byte GeoTIFF does not stop a false-colour scene being taken in order, as before
    assert select_bands((None,) * 3, ["B08", "B04", "B03"], colorinterp=RGB) == (
        [1, 2, 3],
        "scene bands taken in order as B08=1, B04=2, B03=3 (the scene has no band descriptions)",
    )
    indexes, note = select_bands((None,) * 4, MODEL, colorinterp=rgba)  # only with the alpha band do the counts agree
    assert indexes == [1, 2, 3, 4] and note and note.endswith("band 4 is marked alpha, which GDAL also reads as the mask)")
    with pytest.raises(BandMismatchError, match=r"the scene has 4 band\(s\) \[red, green, blue, alpha\]"):
        select_bands((None,) * 4, [*MODEL, "B11"], colorinterp=rgba)


def write_photo(path: Path, data: np.ndarray, colorinterp: list[str]) -> Path:
    """An orthophoto-like byte GeoTIFF without band descriptions, its bands' colour interpretation set."""
    from rasterio.enums import ColorInterp

    write_raster(path, data)
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ColorInterp[c] for c in colorinterp]
    return path


def test_predict_and_info_read_the_colour_interpretation(runner, tmp_path: Path) -> None:
    model = tmp_path / "rgb.pt"
    tiny_unet(RGB, 3, pixel_size=10.0).save(model)
    data = random_scene((3, 64, 80), dtype="uint8")
    rgb = write_photo(tmp_path / "rgb.tif", data, RGB)
    bgr = write_photo(tmp_path / "bgr.tif", data[::-1], ["blue", "green", "red"])
    alpha = np.full((1, 64, 80), 255, np.uint8)
    alpha[:, :16, :16] = 0
    rgba = write_photo(tmp_path / "rgba.tif", np.concatenate([data, alpha]), [*RGB, "alpha"])
    maps = {}
    for name, scene, extra in (("rgb", rgb, []), ("bgr", bgr, []), ("rgba", rgba, []), ("picked", rgba, ["--bands", "1,2,3"])):
        out = tmp_path / f"{name}_classes.tif"
        result = run(runner, "predict", scene, "-m", model, "-o", out, *extra)
        warned = [line for line in result.stderr.splitlines() if "warning" in line]
        assert result.exit_code == 0 and len(warned) == (name == "bgr"), result.stderr
        assert all(w.endswith("red=band 3 (red), green=band 2 (green), blue=band 1 (blue)") for w in warned), warned
        with rasterio.open(out) as ds:
            maps[name] = ds.read(1)
    assert np.array_equal(maps["bgr"], maps["rgb"])  # band 1 is blue: fed to the model's blue, and said
    assert np.array_equal(maps["rgba"], maps["picked"]) and (maps["rgba"][:16, :16] == 255).all()  # alpha: the mask
    info = json.loads(run(runner, "info", bgr, "--json").output)
    assert [b["common_name"] for b in info["band_details"]] == ["blue", "green", "red"]


# ------------------------------------------------------------------------------------------------------ geoseg info


def tagged_map(path: Path, **tags: str) -> Path:
    write_raster(path, np.zeros((20, 20), np.uint8), nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**tags)
    return path


def test_info_lists_the_classes_of_a_class_map(runner, tmp_path: Path) -> None:
    table = [ClassInfo(0, "water", "#1f78b4"), ClassInfo(1, "forest", "#33a02c"), ClassInfo(7, "crop", "#ffff99")]
    path = tagged_map(tmp_path / "classes.tif", **{CLASSES_TAG: class_table_json(table), "GEOSEG_MODEL": "tiny"})
    result = run(runner, "info", path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert CLASSES_TAG not in result.output and "GEOSEG_MODEL" in result.output  # other tags still shown
    start = next(i for i, line in enumerate(lines) if line.startswith("classes"))
    assert lines[start].split() == ["classes", "3", "(id,", "colour,", "name)"]
    assert [line.split() for line in lines[start + 1 :]] == [
        ["0", "#1f78b4", "water"],
        ["1", "#33a02c", "forest"],
        ["7", "#ffff99", "crop"],
    ]
    as_json = json.loads(run(runner, "info", path, "--json").output)
    assert json.loads(as_json["tags"][CLASSES_TAG]) == json.loads(class_table_json(table))  # the tag, whole, for scripts


def test_info_lists_some_pairs_of_a_transitions_map(runner, tmp_path: Path) -> None:
    classes = [ClassInfo(i, f"class {i}", "#336699") for i in range(6)]
    pairs = tuple((a, b) for a in range(6) for b in range(6))  # 36 pairs
    transitions = Transitions(pairs, tuple(classes))
    tags = {CLASSES_TAG: class_table_json(transitions.as_classes()), TRANSITIONS_TAG: transitions.tag()}
    result = run(runner, "info", tagged_map(tmp_path / "transitions.tif", **tags))
    assert result.exit_code == 0, result.output
    assert CLASSES_TAG not in result.output.split("transitions")[0] and "\\u2192" not in result.output
    assert max(len(line) for line in result.output.splitlines()) < 120
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("transitions "))
    assert "36 from → to pairs" in lines[start]
    assert lines[start + 1].split() == ["0", "#d9d9d9", "class", "0", "(unchanged)"]
    assert lines[start + 2].split() == ["1", "#336699", "class", "0", "→", "class", "1"]
    assert len(lines) == start + 22 and lines[-1].strip().startswith("... 16 more")


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("defualt", ["defualt does not exist", "did you mean default (the bundled model)?"]),
        ("Default", ["Default does not exist", "did you mean default"]),
        ("nothing", ["nothing does not exist", "give a model file (.pt, .onnx or default) or a scene"]),
        ("defualt.tif", ["defualt.tif does not exist", "give a model file (.pt, .onnx or default) or a scene"]),
    ],
)
def test_info_on_a_missing_name_says_what_it_takes(runner, tmp_path: Path, monkeypatch, target: str, words: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(runner, "info", target)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    line = result.stderr.strip()
    assert line.startswith("geoseg: error: ") and all(w in line for w in words), line
    assert ("did you mean" in line) == (words[1].startswith("did you mean"))


def test_info_on_an_existing_scene_is_unchanged(runner, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_raster(tmp_path / "defaults", random_scene((2, 16, 16)), driver="GTiff")  # no suffix, close to default: a scene
    result = run(runner, "info", "defaults")
    assert result.exit_code == 0 and "classes" not in result.output, result.output
