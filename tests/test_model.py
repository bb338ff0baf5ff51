"""Models and checkpoints: the card round-trips, loading never runs code, bad files are refused."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import geoseg
from geoseg.core.errors import ChipSizeError, ModelError
from geoseg.model.checkpoint import read_card
from tests.helpers import tiny_unet


def test_save_load_round_trip_keeps_card_and_outputs(tmp_path: Path) -> None:
    model = tiny_unet(
        ["B02", "B03", "B04", "B08"],
        [{"name": "water", "color": "#0000ff"}, "forest"],
        mean=[1, 2, 3, 4],
        std=[5, 6, 7, 8],
        pixel_size=10.0,
    )
    path = model.save(tmp_path / "m.pt")
    loaded = geoseg.load_model(path)
    assert loaded.card.bands == ["B02", "B03", "B04", "B08"]
    assert [(c.id, c.name, c.color) for c in loaded.card.classes] == [(0, "water", "#0000ff"), (1, "forest", "#1b7837")]
    assert loaded.card.mean == [1, 2, 3, 4] and loaded.card.std == [5, 6, 7, 8]
    assert loaded.card.pixel_size == 10.0 and loaded.card.chip_size == 64
    assert loaded.card.params["encoder_depth"] == 3
    assert loaded.card.provenance["geoseg_version"] == geoseg.__version__
    x = torch.randn(2, 4, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model.eval()(x), loaded(x))


def test_half_storage_is_smaller_and_close(tmp_path: Path) -> None:
    model = tiny_unet(3, 2)
    full = model.save(tmp_path / "full.pt")
    half = model.save(tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        np.testing.assert_allclose(geoseg.load_model(half)(x), model(x), atol=5e-2)


@pytest.mark.parametrize(("arch", "encoder"), [("fpn", "resnet18"), ("deeplabv3plus", "resnet18"), ("linknet", "resnet18")])
def test_any_smp_architecture(arch: str, encoder: str, tmp_path: Path) -> None:
    model = geoseg.create_model(arch, encoder, bands=5, classes=4, chip_size=64)
    loaded = geoseg.load_model(model.save(tmp_path / "m.pt"))
    with torch.inference_mode():
        assert loaded(torch.zeros(1, 5, 64, 64)).shape == (1, 4, 64, 64)


def test_chip_size_not_on_the_stride_is_refused_with_nearest_sizes() -> None:
    with pytest.raises(ChipSizeError, match="use 224 or 256"):
        geoseg.create_model(chip_size=250)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"arch": "unett"}, "did you mean unet"),
        ({"encoder": "resnet19"}, "did you mean resnet18"),
        ({"bands": ["a", "a"]}, "unique"),
        ({"mean": [1, 2]}, "one per band"),
        ({"std": [1, 0, 1], "mean": [0, 0, 0]}, "positive"),
    ],
)
def test_bad_model_descriptions(kwargs: dict, words: str) -> None:
    with pytest.raises(ModelError, match=words):
        geoseg.create_model(**kwargs)


def test_local_encoder_weights_are_loaded(tmp_path: Path) -> None:
    source = tiny_unet(4, 2)
    weights = tmp_path / "encoder.pth"
    torch.save(source.net.encoder.state_dict(), weights)
    model = tiny_unet(4, 2, encoder_weights=weights)
    for key, value in source.net.encoder.state_dict().items():
        assert torch.equal(value, model.net.encoder.state_dict()[key])


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"state_dict": Evil()}))
    torch.save({"weights": Evil()}, tmp_path / "evil_torch.pt")
    for bad in (path, tmp_path / "evil_torch.pt"):
        with pytest.raises(ModelError, match="not a geoseg model file"):
            geoseg.load_model(bad)
    assert not marker.exists()


def test_truncated_missing_and_foreign_files(tmp_path: Path) -> None:
    good = tiny_unet(3, 2).save(tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated"):
        geoseg.load_model(truncated)
    with pytest.raises(ModelError, match="does not exist"):
        geoseg.load_model(tmp_path / "missing.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="is empty"):
        geoseg.load_model(tmp_path / "empty.pt")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.pt"))
    with pytest.raises(ModelError, match="without a geoseg model card"):
        geoseg.load_model(tmp_path / "foreign.pt")


def test_missing_bundled_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import geoseg.model.bundled as bundled

    monkeypatch.setattr(bundled, "DEFAULT_MODEL", tmp_path / "default.pt")
    with pytest.raises(ModelError, match="no default model"):
        geoseg.load_model("default")


def test_damaged_card_is_refused(tmp_path: Path) -> None:
    good = tiny_unet(3, 2).save(tmp_path / "good.pt")
    raw = good.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    header["__metadata__"]["geoseg_card"] = json.dumps({"format": "something-else"})
    new_header = json.dumps(header).encode()
    new_header += b" " * (-len(new_header) % 8)
    (tmp_path / "bad.pt").write_bytes(struct.pack("<Q", len(new_header)) + new_header + raw[8 + size :])
    with pytest.raises(ModelError, match="not a geoseg model card"):
        read_card(tmp_path / "bad.pt")


def test_dir_lists_the_public_names_loaded_on_first_use() -> None:
    """``dir(geoseg)`` shows what ``import geoseg`` offers (loaded lazily), not only the module's own few names."""
    import subprocess
    import sys

    code = "import geoseg; print(','.join(dir(geoseg)))"
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    names = set(listed.stdout.strip().split(","))  # a fresh process: nothing was loaded before dir()
    assert set(geoseg.__all__) <= names and {"predict", "run", "export_onnx", "Model"} <= names
    assert all(getattr(geoseg, name) is not None for name in geoseg.__all__)
