"""Training end to end on generated rasters whose classes are learnable, plus its parts."""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

import geoseg
from geoseg.core.classes import IGNORE_INDEX
from geoseg.training.data import augment, make_split
from tests.helpers import UTM33, run, write_raster

TRANSFORM = Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0)


def learnable_scene(tmp: Path, size: int = 256, seed: int = 0) -> tuple[Path, Path, np.ndarray]:
    """A 3-band scene of blocky regions of 3 classes, each class a distinct spectrum plus noise,
    and a mask raster labeling about 60% of the pixels (0 = unlabeled, 1..3 = class)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 3, (size // 16, size // 16))
    classes = np.kron(cells, np.ones((16, 16), dtype=np.int64))
    spectra = np.array([[800, 2500, 600], [2400, 900, 1500], [1200, 1300, 2600]], dtype=np.float64)
    data = spectra[classes].transpose(2, 0, 1) + rng.normal(0, 150, (3, size, size))
    image = write_raster(tmp / "scene.tif", data.clip(0, 65535).astype("uint16"), descriptions=["B02", "B04", "B08"])
    labeled = rng.random((size // 16, size // 16)) < 0.6
    mask = np.where(np.kron(labeled, np.ones((16, 16), bool)), classes + 1, 0).astype("uint8")
    labels = write_raster(tmp / "mask.tif", mask, nodata=0)
    return image, labels, classes


def small_config(image: Path, labels: Path, **train: object) -> dict:
    return {
        "name": "test-model",
        "model": {
            "arch": "unet",
            "encoder": "resnet18",
            "chip_size": 64,
            "overlap": "16px",
            "params": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
        },
        "data": {
            "scenes": [{"image": str(image), "labels": str(labels)}],
            "classes": [{"name": "water", "values": [1]}, {"name": "forest", "values": [2]}, {"name": "field", "values": [3]}],
            "stride": 16,
            "min_labeled": 0.1,
        },
        "split": {"val_fraction": 0.25, "block_size": 64, "gap": 16, "seed": 1},
        "train": {"epochs": 6, "batch_size": 8, "lr": 0.01, "samples_per_epoch": 48, "seed": 0, "loss": {"ce": 1.0}, "threads": 2}
        | train,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("train")
    image, labels, classes = learnable_scene(tmp)
    result = geoseg.train(small_config(image, labels), tmp / "run")
    return tmp, image, labels, classes, result


@pytest.mark.slow
def test_training_learns_and_writes_the_run(trained) -> None:
    tmp, image, labels, classes, result = trained
    losses = [row["train_loss"] for row in result.history]
    print("train loss per epoch", losses, "best validation mean IoU", result.best_miou)
    assert losses[-1] < losses[0] * 0.5
    assert result.best_miou > 0.9
    for name in ("model.pt", "last.pt", "resume.pt", "history.csv", "curves.png", "metrics.json", "config.yaml"):
        assert (result.run_dir / name).is_file(), name
    assert (result.run_dir / "confusion.png").read_bytes()[:4] == b"\x89PNG"  # the best epoch's validation matrix
    with (result.run_dir / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(result.history) and {"iou_water", "iou_forest", "iou_field", "data_wait_share"} <= set(rows[0])
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["best_epoch"] == result.best_epoch
    assert [c["name"] for c in metrics["validation"]["classes"]] == ["water", "forest", "field"]
    model = geoseg.load_model(result.model_path)
    assert model.card.bands == ["B02", "B04", "B08"] and model.card.pixel_size == 10.0
    # normalization from the training area: close to the scene's band means
    with rasterio.open(image) as ds:
        means = ds.read().reshape(3, -1).mean(1)
    assert np.allclose(model.card.mean, means, rtol=0.1)


def test_trained_model_predicts_held_out_blocks(trained, tmp_path: Path) -> None:
    tmp, image, labels, classes, result = trained
    out = tmp_path / "classes.tif"
    geoseg.predict(image, result.model_path, out)
    with rasterio.open(out) as ds:
        pred = ds.read(1)
    split_cells = []  # validation blocks as the training saw them
    from geoseg.training.config import parse_config
    from geoseg.training.prepare import open_scenes, split_scenes

    cfg = parse_config(small_config(image, labels), Path("."))
    scenes, *_ = open_scenes(cfg, None, tmp_path)
    split = split_scenes(cfg, scenes)
    for scene in scenes:
        scene.close()
    val = np.kron(split.val_cells[0], np.ones((16, 16), bool))
    split_cells.append(val)
    assert val.any()
    agreement = (pred[val] == classes[val]).mean()
    print("held-out pixel agreement", agreement)
    assert agreement > 0.95


@pytest.mark.slow
def test_resume_continues_exactly(trained, tmp_path: Path) -> None:
    tmp, image, labels, _, _ = trained
    whole = geoseg.train(small_config(image, labels, epochs=2), tmp_path / "a")

    def interrupt(row: dict) -> None:
        raise KeyboardInterrupt  # like Ctrl-C after the first epoch

    with pytest.raises(KeyboardInterrupt):
        geoseg.train(small_config(image, labels, epochs=2), tmp_path / "b", on_epoch=interrupt)
    history = (tmp_path / "b" / "history.csv").read_text().splitlines()
    assert len(history) == 2 and history[1].split(",")[1] == str(whole.history[0]["train_loss"])  # deterministic
    resumed = geoseg.train(small_config(image, labels, epochs=2), tmp_path / "b", resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.history[1]["train_loss"] == whole.history[1]["train_loss"]  # bit for bit (tests/test_resume.py)
    a = geoseg.load_model(tmp_path / "a" / "last.pt").state_dict()
    b = geoseg.load_model(tmp_path / "b" / "last.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_split_keeps_training_chips_away_from_validation(trained, tmp_path: Path) -> None:
    tmp, image, labels, _, _ = trained
    from geoseg.training.config import parse_config
    from geoseg.training.prepare import open_scenes

    cfg = parse_config(small_config(image, labels), Path("."))
    scenes, *_ = open_scenes(cfg, None, tmp_path)
    try:
        for gap in (0, 16, 32):
            split = make_split(scenes, 64, 64, gap, 0.3, 0.1, seed=2)
            val = np.kron(split.val_cells[0], np.ones((16, 16), bool))
            assert split.train and split.val
            for s in split.train:
                w = s.window
                y0, x0 = max(0, w.row_off - gap), max(0, w.col_off - gap)
                assert not val[y0 : w.row_off + 64 + gap, x0 : w.col_off + 64 + gap].any()
            scored = np.zeros_like(val)
            for s in split.val:
                sw = s.score
                y, x = s.window.row_off + sw.row_off, s.window.col_off + sw.col_off
                scored[y : y + sw.height, x : x + sw.width] = True
            assert (scored == val).all()
    finally:
        for scene in scenes:
            scene.close()


def test_augment_moves_labels_with_pixels() -> None:
    rng = np.random.default_rng(0)
    labels = np.kron(rng.integers(0, 5, (8, 8)), np.ones((8, 8))).astype(np.uint8)
    data = np.stack([labels.astype(np.float32), labels.astype(np.float32) * 2])
    for _ in range(20):
        d, lab = augment(data, labels, rng, flips=True, rot90=True, scale=0.0, brightness=0.0)
        assert (d[0] == lab).all() and (d[1] == 2 * lab).all()
    d, lab = augment(data, labels, rng, flips=False, rot90=False, scale=0.3, brightness=0.0)
    inside = lab != IGNORE_INDEX
    assert inside.mean() > 0.5 and (np.abs(d[0][inside] - lab[inside]) < 1).mean() > 0.8


def test_losses_ignore_unlabeled_pixels() -> None:
    from geoseg.training.losses import make_loss

    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :4] = IGNORE_INDEX
    for weights in ({"ce": 1.0}, {"dice": 1.0}, {"focal": 1.0}, {"ce": 1.0, "dice": 0.5}):
        logits.grad = None
        make_loss(weights, [1.0, 2.0, 0.5])(logits, target).backward()
        assert float(logits.grad[:, :, :4].abs().sum()) == 0.0, weights
        assert float(logits.grad[:, :, 4:].abs().sum()) > 0.0, weights


@pytest.mark.slow
def test_chip_folder_from_tile_trains(trained, tmp_path: Path, runner) -> None:
    tmp, image, labels, classes, _ = trained
    chips = tmp_path / "chips"
    result = run(
        runner, "tile", image, "-o", chips, "--labels", labels, "--chip-size", 64, "--overlap", "0", "--min-labeled", 0.5
    )
    assert result.exit_code == 0, result.output
    import geopandas as gpd

    index = gpd.read_file(chips / "index.gpkg", layer="chips")
    assert len(index) > 0 and (index["labeled"] >= 0.5).all() and len(index) < 16
    import sqlite3

    with contextlib.closing(sqlite3.connect(chips / "index.gpkg")) as db:  # GeoPackage 1.2: no warning in older GDAL
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10200
    row = index.iloc[0]
    with rasterio.open(chips / row["image"]) as ci, rasterio.open(image) as ds, rasterio.open(chips / row["mask"]) as cm:
        assert ci.crs == ds.crs and ci.transform == ds.window_transform(Window(row["x_off"], row["y_off"], 64, 64))
        assert (ci.read() == ds.read(window=Window(row["x_off"], row["y_off"], 64, 64))).all()
        truth = classes[row["y_off"] : row["y_off"] + 64, row["x_off"] : row["x_off"] + 64]
        mask = cm.read(1)
        assert ((mask == truth) | (mask == IGNORE_INDEX)).all() and (mask != IGNORE_INDEX).mean() >= 0.5
    table = json.loads((chips / "classes.json").read_text())
    assert [c["name"] for c in table] == ["1", "2", "3"]
    cfg = small_config(image, labels, epochs=1, samples_per_epoch=8)
    cfg["data"] = {"chips": str(chips), "stride": 16, "min_labeled": 0.1}
    cfg["split"] = {"val_fraction": 0.3, "block_size": 64, "gap": 0, "seed": 0}
    out = geoseg.train(cfg, tmp_path / "run")
    assert geoseg.load_model(out.model_path).card.num_classes == 3
    assert out.history[0]["chips"] == 8


def test_vector_labels_in_another_crs_land_on_the_right_pixels(tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    from geoseg.io.label_files import SceneGrid, open_labels

    image = write_raster(tmp_path / "s.tif", np.ones((1, 40, 50), "uint16"))
    x0, y0 = 330000.0, 5822040.0
    big = shapely.box(x0 + 50, y0 - 300, x0 + 350, y0 - 50)  # cols 5..34, rows 5..29
    small = shapely.box(x0 + 100, y0 - 200, x0 + 200, y0 - 100)  # cols 10..19, rows 10..19, inside big
    frame = gpd.GeoDataFrame({"kind": ["forest", "water"]}, geometry=[big, small], crs=UTM33).to_crs("EPSG:4326")
    frame.to_file(tmp_path / "labels.geojson", driver="GeoJSON")
    with rasterio.open(image) as ds:
        labels = open_labels(tmp_path / "labels.geojson", SceneGrid.of(ds), "kind")
    mask = labels.read(Window(0, 0, 50, 40))
    assert labels.label_map.names == ["forest", "water"]
    expected = np.full((40, 50), IGNORE_INDEX, np.uint8)
    expected[5:30, 5:35] = 0
    expected[10:20, 10:20] = 1  # the smaller polygon is on top
    assert (mask == expected).all()


def test_evaluate_matches_a_hand_computed_confusion_matrix(tmp_path: Path, runner) -> None:
    from geoseg.core.classes import CLASSES_TAG

    rng = np.random.default_rng(5)
    pred = rng.integers(0, 3, (30, 40)).astype("uint8")
    pred[0, :5] = 255  # nodata prediction: not scored
    truth = rng.integers(0, 4, (30, 40)).astype("uint8")  # 0 = unlabeled, 1..3 = classes 0..2
    table = [{"id": i, "name": n, "color": "#112233"} for i, n in enumerate(["a", "b", "c"])]
    p = write_raster(tmp_path / "pred.tif", pred, nodata=255)
    with rasterio.open(p, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: json.dumps(table)})
    t = write_raster(tmp_path / "truth.tif", truth, nodata=0)
    (tmp_path / "map.json").write_text(json.dumps({"0": "unlabeled", "1": "a", "2": "b", "3": "c"}))
    expected = np.zeros((3, 3), int)
    for tv, pv in zip(truth.ravel(), pred.ravel()):
        if tv != 0 and pv != 255:
            expected[tv - 1, pv] += 1
    result = run(runner, "evaluate", p, t, "--classes", tmp_path / "map.json", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["confusion_matrix"] == expected.tolist()
    iou = [expected[i, i] / (expected[i].sum() + expected[:, i].sum() - expected[i, i]) for i in range(3)]
    assert [c["iou"] for c in metrics["classes"]] == pytest.approx(iou)
    assert metrics["accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
    assert "mean IoU" in result.output and "confusion matrix" in result.output


CONFIG_ERRORS = [
    ({"train": {"epohcs": 3}}, "train.epohcs is not known: did you mean 'epochs'"),
    ({"train": {"epochs": "ten"}}, "train.epochs: must be an integer"),
    ({"train": {"loss": "hinge"}}, "'hinge' is not one of ce, dice, focal"),
    ({"train": {"lr": -1}}, "train.lr: must lie in"),
    ({"modle": {}}, "modle is not known: did you mean 'model'"),
    ({"split": {"val_fraction": 0.95}}, "split.val_fraction: must lie in [0.0, 0.9]"),
    ({"train": {"device": "tpu"}}, "train.device: 'tpu' is not one of auto, cpu, cuda"),
    ({"train": {"loss": {"ce": 1.0, "lovas": 0.5}}}, "'lovas' is not one of ce, dice, focal, lovasz: did you mean 'lovasz'?"),
    # values in the config file: exit 1, naming the key (not the CLI's --bands or --device)
    ({"data": {"bands": ["B02", "", "B04"]}}, "data.bands: has an empty item"),
    ({"train": {"device": "cpu:1"}}, "train.device: 'cpu:1' is not one of auto, cpu, cuda"),
]


@pytest.mark.parametrize(("change", "message"), CONFIG_ERRORS)
def test_config_errors_name_the_key(tmp_path: Path, runner, change: dict, message: str) -> None:
    import yaml

    cfg = small_config(tmp_path / "scene.tif", tmp_path / "mask.tif")
    for section, values in change.items():
        cfg.setdefault(section, {}).update(values) if isinstance(cfg.get(section), dict) else cfg.update(change)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = run(runner, "train", tmp_path / "c.yaml", "-o", tmp_path / "run")
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "run").exists()


def _bad_input_cases(tmp: Path) -> list[tuple[dict, str]]:
    import geopandas as gpd
    import shapely

    image, labels, _ = learnable_scene(tmp, size=64)
    far = gpd.GeoDataFrame({"fclass": ["forest"]}, geometry=[shapely.box(0, 0, 100, 100)], crs=UTM33)
    far.to_file(tmp / "far.gpkg")
    near = gpd.GeoDataFrame(
        {"fclass": ["forest", "lake"]}, geometry=[shapely.box(330000, 5821500, 330300, 5822000)] * 2, crs=UTM33
    )
    near.to_file(tmp / "near.gpkg")
    (tmp / "empty.geojson").write_text("")
    write_raster(tmp / "two.tif", np.ones((2, 64, 64), "uint16"))

    def scene(**kw: object) -> dict:
        return {"data": {"scenes": [{"image": str(image), "labels": str(labels)} | kw], "classes": ["forest", "water"]}}

    return [
        (scene(labels=str(tmp / "far.gpkg"), label_field="fclass"), "do not overlap the scene"),
        (scene(labels=str(tmp / "near.gpkg"), label_field="fcls"), "have no field 'fcls': fields are fclass"),
        (scene(labels=str(tmp / "near.gpkg"), label_field="fclass"), "label values lake in"),
        (scene(labels=str(tmp / "empty.geojson"), label_field="fclass"), "are an empty file"),
        (
            {
                "data": {
                    "scenes": [
                        {"image": str(image), "labels": str(labels)},
                        {"image": str(tmp / "two.tif"), "labels": str(labels)},
                    ],
                    "classes": [{"name": "a", "values": [1, 2, 3]}],
                }
            },
            "gives 2 bands but the first scene gives 3",
        ),
        (
            {
                "data": {
                    "scenes": [{"image": str(image), "labels": str(labels)}],
                    "bands": ["B02", "B11"],
                    "classes": [{"name": "a", "values": [1, 2, 3]}],
                }
            },
            "'B11' is not a band description",
        ),
        (
            {"data": {"scenes": [{"image": str(image), "labels": str(labels), "labelfield": "x"}]}},
            "data.scenes[0].labelfield is not known: did you mean 'label_field'",
        ),
    ]


def test_bad_training_inputs_give_one_line(tmp_path: Path, runner) -> None:
    import yaml

    for i, (change, message) in enumerate(_bad_input_cases(tmp_path)):
        cfg = small_config(tmp_path / "x.tif", tmp_path / "y.tif")
        cfg["data"] = change["data"] | {"stride": 16}
        path = tmp_path / f"c{i}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        result = run(runner, "train", path, "-o", tmp_path / f"run{i}")
        assert result.exit_code == 1, (message, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, (message, result.output)
        assert not (tmp_path / f"run{i}").exists()


def test_existing_run_folder_is_refused(trained, runner) -> None:
    tmp, image, labels, _, result = trained
    import yaml

    (tmp / "c.yaml").write_text(yaml.safe_dump(small_config(image, labels)))
    before = (result.run_dir / "model.pt").stat().st_mtime_ns
    out = run(runner, "train", tmp / "c.yaml", "-o", result.run_dir)
    assert out.exit_code == 1 and "use --resume" in out.output
    assert (result.run_dir / "model.pt").stat().st_mtime_ns == before


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    from geoseg.training.config import load_config

    cfg = load_config(path)
    for scene in cfg["data"]["scenes"]:
        assert Path(scene["image"]).is_file() and Path(scene["labels"]).is_file()


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_typed_config_gives_back_the_checked_mapping(path: Path) -> None:
    import dataclasses

    from geoseg.training.config import TrainConfig, load_config, read_config

    cfg = load_config(path)
    config = read_config(path)
    assert config == TrainConfig.from_dict(cfg) and config.to_dict() == cfg
    assert json.dumps(config.to_dict(), indent=2) == json.dumps(cfg, indent=2)  # the run's config.yaml
    assert config.train.loss == cfg["train"]["loss"] and config.model.chip_size == cfg["model"]["chip_size"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.lr = 1.0  # type: ignore[misc]


def test_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path: Path, runner, monkeypatch) -> None:
    import yaml

    from geoseg.training.config import ConfigError, load_config

    built = []
    construct = yaml.SafeLoader.construct_document
    monkeypatch.setattr(yaml.SafeLoader, "construct_document", lambda self, node: built.append(node) or construct(self, node))

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    lines.append("train: {epochs: *a8}")  # 9 ** 9 values once expanded
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="bomb.yaml expands to more than 1,000,000 values through YAML aliases"):
        load_config(bomb)
    assert not built  # refused from the node graph: no Python value of the expansion was ever made
    result = run(runner, "train", bomb, "-o", tmp_path / "run")
    assert result.exit_code == 1 and "expands to more than" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "run").exists()
    (tmp_path / "loop.yaml").write_text("a: &a [*a]\n")  # an alias inside its own anchor: endless
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(tmp_path / "loop.yaml")


@pytest.mark.slow
def test_example_config_trains_one_epoch(tmp_path: Path) -> None:
    """The documented polygon example runs as shipped: its chip size and split find training chips on the sample
    (a smaller network and one short epoch)."""
    import yaml

    from geoseg.training.config import load_config

    src = Path(__file__).resolve().parents[1] / "configs" / "example_polygons.yaml"
    raw = yaml.safe_load(src.read_text())
    cfg = load_config(src)
    raw["data"]["scenes"] = cfg["data"]["scenes"]
    raw["model"].update({"params": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}})  # its chips and split as shipped
    raw["train"].update({"epochs": 1, "samples_per_epoch": 4})
    result = geoseg.train(raw, tmp_path / "run")
    card = geoseg.load_model(result.model_path).card
    assert [c.name for c in card.classes] == ["forest", "farm", "meadow", "water"]
    assert card.bands[:3] == ["B02", "B03", "B04"] and "OpenStreetMap" in card.provenance["attribution"]


def test_tile_and_evaluate_refusals(tmp_path: Path, runner) -> None:
    image, labels, _ = learnable_scene(tmp_path, size=64)
    result = run(runner, "tile", image, "-o", tmp_path / "c", "--labels", labels, "--min-labeled", 1.5)
    assert result.exit_code == 2 and "--min-labeled 1.5 must lie in [0, 1]" in result.stderr
    assert not (tmp_path / "c").exists()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "tile.json").write_text('{"format": "geoseg-chips/1"}')  # a chip folder geoseg tile wrote before
    result = run(runner, "tile", image, "-o", tmp_path / "c", "--labels", labels)
    assert result.exit_code == 1 and "use --overwrite" in result.stderr
    result = run(runner, "evaluate", image, labels)
    assert result.exit_code == 1 and "carries no class table" in result.stderr
    (tmp_path / "m.json").write_text("{}")
    result = run(runner, "evaluate", labels, labels, "--json", tmp_path / "m.json")
    assert result.exit_code == 1 and "use --overwrite" in result.stderr
    assert (tmp_path / "m.json").read_text() == "{}"


@pytest.mark.slow
def test_torchrun_with_two_gloo_processes_trains_and_writes_one_checkpoint(tmp_path: Path) -> None:
    """``geoseg train`` under torchrun: DistributedDataParallel on CPU (gloo), each process half of every epoch's
    chips (torch's DistributedSampler), metrics reduced over both, only rank 0 writes."""
    import os
    import subprocess
    import sys

    image, labels, _ = learnable_scene(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(small_config(image, labels, epochs=3, threads=1)))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "geoseg",
            "train",
            str(config),
            "-o",
            str(tmp_path / "run"),
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == [
        "config.yaml",
        "confusion.png",
        "curves.png",
        "history.csv",
        "last.pt",
        "metrics.json",
        "model.pt",
        "resume.pt",
    ]
    with (tmp_path / "run" / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(int(r["chips"]) == 48 for r in rows), "the two processes together see the epoch's 48 chips"
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    model = geoseg.load_model(tmp_path / "run" / "model.pt")
    assert model.card.provenance["processes"] == 2
    assert 0.0 <= float(rows[-1]["val_miou"]) <= 1.0
    assert done.stderr.count("training on 2 processes") <= 1, "only rank 0 reports"
