"""Test helpers, importable by every test module: seeded rasters generated on the fly, tiny models, the CLI runner.

Fixtures that use them live in ``conftest.py``; tests import helpers from here, never from ``conftest``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from click.testing import CliRunner

import geoseg
from geoseg.core.classes import ClassInfo
from geoseg.model.card import ModelCard, generic_band_names
from geoseg.model.factory import Model

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "brandenburg_s2_512.tif"

UTM33 = "EPSG:32633"
WGS84 = "EPSG:4326"


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: str | None = UTM33,
    transform: Affine | None = Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0),
    nodata: float | None = None,
    descriptions: list[str] | None = None,
    **extra: object,
) -> Path:
    """Write ``data`` (bands, rows, cols) as a GeoTIFF."""
    if data.ndim == 2:
        data = data[None]
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "nodata": nodata,
        **extra,
    }
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        if descriptions:
            ds.descriptions = tuple(descriptions)
    return path


def sample_crop(path: Path, width: int, height: int | None = None) -> Path:
    """The top-left ``width`` x ``height`` pixels of the bundled sample (its bands, names and grid) at ``path``:
    a real scene for tests that need fewer chips than the whole 512 px sample."""
    from rasterio.windows import Window

    window = Window(0, 0, width, height or width)
    with rasterio.open(SAMPLE) as ds:
        profile = ds.profile | {"width": window.width, "height": window.height, "transform": ds.window_transform(window)}
        data, descriptions = ds.read(window=window), ds.descriptions
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = descriptions
    return path


def bad_raster_files(tmp: Path) -> dict[str, Path]:
    """Files named .tif that GDAL cannot use: text, a JPEG header, empty, truncated, and a missing path."""
    text = tmp / "text.tif"
    text.write_text("hello")
    jpeg = tmp / "photo.tif"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    empty = tmp / "empty.tif"
    empty.write_bytes(b"")
    good = write_raster(tmp / "good.tif", random_scene((4, 40, 40)))
    truncated = tmp / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[:600])
    good.unlink()
    return {"text": text, "jpeg": jpeg, "empty": empty, "truncated": truncated, "missing": tmp / "missing.tif"}


def random_scene(shape: tuple[int, int, int], dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    """Smooth random bands (blocky fields) of ``shape``: something a model can react to."""
    rng = np.random.default_rng(seed)
    bands, h, w = shape
    coarse = rng.random((bands, h // 8 + 2, w // 8 + 2))
    data = np.kron(coarse, np.ones((8, 8)))[:, :h, :w] + 0.1 * rng.random((bands, h, w))
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    scale = min(info.max, 3000) if info else 1.0
    return (data / 1.1 * scale).astype(dtype)


class BandLogits(torch.nn.Module):
    """A 'model' whose logits are its input bands times a gain: classes = argmax of the bands."""

    def __init__(self, gain: float = 50.0) -> None:
        super().__init__()
        self.gain = gain
        self.encoder = torch.nn.Module()
        self.encoder.output_stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


class SmallConv(torch.nn.Module):
    """Two 3x3 convolutions: receptive field radius 2, fully convolutional."""

    def __init__(self, bands: int, classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(bands, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, classes, 3, padding=1)
        )
        self.encoder = torch.nn.Module()
        self.encoder.output_stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def wrap(net: torch.nn.Module, bands: int | list[str], classes: int, chip_size: int, overlap: str, **card: object) -> Model:
    names = generic_band_names(bands) if isinstance(bands, int) else list(bands)
    table = [ClassInfo(i, f"class_{i}", f"#{40 * i % 256:02x}5aa0") for i in range(classes)]
    return Model(ModelCard("unet", "custom", names, table, chip_size=chip_size, overlap=overlap, **card), net).eval()


def tiny_unet(bands: int | list[str] = 4, classes: int = 3, **kwargs: object) -> Model:
    """A small real smp Unet (encoder depth 3, output stride 8) for fast end-to-end tests."""
    torch.manual_seed(0)
    options = {"chip_size": 64, "overlap": "16px", "encoder_depth": 3, "decoder_channels": (32, 16, 8)}
    options.update(kwargs)
    return geoseg.create_model("unet", "resnet18", bands=bands, classes=classes, **options).eval()


def run(runner: CliRunner, *args: object):
    """Invoke the geoseg CLI with ``args`` (converted to strings)."""
    from geoseg.cli import main

    return runner.invoke(main, [str(a) for a in args])
