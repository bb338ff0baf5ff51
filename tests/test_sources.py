"""Scene sources: band folders, band lists, STAC items, Sentinel-2 SAFE, Landsat MTL as one virtual scene (issue 15).

Every source is generated here (nothing is downloaded): single-band GeoTIFFs
at 10 and 20 m, a STAC item with local assets (and one served over HTTP to
exercise ``/vsicurl/``), a SAFE-like Level-2A layout, a Landsat MTL. Class
maps predicted through a source are compared with those of the same bands
pre-stacked in one GeoTIFF.
"""

from __future__ import annotations

import functools
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

import geoseg
from geoseg.core.bands import parse_requested, select_bands
from geoseg.core.errors import BandMismatchError, InputError, RasterError
from geoseg.core.sensors import common_name, guess_sensor
from geoseg.io.raster import gdal_env, open_scene
from geoseg.io.sources import source_options, virtual_scene
from geoseg.training.config import TrainConfig, parse_config
from tests.helpers import ROOT, BandLogits, random_scene, tiny_unet, wrap, write_raster
from tests.test_trust import refused

ORIGIN = (330000.0, 5822040.0)
S2_10M = ("B02", "B03", "B04", "B08")
S2_20M = ("B8A", "B11")
L8 = "LC08_L2SP_193023_20200601_20200824_02_T1"


def band_file(folder: Path, name: str, size: int, res: float, seed: int, **kwargs: object) -> Path:
    """One single-band uint16 GeoTIFF of ``size`` px at ``res`` m, covering the same ground as the others."""
    transform = Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1])
    options = {"transform": transform, "nodata": 0, **kwargs}
    return write_raster(folder / name, random_scene((1, size, size), seed=seed) + 1, **options)  # type: ignore[arg-type]


@pytest.fixture
def s2_folder(tmp_path: Path) -> Path:
    """Sentinel-2 bands as one file each: B02, B03, B04, B08 at 10 m (64 px) and B8A, B11 at 20 m (32 px)."""
    folder = tmp_path / "S2B_T33UUU"
    folder.mkdir()
    for i, name in enumerate(S2_10M):
        band_file(folder, f"T33UUU_20170216T102101_{name}.tif", 64, 10.0, i)
    for i, name in enumerate(S2_20M):
        band_file(folder, f"T33UUU_20170216T102101_{name}.tif", 32, 20.0, 10 + i)
    (folder / "notes.txt").write_text("not a band")
    return folder


@pytest.fixture
def l8_folder(tmp_path: Path) -> Path:
    """Landsat-8 Collection 2 surface reflectance bands SR_B1..SR_B7, 30 m, one file each."""
    folder = tmp_path / L8
    folder.mkdir()
    for n in range(1, 8):
        band_file(folder, f"{L8}_SR_B{n}.TIF", 48, 30.0, 20 + n)
    write_raster(
        folder / f"{L8}_QA_PIXEL.TIF", np.ones((1, 48, 48), "uint16"), transform=Affine(30, 0, ORIGIN[0], 0, -30, ORIGIN[1])
    )
    return folder


def read_all(source: Path | str, **kwargs: object) -> tuple[np.ndarray, tuple[str | None, ...], Affine]:
    with gdal_env(), open_scene(source, **kwargs) as ds:  # type: ignore[arg-type]
        return ds.read(), ds.descriptions, ds.transform


def resampled(path: Path, shape: tuple[int, int], method: Resampling) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1, out_shape=shape, resampling=method)


def stack(path: Path, data: np.ndarray, names: list[str]) -> Path:
    return write_raster(path, data, nodata=0, descriptions=names)


# ---------------------------------------------------------------------------------------------- band folders


def test_band_folder_is_one_virtual_scene_on_the_finest_grid(s2_folder: Path) -> None:
    data, names, transform = read_all(s2_folder)
    assert names == ("B02 (blue)", "B03 (green)", "B04 (red)", "B08 (nir)", "B8A (nir08)", "B11 (swir16)")
    assert data.shape == (6, 64, 64) and transform == Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1])
    for i, name in enumerate(S2_10M):  # 10 m bands: the files' own pixels
        with rasterio.open(s2_folder / f"T33UUU_20170216T102101_{name}.tif") as ds:
            np.testing.assert_array_equal(data[i], ds.read(1))
    for i, name in enumerate(S2_20M):  # 20 m bands: bilinear on read, as GDAL resamples them
        expected = resampled(s2_folder / f"T33UUU_20170216T102101_{name}.tif", (64, 64), Resampling.bilinear)
        np.testing.assert_array_equal(data[4 + i], expected)
    with gdal_env(), open_scene(s2_folder) as ds:
        assert ds.name == str(s2_folder) and ds.driver == "VRT" and ds.nodatavals == (0.0,) * 6
        assert ds.tags(5)["NATIVE_RESOLUTION_M"] == "20" and ds.tags()["SENSOR"] == "Sentinel-2 MSI"
        window = ds.read(5, window=((7, 29), (3, 40)))  # chips read windows: the same pixels as the whole band
    np.testing.assert_array_equal(window, data[4, 7:29, 3:40])


def test_resolution_chooses_the_grid(s2_folder: Path) -> None:
    data, _, transform = read_all(s2_folder, resolution=20)
    assert data.shape == (6, 32, 32) and transform.a == 20
    expected = resampled(s2_folder / "T33UUU_20170216T102101_B02.tif", (32, 32), Resampling.average)
    np.testing.assert_array_equal(data[0], expected)  # finer bands are averaged
    with rasterio.open(s2_folder / "T33UUU_20170216T102101_B11.tif") as ds:
        np.testing.assert_array_equal(data[5], ds.read(1))  # bands already on the grid are copied
    with source_options(resolution=40):  # what --resolution sets for a command
        assert read_all(s2_folder)[0].shape == (6, 16, 16)
        assert read_all(s2_folder / "T33UUU_20170216T102101_B02.tif")[0].shape == (1, 64, 64)  # one raster keeps its grid


def test_only_the_model_bands_are_kept(s2_folder: Path) -> None:
    data, names, _ = read_all(s2_folder, bands=["B8A", "B04"])
    assert names == ("B8A (nir08)", "B04 (red)") and data.shape == (2, 64, 64)


def test_band_list_keeps_its_order(s2_folder: Path, tmp_path: Path) -> None:
    listing = tmp_path / "bands.txt"
    listing.write_text(
        f"# near infrared first\n{s2_folder.name}/T33UUU_20170216T102101_B08.tif\n\n"
        f"{s2_folder / 'T33UUU_20170216T102101_B04.tif'}\n"
    )
    data, names, _ = read_all(listing)
    assert names == ("B08 (nir)", "B04 (red)")
    with rasterio.open(s2_folder / "T33UUU_20170216T102101_B08.tif") as ds:
        np.testing.assert_array_equal(data[0], ds.read(1))


def test_band_list_of_unnamed_files_takes_the_model_bands_in_order(tmp_path: Path) -> None:
    for i in range(3):
        band_file(tmp_path, f"layer{i}.tif", 40, 10.0, i)
    listing = tmp_path / "layers.txt"
    listing.write_text("layer2.tif\nlayer0.tif\nlayer1.tif\n")
    _, names, _ = read_all(listing)
    assert names == ("", "", "") or names == (None, None, None)
    indexes, note = select_bands(names, ["B04", "B03", "B02"])
    assert indexes == [1, 2, 3] and note and "taken in order" in note


# ----------------------------------------------------------------------------------------------------- STAC


def stac_item(folder: Path, assets: dict[str, dict], platform: str = "sentinel-2b") -> Path:
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "S2B_33UUU_20170216_0_L2A",
        "geometry": None,
        "properties": {"platform": platform, "datetime": "2017-02-16T10:21:01Z"},
        "assets": assets,
        "links": [],
    }
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    return path


def s2_assets(folder: Path, keys_are_common: bool = False) -> dict[str, dict]:
    commons = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B8A": "nir08", "B11": "swir16"}
    assets: dict[str, dict] = {
        "thumbnail": {"href": "preview.jpg", "type": "image/jpeg", "roles": ["thumbnail"]},
        "metadata": {"href": "MTD.xml", "type": "application/xml", "roles": ["metadata"]},
    }
    for name, common in commons.items():
        key = common if keys_are_common else name
        band = {"name": common if keys_are_common else name, "common_name": common}
        assets[key] = {
            "href": f"T33UUU_20170216T102101_{name}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [band],
            "raster:bands": [{"nodata": 0}],
        }
    return assets


def test_stac_item_with_local_assets(s2_folder: Path) -> None:
    item = stac_item(s2_folder, s2_assets(s2_folder))
    data, names, _ = read_all(item)
    assert names == ("B02 (blue)", "B03 (green)", "B04 (red)", "B08 (nir)", "B8A (nir08)", "B11 (swir16)")
    np.testing.assert_array_equal(data, read_all(s2_folder)[0])


def test_stac_item_reads_only_the_assets_the_model_needs(s2_folder: Path) -> None:
    assets = s2_assets(s2_folder)
    assets["B11"]["href"] = "missing_B11.tif"  # never opened: the model does not read it
    for i in range(14):  # an item of many assets
        assets[f"extra{i}"] = {"href": f"extra{i}.tif", "type": "image/tiff", "eo:bands": [{"name": f"X{i}"}]}
    item = stac_item(s2_folder, assets)
    data, names, _ = read_all(item, bands=["B02", "B03", "B04", "B08"])
    assert data.shape[0] == 4 and names[3] == "B08 (nir)"
    with pytest.raises(BandMismatchError, match=r"assets: .*B11 \(B11 \(swir16\)\)"):
        virtual_scene(item, bands=["B05"])


def test_stac_item_named_by_common_names_gets_the_sensor_band_names(s2_folder: Path) -> None:
    assets = s2_assets(s2_folder, keys_are_common=True)  # earth-search names B04 "red", and offers it twice
    assets["red-jp2"] = {**assets["red"], "href": "T33UUU_20170216T102101_B04.jp2", "type": "image/jp2"}
    _, names, _ = read_all(stac_item(s2_folder, assets))
    assert names == ("B02 (blue)", "B03 (green)", "B04 (red)", "B08 (nir)", "B8A (nir08)", "B11 (swir16)")


def test_stac_1_1_nodata_of_the_asset_is_the_bands(s2_folder: Path) -> None:
    """STAC 1.1 puts nodata on the asset (common metadata) beside ``bands``: it is the band's nodata, as 1.0's was."""
    for path in s2_folder.glob("*_B*.tif"):
        with rasterio.open(path, "r+") as ds:
            ds.nodata = None  # the files say nothing: the item does
    assets = s2_assets(s2_folder)
    for asset in assets.values():
        if "eo:bands" in asset:
            asset["bands"] = asset.pop("eo:bands")
            del asset["raster:bands"]
            asset["nodata"] = 7
    with gdal_env(), open_scene(stac_item(s2_folder, assets)) as ds:
        assert set(ds.nodatavals) == {7.0}


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP range requests, as GDAL's /vsicurl/ asks for them."""

    def send_head(self):  # type: ignore[no-untyped-def]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        start, end = 0, len(data) - 1
        header = self.headers.get("Range")
        if header and header.startswith("bytes="):
            first, _, last = header[6:].partition("-")
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        import io

        return io.BytesIO(data[start : end + 1])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(s2_folder: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=str(s2_folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_stac_item_by_url_streams_its_assets_through_vsicurl(s2_folder: Path, served: str) -> None:
    stac_item(s2_folder, s2_assets(s2_folder))
    data, names, _ = read_all(f"/vsicurl/{served}/item.json", bands=["B04", "B08"])
    assert names == ("B04 (red)", "B08 (nir)")
    np.testing.assert_array_equal(data, read_all(s2_folder)[0][[2, 3]])
    api = s2_folder / "items"  # a STAC API address: .../items/ID, relative hrefs against it
    api.mkdir()
    assets = {k: {**v, "href": f"../{v['href']}"} for k, v in s2_assets(s2_folder).items()}
    stac_item(api, assets).rename(api / "S2B_33UUU_20170216_0_L2A")
    _, names, _ = read_all(f"{served}/items/S2B_33UUU_20170216_0_L2A", bands=["B08"])
    assert names == ("B08 (nir)",)


# --------------------------------------------------------------------------------------- SAFE and Landsat MTL


def test_sentinel2_safe_folder_and_zip(tmp_path: Path) -> None:
    safe = tmp_path / "S2B_MSIL2A_20170216T102101_N0204_R065_T33UUU_20170216T102204.SAFE"
    img = safe / "GRANULE" / "L2A_T33UUU_A000000_20170216T102204" / "IMG_DATA"
    for folder, res, size in (("R10m", 10, 64), ("R20m", 20, 32)):
        (img / folder).mkdir(parents=True)
        names = ("B02", "B04", "B08", "AOT", "TCI") if res == 10 else ("B02", "B04", "B8A", "B11", "SCL")
        for i, name in enumerate(names):
            band_file(img / folder, f"T33UUU_20170216T102101_{name}_{res}m.jp2", size, res, i, driver="JP2OpenJPEG")
    data, names, transform = read_all(safe)
    assert names == ("B02 (blue)", "B04 (red)", "B08 (nir)", "B8A (nir08)", "B11 (swir16)")  # the finest of each band
    assert transform.a == 10 and data.shape == (5, 64, 64)
    archive = tmp_path / f"{safe.name}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in safe.rglob("*"):
            z.write(path, path.relative_to(tmp_path).as_posix())
    np.testing.assert_array_equal(read_all(archive)[0], data)


def test_landsat_mtl(l8_folder: Path) -> None:
    mtl = l8_folder / f"{L8}_MTL.txt"
    lines = ["GROUP = LANDSAT_METADATA_FILE", "  GROUP = PRODUCT_CONTENTS"]
    lines += [f'    FILE_NAME_BAND_{n} = "{L8}_SR_B{n}.TIF"' for n in range(1, 8)]
    lines += ["  END_GROUP = PRODUCT_CONTENTS", "  GROUP = IMAGE_ATTRIBUTES", '    SPACECRAFT_ID = "LANDSAT_8"', "END"]
    mtl.write_text("\n".join(lines) + "\n")
    _, names, transform = read_all(mtl)
    assert names == (
        "SR_B1 (coastal)",
        "SR_B2 (blue)",
        "SR_B3 (green)",
        "SR_B4 (red)",
        "SR_B5 (nir08)",
        "SR_B6 (swir16)",
        "SR_B7 (swir22)",
    )
    assert transform.a == 30
    scene = virtual_scene(mtl)
    assert scene is not None and scene.sensor == "landsat_oli" and scene.kind == "Landsat MTL"


def test_landsat_folder_skips_files_without_band_tokens(l8_folder: Path) -> None:
    _, names, _ = read_all(l8_folder)
    assert len(names) == 7 and names[4] == "SR_B5 (nir08)"  # QA_PIXEL has no band token


# ------------------------------------------------------------------------------------ prediction through a source


def test_predict_on_a_band_folder_equals_the_prestacked_scene(s2_folder: Path, tmp_path: Path) -> None:
    model = tiny_unet(list(S2_10M) + list(S2_20M), 3, mean=[1500.0] * 6, std=[800.0] * 6)
    data, names, _ = read_all(s2_folder)
    stacked = stack(tmp_path / "stacked.tif", data, [n or "" for n in names])  # the same bands, resampled once, stacked
    geoseg.predict(s2_folder, model, tmp_path / "folder.tif")
    geoseg.predict(stacked, model, tmp_path / "stacked_classes.tif")
    with rasterio.open(tmp_path / "folder.tif") as a, rasterio.open(tmp_path / "stacked_classes.tif") as b:
        assert a.transform == b.transform and a.crs == b.crs
        np.testing.assert_array_equal(a.read(), b.read())


def test_run_on_a_band_folder_equals_the_prestacked_scene(s2_folder: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tests.helpers import run

    model = tiny_unet(list(S2_10M), 3, mean=[1500.0] * 4, std=[800.0] * 4).save(tmp_path / "m.pt")
    data, names, _ = read_all(s2_folder, bands=list(S2_10M))
    stacked = stack(tmp_path / "stacked.tif", data, [n or "" for n in names])
    runner = CliRunner()
    assert run(runner, "run", s2_folder, "-o", tmp_path / "a", "-m", model).exit_code == 0
    assert run(runner, "run", stacked, "-o", tmp_path / "b", "-m", model).exit_code == 0
    with rasterio.open(tmp_path / "a" / "classes.tif") as a, rasterio.open(tmp_path / "b" / "classes.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["inputs"]["image"] == str(s2_folder)


def test_predict_and_tile_take_a_source_and_a_resolution(s2_folder: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tests.helpers import run

    model = tiny_unet(list(S2_10M), 3).save(tmp_path / "m.pt")
    result = run(CliRunner(), "predict", s2_folder, "-m", model, "-o", tmp_path / "c.tif", "--resolution", "20")
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "c.tif") as ds:
        assert ds.shape == (32, 32) and ds.transform.a == 20
    assert "GEOSEG_RESOLUTION" not in os.environ  # set for the command only
    result = run(CliRunner(), "tile", s2_folder, "-o", tmp_path / "chips", "--chip-size", "32")
    assert result.exit_code == 0, result.output
    chips = sorted((tmp_path / "chips" / "images").glob("*.tif"))
    with rasterio.open(chips[0]) as ds:
        assert ds.count == 6 and ds.res == (10.0, 10.0)
    assert json.loads((tmp_path / "chips" / "tile.json").read_text())["resolution"] is None
    result = run(CliRunner(), "tile", s2_folder, "-o", tmp_path / "chips20", "--chip-size", "16", "--resolution", "20")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "chips20" / "tile.json").read_text())["resolution"] == 20.0  # the grid is recorded
    result = run(CliRunner(), "run", s2_folder, "-m", model, "-o", tmp_path / "run20", "--resolution", "20")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run20" / "run.json").read_text())["inputs"]["resolution"] == 20.0


def test_sentinel2_model_runs_on_landsat8_by_common_name(l8_folder: Path, tmp_path: Path) -> None:
    model = wrap(BandLogits(gain=0.01), list(S2_10M), 4, 16, "4px")
    result = geoseg.predict(l8_folder, model, tmp_path / "l8.tif")
    notes = [w for w in result.warnings if "common name" in w]
    assert len(notes) == 1 and "B02=SR_B2 (blue)" in notes[0] and "B08=SR_B5 (nir08 for nir)" in notes[0]
    data, names, _ = read_all(l8_folder)
    stacked = stack(tmp_path / "s2_named.tif", data[[1, 2, 3, 4]], list(S2_10M))
    geoseg.predict(stacked, model, tmp_path / "stacked.tif")
    with rasterio.open(tmp_path / "l8.tif") as a, rasterio.open(tmp_path / "stacked.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


# ------------------------------------------------------------------------------------ band names across sensors


def test_common_names_across_sensors() -> None:
    assert [common_name(n) for n in ("B01", "B05", "B8A", "B09", "B10", "B12")] == [
        "coastal",
        "rededge1",
        "nir08",
        "nir09",
        None,
        "swir22",  # B10 alone could be Landsat's thermal band
    ]
    assert common_name("B10", "sentinel2") == "cirrus" and common_name("B10", "landsat_oli") == "lwir11"
    assert common_name("B2", "landsat_oli") == "blue" and common_name("B2", "landsat_tm") == "green"
    assert guess_sensor(["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7", "ST_B6"]) == "landsat_tm"
    assert guess_sensor(["B1", "B2"], "LE07_L1TP_193023_20000601") == "landsat_tm"
    assert guess_sensor(["B1", "B2"], "LANDSAT_9") == "landsat_oli"


def test_select_bands_by_common_name_and_its_limits() -> None:
    l5 = ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"]
    l8_model = ["SR_B2 (blue)", "SR_B3 (green)", "SR_B4 (red)", "SR_B5 (nir08)"]
    indexes, note = select_bands(l5, l8_model)  # Landsat 5's SR_B4 is near infrared, not Landsat 8's red
    assert indexes == [1, 2, 3, 4] and note and "SR_B4=SR_B3 (red)" in note
    assert select_bands(["B02 (blue)", "B04 (red)"], ["B04", "B02"]) == ([2, 1], None)  # same names: no warning
    with pytest.raises(BandMismatchError):  # red edge has no Landsat counterpart
        select_bands(l5, ["B02", "B05"])
    assert parse_requested("red,nir08,SR_B2", l5, 6) == [3, 4, 2]


def test_training_config_names_bands() -> None:
    cfg = parse_config({"data": {"scenes": [{"image": "s.tif", "labels": "l.gpkg", "band_names": ["B2", "B3"]}]}}, Path("/d"))
    assert TrainConfig.from_dict(cfg).data.scenes[0].band_names == ("B2", "B3")
    with pytest.raises(InputError, match="twice"):
        parse_config({"data": {"scenes": [{"image": "s.tif", "labels": "l.gpkg", "band_names": ["B2", "b2"]}]}}, Path("/d"))


# --------------------------------------------------------------------------------------------- geoseg info


def test_info_shows_the_assembled_bands_and_grid(s2_folder: Path) -> None:
    from click.testing import CliRunner

    from tests.helpers import run

    result = run(CliRunner(), "info", s2_folder)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:2] == ["source", "band"] for line in lines)
    row = next(line for line in lines if "B11" in line).split()
    assert row[1:6] == ["B11", "swir16", "20", "m", "uint16"] and row[6] == "0" and row[7].endswith("_B11.tif")
    data = json.loads(run(CliRunner(), "info", s2_folder, "--json", "--resolution", "20").output)
    assert data["width"] == 32 and data["pixel_size_m"] == 20 and data["count"] == 6
    assert data["band_details"][0] == {
        "name": "B02",
        "common_name": "blue",
        "resolution_m": 10.0,
        "dtype": "uint16",
        "nodata": 0.0,
        "file": "T33UUU_20170216T102101_B02.tif",
    }


# ------------------------------------------------------------------------------------------------ bad input


def geoseg_cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("GEOSEG_RESOLUTION", None)
    return subprocess.run(
        [sys.executable, "-m", "geoseg", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def bad_sources(tmp: Path) -> list[tuple[str, Path, tuple[str, ...]]]:
    empty = tmp / "empty_folder"
    empty.mkdir()
    (empty / "readme.md").write_text("no rasters")
    unnamed = tmp / "unnamed"
    unnamed.mkdir()
    band_file(unnamed, "first.tif", 20, 10.0, 0)
    crs = tmp / "two_crs"
    crs.mkdir()
    band_file(crs, "a_B02.tif", 20, 10.0, 0)
    band_file(crs, "a_B03.tif", 20, 10.0, 1, crs="EPSG:32632")
    apart = tmp / "apart"
    apart.mkdir()
    band_file(apart, "a_B02.tif", 20, 10.0, 0)
    write_raster(apart / "a_B03.tif", random_scene((1, 20, 20)), transform=Affine(10, 0, 500000, 0, -10, 5822040))
    twice = tmp / "twice"
    twice.mkdir()
    band_file(twice, "x_B04.tif", 20, 10.0, 0)
    band_file(twice, "y_B04.tif", 20, 10.0, 1)
    remote = tmp / "remote"
    remote.mkdir()
    item = stac_item(remote, {"B04": {"href": "http://127.0.0.1:9/T33UUU_B04.tif", "eo:bands": [{"name": "B04"}]}})
    return [
        ("no rasters", empty, ("empty_folder", "no raster files")),
        ("no band tokens", unnamed, ("unnamed", "first.tif", "band token")),
        ("two CRSs", crs, ("different CRSs", "EPSG:32632", "gdalwarp")),
        ("apart", apart, ("do not overlap", "a_B03.tif")),
        ("duplicate names", twice, ("two files for band B04", "x_B04.tif", "y_B04.tif")),
        ("unreachable asset", item, ("http://127.0.0.1:9/T33UUU_B04.tif", "cannot be read", "B04")),
    ]


@pytest.mark.slow  # several geoseg processes
def test_bad_sources_are_refused_in_one_line(tmp_path: Path) -> None:
    model = tiny_unet(list(S2_10M), 3).save(tmp_path / "m.pt")
    for _, source, words in bad_sources(tmp_path):
        refused(geoseg_cli("info", source, cwd=tmp_path), *words)
    again = tmp_path / "again"
    again.mkdir()
    _, source, words = bad_sources(again)[4]  # duplicate band names, through predict
    out = tmp_path / "classes.tif"
    refused(geoseg_cli("predict", source, "-m", model, "-o", out, cwd=tmp_path), *words)
    assert not out.exists()


@pytest.mark.slow  # several geoseg processes
def test_stac_item_without_the_model_bands_and_bad_resolution(s2_folder: Path, tmp_path: Path) -> None:
    assets = {k: v for k, v in s2_assets(s2_folder).items() if k in ("B8A", "B11", "thumbnail")}
    item = stac_item(s2_folder, assets)
    model = tiny_unet(list(S2_10M), 3).save(tmp_path / "m.pt")
    out = tmp_path / "run"
    refused(
        geoseg_cli("run", item, "-m", model, "-o", out, cwd=tmp_path),
        "item.json",
        "B8A (nir08)",
        "B11 (swir16)",
        "all of the model's bands",
    )
    for value in ("0", "-10", "abc"):
        done = geoseg_cli("predict", s2_folder, "-m", model, "-o", out, "--resolution", value, cwd=tmp_path)
        refused(done, "--resolution", value, code=2)  # a usage error
    assert not out.exists() and not list(tmp_path.glob(".*run*"))


def test_missing_source_and_plain_errors_stay_one_line(tmp_path: Path) -> None:
    with pytest.raises(RasterError, match="does not exist"):
        open_scene(tmp_path / "nothing.tif")
    listing = tmp_path / "bands.txt"
    listing.write_text("# bands\nB04.tif\n")
    with pytest.raises(InputError, match=r"bands.txt names B04.tif, which does not exist"):
        open_scene(listing)
    grid = tmp_path / "grid.txt"  # a text raster (ESRI ASCII grid) named .txt is still a raster, not a band list
    grid.write_text("ncols 2\nnrows 2\nxllcorner 0\nyllcorner 0\ncellsize 10\n1 2\n3 4\n")
    with open_scene(grid, require_georef=False) as ds:
        assert ds.driver == "AAIGrid" and ds.count == 1


def test_band_names_of_a_training_scene_name_the_model_bands(tmp_path: Path) -> None:
    """A scene without band descriptions trains a model whose card carries the config's band_names."""
    import geoseg
    from geoseg.core.errors import GeosegError
    from tests.test_train import learnable_scene, small_config

    image, labels, _ = learnable_scene(tmp_path)  # 3 bands without descriptions
    config = small_config(image, labels, epochs=1, samples_per_epoch=8, threads=1)
    config["data"]["scenes"][0]["band_names"] = ["B2", "B3", "B4"]
    result = geoseg.train(config, tmp_path / "run")
    assert geoseg.load_model(result.model_path).card.bands == ["B2", "B3", "B4"]
    config["data"]["scenes"][0]["band_names"] = ["B2", "B3"]
    with pytest.raises(GeosegError, match="has 3 bands but its band_names lists 2"):
        geoseg.train(config, tmp_path / "run2")


def test_band_files_keep_the_nodata_of_their_aux_xml(s2_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QGIS and ArcGIS write nodata into .aux.xml for files they cannot change (JP2): a band folder reads it too."""
    monkeypatch.setattr("geoseg.io.paths.LOCAL_READDIR", "YES")
    for path in s2_folder.glob("*_B*.tif"):
        with rasterio.open(path, "r+") as ds:
            ds.nodata = None  # the file itself says nothing
        path.with_name(path.name + ".aux.xml").write_text(
            '<PAMDataset><PAMRasterBand band="1"><NoDataValue>7</NoDataValue></PAMRasterBand></PAMDataset>'
        )
    with gdal_env(), open_scene(s2_folder) as ds:
        assert set(ds.nodatavals) == {7.0}


def test_too_few_bands_are_not_told_to_pick_bands() -> None:
    """--bands picks among a scene's bands: with fewer than the model needs, the fix is another scene."""
    model = [f"B{i}" for i in range(1, 11)]
    with pytest.raises(BandMismatchError, match="give a scene with all of the model's bands") as few:
        select_bands(("",) * 4, model, None, True)
    assert "--bands" not in str(few.value)
    with pytest.raises(BandMismatchError, match="pick the bands with --bands"):
        select_bands(("",) * 12, model, None, True)


def test_bands_of_different_extents_are_cut_and_said(s2_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The scene is the area every band covers: a band reaching further loses the rest, in one warning and run.json."""
    from geoseg.io.sources import CUT_TAG

    with gdal_env(), open_scene(s2_folder) as ds:  # the same ground in every band (20 m bands too): nothing cut
        assert CUT_TAG not in ds.tags()
    folder = tmp_path / "shifted"
    folder.mkdir()
    band_file(folder, "X_B02.tif", 64, 10.0, 1)
    shifted = Affine(10.0, 0, ORIGIN[0] + 320.0, 0, -10.0, ORIGIN[1] - 320.0)  # 32 px right and down
    band_file(folder, "X_B03.tif", 64, 10.0, 2, transform=shifted)
    with caplog.at_level(logging.WARNING, logger="geoseg"), gdal_env(), open_scene(folder) as ds:
        assert (ds.width, ds.height) == (32, 32)
        note = ds.tags()[CUT_TAG]
    assert "cut to the 32 x 32 px" in note and "X_B02.tif loses 75% of its area, X_B03.tif 75%" in note
    assert [r.getMessage() for r in caplog.records if "cover different areas" in r.getMessage()] == [note]
    for name, (dx, dy, size) in {"bottom": (0, 0, (40, 64)), "top": (0, -240, (40, 64)), "right": (0, 0, (64, 40))}.items():
        cut = tmp_path / name  # one band shorter or narrower than the others, on each side in turn
        cut.mkdir()
        band_file(cut, "X_B02.tif", 64, 10.0, 1)
        data = random_scene((1, 64, 64), seed=2)[:, : size[0], : size[1]] + 1
        write_raster(cut / "X_B03.tif", data, transform=Affine(10.0, 0, ORIGIN[0] + dx, 0, -10.0, ORIGIN[1] + dy), nodata=0)
        with gdal_env(), open_scene(cut) as ds:
            assert "X_B02.tif loses 38% of its area" in ds.tags().get(CUT_TAG, ""), name
    result = geoseg.predict(folder, tiny_unet(["B02", "B03"], chip_size=32), tmp_path / "c.tif")
    assert note in result.warnings


def test_the_acquisition_date_of_a_multi_file_scene_reaches_the_model_card(s2_folder: Path, tmp_path: Path) -> None:
    """Band files named T33UUU_20170216T102101_B02.tif and a STAC item's datetime give the date that training
    records in the card's domain (it said "date unknown"); names that disagree give none."""
    from geoseg.training.trainer import scene_record

    item = stac_item(s2_folder, s2_assets(s2_folder))
    for source in (s2_folder, item):
        with gdal_env(), open_scene(source) as ds:
            assert ds.tags()["ACQUISITION_DATE"] == "2017-02-16"
            assert scene_record(ds, str(source))["date"] == "2017-02-16"
    other = tmp_path / "mixed"
    other.mkdir()
    band_file(other, "X_20200101_B02.tif", 16, 10.0, 1)
    band_file(other, "X_20210101_B03.tif", 16, 10.0, 2)
    with gdal_env(), open_scene(other) as ds:
        assert "ACQUISITION_DATE" not in ds.tags()
