"""One validation of what a model file says about itself: its model card and class tables.

Every model card geoseg reads (``.pt`` checkpoints, the card inside exported
ONNX files) or writes goes through :func:`validate_card`; class tables given
as JSON (``geoseg vectorize --classes``) go through :func:`check_class_table`.
A bad value is refused with one sentence that names the file, the field, what
the value is and what it must be. Nothing a file says may make geoseg reach
the network or import code: encoders must be names smp knows locally (no hub
prefix) and nothing in ``params`` may ask for downloaded weights.

Pure: no torch, no smp.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from geoseg.core.classes import NODATA, ClassInfo, class_colors
from geoseg.core.errors import GeosegError, InputError, ModelError

__all__ = [
    "DOWNLOAD_PARAMS",
    "MAX_CHIP_SIZE",
    "card_fields",
    "check_class_table",
    "check_encoder_name",
    "field_error",
    "normalization_problem",
    "show",
    "validate_card",
]

MAX_CHIP_SIZE = 16384
"""Largest chip (pixels per side) a model file may declare: one such chip of 3 float32 bands is 3 GB."""
MAX_BANDS = 1024
"""Most input bands a model card may list."""
REFIT = "re-save the model with geoseg"
"""The fix for a damaged or hand-edited model card."""
DOWNLOAD_PARAMS = frozenset(
    {"encoder_weights", "weights", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir"}
)
"""smp / timm keywords that fetch or read weights: a card may hold them only as null (weights come from the file)."""
_SET_BY_GEOSEG = {"encoder_name": "encoder", "in_channels": "bands", "classes": "classes"}
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_ARCH = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ENCODER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_ENTRY = "class table entry"
_HUB_MARKS = ("hf-hub:", "hf_hub:", "local-dir:", "://", "timm/")


def show(value: object, limit: int = 40) -> str:
    """A value as it reads in a message: JSON, control characters escaped, shortened.

    Example:
        >>> show("256"), show(float("nan")), show("\\x1b[31m")
        ('"256"', 'NaN', '"\\\\u001b[31m"')
    """
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "whole number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "null"
    return "list" if isinstance(value, (list, tuple)) else "object" if isinstance(value, dict) else type(value).__name__


def field_error(
    source: str,
    field: str,
    value: object,
    must: str,
    fix: str = REFIT,
    error: type[GeosegError] = ModelError,
    what: str = "card field",
) -> GeosegError:
    """The one-line error for a bad field: ``source: card field F is V (kind): it must be ...; fix``.

    Example:
        >>> str(field_error("model.pt", "chip_size", "256", "a whole number of pixels such as 256"))
        'model.pt: card field chip_size is "256" (text): it must be a whole number of pixels such as 256; re-save ...'
    """
    return error(f"{source}: {what} {field} is {show(value)} ({_kind(value)}): it must be {must}; {fix}")


def is_whole(value: object) -> bool:
    """True for an ``int`` that is not a ``bool``.

    Example:
        >>> is_whole(3), is_whole(True), is_whole(3.0)
        (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """True for a finite ``int`` or ``float`` that is not a ``bool``.

    Example:
        >>> is_real(2.5), is_real(float("inf")), is_real("1")
        (True, False, False)
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def normalization_problem(mean: object, std: object, bands: int, finite: bool = True) -> tuple[str, object, str] | None:
    """The first bad per-band normalization value as ``(field, value, what it must be)``, or None.

    ``finite=False`` lets infinite values pass (an in-memory model; saving and export refuse them).

    Example:
        >>> normalization_problem([0.0], [float("nan")], 1)
        ('std[0]', nan, 'a finite positive number')
    """
    for key, values in (("mean", mean), ("std", std)):
        if values is None:
            continue
        if not isinstance(values, (list, tuple)):
            return key, values, f"null or a list of {bands} numbers, one per band"
        if len(values) != bands:
            return key, values, f"a list of {bands} numbers, one per band (it has {len(values)})"
        for i, v in enumerate(values):
            number = isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
            if not number or (finite and not math.isfinite(v)) or (key == "std" and not v > 0):
                return f"{key}[{i}]", v, "a finite" + (" positive number" if key == "std" else " number")
    return None


def check_encoder_name(encoder: object, source: str) -> None:
    """Refuse encoder names smp or timm would look up on a model hub (or that are no names at all).

    Example:
        >>> check_encoder_name("hf-hub:someone/model", "m.pt")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.ModelError: m.pt: card field encoder is "hf-hub:someone/model" (text): it must be an encoder ...
    """
    must = "an encoder smp has locally, such as resnet18 (geoseg never downloads: the weights are in the model file)"
    if not isinstance(encoder, str) or not _ENCODER.match(encoder) or any(m in encoder for m in _HUB_MARKS):
        raise field_error(source, "encoder", encoder, must)


def _check_text_list(values: object, field: str, source: str) -> None:
    if not isinstance(values, list) or not values or len(values) > MAX_BANDS:
        raise field_error(source, field, values, f"a list of 1 to {MAX_BANDS} band names")
    for i, name in enumerate(values):
        if not isinstance(name, str) or not name.strip():
            raise field_error(source, f"{field}[{i}]", name, "a non-empty band name such as B04")
    seen = {name for name in values if values.count(name) > 1}
    if seen:
        raise ModelError(
            f"{source}: card field {field} names band {show(sorted(seen)[0])} twice: band names must be unique; {REFIT}"
        )


def _check_row(
    cid: object,
    name: object,
    color: object,
    where: str,
    source: str,
    error: type[GeosegError],
    what: str,
    fix: str,
    max_id: int = NODATA - 1,
) -> None:
    """One class row: id 0..``max_id`` (254: 255 is nodata), a non-empty name, a ``#rrggbb`` colour."""
    if not is_whole(cid) or not 0 <= cid <= max_id:  # type: ignore[operator]
        raise field_error(source, f"{where}.id", cid, f"a whole number from 0 to {max_id}", fix, error, what)
    if not isinstance(name, str) or not name.strip():
        raise field_error(source, f"{where}.name", name, "a non-empty class name", fix, error, what)
    if not isinstance(color, str) or not _HEX.match(color):
        raise field_error(source, f"{where}.color", color, "a colour written #rrggbb such as #1f77b4", fix, error, what)


def _duplicate(ids: Sequence[object]) -> object | None:
    seen: set[object] = set()
    for cid in ids:
        if cid in seen:
            return cid
        seen.add(cid)
    return None


def _check_card_classes(classes: object, source: str) -> None:
    if not isinstance(classes, list) or not classes or len(classes) > NODATA:
        raise field_error(source, "classes", classes, f"a list of 1 to {NODATA} classes (255 is the class map's nodata)")
    for i, c in enumerate(classes):
        if not isinstance(c, ClassInfo):
            raise field_error(source, f"classes[{i}]", c, "an object with id, name and color")
        _check_row(c.id, c.name, c.color, f"classes[{i}]", source, ModelError, "card field", REFIT)
    ids = [c.id for c in classes]
    twice = _duplicate(ids)
    if twice is not None:
        raise ModelError(f"{source}: card field classes gives class id {twice} twice: each class needs its own id; {REFIT}")
    if ids != list(range(len(ids))):
        raise field_error(source, "classes[].id", ids, f"0 to {len(ids) - 1} in order (one output channel each)")


def _check_chip(chip_size: object, overlap: object, source: str) -> None:
    from geoseg.core.grid import parse_overlap

    if not is_whole(chip_size) or not 0 < chip_size <= MAX_CHIP_SIZE:  # type: ignore[operator]
        raise field_error(source, "chip_size", chip_size, f"a whole number of pixels from 1 to {MAX_CHIP_SIZE}, such as 256")
    if not isinstance(overlap, str):
        raise field_error(source, "overlap", overlap, 'text such as "0.25" (a fraction of the chip) or "64px"')
    try:
        parse_overlap(overlap, chip_size)  # type: ignore[arg-type]
    except (InputError, ValueError):
        raise field_error(
            source, "overlap", overlap, f'a fraction in [0, 1) such as "0.25" or pixels below {chip_size} such as "64px"'
        ) from None


def _hub_reference(value: object) -> str | None:
    """The first text inside ``value`` (walked without recursion) that names a hub or URL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and any(m in item for m in _HUB_MARKS):
            return item
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return None


def _check_params(params: object, source: str) -> None:
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise field_error(source, "params", params, "an object of smp.create_model keyword arguments")
    for key, value in params.items():
        if key in DOWNLOAD_PARAMS and value not in (None, False):
            raise field_error(
                source, f"params.{key}", value, "null: the weights are in the model file and geoseg never downloads"
            )
        if key in _SET_BY_GEOSEG:
            raise field_error(source, f"params.{key}", value, f"absent: geoseg sets it from the card field {_SET_BY_GEOSEG[key]}")
    hub = _hub_reference(params)
    if hub is not None:
        raise field_error(source, "params", hub, "free of model-hub names and URLs: geoseg never downloads")


def validate_card(card: Any, source: str = "model", numbers: bool = True) -> None:
    """Raise :class:`~geoseg.core.errors.ModelError` naming ``source`` and the first bad field of ``card``.

    ``card`` is a :class:`~geoseg.model.card.ModelCard` (typed ``Any``: that module imports this one).

    ``numbers=False`` lets infinite mean or std values pass (an in-memory
    model may hold them; it can be neither saved nor exported).

    Example:
        >>> from geoseg.model.card import ModelCard
        >>> card = ModelCard("unet", "resnet18", ["B04"], [ClassInfo(0, "water", "#0000ff")], chip_size=3200000000)
        >>> validate_card(card, "m.pt")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.ModelError: m.pt: card field chip_size is 3200000000 (whole number): it must be ... 1 to 16384, ...
    """
    for key in ("arch", "name"):
        value = getattr(card, key)
        if not isinstance(value, str) or (key == "arch" and not _ARCH.match(value)):
            raise field_error(source, key, value, "text" + (" naming an smp architecture such as unet" if key == "arch" else ""))
    check_encoder_name(card.encoder, source)
    _check_text_list(card.bands, "bands", source)
    _check_card_classes(card.classes, source)
    _check_chip(card.chip_size, card.overlap, source)
    problem = normalization_problem(card.mean, card.std, len(card.bands), finite=numbers)
    if problem is not None:
        raise field_error(source, *problem)
    if card.pixel_size is not None and not (is_real(card.pixel_size) and card.pixel_size > 0):
        raise field_error(source, "pixel_size", card.pixel_size, "null or a finite number of metres above 0, such as 10")
    _check_params(card.params, source)
    if not isinstance(card.provenance, dict):
        raise field_error(source, "provenance", card.provenance, "an object")


def card_fields(data: dict[str, Any], known: Sequence[str], source: str) -> dict[str, Any]:
    """The keyword arguments of a ``ModelCard`` from a parsed card: known keys only, classes as ``ClassInfo``.

    Values are checked afterwards by :func:`validate_card`; here only what the
    card's constructor needs (required fields, class rows as objects).

    Example:
        >>> card_fields({"arch": "unet", "color": 1}, ["arch"], "m.pt")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.ModelError: m.pt: card field color is 1 (whole number): it must be absent: ...
    """
    for key, value in data.items():
        if key not in known:
            raise field_error(source, key, value, "absent: geoseg model cards have no such field")
    for key in ("arch", "encoder", "bands", "classes"):
        if key not in data:
            raise ModelError(f"{source}: the model card has no field {key}; {REFIT}")
    fields = dict(data)
    classes = data["classes"]
    if not isinstance(classes, list):
        raise field_error(source, "classes", classes, "a list of objects with id, name and color")
    rows = []
    for i, row in enumerate(classes):
        if not isinstance(row, dict) or set(row) != {"id", "name", "color"}:
            raise field_error(source, f"classes[{i}]", row, "an object with id, name and color (nothing else)")
        rows.append(ClassInfo(row["id"], row["name"], row["color"]))
    fields["classes"] = rows
    if is_real(fields.get("overlap")):
        fields["overlap"] = str(fields["overlap"])  # a hand-written card may give the fraction as a number
    return fields


def _table_rows(data: object, source: str, max_id: int) -> list[tuple[str, object, object, object]]:
    """``(where, id, name, colour or None)`` of a JSON class table: a list of objects or an object of id: name."""
    shape = 'a JSON list of {"id", "name", "color"} or an object of id: name'
    rows: list[tuple[str, object, object, object]] = []
    if isinstance(data, dict):
        for key, name in data.items():
            if not (key.isascii() and key.isdigit() and len(key) <= len(str(max_id))):
                raise InputError(
                    f"{source}: class table key {show(key)} is not a class id: use whole numbers from 0 to "
                    f'{max_id} as keys, such as "0"'
                )
            rows.append((f"[{show(key)}]", int(key), name, None))
        return rows
    if not isinstance(data, list):
        raise InputError(f"{source}: expected {shape}, got {_kind(data)}")
    for i, row in enumerate(data):
        if not isinstance(row, dict) or "id" not in row or "name" not in row:
            raise field_error(
                source, f"[{i}]", row, 'an object with "id", "name" and optionally "color"', f"give {shape}", InputError, _ENTRY
            )
        rows.append((f"[{i}]", row["id"], row["name"], row.get("color")))
    return rows


def check_class_table(data: object, source: str, max_id: int = NODATA - 1) -> list[ClassInfo]:
    """Check a class table read from JSON and return its rows; :class:`InputError` names ``source`` and the row.

    Ids are class-map values 0..254 (255 is nodata; up to ``max_id`` for
    other legends, such as ``geoseg change`` reads), each once; names are
    non-empty text; colours are ``#rrggbb`` (missing: geoseg's palette).

    Example:
        >>> [c.name for c in check_class_table({"0": "water", "3": "forest"}, "classes.json")]
        ['water', 'forest']
        >>> check_class_table([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "t.json")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: t.json: class id 1 is given twice: give each class its own id
    """
    rows = _table_rows(data, source, max_id)
    if not rows:
        raise InputError(f"{source}: the class table lists no classes; give at least one")
    palette = class_colors([str(name) for _, _, name, _ in rows])
    table = []
    fix = "fix the class table"
    for n, (where, cid, name, color) in enumerate(rows):
        if color is None:
            color = palette[n]
        _check_row(cid, name, color, where, source, InputError, _ENTRY, fix, max_id)
        table.append(ClassInfo(cid, name, color))  # type: ignore[arg-type]
    twice = _duplicate([c.id for c in table])
    if twice is not None:
        raise InputError(f"{source}: class id {twice} is given twice: give each class its own id")
    return table
