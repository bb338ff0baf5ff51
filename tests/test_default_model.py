"""The bundled default model: small, self-describing, attributed, and used when no -m is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

import geoseg
from geoseg.model.bundled import default_model_path
from tests.helpers import SAMPLE, run


def test_default_model_is_small_and_describes_its_data() -> None:
    path = default_model_path()
    assert path.stat().st_size <= 15 * 1024 * 1024
    model = geoseg.load_model("default")
    card = model.card
    assert card.bands == ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
    assert [c.name for c in card.classes] == ["forest", "farm", "meadow", "grass", "scrub", "wetland", "water", "residential"]
    assert card.pixel_size == 10.0 and card.mean is not None and card.std is not None
    text = card.provenance["attribution"] + card.provenance["licence"]
    for words in ("Copernicus Sentinel data", "OpenStreetMap contributors", "ODbL"):
        assert words in text
    assert 0 < card.provenance["validation_mean_iou"] < 1


def test_info_default_shows_attribution(runner) -> None:
    result = run(runner, "info", "default")
    assert result.exit_code == 0
    assert "OpenStreetMap contributors" in result.output and "ODbL" in result.output
    assert "mobilenet_v2" in result.output and "residential" in result.output


@pytest.mark.slow
def test_run_without_model_uses_the_default(runner, tmp_path: Path) -> None:
    out = tmp_path / "result"
    result = run(runner, "run", SAMPLE, "-o", out, "--min-area", 500)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert record["model"]["name"] == geoseg.load_model("default").card.name
    assert record["model"]["sha256"] and record["counts"]["polygons"] > 0
    with rasterio.open(out / "classes.tif") as ds:
        classes = ds.read(1)
        assert ds.crs.to_epsg() == 32633 and (classes < 8).all()
    # a trained model, not noise: several classes, none filling the whole scene
    shares = [(classes == k).mean() for k in range(8)]
    assert sum(s > 0.01 for s in shares) >= 4 and max(shares) < 0.9
