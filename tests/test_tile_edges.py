"""``geoseg tile`` at the scene's edge: nothing is invented past it, and the index describes every chip file alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from geoseg.core.classes import IGNORE_INDEX
from geoseg.io.raster import open_scene, read_window
from geoseg.training.chipset import chip_mosaics, tile
from tests.helpers import random_scene, write_raster

TRANSFORM = Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0)  # write_raster's


def scene_and_labels(tmp: Path, width: int, height: int, nodata: float | None = None) -> tuple[Path, Path, np.ndarray]:
    """A 3-band uint16 scene (values 1.., never 0) and a mask raster whose labels are 1 and 2 (0 = unlabeled)."""
    data = random_scene((3, height, width)) + 1
    labels = (np.indices((height, width)).sum(0) // 7 % 2 + 1).astype("uint8")
    image = write_raster(tmp / "scene.tif", data, nodata=nodata)
    return image, write_raster(tmp / "labels.tif", labels, nodata=0), data


def chips(folder: Path) -> list[dict]:
    return pyogrio.read_dataframe(folder / "index.gpkg", layer="chips").to_dict("records")


@pytest.mark.parametrize("nodata", [None, 0])
def test_a_scene_smaller_than_a_chip_is_padded_with_nodata_and_ignored_labels(tmp_path: Path, nodata) -> None:
    """A 100 x 80 px scene in a 256-px chip: past the scene the image chip is nodata (its nodata value, or its mask
    without one), never the scene mirrored, and the label chip is 255."""
    image, labels, data = scene_and_labels(tmp_path, 100, 80, nodata)
    tile(image, tmp_path / "chips", labels=labels, chip_size=256)
    (row,) = chips(tmp_path / "chips")
    with rasterio.open(tmp_path / "chips" / row["image"]) as ds:
        chip, valid = ds.read(), ds.dataset_mask() > 0
        assert ds.nodata == nodata and ds.shape == (256, 256)
        if nodata is None:
            assert ds.mask_flag_enums[0] == [MaskFlags.per_dataset]
    assert np.array_equal(chip[:, :80, :100], data) and valid[:80, :100].all()
    outside = np.ones((256, 256), bool)
    outside[:80, :100] = False
    assert (chip[:, outside] == 0).all() and not valid[outside].any()  # 0 is the fill without nodata too
    with rasterio.open(tmp_path / "chips" / row["mask"]) as ds:
        mask = ds.read(1)
    assert (mask[outside] == IGNORE_INDEX).all() and (mask[:80, :100] != IGNORE_INDEX).all()
    assert row["labeled"] == pytest.approx(100 * 80 / 256**2, abs=1e-4)


@pytest.mark.parametrize(("width", "height"), [(100, 80), (300, 80), (150, 205)])
def test_every_footprint_is_its_chip_files_extent(tmp_path: Path, width: int, height: int) -> None:
    """The index records each chip file's extent: chips of a larger scene (the right and bottom ones snapped inside
    it, whatever its size) and chips reaching past a scene smaller than a chip alike."""
    image, labels, _ = scene_and_labels(tmp_path, width, height)
    tile(image, tmp_path / "chips", labels=labels, chip_size=128, overlap="0.25")
    rows = chips(tmp_path / "chips")
    assert rows
    for row in rows:
        with rasterio.open(tmp_path / "chips" / row["image"]) as ds:
            assert row["geometry"].bounds == pytest.approx(tuple(ds.bounds))
            assert ds.transform == TRANSFORM * Affine.translation(row["x_off"], row["y_off"])


@pytest.mark.parametrize(("width", "height"), [(300, 205), (129, 131)])
def test_edge_chips_of_a_larger_scene_hold_the_scene_only(tmp_path: Path, width: int, height: int) -> None:
    """A scene whose size is no multiple of the stride: its right and bottom chips are snapped inside it, so they
    hold the scene's own pixels, all valid and all labeled."""
    image, labels, data = scene_and_labels(tmp_path, width, height)
    tile(image, tmp_path / "chips", labels=labels, chip_size=64, overlap="0.25")
    rows = chips(tmp_path / "chips")
    assert max(r["x_off"] for r in rows) + 64 == width and max(r["y_off"] for r in rows) + 64 == height
    for row in rows:
        x, y = row["x_off"], row["y_off"]
        with rasterio.open(tmp_path / "chips" / row["image"]) as ds:
            assert np.array_equal(ds.read(), data[:, y : y + 64, x : x + 64]) and (ds.dataset_mask() == 255).all()
        assert row["labeled"] == 1.0


def test_a_chip_folder_keeps_the_chips_masks(tmp_path: Path) -> None:
    """Training reads a chip folder of a masked scene (no nodata value) with the masked pixels invalid, as it reads
    the scene itself; pixels outside every chip stay invalid."""
    image, labels, _ = scene_and_labels(tmp_path, 64, 64)
    masked = np.full((64, 64), 255, "uint8")
    masked[:, :20] = 0
    with rasterio.open(image, "r+") as ds:
        ds.write_mask(masked)
    tile(image, tmp_path / "chips", labels=labels, chip_size=48, overlap="0")
    (scene,), _ = chip_mosaics(tmp_path / "chips", tmp_path)
    with open_scene(scene["image"]) as ds:
        _, valid = read_window(ds, Window(0, 0, 64, 64), [1, 2, 3])
    assert np.array_equal(valid, masked > 0)


@pytest.mark.parametrize("nodata", [None, 0])
def test_training_reads_a_small_scenes_chip_folder_as_the_scene(tmp_path: Path, nodata) -> None:
    """The chip folder of a scene smaller than a chip is mosaicked back on the scene's grid, so training reads it as
    it reads the scene (mirrored past its edge, as prediction), whatever the chip holds there."""
    image, labels, _ = scene_and_labels(tmp_path, 100, 80, nodata)
    tile(image, tmp_path / "chips", labels=labels, chip_size=256)
    (scene,), _ = chip_mosaics(tmp_path / "chips", tmp_path)
    window = Window(0, 0, 256, 256)
    with open_scene(scene["image"]) as mosaic, open_scene(image) as ds:
        for a, b in zip(read_window(mosaic, window, [1, 2, 3], pad="reflect"), read_window(ds, window, [1, 2, 3], pad="reflect")):
            assert np.array_equal(a, b)
