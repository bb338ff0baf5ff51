"""``geoseg export --quantize int8 [--calibration SCENE]``: int8 files that geoseg, onnxruntime and Deepness run.

The exports are made once per module (a tiny Unet on a generated scene): a
float file, a static int8 file calibrated on the scene and a dynamic one.
Agreement thresholds sit below what was measured on the project's CPU
(tiny model: 98.2% static, 98.8% dynamic on generated scenes; default
model: 99.3% on the held-back half of the sample, with and without
AVX512-VNNI) to allow other CPUs' int8 kernels; there are no timing thresholds (BENCHMARKS.md has the speed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

import geoseg
from geoseg.core.errors import InputError
from geoseg.model.quantize import (
    CALIBRATION_CHIPS,
    CALIBRATION_VIEWS,
    calibration_chips,
    calibration_views,
    check_quantize,
    float_nodes,
    spread_order,
)
from tests.helpers import ROOT, SAMPLE, random_scene, run, tiny_unet, write_raster
from tests.test_trust import geoseg as geoseg_process
from tests.test_trust import refused

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra: pip install -e '.[dev]'")
onnx = pytest.importorskip("onnx", reason="onnx is in the dev extra: pip install -e '.[dev]'")

from tests.test_onnx import check_deepness_metadata  # noqa: E402 - needs onnxruntime

TINY_AGREEMENT = 0.95
"""Pixels of the int8 class map equal to the float one's, tiny model on a generated scene (measured 0.98-0.99)."""
DEFAULT_AGREEMENT = 0.98
"""The same for the bundled model on the held-back half of the sample (measured 0.993 with the fine-resolution layers
float and 5 calibration views, on CPUs with and without AVX512-VNNI; 0.940-0.958 with only the first and last
convolutions float and the chips as read; 0.975 without VNNI with the encoder's layers float only at 1/2)."""


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model, a scene, another scene of the same kind, and the model exported as float, static and dynamic int8."""
    from click.testing import CliRunner

    tmp = tmp_path_factory.mktemp("quantize")
    files = {
        "model": tiny_unet(4, 3, mean=[1000.0] * 4, std=[300.0] * 4).save(tmp / "m.pt"),
        "scene": write_raster(tmp / "scene.tif", random_scene((4, 192, 192), seed=1)),
        "other": write_raster(tmp / "other.tif", random_scene((4, 160, 224), seed=2)),
    }
    runner = CliRunner()
    for name, extra in (
        ("float", []),
        ("static", ["--quantize", "int8", "--calibration", files["scene"]]),
        ("dynamic", ["--quantize", "int8"]),
    ):
        files[name] = tmp / f"{name}.onnx"
        result = run(runner, "export", files["model"], "-o", files[name], *extra)
        assert result.exit_code == 0, result.output
        assert ("dynamic int8 quantization" in result.output) == (name == "dynamic"), result.output  # the one log line
    return files


def test_int8_files_carry_the_card_and_deepness_metadata(exports: dict[str, Path]) -> None:
    from geoseg.model.onnx import load_onnx

    float_size = exports["float"].stat().st_size
    for method in ("static", "dynamic"):
        path = exports[method]
        values = check_deepness_metadata(path)  # Deepness and GeoDeep read it like the float file
        assert values["class_names"] == check_deepness_metadata(exports["float"])["class_names"]
        card = load_onnx(path).card
        expected = {
            "type": "int8",
            "method": method,
            "calibration": "scene.tif" if method == "static" else None,
            "calibration_chips": min(len(geoseg.make_grid(192, 192, 64, "16px")), CALIBRATION_CHIPS) if method == "static" else 0,
        }
        assert {k: card.quantization[k] for k in expected} == expected, card.quantization
        assert card.quantization["calibration_views"] == (CALIBRATION_VIEWS if method == "static" else 0)
        assert 2 < card.quantization["float_convs"] < card.quantization["convs"], card.quantization  # fine layers too
        assert card.bands == geoseg.load_model(exports["model"]).card.bands
        proto = onnx.load(str(path))
        ops = {n.op_type for n in proto.graph.node}
        assert ({"QuantizeLinear", "DequantizeLinear"} <= ops) == (method == "static"), ops
        assert ("DynamicQuantizeLinear" in ops) == (method == "dynamic"), ops
        assert not any(t.data_location for t in proto.graph.initializer)  # self-contained: no external data
        assert path.stat().st_size < 0.6 * float_size
    assert load_onnx(exports["float"]).card.quantization is None


def test_int8_files_run_in_plain_onnxruntime(exports: dict[str, Path]) -> None:
    raw = random_scene((4, 64, 64), seed=3).astype(np.float32)[None] / 255.0  # what Deepness feeds: raw / 255
    reference = ort.InferenceSession(str(exports["float"]), providers=["CPUExecutionProvider"]).run(None, {"input": raw})[0]
    for method in ("static", "dynamic"):
        session = ort.InferenceSession(str(exports[method]), providers=["CPUExecutionProvider"])
        (probs,) = session.run(None, {"input": np.concatenate([raw, raw])})
        assert probs.shape == (2, 3, 64, 64) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
        assert (probs[0].argmax(0) == reference[0].argmax(0)).mean() > TINY_AGREEMENT


def test_int8_class_maps_agree_with_the_float_model(exports: dict[str, Path], tmp_path: Path) -> None:
    for scene in ("scene", "other"):  # the calibration scene and one it never saw
        maps = {}
        for method in ("float", "static", "dynamic"):
            out = tmp_path / f"{scene}-{method}.tif"
            result = geoseg.predict(exports[scene], exports[method], out, backend="onnx")
            assert result.chips_predicted > 0
            with rasterio.open(out) as ds:
                maps[method] = ds.read(1)
        for method in ("static", "dynamic"):
            agreement = (maps[method] == maps["float"]).mean()
            assert agreement > TINY_AGREEMENT, (scene, method, agreement)


def test_run_json_records_the_quantization(exports: dict[str, Path], tmp_path: Path, runner) -> None:
    result = run(runner, "run", exports["scene"], "-m", exports["static"], "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["model"]["quantization"]["method"] == "static"
    assert record["model"]["quantization"]["calibration"] == "scene.tif"
    plain = run(runner, "run", exports["scene"], "-m", exports["model"], "-o", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["model"]["quantization"] is None


def test_refusals_are_one_line_and_write_nothing(exports: dict[str, Path], tmp_path: Path) -> None:
    model, out = exports["model"], tmp_path / "q.onnx"
    three = write_raster(tmp_path / "three.tif", random_scene((3, 64, 64)))
    empty = write_raster(tmp_path / "empty.tif", np.zeros((4, 64, 64), np.uint16), nodata=0)
    cases = [  # option values wrong for any model and scene are usage errors (exit 2); what the scene decides, 1
        (["--calibration", exports["scene"]], ["--calibration", "--quantize int8"], 2),
        (["--quantize", "int4"], ["--quantize", "int4", "int8"], 2),
        (["--quantize", "int8", "--calibration", three], ["--calibration", "three.tif", "4 band"], 1),
        (["--quantize", "int8", "--calibration", empty], ["--calibration", "empty.tif", "valid pixel"], 1),
        (
            ["--quantize", "int8", "--calibration", tmp_path / "missing.tif"],
            ["--calibration", "missing.tif", "does not exist"],
            1,
        ),
    ]
    for extra, words, code in cases:
        refused(geoseg_process("export", model, "-o", out, *extra, cwd=tmp_path), *words, code=code)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tif", "three.tif"], extra
    classes = tmp_path / "q.tif"
    torch_only = geoseg_process(
        "predict", exports["scene"], "-m", exports["static"], "-o", classes, "--backend", "torch", cwd=tmp_path
    )
    refused(torch_only, "ONNX model", "--backend onnx")
    assert not classes.exists()
    again = geoseg_process("export", exports["static"], "-o", out, "--quantize", "int8", cwd=tmp_path)
    refused(again, "is already an ONNX file", "export the checkpoint it came from")  # not the Python API's hint
    assert not out.exists()


def test_quantize_is_checked_before_anything_else() -> None:
    assert check_quantize(None, None) is None and check_quantize(" Int8 ", None) == "int8"
    with pytest.raises(InputError, match="--calibration s.tif needs --quantize int8"):
        check_quantize(None, "s.tif")


def test_fine_resolution_layers_stay_float_and_calibration_sees_flips_and_rotations(tmp_path: Path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_file = geoseg.export_onnx(tiny_unet(4, 3), tmp_path / "f.onnx")
    quant_pre_process(str(float_file), str(tmp_path / "pre.onnx"))
    proto = onnx.load(str(tmp_path / "pre.onnx"))
    kept = set(float_nodes(proto))
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert convs[0].name in kept and convs[-1].name in kept  # the first convolution and the logits
    assert all(n.name in kept for n in proto.graph.node[: list(proto.graph.node).index(convs[0])])  # input scaling
    quantized = [n.name for n in convs if n.name not in kept]
    assert quantized and all("encoder" in name for name in quantized), quantized  # resnet18, depth 3: the coarse layers
    assert any("decoder" in n.name for n in convs if n.name in kept)  # the decoder at 1/4 resolution or finer
    chip = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    views = calibration_views(chip)
    assert len(views) == CALIBRATION_VIEWS and all(v.flags.c_contiguous for v in views)
    assert {tuple(v.ravel()) for v in views} == {
        tuple(np.ascontiguousarray(x).ravel())
        for x in (chip, chip[:, :, ::-1], chip[:, ::-1], np.rot90(chip, 1, (1, 2)), np.rot90(chip, 3, (1, 2)))
    }
    assert len(calibration_views(chip[:, :2])) == 3  # not square: flips only


def test_calibration_chips_are_spread_skip_nodata_and_are_what_predict_feeds(tmp_path: Path) -> None:
    from geoseg.inference.batches import iter_batches
    from geoseg.io.raster import read_window

    order = spread_order(50)
    assert sorted(order) == list(range(50))
    assert {i // 10 for i in order[:5]} == {0, 1, 2, 3, 4}  # five first picks, one in each tenth of the scene
    data = random_scene((4, 256, 256), seed=4)
    data[:, :, :128] = 0  # the left half is nodata: chips there are skipped
    scene = write_raster(tmp_path / "half.tif", data, nodata=0)
    card = tiny_unet(4, 3, mean=[1000.0] * 4, std=[300.0] * 4).card
    chips = calibration_chips(scene, card, 64)
    with rasterio.open(scene) as ds:
        grid = geoseg.make_grid(ds.width, ds.height, 64, card.overlap, ds.transform)
        assert 0 < len(chips) <= min(CALIBRATION_CHIPS, len(grid)) and chips.shape[1:] == (4, 64, 64)
        picked = [grid.chip(*divmod(i, grid.cols)) for i in spread_order(len(grid))]
        assert any(not np.any(data[:, c.y0 : c.y1, c.x0 : c.x1]) for c in picked[: len(chips)])  # some were skipped
        # predict's own reading and normalization of the same chips, in the same order
        fed = next(
            b
            for b in iter_batches(picked, lambda c: read_window(ds, c.window, [1, 2, 3, 4]), card.normalize, len(chips))
            if b.chips
        )
    np.testing.assert_array_equal(fed.data, chips)


def test_calibration_scene_off_in_one_axis_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """7 m wide and 13 m tall pixels (their mean is the model's 10 m): each axis is compared, as predict does."""
    import dataclasses

    from affine import Affine

    card = dataclasses.replace(tiny_unet(4, 3, mean=[1000.0] * 4, std=[300.0] * 4).card, pixel_size=10.0)
    data, warned = random_scene((4, 128, 128), seed=5), {}
    for name, (x, y) in {"square": (10.0, 10.0), "oblong": (7.0, 13.0)}.items():
        scene = write_raster(tmp_path / f"{name}.tif", data, transform=Affine(x, 0, 330000.0, 0, -y, 5822040.0))
        caplog.clear()
        calibration_chips(scene, card, 64)
        warned[name] = [r.getMessage() for r in caplog.records if "pixel size" in r.getMessage()]
    assert warned["square"] == [] and len(warned["oblong"]) == 1
    assert "pixel size 7 x 13 m differs from the model's 10 m" in warned["oblong"][0]
    assert "read resampled to 10 m" in warned["oblong"][0]


def test_calibration_chips_are_read_at_the_models_pixel_size(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 20 m scene for a 10 m model: chips read from the scene at 10 m, as predict reads them (not its own pixels)."""
    import dataclasses

    from affine import Affine

    from geoseg.io.raster import open_scene, read_window
    from geoseg.io.resample import open_resampled

    card = dataclasses.replace(tiny_unet(4, 3, mean=[1000.0] * 4, std=[300.0] * 4).card, pixel_size=10.0)
    scene = write_raster(
        tmp_path / "coarse.tif", random_scene((4, 64, 64), seed=6), transform=Affine(20.0, 0, 330000.0, 0, -20.0, 5822040.0)
    )
    notes: list[str] = []
    chips = calibration_chips(scene, card, 64, notes=notes)
    assert len(notes) == 1 and "read resampled to 10 m" in notes[0] and notes[0] in caplog.text
    with open_scene(scene) as ds, open_resampled(ds, scene, 10.0)[1] as fine:
        assert (fine.width, fine.height) == (128, 128)
        grid = geoseg.make_grid(fine.width, fine.height, 64, card.overlap, fine.transform)
        expected = [
            card.normalize(read_window(fine, grid.chip(*divmod(i, grid.cols)).window, [1, 2, 3, 4])[0])
            for i in spread_order(len(grid))
        ]
    assert len(chips) == min(len(grid), CALIBRATION_CHIPS) > 1  # on its own 64 px the scene is one chip
    np.testing.assert_allclose(chips, np.stack(expected[: len(chips)]), rtol=1e-6)
    far = write_raster(
        tmp_path / "far.tif", random_scene((4, 64, 64), seed=6), transform=Affine(60.0, 0, 330000.0, 0, -60.0, 5822040.0)
    )
    notes.clear()
    assert len(calibration_chips(far, card, 64, notes=notes)) == 1  # 6 times coarser: its own pixels, as predict does
    assert "more than 4 times coarser: its chips were read on its own pixels" in notes[0]


def test_calibration_on_few_chips_or_valid_pixels_is_warned_and_recorded(tmp_path: Path) -> None:
    """One chip with 9 valid pixels calibrated silently before: now one warning line, kept in the card."""
    from click.testing import CliRunner

    from geoseg.model.onnx import load_onnx

    model = tiny_unet(4, 3, mean=[1000.0] * 4, std=[300.0] * 4).save(tmp_path / "m.pt")
    data = np.zeros((4, 64, 64), np.uint16)
    data[:, 30:33, 30:33] = random_scene((4, 3, 3), seed=8) + 1  # 9 valid pixels
    few = write_raster(tmp_path / "few.tif", data, nodata=0)
    notes: list[str] = []
    assert len(calibration_chips(few, geoseg.load_model(model).card, 64, notes=notes)) == 1
    assert len(notes) == 1 and "only 1 chip(s) with 0.2% valid pixels" in notes[0], notes
    result = run(CliRunner(), "export", model, "-o", tmp_path / "q.onnx", "--quantize", "int8", "--calibration", few)
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "valid pixels" in line]
    assert len(warned) == 1 and "under 3 chips or 5% valid" in warned[0], result.stderr
    assert load_onnx(tmp_path / "q.onnx").card.quantization["calibration_warnings"] == notes
    notes.clear()
    full = write_raster(tmp_path / "full.tif", random_scene((4, 192, 192), seed=1))
    assert len(calibration_chips(full, geoseg.load_model(model).card, 64, notes=notes)) == CALIBRATION_CHIPS and not notes


def test_export_help_quotes_the_benchmarked_int8_speed_ups(runner) -> None:
    """--help, README and BENCHMARKS.md give the same INT8 figures: predict end to end and the model alone."""
    import re

    shown = " ".join(run(runner, "export", "--help").output.split())
    benchmarks = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    predict = sorted(re.findall(r"\| predict, [^|]*chips \| [\d.]+ \| [\d.]+ \| ([\d.]+)×", benchmarks))
    alone = sorted(re.findall(r"\| model alone, [^|]* \| [\d.]+ \| [\d.]+ \| ([\d.]+)×", benchmarks))
    assert predict == ["1.09", "1.15"] and alone == ["1.10", "1.12"], (predict, alone)
    assert f"{predict[0]}-{predict[1]}x faster end to end" in shown and f"{alone[0]}-{alone[1]}x faster alone" in shown
    assert f"{alone[0]}–{alone[1]}× faster than float and predict {predict[0]}–{predict[1]}× end to end" in readme


def test_geoseg_imports_without_onnxruntime_and_quantize_names_the_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "import geoseg.cli.export\n"
        "from geoseg.model.onnx import export_onnx\n"
        "try:\n"
        f"    export_onnx('default', {str(tmp_path / 'q.onnx')!r}, quantize='int8')\n"
        "except geoseg.core.errors.ModelError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "geoseg export --quantize needs onnxruntime and onnx: pip install 'geoseg[onnx]'"
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_default_model_int8_agrees_on_a_held_back_half_of_the_sample(tmp_path: Path) -> None:
    with rasterio.open(SAMPLE) as ds:
        half = ds.height // 2
        for name, row in (("top", 0), ("bottom", half)):
            window = rasterio.windows.Window(0, row, ds.width, half)
            profile = {**ds.profile, "height": half, "transform": ds.window_transform(window)}
            with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as out:
                out.write(ds.read(window=window))
                out.descriptions = ds.descriptions
    float_file = geoseg.export_onnx("default", tmp_path / "float.onnx")
    int8_file = geoseg.export_onnx("default", tmp_path / "int8.onnx", quantize="int8", calibration=tmp_path / "top.tif")
    maps = []
    for model in (float_file, int8_file):
        geoseg.predict(tmp_path / "bottom.tif", model, tmp_path / f"{model.stem}.tif")
        with rasterio.open(tmp_path / f"{model.stem}.tif") as ds:
            maps.append(ds.read(1))
    assert (maps[0] == maps[1]).mean() > DEFAULT_AGREEMENT
