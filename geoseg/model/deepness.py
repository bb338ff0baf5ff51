"""Deepness / GeoDeep metadata of ONNX files: what geoseg writes, and the checked card of a file that has only it.

Deepness stores each value JSON-encoded under its key (``model_type``,
``class_names``, ``standardization_mean``...). Every key geoseg reads is
checked for its type and value; a bad one is refused with one line naming the
file, the key and what it must be.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.classes import NODATA, ClassInfo, class_colors
from geoseg.core.errors import ModelError
from geoseg.model.card import ModelCard, generic_band_names
from geoseg.model.validate import field_error, is_real, is_whole

__all__ = [
    "BINARY_KEY",
    "DEEPNESS_KEYS",
    "INPUT_SCALE",
    "binary_probabilities",
    "binary_threshold",
    "card_from_deepness",
    "deepness_metadata",
    "export_card",
    "write_metadata",
]

INPUT_SCALE = 1.0 / 255.0
DEEPNESS_KEYS = {  # key: type the value must have after json.loads
    "model_type": str,
    "class_names": dict,
    "resolution": (int, float),
    "tiles_size": int,
    "tile_size": int,
    "tiles_overlap": (int, float),
    "standardization_mean": list,
    "standardization_std": list,
    "seg_thresh": (int, float),
    "seg_small_segment": int,
}
BINARY_KEY = "binary_output"
"""Card provenance key of a Deepness file with one (sigmoid) output channel: ``{"seg_thresh": t}``."""
_FIX = "fix the file's Deepness metadata or export the model again with geoseg export"
_RULES: dict[str, tuple[Any, str]] = {  # key: (test of the decoded value, what it must be)
    "model_type": (lambda v: v == "Segmentor", '"Segmentor" (geoseg runs segmentation models only)'),
    "class_names": (lambda v: isinstance(v, dict) and v, 'an object of class id: name, such as {"0": "water"}'),
    "resolution": (lambda v: is_real(v) and v > 0, "a number of centimetres per pixel above 0, such as 1000"),
    "tiles_size": (lambda v: is_whole(v) and v > 0, "a whole number of pixels above 0"),
    "tile_size": (lambda v: is_whole(v) and v > 0, "a whole number of pixels above 0"),
    "tiles_overlap": (lambda v: is_real(v) and 0 <= v < 100, "a percentage from 0 to below 100"),
    "standardization_mean": (lambda v: _numbers(v, positive=False), "a list of finite numbers, one per band"),
    "standardization_std": (lambda v: _numbers(v, positive=True), "a list of finite positive numbers, one per band"),
    "seg_thresh": (lambda v: is_real(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "seg_small_segment": (lambda v: is_whole(v) and v >= 0, "a whole number of pixels, 0 or more"),
}


def _numbers(value: object, positive: bool) -> bool:
    return isinstance(value, list) and bool(value) and all(is_real(v) and (not positive or v > 0) for v in value)


def deepness_metadata(card: ModelCard, chip_size: int, smooth: int = 0) -> dict[str, Any]:
    """The Deepness / GeoDeep metadata of a model exported with chip size ``chip_size``.

    ``seg_thresh`` is 0 for geoseg's softmax heads of two or more classes:
    Deepness and GeoDeep zero every probability below it before the argmax,
    so any other value turns pixels where no class reaches it into class 0.
    ``seg_small_segment`` (``smooth``) asks them to remove segments smaller
    than that many pixels (0: the model's map as it is). ``resolution`` (cm)
    is left out for a model without a pixel size: Deepness then uses the
    resolution set in its dialog (GeoDeep assumes 10 cm).

    Example:
        >>> card = ModelCard("unet", "resnet18", ["B04"], [ClassInfo(0, "water", "#0000ff")], pixel_size=10.0,
        ...                  overlap="64px")
        >>> meta = deepness_metadata(card, 256)
        >>> meta["model_type"], meta["resolution"], meta["tiles_overlap"], meta["class_names"]
        ('Segmentor', 1000.0, 25, {'0': 'water'})
        >>> "resolution" in deepness_metadata(dataclasses.replace(card, pixel_size=None), 256)
        False
    """
    from geoseg.core.grid import parse_overlap

    overlap_pct = round(100 * parse_overlap(card.overlap, chip_size) / chip_size)
    resolution = {"resolution": float(card.pixel_size * 100)} if card.pixel_size else {}
    return {
        "model_type": "Segmentor",
        "class_names": {str(c.id): c.name for c in card.classes},
        **resolution,
        "tiles_size": int(chip_size),
        "tile_size": int(chip_size),
        "tiles_overlap": int(overlap_pct),
        "standardization_mean": [0.0] * card.num_bands,
        "standardization_std": [1.0] * card.num_bands,
        "seg_thresh": 0.0 if card.num_classes > 1 else 0.5,
        "seg_small_segment": int(smooth),
    }


def export_card(card: ModelCard, chip_size: int) -> tuple[ModelCard, list[str]]:
    """The card an export with chip size ``chip_size`` carries, and one warning line per thing its file cannot say.

    A pixel overlap that does not fit the chip (``64px`` for 64 px chips) is
    scaled to the same share of the chip as on the model's own chips
    (``16px`` for a 256 px model); a model without a pixel size gets no
    ``resolution`` key (:func:`deepness_metadata`).

    Example:
        >>> card = ModelCard("unet", "resnet18", ["B04"], [ClassInfo(0, "water", "#0000ff")], chip_size=256,
        ...                  overlap="64px", pixel_size=10.0)
        >>> exported, notes = export_card(card, 64)
        >>> exported.overlap, exported.chip_size, "overlap 64px does not fit 64 px chips: the file gets 16px" in notes[0]
        ('16px', 64, True)
    """
    from geoseg.core.options import Overlap

    overlap, notes = Overlap.parse(card.overlap), []
    if overlap.px is not None and overlap.px >= chip_size:
        scaled = f"{overlap.px * chip_size // max(card.chip_size, overlap.px + 1)}px"
        notes.append(
            f"model {card.name}: its overlap {overlap} does not fit {chip_size} px chips: the file gets {scaled}, the "
            f"same share of the chip as {overlap} of its {card.chip_size} px chips (predict --overlap sets another)"
        )
        overlap = Overlap.parse(scaled)
    if not card.pixel_size:
        notes.append(
            f"model {card.name} has no pixel size: the file carries no Deepness/GeoDeep resolution, so Deepness uses "
            "the resolution set in its dialog and GeoDeep assumes 10 cm pixels; set it there to the scenes' pixel size"
        )
    return dataclasses.replace(card, chip_size=int(chip_size), overlap=str(overlap)), notes


def write_metadata(path: Path, values: dict[str, Any], output_shape: tuple[int, int, int]) -> None:
    """Store ``values`` as JSON metadata of the ONNX file ``path`` (replacing its metadata) and make its output static
    but for the batch: ``(batch, K, S, S)``. (The exporter names the output's spatial axes like the batch axis;
    Deepness checks that they are equal.)

    Example:
        >>> write_metadata(Path("model.onnx"), {"model_type": "Segmentor"}, (2, 256, 256))  # doctest: +SKIP
    """
    import onnx

    proto = onnx.load(str(path))
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    for dim, value in zip(list(dims)[1:], output_shape):
        dim.Clear()
        dim.dim_value = value
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.producer_name = "geoseg"
    onnx.save(proto, str(path))


def decoded(path: Path, meta: dict[str, str], key: str) -> Any:
    """The JSON-decoded value of metadata ``key`` (``None`` when absent); refused when it is not JSON.

    Example:
        >>> decoded(Path("m.onnx"), {"resolution": "1000"}, "resolution")
        1000
    """
    if key not in meta:
        return None
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError):
        raise field_error(
            str(path), key, meta[key], "JSON-encoded, as Deepness writes it", _FIX, what="Deepness metadata"
        ) from None


def _checked(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    """Every Deepness key present, decoded and checked against :data:`_RULES`."""
    values = {}
    for key, (test, must) in _RULES.items():
        value = decoded(path, meta, key)
        if key in meta and not test(value):
            raise field_error(str(path), key, value, must, _FIX, what="Deepness metadata")
        values[key] = value
    return values


def _check_tile_size(path: Path, values: dict[str, Any], size: int) -> None:
    """Both spellings of the tile size, where present, are the graph's chip size: ``tile_size`` (what Deepness
    reads) and ``tiles_size`` (what some Deepness model-zoo exports write); a peer feeds chips of that size.

    Example:
        >>> _check_tile_size(Path("m.onnx"), {"tiles_size": 256, "tile_size": None}, 256)
    """
    for key in ("tiles_size", "tile_size"):
        if values.get(key) is not None and values[key] != size:
            raise field_error(
                str(path), key, values[key], f"the graph's chip size, {size} pixels", _FIX, what="Deepness metadata"
            )


def _classes(path: Path, names: dict[str, Any], outputs: int | None) -> list[ClassInfo]:
    """The class table of ``class_names``: ids 0..K-1, names non-empty, K = the output channels when static."""
    where, src = "Deepness metadata", str(path)
    for key, name in names.items():
        if not (key.isascii() and key.isdigit() and len(key) <= 3):
            raise field_error(src, "class_names", key, f"keyed by class ids 0 to {NODATA - 1}", _FIX, what=where)
        if not isinstance(name, str) or not name.strip():
            raise field_error(src, f"class_names[{json.dumps(key)}]", name, "a non-empty class name", _FIX, what=where)
    ids = sorted(int(k) for k in names)
    if outputs is not None and len(ids) != outputs:
        raise field_error(
            src, "class_names", names, f"one name per output channel: the graph has {outputs}, not {len(ids)}", _FIX, what=where
        )
    if ids != list(range(len(ids))) or len(ids) > NODATA:
        raise field_error(src, "class_names", ids, f"keyed 0 to K-1 (K at most {NODATA}), each id once", _FIX, what=where)
    by_id = {int(k): v for k, v in names.items()}
    colors = class_colors([by_id[i] for i in ids])
    return [ClassInfo(i, by_id[i], colors[i]) for i in ids]


def _per_band(path: Path, values: list[float] | None, key: str, bands: int, default: float) -> list[float]:
    """Deepness broadcasts one value to every band; otherwise one value per band."""
    if values is None:
        return [default] * bands
    if len(values) not in (1, bands):
        raise field_error(
            str(path), key, values, f"one number, or one per band ({bands}), not {len(values)}", _FIX, what="Deepness metadata"
        )
    return [float(v) / INPUT_SCALE for v in (values * bands if len(values) == 1 else values)]


def _binary_classes(path: Path, classes: list[ClassInfo]) -> list[ClassInfo]:
    """A one-channel (sigmoid) output's two classes, as Deepness names them: ``background`` and the one class name
    (or both names where ``class_names`` gives two)."""
    if len(classes) == 2:
        return classes
    if len(classes) != 1:
        must = 'one name for a one-channel output, such as {"0": "field"} (or two: background and the class)'
        raise field_error(str(path), "class_names", [c.name for c in classes], must, _FIX, what="Deepness metadata")
    names = ["background", classes[0].name]
    return [ClassInfo(i, name, color) for i, (name, color) in enumerate(zip(names, class_colors(names)))]


def binary_threshold(card: ModelCard) -> float | None:
    """The ``seg_thresh`` of a card read from a Deepness file with one (sigmoid) output channel; None otherwise.

    Example:
        >>> meta = {"model_type": '"Segmentor"', "class_names": '{"0": "field"}', "seg_thresh": "0.3"}
        >>> binary_threshold(card_from_deepness(Path("m.onnx"), meta, 3, 64, 1))
        0.3
    """
    value = card.provenance.get(BINARY_KEY)
    return float(value["seg_thresh"]) if isinstance(value, dict) and is_real(value.get("seg_thresh")) else None


def binary_probabilities(output: np.ndarray, threshold: float, source: object = "model") -> np.ndarray:
    """Probabilities ``(B, 2, H, W)`` of background and the class from a one-channel output ``(B, 1, H, W)``.

    As Deepness and GeoDeep read it, a pixel is the class where its value is
    at least ``threshold`` (``seg_thresh``). The value ``p`` becomes ``q``
    piecewise linearly, ``threshold`` mapped to one half (0 and 1 kept), so
    the argmax of ``[1 - q, q]`` is that class map; confidence and
    probabilities are then of ``q`` (``p`` itself at threshold 0.5).

    Example:
        >>> out = np.array([0.1, 0.3, 0.6], np.float32).reshape(1, 1, 1, 3)
        >>> binary_probabilities(out, 0.3).argmax(axis=1).tolist()
        [[[0, 1, 1]]]
    """
    if output.ndim != 4 or output.shape[1] != 1:
        raise ModelError(
            f"{source}: its Deepness metadata names one class (a one-channel sigmoid output) but the graph gave "
            f"shape {list(output.shape)}: give one class name per output channel"
        )
    p = np.clip(output[:, 0], 0.0, 1.0).astype(np.float32, copy=False)
    t = float(threshold)
    low = p * np.float32(0.5 / t) if t > 0 else p
    high = np.float32(0.5) + (p - np.float32(t)) * np.float32(0.5 / (1 - t)) if t < 1 else np.ones_like(p)
    q = np.where(p < t, low, np.maximum(high, np.nextafter(np.float32(0.5), np.float32(1))))  # p == t: the class
    return np.ascontiguousarray(np.stack([1 - q, q], axis=1), dtype=np.float32)


def card_from_deepness(path: Path, meta: dict[str, str], bands: int, size: int, outputs: int | None) -> ModelCard:
    """The card of an ONNX file that carries Deepness metadata only (checked; one warning states the assumptions).

    Deepness feeds ``(raw / 255 - m) / s = (raw - 255 m) / (255 s)``: geoseg's
    normalization with these values, on a graph that takes raw values. A
    file without ``resolution`` has no pixel size (scenes are predicted on
    their own pixels). A one-channel output is a sigmoid, as Deepness reads
    it: two classes, ``background`` and the named class from ``seg_thresh``
    (default 0.5) on (``provenance["binary_output"]``; see
    :func:`binary_probabilities`).

    Example:
        >>> meta = {"model_type": '"Segmentor"', "class_names": '{"0": "a", "1": "b"}'}
        >>> card_from_deepness(Path("m.onnx"), meta, 3, 64, 2).std
        [255.0, 255.0, 255.0]
        >>> [c.name for c in card_from_deepness(Path("m.onnx"), {**meta, "class_names": '{"0": "a"}'}, 3, 64, 1).classes]
        ['background', 'a']
    """
    missing = [k for k in ("model_type", "class_names") if k not in meta]
    if missing:
        raise ModelError(
            f"{path} carries neither a geoseg card nor Deepness metadata (missing "
            f"{', '.join(missing)}): export it with geoseg export or add Deepness metadata"
        )
    values = _checked(path, meta)
    _check_tile_size(path, values, size)
    resolution = None if values["resolution"] is None else float(values["resolution"])
    overlap = 15.0 if values["tiles_overlap"] is None else float(values["tiles_overlap"])
    binary = outputs == 1 or (outputs is None and len(values["class_names"]) == 1)
    classes = _classes(path, values["class_names"], None if binary else outputs)
    threshold = 0.5 if values["seg_thresh"] is None else float(values["seg_thresh"])
    card = ModelCard(
        "onnx",
        "onnx",
        generic_band_names(bands),
        _binary_classes(path, classes) if binary else classes,
        chip_size=size,
        overlap=str(min(0.9, overlap / 100)),
        mean=_per_band(path, values["standardization_mean"], "standardization_mean", bands, 0.0),
        std=_per_band(path, values["standardization_std"], "standardization_std", bands, 1.0 / INPUT_SCALE),
        pixel_size=None if resolution is None else resolution / 100,
        name=path.stem,
        provenance={BINARY_KEY: {"seg_thresh": threshold}} if binary else {},
    )
    output = (
        f"a one-channel sigmoid output ({card.classes[1].name} from seg_thresh {threshold:g} on, else background)"
        if binary
        else "a softmax output"
    )
    pixels = "no pixel size (no resolution: scenes keep their pixels)" if resolution is None else f"{resolution:g} cm pixels"
    logging.getLogger("geoseg").warning(  # after every check: a refused file gets one line
        "%s has Deepness metadata only: assumed bands in scene order, input raw/255 standardized with its "
        "standardization_mean/std, %s, and %s",
        path,
        pixels,
        output,
    )
    return card
