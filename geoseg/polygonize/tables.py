"""Class tables for ``--classes``: from a geoseg model, a training config or a JSON/YAML class table.

:func:`read_class_table` takes what ``geoseg evaluate --classes`` takes for
the names of a model's classes (a training config, ``{classes: [...]}``)
and, as before, a model file or a class table of ids: every file that
describes classes names the ids of a class map the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from geoseg.core.classes import NODATA, ClassInfo
from geoseg.core.errors import InputError, ModelError
from geoseg.io.paths import check_input_file

__all__ = ["CLASSES_KINDS", "TABLE_SUFFIXES", "WIDE_MAX_ID", "read_class_table"]

TABLE_SUFFIXES = (".json", ".yaml", ".yml")
"""Suffixes of class-table files (text); other files given as ``--classes`` are read as geoseg models."""

CLASSES_KINDS = (
    "a geoseg model (.pt, .onnx or default), a training config (.yaml), {classes: [...]}, or a JSON/YAML class table "
    '([{"id": 0, "name": "water", "color": "#1f78b4"}, ...] or {"0": "water"})'
)
"""What ``--classes`` takes, as messages say it."""

WIDE_MAX_ID = 2**31 - 2
"""Highest id a class table may give for a class map of 16 or 32-bit ids (CORINE's 111..523, a change map's
transitions); a geoseg map is 8-bit: ids 0..254, 255 nodata."""


def read_class_table(path: str | os.PathLike, max_id: int = NODATA - 1) -> list[ClassInfo]:
    """A class table from a geoseg model (``.pt``, ``.onnx`` or ``default``), a training config, or a class table.

    A training config (YAML or JSON; its ``data.classes`` and
    ``data.background``) or ``{classes: [...]}`` gives the classes' ids in
    the order a model trained on it numbers them: ``data.classes`` first,
    the background class last. A class table is ``[{"id", "name", "color"}...]``
    or ``{"0": "name"}`` (ids 0..``max_id``). Any other file is read as a
    geoseg model; one that is not is refused naming every kind of file taken.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "classes.json"
        >>> _ = f.write_text('{"0": "water", "1": "forest"}')
        >>> [c.name for c in read_class_table(f)]
        ['water', 'forest']
        >>> _ = f.with_suffix(".yaml").write_text("data:\\n  classes: [forest, {name: water, values: [7]}]\\n")
        >>> [(c.id, c.name) for c in read_class_table(f.with_suffix(".yaml"))]
        [(0, 'forest'), (1, 'water')]
    """
    from geoseg.model.bundled import default_model_path
    from geoseg.model.checkpoint import read_card

    p = default_model_path() if str(path) == "default" else Path(path)
    check_input_file(p, "--classes", f"give {CLASSES_KINDS}")
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        from geoseg.model.onnx import load_onnx

        return list(load_onnx(p).card.classes)
    if suffix in TABLE_SUFFIXES:
        return _table_file(p, max_id)
    if suffix == ".pt" or str(path) == "default":
        return list(read_card(p).classes)
    try:
        return list(read_card(p).classes)
    except ModelError:
        raise InputError(f"--classes {p} is neither a geoseg model nor a class table: give {CLASSES_KINDS}") from None


def _table_file(p: Path, max_id: int) -> list[ClassInfo]:
    """The classes of a JSON or YAML file: a training config, ``{classes: [...]}`` or a class table."""
    import yaml

    from geoseg.model.validate import check_class_table

    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"--classes {p} cannot be read ({detail}): check the file and its permissions") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, RecursionError, yaml.YAMLError):
        raise InputError(f"--classes {p} is not valid {p.suffix[1:].upper()}: fix the syntax, or give {CLASSES_KINDS}") from None
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]  # a training config
        if data.get("classes") is None:
            raise InputError(
                f"--classes {p} is a training config without data.classes: its classes were numbered from the labels' "
                "values when it trained; give the model it trained (the run folder's model.pt) instead"
            )
    if isinstance(data, dict) and isinstance(data.get("classes"), list):
        return _config_classes(data, p, max_id)
    if isinstance(data, dict):  # YAML reads the keys of {0: water} as numbers: ids are checked as JSON's text
        data = {str(key): value for key, value in data.items()}
    return check_class_table(data, f"--classes {p}", max_id)


def _config_classes(data: dict[str, Any], p: Path, max_id: int) -> list[ClassInfo]:
    """The class table a model trained on ``data`` (a config's ``data`` section) has: classes, then background."""
    from geoseg.core.labels import config_labels
    from geoseg.model.validate import check_class_table

    classes = config_labels(data, p, f"--classes {p}")[0].classes
    rows = [{"id": c.id, "name": c.name, "color": c.color} for c in classes]
    return check_class_table(rows, f"--classes {p} (data.classes)", max_id)  # names, colours, ids up to max_id
