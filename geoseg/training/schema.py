"""The training config's schema: every key with its type, default and valid values, checked up front.

A typo, a wrong type or a bad value is one :class:`ConfigError` that names the
key and the valid choices (with a "did you mean" hint for a close misspelling).
:func:`parse_config` returns the checked mapping with every default filled in;
:class:`geoseg.training.config.TrainConfig` is the typed view of it.

Example:
    >>> cfg = parse_config({"data": {"scenes": [{"image": "s.tif", "labels": "l.gpkg", "label_field": "fclass"}],
    ...                              "classes": ["forest", "water"]}}, base=Path("."))
    >>> cfg["train"]["epochs"], cfg["model"]["arch"], cfg["train"]["loss"]
    (30, 'unet', {'ce': 1.0})
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geoseg.core.errors import InputError
from geoseg.core.labels import BACKGROUND_WITHIN
from geoseg.core.options import DEVICES, is_device
from geoseg.io.vector import split_layer
from geoseg.training.losses import LOSSES

__all__ = [
    "ADDED_KEYS",
    "BACKGROUND_KEYS",
    "CLASS_KEYS",
    "ConfigError",
    "DEVICES",
    "SCENE_KEYS",
    "SCHEMA",
    "loss_names",
    "parse_config",
]


class ConfigError(InputError):
    """A training config has an unknown key, a wrong type or a bad value."""


# key: (types, default, check) where check is a tuple of choices, a (min, max) range, or None.
_NUM = (int, float)
SCHEMA: dict[str, dict[str, tuple[Any, Any, Any]]] = {
    "": {
        "name": (str, "geoseg-model", None),
        "description": (str, "", None),
        "attribution": (str, "", None),
        "licence": (str, "", None),
    },
    "model": {
        "arch": (str, "unet", None),
        "encoder": (str, "resnet18", None),
        "encoder_weights": ((str, type(None)), None, None),
        "params": (dict, {}, None),
        "chip_size": (int, 256, (32, 4096)),
        "overlap": ((str, *_NUM), "0.25", None),
    },
    "data": {
        "scenes": (list, [], None),
        "chips": ((str, type(None)), None, None),
        "bands": ((list, type(None)), None, None),
        "classes": ((list, type(None)), None, None),
        "ignore_values": (list, [], None),
        "min_labeled": (_NUM, 0.05, (0.0, 1.0)),
        "stride": ((int, type(None)), None, (8, 4096)),
        "background": ((dict, type(None)), None, None),
    },
    "split": {
        "val_fraction": (_NUM, 0.2, (0.0, 0.9)),
        "block_size": ((int, type(None)), None, (32, 1 << 20)),
        "gap": ((int, type(None)), None, (0, 1 << 20)),
        "seed": (int, 0, None),
    },
    "augment": {
        "flips": (bool, True, None),
        "rot90": (bool, True, None),
        "scale": (_NUM, 0.0, (0.0, 0.5)),
        "brightness": (_NUM, 0.0, (0.0, 0.5)),
        "gain": (_NUM, 0.0, (0.0, 0.5)),
        "band_gain": (_NUM, 0.0, (0.0, 0.5)),
        "offset": (_NUM, 0.0, (0.0, 2.0)),
        "noise": (_NUM, 0.0, (0.0, 1.0)),
    },
    "train": {
        "epochs": (int, 30, (1, 100000)),
        "batch_size": (int, 8, (1, 4096)),
        "lr": (_NUM, 1e-3, (1e-8, 10.0)),
        "warmup_epochs": (int, 0, (0, 100000)),
        "weight_decay": (_NUM, 1e-4, (0.0, 1.0)),
        "loss": ((str, dict), "ce", None),
        "class_weights": ((str, list, type(None)), "auto", None),
        "focal_gamma": (_NUM, 2.0, (0.0, 10.0)),
        "patience": ((int, type(None)), 10, (1, 100000)),
        "seed": (int, 0, None),
        "device": (str, "auto", None),
        "samples_per_epoch": ((int, type(None)), None, (1, 1 << 30)),
        "save_fp16": (bool, False, None),
        "threads": ((int, type(None)), None, (1, 1024)),
    },
}
"""Section -> key -> (types, default, check); section ``""`` holds the top-level keys."""
ADDED_KEYS = {"augment": ("gain", "band_gain", "offset", "noise"), "train": ("warmup_epochs",)}
"""Keys added in geoseg 0.2.0 (a run folder of 0.1 lacks them and ran with their defaults)."""
SCENE_KEYS = {
    "image": (str, None),
    "labels": (str, None),
    "label_field": ((str, type(None)), None),
    "band_names": ((list, type(None)), None),
    "mask_clouds": (bool, False),
}
"""Keys of a ``data.scenes`` item; ``band_names`` names the image's bands in order (for images without band names);
``mask_clouds`` ignores the labels under the scene's clouds and cloud shadows (extra ``geoseg[clouds]``)."""
CLASS_KEYS = ("name", "color", "values", "buffer")
"""Keys of a class mapping in ``data.classes``."""
BACKGROUND_KEYS = {"name": ((str, int), None), "within": (str, "labels"), "color": ((str, type(None)), None)}
"""Keys of ``data.background`` with their types and defaults (``name`` is required)."""


def loss_names() -> tuple[str, ...]:
    """The loss names a config may use: the keys of :data:`geoseg.training.losses.LOSSES`, sorted.

    Example:
        >>> loss_names()
        ('ce', 'dice', 'focal', 'lovasz')
    """
    return tuple(sorted(LOSSES))


def _err(key: str, message: str) -> ConfigError:
    return ConfigError(f"config key {key}: {message}")


def _unknown(key: str, name: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    where = f"{key}.{name}" if key else name
    return ConfigError(f"config key {where} is not known: {hint}valid keys are {', '.join(valid)}")


def _type_name(types: Any) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {
        int: "an integer",
        float: "a number",
        str: "text",
        bool: "true or false",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _number(value: Any, types: tuple) -> Any:
    """A numeric text such as ``1e-3`` (YAML 1.1 reads an exponent without a dot as text) as a float, for keys that
    take a number and no text; any other value as it is."""
    if isinstance(value, str) and float in types and str not in types:
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number):
            return number
    return value


def _check_value(key: str, value: Any, types: Any, check: Any) -> Any:
    types_t = types if isinstance(types, tuple) else (types,)
    value = _number(value, types_t)
    if isinstance(value, bool) and bool not in types_t:
        raise _err(key, f"must be {_type_name(types)}, got {value!r}")
    if not isinstance(value, types_t):
        raise _err(key, f"must be {_type_name(types)}, got {value!r}")
    if isinstance(check, tuple) and len(check) == 2 and value is not None and isinstance(value, (int, float)):
        lo, hi = check
        if not lo <= value <= hi:
            raise _err(key, f"must lie in [{lo}, {hi}], got {value!r}")
    return value


def _check_choice(key: str, value: str, choices: Sequence[str], hint: bool = False) -> None:
    if value not in choices:
        close = difflib.get_close_matches(value, list(choices), n=1) if hint else []
        suffix = f": did you mean {close[0]!r}?" if close else ""
        raise _err(key, f"{value!r} is not one of {', '.join(choices)}{suffix}")


def _resolve(path: str, base: Path) -> str:
    if path.startswith("/vsi") or "://" in path:
        return path
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base / p))


def _check_band_names(key: str, names: list | None) -> None:
    """``band_names``: distinct, non-empty names, e.g. [B2, B3, B4, B5] or [blue, green, red, nir08]."""
    if names is None:
        return
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise _err(key, f"must list one name per band of the image, e.g. [blue, green, red, nir08], got {names!r}")
    lower = [n.strip().lower() for n in names]
    twice = next((n for n in names if lower.count(n.strip().lower()) > 1), None)
    if twice is not None:
        raise _err(key, f"names the band {twice!r} twice: give each band its own name")


def _scenes(value: list, base: Path) -> list[dict[str, Any]]:
    scenes = []
    for i, item in enumerate(value):
        key = f"data.scenes[{i}]"
        if not isinstance(item, dict):
            raise _err(key, "must be a mapping with image, labels and (for polygons) label_field")
        for name in item:
            if name not in SCENE_KEYS:
                raise _unknown(key, name, list(SCENE_KEYS))
        for name in ("image", "labels"):
            if name not in item:
                raise _err(f"{key}.{name}", "is missing: give the path of the scene's " + name)
        scene = {name: _check_value(f"{key}.{name}", item.get(name, d), t, None) for name, (t, d) in SCENE_KEYS.items()}
        scene["image"], scene["labels"] = _resolve(scene["image"], base), _resolve(scene["labels"], base)
        _check_band_names(f"{key}.band_names", scene["band_names"])
        scenes.append(scene)
    return scenes


def _loss(value: str | dict) -> dict[str, float]:
    weights = {value: 1.0} if isinstance(value, str) else dict(value)
    for name, weight in weights.items():
        _check_choice(f"train.loss.{name}" if isinstance(value, dict) else "train.loss", str(name), loss_names(), hint=True)
        weights[name] = _check_value(f"train.loss.{name}", weight, _NUM, (0.0, 1000.0))
    if not any(w > 0 for w in weights.values()):
        raise _err("train.loss", "give at least one loss with a positive weight, e.g. {ce: 1.0, dice: 0.5}")
    return {k: float(v) for k, v in weights.items()}


def _sections(raw: dict[str, Any]) -> dict[str, Any]:
    """Every key of ``raw`` known, of the right type and in range; defaults filled in."""
    sections = [s for s in SCHEMA if s]
    cfg: dict[str, Any] = {}
    for key in raw:
        if key not in SCHEMA[""] and key not in sections:
            raise _unknown("", str(key), [*SCHEMA[""], *sections])
    for key, (types, default, check) in SCHEMA[""].items():
        cfg[key] = _check_value(key, raw.get(key, default), types, check)
    for section in sections:
        given = raw.get(section) or {}
        if not isinstance(given, dict):
            raise _err(section, "must be a mapping of keys")
        for key in given:
            if key not in SCHEMA[section]:
                raise _unknown(section, str(key), list(SCHEMA[section]))
        cfg[section] = {
            key: _check_value(f"{section}.{key}", copy.deepcopy(given.get(key, default)), types, check)
            for key, (types, default, check) in SCHEMA[section].items()
        }
    return cfg


def _check_train(train: dict[str, Any]) -> None:
    train["loss"] = _loss(train["loss"])
    if train["warmup_epochs"] >= train["epochs"]:
        raise _err(
            "train.warmup_epochs",
            f"must be fewer than train.epochs ({train['epochs']}), got {train['warmup_epochs']}: e.g. 3 (0: no warm-up)",
        )
    if not is_device(train["device"]):  # auto, cpu, cuda or cuda:N, as the CLI's --device
        _check_choice("train.device", train["device"], DEVICES)
    weights = train["class_weights"]
    if isinstance(weights, str):
        _check_choice("train.class_weights", weights, ("auto", "none"))
    elif isinstance(weights, list):
        for i, w in enumerate(weights):
            weights[i] = _check_value(f"train.class_weights[{i}]", w, _NUM, (0.0, 1e6))


def _check_classes(classes: list[Any] | None) -> None:
    if classes is None:
        return
    if not classes:
        raise _err("data.classes", "is empty: list the class names (and their label values)")
    for i, item in enumerate(classes):
        if isinstance(item, dict):
            for name in item:
                if name not in CLASS_KEYS:
                    raise _unknown(f"data.classes[{i}]", str(name), list(CLASS_KEYS))
            if "name" not in item:
                raise _err(f"data.classes[{i}]", "needs a name")
            buffer = item.get("buffer")
            if buffer is not None:
                item["buffer"] = buffer = _check_value(f"data.classes[{i}].buffer", buffer, _NUM, None)
                if not buffer > 0:
                    raise _err(
                        f"data.classes[{i}].buffer",
                        f"must be a positive distance in metres, got {buffer!r}: e.g. 5 makes a line a 10 m-wide "
                        "corridor and a point a disc of radius 5 m",
                    )
        elif not isinstance(item, (str, int)):
            raise _err(f"data.classes[{i}]", "must be a class name or a mapping {name, color, values, buffer}")


def _class_names(classes: list[Any] | None) -> list[str]:
    return [str(c.get("name") if isinstance(c, dict) else c) for c in classes or []]


def _check_background(data: dict[str, Any], base: Path) -> dict[str, Any] | None:
    """``data.background`` checked, with ``within`` defaulted and a file path made relative to ``base``."""
    given = data["background"]
    if given is None:
        return None
    key = "data.background"
    for name in given:
        if name not in BACKGROUND_KEYS:
            raise _unknown(key, str(name), list(BACKGROUND_KEYS))
    if "name" not in given:
        raise _err(key, "needs a name, e.g. {name: background, within: labels}")
    if data["chips"] is not None:
        raise _err(key, "applies to vector labels of data.scenes, not to a chip folder's masks: remove it or train from scenes")
    bg = {name: _check_value(f"{key}.{name}", given.get(name, d), t, None) for name, (t, d) in BACKGROUND_KEYS.items()}
    bg["name"] = str(bg["name"])
    if bg["name"] in _class_names(data["classes"]):
        raise _err(
            f"{key}.name",
            f"{bg['name']!r} is already a class in data.classes: give the background another name (e.g. background) "
            "or remove that class",
        )
    if bg["within"] not in BACKGROUND_WITHIN:
        path = _resolve(bg["within"], base)
        if not (path.startswith("/vsi") or "://" in path) and not Path(split_layer(path)[0]).is_file():  # f.gpkg|layername=x
            raise _err(
                f"{key}.within",
                f"{bg['within']!r} is neither {' nor '.join(BACKGROUND_WITHIN)} nor an existing file ({path}): give "
                "labels (the labels' extent), scene, or the path of a vector file of polygons",
            )
        bg["within"] = path
    return bg


def parse_config(raw: Any, base: Path) -> dict[str, Any]:
    """Validate a config mapping and fill in defaults (paths made relative to ``base``).

    Example:
        >>> try:
        ...     parse_config({"data": {"chips": "chips"}, "train": {"loss": "dcie"}}, Path("."))
        ... except ConfigError as exc:
        ...     print(exc)
        config key train.loss: 'dcie' is not one of ce, dice, focal, lovasz: did you mean 'dice'?
    """
    if not isinstance(raw, dict):
        raise ConfigError("config must be a YAML mapping with sections model, data, split, augment, train")
    cfg = _sections(raw)
    data = cfg["data"]
    data["scenes"] = _scenes(data["scenes"], base)
    if data["chips"] is not None:
        data["chips"] = _resolve(data["chips"], base)
    if bool(data["scenes"]) == bool(data["chips"]):
        raise _err("data", "give either scenes (images with labels) or chips (a folder written by geoseg tile)")
    _check_train(cfg["train"])
    if data["bands"] is not None and not all(str(b).strip() for b in data["bands"]):
        raise _err("data.bands", f"has an empty item in {data['bands']!r}: list band indexes or names, e.g. [B04, B03, B02]")
    _check_classes(data["classes"])
    data["background"] = _check_background(data, base)
    from geoseg.core.grid import parse_overlap

    try:
        parse_overlap(cfg["model"]["overlap"], cfg["model"]["chip_size"])
    except InputError as exc:
        raise _err("model.overlap", str(exc)) from None
    return cfg
