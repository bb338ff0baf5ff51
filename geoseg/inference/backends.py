"""Backends: what runs the model on normalized chips and returns softmax probabilities.

A backend is one :class:`Backend` entry in :data:`BACKENDS` (torch,
onnxruntime, and onnxruntime with TensorRT on a GPU); the CLI's
``--backend`` choices are read from it, so a new engine is one entry with a
runner class that meets the :class:`Runner` protocol. ``auto`` picks an entry with :func:`choose_backend`.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.core.errors import InputError, OptionError
from geoseg.inference.runners import CPU_BATCH, GPU_BATCH, PINNED_BYTES, RING_BATCHES, OnnxRunner, Runner, TorchRunner, Tuning
from geoseg.model.device import resolve_device
from geoseg.model.onnx import OnnxModel

__all__ = [
    "AUTO_ONNX_CHIPS",
    "BACKENDS",
    "Backend",
    "PINNED_BYTES",
    "RING_BATCHES",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "Tuning",
    "backend_choices",
    "backend_help",
    "check_backend",
    "choose_backend",
    "choose_batch",
    "default_batch",
    "make_runner",
]

log = logging.getLogger("geoseg")


def choose_batch(runner: Runner, bands: int, chip: int) -> int:
    """Chips per model call when none is given: from the GPU's free memory where the runner can measure it.

    Example:
        >>> class CpuRunner:
        ...     device = "cpu"
        >>> choose_batch(CpuRunner(), 3, 256)
        2
    """
    measure = getattr(runner, "batch_for", None)
    return int(measure(bands, chip)) if measure is not None else default_batch(runner.device)


def default_batch(device: str) -> int:
    """Chips per model call when none is given: :data:`GPU_BATCH` on CUDA, :data:`CPU_BATCH` on the CPU.

    Example:
        >>> default_batch("cpu"), default_batch("cuda")
        (2, 8)
    """
    return GPU_BATCH if device.startswith("cuda") else CPU_BATCH


def _onnx_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


_EXPORTS: weakref.WeakKeyDictionary[Any, dict[tuple[int, str, int], OnnxModel]] = weakref.WeakKeyDictionary()
"""ONNX exports of checkpoints, per model object: a batch of scenes exports once and reuses the session."""


def _torch_runner(net: Any, device: str, tta: bool, chip: int, seconds: dict[str, float], tuning: Tuning) -> tuple[Runner, Any]:
    return TorchRunner(net, device=device, tta=tta, tuning=tuning), net


def _onnx_runner(net: Any, device: str, tta: bool, chip: int, seconds: dict[str, float], tuning: Tuning) -> tuple[Runner, Any]:
    """An onnxruntime runner; a checkpoint is exported to ONNX first, once per chip size, device and weights."""
    if isinstance(net, OnnxModel):
        return OnnxRunner(net, tta=tta), net
    model = _exported(net, chip, resolve_device(device), None, seconds)
    return OnnxRunner(model, tta=tta), model


def _exported(net: Any, chip: int, device: str, tensorrt: str | None, seconds: dict[str, float]) -> OnnxModel:
    """A checkpoint exported to ONNX in memory and opened (with TensorRT at precision ``tensorrt``), once per chip
    size, device, engine and weights."""
    from geoseg.model.onnx import export_onnx, load_onnx

    # the weights' in-place version counters change when they are trained further
    exports = _EXPORTS.setdefault(net, {})
    key = (chip, device if tensorrt is None else f"tensorrt-{tensorrt}", sum(p._version for p in net.parameters()))
    if key not in exports:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="geoseg-onnx-", ignore_cleanup_errors=True) as tmp:
            path = export_onnx(net, Path(tmp) / "model.onnx", chip_size=chip, quiet=True)
            exports[key] = load_onnx(path, device, tensorrt=tensorrt)  # the session holds the graph in memory
        seconds["export_onnx"] = time.perf_counter() - started
        log.info("running the model with onnxruntime (exported in %.1f s)", seconds["export_onnx"])
    return exports[key]


def _tensorrt_installed() -> bool:
    if not _onnx_installed():
        return False
    import onnxruntime as ort

    return "TensorrtExecutionProvider" in ort.get_available_providers()


def _tensorrt_runner(
    net: Any, device: str, tta: bool, chip: int, seconds: dict[str, float], tuning: Tuning
) -> tuple[Runner, Any]:
    """onnxruntime with TensorRT on the GPU, at ``tuning``'s precision (auto: fp16); engines built once, cached."""
    from geoseg.model.onnx import TENSORRT_MAX_BATCH, load_onnx, onnx_device, tensorrt_cache

    if not onnx_device(device).startswith("cuda"):  # onnxruntime's own view: torch is not imported for .onnx files
        raise InputError("--backend tensorrt runs on an NVIDIA GPU: use --device cuda (or auto where there is one)")
    precision = tuning.resolved_precision("cuda")
    log.info("building or loading the TensorRT engine (cached in %s; a first build takes minutes)", tensorrt_cache())
    started = time.perf_counter()
    if isinstance(net, OnnxModel):
        model = load_onnx(net.path, "cuda", tensorrt=precision)
        seconds["tensorrt_engine"] = time.perf_counter() - started
    else:
        model = _exported(net, chip, "cuda", precision, seconds)
    return OnnxRunner(model, tta=tta, max_batch=TENSORRT_MAX_BATCH), model


@dataclass(frozen=True)
class Backend:
    """One inference engine: its name, what it needs installed, and how it makes a :class:`Runner`.

    ``make(net, device, tta, chip_size, seconds, tuning)`` returns the runner
    and the model it runs (an exported copy where the engine needs one), and
    may record set-up time in ``seconds``; ``tuning`` is a :class:`Tuning`.
    """

    name: str
    help: str
    installed: Callable[[], bool]
    make: Callable[[Any, str, bool, int, dict[str, float], Tuning], tuple[Runner, Any]]
    install: str = ""
    """What to install when :attr:`installed` is False (shown in the error)."""


BACKENDS: dict[str, Backend] = {
    "torch": Backend("torch", "PyTorch (checkpoints only)", lambda: True, _torch_runner),
    "onnx": Backend(
        "onnx",
        "onnxruntime (a .pt model is exported in memory first)",
        _onnx_installed,
        _onnx_runner,
        "pip install 'geoseg[onnx]'",
    ),
    "tensorrt": Backend(
        "tensorrt",
        "onnxruntime with NVIDIA TensorRT on a GPU (at --model-precision, auto: float16; a .pt model is exported "
        "in memory first; engines are built once, in minutes, and cached)",
        _tensorrt_installed,
        _tensorrt_runner,
        "pip install onnxruntime-gpu tensorrt (with CUDA 12)",
    ),
}
"""The inference engines, by ``--backend`` name."""

AUTO_ONNX_CHIPS = 64
"""With ``backend="auto"``, checkpoints run through onnxruntime on CPU from this many chips on."""


def backend_choices() -> tuple[str, ...]:
    """``auto`` and every registered backend's name, as ``--backend`` offers them.

    Example:
        >>> backend_choices()
        ('auto', 'torch', 'onnx', 'tensorrt')
    """
    return ("auto", *BACKENDS)


def backend_help() -> str:
    """The ``--backend`` help text, from the registry.

    Example:
        >>> backend_help().startswith("Inference engine: torch: PyTorch")
        True
    """
    engines = "; ".join(f"{b.name}: {b.help}" for b in BACKENDS.values())
    return (
        f"Inference engine: {engines}. auto runs .onnx files with onnxruntime, and .pt models too on CPU for scenes "
        f"of {AUTO_ONNX_CHIPS} chips or more when onnxruntime is installed (measured about 1.3x faster on 2 CPU cores, "
        "see BENCHMARKS.md)."
    )


def check_backend(net: Any, backend: str, device: str = "auto") -> None:
    """Refuse a backend name that is not registered, ``torch`` for an ONNX model and ``tensorrt`` on the CPU.

    Example:
        >>> check_backend(object(), "openvino")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: --backend 'openvino' is not known: use auto, torch, onnx, tensorrt
    """
    if backend not in backend_choices():
        raise OptionError(f"--backend {backend!r} is not known: use {', '.join(backend_choices())}")
    if backend == "tensorrt" and device == "cpu":
        raise OptionError("--backend tensorrt runs on an NVIDIA GPU, not with --device cpu: use --backend onnx on the CPU")
    if isinstance(net, OnnxModel) and backend == "torch":
        raise InputError(
            f"{net.path.name} is an ONNX model: run it with --backend onnx or auto, "
            "or give the .pt checkpoint for --backend torch"
        )


def choose_backend(net: Any, backend: str, device: str, chips: int) -> Backend:
    """The backend for ``backend`` (a name or ``auto``) and a model about to predict ``chips`` chips.

    ``auto`` runs ONNX models with onnxruntime, and checkpoints too on the CPU
    from :data:`AUTO_ONNX_CHIPS` chips on when onnxruntime is installed
    (measured about 1.3x faster on 2 CPU cores; the export costs about a second).

    Example:
        >>> choose_backend(object(), "torch", "cpu", 10).name
        'torch'
    """
    check_backend(net, backend, device)
    if backend != "auto":
        chosen = BACKENDS[backend]
        if not chosen.installed():
            raise InputError(f"--backend {backend} needs {chosen.help.split(' (')[0]}: {chosen.install}")
        return chosen
    if isinstance(net, OnnxModel):
        return BACKENDS["onnx"]
    if resolve_device(device) == "cpu" and chips >= AUTO_ONNX_CHIPS and BACKENDS["onnx"].installed():
        return BACKENDS["onnx"]
    return BACKENDS["torch"]


def make_runner(
    net: Any,
    backend: str,
    device: str,
    tta: bool,
    chip: int,
    chips: int,
    seconds: dict[str, float],
    tuning: Tuning | None = None,
) -> tuple[Runner, Any]:
    """The runner that predicts ``chips`` chips of ``chip`` px with ``net`` (see :func:`choose_backend`); a
    ``tuning`` other than the default keeps ``auto`` on torch (precision and compilation are torch's).

    Example:
        >>> runner, net = make_runner(model, "auto", "cpu", False, 256, 100, {})  # doctest: +SKIP
    """
    tuning = tuning or Tuning()
    tuned = tuning.compile or tuning.precision != "auto"
    if tuned and backend == "auto" and not isinstance(net, OnnxModel):
        backend = "torch"  # precision and compilation are torch's
    chosen = choose_backend(net, backend, device, chips)
    if tuning.compile and chosen.name != "torch":
        log.warning("--compile applies to .pt models run by torch: ignored with %s", chosen.name)
    if tuning.precision != "auto" and chosen.name == "onnx":
        log.warning("--model-precision applies to torch and tensorrt: ignored with onnx (it runs as exported)")
    runner, net = chosen.make(net, device, tta, chip, seconds, tuning)
    runner.backend = chosen.name  # tensorrt runs an OnnxRunner: run.json names the backend that was chosen
    return runner, net
