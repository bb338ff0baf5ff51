"""Model files and class tables that lie about themselves: each is refused by the CLI in one line naming the file.

Every case runs ``python -m geoseg`` in a real subprocess and checks: exit code
1, exactly one line on stderr, starting ``geoseg: error:`` and naming the
file, no traceback, no "unexpected" error, and no output written. One small
checkpoint is saved per module; each case edits a copy of its header or card.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import ROOT, write_raster

NESTED = "[" * 200_000 + "]" * 200_000


def geoseg_cli(tmp_path: Path, *args: object) -> subprocess.CompletedProcess:
    """Run the geoseg CLI in a fresh interpreter in ``tmp_path`` (no network: hub libraries are offline)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "geoseg", *map(str, args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_refused(result: subprocess.CompletedProcess, name: str, *words: str) -> str:
    """Exit code 1 and one clean ``geoseg: error:`` line naming ``name`` (and holding ``words``)."""
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("geoseg: error: ") and name in line, line
    assert "Traceback" not in result.stderr and "unexpected" not in line, line
    assert "\x1b" not in line and "\x07" not in line
    for word in words:
        assert word in line, line
    return line


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real checkpoint (resnet18 depth 3, 3 bands, 2 classes, chip 64), weights in float16."""
    import geoseg

    model = geoseg.create_model(
        "unet",
        encoder="resnet18",
        bands=["B02", "B03", "B04"],
        classes=["water", "forest"],
        chip_size=64,
        mean=[100.0, 100.0, 100.0],
        std=[50.0, 50.0, 50.0],
        encoder_depth=3,
        decoder_channels=(32, 16, 8),
    )
    return model.save(tmp_path_factory.mktemp("model") / "good.pt", half=True)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-band uint16 scene of 64 x 64 pixels."""
    data = np.random.default_rng(0).integers(0, 300, (3, 64, 64)).astype("uint16")
    return write_raster(tmp_path_factory.mktemp("scene") / "scene.tif", data, descriptions=["B02", "B03", "B04"])


def edited(
    src: Path,
    dst: Path,
    card: Callable[[dict], Any] | None = None,
    header: Callable[[dict], Any] | None = None,
    raw: bytes | None = None,
) -> Path:
    """A copy of checkpoint ``src`` with its card, its safetensors header, or the raw header bytes replaced."""
    data = src.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    parsed = json.loads(data[8 : 8 + size])
    if card is not None:
        values = json.loads(parsed["__metadata__"]["geoseg_card"])
        card(values)
        parsed["__metadata__"]["geoseg_card"] = json.dumps(values)
    if header is not None:
        header(parsed)
    blob = raw if raw is not None else json.dumps(parsed).encode()
    blob += b" " * (-len(blob) % 8)
    dst.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + size :])
    return dst


def _first_tensor(h: dict) -> dict:
    return h[next(k for k in h if k != "__metadata__")]


HEADERS: dict[str, dict[str, Any]] = {
    "header is a list": {"raw": b"[1, 2, 3]"},
    "tensor without data_offsets": {"header": lambda h: _first_tensor(h).pop("data_offsets")},
    "data_offsets of text": {"header": lambda h: _first_tensor(h).update(data_offsets=["0", "8"])},
    "metadata is a list": {"header": lambda h: h.update(__metadata__=["geoseg_card"])},
    "nested brackets": {"raw": NESTED.encode()},
    "card of nested brackets": {"header": lambda h: h["__metadata__"].update(geoseg_card=NESTED)},
    "card is a list": {"header": lambda h: h["__metadata__"].update(geoseg_card="[1]")},
}

CARDS: dict[str, tuple[Callable[[dict], Any], str]] = {  # case: (edit, word the message holds)
    "chip_size text": (lambda c: c.update(chip_size="256"), 'chip_size is "256" (text)'),
    "chip_size huge": (lambda c: c.update(chip_size=3_200_000_000), "chip_size is 3200000000"),
    "chip_size float": (lambda c: c.update(chip_size=3.2e9), "chip_size is 3200000000.0"),
    "chip_size zero": (lambda c: c.update(chip_size=0), "chip_size is 0"),
    "pixel_size text": (lambda c: c.update(pixel_size="10m"), 'pixel_size is "10m" (text)'),
    "pixel_size negative": (lambda c: c.update(pixel_size=-10), "pixel_size is -10"),
    "mean NaN": (lambda c: c["mean"].__setitem__(1, float("nan")), "mean[1] is NaN"),
    "mean inf": (lambda c: c["mean"].__setitem__(0, float("inf")), "mean[0] is Infinity"),
    "std zero": (lambda c: c["std"].__setitem__(2, 0.0), "std[2] is 0.0"),
    "std negative": (lambda c: c["std"].__setitem__(0, -1.0), "std[0] is -1.0"),
    "mean too short": (lambda c: c.update(mean=[1.0, 2.0]), "one per band"),
    "std of text": (lambda c: c.update(std="1"), "card field std"),
    "duplicate class ids": (lambda c: c["classes"][1].update(id=0), "class id 0 twice"),
    "class ids from 1": (lambda c: [row.update(id=row["id"] + 1) for row in c["classes"]], "0 to 1 in order"),
    "class id text": (lambda c: c["classes"][0].update(id="0"), "classes[0].id"),
    "colour a name": (lambda c: c["classes"][0].update(color="red"), "classes[0].color"),
    "colour short": (lambda c: c["classes"][1].update(color="#fff"), "#rrggbb"),
    "class name empty": (lambda c: c["classes"][1].update(name=""), "classes[1].name"),
    "class row extra field": (lambda c: c["classes"][1].update(colour="#ffffff"), "classes[1]"),
    "band name empty": (lambda c: c["bands"].__setitem__(0, ""), "bands[0]"),
    "band names repeated": (lambda c: c.update(bands=["B02", "B02", "B04"]), "twice"),
    "bands a text": (lambda c: c.update(bands="B02"), "card field bands"),
    "overlap bad": (lambda c: c.update(overlap="lots"), "card field overlap"),
    "unknown field": (lambda c: c.update(encoder_weights="imagenet"), "encoder_weights"),
    "params asks for weights": (lambda c: c["params"].update(encoder_weights="imagenet"), "params.encoder_weights"),
    "params asks timm for a checkpoint": (lambda c: c["params"].update(checkpoint_path="/tmp/x.pth"), "checkpoint_path"),
    "params names a hub": (lambda c: c["params"].update(aux_params={"x": "hf-hub:someone/model"}), "hf-hub:"),
    "params a list": (lambda c: c.update(params=[1]), "card field params"),
    "encoder on the hub": (lambda c: c.update(encoder="hf-hub:smp-hub/resnet18"), "card field encoder"),
    "timm encoder on the hub": (lambda c: c.update(encoder="tu-hf-hub:timm/resnet18.a1_in1k"), "card field encoder"),
    "timm encoder from a folder": (lambda c: c.update(encoder="tu-local-dir:/tmp/m"), "card field encoder"),
    "encoder a number": (lambda c: c.update(encoder=18), "card field encoder"),
}


@pytest.mark.parametrize("case", list(HEADERS))
def test_damaged_safetensors_header_is_one_line(case: str, model_file: Path, tmp_path: Path) -> None:
    bad = edited(model_file, tmp_path / "model.pt", **HEADERS[case])
    assert_refused(geoseg_cli(tmp_path, "info", bad), "model.pt")


@pytest.mark.parametrize("case", list(CARDS))
def test_bad_card_field_is_one_line_naming_file_and_field(case: str, model_file: Path, tmp_path: Path) -> None:
    edit, words = CARDS[case]
    bad = edited(model_file, tmp_path / "model.pt", card=edit)
    line = assert_refused(geoseg_cli(tmp_path, "info", bad), "model.pt", words)
    assert "card" in line and "re-save the model with geoseg" in line


LOADS: dict[str, tuple[Callable[[dict], Any], str]] = {  # cases only loading the weights finds: (edit, words)
    "decoder wider than the weights": (lambda c: c["params"].update(decoder_channels=[100_000] * 3), "do not fit"),
    "a band more than the weights": (lambda c: c.update(bands=["B02", "B03", "B04", "B08"], mean=None, std=None), "fit"),
    "chip size off the stride": (lambda c: c.update(chip_size=60), "use 56 or 64"),
}


@pytest.mark.parametrize(
    ("case", "command"),
    [
        ("mean NaN", "predict"),
        ("mean NaN", "export"),
        ("timm encoder on the hub", "predict"),
        ("params asks for weights", "export"),
        ("decoder wider than the weights", "predict"),
        ("a band more than the weights", "export"),
        ("chip size off the stride", "predict"),
    ],
)
def test_predict_and_export_refuse_bad_model_files(
    case: str, command: str, model_file: Path, scene: Path, tmp_path: Path
) -> None:
    edit, words = {**CARDS, **LOADS}[case]
    bad = edited(model_file, tmp_path / "model.pt", card=edit)
    if command == "predict":
        result = geoseg_cli(tmp_path, "predict", scene, "-m", bad, "-o", "classes.tif")
    else:
        result = geoseg_cli(tmp_path, "export", bad, "-o", "model.onnx")
    assert_refused(result, "model.pt", words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_the_untouched_model_and_a_names_with_escapes_are_shown_safely(model_file: Path, tmp_path: Path) -> None:
    def escapes(card: dict) -> None:
        card["classes"][0]["name"] = "\x1b]0;pwned\x07"
        card["classes"][1]["name"] = "\x1b[31mred"
        card["provenance"]["note"] = "a\u202eb"

    result = geoseg_cli(tmp_path, "info", edited(model_file, tmp_path / "model.pt", card=escapes))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b]0;pwned\\x07" in result.stdout and "\\x1b[31mred" in result.stdout and "a\\u202eb" in result.stdout
    as_json = geoseg_cli(tmp_path, "info", tmp_path / "model.pt", "--json")
    assert as_json.returncode == 0 and "\x1b" not in as_json.stdout
    assert json.loads(as_json.stdout)["classes"][0]["name"] == "\x1b]0;pwned\x07"


# --- ONNX files -------------------------------------------------------------------------------------------------

onnx = pytest.importorskip("onnx", reason="onnx is in the dev extra: pip install -e '.[dev]'")
pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra: pip install -e '.[dev]'")

DEEPNESS = {
    "model_type": "Segmentor",
    "class_names": {"0": "a", "1": "b"},
    "resolution": 1000,
    "standardization_mean": [0.5, 0.5, 0.5],
    "standardization_std": [0.25, 0.25, 0.25],
}


def tiny_onnx(
    path: Path,
    size: int = 32,
    meta: dict[str, Any] | None = None,
    raw: dict[str, str] | None = None,
    weights: np.ndarray | None = None,
    base: dict[str, Any] = DEEPNESS,
) -> Path:
    """A 1 x 1 convolution of 3 bands with Deepness metadata (``base`` updated by ``meta``; ``raw`` values as
    written), built without torch: to 2 classes and a softmax, or with ``weights`` of shape ``(1, 3, 1, 1)`` to one
    sigmoid channel (Deepness' binary Segmentor)."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.ones((2, 3, 1, 1), np.float32) if weights is None else weights.astype(np.float32)
    channels = weights.shape[0]
    head = (
        helper.make_node("Softmax", ["logits"], ["p"], axis=1) if channels > 1 else helper.make_node("Sigmoid", ["logits"], ["p"])
    )
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["logits"]), head],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", channels, size, size])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    values = {k: json.dumps(v) for k, v in {**base, **(meta or {})}.items()}
    for key, value in {**values, **(raw or {})}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


ONNX_CASES: dict[str, tuple[dict[str, Any], str]] = {  # case: (tiny_onnx keywords, word the message holds)
    "mean of text": ({"meta": {"standardization_mean": "abc"}}, "standardization_mean"),
    "mean not JSON": ({"raw": {"standardization_mean": "abc"}}, "JSON-encoded"),
    "std zero": ({"meta": {"standardization_std": [0.25, 0.0, 0.25]}}, "standardization_std"),
    "mean for 2 of 3 bands": ({"meta": {"standardization_mean": [0.5, 0.5]}}, "one per band"),
    "model_type a number": ({"meta": {"model_type": 7}}, "model_type is 7"),
    "model_type a detector": ({"meta": {"model_type": "Detector"}}, "Segmentor"),
    "class_names a list of lists": ({"meta": {"class_names": [["a"], ["b"]]}}, "class_names"),
    "class_names a number": ({"meta": {"class_names": 2}}, "class_names is 2"),
    "300 class names for 2 outputs": ({"meta": {"class_names": {str(i): f"c{i}" for i in range(300)}}}, "has 2, not 300"),
    "3 class names for 2 outputs": ({"meta": {"class_names": {"0": "a", "1": "b", "2": "c"}}}, "the graph has 2"),
    "class ids with a gap": ({"meta": {"class_names": {"0": "a", "2": "b"}}}, "class_names"),
    "class name a number": ({"meta": {"class_names": {"0": "a", "1": 5}}}, "class_names"),
    "resolution negative": ({"meta": {"resolution": -5}}, "resolution"),
    "overlap of text": ({"meta": {"tiles_overlap": "15%"}}, "tiles_overlap"),
    "huge input": ({"size": 100_000}, "100000 x 100000"),
}


@pytest.mark.parametrize("case", list(ONNX_CASES))
def test_bad_onnx_metadata_or_shape_is_one_line(case: str, scene: Path, tmp_path: Path) -> None:
    keywords, words = ONNX_CASES[case]
    bad = tiny_onnx(tmp_path / "model.onnx", **keywords)
    result = geoseg_cli(tmp_path, "predict", scene, "-m", bad, "-o", "classes.tif")
    assert_refused(result, "model.onnx", words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_the_tiny_onnx_itself_runs(scene: Path, tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "model.onnx", meta={"standardization_mean": [0.5], "standardization_std": [0.25]})
    result = geoseg_cli(tmp_path, "predict", scene, "-m", model, "-o", "classes.tif")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "classes.tif").is_file()


# --- class tables ---------------------------------------------------------------------------------------------

TABLES: dict[str, tuple[Any, str]] = {  # case: (JSON content, word the message holds)
    "duplicate ids": ([{"id": 0, "name": "water"}, {"id": 0, "name": "forest"}], "class id 0 is given twice"),
    "id 255": ([{"id": 255, "name": "water"}], "0 to 254"),
    "id negative": ([{"id": -1, "name": "water"}], "0 to 254"),
    "id of text": ([{"id": "0", "name": "water"}], "[0].id"),
    "name a number": ({"0": 5}, "name is 5"),
    "name empty": ([{"id": 0, "name": ""}], "[0].name"),
    "colour a name": ([{"id": 0, "name": "water", "color": "blue"}], '"blue"'),
    "key not an id": ({"water": "0"}, '"water"'),
    "row without name": ([{"id": 0}], "[0]"),
    "a number": (7, "expected"),
    "empty": ([], "no classes"),
    "nested brackets": (None, "not valid JSON"),
}


@pytest.mark.parametrize("case", list(TABLES))
def test_bad_class_table_is_one_line_naming_it(case: str, tmp_path: Path) -> None:
    content, words = TABLES[case]
    classes = write_raster(tmp_path / "classes.tif", np.repeat(np.array([[0, 1]], "uint8"), 16, axis=0).repeat(8, axis=1))
    table = tmp_path / "table.json"
    table.write_text(NESTED if content is None else json.dumps(content))
    result = geoseg_cli(tmp_path, "vectorize", classes, "-o", "polygons.gpkg", "--classes", table)
    assert_refused(result, "table.json", words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "table.json"]
