"""geoseg.predict on generated and real rasters: georeferencing, nodata, bands, AOI, blocks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

import geoseg
from geoseg.core.errors import BandMismatchError, InputError
from tests.helpers import SAMPLE, WGS84, BandLogits, random_scene, tiny_unet, wrap, write_raster

DTYPES = ["uint8", "uint16", "int16", "float32"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("crs", ["EPSG:32633", WGS84])
def test_classes_are_argmax_of_the_bands_on_the_scene_grid(tmp_path: Path, dtype: str, crs: str) -> None:
    transform = Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0) if crs != WGS84 else Affine(1e-4, 0, 13.0, 0, -1e-4, 52.5)
    data = random_scene((3, 45, 67), dtype)
    scene = write_raster(tmp_path / "s.tif", data, crs=crs, transform=transform)
    model = wrap(BandLogits(), 3, 3, 32, "8px")
    out = tmp_path / "classes.tif"
    result = geoseg.predict(scene, model, out, confidence=tmp_path / "conf.tif")
    with rasterio.open(out) as ds, rasterio.open(scene) as src:
        assert (ds.crs, ds.transform, ds.width, ds.height) == (src.crs, src.transform, src.width, src.height)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        assert ds.profile["tiled"] and ds.compression.name.lower() == "deflate"
        classes = ds.read(1)
        colours = ds.colormap(1)
        table = json.loads(ds.tags()["GEOSEG_CLASSES"])
    assert np.array_equal(classes, data.astype(np.float32).argmax(0))
    assert [c["id"] for c in table] == [0, 1, 2]
    assert colours[0][:3] == tuple(int(table[0]["color"][i : i + 2], 16) for i in (1, 3, 5))
    assert result.chips_predicted == 6 and result.chips_skipped == 0
    with rasterio.open(tmp_path / "conf.tif") as ds:
        conf = ds.read(1)
    assert conf.min() >= 33 and conf.max() <= 100


def test_nodata_propagates_and_empty_chips_are_skipped(tmp_path: Path) -> None:
    data = random_scene((3, 45, 67), "uint16")
    data[:, :, :30] = 0  # the whole left part is nodata: the first chip column holds no valid pixel
    data[:, 40:, 50:] = 0
    scene = write_raster(tmp_path / "s.tif", data, nodata=0)
    model = wrap(BandLogits(), 3, 3, 16, "4px")
    result = geoseg.predict(scene, model, tmp_path / "c.tif", confidence=tmp_path / "conf.tif", probabilities=tmp_path / "p.tif")
    nodata = (data == 0).all(0)
    for name in ("c.tif", "conf.tif"):
        with rasterio.open(tmp_path / name) as ds:
            band = ds.read(1)
        assert (band[nodata] == 255).all() and (band[~nodata] != 255).all()
    with rasterio.open(tmp_path / "p.tif") as ds:
        probs = ds.read()
        assert ds.count == 3 and ds.descriptions == ("class_0_percent", "class_1_percent", "class_2_percent")
    assert (probs[:, nodata] == 255).all()
    assert np.abs(probs[:, ~nodata].astype(int).sum(0) - 100).max() <= 2
    assert result.chips_skipped >= 3


@pytest.mark.parametrize("other", ["data", "no nodata"])
def test_pixels_at_nodata_in_every_band_read_are_nodata_whatever_other_bands_hold(tmp_path: Path, other: str) -> None:
    """A hole in the model's bands of a 4-band scene is nodata though the band not read (nir) has data there, or has
    no nodata value at all (GDAL's dataset mask would count that band too)."""
    data = random_scene((4, 45, 67), "uint16")
    data[:3, 10:30, 20:50] = 0
    scene = write_raster(tmp_path / "s.tif", data, nodata=0 if other == "data" else None)
    bands = "".join(
        f'<VRTRasterBand dataType="UInt16" band="{b}"><Description>{name}</Description>'
        + ("<NoDataValue>0</NoDataValue>" if other == "data" or b < 4 else "")
        + f'<SimpleSource><SourceFilename relativeToVRT="1">s.tif</SourceFilename><SourceBand>{b}</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for b, name in enumerate(["red", "green", "blue", "nir"], 1)
    )
    with rasterio.open(scene) as ds:
        gt = ", ".join(map(str, ds.transform.to_gdal()))
        srs = ds.crs.to_wkt()
    scene = tmp_path / "s.vrt"  # nodata per band: the read bands at 0, nir with or without one
    scene.write_text(
        f'<VRTDataset rasterXSize="67" rasterYSize="45"><SRS>{srs}</SRS><GeoTransform>{gt}</GeoTransform>{bands}</VRTDataset>'
    )
    model = wrap(BandLogits(), ["red", "green", "blue"], 3, 16, "4px")
    geoseg.predict(scene, model, tmp_path / "c.tif")
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    hole = np.zeros(classes.shape, bool)
    hole[10:30, 20:50] = True
    assert (classes[hole] == 255).all() and (classes[~hole] != 255).all()


def test_float_scene_nan_pixels_are_nodata(tmp_path: Path) -> None:
    data = random_scene((3, 40, 40), "float32")
    data[0, 5:9, 5:9] = np.nan
    data[1, 20, 20] = np.inf
    scene = write_raster(tmp_path / "f.tif", data)
    geoseg.predict(scene, wrap(BandLogits(), 3, 3, 16, "4px"), tmp_path / "c.tif")
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    assert (classes[5:9, 5:9] == 255).all() and classes[20, 20] == 255
    assert (classes != 255).sum() == 40 * 40 - 17


@pytest.mark.parametrize(("width", "height"), [(1, 1), (20, 13), (100, 7)])
def test_scenes_smaller_than_a_chip_are_padded_not_skipped(tmp_path: Path, width: int, height: int) -> None:
    data = random_scene((4, height, width), "uint16", seed=4)
    scene = write_raster(tmp_path / "small.tif", data, descriptions=["B02", "B03", "B04", "B08"])
    model = tiny_unet(["B02", "B03", "B04", "B08"], 3)
    geoseg.predict(scene, model, tmp_path / "c.tif")
    with rasterio.open(tmp_path / "c.tif") as ds:
        assert (ds.width, ds.height) == (width, height)
        assert (ds.read(1) < 3).all()


@pytest.mark.slow
def test_wide_scene_in_vertical_blocks_equals_one_block(tmp_path: Path) -> None:
    data = random_scene((4, 70, 700), "uint16", seed=5)
    scene = write_raster(tmp_path / "wide.tif", data, descriptions=["B02", "B03", "B04", "B08"])
    model = tiny_unet(["B02", "B03", "B04", "B08"], 3)
    one = geoseg.predict(scene, model, tmp_path / "one.tif", probabilities=tmp_path / "one_p.tif")
    told: list[tuple[int, int]] = []
    split = geoseg.predict(
        scene,
        model,
        tmp_path / "blocks.tif",
        probabilities=tmp_path / "blocks_p.tif",
        block_width=256,
        progress=lambda stage, done, total: told.append((done, total)),
    )
    assert split.chips_predicted > one.chips_predicted  # chips at block seams run in both blocks (the halo)
    assert told[-1] == (split.chips_predicted, split.chips_predicted)  # the progress counts them too: never past 100%
    for a, b in (("one.tif", "blocks.tif"), ("one_p.tif", "blocks_p.tif")):
        with rasterio.open(tmp_path / a) as x, rasterio.open(tmp_path / b) as y:
            assert np.array_equal(x.read(), y.read())


def test_bands_are_picked_by_name_and_mismatches_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = random_scene((5, 40, 40), "uint16")
    named = write_raster(tmp_path / "named.tif", data, descriptions=["B08", "B11", "B04", "B03", "B02"])
    model = wrap(BandLogits(), ["B02", "B03", "B04"], 3, 16, "4px")
    geoseg.predict(named, model, tmp_path / "c.tif")
    with rasterio.open(tmp_path / "c.tif") as ds:
        assert np.array_equal(ds.read(1), data[[4, 3, 2]].astype(np.float32).argmax(0))
    geoseg.predict(named, model, tmp_path / "c2.tif", bands="2,B08,5")
    with rasterio.open(tmp_path / "c2.tif") as ds:
        assert np.array_equal(ds.read(1), data[[1, 0, 4]].astype(np.float32).argmax(0))
    unnamed = write_raster(tmp_path / "unnamed.tif", data[:3])
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        result = geoseg.predict(unnamed, model, tmp_path / "c3.tif")
    assert any("taken in order as B02=1, B03=2, B04=3" in w for w in result.warnings)
    with pytest.raises(BandMismatchError, match=r"expects 3 band\(s\) \[B02, B03, B04\] but the scene has 5"):
        geoseg.predict(write_raster(tmp_path / "other.tif", data, descriptions=list("abcde")), model, tmp_path / "x.tif")
    with pytest.raises(InputError, match="out of range"):
        geoseg.predict(named, model, tmp_path / "x.tif", bands="1,2,9")
    assert not (tmp_path / "x.tif").exists()


def test_pixel_size_and_radiometry_warnings(tmp_path: Path) -> None:
    data = random_scene((3, 64, 64), "uint16")
    scene = write_raster(tmp_path / "s.tif", data, transform=Affine(30.0, 0, 330000.0, 0, -30.0, 5822040.0))
    model = wrap(BandLogits(), 3, 3, 32, "8px", pixel_size=10.0, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    result = geoseg.predict(scene, model, tmp_path / "c.tif")
    assert any("pixel size 30 m differs from the model's 10 m" in w for w in result.warnings)
    assert any("band statistics far outside" in w for w in result.warnings)


def test_aoi_in_another_crs_limits_the_prediction(tmp_path: Path) -> None:
    data = random_scene((3, 96, 96), "uint16")
    scene = write_raster(tmp_path / "s.tif", data)
    with rasterio.open(scene) as ds:
        left, bottom, right, top = ds.bounds
    box = shapely.box(left + 100, bottom + 100, left + 300, bottom + 400)  # 20 x 30 pixels at the bottom left
    aoi = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[box], crs="EPSG:32633").to_crs(WGS84).to_file(aoi)
    model = wrap(BandLogits(), 3, 3, 32, "8px")
    result = geoseg.predict(scene, model, tmp_path / "c.tif", aoi=aoi)
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    inside = classes != 255
    rows, cols = np.nonzero(inside)
    assert 560 <= inside.sum() <= 640  # 20 x 30 pixels, give or take the reprojected edges
    assert cols.min() >= 9 and cols.max() <= 31 and rows.min() >= 55 and rows.max() <= 87
    assert result.chips_total < 16
    far = tmp_path / "far.geojson"
    gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], crs=WGS84).to_file(far)
    with pytest.raises(InputError, match="does not overlap the scene"):
        geoseg.predict(scene, model, tmp_path / "none.tif", aoi=far)


@pytest.mark.slow
def test_real_sample_with_a_real_unet(tmp_path: Path) -> None:
    model = tiny_unet(
        ["B02", "B03", "B04", "B08"],
        4,
        chip_size=128,
        overlap=0.25,
        pixel_size=10.0,
        mean=[1400, 1300, 1200, 2500],
        std=[500, 500, 600, 900],
    )
    result = geoseg.predict(SAMPLE, model, tmp_path / "c.tif", confidence=tmp_path / "conf.tif", tta=True)
    assert result.warnings == []
    with rasterio.open(tmp_path / "c.tif") as ds, rasterio.open(SAMPLE) as src:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
        assert ds.read(1).max() < 4


def test_tta_of_a_pointwise_model_changes_nothing(tmp_path: Path) -> None:
    data = random_scene((3, 45, 67), "uint16")
    scene = write_raster(tmp_path / "s.tif", data)
    model = wrap(BandLogits(gain=0.002), 3, 3, 32, "8px")
    geoseg.predict(scene, model, tmp_path / "a.tif", probabilities=tmp_path / "ap.tif")
    geoseg.predict(scene, model, tmp_path / "b.tif", probabilities=tmp_path / "bp.tif", tta=True)
    for a, b in (("a.tif", "b.tif"), ("ap.tif", "bp.tif")):
        with rasterio.open(tmp_path / a) as x, rasterio.open(tmp_path / b) as y:
            assert np.array_equal(x.read(), y.read())


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    scene = write_raster(tmp_path / "s.tif", random_scene((3, 20, 20)))
    with pytest.raises(InputError, match="no CUDA GPU"):
        geoseg.predict(scene, wrap(BandLogits(), 3, 3, 16, 0), tmp_path / "c.tif", device="cuda")
    assert not (tmp_path / "c.tif").exists()


def test_temporary_files_of_a_killed_predict_are_removed_by_the_next(tmp_path: Path) -> None:
    """A killed process leaves ``.classes.PID.HEX.partial.tif`` beside the output; the next writer of it removes them
    (not those of a process that still runs)."""
    from geoseg.io.leftovers import temp_name

    dead = tmp_path / ".classes.4194301.0123abcd.partial.tif"  # a pid no process has (Linux's pid_max is below)
    alive = tmp_path / temp_name("classes", "partial", ".tif")  # this process's own, as if another writer ran
    for path in (dead, alive):
        path.write_bytes(b"partial")
    geoseg.predict(SAMPLE, "default", tmp_path / "classes.tif", device="cpu")
    assert not dead.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["classes.tif", alive.name])


def test_bands_of_columns_stitched_in_threads_equal_one_stitcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU bands of columns are stitched in threads (each with its own rows to the writer, sharing the scene's
    mask reads and the checks): every output is the same bytes as with one stitcher, nodata included."""
    from geoseg.core import threads as core_threads
    from geoseg.inference import loop

    data = random_scene((3, 150, 1100), "uint16", seed=7)
    data[:, 20:60, 300:700] = 0  # nodata across a band's edge: masks read while both bands stitch
    scene = write_raster(tmp_path / "s.tif", data, nodata=0)
    model = wrap(BandLogits(), 3, 3, 32, "8px")
    outputs = {}
    for threads in (1, 4):
        monkeypatch.setattr(core_threads, "PIPELINE_CORES", threads)
        assert len(loop.stitch_bands(0, 1100, 32)) == threads
        names = {kind: tmp_path / f"{kind}{threads}.tif" for kind in ("c", "conf", "p")}
        result = geoseg.predict(
            scene, model, names["c"], confidence=names["conf"], probabilities=names["p"], batch_size=3, device="cpu"
        )
        assert result.chips_skipped > 0
        for kind, path in names.items():
            with rasterio.open(path) as ds:
                outputs[kind, threads] = ds.read()
    for kind in ("c", "conf", "p"):
        assert np.array_equal(outputs[kind, 1], outputs[kind, 4])
    assert (outputs["c", 4][0][(data == 0).all(0)] == 255).all() and (outputs["c", 4][0][(data != 0).any(0)] < 3).all()


def test_outputs_are_the_same_bytes_whatever_the_streamed_files_compression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are streamed into temporary files at DEFLATE level 1 (less CPU beside the model); the outputs are rewritten
    as COGs at GDAL's default level, so each output file is the same bytes as when streaming at level 6."""
    import rasterio.shutil

    from geoseg.io import classmap

    scene = write_raster(tmp_path / "s.tif", random_scene((3, 300, 280), "uint16", seed=3))
    model = wrap(BandLogits(), 3, 3, 32, "8px")
    copy, streamed = rasterio.shutil.copy, []

    def rewrite(src: Path, *args: object, **kwargs: object) -> None:  # the COG rewrite: note the streamed file's size
        streamed.append(Path(src).stat().st_size)
        copy(src, *args, **kwargs)

    monkeypatch.setattr(rasterio.shutil, "copy", rewrite)
    files, sizes = {}, {}
    for level in (1, 6):
        monkeypatch.setattr(classmap, "STREAM_ZLEVEL", level)
        names = {kind: tmp_path / f"{kind}{level}.tif" for kind in ("c", "conf", "p")}
        geoseg.predict(scene, model, names["c"], confidence=names["conf"], probabilities=names["p"], device="cpu")
        files[level] = {kind: path.read_bytes() for kind, path in names.items()}
        sizes[level], streamed[:] = list(streamed), []
    assert len(sizes[1]) == 3 and sizes[1] != sizes[6]  # the streamed files did differ (the level took effect)
    assert files[1] == files[6]


def test_an_error_in_a_stitching_thread_is_raised_once_and_every_thread_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A band's thread failing (here its rows, as a full disk would) stops predict with that error; every stitching
    thread is joined and no file is left behind."""
    import threading

    from geoseg.core import threads
    from geoseg.core.errors import OutputError
    from geoseg.inference import loop

    monkeypatch.setattr(threads, "PIPELINE_CORES", 3)
    original = loop.ChipLoop.write_rows

    def failing(self, x0, x1, offset, y0, y1, probs, weight):  # noqa: ANN001, ANN202
        if x0 > 0 and y0 >= 40:
            raise OutputError("disk full (simulated)")
        return original(self, x0, x1, offset, y0, y1, probs, weight)

    monkeypatch.setattr(loop.ChipLoop, "write_rows", failing)
    scene = write_raster(tmp_path / "s.tif", random_scene((3, 150, 1100), "uint16", seed=8))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputError, match="disk full"):
        geoseg.predict(scene, wrap(BandLogits(), 3, 3, 32, "8px"), out / "c.tif", batch_size=3, device="cpu")
    assert not [t for t in threading.enumerate() if t.name.startswith("geoseg-stitch")]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("classes", [1, 2, 8, 255])
def test_argmax_classes_equals_numpy_argmax_with_ties_and_nan(classes: int) -> None:
    from geoseg.io.classmap import argmax_classes

    rng = np.random.default_rng(classes)
    ring = rng.integers(0, 4, (classes, 40, 70)).astype(np.float32) / 4  # few distinct values: many ties
    ring[:, 3, 5] = np.nan  # a NaN counts as the largest, as in numpy
    ring[rng.integers(0, classes), 7, 9] = np.nan
    probs = ring[:, 2:35, 4:60]  # a view, as the stitcher hands over
    expected = np.argmax(probs, axis=0)
    assert np.array_equal(argmax_classes(probs), expected)
    assert argmax_classes(probs).dtype == np.uint8


def test_sidecar_files_are_read_as_gdal_and_qgis_read_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``.msk`` mask, nodata and band names in ``.aux.xml``, and georeferencing in a PNG's ``.aux.xml``."""
    monkeypatch.setattr("geoseg.io.paths.LOCAL_READDIR", "YES")  # GDAL's default way, whatever this shell sets
    data = random_scene((3, 40, 50), "uint16")
    masked = write_raster(tmp_path / "masked.tif", data)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), rasterio.open(masked, "r+") as ds:
        mask = np.full((40, 50), 255, np.uint8)
        mask[:, :12] = 0
        ds.write_mask(mask)
    assert (tmp_path / "masked.tif.msk").exists()
    model = wrap(BandLogits(), ["b1", "b2", "b3"], 3, 16, "4px")
    geoseg.predict(masked, model, tmp_path / "c1.tif")
    with rasterio.open(tmp_path / "c1.tif") as ds:
        classes = ds.read(1)
    assert (classes[:, :12] == 255).all() and (classes[:, 12:] != 255).all()

    data[:, :, 40:] = 0
    bare = write_raster(tmp_path / "pam.tif", data[::-1].copy())  # bands reversed: the names in .aux.xml put them back
    bands = "".join(
        f'<PAMRasterBand band="{i + 1}"><Description>{name}</Description><NoDataValue>0</NoDataValue></PAMRasterBand>'
        for i, name in enumerate(["b3", "b2", "b1"])
    )
    (tmp_path / "pam.tif.aux.xml").write_text(f"<PAMDataset>{bands}</PAMDataset>")
    geoseg.predict(bare, model, tmp_path / "c2.tif")
    with rasterio.open(tmp_path / "c2.tif") as ds:
        classes = ds.read(1)
    assert (classes[:, 40:] == 255).all()
    assert np.array_equal(classes[:, :40], data[:, :, :40].astype(np.float32).argmax(0))

    png = tmp_path / "scene.png"
    with rasterio.open(png, "w", driver="PNG", width=50, height=40, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0)) as ds:  # fmt: skip
        ds.write((data[:, :, :] // 20).astype(np.uint8))
    assert (tmp_path / "scene.png.aux.xml").exists()  # a PNG keeps its CRS there
    geoseg.predict(png, wrap(BandLogits(), 3, 3, 16, "4px"), tmp_path / "c3.tif")
    with rasterio.open(tmp_path / "c3.tif") as ds:
        assert ds.crs == "EPSG:32633" and ds.transform.c == 330000.0


def test_a_replaced_output_loses_the_sidecars_of_the_old_one(tmp_path: Path) -> None:
    """QGIS writes statistics into ``classes.tif.aux.xml``; a stale one would describe the new pixels."""
    scene = write_raster(tmp_path / "s.tif", random_scene((3, 40, 40), "uint16"))
    model = wrap(BandLogits(), 3, 3, 16, "4px")
    out = tmp_path / "classes.tif"
    geoseg.predict(scene, model, out)
    (tmp_path / "classes.tif.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><Description>old</Description><NoDataValue>0</NoDataValue>'
        "</PAMRasterBand></PAMDataset>"
    )
    geoseg.predict(scene, model, out, overwrite=True)
    assert not (tmp_path / "classes.tif.aux.xml").exists()
    with rasterio.open(out) as ds:
        assert ds.nodata == 255


def test_one_band_fed_to_several_model_bands_is_said(tmp_path: Path) -> None:
    scene = write_raster(tmp_path / "s.tif", random_scene((3, 30, 30)))
    result = geoseg.predict(scene, wrap(BandLogits(), 3, 3, 16, "4px"), tmp_path / "c.tif", bands="2,2,3")
    assert [w for w in result.warnings if "feeds one scene band to several model bands: band 2 as" in w]
    result = geoseg.predict(scene, wrap(BandLogits(), 3, 3, 16, "4px"), tmp_path / "d.tif", bands="3,2,1")
    assert not [w for w in result.warnings if "feeds one scene band" in w]


def test_sidecars_beside_a_new_output_are_refused_without_overwrite(tmp_path: Path) -> None:
    """They are a user's files until --overwrite says the output (and what describes it) may be replaced."""
    from geoseg.core.errors import OutputError

    scene = write_raster(tmp_path / "s.tif", random_scene((3, 30, 30)))
    model = wrap(BandLogits(), 3, 3, 16, "4px")
    stale = tmp_path / "new.tif.msk"
    stale.write_bytes(b"mask")
    with pytest.raises(OutputError, match="output .*new.tif.msk already exists: use --overwrite"):
        geoseg.predict(scene, model, tmp_path / "new.tif")
    assert stale.read_bytes() == b"mask" and not (tmp_path / "new.tif").exists()
    (tmp_path / "new.tif.aux.xml").mkdir()  # a folder in a sidecar's place: refused before any work, even with --overwrite
    with pytest.raises(OutputError, match="new.tif.aux.xml is a folder"):
        geoseg.predict(scene, model, tmp_path / "new.tif", overwrite=True)
    assert stale.exists() and not (tmp_path / "new.tif").exists()
    (tmp_path / "new.tif.aux.xml").rmdir()
    geoseg.predict(scene, model, tmp_path / "new.tif", overwrite=True)
    assert not stale.exists() and (tmp_path / "new.tif").exists()


def test_a_gdal_connection_string_is_a_scene(tmp_path: Path) -> None:
    """``GTIFF_DIR:1:scene.tif`` (like ``NETCDF:file.nc:var``, a subdataset) is opened by GDAL, not refused as a
    missing file, and gives the map of the file itself."""
    scene = write_raster(tmp_path / "s.tif", random_scene((3, 40, 50), "uint16"))
    model = wrap(BandLogits(), 3, 3, 16, "4px")
    geoseg.predict(scene, model, tmp_path / "a.tif")
    geoseg.predict(f"GTIFF_DIR:1:{scene}", model, tmp_path / "b.tif")
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert np.array_equal(a.read(), b.read()) and a.transform == b.transform


@pytest.mark.parametrize("flip", ["south-up", "east-to-west"])
def test_a_south_up_scene_is_shown_to_the_model_north_up(tmp_path: Path, flip: str) -> None:
    """The same ground stored south up (or east to west) gets the same classes: the model sees its chips north up,
    and the chips lie on the ground the north-up scene's chips cover (the grid is laid from the north)."""
    with rasterio.open(SAMPLE) as ds:
        data, t, bands = ds.read(), ds.transform, ds.descriptions
    h, w = data.shape[1:]  # 512 px: chips of 256 at 192, 288 from the north; from the south they would lie elsewhere
    if flip == "south-up":
        flipped, axis = Affine(t.a, 0, t.c, 0, -t.e, t.f + t.e * h), 1
    else:
        flipped, axis = Affine(-t.a, 0, t.c + t.a * w, 0, t.e, t.f), 2
    other = write_raster(tmp_path / "other.tif", np.flip(data, axis), transform=flipped, descriptions=list(bands))
    maps = []
    for scene in (SAMPLE, other):
        out = tmp_path / f"{Path(scene).stem}_classes.tif"
        geoseg.predict(scene, "default", out, backend="torch")
        with rasterio.open(out) as ds:
            maps.append(ds.read(1))
    assert np.array_equal(maps[0], np.flip(maps[1], axis - 1))


def test_an_aoi_split_at_the_antimeridian_covers_both_sides_of_the_scene(tmp_path: Path) -> None:
    """RFC 7946 GeoJSON splits an area at 180°: its eastern part, written from -180°, still counts for a scene that
    reaches past 180°."""
    transform = Affine(1e-4, 0, 179.99, 0, -1e-4, -16.0)  # 179.99°..180.01°
    scene = write_raster(tmp_path / "s.tif", random_scene((3, 100, 200), "uint16"), crs=WGS84, transform=transform)
    west, east = shapely.box(179.995, -16.005, 180.0, -16.0), shapely.box(-180.0, -16.005, -179.995, -16.0)
    aoi = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[shapely.MultiPolygon([west, east])], crs=WGS84).to_file(aoi)
    geoseg.predict(scene, wrap(BandLogits(), 3, 3, 16, "4px"), tmp_path / "c.tif", aoi=aoi)
    with rasterio.open(tmp_path / "c.tif") as ds:
        valid = ds.read(1) != 255
    assert valid[:50, 50:100].all() and valid[:50, 100:150].all()  # both sides of 180°
    assert valid.sum() == 50 * 100


def test_an_alpha_band_read_first_still_masks_the_scene(tmp_path: Path) -> None:
    """The alpha band says it is all valid itself: reading it before the colour bands must not lose the mask."""
    from rasterio.windows import Window

    from geoseg.io.raster import open_scene, read_window

    data = random_scene((4, 16, 16), "uint8")
    data[3] = 255
    data[3, :, :8] = 0  # the left half transparent
    scene = write_raster(tmp_path / "rgba.tif", data, photometric="RGB", alpha="YES")
    with open_scene(scene) as ds:
        for indexes in ([1, 2, 3], [1, 2, 3, 4], [4, 1, 2, 3]):
            valid = read_window(ds, Window(0, 0, 16, 16), indexes)[1]
            assert not valid[:, :8].any() and valid[:, 8:].all(), indexes
