"""Deepness / GeoDeep metadata of ONNX files: what geoseg writes, and the checked card of a file that has only it.

Deepness stores each value JSON-encoded under its key (``model_type``,
``class_names``, ``standardization_mean``...). Every key geoseg reads is
checked for its type and value; a bad one is refused with one line naming the
file, the key and what it must be.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from geoseg.core.classes import NODATA, ClassInfo, class_colors
from geoseg.core.errors import ModelError
from geoseg.model.card import ModelCard, generic_band_names
from geoseg.model.validate import field_error, is_real, is_whole

__all__ = ["DEEPNESS_KEYS", "INPUT_SCALE", "card_from_deepness", "deepness_metadata"]

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
    than that many pixels (0: the model's map as it is).

    Example:
        >>> card = ModelCard("unet", "resnet18", ["B04"], [ClassInfo(0, "water", "#0000ff")], pixel_size=10.0,
        ...                  overlap="64px")
        >>> meta = deepness_metadata(card, 256)
        >>> meta["model_type"], meta["resolution"], meta["tiles_overlap"], meta["class_names"]
        ('Segmentor', 1000.0, 25, {'0': 'water'})
    """
    from geoseg.core.grid import parse_overlap

    overlap_pct = round(100 * parse_overlap(card.overlap, chip_size) / chip_size)
    return {
        "model_type": "Segmentor",
        "class_names": {str(c.id): c.name for c in card.classes},
        "resolution": float(card.pixel_size * 100) if card.pixel_size else 100.0,
        "tiles_size": int(chip_size),
        "tile_size": int(chip_size),
        "tiles_overlap": int(overlap_pct),
        "standardization_mean": [0.0] * card.num_bands,
        "standardization_std": [1.0] * card.num_bands,
        "seg_thresh": 0.0 if card.num_classes > 1 else 0.5,
        "seg_small_segment": int(smooth),
    }


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


def card_from_deepness(path: Path, meta: dict[str, str], bands: int, size: int, outputs: int | None) -> ModelCard:
    """The card of an ONNX file that carries Deepness metadata only (checked; one warning states the assumptions).

    Deepness feeds ``(raw / 255 - m) / s = (raw - 255 m) / (255 s)``: geoseg's
    normalization with these values, on a graph that takes raw values.

    Example:
        >>> meta = {"model_type": '"Segmentor"', "class_names": '{"0": "a", "1": "b"}'}
        >>> card_from_deepness(Path("m.onnx"), meta, 3, 64, 2).std
        [255.0, 255.0, 255.0]
    """
    missing = [k for k in ("model_type", "class_names") if k not in meta]
    if missing:
        raise ModelError(
            f"{path} carries neither a geoseg card nor Deepness metadata (missing "
            f"{', '.join(missing)}): export it with geoseg export or add Deepness metadata"
        )
    values = _checked(path, meta)
    _check_tile_size(path, values, size)
    resolution = 100.0 if values["resolution"] is None else float(values["resolution"])
    overlap = 15.0 if values["tiles_overlap"] is None else float(values["tiles_overlap"])
    card = ModelCard(
        "onnx",
        "onnx",
        generic_band_names(bands),
        _classes(path, values["class_names"], outputs),
        chip_size=size,
        overlap=str(min(0.9, overlap / 100)),
        mean=_per_band(path, values["standardization_mean"], "standardization_mean", bands, 0.0),
        std=_per_band(path, values["standardization_std"], "standardization_std", bands, 1.0 / INPUT_SCALE),
        pixel_size=resolution / 100,
        name=path.stem,
    )
    logging.getLogger("geoseg").warning(  # after every check: a refused file gets one line
        "%s has Deepness metadata only: assumed bands in scene order, input raw/255 standardized with its "
        "standardization_mean/std, %s cm pixels, and a softmax output",
        path,
        resolution,
    )
    return card
