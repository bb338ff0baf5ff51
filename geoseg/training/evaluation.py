"""``geoseg.evaluate``: score a class map against truth labels (mask raster or polygons).

Truth is put on the class map's grid (polygons reprojected and burned,
smaller on top; a mask raster resampled nearest). Unlabeled truth pixels and
nodata predictions are not scored.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geoseg.core.errors import InputError
from geoseg.core.labels import LabelMap
from geoseg.core.metrics import ConfusionMatrix

__all__ = ["evaluate", "read_label_map"]

log = logging.getLogger("geoseg")
_ROWS = 1024


def read_label_map(path: str | os.PathLike, class_names: list[str]) -> LabelMap:
    """Label values of truth files mapped to a class map's classes, from a YAML or JSON file.

    Accepted: a training config (its ``data.classes`` and ``data.ignore_values``),
    ``{classes: [...], ignore_values: [...]}``, or an object of label value to
    class name such as ``{"0": "unlabeled", "1": "forest"}``, where names that
    are not a class of the map are ignored (and said so).

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "m.json"
        >>> _ = f.write_text('{"0": "unlabeled", "1": "forest", "7": "water"}')
        >>> read_label_map(f, ["forest", "water"]).lookup([7, 1, 0]).tolist()
        [1, 0, 255]
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--classes {p} does not exist: give a training config or a JSON/YAML class mapping")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise InputError(f"--classes {p} is not valid JSON or YAML: fix the syntax") from None
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    if isinstance(data, dict) and isinstance(data.get("classes"), list):
        label_map = LabelMap.from_spec(data["classes"], data.get("ignore_values") or [])
    elif isinstance(data, dict) and data:
        index = {n: i for i, n in enumerate(class_names)}
        spec: list[dict[str, Any]] = [{"name": n, "values": []} for n in class_names]
        ignored = []
        for value, name in data.items():
            if str(name) in index:
                spec[index[str(name)]]["values"].append(value)
            else:
                ignored.append(value)
        if ignored:
            log.info("label values %s of %s name no class of the map: not scored", ", ".join(str(v) for v in ignored), p)
        label_map = LabelMap.from_spec(spec, ignored)
    else:
        raise InputError(f"--classes {p}: expected a training config, {{classes: [...]}} or an object of label value: class name")
    if label_map.names != list(class_names):
        raise InputError(
            f"--classes {p} lists classes {', '.join(label_map.names)} but the class map has "
            f"{', '.join(class_names)}: give the mapping of the model that made the map"
        )
    return label_map


def evaluate(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    label_field: str | None = None,
    classes: str | os.PathLike | LabelMap | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Per-class IoU, F1, precision, recall, the confusion matrix and their means.

    Without ``classes``, polygon labels are matched to the class map's class
    names and mask values are taken as class ids.

    Example:
        >>> m = evaluate("out/classes.tif", "labels.gpkg", label_field="fclass")  # doctest: +SKIP
        >>> m["mean_iou"]  # doctest: +SKIP
    """
    from rasterio.windows import Window

    from geoseg.io.classmap import class_table_of
    from geoseg.io.label_files import VECTOR_SUFFIXES, SceneGrid, open_labels
    from geoseg.io.raster import gdal_env, open_scene

    with gdal_env(), open_scene(pred) as ds:
        table = class_table_of(ds)
        if not table:
            raise InputError(f"{pred} carries no class table: give a class map written by geoseg")
        names = [c.name for c in table]
        if isinstance(classes, LabelMap):
            label_map = classes
        elif classes is not None:
            label_map = read_label_map(classes, names)
        elif Path(str(truth)).suffix.lower() in VECTOR_SUFFIXES:
            label_map = LabelMap.from_spec(names)
        else:
            label_map = LabelMap.from_spec([{"name": c.name, "values": [c.id]} for c in table])
        labels = open_labels(truth, SceneGrid.of(ds), label_field, label_map)
        cm = ConfusionMatrix(len(table))
        try:
            steps = range(0, ds.height, _ROWS)
            for n, y in enumerate(steps):
                window = Window(0, y, ds.width, min(_ROWS, ds.height - y))
                cm.update(labels.read(window), ds.read(1, window=window))
                if progress:
                    progress("evaluate", n + 1, len(steps))
        finally:
            labels.close()
    summary = cm.summary(names)
    summary.update({"prediction": str(pred), "truth": str(truth)})
    return summary


def write_json(summary: dict[str, Any], path: Path) -> None:
    """Write metrics as JSON atomically.

    Example:
        >>> write_json(evaluate("classes.tif", "labels.gpkg", label_field="fclass"), Path("metrics.json"))  # doctest: +SKIP
    """
    from geoseg.io.outputs import write_text_atomic

    write_text_atomic(path, json.dumps(summary, indent=2))
