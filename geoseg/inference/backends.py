"""Backends: run a model on normalized chips and return softmax probabilities (torch, onnxruntime)."""

from __future__ import annotations

import numpy as np

from geoseg.model.device import resolve_device

__all__ = ["OnnxRunner", "TorchRunner", "default_batch"]

CPU_BATCH, GPU_BATCH = 2, 8
"""Default chips per model call. On CPU small batches run fastest (2-core measurements, ms per 256-px chip, batch
2 against 8: Unet-mobilenet_v2 16 against 26 with torch, 16 against 17 with onnxruntime; Unet-resnet18 40 against
42 and 32 against 33); a GPU wants larger ones."""


def default_batch(device: str) -> int:
    """Chips per model call when none is given: :data:`GPU_BATCH` on CUDA, :data:`CPU_BATCH` on the CPU.

    Example:
        >>> default_batch("cpu"), default_batch("cuda")
        (2, 8)
    """
    return GPU_BATCH if device.startswith("cuda") else CPU_BATCH


_FLIPS: list[tuple[int, ...]] = [(), (3,), (2,), (2, 3)]
"""Test-time augmentation: the chip as it is and flipped along x, y and both (axes of a B, C, H, W batch)."""


class TorchRunner:
    """Runs a model on normalized chips and returns softmax probabilities as float32 numpy.

    ``tta`` averages the probabilities of the chip and its horizontal,
    vertical and double flips. On CUDA the forward pass runs in float16
    autocast.
    """

    def __init__(self, model: object, device: str = "auto", tta: bool = False) -> None:
        import torch

        self.torch = torch
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()  # type: ignore[attr-defined]
        if self.device == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.tta = tta

    def _forward(self, x: object) -> object:
        torch = self.torch
        if self.device.startswith("cuda"):
            with torch.autocast("cuda", dtype=torch.float16):
                return self.model(x).float()
        return self.model(x)

    def __call__(self, data: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(data).to(self.device)
            if self.device == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            if not self.tta:
                probs = torch.softmax(self._forward(x), dim=1)
            else:
                probs = sum(
                    torch.softmax(self._forward(x.flip(f)), dim=1).flip(f) if f else torch.softmax(self._forward(x), dim=1)
                    for f in _FLIPS
                ) / len(_FLIPS)
            return probs.float().contiguous().cpu().numpy()


class OnnxRunner:
    """Runs an exported model (:class:`geoseg.model.onnx.OnnxModel`) with onnxruntime; same contract as
    :class:`TorchRunner`: normalized chips in, softmax probabilities out."""

    def __init__(self, model: object, tta: bool = False) -> None:
        self.model = model
        self.tta = tta
        providers = model.session.get_providers()  # type: ignore[attr-defined]
        self.device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"

    def _forward(self, x: np.ndarray) -> np.ndarray:
        m = self.model
        return m.session.run(None, {m.input_name: m.to_graph_input(x)})[0]  # type: ignore[attr-defined]

    def __call__(self, data: np.ndarray) -> np.ndarray:
        if not self.tta:
            return np.ascontiguousarray(self._forward(data), dtype=np.float32)
        total = np.zeros((data.shape[0], self.model.card.num_classes, *data.shape[2:]), np.float32)  # type: ignore[attr-defined]
        for axes in _FLIPS:
            x = np.flip(data, axes) if axes else data
            p = self._forward(np.ascontiguousarray(x))
            total += np.flip(p, axes) if axes else p
        return total / len(_FLIPS)
