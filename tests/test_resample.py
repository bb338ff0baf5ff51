"""Scenes at another pixel size than the model's: chips read at the model's pixel size, outputs on either grid."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from click.testing import CliRunner

import geoseg
from geoseg.core.errors import InputError
from geoseg.core.options import PredictOptions
from geoseg.inference.blocks import assemble_blocks
from tests.helpers import run, tiny_unet, wrap, write_raster

NATIVE = Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0)


class SmoothBands(torch.nn.Module):
    """A fixed 'model': logits are the bands averaged over 5x5 pixels (a 50 m field of view at 10 m) times a gain."""

    def __init__(self, gain: float = 0.01) -> None:
        super().__init__()
        self.pool = torch.nn.AvgPool2d(5, stride=1, padding=2, count_include_pad=False)
        self.gain = gain
        self.encoder = torch.nn.Module()
        self.encoder.output_stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) * self.gain


def smooth_model(**card: object) -> geoseg.Model:
    return wrap(SmoothBands(), 3, 3, 32, "8px", **{"pixel_size": 10.0, **card})


def fields(size: int = 128, width: int | None = None, field: int = 32, seed: int = 1) -> np.ndarray:
    """Three bands of 32 px fields (10 m) with 10% noise: every class of a band-argmax model, in patches."""
    rng = np.random.default_rng(seed)
    width = width or size
    coarse = rng.random((3, size // field + 1, width // field + 1))
    data = np.kron(coarse, np.ones((field, field)))[:, :size, :width] * 2000 + 200 * rng.random((3, size, width))
    return data.astype("uint16")


def scenes(tmp: Path, data: np.ndarray) -> dict[str, Path]:
    """The native 10 m scene, its 5 m copy (each pixel split in four) and its 20 m average (four pixels in one)."""
    _, h, w = data.shape
    down = data.astype(np.float64).reshape(3, h // 2, 2, w // 2, 2).mean(axis=(2, 4)).round().astype("uint16")
    return {
        "native": write_raster(tmp / "native.tif", data, transform=NATIVE),
        "up": write_raster(tmp / "up.tif", np.kron(data, np.ones((1, 2, 2), "uint16")), transform=NATIVE * Affine.scale(0.5)),
        "down": write_raster(tmp / "down.tif", down, transform=NATIVE * Affine.scale(2)),
    }


def read(path: Path) -> tuple[np.ndarray, rasterio.Affine, tuple[float, ...]]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, tuple(ds.bounds)


def grid_of(path: Path) -> tuple[object, ...]:
    with rasterio.open(path) as ds:
        return ds.crs, ds.transform, ds.width, ds.height


def coarse_mode(classes: np.ndarray) -> np.ndarray:
    """The most frequent class of each 2x2 block (ties: the lowest id)."""
    h, w = classes.shape
    blocks = classes.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(h // 2, w // 2, 4)
    counts = np.stack([(blocks == k).sum(axis=2) for k in range(int(classes.max()) + 1)])
    return counts.argmax(axis=0).astype(np.uint8)


def test_upsampled_and_downsampled_scenes_agree_with_the_native_one(tmp_path: Path) -> None:
    paths = scenes(tmp_path, fields())
    model = smooth_model()
    maps, results = {}, {}
    for name, path in paths.items():
        results[name] = geoseg.predict(path, model, tmp_path / f"{name}_classes.tif")
        maps[name] = read(tmp_path / f"{name}_classes.tif")[0]
        assert grid_of(tmp_path / f"{name}_classes.tif") == grid_of(path)  # outputs on the scene's grid by default
    geoseg.predict(paths["down"], model, tmp_path / "off.tif", resample="off")
    native = maps["native"]
    assert np.bincount(native.ravel(), minlength=3).min() > 0.15 * native.size  # every class in patches
    up = (maps["up"] == np.kron(native, np.ones((2, 2), np.uint8))).mean()  # on the 5 m grid (native split in four)
    down = (maps["down"] == coarse_mode(native)).mean()  # on the 20 m grid
    off = (read(tmp_path / "off.tif")[0] == coarse_mode(native)).mean()
    logging.getLogger("geoseg.tests").info(
        "agreement with the native map: up %.4f, down %.4f, down without resampling %.4f", up, down, off
    )
    assert up >= 0.97 and down >= 0.97
    assert down > off  # reading at the model's pixel size is what helps
    assert not results["native"].grid["resampled"]
    assert results["up"].grid == {
        "resampled": True,
        "scene_pixel_size_m": 5.0,
        "scene_pixel_sizes_m": [5.0, 5.0],
        "model_pixel_size_m": 10.0,
        "read_pixel_size_m": 10.0,
        "output_grid": "scene",
        "output_pixel_size_m": 5.0,
    }
    assert results["down"].grid["scene_pixel_size_m"] == 20.0 and results["down"].grid["output_pixel_size_m"] == 20.0
    for name in ("up", "down"):  # a resampled scene says so, in one line
        lines = [w for w in results[name].warnings if "pixel size" in w]
        assert len(lines) == 1 and "resampled to 10 m" in lines[0] and "\n" not in lines[0]


def test_output_grid_model_gives_the_model_pixel_size(tmp_path: Path) -> None:
    paths = scenes(tmp_path, fields())
    model = smooth_model()
    geoseg.predict(paths["native"], model, tmp_path / "native_classes.tif")
    result = geoseg.predict(paths["down"], model, tmp_path / "c.tif", confidence=tmp_path / "conf.tif", output_grid="model")
    classes, transform, bounds = read(tmp_path / "c.tif")
    with rasterio.open(paths["down"]) as ds:
        scene_bounds = tuple(ds.bounds)
    assert (transform.a, -transform.e) == (10.0, 10.0) and classes.shape == (128, 128)
    assert bounds == pytest.approx(scene_bounds)
    assert grid_of(tmp_path / "conf.tif") == grid_of(tmp_path / "c.tif")
    assert result.grid["output_grid"] == "model" and result.grid["output_pixel_size_m"] == 10.0
    assert (classes == read(tmp_path / "native_classes.tif")[0]).mean() >= 0.95  # the native map's own grid
    assert "the model's 10 m grid" in " ".join(result.warnings)
    geoseg.predict(paths["up"], model, tmp_path / "up_classes.tif", probabilities=tmp_path / "p.tif")  # via the model's grid
    assert grid_of(tmp_path / "p.tif") == grid_of(paths["up"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the temporary raster is gone


def test_resample_off_keeps_todays_behaviour(tmp_path: Path) -> None:
    paths = scenes(tmp_path, fields())
    result = geoseg.predict(paths["down"], smooth_model(), tmp_path / "off.tif", resample="off")
    geoseg.predict(paths["down"], smooth_model(pixel_size=None), tmp_path / "plain.tif")  # a card without a pixel size
    assert np.array_equal(read(tmp_path / "off.tif")[0], read(tmp_path / "plain.tif")[0])
    assert grid_of(tmp_path / "off.tif") == grid_of(paths["down"])
    assert not result.grid["resampled"]
    assert any("pixel size 20 m differs from the model's 10 m" in w and "results may be poor" in w for w in result.warnings)


def test_a_scene_within_25_percent_is_not_resampled(tmp_path: Path) -> None:
    scene = write_raster(tmp_path / "s.tif", fields(), transform=Affine(12.0, 0, 330000.0, 0, -12.0, 5822040.0))
    result = geoseg.predict(scene, smooth_model(), tmp_path / "c.tif")
    geoseg.predict(scene, smooth_model(pixel_size=None), tmp_path / "plain.tif")
    assert not result.grid["resampled"] and result.grid["scene_pixel_size_m"] == 12.0
    assert not any("pixel size" in w for w in result.warnings)
    assert np.array_equal(read(tmp_path / "c.tif")[0], read(tmp_path / "plain.tif")[0])


def test_pixels_off_in_one_axis_are_resampled_in_that_axis(tmp_path: Path) -> None:
    """7 m wide and 13 m tall (their mean is the model's 10 m): each axis is checked and resampled on its own."""
    data = fields(size=130, width=140)
    scene = write_raster(tmp_path / "s.tif", data, transform=Affine(7.0, 0, 330000.0, 0, -13.0, 5822040.0))
    result = geoseg.predict(scene, smooth_model(), tmp_path / "c.tif", output_grid="model")
    assert result.grid["resampled"] and result.grid["read_pixel_size_m"] == 10.0
    assert result.grid["scene_pixel_sizes_m"] == [7.0, 13.0]
    assert sum("pixel size 7 x 13 m differs from the model's 10 m" in w for w in result.warnings) == 1
    with rasterio.open(tmp_path / "c.tif") as ds:
        assert (ds.transform.a, -ds.transform.e) == pytest.approx((10.0, 10.0), rel=0.02)
        assert (ds.width, ds.height) == (98, 169)  # 140 x 7 m and 130 x 13 m at 10 m


def test_nodata_of_the_scene_stays_nodata_on_its_grid(tmp_path: Path) -> None:
    data = fields()[:, :, :128]
    down = data.astype(np.float64).reshape(3, 64, 2, 64, 2).mean(axis=(2, 4)).round().astype("uint16")
    down[:, 10:30, 5:40] = 0
    down[:, :, 60:] = 0
    scene = write_raster(tmp_path / "s.tif", down, transform=NATIVE * Affine.scale(2), nodata=0)
    geoseg.predict(scene, smooth_model(), tmp_path / "c.tif", confidence=tmp_path / "conf.tif")
    nodata = (down == 0).all(axis=0)
    for name in ("c.tif", "conf.tif"):
        band = read(tmp_path / name)[0]
        assert (band[nodata] == 255).all() and (band[~nodata] != 255).all()


@pytest.mark.parametrize("output_grid", ["scene", "model"])
def test_vertical_blocks_give_the_same_pixels(tmp_path: Path, output_grid: str) -> None:
    data = fields(96, 640)  # 20 m: 48 x 320 pixels, 96 x 640 at the model's 10 m
    down = data.astype(np.float64).reshape(3, 48, 2, 320, 2).mean(axis=(2, 4)).round().astype("uint16")
    scene = write_raster(tmp_path / "s.tif", down, transform=NATIVE * Affine.scale(2))
    model = smooth_model()
    opts = {"output_grid": output_grid, "chip_size": 32}
    geoseg.predict(scene, model, tmp_path / "one.tif", confidence=tmp_path / "one_c.tif", **opts)
    geoseg.predict(scene, model, tmp_path / "blocks.tif", confidence=tmp_path / "blocks_c.tif", block_width=256, **opts)
    for a, b in (("one.tif", "blocks.tif"), ("one_c.tif", "blocks_c.tif")):
        assert np.array_equal(read(tmp_path / a)[0], read(tmp_path / b)[0])
        assert grid_of(tmp_path / a) == grid_of(tmp_path / b)


def test_blocks_predicted_apart_join_into_the_same_pixels(tmp_path: Path) -> None:
    data = fields(96, 640)
    down = data.astype(np.float64).reshape(3, 48, 2, 320, 2).mean(axis=(2, 4)).round().astype("uint16")
    scene = write_raster(tmp_path / "s.tif", down, transform=NATIVE * Affine.scale(2))
    model = smooth_model()
    geoseg.predict(scene, model, tmp_path / "whole.tif")
    parts = [
        (x0, geoseg.predict(scene, model, tmp_path / f"b{x0}.tif", columns=(x0, x1)))
        for x0, x1 in ((0, 100), (100, 257), (257, 320))
    ]
    assert [read(tmp_path / f"b{x0}.tif")[0].shape[1] for x0, _ in parts] == [100, 157, 63]
    assemble_blocks(scene, parts, {"classes": tmp_path / "joined.tif"}, model.card)
    assert np.array_equal(read(tmp_path / "joined.tif")[0], read(tmp_path / "whole.tif")[0])


def test_help_explains_the_options() -> None:
    for command in ("predict", "run"):
        text = " ".join(run(CliRunner(), command, "--help").output.split())
        assert "--resample [auto|off]" in text and "--output-grid [scene|model]" in text
        assert "pixel size is more than 25% off the model's" in text


@pytest.mark.slow
def test_the_cli_takes_the_options(tmp_path: Path) -> None:
    paths = scenes(tmp_path, fields(64))
    model = tiny_unet(3, 3, pixel_size=10.0).save(tmp_path / "m.pt")
    result = run(CliRunner(), "predict", paths["down"], "-m", model, "-o", tmp_path / "c.tif", "--resample", "off")
    assert result.exit_code == 0, result.output
    assert grid_of(tmp_path / "c.tif") == grid_of(paths["down"])
    result = run(CliRunner(), "predict", paths["down"], "-m", model, "-o", tmp_path / "m.tif", "--output-grid", "model")
    assert result.exit_code == 0, result.output
    assert read(tmp_path / "m.tif")[1].a == 10.0


@pytest.mark.slow
def test_run_records_the_grid(tmp_path: Path) -> None:
    paths = scenes(tmp_path, fields(64))
    model = tiny_unet(3, 3, pixel_size=10.0).save(tmp_path / "m.pt")
    result = run(CliRunner(), "run", paths["down"], "-m", model, "-o", tmp_path / "out", "--output-grid", "model")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["grid"] == {
        "resampled": True,
        "scene_pixel_size_m": 20.0,
        "scene_pixel_sizes_m": [20.0, 20.0],
        "model_pixel_size_m": 10.0,
        "read_pixel_size_m": 10.0,
        "output_grid": "model",
        "output_pixel_size_m": 10.0,
    }
    assert record["parameters"]["resample"] == "auto" and record["parameters"]["output_grid"] == "model"
    assert sum("resampled to 10 m" in w for w in record["warnings"]) == 1
    assert read(tmp_path / "out" / "classes.tif")[1].a == 10.0
    net = smooth_model()  # a scene split into blocks (as on Dask workers) records the same grid
    parts = [
        (x0, geoseg.predict(paths["down"], net, tmp_path / f"b{x0}.tif", confidence=tmp_path / f"c{x0}.tif", columns=(x0, x1)))
        for x0, x1 in ((0, 20), (20, 32))
    ]
    record = geoseg.run(paths["down"], tmp_path / "split", net, blocks=parts).record
    assert record["grid"]["resampled"] and record["grid"]["output_grid"] == "scene" and record["counts"]["blocks"] == 2
    assert grid_of(tmp_path / "split" / "classes.tif") == grid_of(paths["down"])


def band_folder(tmp: Path) -> Path:
    """B02, B03, B04 as single-band 10 m files: a multi-file source."""
    folder = tmp / "bands"
    folder.mkdir()
    for name, band in zip(("B02", "B03", "B04"), fields(64)):
        write_raster(folder / f"T33UUU_20170216T102101_{name}.tif", band, transform=NATIVE)
    return folder


def test_resolution_is_carried_in_the_options(tmp_path: Path) -> None:
    from geoseg.flows.dask import scene_blocks
    from geoseg.io.sources import RESOLUTION_ENV

    folder = band_folder(tmp_path)
    model = wrap(SmoothBands(), ["B02", "B03", "B04"], 3, 32, "8px")
    assert RESOLUTION_ENV not in os.environ  # nothing set for the process: the options carry it (to any Dask worker)
    result = geoseg.predict(folder, model, tmp_path / "c20.tif", resolution=20)
    assert read(tmp_path / "c20.tif")[0].shape == (32, 32) and read(tmp_path / "c20.tif")[1].a == 20.0
    assert result.grid["scene_pixel_size_m"] == 20.0
    geoseg.predict(folder, model, tmp_path / "c10.tif")
    assert read(tmp_path / "c10.tif")[1].a == 10.0
    assert scene_blocks(str(folder), 256, 20) == [(0, 32)] and scene_blocks(str(folder), 256) == [(0, 64)]
    assert PredictOptions(resolution="20").resolution == 20.0 and "resolution" not in PredictOptions().record()
    with pytest.raises(InputError, match="^--resolution -5 must be a positive number of metres"):
        PredictOptions(resolution=-5)


@pytest.mark.slow
def test_run_takes_the_resolution_from_the_options(tmp_path: Path) -> None:
    folder = band_folder(tmp_path)
    model = wrap(SmoothBands(), ["B02", "B03", "B04"], 3, 32, "8px")
    record = geoseg.run(folder, tmp_path / "out", model, resolution=20).record
    assert record["inputs"]["resolution"] == 20.0
    assert read(tmp_path / "out" / "classes.tif")[1].a == 20.0 and (tmp_path / "out" / "preview.png").exists()


@pytest.mark.parametrize(("option", "value"), [("--resample", "on"), ("--output-grid", "native")])
def test_bad_option_values_are_refused_in_one_line(tmp_path: Path, option: str, value: str) -> None:
    scene = write_raster(tmp_path / "s.tif", fields(64))
    result = run(CliRunner(), "predict", scene, "-m", "default", "-o", tmp_path / "c.tif", option, value)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
    key = option.lstrip("-").replace("-", "_")
    with pytest.raises(InputError, match=f"^{option} '{value}' is not known: use") as info:
        geoseg.predict(scene, smooth_model(), tmp_path / "c.tif", **{key: value})
    assert "\n" not in str(info.value)
    assert not (tmp_path / "c.tif").exists()
    with pytest.raises(InputError):
        PredictOptions(**{key: value})


@pytest.mark.slow
def test_a_resampled_scene_split_on_dask_workers_equals_one_process(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="Dask is in the dev extra: pip install -e '.[dev]'")
    data = fields(64, 1024)
    down = data.astype(np.float64).reshape(3, 32, 2, 512, 2).mean(axis=(2, 4)).round().astype("uint16")
    scene = write_raster(tmp_path / "wide.tif", down, transform=NATIVE * Affine.scale(2))  # 20 m, 512 px wide
    model = tiny_unet(3, 3, pixel_size=10.0).save(tmp_path / "m.pt")
    one = run(CliRunner(), "run", scene, "-o", tmp_path / "one", "-m", model)
    two = run(CliRunner(), "run", scene, "-o", tmp_path / "two", "-m", model, "--workers", 2, "--block-width", 256)
    assert one.exit_code == two.exit_code == 0, two.output
    record = json.loads((tmp_path / "two" / "wide" / "run.json").read_text())
    assert record["counts"]["blocks"] == 2 and record["grid"]["resampled"] and record["grid"]["output_grid"] == "scene"
    for raster in ("classes.tif", "confidence.tif"):
        assert grid_of(tmp_path / "one" / raster) == grid_of(tmp_path / "two" / "wide" / raster) == grid_of(scene)
        assert np.array_equal(read(tmp_path / "one" / raster)[0], read(tmp_path / "two" / "wide" / raster)[0])


@pytest.mark.parametrize("kind", ["up", "down"])
def test_every_valid_pixel_inside_the_area_of_interest_gets_a_class(tmp_path: Path, kind: str) -> None:
    """Outputs brought back to the scene's grid lose no valid pixel at the edge of an area of interest or beside a
    NaN block: the model's grid is masked only on the scene's grid (bilinear never meets a masked model pixel)."""
    import geopandas as gpd
    import shapely
    from rasterio.features import geometry_mask

    data = fields().astype("float32")
    data[:, 40:60, 70:90] = np.nan
    if kind == "up":  # 5 m: each pixel split in four
        scene = write_raster(
            tmp_path / "up.tif", np.kron(data, np.ones((1, 2, 2), "float32")), transform=NATIVE * Affine.scale(0.5)
        )
    else:  # 20 m: four pixels averaged
        down = data.reshape(3, 64, 2, 64, 2).mean(axis=(2, 4))
        scene = write_raster(tmp_path / "down.tif", down, transform=NATIVE * Affine.scale(2))
    with rasterio.open(scene) as ds:
        left, bottom, right, top = ds.bounds
        aoi_box = shapely.box(left + 0.23 * (right - left), bottom + 0.31 * (top - bottom), right - 77.0, top - 93.0)
        inside = geometry_mask([aoi_box], ds.shape, ds.transform, invert=True)
        valid = np.isfinite(ds.read()).all(axis=0)
        crs = ds.crs
    gpd.GeoDataFrame(geometry=[aoi_box], crs=crs).to_file(tmp_path / "aoi.gpkg")
    result = geoseg.predict(scene, smooth_model(), tmp_path / "c.tif", aoi=str(tmp_path / "aoi.gpkg"), device="cpu")
    assert result.grid["resampled"]
    with rasterio.open(tmp_path / "c.tif") as out:
        classes = out.read(1)
    assert (classes[inside & valid] != 255).all(), "a valid pixel inside the area of interest is nodata"
    assert (classes[~inside | ~valid] == 255).all()


def test_resolution_on_a_single_raster_says_it_is_not_applied(tmp_path: Path) -> None:
    scene = write_raster(tmp_path / "one.tif", fields(64), transform=NATIVE)
    result = geoseg.predict(scene, smooth_model(), tmp_path / "c.tif", resolution=20, device="cpu")
    (line,) = [w for w in result.warnings if "--resolution" in w]
    assert "applies to multi-file sources" in line and "gdalwarp -tr 20 20" in line
    assert read(tmp_path / "c.tif")[1].a == 10.0  # its own grid


def test_web_mercator_pixels_are_measured_on_the_ground(tmp_path: Path) -> None:
    """EPSG:3857's "metres" are 1/cos(latitude) too long: 16.4 units at 52.5°N are 10 m on the ground, the model's
    size, so the scene is neither warned about nor resampled, and a pixel's area is 100 m² (for --min-area)."""
    from geoseg.inference.checks import check_pixel_size
    from geoseg.io.pixels import pixel_area_m2, pixel_sizes_m

    unit = 10.0 / np.cos(np.radians(52.5))
    y0 = 6_891_000.0  # about 52.5°N in EPSG:3857
    path = write_raster(
        tmp_path / "m.tif", np.ones((3, 20, 20), np.uint16), crs="EPSG:3857", transform=Affine(unit, 0, 1_450_000.0, 0, -unit, y0)
    )
    with rasterio.open(path) as ds:
        lat = np.degrees(2 * np.arctan(np.exp((y0 - 10 * unit) / 6_378_137.0)) - np.pi / 2)  # the scene's centre
        expected = unit * np.cos(np.radians(lat))
        assert pixel_sizes_m(ds) == pytest.approx((expected, expected), rel=5e-3) and abs(expected - 10) < 0.05
        assert pixel_area_m2(ds) == pytest.approx(expected**2, rel=1e-2)
        warnings: list[str] = []
        assert not check_pixel_size(ds, 10.0, warnings, "auto") and warnings == []


def test_a_scene_far_coarser_than_the_model_is_predicted_on_its_own_pixels(tmp_path: Path) -> None:
    """60 m pixels for a 10 m model: read at 10 m they would be predicted on 36x the pixels (hours, no new detail), so
    --resample auto warns and carries on as --resample off would (DESIGN: warn and carry on)."""
    scene = write_raster(tmp_path / "s.tif", fields(size=40, width=40), transform=Affine(60.0, 0, 330000.0, 0, -60.0, 5822040.0))
    result = geoseg.predict(scene, smooth_model(), tmp_path / "c.tif")
    assert not result.grid["resampled"] and result.chips_total == 4  # the 40 px scene in 4 chips, not 36x as many
    assert sum("6x coarser" in w and "about 36x its pixels" in w and "on its own pixels" in w for w in result.warnings) == 1
    three = write_raster(tmp_path / "t.tif", fields(size=40, width=40), transform=Affine(30.0, 0, 330000.0, 0, -30.0, 5822040.0))
    assert geoseg.predict(three, smooth_model(), tmp_path / "t3.tif").grid["resampled"]  # 3x: read at 10 m


def test_oblique_and_standard_mercator_pixels_are_measured_on_the_ground(tmp_path: Path) -> None:
    """Swiss LV95 (oblique Mercator, true scale near Bern) and a Mercator true at 52.5N: 10 units are about 10 m."""
    from pyproj import Transformer

    from geoseg.io.pixels import pixel_sizes_m

    for crs, (lon, lat) in {"EPSG:2056": (7.44, 46.95), "+proj=merc +lat_ts=52.5 +datum=WGS84": (13.0, 52.5)}.items():
        x0, y0 = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        other = write_raster(
            tmp_path / "o.tif", np.ones((3, 20, 20), np.uint16), crs=crs, transform=Affine(10, 0, x0, 0, -10, y0)
        )
        with rasterio.open(other) as ds:
            assert pixel_sizes_m(ds) == pytest.approx((10.0, 10.0), rel=2e-3), crs
