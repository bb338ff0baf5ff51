"""What training makes of its inputs: bands matched by name, one pixel size, a split on the ground shared by
scenes of the same area, the class table of several scenes or a chip folder, and config values checked up front."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

import geoseg
from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.errors import InputError, ModelError
from geoseg.training.config import ConfigError, load_config, parse_config
from geoseg.training.data import make_split
from geoseg.training.prepare import open_scenes
from tests.helpers import UTM33, random_scene, write_raster

TRANSFORM = Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0)
BANDS = ["B02", "B04", "B08"]


def config(*scenes: dict, classes: object = ("a", "b"), **data: object) -> dict:
    """A tiny training config over ``scenes`` (64-px chips, 1 epoch, 1 thread)."""
    spec = None if classes is None else [{"name": n, "values": [i + 1]} for i, n in enumerate(classes)]  # type: ignore[union-attr]
    return {
        "model": {"chip_size": 64, "overlap": "16px", "params": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}},
        "data": {"scenes": list(scenes), "classes": spec, "stride": 16, "min_labeled": 0.1} | data,
        "split": {"val_fraction": 0.3, "block_size": 64, "seed": 0},
        "train": {"epochs": 1, "batch_size": 4, "samples_per_epoch": 4, "threads": 1},
    }


def mask(tmp: Path, name: str, values: np.ndarray, transform: Affine = TRANSFORM) -> Path:
    """A mask raster (0 = unlabeled) in UTM 33N."""
    return write_raster(tmp / name, values.astype("uint8"), nodata=0, transform=transform)


def blocky_mask(size: int, classes: int, seed: int = 0) -> np.ndarray:
    """Labels 1..classes in blocks of 16 px, about 80% of them labeled."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(1, classes + 1, (size // 16, size // 16)) * (rng.random((size // 16, size // 16)) < 0.8)
    return np.kron(cells, np.ones((16, 16), dtype=np.int64))


def opened(cfg: dict, tmp: Path):
    """``open_scenes`` of ``cfg`` (absolute paths); the caller closes the scenes."""
    return open_scenes(cfg, None, tmp)


def close(scenes) -> None:
    for scene in scenes:
        scene.close()


# 1. bands by name


def test_a_scene_with_its_bands_in_another_order_is_read_by_band_name(tmp_path: Path) -> None:
    data = random_scene((3, 64, 64))
    a = write_raster(tmp_path / "a.tif", data, descriptions=BANDS)
    b = write_raster(tmp_path / "b.tif", data[::-1].copy(), descriptions=BANDS[::-1])
    labels = mask(tmp_path, "m.tif", blocky_mask(64, 2))
    scenes, bands, _, _ = opened(
        config({"image": str(a), "labels": str(labels)}, {"image": str(b), "labels": str(labels)}), tmp_path
    )
    try:
        assert bands == BANDS
        assert [s.indexes for s in scenes] == [[1, 2, 3], [3, 2, 1]]
        first, second = (s.read(Window(0, 0, 64, 64))[0] for s in scenes)
        assert np.array_equal(first, second) and np.array_equal(first, data.astype("float32"))
    finally:
        close(scenes)


def test_a_scene_whose_band_names_do_not_match_is_refused(tmp_path: Path) -> None:
    data = random_scene((3, 64, 64))
    a = write_raster(tmp_path / "a.tif", data, descriptions=BANDS)
    b = write_raster(tmp_path / "b.tif", data, descriptions=["B05", "B06", "B07"])
    labels = mask(tmp_path, "m.tif", blocky_mask(64, 2))
    with pytest.raises(InputError, match=r"b\.tif has bands B05, B06, B07 but the first scene's bands are B02, B04, B08"):
        opened(config({"image": str(a), "labels": str(labels)}, {"image": str(b), "labels": str(labels)}), tmp_path)


def test_a_scene_without_band_names_is_taken_in_order_with_a_warning(tmp_path: Path, caplog) -> None:
    data = random_scene((3, 64, 64))
    a = write_raster(tmp_path / "a.tif", data, descriptions=BANDS)
    b = write_raster(tmp_path / "b.tif", data)
    labels = mask(tmp_path, "m.tif", blocky_mask(64, 2))
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        scenes, *_ = opened(config({"image": str(a), "labels": str(labels)}, {"image": str(b), "labels": str(labels)}), tmp_path)
    close(scenes)
    assert [s.indexes for s in scenes] == [[1, 2, 3], [1, 2, 3]]
    assert "b.tif has no band names: its bands 1, 2, 3 are taken as the first scene's B02, B04, B08" in caplog.text


# 9. data.bands checked early, by its own name


def test_a_band_selected_twice_is_refused_as_data_bands(tmp_path: Path) -> None:
    a = write_raster(tmp_path / "a.tif", random_scene((4, 64, 64)), descriptions=["B02", "B03", "B04", "B08"])
    labels = mask(tmp_path, "m.tif", blocky_mask(64, 2))
    scene = {"image": str(a), "labels": str(labels)}
    with pytest.raises(ConfigError, match=r"config key data.bands: B04 and 3 both select band 3 \(B04\): give each band once"):
        opened(config(scene, bands=["B04", 3, "B02", "B08"]), tmp_path)
    with pytest.raises(ConfigError, match=r"data.bands name 'B8' is not a band description") as caught:
        opened(config(scene, bands=["B02", "B03", "B04", "B8"]), tmp_path)
    assert "--bands" not in str(caught.value)


# 3. one pixel size


def test_scenes_of_different_pixel_sizes_are_refused(tmp_path: Path) -> None:
    a = write_raster(tmp_path / "a.tif", random_scene((3, 64, 64)), descriptions=BANDS)
    coarse = Affine(20.0, 0, 330000.0, 0, -20.0, 5822040.0)
    b = write_raster(tmp_path / "b.tif", random_scene((3, 32, 32)), descriptions=BANDS, transform=coarse)
    labels = mask(tmp_path, "m.tif", blocky_mask(64, 2))
    with pytest.raises(InputError) as caught:
        opened(config({"image": str(a), "labels": str(labels)}, {"image": str(b), "labels": str(labels)}), tmp_path)
    message = str(caught.value)
    assert "b.tif has 20 m pixels but the first scene" in message and "a.tif has 10 m" in message
    assert "gdalwarp -tr 10 10" in message and len(message.splitlines()) == 1


# 2. validation blocks on the ground


def _footprints(scene, windows: list[Window]) -> shapely.Geometry:
    """The union of ``windows`` (clipped to the scene) as polygons in UTM 33N."""
    from rasterio.warp import transform_geom

    boxes = []
    for w in windows:
        x0, y0 = max(0, int(w.col_off)), max(0, int(w.row_off))
        x1, y1 = min(scene.width, int(w.col_off + w.width)), min(scene.height, int(w.row_off + w.height))
        if x1 > x0 and y1 > y0:
            left, top = scene.ds.transform * (x0, y0)
            right, bottom = scene.ds.transform * (x1, y1)
            boxes.append(shapely.box(min(left, right), min(top, bottom), max(left, right), max(top, bottom)))
    union = shapely.union_all(boxes)
    if not union.is_empty and scene.ds.crs != rasterio.crs.CRS.from_string(UTM33):
        union = shapely.geometry.shape(transform_geom(scene.ds.crs, UTM33, shapely.geometry.mapping(union), precision=-1))
    return union


def _leak(scenes, split, gap: int) -> float:
    """Ground area (m²) both scored in validation and inside a training chip (grown by ``gap`` px), any scenes."""
    val = shapely.union_all(
        [
            _footprints(
                scene,
                [
                    Window(s.window.col_off + s.score.col_off, s.window.row_off + s.score.row_off, s.score.width, s.score.height)
                    for s in split.val
                    if s.scene == i
                ],
            )
            for i, scene in enumerate(scenes)
        ]
    )
    grown = [Window(s.window.col_off - gap, s.window.row_off - gap, 64 + 2 * gap, 64 + 2 * gap) for s in split.train]
    train = shapely.union_all(
        [_footprints(scene, [w for w, s in zip(grown, split.train) if s.scene == i]) for i, scene in enumerate(scenes)]
    )
    assert val.area > 0
    return float(val.intersection(train).area)


def test_two_dates_of_the_same_ground_hold_out_the_same_ground(tmp_path: Path) -> None:
    labels = mask(tmp_path, "m.tif", blocky_mask(320, 2))
    a = write_raster(tmp_path / "a.tif", random_scene((3, 256, 256)), descriptions=BANDS)
    shifted = Affine(10.0, 0, 330000.0 + 400, 0, -10.0, 5822040.0 - 240)  # 40 px east, 24 px south: not on the cells
    b = write_raster(tmp_path / "b.tif", random_scene((3, 256, 256), seed=1), descriptions=BANDS, transform=shifted)
    scenes, *_ = opened(config({"image": str(a), "labels": str(labels)}, {"image": str(b), "labels": str(labels)}), tmp_path)
    try:
        for seed in range(4):
            for gap in (0, 16):
                split = make_split(scenes, 64, 64, gap, 0.3, 0.1, seed)
                assert {s.scene for s in split.val} == {0, 1}
                assert _leak(scenes, split, gap) == 0.0, (seed, gap)
        one = make_split(scenes[:1], 64, 64, 16, 0.3, 0.1, 0)  # the first scene alone: whole blocks of its grid
        assert all(s.score.width == 64 and s.score.height == 64 for s in one.val)
    finally:
        close(scenes)


def test_a_scene_in_another_crs_holds_out_the_same_ground(tmp_path: Path) -> None:
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    labels = mask(tmp_path, "m.tif", blocky_mask(320, 2))
    data = random_scene((3, 256, 256))
    a = write_raster(tmp_path / "a.tif", data, descriptions=BANDS)
    dst, width, height = calculate_default_transform(
        UTM33, "EPSG:32632", 256, 256, *rasterio.transform.array_bounds(256, 256, TRANSFORM), resolution=10.0
    )
    warped = np.zeros((3, height, width), "uint16")
    reproject(
        data,
        warped,
        src_transform=TRANSFORM,
        src_crs=UTM33,
        dst_transform=dst,
        dst_crs="EPSG:32632",
        resampling=Resampling.nearest,
    )
    b = write_raster(tmp_path / "b.tif", warped, crs="EPSG:32632", transform=dst, descriptions=BANDS)
    scenes, *_ = opened(config({"image": str(a), "labels": str(labels)}, {"image": str(b), "labels": str(labels)}), tmp_path)
    try:
        trained = set()
        for seed in range(3):
            for gap in (0, 16):
                split = make_split(scenes, 64, 64, gap, 0.3, 0.1, seed)
                assert {s.scene for s in split.val} == {0, 1}
                assert _leak(scenes, split, gap) < 1.0, (seed, gap)  # m²: none but rounding
                trained |= {s.scene for s in split.train}
        assert trained == {0, 1}
    finally:
        close(scenes)


# 6. classes from every scene


def test_without_classes_every_scenes_values_become_classes(tmp_path: Path) -> None:
    a = write_raster(tmp_path / "a.tif", random_scene((3, 64, 64)), descriptions=BANDS)
    values = blocky_mask(64, 3)
    first = mask(tmp_path, "m1.tif", np.where(values == 3, 0, values))  # values 1 and 2 only
    second = mask(tmp_path, "m2.tif", values)
    cfg = config({"image": str(a), "labels": str(first)}, {"image": str(a), "labels": str(second)}, classes=None)
    scenes, _, label_map, _ = opened(cfg, tmp_path)
    try:
        assert label_map.names == ["1", "2", "3"]
        one, two = (s.read(Window(0, 0, 64, 64))[2] for s in scenes)
        assert np.array_equal(two, np.where(values == 0, IGNORE_INDEX, values - 1))
        assert np.array_equal(one, np.where(np.isin(values, (0, 3)), IGNORE_INDEX, values - 1))
    finally:
        close(scenes)


# 5 and 10. a chip folder: ignore_values apply, and the card records the original label values


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    from geoseg.training.chipset import tile

    tmp = tmp_path_factory.mktemp("chips")
    values = blocky_mask(128, 3)
    image = write_raster(tmp / "scene.tif", random_scene((3, 128, 128)), descriptions=BANDS)
    tile(image, tmp / "chips", labels=mask(tmp, "m.tif", values), chip_size=64)
    return tmp / "chips", values


def test_ignore_values_apply_to_a_chip_folder(chips, tmp_path: Path) -> None:
    folder, values = chips
    cfg = config(classes=None, chips=str(folder), ignore_values=[3])
    del cfg["data"]["scenes"], cfg["data"]["classes"]
    scenes, _, label_map, _ = opened(cfg, tmp_path)
    try:
        assert label_map.names == ["1", "2"] and label_map.values_of(1) == ["2"]
        labels = scenes[0].read(Window(0, 0, 128, 128))[2]
        assert np.array_equal(labels, np.where(np.isin(values, (0, 3)), IGNORE_INDEX, values - 1))
    finally:
        close(scenes)


def test_ignoring_part_of_a_chip_folders_class_is_refused(tmp_path: Path) -> None:
    from geoseg.core.labels import LabelMap
    from geoseg.training.chipset import tile

    image = write_raster(tmp_path / "scene.tif", random_scene((3, 64, 64)), descriptions=BANDS)
    merged = LabelMap.from_spec([{"name": "land", "values": [1, 2]}, {"name": "water", "values": [3]}])
    tile(image, tmp_path / "chips", labels=mask(tmp_path, "m.tif", blocky_mask(64, 3)), chip_size=64, classes=merged)
    cfg = config(classes=None, chips=str(tmp_path / "chips"), ignore_values=[2])
    del cfg["data"]["scenes"], cfg["data"]["classes"]
    with pytest.raises(InputError, match=r"data.ignore_values: class 'land' of .*classes.json holds the values 1, 2"):
        opened(cfg, tmp_path)


def test_a_model_trained_on_chips_records_the_original_label_values(chips, tmp_path: Path) -> None:
    folder, _ = chips
    cfg = config(classes=None, chips=str(folder))
    del cfg["data"]["scenes"], cfg["data"]["classes"]
    cfg["split"]["gap"] = 0  # room for training chips beside a held-out block of the 128-px mosaic
    result = geoseg.train(cfg, tmp_path / "run")
    card = geoseg.load_model(result.model_path).card
    assert card.provenance["label_values"] == {"1": ["1"], "2": ["2"], "3": ["3"]}


# 4, 7 and 8. config values


def test_a_misspelt_model_parameter_is_refused_naming_the_key(tmp_path: Path) -> None:
    a = write_raster(tmp_path / "a.tif", random_scene((3, 64, 64)), descriptions=BANDS)
    cfg = config({"image": str(a), "labels": str(mask(tmp_path, "m.tif", blocky_mask(64, 2)))})
    cfg["model"]["params"] = {"decoder_chanels": [16, 8, 8], "encoder_depth": 3}
    with pytest.raises(
        ConfigError,
        match=r"config key model.params.decoder_chanels is not a parameter of smp's unet: "
        r"did you mean 'decoder_channels'\? valid ones are .*encoder_depth",
    ):
        opened(cfg, tmp_path)
    with pytest.raises(ModelError, match=r"smp's fpn takes no parameter 'decoder_channel'"):
        geoseg.create_model("fpn", "resnet18", bands=3, classes=2, decoder_channel=64)


def test_numbers_written_as_exponents_are_numbers() -> None:
    cfg = {"data": {"chips": "c"}, "train": {"lr": "1e-3", "weight_decay": "5e-5", "loss": {"ce": "1e0"}}}
    train = parse_config(cfg, Path("."))["train"]
    assert train["lr"] == 0.001 and train["weight_decay"] == 5e-5 and train["loss"] == {"ce": 1.0}
    with pytest.raises(ConfigError, match=r"train.lr: must be an integer or a number, got '1e-3x'"):
        parse_config({"data": {"chips": "c"}, "train": {"lr": "1e-3x"}}, Path("."))
    with pytest.raises(ConfigError, match=r"train.epochs: must be an integer, got '1e1'"):
        parse_config({"data": {"chips": "c"}, "train": {"epochs": "1e1"}}, Path("."))


def test_yaml_exponent_reaches_the_config_as_a_number(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("data: {chips: chips}\ntrain: {lr: 1e-3}\n")
    assert load_config(tmp_path / "c.yaml")["train"]["lr"] == 0.001


def test_a_key_given_twice_is_refused_with_its_lines(tmp_path: Path, runner) -> None:
    from tests.helpers import run

    path = tmp_path / "c.yaml"
    path.write_text("data: {chips: chips}\ntrain: {epochs: 3}\nsplit: {seed: 1}\ntrain: {lr: 0.01}\n")
    with pytest.raises(ConfigError, match=r"key train is given twice \(lines 2 and 4\)"):
        load_config(path)
    path.write_text("data:\n  chips: chips\n  stride: 16\n  stride: 32\n")
    result = run(runner, "train", path, "-o", tmp_path / "run")
    assert result.exit_code == 1 and "key data.stride is given twice (lines 3 and 4)" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_south_up_scene_trains_on_north_up_chips(tmp_path: Path) -> None:
    """Training counts a south-up scene's labels where they lie and gives its chips to the model north up, as
    prediction shows them."""
    from geoseg.training.data import Sample, iter_samples

    data = random_scene((3, 96, 96), "uint16", seed=5)
    labels = blocky_mask(96, 2, seed=5)
    labels[48:] = 0  # labels in the north only
    south = Affine(10.0, 0, 330000.0, 0, 10.0, 5822040.0 - 960)
    scenes = {}
    for name, transform, flip in (("north", TRANSFORM, False), ("south", south, True)):
        image = write_raster(tmp_path / f"{name}.tif", data[:, ::-1] if flip else data, transform=transform, descriptions=BANDS)
        truth = mask(tmp_path, f"{name}_mask.tif", labels[::-1] if flip else labels, transform)
        scenes[name], *_ = opened(config({"image": str(image), "labels": str(truth)}), tmp_path)
    try:
        north, south_up = scenes["north"][0], scenes["south"][0]
        assert np.array_equal(north.class_counts, south_up.class_counts[::-1])  # counted where the labels lie
        windows = {"north": Window(16, 16, 48, 48), "south": Window(16, 96 - 16 - 48, 48, 48)}  # the same ground
        chips = {name: next(iter_samples(scenes[name], [Sample(0, windows[name])], lambda d: d, 1))[:2] for name in scenes}
        for a, b in zip(chips["north"], chips["south"]):
            assert np.array_equal(a, b)  # the model sees the same chip
    finally:
        close(scenes["north"] + scenes["south"])


def test_an_alpha_band_is_not_a_model_band(tmp_path: Path) -> None:
    """An RGBA scene (an orthophoto) trains on red, green and blue: its alpha band is the mask GDAL reads."""
    data = random_scene((4, 64, 64), "uint8", seed=2)
    image = write_raster(tmp_path / "rgba.tif", data, photometric="RGB", alpha="YES")
    truth = mask(tmp_path, "mask.tif", blocky_mask(64, 2, seed=2))
    scenes, bands, *_ = opened(config({"image": str(image), "labels": str(truth)}), tmp_path)
    close(scenes)
    assert len(bands) == 3


def test_data_bands_name_bands_by_their_colour_interpretation(tmp_path: Path) -> None:
    """``data.bands: [red, green, blue]`` finds an RGB GeoTIFF's bands without descriptions, as predict's --bands does."""
    data = random_scene((3, 64, 64), "uint8", seed=4)
    image = write_raster(tmp_path / "rgb.tif", data[::-1].copy(), photometric="RGB")  # written red, green, blue
    truth = mask(tmp_path, "mask.tif", blocky_mask(64, 2, seed=4))
    scenes, bands, *_ = opened(config({"image": str(image), "labels": str(truth)}, bands=["blue", "green", "red"]), tmp_path)
    indexes = scenes[0].indexes
    close(scenes)
    assert bands == ["blue", "green", "red"] and indexes == [3, 2, 1]


def test_a_scene_smaller_than_a_chip_is_scored_on_its_own_pixels(tmp_path: Path) -> None:
    """A 40 x 50 px scene trains on one 64-px chip: past the scene the model sees the scene mirrored (the context
    prediction gives its edge chips), labeled 255, so no loss scores a pixel there."""
    import torch

    from geoseg.training.config import parse_config
    from geoseg.training.data import iter_samples
    from geoseg.training.losses import LOSSES, make_loss
    from geoseg.training.prepare import split_scenes

    pixels = random_scene((3, 40, 50), seed=3)
    image = write_raster(tmp_path / "small.tif", pixels, descriptions=BANDS)
    truth = np.maximum(blocky_mask(64, 2, seed=3)[:40, :50], 1)  # every pixel labeled, 1 or 2
    cfg = config({"image": str(image), "labels": str(mask(tmp_path, "small_mask.tif", truth))})
    cfg["split"]["val_fraction"] = 0
    scenes, *_ = opened(cfg, tmp_path)
    try:
        split = split_scenes(parse_config(cfg, tmp_path), scenes)
        assert [s.window for s in split.train] == [Window(0, 0, 64, 64)]
        data, labels, _ = next(iter_samples(scenes, split.train, lambda d: d, 1))
    finally:
        close(scenes)
    assert np.array_equal(data[0], np.pad(pixels, ((0, 0), (0, 24), (0, 14)), mode="reflect"))
    assert np.array_equal(labels[0, :40, :50], truth - 1)
    assert (labels[0, 40:] == IGNORE_INDEX).all() and (labels[0, :, 50:] == IGNORE_INDEX).all()
    torch.manual_seed(0)
    logits, target = torch.randn(1, 2, 64, 64), torch.from_numpy(labels.astype(np.int64))
    other = logits.clone()
    other[:, :, 40:], other[:, :, :, 50:] = torch.randn(1, 2, 24, 64) * 9, torch.randn(1, 2, 64, 14) * 9
    loss = make_loss(dict.fromkeys(LOSSES, 1.0))
    assert torch.allclose(loss(logits, target), loss(other, target))
