"""``--backend tensorrt``: the provider and its options, refusals, and batch splitting (no GPU here: onnxruntime's
session is faked where it would need TensorRT, and the options it gets are checked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from geoseg.core.errors import InputError, OptionError
from geoseg.inference.backends import choose_backend, make_runner
from geoseg.inference.runners import OnnxRunner, Tuning
from geoseg.model.onnx import TENSORRT_CACHE_ENV, export_onnx, load_onnx, tensorrt_provider
from tests.helpers import run, tiny_unet

ort = pytest.importorskip("onnxruntime")


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    return export_onnx(tiny_unet(bands=3, classes=2, chip_size=64), tmp_path / "tiny.onnx")


@pytest.fixture
def fake_tensorrt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list]:
    """onnxruntime claims TensorRT and CUDA; sessions record their providers and run on the CPU."""
    real = ort.InferenceSession
    seen: list[list] = []

    class Session(real):  # runs on the CPU, reports the providers it was given (as onnxruntime with TensorRT would)
        def __init__(self, path: str, sess_options: object = None, providers: list | None = None) -> None:
            seen.append(list(providers or []))
            super().__init__(path, sess_options=sess_options, providers=["CPUExecutionProvider"])
            self.given = [p if isinstance(p, str) else p[0] for p in providers or []]

        def get_providers(self) -> list[str]:
            return self.given

    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setenv(TENSORRT_CACHE_ENV, str(tmp_path / "engines"))
    return seen


def test_provider_options_name_the_input_profile_precision_and_cache(
    onnx_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TENSORRT_CACHE_ENV, str(tmp_path / "engines"))
    name, options = tensorrt_provider(onnx_file, "fp16", batch=16)
    graph_input = load_onnx(onnx_file).input_name
    assert name == "TensorrtExecutionProvider"
    assert options["trt_profile_min_shapes"] == f"{graph_input}:1x3x64x64"
    assert options["trt_profile_opt_shapes"] == f"{graph_input}:16x3x64x64"
    assert options["trt_profile_max_shapes"] == f"{graph_input}:64x3x64x64"
    assert options["trt_fp16_enable"] == "True" and "trt_bf16_enable" not in options
    engines = Path(options["trt_engine_cache_path"])
    assert engines.parent == tmp_path / "engines" and engines.is_dir()
    assert options["trt_timing_cache_path"] == str(tmp_path / "engines")
    fp32 = tensorrt_provider(onnx_file, "fp32")[1]
    assert "trt_fp16_enable" not in fp32 and "trt_bf16_enable" not in fp32
    assert fp32["trt_engine_cache_path"] != str(engines)  # engines per precision
    other = export_onnx(tiny_unet(bands=3, classes=3, chip_size=64), tmp_path / "other.onnx")
    assert tensorrt_provider(other, "fp16")[1]["trt_engine_cache_path"] != str(engines)  # and per file's bytes
    known = {"trt_engine_cache_enable", "trt_engine_cache_path", "trt_timing_cache_enable", "trt_timing_cache_path"}
    known |= {f"trt_profile_{k}_shapes" for k in ("min", "opt", "max")} | {"trt_fp16_enable", "trt_bf16_enable"}
    assert set(options) | set(fp32) <= known  # option names of onnxruntime's TensorRT provider
    assert tensorrt_provider(onnx_file, "bf16")[1]["trt_bf16_enable"] == "True"


def test_tensorrt_backend_opens_the_file_with_tensorrt_first(onnx_file: Path, fake_tensorrt: list[list]) -> None:
    net = load_onnx(onnx_file)
    runner, model = make_runner(net, "tensorrt", "cuda", False, 64, 10, {}, Tuning("fp32"))
    providers = fake_tensorrt[-1]
    assert providers[0][0] == "TensorrtExecutionProvider" and "trt_fp16_enable" not in providers[0][1]
    assert providers[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert isinstance(runner, OnnxRunner) and runner.max_batch == 64
    assert runner.backend == "tensorrt"  # recorded as run.json's effective backend (it was "onnx", from the class name)
    make_runner(net, "tensorrt", "cuda", False, 64, 10, {}, Tuning())  # auto: float16 on the GPU
    assert fake_tensorrt[-1][0][1]["trt_fp16_enable"] == "True"


def test_a_checkpoint_is_exported_for_tensorrt(fake_tensorrt: list[list]) -> None:
    seconds: dict[str, float] = {}
    runner, model = make_runner(tiny_unet(bands=3, classes=2, chip_size=64), "tensorrt", "cuda", False, 64, 10, seconds)
    assert fake_tensorrt[-1][0][0] == "TensorrtExecutionProvider" and "export_onnx" in seconds
    probs = runner(np.zeros((2, 3, 64, 64), np.float32))
    assert probs.shape == (2, 2, 64, 64) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_tensorrt_refusals(onnx_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = load_onnx(onnx_file)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(InputError, match="--backend tensorrt needs onnxruntime with NVIDIA TensorRT.*pip install"):
        choose_backend(net, "tensorrt", "cuda", 10)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(InputError, match="runs on an NVIDIA GPU: use --device cuda"):
        make_runner(net, "tensorrt", "auto", False, 64, 10, {})  # auto finds no GPU here
    with pytest.raises(OptionError, match="not with --device cpu: use --backend onnx"):
        make_runner(net, "tensorrt", "cpu", False, 64, 10, {})  # a usage error, installed or not


def test_tensorrt_with_device_cpu_is_a_usage_error_before_the_model_loads(runner: CliRunner, tmp_path: Path) -> None:
    """Exit 2 from the options alone: the checkpoint is not opened (a missing one is not even named)."""
    out = tmp_path / "o.tif"
    args = ["--backend", "tensorrt", "--device", "cpu"]
    result = run(runner, "predict", tmp_path / "missing.tif", "-m", tmp_path / "missing.pt", "-o", out, *args)
    assert result.exit_code == 2 and "not with --device cpu" in result.stderr and "missing" not in result.stderr
    assert not out.exists()


def test_batches_beyond_the_engine_profile_run_in_parts(onnx_file: Path) -> None:
    net = load_onnx(onnx_file)
    chips = np.random.default_rng(0).normal(size=(7, 3, 64, 64)).astype(np.float32)
    whole = OnnxRunner(net)(chips)
    parts = OnnxRunner(net, max_batch=3)(chips)
    assert parts.shape == whole.shape
    np.testing.assert_allclose(parts, whole, atol=1e-6)


def test_a_quiet_fallback_from_tensorrt_is_refused(
    onnx_file: Path, fake_tensorrt: list[list], monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime falls back to CUDA when TensorRT cannot take a model; geoseg says so instead of running on."""
    from geoseg.core.errors import ModelError

    monkeypatch.setattr(ort.InferenceSession, "get_providers", lambda self: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ModelError, match="TensorRT could not take this model"):
        load_onnx(onnx_file, "cuda", tensorrt="fp16")
