"""ONNX models that travel: export for QGIS (Deepness, GeoDeep) and loading for onnxruntime.

The exported graph takes raw band values divided by 255 (the convention of
Deepness and GeoDeep, which divide uint8 by 255 before the model), undoes
that scale and applies geoseg's per-band normalization inside the graph, runs
the network and ends with a softmax. The Deepness standardization keys are
therefore identity (mean 0, std 1), and every per-band normalization geoseg
knows is reproduced exactly. Metadata values are JSON-encoded, as Deepness
reads them; the full geoseg model card is stored under ``geoseg_card``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core import threads
from geoseg.core.errors import InputError, ModelError, OptionError
from geoseg.core.options import check_positive_chip_size
from geoseg.io.paths import check_input_file
from geoseg.model.card import ModelCard
from geoseg.model.deepness import (
    DEEPNESS_KEYS,
    INPUT_SCALE,
    binary_threshold,
    card_from_deepness,
    decoded,
    deepness_metadata,
    export_card,
    write_metadata,
)
from geoseg.model.tensorrt import TENSORRT_CACHE_ENV, TENSORRT_MAX_BATCH, tensorrt_cache, tensorrt_provider
from geoseg.model.validate import MAX_BANDS, MAX_CHIP_SIZE, is_real, normalization_problem, show

__all__ = ["DEEPNESS_KEYS", "EXPORT_STEPS", "TENSORRT_CACHE_ENV", "TENSORRT_MAX_BATCH", "OnnxModel", "deepness_metadata"]
__all__ += ["export_onnx", "load_onnx", "tensorrt_cache", "tensorrt_provider"]  # TensorRT's from geoseg.model.tensorrt

CARD_KEY = "geoseg_card"

log = logging.getLogger("geoseg")


def _folded(model: Any) -> Any:
    """The model with input rescaling, normalization and softmax in one module."""
    import torch

    card = model.card
    bands = card.num_bands
    problem = normalization_problem(card.mean, card.std, bands)  # the check every model file passes when read
    if problem is not None:
        field, value, must = problem
        raise ModelError(
            f"model {card.name}: its normalization ({field} is {show(value)}) cannot be expressed in ONNX: "
            f"each value must be {must}; re-save the model with finite means and positive stds"
        )
    mean, std = card.normalization()
    scale = torch.tensor((1.0 / INPUT_SCALE) / std, dtype=torch.float32).view(1, bands, 1, 1)
    shift = torch.tensor(-mean / std, dtype=torch.float32).view(1, bands, 1, 1)

    class Folded(torch.nn.Module):
        scale: torch.Tensor
        shift: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.net = model.net
            self.register_buffer("scale", scale)
            self.register_buffer("shift", shift)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.net(x * self.scale + self.shift)
            # softmax over the class axis written out: onnxruntime's Softmax(axis=1) on (B, K, H, W) is about 7x slower
            # than these elementwise ops and reductions (2 CPU cores; the bundled model ran 1.3x faster in geoseg predict)
            # and the values are the same
            exp = torch.exp(logits - logits.amax(dim=1, keepdim=True))
            return exp / exp.sum(dim=1, keepdim=True)

    return Folded().eval()


def export_onnx(
    model: Any,
    output: str | os.PathLike,
    chip_size: int | None = None,
    overwrite: bool = False,
    opset: int = 17,
    smooth: int = 0,
    quantize: str | None = None,
    calibration: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Export a geoseg model to one self-contained ONNX file for Deepness, GeoDeep and geoseg.

    Static square input and output of ``chip_size`` (default: the model's), dynamic batch axis, softmax inside,
    normalization folded in (input = raw / 255). ``smooth`` is Deepness' ``seg_small_segment`` (pixels; 0: none).
    ``quantize="int8"`` writes an int8 model (:mod:`geoseg.model.quantize`): static quantization calibrated on chips
    of the scene ``calibration``, dynamic without one; the card's ``provenance["quantization"]`` says which. A model
    object is left on its device and in its training mode. What the file cannot carry (no pixel size, a pixel
    overlap scaled to fit ``chip_size``: :func:`~geoseg.model.deepness.export_card`) is logged as one warning line
    each, unless ``quiet`` (predict's in-memory export). ``progress(step, done, 1)`` is told each of
    :data:`EXPORT_STEPS` it takes as it starts (``done`` 0) and ends (1).

    Example:
        >>> import geoseg
        >>> m = geoseg.create_model(bands=3, classes=2, chip_size=64, encoder_depth=3, decoder_channels=(16, 8, 8))
        >>> export_onnx(m, "/tmp/doc_model.onnx", overwrite=True).name
        'doc_model.onnx'
    """
    from geoseg.io.paths import check_output
    from geoseg.model.factory import Model, check_chip_size, load_model
    from geoseg.model.quantize import calibration_chips, check_quantize

    step = _Steps(progress)
    step("load")
    kind = check_quantize(quantize, calibration)  # usage errors first, before the output or the model is looked at
    _check_request(output, smooth, chip_size)
    inputs = ([] if isinstance(model, Model) else [model]) + ([] if calibration is None else [calibration])
    out = check_output(output, inputs, overwrite)
    if not isinstance(model, Model) and Path(str(model)).suffix.lower() == ".onnx":
        raise ModelError(
            f"{model} is already an ONNX file: export takes a geoseg checkpoint (.pt) or default; to make an INT8 "
            "file, export the checkpoint it came from with --quantize int8"
        )
    net = model if isinstance(model, Model) else load_model(model)
    size = int(net.card.chip_size if chip_size is None else chip_size)
    check_chip_size(size, net.output_stride, "--chip-size")
    card, notes = export_card(net.card, size)
    calibrated: list[str] = []  # the calibration's warnings, kept in the card
    chips = None
    if calibration is not None:
        step("calibrate")
        chips = calibration_chips(calibration, card, size, notes=calibrated)  # read first: a bad scene writes nothing
    for line in [] if quiet else notes:  # once the inputs are accepted: a refused export says one line
        log.warning("%s", line)
    _write_export(out, net, card, size, opset, smooth, (kind, chips, calibration, calibrated), step)
    return out


EXPORT_STEPS = ("load", "calibrate", "export", "quantize", "write")
"""The steps :func:`export_onnx` tells its ``progress``, in order: the model read and the output checked; the
calibration chips read (with a calibration scene); the graph traced; the int8 model made (with ``quantize``); the
metadata written and the file put in place."""


class _Steps:
    """Tells ``progress`` a step's start (``done`` 0) and, when the next starts or the last is over, its end (1)."""

    def __init__(self, progress: Callable[[str, int, int], None] | None) -> None:
        self.progress = progress
        self.current: str | None = None

    def __call__(self, stage: str | None) -> None:
        if self.progress is None:
            return
        if self.current is not None:
            self.progress(self.current, 1, 1)
        self.current = stage
        if stage is not None:
            self.progress(stage, 0, 1)


def _write_export(
    out: Path, net: Any, card: Any, size: int, opset: int, smooth: int, quantized: tuple[Any, ...], step: _Steps
) -> None:
    """The ONNX file of :func:`export_onnx`, written under a temporary name and put in place."""
    from geoseg.io.outputs import atomic_output

    kind, chips, calibration, calibrated = quantized
    with atomic_output(out) as tmp:
        step("export")
        _export_graph(net, size, tmp, opset)
        card_json = json.loads(card.to_json())
        meta = {**deepness_metadata(card, size, smooth), CARD_KEY: card_json, "geoseg_input_scale": INPUT_SCALE}
        if kind is not None:
            write_metadata(tmp, meta, (card.num_classes, size, size))
            step("quantize")
            card_json["provenance"]["quantization"] = _quantize(tmp, chips, calibration) | {"calibration_warnings": calibrated}
        step("write")
        write_metadata(tmp, meta, (card.num_classes, size, size))
    step(None)  # the file is in place


def _export_graph(net: Any, size: int, path: Path, opset: int) -> None:
    """Trace ``net`` on the CPU in eval mode into ``path``; it is then put back on its device and in its modes."""
    import torch

    device = next(iter([*net.parameters(), *net.buffers()]), torch.empty(0)).device
    modes = [(module, module.training) for module in net.modules()]
    try:
        _torch_export(_folded(net.cpu().eval()), torch.zeros(1, net.card.num_bands, size, size), path, opset)
    finally:
        net.to(device)
        for module, training in modes:
            module.training = training


def _check_request(output: str | os.PathLike, smooth: int, chip_size: int | None) -> None:
    """Option values wrong for any model: a usage error before anything is read."""
    if Path(output).suffix.lower() != ".onnx":
        raise OptionError(f"export output {output} must end in .onnx")
    if smooth < 0:
        raise OptionError(f"--smooth {smooth} must be 0 or more pixels")
    if chip_size is not None:  # a size off the encoder's stride depends on the model: checked once it is loaded
        check_positive_chip_size(chip_size)


def _torch_export(folded: Any, example: Any, path: Path, opset: int) -> None:
    """The TorchScript exporter on purpose: one self-contained file at an opset Deepness and GeoDeep load."""
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            folded,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["probabilities"],
            dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def _quantize(path: Path, chips: np.ndarray | None, calibration: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Quantize the float export at ``path`` in place; the card's record of it.

    The calibration chips are normalized as predict normalizes them and turned
    into graph input by the same :meth:`OnnxModel.to_graph_input` predict uses.
    """
    from geoseg.model.quantize import quantize_file

    if chips is None:
        log.warning(
            "no --calibration: dynamic int8 quantization (no data needed, but it ran about 3.5x slower than the float model "
            "on the CPU measured); give --calibration SCENE for static quantization, the fast one"
        )
        return quantize_file(path, None, None)
    graph_input = load_onnx(path).to_graph_input(chips)
    return quantize_file(path, graph_input, Path(calibration).name if calibration is not None else None)


class OnnxModel:
    """An exported model run by onnxruntime: its card, session and static chip size."""

    def __init__(self, path: Path, session: Any, card: ModelCard, chip_size: int, input_scale: float | None) -> None:
        self.path, self.session, self.card = path, session, card
        self.chip_size, self.input_scale = chip_size, input_scale  # None: the graph takes normalized values
        self.input_name = session.get_inputs()[0].name
        self.output_stride = chip_size  # the only chip size the file takes
        self.binary = binary_threshold(card)  # a Deepness file's one sigmoid channel: its seg_thresh (the runner's)
        mean, std = card.normalization()
        scale = 1.0 if input_scale is None else input_scale
        self._gain = (std * scale).astype(np.float32)[:, None, None]
        self._offset = (mean * scale).astype(np.float32)[:, None, None]

    def normalize(self, array: np.ndarray) -> np.ndarray:
        """Same values as :meth:`geoseg.Model.normalize` (the runner turns them back into graph input)."""
        return self.card.normalize(array)

    def to_graph_input(self, normalized: np.ndarray) -> np.ndarray:
        """Normalized chips in the graph's input units (geoseg exports: raw × input scale)."""
        if self.input_scale is None:
            return normalized.astype(np.float32, copy=False)
        return (normalized * self._gain + self._offset).astype(np.float32, copy=False)


def onnx_device(device: str = "auto") -> str:
    """``auto`` becomes ``cuda`` when onnxruntime has its CUDA provider, else ``cpu`` (without importing torch).

    Example:
        >>> onnx_device("cpu")
        'cpu'
    """
    import onnxruntime as ort

    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "auto":
        return "cuda" if cuda else "cpu"
    if device.startswith("cuda") and not cuda:
        raise InputError(
            f"--device {device}: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu); use --device cpu or auto"
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise OptionError(f"--device {device!r} is not known: use auto, cpu or cuda")
    return device


def _providers(device: str) -> list[Any]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_onnx(path: str | os.PathLike, device: str = "cpu", tensorrt: str | None = None) -> OnnxModel:
    """Open an ONNX model with onnxruntime; geoseg's card, or Deepness metadata alone, describe it.

    ``tensorrt`` (a precision: fp32, fp16 or bf16) runs it with TensorRT
    first on the GPU (see :func:`tensorrt_provider`), CUDA for what TensorRT
    does not take. On a 2-core CPU the session runs each call on one thread
    (:data:`~geoseg.core.threads.LANE_THREADS`) and predict runs two calls
    at once; a caller running calls one after another uses one core there:
    run them with :func:`~geoseg.core.threads.run_ahead` and
    ``OnnxRunner.lanes``, as predict does. Where a container's CPU quota
    leaves fewer cores than the machine has, each call runs on as many
    threads as it allows (:func:`~geoseg.core.limits.usable_cores`).
    """
    p = Path(path)
    check_input_file(p, "model file", "give a .onnx file exported by geoseg or for Deepness", ModelError)
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(f"{p}: running ONNX models needs onnxruntime: pip install 'geoseg[onnx]'") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = _providers(device) if tensorrt is None else [tensorrt_provider(p, tensorrt), *_providers("cuda")]
    if providers == ["CPUExecutionProvider"] and threads.LANE_THREADS:  # calls at once (OnnxRunner.lanes), or a quota
        options.intra_op_num_threads = threads.LANE_THREADS
    try:
        session = ort.InferenceSession(str(p), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for damaged files
        raise ModelError(f"{p} is not an ONNX model onnxruntime can load ({str(exc).splitlines()[0]})") from None
    if tensorrt is not None and session.get_providers()[0] != "TensorrtExecutionProvider":
        raise ModelError(  # onnxruntime falls back to CUDA quietly when TensorRT cannot take the model
            f"{p}: TensorRT could not take this model (onnxruntime fell back to {session.get_providers()[0]}); "
            "run it with --backend onnx, or see onnxruntime's messages above"
        )
    bands, size, outputs = _graph_shape(p, session)
    meta = session.get_modelmeta().custom_metadata_map
    card, scale = _card_from_metadata(p, meta, bands, size, outputs)
    return OnnxModel(p, session, card, size, scale)


def _graph_shape(path: Path, session: Any) -> tuple[int, int, int | None]:
    """Bands and chip size of the one ``(batch, bands, N, N)`` input; output channels when static."""
    inputs = session.get_inputs()
    shape = inputs[0].shape if inputs else []
    static = [isinstance(v, int) and not isinstance(v, bool) for v in shape]
    if len(inputs) != 1 or len(shape) != 4 or not all(static[1:]) or shape[-1] != shape[-2]:
        raise ModelError(
            f"{path}: expected one input of shape (batch, bands, N, N) with static bands and N, "
            f"got {[i.shape for i in inputs]}; export the model with a static chip size"
        )
    if not 0 < shape[-1] <= MAX_CHIP_SIZE or not 0 < shape[1] <= MAX_BANDS:
        raise ModelError(
            f"{path}: its input is {shape[1]} bands of {shape[-1]} x {shape[-1]} pixels; geoseg takes at most "
            f"{MAX_BANDS} bands and chips of at most {MAX_CHIP_SIZE} pixels: export the model with a smaller chip size"
        )
    out = session.get_outputs()[0].shape
    channels = out[1] if len(out) == 4 and isinstance(out[1], int) and out[1] > 0 else None
    return int(shape[1]), int(shape[-1]), channels


def _card_from_metadata(
    path: Path, meta: dict[str, str], bands: int, size: int, outputs: int | None
) -> tuple[ModelCard, float | None]:
    if CARD_KEY not in meta:
        return card_from_deepness(path, meta, bands, size, outputs), None
    card = ModelCard.from_json(meta[CARD_KEY], source=str(path))
    scale = decoded(path, meta, "geoseg_input_scale")
    scale = 1.0 if scale is None else scale
    if not is_real(scale) or not scale > 0:
        raise ModelError(
            f"{path}: metadata geoseg_input_scale is {show(scale)}: it must be a finite number above 0 such as "
            f"{INPUT_SCALE}; export the model again with geoseg export"
        )
    if card.num_bands != bands or outputs not in (None, card.num_classes):
        raise ModelError(
            f"{path}: its card lists {card.num_bands} bands and {card.num_classes} classes but the graph takes "
            f"{bands} bands and gives {outputs} channels; export the model again with geoseg export"
        )
    card.chip_size = size
    return card, float(scale)
