"""Shared fixtures: seeded rasters generated on the fly, tiny models, a CLI runner (helpers in ``tests/helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers import random_scene, tiny_unet, write_raster

collect_ignore = ["clients"]  # run by Debian's python3 with QGIS, not by pytest


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def unet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Unet for 4 bands named B02, B03, B04, B08 with 3 classes."""
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    tiny_unet(["B02", "B03", "B04", "B08"], 3, pixel_size=10.0).save(path)
    return path


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Unet for 4 bands with 3 classes, exported to ONNX (read only: sessions are opened on it)."""
    from geoseg.model.onnx import export_onnx

    return export_onnx(tiny_unet(4, 3, pixel_size=10.0), tmp_path_factory.mktemp("onnx") / "tiny.onnx", quiet=True)


@pytest.fixture
def scene4(tmp_path: Path) -> Path:
    """A 4-band uint16 67 x 45 scene with band descriptions, EPSG:32633."""
    return write_raster(tmp_path / "scene4.tif", random_scene((4, 45, 67)), descriptions=["B02", "B03", "B04", "B08"])
