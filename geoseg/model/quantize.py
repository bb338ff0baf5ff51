"""INT8 ONNX files: onnxruntime's quantizer on an exported float model, calibrated on chips of a real scene.

``geoseg export --quantize int8 --calibration SCENE`` quantizes statically:
weights and activations become 8-bit integers, the activations' ranges
measured on :data:`CALIBRATION_CHIPS` chips spread over SCENE, read the way
``geoseg predict`` reads them (band matching, the model's pixel size,
normalization, nodata as the band mean). Without a calibration scene it falls back to dynamic
quantization (weights int8, activations quantized per call), which needs no
data but, for convolutions, runs slower than the float model on the CPUs
measured (BENCHMARKS.md). The graph's input scaling, its first convolution
(its input, all bands with their outliers, would share one 8-bit scale), the
last convolution (the logits), the softmax, and the layers at fine
resolution stay in float (:func:`float_nodes`): the encoder's at half the
input resolution or finer, the decoder's at a quarter or finer. Those decide
where class boundaries fall; quantized, they cost 2-4 points of pixel
agreement with the float model on a held-back half of the bundled sample.
The calibration sees each chip also flipped and rotated (:data:`CALIBRATION_VIEWS`),
so the measured ranges cover layouts the chips lack.

Only :mod:`geoseg.core` and :mod:`geoseg.io` are used to read the scene, so
the model layer stays below inference; onnxruntime is imported only here,
inside the functions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.bands import select_bands
from geoseg.core.errors import BandMismatchError, GeosegError, InputError, ModelError, OptionError
from geoseg.core.grid import Chip, Grid, make_grid
from geoseg.io.pixels import pixel_sizes_m, shown_sizes, sizes_within
from geoseg.io.raster import gdal_env, open_scene, read_window, scene_has_mask
from geoseg.io.resample import open_resampled
from geoseg.model.card import ModelCard

__all__ = ["CALIBRATION_CHIPS", "CALIBRATION_VIEWS", "FLOAT_DECODER_SCALE", "FLOAT_ENCODER_SCALE", "MIN_CALIBRATION_CHIPS"]
__all__ += ["MIN_VALID_SHARE", "QUANTIZE_TYPES", "calibration_chips", "calibration_views", "check_quantize"]
__all__ += ["float_nodes", "quantize_file", "spread_order"]

log = logging.getLogger("geoseg")

QUANTIZE_TYPES = ("int8",)
"""What ``--quantize`` takes."""

CALIBRATION_CHIPS = 16
"""Chips of the calibration scene that static quantization measures activation ranges on (fewer when the scene has
fewer chips with valid pixels), each in :data:`CALIBRATION_VIEWS` views. The bundled 512 px sample has 9 chips and its
top half 3; calibrated on those 3, the bundled model's int8 map agreed with the float one on 99.3% of the held-back
bottom half. Calibration takes 5-15 seconds on 2 CPU cores."""

CALIBRATION_VIEWS = 5
"""Views of each calibration chip the ranges are measured on: as read, flipped left-right and up-down, rotated a
quarter turn each way (square chips). Imagery has no preferred orientation, and the decoder's activations depend on
the layout: calibrated on 3 chips as read (VNNI CPU, the encoder float only at 1/2: the default until 2026-12-01),
the held-back half's activations reached twice the measured range in a decoder block (96.6% agreement with the
float model); with the 5 views, 98.9%; all 8 views gave 98.9-99.0% at 1.6 times the calibration time."""

FLOAT_ENCODER_SCALE = 4
"""Nodes before the graph's coarsest convolution (the encoder) whose output is at ``1 / FLOAT_ENCODER_SCALE`` of
the input's height and width or finer stay float (:func:`float_nodes`). At 2 (11 of the bundled model's 63
convolutions float) the held-back agreement was 98.9% on a CPU with AVX512-VNNI but 97.5% on one without it, where
onnxruntime's 8-bit products can saturate; at 4, 99.3% on both, at the same speed (BENCHMARKS.md)."""

FLOAT_DECODER_SCALE = 4
"""Nodes after the graph's coarsest convolution (the decoder) at ``1 / FLOAT_DECODER_SCALE`` or finer stay float.
With :data:`FLOAT_ENCODER_SCALE` that keeps 17 of the bundled model's 63 convolutions float: 99.3% held-back
agreement, against 94-97% with only the first and last convolutions float, which ran 1.1-1.6x the float model's
speed against 1.1-1.3x (BENCHMARKS.md)."""

MIN_CALIBRATION_CHIPS = 3
"""Fewer calibration chips than this are warned about: 3 chips (the bundled sample's top half, 5 views each) are the
fewest measured to calibrate well (99.3% agreement on the held-back half); one chip of a scene with 9 valid pixels gave
86%."""

MIN_VALID_SHARE = 0.05
"""Calibration chips whose valid pixels are under this share of their pixels are warned about: invalid pixels are
the band mean, so the activation ranges are measured on the few valid ones."""

MAX_UPSAMPLE = 4.0
"""A calibration scene more than this many times coarser than the model is read on its own pixels, as predict does
(``geoseg.inference.checks.MAX_UPSAMPLE``)."""

CALIBRATION_READS = 20 * CALIBRATION_CHIPS
"""At most this many chip windows are read looking for chips with valid pixels (a mostly-nodata scene ends early)."""

CALIBRATION_MB = 256
"""Memory the calibration chips may take: chips larger than 256 px or with many bands are fewer than
:data:`CALIBRATION_CHIPS` (at least one)."""

PER_CHANNEL = True
"""One weight scale per output channel: 0.1-0.3 points more pixel agreement than one per tensor on the bundled model,
no measurable time. Calibration is MinMax (the ranges seen: onnxruntime's augmented graph reduces each tensor to its
min and max, so memory stays small) and the format QDQ: Percentile and Entropy calibration agreed within 0.2 points
of MinMax but keep every activation of every chip in memory (2.9 GB for 16 chips of the bundled model); QOperator
ran no faster."""


def check_quantize(quantize: str | None, calibration: str | os.PathLike[str] | None) -> str | None:
    """The quantization type asked for (``None``: float), refusing unknown types, a calibration scene without a type,
    and a type when onnxruntime is not installed.

    Example:
        >>> check_quantize("INT8", None)
        'int8'
        >>> check_quantize("int4", None)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: --quantize 'int4' is not known: use int8 (or leave it out for a float model)
    """
    if quantize is None or quantize == "":
        if calibration is not None:
            raise OptionError(f"--calibration {calibration} needs --quantize int8: give both, or neither for a float model")
        return None
    kind = str(quantize).strip().lower()
    if kind not in QUANTIZE_TYPES:
        raise OptionError(
            f"--quantize {quantize!r} is not known: use {', '.join(QUANTIZE_TYPES)} (or leave it out for a float model)"
        )
    _quantization()  # installed? (said before the export and the calibration reads)
    return kind


def spread_order(count: int) -> list[int]:
    """Indexes ``0..count-1`` in an order whose every prefix is spread evenly (golden-ratio sequence).

    Example:
        >>> spread_order(8)
        [0, 5, 2, 7, 4, 1, 6, 3]
    """
    keys = (np.arange(count) * 0.6180339887498949) % 1.0
    return [int(i) for i in np.argsort(keys, kind="stable")]


def _spread_chips(grid: Grid) -> Iterator[Chip]:
    """The grid's chips in row-major index order of :func:`spread_order`: any first few lie all over the scene."""
    for index in spread_order(len(grid))[:CALIBRATION_READS]:  # row-major index
        yield grid.chip(*divmod(index, grid.cols))


def calibration_chips(
    scene: str | os.PathLike[str],
    card: ModelCard,
    chip_size: int,
    count: int = CALIBRATION_CHIPS,
    notes: list[str] | None = None,
) -> np.ndarray:
    """Up to ``count`` normalized chips ``(N, C, S, S)`` spread over ``scene``, as predict feeds them to the model.

    Bands are matched like ``geoseg predict`` without ``--bands`` (by name, or
    in order for a scene without descriptions); a scene whose pixel size is
    more than 25% off the model's is read at the model's pixel size, as
    predict reads it (:func:`geoseg.io.resample.open_resampled`; not a scene
    more than 4 times coarser); chips without any valid pixel are skipped;
    invalid pixels are 0 after normalization (the band mean), as in
    :func:`geoseg.inference.batches.iter_batches`. Fewer than
    :data:`MIN_CALIBRATION_CHIPS` chips, or valid pixels under
    :data:`MIN_VALID_SHARE` of theirs, are warned about. Each warning is
    logged and appended to ``notes``.

    Example:
        >>> from geoseg.model.factory import load_model
        >>> card = load_model("default").card
        >>> calibration_chips("data_samples/brandenburg_s2_512.tif", card, 256).shape  # doctest: +SKIP
        (9, 10, 256, 256)
    """
    notes = [] if notes is None else notes
    with gdal_env(), _open_calibration(scene) as ds:
        indexes = _calibration_bands(ds, scene, card, notes)
        with _at_model_size(ds, scene, card, notes) as src:
            grid = make_grid(src.width, src.height, chip_size, card.overlap, src.transform)
            count = max(1, min(count, CALIBRATION_MB * 2**20 // (4 * len(indexes) * chip_size * chip_size)))
            masked, chips, valid_pixels = scene_has_mask(src), [], 0
            for chip in _spread_chips(grid):
                data, valid = read_window(src, chip.window, indexes, masked=masked)
                if not valid.any():
                    continue
                data = card.normalize(data)
                data[:, ~valid] = 0
                chips.append(data)
                valid_pixels += int(valid.sum())
                if len(chips) == count:
                    break
    if not chips:
        raise InputError(
            f"--calibration {scene}: none of its first {min(len(grid), CALIBRATION_READS)} chips has a valid pixel "
            "(all nodata): give a scene with data"
        )
    share = valid_pixels / (len(chips) * chip_size * chip_size)
    if len(chips) < MIN_CALIBRATION_CHIPS or share < MIN_VALID_SHARE:
        _note(
            notes,
            f"--calibration {scene}: only {len(chips)} chip(s) with {100 * share:.1f}% valid pixels to calibrate on "
            f"(under {MIN_CALIBRATION_CHIPS} chips or {100 * MIN_VALID_SHARE:g}% valid): the int8 map may differ from the "
            "float model's on many pixels; calibrate on a larger scene with data",
        )
    return np.stack(chips)


def _note(notes: list[str], line: str) -> None:
    """Log ``line`` as a warning and keep it in ``notes`` (the card's record of the calibration)."""
    log.warning("%s", line)
    notes.append(line)


def _open_calibration(scene: str | os.PathLike[str]) -> Any:
    """The calibration scene opened, its errors naming ``--calibration``."""
    try:
        return open_scene(scene)
    except GeosegError as exc:
        raise type(exc)(f"--calibration: {exc}") from None


def _calibration_bands(ds: Any, scene: str | os.PathLike[str], card: ModelCard, notes: list[str]) -> list[int]:
    """The scene's bands for the model's, matched as predict matches them without ``--bands``."""
    try:
        indexes, note = select_bands(ds.descriptions, card.bands, None, card.bands_are_named, ds.colorinterp)
    except BandMismatchError:
        found = ", ".join(d or "?" for d in ds.descriptions) if any(ds.descriptions) else "no band descriptions"
        raise BandMismatchError(
            f"--calibration {scene}: the model expects {card.num_bands} band(s) [{', '.join(card.bands)}] but the "
            f"scene has {ds.count} ({found}): give a scene with the model's bands, named in its band descriptions "
            f"or exactly {card.num_bands} in the model's order"
        ) from None
    if note:
        _note(notes, f"--calibration {scene}: {note}")
    return indexes


@contextlib.contextmanager
def _at_model_size(ds: Any, scene: str | os.PathLike[str], card: ModelCard, notes: list[str]) -> Iterator[Any]:
    """The scene as predict reads it: at the model's pixel size where its own is more than 25% off (each axis), but
    on its own pixels when it is more than 4 times coarser (each with one warning, as predict's)."""
    sizes = pixel_sizes_m(ds)
    if not card.pixel_size or sizes_within(sizes, card.pixel_size, 0.25):
        yield ds
        return
    differs = f"--calibration {scene}: pixel size {shown_sizes(sizes)} differs from the model's {card.pixel_size:.3g} m"
    if max(sizes) / card.pixel_size > MAX_UPSAMPLE:
        _note(
            notes,
            f"{differs}, more than {MAX_UPSAMPLE:g} times coarser: its chips were read on its own pixels, as predict "
            "reads it; calibrate on a scene like those the model will see",
        )
        yield ds
        return
    _note(notes, f"{differs} by more than 25%: its chips were read resampled to {card.pixel_size:.3g} m, as predict reads it")
    with open_resampled(ds, scene, card.pixel_size)[1] as resampled:
        yield resampled


def _quantization() -> Any:
    """onnxruntime's quantizer, or one line saying what to install."""
    try:
        import onnx  # noqa: F401 - the quantizer needs it too
        from onnxruntime import quantization
    except ImportError:
        raise ModelError("geoseg export --quantize needs onnxruntime and onnx: pip install 'geoseg[onnx]'") from None
    return quantization


def _spatial_sizes(proto: Any) -> tuple[int | None, list[int | None]]:
    """Height x width of the graph input and of each node's first output, where shape inference fixed them (4-D)."""
    shapes = {v.name: v.type.tensor_type.shape.dim for v in (*proto.graph.value_info, *proto.graph.output)}

    def size(dims: Any) -> int | None:
        if dims is None or len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[2:]):
            return None
        return int(dims[2].dim_value * dims[3].dim_value)

    nodes = [size(shapes.get(n.output[0])) if n.output else None for n in proto.graph.node]
    return size(proto.graph.input[0].type.tensor_type.shape.dim), nodes


def float_nodes(proto: Any) -> list[str]:
    """Names of the nodes kept in float: up to the first Conv, from the last Conv on, and the fine-resolution layers.

    The nodes of an exported graph are in topological order: the input
    scaling and normalization come before the first convolution, and the
    last convolution gives the logits the softmax turns into probabilities
    (the class map is their argmax: 8-bit logits would flip near-ties).
    Between them, the graph's coarsest convolutions split it into encoder
    and decoder: nodes before them at ``1 / FLOAT_ENCODER_SCALE`` of the
    input's resolution or finer, and after them at ``1 / FLOAT_DECODER_SCALE``
    or finer, stay float too (output sizes from shape inference; a graph
    whose sizes are not fixed, or that never downsamples, keeps only the
    first and last convolutions float).

    Example:
        >>> import onnx  # doctest: +SKIP
        >>> float_nodes(onnx.load("model.onnx"))[:3]  # doctest: +SKIP
        ['/Mul', '/Add', '/net/encoder/conv1/Conv']
    """
    nodes = list(proto.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if not convs:
        return [n.name for n in nodes]
    keep = [i <= convs[0] or i >= convs[-1] for i in range(len(nodes))]
    full, sizes = _spatial_sizes(proto)
    conv_sizes = [size for i in convs if (size := sizes[i])]
    if full and conv_sizes and min(conv_sizes) < full:
        coarsest = min(conv_sizes)
        coarse = [i for i in convs if sizes[i] == coarsest]
        for i, size in enumerate(sizes):
            if size and size > coarsest:
                fine_before = i < coarse[0] and size * FLOAT_ENCODER_SCALE**2 >= full
                fine_after = i > coarse[-1] and size * FLOAT_DECODER_SCALE**2 >= full
                keep[i] = keep[i] or fine_before or fine_after
    return [n.name for n, kept in zip(nodes, keep, strict=True) if kept]


def calibration_views(chip: np.ndarray) -> list[np.ndarray]:
    """The :data:`CALIBRATION_VIEWS` views of one chip ``(C, H, W)``: as is, flipped, rotated (square chips only).

    Example:
        >>> views = calibration_views(np.arange(4.0).reshape(1, 2, 2))
        >>> [v[0].tolist() for v in views[:2]], views[3][0].tolist()
        ([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 0.0], [3.0, 2.0]]], [[1.0, 3.0], [0.0, 2.0]])
    """
    views = [chip, chip[:, :, ::-1], chip[:, ::-1, :]]
    if chip.shape[1] == chip.shape[2]:
        views += [np.rot90(chip, 1, (1, 2)), np.rot90(chip, -1, (1, 2))]
    return [np.ascontiguousarray(v) for v in views[:CALIBRATION_VIEWS]]


class _Chips:
    """onnxruntime's ``CalibrationDataReader``: each view of each chip (:func:`calibration_views`), one per call."""

    def __init__(self, name: str, chips: np.ndarray) -> None:
        self.items = ({name: view[None]} for chip in chips for view in calibration_views(chip))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.items, None)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizer prints and logs notes to the root logger: keep them off the CLI's output."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def quantize_file(path: Path, graph_input: np.ndarray | None, calibration: str | None) -> dict[str, Any]:
    """Quantize the exported float ONNX file ``path`` to int8 in place; what was done, for the model card.

    ``graph_input``: calibration chips in the graph's input units (static
    quantization), or ``None`` for dynamic quantization. The file is first
    pre-processed as onnxruntime recommends (shape inference, graph
    optimization). Metadata is not kept: the caller writes it again.

    Example:
        >>> quantize_file(Path("model.onnx"), None, None)["method"]  # doctest: +SKIP
        'dynamic'
    """
    q = _quantization()
    import onnx

    with tempfile.TemporaryDirectory(prefix="geoseg-quantize-", ignore_cleanup_errors=True) as tmp, _quiet():
        pre = Path(tmp) / "pre.onnx"
        q.shape_inference.quant_pre_process(str(path), str(pre))
        proto = onnx.load(str(pre))
        kept = set(float_nodes(proto))
        options = {"nodes_to_exclude": sorted(kept), "per_channel": PER_CHANNEL, "weight_type": q.QuantType.QInt8}
        if graph_input is None:
            q.quantize_dynamic(str(pre), str(path), **options)
        else:
            q.quantize_static(
                str(pre),
                str(path),
                _Chips(proto.graph.input[0].name, graph_input),
                quant_format=q.QuantFormat.QDQ,
                activation_type=q.QuantType.QUInt8,
                calibrate_method=q.CalibrationMethod.MinMax,
                **options,
            )
    return {
        "type": "int8",
        "method": "dynamic" if graph_input is None else "static",
        "calibration": calibration,
        "calibration_chips": 0 if graph_input is None else int(len(graph_input)),
        "format": "QDQ" if graph_input is not None else "QOperator",
        "per_channel": PER_CHANNEL,
        "calibration_views": 0 if graph_input is None else len(calibration_views(graph_input[0])),
        "float_convs": sum(n.op_type == "Conv" and n.name in kept for n in proto.graph.node),
        "convs": sum(n.op_type == "Conv" for n in proto.graph.node),
    }
