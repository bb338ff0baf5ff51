"""ONNX export with Deepness metadata, the onnxruntime backend, and GeoDeep as a real consumer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

import geoseg
from geoseg.model.onnx import DEEPNESS_KEYS, export_onnx, load_onnx
from tests.helpers import SAMPLE, run, tiny_unet, write_raster

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra: pip install -e '.[dev]'")
onnx = pytest.importorskip("onnx", reason="onnx is in the dev extra: pip install -e '.[dev]'")


def check_deepness_metadata(path: Path) -> dict:
    """Every key Deepness reads is there, JSON-encoded, with the type Deepness converts it to."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    values = {}
    for key, kind in DEEPNESS_KEYS.items():
        assert key in meta, key
        values[key] = json.loads(meta[key])
        assert isinstance(values[key], kind), (key, values[key])
    assert values["model_type"] == "Segmentor"
    names = values["class_names"]
    assert sorted(int(k) for k in names) == list(range(len(names)))  # consecutive from 0, as Deepness requires
    (inp,) = session.get_inputs()
    assert inp.shape[1:] == [len(values["standardization_mean"]), values["tiles_size"], values["tiles_size"]]
    assert values["tile_size"] == values["tiles_size"]
    assert not isinstance(inp.shape[0], int)  # dynamic batch axis
    return values


def test_exported_default_model_passes_the_deepness_check(tmp_path: Path, runner) -> None:
    out = tmp_path / "default.onnx"
    result = run(runner, "export", "default", "-o", out)
    assert result.exit_code == 0, result.output
    values = check_deepness_metadata(out)
    card = geoseg.load_model("default").card
    assert values["class_names"] == {str(c.id): c.name for c in card.classes}
    assert values["resolution"] == 1000.0 and values["tiles_overlap"] == 25
    assert values["standardization_mean"] == [0.0] * 10 and values["standardization_std"] == [1.0] * 10
    proto = onnx.load(str(out))
    assert len(proto.graph.initializer) > 10 and not any(t.data_location for t in proto.graph.initializer)
    # peers take the plain argmax (Deepness and GeoDeep zero probabilities below seg_thresh), and the output is static
    # but for the batch, so Deepness' shape check (height == width) passes
    assert values["seg_thresh"] == 0.0 and values["seg_small_segment"] == 0
    shape = [d.dim_value or d.dim_param for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert shape[1:] == [len(card.classes), 256, 256] and shape[2] == shape[3] and isinstance(shape[0], str)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((2, 10, 256, 256), np.float32)})[0].shape == (2, 8, 256, 256)
    smoothed = run(runner, "export", "default", "-o", tmp_path / "s.onnx", "--smooth", 4)
    assert smoothed.exit_code == 0 and check_deepness_metadata(tmp_path / "s.onnx")["seg_small_segment"] == 4
    shown = run(runner, "info", out, "--json")  # the card an ONNX file carries, as geoseg info shows it
    assert shown.exit_code == 0, shown.output
    assert [c["name"] for c in json.loads(shown.stdout)["classes"]] == [c.name for c in card.classes]


@pytest.mark.slow
def test_onnx_backend_matches_the_checkpoint(tmp_path: Path) -> None:
    classes = {}
    for backend, model in (("torch", "default"), ("onnx", "default")):
        geoseg.predict(SAMPLE, model, tmp_path / f"{backend}.tif", backend=backend)
        with rasterio.open(tmp_path / f"{backend}.tif") as ds:
            classes[backend] = ds.read(1)
    export_onnx("default", tmp_path / "d.onnx")
    geoseg.predict(SAMPLE, tmp_path / "d.onnx", tmp_path / "file.tif", tta=True)
    geoseg.predict(SAMPLE, "default", tmp_path / "tta.tif", tta=True, backend="torch")
    with rasterio.open(tmp_path / "file.tif") as a, rasterio.open(tmp_path / "tta.tif") as b:
        tta_agreement = (a.read(1) == b.read(1)).mean()
    agreement = (classes["torch"] == classes["onnx"]).mean()
    print("torch vs onnxruntime class agreement", agreement, "with TTA", tta_agreement)
    assert agreement >= 0.999 and tta_agreement >= 0.999


def test_an_onnx_model_runs_without_importing_torch(tmp_path: Path) -> None:
    """Importing torch costs over a second and hundreds of MB: an ONNX run (CLI or API) must not need it."""
    import subprocess
    import sys

    export_onnx(tiny_unet(10, 3, pixel_size=10.0), tmp_path / "tiny.onnx")
    code = (
        "import sys, geoseg; from geoseg.cli import main; "
        f"geoseg.predict({str(SAMPLE)!r}, {str(tmp_path / 'tiny.onnx')!r}, {str(tmp_path / 'c.tif')!r}); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert (tmp_path / "c.tif").exists()


def test_onnx_file_runs_through_geoseg_run(tmp_path: Path, runner) -> None:
    model = tiny_unet(10, 3, pixel_size=10.0)
    export_onnx(model, tmp_path / "tiny.onnx")
    result = run(runner, "run", SAMPLE, "-o", tmp_path / "out", "-m", tmp_path / "tiny.onnx")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["model"]["sha256"] and (tmp_path / "out" / "polygons.gpkg").exists()
    result = run(runner, "predict", SAMPLE, "-m", tmp_path / "tiny.onnx", "-o", tmp_path / "c.tif", "--chip-size", 128)
    assert result.exit_code == 1 and "takes only 64 px chips" in result.stderr
    result = run(runner, "predict", SAMPLE, "-m", tmp_path / "tiny.onnx", "-o", tmp_path / "c.tif", "--backend", "torch")
    assert result.exit_code == 1 and "is an ONNX model" in result.stderr
    assert not (tmp_path / "c.tif").exists()


def test_onnx_without_metadata_and_with_deepness_metadata_only(tmp_path: Path, runner) -> None:
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Softmax(dim=1)).eval()
    bare = tmp_path / "bare.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 32, 32),),
        str(bare),
        opset_version=17,
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "b"}},
    )
    scene = write_raster(tmp_path / "rgb.tif", np.full((3, 40, 40), 100, "uint8"))
    result = run(runner, "predict", scene, "-m", bare, "-o", tmp_path / "c.tif")
    assert result.exit_code == 1 and "missing model_type, class_names" in result.stderr
    proto = onnx.load(str(bare))
    for key, value in {
        "model_type": "Segmentor",
        "class_names": {"0": "a", "1": "b"},
        "resolution": 1000,
        "standardization_mean": [0.5, 0.5, 0.5],
        "standardization_std": [0.25, 0.25, 0.25],
    }.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(tmp_path / "deepness.onnx"))
    model = load_onnx(tmp_path / "deepness.onnx")
    assert [c.name for c in model.card.classes] == ["a", "b"] and model.chip_size == 32
    # geoseg feeds what Deepness feeds: (raw / 255 - mean) / std
    raw = np.full((1, 3, 32, 32), 100, np.float32)
    fed = model.to_graph_input(model.normalize(raw.copy()[0])[None])
    assert np.allclose(fed, (100 / 255 - 0.5) / 0.25, atol=1e-5)
    result = run(runner, "predict", scene, "-m", tmp_path / "deepness.onnx", "-o", tmp_path / "c.tif")
    assert result.exit_code == 0 and "Deepness metadata only" in result.stderr


def test_export_refusals(tmp_path: Path, runner) -> None:
    result = run(runner, "export", "default", "-o", tmp_path / "m.pt")
    assert result.exit_code == 1 and "must end in .onnx" in result.stderr
    (tmp_path / "m.onnx").write_text("keep")
    result = run(runner, "export", "default", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1 and "use --overwrite" in result.stderr
    assert (tmp_path / "m.onnx").read_text() == "keep"
    result = run(runner, "export", "default", "-o", tmp_path / "x.onnx", "--chip-size", 100)
    assert result.exit_code == 1 and "use 96 or 128" in result.stderr and not (tmp_path / "x.onnx").exists()


def _rgb_sample(tmp: Path) -> Path:
    """The sample's B04, B03, B02 as a uint8 RGB GeoTIFF (2nd-98th percentile stretch)."""
    with rasterio.open(SAMPLE) as ds:
        data = ds.read([3, 2, 1]).astype(np.float32)
        profile = {"crs": ds.crs, "transform": ds.transform}
    lo, hi = np.percentile(data, 2, axis=(1, 2)), np.percentile(data, 98, axis=(1, 2))
    rgb = np.clip((data - lo[:, None, None]) / (hi - lo)[:, None, None] * 255, 0, 255).astype("uint8")
    path = write_raster(
        tmp / "rgb.tif",
        rgb,
        crs=profile["crs"].to_string(),
        transform=profile["transform"],
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )
    with rasterio.open(path, "r+") as ds:
        from rasterio.enums import ColorInterp

        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        ds.descriptions = ("red", "green", "blue")
    return path


@pytest.mark.slow
def test_geodeep_runs_an_exported_three_band_model(tmp_path: Path) -> None:
    geodeep = pytest.importorskip("geodeep", reason="GeoDeep is in the dev extra: pip install -e '.[dev]'")
    rgb = _rgb_sample(tmp_path)
    # Forest against open land: a task the RGB bands answer confidently, so the map depends on the
    # inputs and metadata GeoDeep uses, not on where its chips fall (it crops overlaps and median-filters
    # instead of blending; an uncertain model flips classes under such differences).
    config = {
        "model": {
            "arch": "unet",
            "encoder": "resnet18",
            "chip_size": 128,
            "overlap": 0.25,
            "params": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
        },
        "data": {
            "scenes": [{"image": str(rgb), "labels": str(SAMPLE.with_name("brandenburg_osm_mask_512.tif"))}],
            "classes": [{"name": "forest", "values": [1]}, {"name": "open land", "values": [2, 3, 4, 8]}],
            "ignore_values": [5, 6, 7],
            "stride": 32,
        },
        "split": {"val_fraction": 0.2, "block_size": 128},
        "train": {"epochs": 6, "samples_per_epoch": 32, "batch_size": 8, "lr": 0.005, "loss": "ce", "threads": 2},
    }
    result = geoseg.train(config, tmp_path / "run")
    onnx_path = export_onnx(result.model_path, tmp_path / "rgb.onnx")
    check_deepness_metadata(onnx_path)
    geoseg.predict(rgb, onnx_path, tmp_path / "classes.tif")
    with rasterio.open(tmp_path / "classes.tif") as ds:
        ours = ds.read(1)
    mask = geodeep.run(str(rgb), str(onnx_path), output_type="raw")
    assert mask.shape == ours.shape
    agreement = (mask == ours).mean()
    shares = np.bincount(ours.ravel(), minlength=2) / ours.size
    print("GeoDeep vs geoseg class agreement", agreement, "class shares", shares)
    assert agreement >= 0.95
    assert shares.min() > 0.1  # a real map, not one class everywhere


def test_normalization_that_cannot_be_expressed_is_refused(tmp_path: Path) -> None:
    from geoseg.core.errors import ModelError

    model = tiny_unet(3, 2, mean=[0.0, 0.0, 0.0], std=[1.0, float("inf"), 1.0])
    with pytest.raises(ModelError, match="cannot be expressed in ONNX"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())
