"""Backends: what runs the model on normalized chips and returns softmax probabilities.

A backend is one :class:`Backend` entry in :data:`BACKENDS` (torch and
onnxruntime today); the CLI's ``--backend`` choices are read from it, so a
new engine (say TensorRT) is one entry with a runner class that meets the
:class:`Runner` protocol. ``auto`` picks an entry with :func:`choose_backend`.
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
from typing import Any, Protocol

import numpy as np

from geoseg.core.errors import InputError
from geoseg.core.options import PRECISIONS
from geoseg.model.device import resolve_device
from geoseg.model.onnx import OnnxModel

__all__ = [
    "AUTO_ONNX_CHIPS",
    "BACKENDS",
    "Backend",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "backend_choices",
    "backend_help",
    "check_backend",
    "choose_backend",
    "choose_batch",
    "default_batch",
    "make_runner",
]

log = logging.getLogger("geoseg")


class Runner(Protocol):
    """Normalized chips ``(B, C, S, S)`` float32 in, softmax probabilities ``(B, K, S, S)`` float32 out."""

    device: str

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """Probabilities of a batch of chips."""
        ...


@dataclass(frozen=True)
class Tuning:
    """How a runner runs the model: ``precision`` (one of :data:`PRECISIONS`) and ``compile`` (``torch.compile``).

    Example:
        >>> Tuning().resolved_precision("cuda"), Tuning("bf16").resolved_precision("cpu")
        ('fp16', 'bf16')
        >>> Tuning("fp8")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: --model-precision 'fp8' is not known: use auto or fp32 or fp16 or bf16
    """

    precision: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"--model-precision {self.precision!r} is not known: use {' or '.join(PRECISIONS)}")

    def resolved_precision(self, device: str) -> str:
        """``auto`` made concrete for ``device``."""
        if self.precision != "auto":
            return self.precision
        return "fp16" if device.startswith("cuda") else "fp32"


CPU_BATCH, GPU_BATCH = 2, 8
"""Default chips per model call. On CPU small batches run fastest (2-core measurements, ms per 256-px chip, batch
2 against 8: Unet-mobilenet_v2 16 against 26 with torch, 16 against 17 with onnxruntime; Unet-resnet18 40 against
42 and 32 against 33); a GPU wants larger ones."""


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
    from geoseg.model.onnx import export_onnx, load_onnx

    # the weights' in-place version counters change when they are trained further
    exports = _EXPORTS.setdefault(net, {})
    key = (chip, resolve_device(device), sum(p._version for p in net.parameters()))
    if key not in exports:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="geoseg-onnx-") as tmp:
            path = export_onnx(net, Path(tmp) / "model.onnx", chip_size=chip)
            exports[key] = load_onnx(path, key[1])  # the session holds the graph in memory
        seconds["export_onnx"] = time.perf_counter() - started
        log.info("running the model with onnxruntime (exported in %.1f s)", seconds["export_onnx"])
    return OnnxRunner(exports[key], tta=tta), exports[key]


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
}
"""The inference engines, by ``--backend`` name."""

AUTO_ONNX_CHIPS = 64
"""With ``backend="auto"``, checkpoints run through onnxruntime on CPU from this many chips on."""


def backend_choices() -> tuple[str, ...]:
    """``auto`` and every registered backend's name, as ``--backend`` offers them.

    Example:
        >>> backend_choices()
        ('auto', 'torch', 'onnx')
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


def check_backend(net: Any, backend: str) -> None:
    """Refuse a backend name that is not registered, and ``torch`` for an ONNX model.

    Example:
        >>> check_backend(object(), "tensorrt")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: --backend 'tensorrt' is not known: use auto, torch, onnx
    """
    if backend not in backend_choices():
        raise InputError(f"--backend {backend!r} is not known: use {', '.join(backend_choices())}")
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
    check_backend(net, backend)
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
    """The runner that predicts ``chips`` chips of ``chip`` px with ``net`` (see :func:`choose_backend`).

    Example:
        >>> runner, net = make_runner(model, "auto", "cpu", False, 256, 100, {})  # doctest: +SKIP
    """
    return choose_backend(net, backend, device, chips).make(net, device, tta, chip, seconds, tuning or Tuning())


_FLIPS: list[tuple[int, ...]] = [(), (3,), (2,), (2, 3)]
"""Test-time augmentation: the chip as it is and flipped along x, y and both (axes of a B, C, H, W batch)."""


class TorchRunner:
    """Runs a model on normalized chips and returns softmax probabilities as float32 numpy.

    ``tta`` averages the probabilities of the chip and its horizontal,
    vertical and double flips. ``tuning`` sets the precision (on CUDA the
    forward pass runs in float16 autocast by default; ``bf16`` where the GPU
    has it) and ``torch.compile``. Chips and weights are channels-last. On a
    GPU, batches come from page-locked memory (:attr:`pinned`, copied to the
    device without a staging copy), and the probabilities stay there as a
    tensor (:attr:`device_stitch`) for the stitcher and the argmax.
    """

    def __init__(self, model: Any, device: str = "auto", tta: bool = False, tuning: Tuning | None = None) -> None:
        import torch

        self.torch = torch
        self.device = resolve_device(device)
        self.tuning = tuning or Tuning()
        self.precision = self.tuning.resolved_precision(self.device)
        self.pinned = self.device.startswith("cuda")
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.forward = self.model
        if self.tuning.compile:
            self.forward = _compiled(torch, self.model)
        self.tta = tta

    def _forward(self, x: Any) -> Any:
        torch = self.torch
        if self.precision == "fp32":
            return self.forward(x)
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        with torch.autocast(self.device.split(":")[0], dtype=dtype):
            return self.forward(x).float()

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(B, K, S, S)`` of normalized chips ``(B, C, S, S)``."""
        torch = self.torch
        with torch.inference_mode():
            # a blocking copy: the batch's slot of the reader's ring is refilled later, and an asynchronous copy
            # could still be queued behind the GPU's work by then; from page-locked memory it needs no staging
            x = torch.from_numpy(data).to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            if not self.tta:
                probs = self._softmax(self._forward(x))
            else:
                probs = sum(
                    self._softmax(self._forward(x.flip(f))).flip(f) if f else self._softmax(self._forward(x)) for f in _FLIPS
                ) / len(_FLIPS)
            probs = probs.float().contiguous()
            return probs if self.device_stitch else probs.cpu().numpy()

    @property
    def device_stitch(self) -> bool:
        """True on a GPU: probabilities stay on the device (a torch tensor), stitched and reduced there."""
        return self.device.startswith("cuda")

    def _softmax(self, logits: Any) -> Any:
        # over contiguous (B, K, H, W) logits: about 1.6x faster on the CPU than over channels-last ones, then made contiguous
        return self.torch.softmax(logits.float().contiguous(), dim=1)

    def batch_for(self, bands: int, chip: int, limit: int = 64) -> int:
        """Chips per model call: on a GPU as many as half the free memory holds (measured on one chip), else 2.

        Example:
            >>> TorchRunner(tiny_model, device="cpu").batch_for(3, 256)  # doctest: +SKIP
            2
        """
        if not self.device.startswith("cuda"):
            return CPU_BATCH
        torch = self.torch
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        self(np.zeros((1, bands, chip, chip), np.float32))
        per_chip = max(1, torch.cuda.max_memory_allocated(self.device) - base)
        free, _ = torch.cuda.mem_get_info(self.device)
        fits = int(free * 0.5 // per_chip)
        return max(GPU_BATCH, min(limit, 1 << max(0, fits.bit_length() - 1)))


def _compiled(torch: Any, model: Any) -> Any:
    """``torch.compile(model)``, or the model itself (with a warning) where this torch cannot compile."""
    try:
        return torch.compile(model, dynamic=False)
    except Exception as exc:  # noqa: BLE001 - compilation is an optimization: run eagerly instead
        log.warning("torch.compile is not available here (%s); running the model eagerly", str(exc).splitlines()[0])
        return model


class OnnxRunner:
    """Runs an exported model (:class:`geoseg.model.onnx.OnnxModel`) with onnxruntime.

    Same contract as :class:`TorchRunner`: normalized chips in, softmax probabilities out.
    """

    def __init__(self, model: OnnxModel, tta: bool = False) -> None:
        self.model = model
        self.tta = tta
        providers = model.session.get_providers()
        self.device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"

    def _forward(self, x: np.ndarray) -> np.ndarray:
        m = self.model
        return np.asarray(m.session.run(None, {m.input_name: m.to_graph_input(x)})[0])

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(B, K, S, S)`` of normalized chips ``(B, C, S, S)``."""
        if not self.tta:
            return np.ascontiguousarray(self._forward(data), dtype=np.float32)
        total = np.zeros((data.shape[0], self.model.card.num_classes, *data.shape[2:]), np.float32)
        for axes in _FLIPS:
            x = np.flip(data, axes) if axes else data
            p = self._forward(np.ascontiguousarray(x))
            total += np.flip(p, axes) if axes else p
        return total / len(_FLIPS)
