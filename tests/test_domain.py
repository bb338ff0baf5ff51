"""Models that know their domain: the card's ``provenance["domain"]``, the out-of-domain warning and ``info``."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio

import geoseg
from geoseg.core.classes import ClassInfo
from geoseg.core.errors import ModelError
from geoseg.inference.checks import DOMAIN_CONFIDENCE_DROP, DomainCheck
from geoseg.model.card import ModelCard
from geoseg.model.checkpoint import read_card
from tests.helpers import ROOT, SAMPLE, run, tiny_unet
from tests.test_train import learnable_scene, small_config

DOMAIN = {
    "scenes": [{"name": "a.tif", "bbox": [12.49, 52.45, 12.72, 52.53], "date": "2017-02-16"}],
    "bbox": [12.49, 52.45, 12.72, 52.53],
    "percentiles": {"p1": [100.0, 200.0], "p50": [500.0, 600.0], "p99": [900.0, 1000.0]},
    "pixels": 4096,
    "validation_confidence": 0.8,
}


def _card(domain: object = None) -> ModelCard:
    card = ModelCard("unet", "resnet18", ["B04", "B08"], [ClassInfo(0, "water", "#0000ff"), ClassInfo(1, "land", "#00ff00")])
    if domain is not None:
        card.provenance["domain"] = domain
    return card


def _shifted(tmp: Path, factor: float) -> Path:
    """The 512 px sample with every band multiplied by ``factor`` (another radiometry)."""
    with rasterio.open(SAMPLE) as ds:
        profile, data, names = ds.profile, ds.read(), ds.descriptions
    out = tmp / f"shifted_{factor:g}.tif"
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.clip(data.astype(np.float64) * factor, 0, 65535).astype("uint16"))
        dst.descriptions = names
    return out


def _domain_warnings(warnings: list[str]) -> list[str]:
    return [w for w in warnings if "outside the model's training domain" in w]


def test_card_round_trips_the_domain(tmp_path: Path) -> None:
    card = _card(json.loads(json.dumps(DOMAIN)))
    assert ModelCard.from_json(card.to_json()).domain == DOMAIN
    model = tiny_unet(bands=["B04", "B08"], classes=2)
    model.card.provenance["domain"] = json.loads(json.dumps(DOMAIN))
    model.save(tmp_path / "m.pt")
    assert read_card(tmp_path / "m.pt").domain == DOMAIN


def test_old_card_without_domain_loads_and_checks_nothing() -> None:
    card = ModelCard.from_json(_card().to_json())
    assert card.domain is None
    kept: list[str] = []
    check = DomainCheck(card, kept, "scene.tif")
    check.observe(np.full((2, 512, 512), 1e6), np.ones((512, 512), bool))
    check.rows(np.full((2, 512, 512), 0.5, np.float32), np.ones((512, 512), bool))
    check.check()
    assert kept == []


@pytest.mark.parametrize(
    ("domain", "field"),
    [
        ("Brandenburg", "provenance.domain"),
        ({"percentiles": {"p50": [1.0]}}, "provenance.domain.percentiles.p50"),
        ({"bbox": [12.0, 95.0, 13.0, 96.0]}, "provenance.domain.bbox"),
        ({"scenes": [{"bbox": [1, 2, 3]}]}, "provenance.domain.scenes[0].bbox"),
        ({"validation_confidence": 1.5}, "provenance.domain.validation_confidence"),
    ],
)
def test_bad_domain_is_refused_naming_the_field(domain: object, field: str) -> None:
    with pytest.raises(ModelError, match="m\\.pt: card field " + re.escape(field) + " is "):
        ModelCard.from_json(_card(domain).to_json(), "m.pt")


def test_domain_check_thresholds() -> None:
    card = _card(DOMAIN)
    ones = np.ones((512, 512), bool)
    cases = {  # band values, winning probability -> warned
        "inside": ([500.0, 600.0], 0.8, False),
        "one band of two out": ([500.0, 5000.0], 0.8, True),
        "both out": ([5000.0, 5000.0], 0.8, True),
        "confidence a bit low": ([500.0, 600.0], 0.8 - DOMAIN_CONFIDENCE_DROP + 0.01, False),
        "confidence far below": ([500.0, 600.0], 0.8 - DOMAIN_CONFIDENCE_DROP - 0.05, True),
    }
    for name, (values, top, warned) in cases.items():
        kept: list[str] = []
        check = DomainCheck(card, kept, "scene.tif")
        check.observe(np.asarray(values)[:, None, None] * np.ones((2, 512, 512)), ones)
        probs = np.stack([np.full((512, 512), top, np.float32), np.full((512, 512), 1 - top, np.float32)])
        check.rows(probs, ones)
        check.check()
        assert bool(kept) == warned, (name, kept)
        assert len(kept) <= 1 and all("\n" not in w for w in kept)


def test_bundled_default_model_knows_its_domain() -> None:
    domain = geoseg.load_model("default").card.domain
    assert domain is not None
    west, south, east, north = domain["bbox"]
    assert 12 < west < east < 13 and 52 < south < north < 53  # Brandenburg, west of Berlin
    assert [s["date"] for s in domain["scenes"]] == ["2017-02-16"]
    assert set(domain["percentiles"]) == {"p1", "p50", "p99"}
    p1, p50, p99 = (np.asarray(domain["percentiles"][k]) for k in ("p1", "p50", "p99"))
    assert len(p50) == 10 and (p1 <= p50).all() and (p50 <= p99).all()
    assert 0.5 < domain["validation_confidence"] < 1


def test_card_rewrite_keeps_the_tensor_bytes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("add_default_domain", ROOT / "scripts" / "add_default_domain.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    path = tiny_unet(bands=["B04", "B08"], classes=2).save(tmp_path / "m.pt", half=True)

    def tensors() -> str:
        raw = path.read_bytes()
        return hashlib.sha256(raw[8 + struct.unpack("<Q", raw[:8])[0] :]).hexdigest()

    before = tensors()
    card = read_card(path)
    card.provenance["domain"] = json.loads(json.dumps(DOMAIN))
    assert script.write_card(path, card) == before == tensors()
    assert geoseg.load_model(path).card.domain == DOMAIN


def test_info_default_shows_the_domain(runner) -> None:
    result = run(runner, "info", "default")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "brandenburg_s2.tif: lon 12." in out and "(EPSG:4326), date 2017-02-16" in out
    assert "1st / 50th / 99th percentile" in out and "B12" in out
    assert "confidence on validation pixels 0." in out


@pytest.mark.slow
def test_training_records_the_domain(tmp_path: Path) -> None:
    image, labels, _ = learnable_scene(tmp_path)
    result = geoseg.train(small_config(image, labels, epochs=1), tmp_path / "run")
    domain = read_card(result.model_path).domain
    assert domain is not None
    assert [s["name"] for s in domain["scenes"]] == ["scene.tif"] and domain["scenes"][0]["date"] is None
    assert domain["bbox"] == domain["scenes"][0]["bbox"] and 12 < domain["bbox"][0] < 13
    p1, p50, p99 = (np.asarray(domain["percentiles"][k]) for k in ("p1", "p50", "p99"))
    assert len(p50) == 3 and (p1 < p50).all() and (p50 < p99).all() and domain["pixels"] > 1000
    # the scene's spectra are 600..2600 plus noise: the percentiles span them
    assert p1.min() > 0 and p99.max() < 4000
    assert 0 < domain["validation_confidence"] <= 1


@pytest.mark.slow
def test_domain_warning_fires_on_shifted_radiometry_not_on_the_training_scene(tmp_path: Path) -> None:
    same = geoseg.predict(SAMPLE, "default", tmp_path / "same.tif")
    assert _domain_warnings(same.warnings) == []
    shifted = geoseg.predict(_shifted(tmp_path, 3.0), "default", tmp_path / "shifted.tif")
    (line,) = _domain_warnings(shifted.warnings)
    assert "band medians outside the training 1-99 percentiles in 10 of 10 bands" in line
    # the model trained with radiometric jitter (issue 16) stays about as confident on x3 radiometry (0.72 against
    # 0.76 at validation), so only the band statistics give it away; the confidence path is DomainCheck's doctest


@pytest.mark.slow
def test_domain_warning_is_in_run_json(runner, tmp_path: Path) -> None:
    out = tmp_path / "result"
    result = run(runner, "run", _shifted(tmp_path, 3.0), "-o", out, "--min-area", 500)
    assert result.exit_code == 0, result.output
    assert "outside the model's training domain" in result.output
    record = json.loads((out / "run.json").read_text())
    assert len(_domain_warnings(record["warnings"])) == 1
