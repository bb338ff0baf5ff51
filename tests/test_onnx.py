"""ONNX export with Deepness metadata, the onnxruntime backend, and GeoDeep as a real consumer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

import geoseg
from geoseg.model.onnx import DEEPNESS_KEYS, export_onnx, load_onnx
from tests.helpers import SAMPLE, run, sample_crop, tiny_unet, write_raster

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra: pip install -e '.[dev]'")
onnx = pytest.importorskip("onnx", reason="onnx is in the dev extra: pip install -e '.[dev]'")

from tests.test_model_files import DEEPNESS, tiny_onnx  # noqa: E402 - the Deepness-only metadata of the model-file tests


def check_deepness_metadata(path: Path) -> dict:
    """Every key Deepness reads is there, JSON-encoded, with the type Deepness converts it to; ``resolution`` (cm) is
    the card's pixel size, and absent where the card has none (never made up)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    pixel_size = json.loads(meta["geoseg_card"])["pixel_size"]
    assert ("resolution" in meta) == bool(pixel_size), meta.get("resolution")
    values = {}
    for key, kind in DEEPNESS_KEYS.items():
        if key == "resolution" and not pixel_size:
            continue
        assert key in meta, key
        values[key] = json.loads(meta[key])
        assert isinstance(values[key], kind), (key, values[key])
    assert values["model_type"] == "Segmentor"
    names = values["class_names"]
    assert sorted(int(k) for k in names) == list(range(len(names)))  # consecutive from 0, as Deepness requires
    (inp,) = session.get_inputs()
    size = values["tile_size"]  # both spellings: Deepness reads tile_size, some Deepness model-zoo files write tiles_size
    assert values["tiles_size"] == size and inp.shape[1:] == [len(values["standardization_mean"]), size, size]
    assert not isinstance(inp.shape[0], int)  # dynamic batch axis
    check_deepness_output_shape(session, len(names), size)
    return values


def check_deepness_output_shape(session, classes: int, size: int) -> None:
    """Deepness' Segmentor.check_loaded_model_outputs: one output (B, C, H, W) with H == W; here also static."""
    outputs = session.get_outputs()
    assert len(outputs) == 1
    shape = outputs[0].shape
    assert len(shape) == 4 and shape[2] == shape[3], shape  # what Deepness refuses ("only square outputs masks")
    assert shape[1:] == [classes, size, size] and all(isinstance(d, int) for d in shape[1:]), shape
    assert not isinstance(shape[0], int)  # dynamic batch axis


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
    scene = sample_crop(tmp_path / "scene.tif", 384)  # 4 chips of 256 px with their overlaps
    classes = {}
    for backend, model in (("torch", "default"), ("onnx", "default")):
        geoseg.predict(scene, model, tmp_path / f"{backend}.tif", backend=backend)
        with rasterio.open(tmp_path / f"{backend}.tif") as ds:
            classes[backend] = ds.read(1)
    export_onnx("default", tmp_path / "d.onnx")
    geoseg.predict(scene, tmp_path / "d.onnx", tmp_path / "file.tif", tta=True)
    geoseg.predict(scene, "default", tmp_path / "tta.tif", tta=True, backend="torch")
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


def _bare_onnx(path: Path) -> Path:
    """A 3-band, 2-class softmax graph of 32 px chips (dynamic batch) without any metadata."""
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Softmax(dim=1)).eval()
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 32, 32),),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "b"}},
    )
    return path


def _with_metadata(bare: Path, path: Path, values: dict[str, object], raw: dict[str, str] | None = None) -> Path:
    """``bare`` saved as ``path`` with ``values`` JSON-encoded (and ``raw`` as written) in its metadata."""
    proto = onnx.load(str(bare))
    for key, value in {**{k: json.dumps(v) for k, v in values.items()}, **(raw or {})}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def test_onnx_without_metadata_and_with_deepness_metadata_only(tmp_path: Path, runner) -> None:
    bare = _bare_onnx(tmp_path / "bare.onnx")
    scene = write_raster(tmp_path / "rgb.tif", np.full((3, 40, 40), 100, "uint8"))
    result = run(runner, "predict", scene, "-m", bare, "-o", tmp_path / "c.tif")
    assert result.exit_code == 1 and "missing model_type, class_names" in result.stderr
    _with_metadata(bare, tmp_path / "deepness.onnx", DEEPNESS)
    model = load_onnx(tmp_path / "deepness.onnx")
    assert [c.name for c in model.card.classes] == ["a", "b"] and model.chip_size == 32
    # geoseg feeds what Deepness feeds: (raw / 255 - mean) / std
    raw = np.full((1, 3, 32, 32), 100, np.float32)
    fed = model.to_graph_input(model.normalize(raw.copy()[0])[None])
    assert np.allclose(fed, (100 / 255 - 0.5) / 0.25, atol=1e-5)
    result = run(runner, "predict", scene, "-m", tmp_path / "deepness.onnx", "-o", tmp_path / "c.tif")
    assert result.exit_code == 0 and "Deepness metadata only" in result.stderr


def test_deepness_metadata_checks_both_tile_size_spellings(tmp_path: Path) -> None:
    """Deepness reads tile_size, some Deepness model-zoo files carry tiles_size: each is checked, against the graph."""
    from geoseg.core.errors import ModelError

    bare = _bare_onnx(tmp_path / "bare.onnx")
    both = _with_metadata(bare, tmp_path / "both.onnx", {**DEEPNESS, "tile_size": 32, "tiles_size": 32})
    assert load_onnx(both).chip_size == 32
    for key in ("tile_size", "tiles_size"):
        for value, raw, must in (
            (64, None, "the graph's chip size, 32 pixels"),
            (32.5, None, "a whole number of pixels above 0"),
            (None, "thirty-two", "JSON-encoded"),
        ):
            path = tmp_path / f"{key}.onnx"
            _with_metadata(bare, path, {**DEEPNESS, **({} if value is None else {key: value})}, raw and {key: raw})
            with pytest.raises(ModelError, match=f"metadata {key} .*{must}") as caught:
                load_onnx(path)
            assert str(path) in str(caught.value), caught.value
            path.unlink()
    # geoseg's own exports carry both, equal to the graph's static input and output
    exported = export_onnx(tiny_unet(3, 4, pixel_size=10.0), tmp_path / "tiny.onnx")
    assert check_deepness_metadata(exported)["tile_size"] == 64


def test_export_refusals(tmp_path: Path, runner) -> None:
    result = run(runner, "export", "default", "-o", tmp_path / "m.pt")
    assert result.exit_code == 2 and "must end in .onnx" in result.stderr  # a usage error, as vectorize's extension
    (tmp_path / "m.onnx").write_text("keep")
    result = run(runner, "export", "default", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1 and "use --overwrite" in result.stderr
    result = run(runner, "export", "default", "-o", tmp_path / "m.onnx", "--smooth", -1)  # the usage error comes first
    assert result.exit_code == 2 and "--smooth -1" in result.stderr
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


def _geodeep_filter(classes: np.ndarray) -> np.ndarray:
    """What GeoDeep does to every segmentation mask before returning it: a 5 x 5 median filter
    (``geodeep.utils.median_filter``: scipy.ndimage's, mode "reflect", or its numpy fallback with edge padding)."""
    try:
        from scipy.ndimage import median_filter
    except ImportError:  # GeoDeep's own fallback
        padded = np.pad(classes, 2, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (5, 5))
        return np.median(windows, axis=(2, 3)).astype(classes.dtype)
    return median_filter(classes, 5)


def _with_seg_thresh(path: Path, out: Path, value: float) -> Path:
    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == "seg_thresh":
            entry.value = json.dumps(value)
    onnx.save(proto, str(out))
    return out


@pytest.mark.slow
def test_geodeep_agrees_with_geoseg_on_a_four_class_model(tmp_path: Path) -> None:
    """GeoDeep 0.9 running geoseg's ONNX export of a multi-class model gives geoseg's map.

    GeoDeep crops chip overlaps where geoseg blends them, and always median-filters the mask (5 x 5): geoseg's
    map goes through the same filter before comparing. A briefly trained 4-class model leaves uncertain pixels
    (no class reaches 50%): the metadata must make GeoDeep take the plain argmax there, as geoseg does.
    """
    geodeep = pytest.importorskip("geodeep", reason="GeoDeep is in the dev extra: pip install -e '.[dev]'")
    rgb = _rgb_sample(tmp_path)
    classes = [
        {"name": "forest", "values": [1]},
        {"name": "farmland", "values": [2]},
        {"name": "meadow", "values": [3, 4]},
        {"name": "residential", "values": [8]},
    ]
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
            "classes": classes,
            "ignore_values": [5, 6, 7],  # scrub, wetland, water: too few pixels in the 512 px sample
            "stride": 32,
        },
        "split": {"val_fraction": 0.2, "block_size": 128},
        "train": {"epochs": 10, "samples_per_epoch": 64, "batch_size": 8, "lr": 0.005, "loss": "ce", "threads": 2},
    }
    result = geoseg.train(config, tmp_path / "run")
    onnx_path = export_onnx(result.model_path, tmp_path / "rgb.onnx")
    values = check_deepness_metadata(onnx_path)  # includes Deepness' output shape check
    assert values["seg_thresh"] == 0.0 and values["seg_small_segment"] == 0 and len(values["class_names"]) == 4
    geoseg.predict(rgb, onnx_path, tmp_path / "classes.tif", confidence=tmp_path / "confidence.tif")
    with rasterio.open(tmp_path / "classes.tif") as ds, rasterio.open(tmp_path / "confidence.tif") as conf:
        ours, confidence = ds.read(1), conf.read(1)
    mask = geodeep.run(str(rgb), str(onnx_path), output_type="raw")
    assert mask.shape == ours.shape
    equal = mask == _geodeep_filter(ours)
    agreement = equal.mean()
    # at the scene's border geoseg mirrors the scene into its edge chips (GeoDeep pads them), so the border
    # chips differ by design; beyond one chip from the border both see the same context
    inside = equal[128:-128, 128:-128].mean()
    shares = np.bincount(ours.ravel(), minlength=4) / ours.size
    uncertain = (confidence < 50).mean()
    # the same file with the 0.5 floor earlier exports had: uncertain pixels become class 0 in GeoDeep
    floored = geodeep.run(str(rgb), str(_with_seg_thresh(onnx_path, tmp_path / "floor.onnx", 0.5)), output_type="raw")
    floored_agreement = (floored == _geodeep_filter(ours)).mean()
    print(
        f"GeoDeep vs geoseg (5x5 median) class agreement {agreement:.4f}, {inside:.4f} beyond one chip from the border "
        f"(seg_thresh 0.5: {floored_agreement:.4f}), "
        f"raw {(mask == ours).mean():.4f}, class shares {np.round(shares, 3).tolist()}, uncertain pixels {uncertain:.3f}"
    )
    assert inside >= 0.985 and agreement >= 0.95
    assert len(shares) == 4 and shares.min() > 0.02  # a real 4-class map, not one or two classes everywhere
    assert uncertain > 0.02  # pixels where no class reaches 50%: what a probability floor turns into class 0
    assert floored_agreement < agreement  # the test sees the metadata: the old floor loses agreement


def test_normalization_that_cannot_be_expressed_is_refused(tmp_path: Path) -> None:
    from geoseg.core.errors import ModelError

    model = tiny_unet(3, 2, mean=[0.0, 0.0, 0.0], std=[1.0, float("inf"), 1.0])
    with pytest.raises(ModelError, match="cannot be expressed in ONNX"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def _sigmoid_onnx(path: Path, meta: dict[str, object], size: int = 64, gain: float = 6.0) -> Path:
    """A Deepness-style binary model without torch: ``sigmoid(gain * (red - blue))`` of raw / 255 inputs, one output
    channel (Deepness' Segmentor reads it as background and the named class, thresholded at seg_thresh)."""
    return tiny_onnx(path, size, meta, weights=np.array([gain, 0.0, -gain]).reshape(1, 3, 1, 1), base={})


BINARY_META = {"model_type": "Segmentor", "class_names": {"0": "field"}, "resolution": 1000, "tiles_size": 64}


@pytest.mark.parametrize("threshold", [None, 0.5, 0.3, 0.8])
def test_a_one_channel_deepness_model_is_background_and_its_class(tmp_path: Path, runner, threshold) -> None:
    """A sigmoid output of one channel, as Deepness reads it: the class where p >= seg_thresh (default 0.5), else
    background; not an argmax over one channel (a constant map)."""
    meta = {**BINARY_META, "tiles_overlap": 10, **({} if threshold is None else {"seg_thresh": threshold})}
    model = _sigmoid_onnx(tmp_path / "binary.onnx", meta)
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (3, 100, 100)).astype("uint8")
    rgb[2] = np.where(rgb[2] == rgb[0], (rgb[0].astype(int) + 1) % 256, rgb[2])  # red != blue: no pixel on a tie
    scene = write_raster(tmp_path / "rgb.tif", rgb)
    result = run(runner, "predict", scene, "-m", model, "-o", tmp_path / "c.tif", "--confidence", tmp_path / "p.tif")
    assert result.exit_code == 0, result.output
    assert "one-channel sigmoid output (field from seg_thresh" in result.stderr
    p = 1 / (1 + np.exp(-6.0 * (rgb[0].astype(np.float64) - rgb[2]) / 255))
    expected = (p >= (0.5 if threshold is None else threshold)).astype(np.uint8)  # Deepness: below seg_thresh is 0
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
        table = json.loads(ds.tags()["GEOSEG_CLASSES"])
    assert 0.05 < expected.mean() < 0.95  # both classes occur
    np.testing.assert_array_equal(classes, expected)
    assert [c["name"] for c in table] == ["background", "field"]
    with rasterio.open(tmp_path / "p.tif") as ds:
        confidence = ds.read(1)
    assert confidence.min() >= 50 and confidence.max() <= 100
    card = load_onnx(model).card
    assert card.provenance["binary_output"] == {"seg_thresh": 0.5 if threshold is None else threshold}


def test_one_channel_models_with_wrong_class_names_are_refused(tmp_path: Path) -> None:
    from geoseg.core.errors import ModelError
    from geoseg.model.deepness import binary_probabilities

    two = load_onnx(_sigmoid_onnx(tmp_path / "two.onnx", {**BINARY_META, "class_names": {"0": "other", "1": "field"}}))
    assert [c.name for c in two.card.classes] == ["other", "field"]  # two names for one channel: as given
    three = _sigmoid_onnx(tmp_path / "three.onnx", {**BINARY_META, "class_names": {"0": "a", "1": "b", "2": "c"}})
    with pytest.raises(ModelError, match="three.onnx: Deepness metadata class_names .*one-channel output"):
        load_onnx(three)
    out = binary_probabilities(np.array([0.0, 0.2, 0.4, 1.0], np.float32).reshape(1, 1, 1, 4), 0.4)
    assert out.shape == (1, 2, 1, 4) and np.allclose(out.sum(axis=1), 1)
    assert out.argmax(axis=1).ravel().tolist() == [0, 0, 1, 1]  # p == seg_thresh is the class, as in Deepness
    with pytest.raises(ModelError, match="one-channel sigmoid output"):
        binary_probabilities(np.zeros((1, 2, 4, 4), np.float32), 0.5, "m.onnx")


def test_a_model_without_pixel_size_exports_no_resolution(tmp_path: Path, runner) -> None:
    """No made-up resolution: Deepness then uses its dialog's, GeoDeep 10 cm; said in one warning; info says unknown."""
    tiny_unet(3, 2).save(tmp_path / "nopix.pt")
    result = run(runner, "export", tmp_path / "nopix.pt", "-o", tmp_path / "nopix.onnx")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1 and "has no pixel size" in warned[0] and "resolution" in warned[0], result.stderr
    meta = ort.InferenceSession(str(tmp_path / "nopix.onnx")).get_modelmeta().custom_metadata_map
    assert "resolution" not in meta
    check_deepness_metadata(tmp_path / "nopix.onnx")
    for model, shown in ((tmp_path / "nopix.pt", "pixel size unknown"), (tmp_path / "nopix.onnx", "pixel size unknown")):
        info = run(runner, "info", model)
        assert info.exit_code == 0 and shown in info.stdout.splitlines(), info.stdout
    tiny_unet(3, 2, pixel_size=10.0).save(tmp_path / "pix.pt")
    assert "pixel size 10.0 m" in run(runner, "info", tmp_path / "pix.pt").stdout.splitlines()
    quiet = run(runner, "export", tmp_path / "pix.pt", "-o", tmp_path / "pix.onnx")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr, quiet.stderr
    # a Deepness-only file without resolution has no pixel size either: a scene keeps its own pixels
    bare = _with_metadata(
        _bare_onnx(tmp_path / "bare.onnx"), tmp_path / "d.onnx", {"model_type": "Segmentor", "class_names": {"0": "a", "1": "b"}}
    )
    assert load_onnx(bare).card.pixel_size is None


def test_export_fits_a_pixel_overlap_to_a_smaller_chip(tmp_path: Path, runner) -> None:
    """A 256 px model with overlap 64px exported at --chip-size 64: the same quarter of the chip, 16px, said once."""
    tiny_unet(3, 2, chip_size=256, overlap="64px", pixel_size=10.0).save(tmp_path / "px64.pt")
    result = run(runner, "export", tmp_path / "px64.pt", "-o", tmp_path / "x.onnx", "--chip-size", 64)
    assert result.exit_code == 0, result.output
    assert "overlap 64px does not fit 64 px chips: the file gets 16px" in result.stderr
    values = check_deepness_metadata(tmp_path / "x.onnx")
    assert values["tiles_overlap"] == 25 and values["tile_size"] == 64
    card = load_onnx(tmp_path / "x.onnx").card
    assert (card.overlap, card.chip_size) == ("16px", 64)
    scene = write_raster(tmp_path / "s.tif", np.full((3, 100, 100), 50, "uint16"))
    predicted = run(runner, "predict", scene, "-m", tmp_path / "x.onnx", "-o", tmp_path / "c.tif")
    assert predicted.exit_code == 0, predicted.output
    fits = run(runner, "export", tmp_path / "px64.pt", "-o", tmp_path / "y.onnx", "--chip-size", 128)  # 64px fits 128
    assert fits.exit_code == 0 and "overlap" not in fits.stderr and load_onnx(tmp_path / "y.onnx").card.overlap == "64px"


def test_export_leaves_the_callers_model_as_it_was(tmp_path: Path) -> None:
    """Training mode (each module's) and parameters stay the caller's: export traces a model on the CPU in eval mode."""
    model = tiny_unet(3, 2).train()
    frozen = next(m for m in model.modules() if m.__class__.__name__ == "BatchNorm2d")
    frozen.eval()  # a caller's frozen batch norm stays frozen, the rest keeps training
    params = {name: (p, p.device) for name, p in model.named_parameters()}
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training and not frozen.training
    assert sum(m.training for m in model.modules()) == sum(1 for _ in model.modules()) - 1
    assert all(p is params[name][0] and p.device == params[name][1] for name, p in model.named_parameters())
