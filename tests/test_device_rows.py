"""The GPU path (TorchStitcher, outputs reduced on the device) run on the CPU's torch: the same bytes as the CPU path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

import geoseg
from geoseg.inference.backends import TorchRunner
from tests.helpers import SAMPLE, sample_crop

OUTPUTS = ("classes", "confidence", "probabilities")


def predict_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image: Path | None = None, **options
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Predict ``image`` (the sample's top-left 384 px) twice with the bundled model on torch: numpy stitching, then
    on-device stitching."""
    image = image or sample_crop(tmp_path / "scene.tif", 384)
    read = {}
    for mode in ("host", "device"):
        if mode == "device":
            monkeypatch.setattr(TorchRunner, "device_stitch", property(lambda self: True))
        paths = {kind: tmp_path / f"{mode}_{kind}.tif" for kind in OUTPUTS}
        geoseg.predict(
            image, "default", paths["classes"], confidence=paths["confidence"], probabilities=paths["probabilities"],
            backend="torch", device="cpu", **options,
        )  # fmt: skip
        for kind, path in paths.items():
            with rasterio.open(path) as ds:
                read.setdefault(kind, []).append(ds.read())
    return {kind: (pair[0], pair[1]) for kind, pair in read.items()}


@pytest.mark.parametrize("options", [{}, {"block_width": 256, "chip_size": 128, "overlap": "40px"}])
def test_stitching_on_the_device_writes_the_same_bytes(tmp_path, monkeypatch, options) -> None:
    for kind, (host, device) in predict_both(tmp_path, monkeypatch, batch_size=3, **options).items():
        assert np.array_equal(host, device), kind


def test_the_device_path_keeps_an_area_of_interest(tmp_path, monkeypatch) -> None:
    import geopandas as gpd
    import shapely

    scene = sample_crop(tmp_path / "scene.tif", 384)
    with rasterio.open(scene) as ds:
        left, bottom, right, top = ds.bounds
        crs = ds.crs
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(left, bottom, (left + right) / 2, (bottom + top) / 2)], crs=crs).to_file(aoi)
    host, device = predict_both(tmp_path, monkeypatch, scene, aoi=str(aoi))["classes"]
    assert np.array_equal(host, device) and 0.5 < (host == 255).mean() < 1


def test_the_device_path_brings_probabilities_back_to_the_scene_grid(tmp_path, monkeypatch) -> None:
    from affine import Affine

    with rasterio.open(SAMPLE) as ds:
        data = ds.read(window=((0, 96), (0, 96)))
        profile = ds.profile | {"width": 192, "height": 192, "transform": ds.transform * Affine.scale(0.5)}
        descriptions = ds.descriptions
    scene = tmp_path / "five_metres.tif"  # the model's 10 m read from a 5 m scene: probabilities go through the model grid
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data.repeat(2, axis=1).repeat(2, axis=2))
        dst.descriptions = descriptions
    host, device = predict_both(tmp_path, monkeypatch, image=scene)["classes"]
    assert np.array_equal(host, device) and (host != 255).all()


def test_compile_that_fails_at_the_first_call_falls_back_to_the_model(monkeypatch, caplog) -> None:
    """torch.compile is lazy: a missing compiler fails at the first forward pass, which then runs the model as is."""
    import torch

    from geoseg.inference.backends import Tuning
    from tests.helpers import tiny_unet

    def broken(model, **kwargs):
        def run(x):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = tiny_unet(bands=3, classes=2)
    runner = TorchRunner(model, device="cpu", tuning=Tuning(compile=True))
    data = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    with caplog.at_level("WARNING", logger="geoseg"):
        probs = runner(data)
    assert "torch.compile failed" in caplog.text and runner.forward is runner.model
    plain = TorchRunner(model, device="cpu")(data)
    np.testing.assert_allclose(probs, plain, rtol=1e-6)
