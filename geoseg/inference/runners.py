"""Runners: what runs the model on normalized chips, torch (with its :class:`Tuning`) or onnxruntime.

:class:`TorchRunner` and :class:`OnnxRunner` meet the :class:`Runner`
protocol; :mod:`geoseg.inference.backends` registers them and picks one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from geoseg.core import threads
from geoseg.core.errors import OptionError
from geoseg.core.options import PRECISIONS
from geoseg.model.deepness import binary_probabilities
from geoseg.model.device import cpu_threads, resolve_device
from geoseg.model.onnx import OnnxModel

__all__ = ["CPU_BATCH", "GPU_BATCH", "PINNED_BYTES", "RING_BATCHES", "OnnxRunner", "Runner", "TorchRunner", "Tuning"]

log = logging.getLogger("geoseg")


class Runner(Protocol):
    """Normalized chips ``(B, C, S, S)`` float32 in, softmax probabilities ``(B, K, S, S)`` float32 out.

    The probabilities must stay as they are after the call returns (a new array each call, or values that do not
    change): on the CPU the chip loop stitches one batch in another thread while the runner runs the next.
    """

    device: str
    backend: str  # the --backend name that made it (run.json's effective backend)

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
        geoseg.core.errors.OptionError: --model-precision 'fp8' is not known: use auto or fp32 or fp16 or bf16
    """

    precision: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise OptionError(f"--model-precision {self.precision!r} is not known: use {' or '.join(PRECISIONS)}")

    def resolved_precision(self, device: str) -> str:
        """``auto`` made concrete for ``device``."""
        if self.precision != "auto":
            return self.precision
        return "fp16" if device.startswith("cuda") else "fp32"


PINNED_BYTES = 1 << 30
"""Page-locked host memory the reader's batches may take on a GPU (:data:`RING_BATCHES` batches of chips)."""
RING_BATCHES = 5
"""Batch arrays the chip loop's ``BatchRing`` takes in turn: one read ahead, one waiting to be queued, two queued,
one in the model (:func:`geoseg.inference.batches.read_batches`)."""

CPU_BATCH, GPU_BATCH = 2, 8
"""Default chips per model call. On CPU small batches run fastest (2-core measurements, ms per 256-px chip, batch
2 against 8: Unet-mobilenet_v2 16 against 26 with torch, 16 against 17 with onnxruntime; Unet-resnet18 40 against
42 and 32 against 33); a GPU wants larger ones."""


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

    backend = "torch"

    def __init__(self, model: Any, device: str = "auto", tta: bool = False, tuning: Tuning | None = None) -> None:
        import torch

        self.torch = torch
        self.device = resolve_device(device)
        if self.device == "cpu":
            cpu_threads()  # no more threads than a container's CPU quota allows (process-wide, not restored)
        self.tuning = tuning or Tuning()
        self.precision = self.tuning.resolved_precision(self.device)
        self.pinned = self.device.startswith("cuda")
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.forward, self.compiled = self.model, False
        if self.tuning.compile:
            self.forward = _compiled(torch, self.model)
        self.tta = tta

    def _forward(self, x: Any) -> Any:
        if self.forward is not self.model and not self.compiled:  # the first call compiles: fall back if it cannot
            try:
                out = self._run(x)
            except Exception as exc:  # noqa: BLE001 - compilation is an optimization: run eagerly instead
                log.warning("torch.compile failed (%s); running the model as it is", str(exc).splitlines()[0][:200])
                self.forward = self.model
                return self._run(x)
            self.compiled = True
            return out
        return self._run(x)

    def _run(self, x: Any) -> Any:
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
            if not self.device_stitch:
                return probs.cpu().numpy()
            if self.device.startswith("cuda"):
                torch.cuda.synchronize(self.device)  # the model's time is its own, not counted into stitching
            return probs

    @property
    def device_stitch(self) -> bool:
        """True on a GPU: probabilities stay on the device (a torch tensor), stitched and reduced there."""
        return self.device.startswith("cuda")

    def _softmax(self, logits: Any) -> Any:
        # over contiguous (B, K, H, W) logits: about 1.6x faster on the CPU than over channels-last ones, then made contiguous
        return self.torch.softmax(logits.float().contiguous(), dim=1)

    def batch_for(self, bands: int, chip: int, limit: int = 64) -> int:
        """Chips per model call: on a GPU as many as half the free memory holds (measured on one chip; at most
        ``limit``, and at most what :data:`PINNED_BYTES` of page-locked batches hold), else 2.

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
        host = int(PINNED_BYTES // (RING_BATCHES * bands * chip * chip * 4))  # the reader's page-locked batches
        return max(1, min(limit, host, 1 << max(0, fits.bit_length() - 1)))


def _compiled(torch: Any, model: Any) -> Any:
    """``torch.compile(model)``, or the model itself (with a warning) where this torch cannot compile."""
    try:
        return torch.compile(model)  # shapes that change (a scene's last, smaller batch) are compiled once more
    except Exception as exc:  # noqa: BLE001 - compilation is an optimization: run eagerly instead
        log.warning("torch.compile is not available here (%s); running the model eagerly", str(exc).splitlines()[0])
        return model


class OnnxRunner:
    """Runs an exported model (:class:`geoseg.model.onnx.OnnxModel`) with onnxruntime.

    Same contract as :class:`TorchRunner`: normalized chips in, softmax probabilities out. A Deepness file with one
    sigmoid output channel gives two: background and its class (:func:`geoseg.model.deepness.binary_probabilities`).
    """

    backend = "onnx"  # "tensorrt" when the backends' registry made it so

    def __init__(self, model: OnnxModel, tta: bool = False, max_batch: int | None = None) -> None:
        self.model = model
        self.tta = tta
        self.max_batch = max_batch  # larger batches run in parts (a TensorRT engine's profile ends there)
        providers = model.session.get_providers()
        self.device = "cuda" if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(providers) else "cpu"
        # calls the chip loop may run at once: on the CPU, where load_onnx gave the session LANE_THREADS per call
        # (not where a CUDA session fell back to the CPU with onnxruntime's own threads)
        lane_threads = threads.LANE_THREADS
        ours = model.session.get_session_options().intra_op_num_threads == lane_threads
        self.lanes = threads.MODEL_LANES if self.device == "cpu" and lane_threads and ours else 1

    def _forward(self, x: np.ndarray) -> np.ndarray:
        m = self.model
        if self.max_batch and len(x) > self.max_batch:
            return np.concatenate([self._forward(x[i : i + self.max_batch]) for i in range(0, len(x), self.max_batch)])
        out = np.asarray(m.session.run(None, {m.input_name: m.to_graph_input(x)})[0])
        if m.binary is not None:  # a Deepness file's one sigmoid channel: background and its class, as Deepness reads it
            return binary_probabilities(out, m.binary, m.path)
        return out

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
