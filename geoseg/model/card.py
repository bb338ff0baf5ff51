"""The model card: everything predict needs to know about a model, as plain JSON.

A checkpoint is this card plus the weights (see :mod:`geoseg.model.checkpoint`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from geoseg.core.classes import ClassInfo, default_colors
from geoseg.core.errors import ChipSizeError, ModelError
from geoseg.model.validate import card_fields, field_error, is_real, validate_card

__all__ = [
    "CARD_FORMAT",
    "DOMAIN_PERCENTILES",
    "ClassInfo",
    "ModelCard",
    "check_chip_size",
    "check_domain",
    "default_colors",
    "generic_band_names",
    "valid_chip_sizes",
]

CARD_FORMAT = "geoseg-model/1"
DOMAIN_PERCENTILES = (1, 50, 99)
"""Percentiles of the training pixels kept per band in ``provenance["domain"]["percentiles"]`` (keys ``p1``, ...)."""

_GENERIC_BAND = re.compile(r"^band_\d+$")


def generic_band_names(count: int) -> list[str]:
    """Names given to bands when a model is created without band names.

    Example:
        >>> generic_band_names(3)
        ['band_1', 'band_2', 'band_3']
    """
    return [f"band_{i + 1}" for i in range(count)]


@dataclass
class ModelCard:
    """Self-description of a geoseg model.

    ``mean`` and ``std`` normalize each input band (``(x - mean) / std``);
    ``None`` means the raw values go to the model. ``pixel_size`` is in metres
    (``None`` when unknown). ``params`` are extra keyword arguments for
    ``smp.create_model``.
    """

    arch: str
    encoder: str
    bands: list[str]
    classes: list[ClassInfo]
    chip_size: int = 256
    overlap: str = "0.125"
    mean: list[float] | None = None
    std: list[float] | None = None
    pixel_size: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    name: str = "geoseg-model"
    provenance: dict[str, Any] = field(default_factory=dict)
    format: str = CARD_FORMAT

    @property
    def num_bands(self) -> int:
        """Number of input bands."""
        return len(self.bands)

    @property
    def num_classes(self) -> int:
        """Number of classes (output channels)."""
        return len(self.classes)

    @property
    def bands_are_named(self) -> bool:
        """False when the bands carry only generic names (``band_1``...)."""
        return not all(_GENERIC_BAND.match(b) for b in self.bands)

    @property
    def quantization(self) -> dict[str, Any] | None:
        """How an exported ONNX file was quantized (``provenance["quantization"]``); None for a float model.

        Example:
            >>> ModelCard("unet", "resnet18", ["B04"], [ClassInfo(0, "water", "#0000ff")]).quantization is None
            True
        """
        value = self.provenance.get("quantization")
        return value if isinstance(value, dict) else None

    @property
    def domain(self) -> dict[str, Any] | None:
        """Where and on what the model was trained (``provenance["domain"]``); None for older model files.

        Keys: ``scenes`` (``name``, ``bbox`` [west, south, east, north] in EPSG:4326, ``date`` or null),
        ``bbox`` (all scenes), ``percentiles`` (``p1``, ``p50``, ``p99``: one value per band of the
        training pixels), ``pixels`` (how many were sampled) and ``validation_confidence`` (mean winning
        probability on the validation pixels at the best epoch, or null).

        Example:
            >>> card = ModelCard("unet", "resnet18", ["B04"], [ClassInfo(0, "water", "#0000ff")])
            >>> card.domain is None
            True
            >>> card.provenance["domain"] = {"percentiles": {"p1": [1.0], "p50": [5.0], "p99": [9.0]}}
            >>> card.domain["percentiles"]["p50"]
            [5.0]
        """
        value = self.provenance.get("domain")
        return value if isinstance(value, dict) else None

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and std as float64 arrays (0 and 1 when the model takes raw values)."""
        mean = np.zeros(self.num_bands) if self.mean is None else np.asarray(self.mean, dtype=np.float64)
        std = np.ones(self.num_bands) if self.std is None else np.asarray(self.std, dtype=np.float64)
        return mean, std

    def normalize(self, array: np.ndarray) -> np.ndarray:
        """Normalize raw band values ``(C, H, W)`` in place: ``(x - mean) / std``.

        Example:
            >>> card = ModelCard("unet", "resnet18", ["B04"], [ClassInfo(0, "water", "#0000ff")], mean=[10.0], std=[2.0])
            >>> card.normalize(np.full((1, 1, 2), 14.0, np.float32)).tolist()
            [[[2.0, 2.0]]]
        """
        if self.mean is not None:
            mean, std = self.normalization()
            array -= mean.astype(np.float32)[:, None, None]
            array /= std.astype(np.float32)[:, None, None]
        return array

    def to_json(self) -> str:
        """The card as a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> ModelCard:
        """Parse and validate a card written by :meth:`to_json`.

        Example:
            >>> card = ModelCard("unet", "resnet18", ["B04"], [ClassInfo(0, "water", "#0000ff")])
            >>> ModelCard.from_json(card.to_json()).classes[0].name
            'water'
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError, RecursionError):
            raise ModelError(f"{source}: its model card is not valid JSON; re-save the model with geoseg") from None
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise ModelError(f"{source}: not a geoseg model card (format {CARD_FORMAT!r} expected)")
        card = cls(**card_fields(data, [f.name for f in fields(cls)], source))
        card.validate(source)
        return card

    def validate(self, source: str = "model", numbers: bool = True) -> None:
        """Raise :class:`ModelError` naming ``source`` and the first bad field (see :func:`validate_card`).

        Example:
            >>> ModelCard("unet", "resnet18", [""], [ClassInfo(0, "water", "#0000ff")]).validate("m.pt")
            Traceback (most recent call last):
            ...
            geoseg.core.errors.ModelError: m.pt: card field bands[0] is "" (text): it must be a non-empty band name ...
        """
        validate_card(self, source, numbers)
        if "domain" in self.provenance:
            check_domain(self.provenance["domain"], self.num_bands, source)


def _check_box(box: object, where: str, source: str) -> None:
    """``null`` or ``[west, south, east, north]`` in degrees (west > east: the box crosses the antimeridian)."""
    ok = isinstance(box, list) and len(box) == 4 and all(is_real(v) for v in box)
    if box is not None and not (ok and all(-180 <= box[i] <= 180 for i in (0, 2)) and -90 <= box[1] <= box[3] <= 90):  # type: ignore[index]
        raise field_error(source, where, box, "null or [west, south, east, north] in degrees (EPSG:4326)")


def check_domain(domain: object, bands: int, source: str = "model") -> None:
    """Check ``provenance.domain`` (see :attr:`ModelCard.domain`); keys it does not know are kept (later versions).

    Example:
        >>> check_domain({"percentiles": {"p50": [1.0, 2.0]}}, 3, "m.pt")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.ModelError: m.pt: card field provenance.domain.percentiles.p50 is [1.0, 2.0] (list): it must ...
    """
    where = "provenance.domain"
    if not isinstance(domain, dict):
        raise field_error(source, where, domain, "an object with scenes, bbox, percentiles and validation_confidence")
    scenes = domain.get("scenes", [])
    if not isinstance(scenes, list) or not all(isinstance(s, dict) for s in scenes):
        raise field_error(source, f"{where}.scenes", scenes, "a list of objects with name, bbox and date")
    _check_box(domain.get("bbox"), f"{where}.bbox", source)
    for i, scene in enumerate(scenes):
        _check_box(scene.get("bbox"), f"{where}.scenes[{i}].bbox", source)
        if not isinstance(scene.get("date"), (str, type(None))):
            raise field_error(source, f"{where}.scenes[{i}].date", scene.get("date"), "null or a date such as 2017-02-16")
    percentiles = domain.get("percentiles", {})
    if not isinstance(percentiles, dict):
        raise field_error(source, f"{where}.percentiles", percentiles, "an object such as {p1: [...], p50: [...], p99: [...]}")
    for key, values in percentiles.items():
        if not (isinstance(values, list) and len(values) == bands and all(is_real(v) for v in values)):
            raise field_error(source, f"{where}.percentiles.{key}", values, f"a list of {bands} numbers, one per band")
    conf = domain.get("validation_confidence")
    if conf is not None and not (is_real(conf) and 0 <= conf <= 1):
        raise field_error(source, f"{where}.validation_confidence", conf, "null or a number from 0 to 1")


def valid_chip_sizes(chip_size: int, stride: int) -> tuple[int, int]:
    """The nearest chip sizes below and above ``chip_size`` that are multiples of ``stride``.

    Example:
        >>> valid_chip_sizes(250, 32)
        (224, 256)
    """
    below = max(stride, (chip_size // stride) * stride)
    above = -(-chip_size // stride) * stride
    return below, above


def check_chip_size(chip_size: int, stride: int, source: str = "chip size") -> None:
    """Raise :class:`ChipSizeError` unless ``chip_size`` suits an encoder of ``stride``."""
    if chip_size <= 0:
        raise ChipSizeError(f"{source} {chip_size} must be a positive number of pixels, e.g. 256")
    if chip_size % stride:
        below, above = valid_chip_sizes(chip_size, stride)
        raise ChipSizeError(
            f"{source} {chip_size} is not divisible by the encoder's output stride {stride}: use {below} or {above}"
        )
