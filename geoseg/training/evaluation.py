"""``geoseg.evaluate``: score a class map against truth labels (mask raster or polygons).

Truth is put on the class map's grid (polygons reprojected and burned,
smaller on top; a mask raster resampled nearest). Unlabeled truth pixels
(also those outside a truth mask's footprint) and nodata predictions are not
scored. With ``report=DIR`` the same pass streams the error map, and DIR gets
the pictures and tables people look at
(:mod:`geoseg.report.scores`, :mod:`geoseg.report.errormap`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geoseg.core.classes import ClassInfo
from geoseg.core.errors import InputError, first_few
from geoseg.core.labels import Background, LabelMap, checked_labels, config_labels
from geoseg.core.metrics import ConfusionMatrix, thin_support

__all__ = ["evaluate", "read_label_map"]

log = logging.getLogger("geoseg")
_ROWS = 1024


def read_label_map(path: str | os.PathLike, class_names: list[str]) -> LabelMap:
    """Label values of truth files mapped to a class map's classes, from a YAML or JSON file.

    Accepted: a training config (its ``data.classes``, ``data.ignore_values``
    and ``data.background``; without ``data.classes`` the classes a run
    numbered from the labels' values, see :func:`_trained_classes`), the
    ``classes.json`` of a chip folder (``[{id, name, color, values}, ...]``),
    ``{classes: [...], ignore_values: [...]}``, or an object of label value to
    class name such as ``{"0": "unlabeled", "1": "forest"}``, where names that
    are not a class of the map are ignored (and said so).

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "m.json"
        >>> _ = f.write_text('{"0": "unlabeled", "1": "forest", "7": "water"}')
        >>> read_label_map(f, ["forest", "water"]).lookup([7, 1, 0]).tolist()
        [1, 0, 255]
        >>> _ = f.write_text('[{"id": 0, "name": "forest", "values": ["1"]}, {"id": 1, "name": "water", "values": ["7"]}]')
        >>> read_label_map(f, ["forest", "water"]).lookup([7, 1, 0]).tolist()
        [1, 0, 255]
    """
    return _read_classes(path, class_names)[0]


def _read_classes(path: str | os.PathLike, class_names: list[str]) -> tuple[LabelMap, Background | None]:
    """:func:`read_label_map` with the config's background (truth labels get it as training did)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"--classes {p} does not exist: give a training config, a chip folder's classes.json or a JSON/YAML class mapping"
        )
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise InputError(f"--classes {p} is not valid JSON or YAML: fix the syntax") from None
    config = isinstance(data, dict) and isinstance(data.get("data"), dict)
    data = data["data"] if config else data
    background = None
    if isinstance(data, list):
        label_map = _table_classes(data, p)
    elif isinstance(data, dict) and isinstance(data.get("classes"), list):
        label_map, background = config_labels(data, p, f"--classes {p}")
    elif config and data.get("classes") is None:
        label_map, background = _trained_classes(data, p, class_names)
    elif isinstance(data, dict) and data:
        label_map = _value_names(data, p, class_names)
    else:
        raise InputError(
            f"--classes {p}: expected a training config, a chip folder's classes.json, {{classes: [...]}} "
            "or an object of label value: class name"
        )
    if label_map.names != list(class_names):
        raise InputError(
            f"--classes {p} lists classes {', '.join(label_map.names)} but the class map has "
            f"{', '.join(class_names)}: give the mapping of the model that made the map"
        )
    return label_map, background


def _value_names(data: dict[Any, Any], p: Path, class_names: list[str]) -> LabelMap:
    """An object of label value to class name: values naming no class of the map are ignored (and said so)."""
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
    return LabelMap.from_spec(spec, ignored)


def _table_classes(rows: list[Any], p: Path, ignore: list[Any] | None = None) -> LabelMap:
    """A class table ``[{id, name, color?, values?}, ...]`` as ``geoseg tile`` writes ``classes.json``: classes in
    id order, each labeled by its ``values`` (by its name without them). With ``ignore`` (a chip config's
    ``data.ignore_values``) classes whose values are all ignored are left out, as training leaves them out."""

    def build() -> LabelMap:
        ordered = sorted(rows, key=lambda row: int(row["id"])) if all(isinstance(r, dict) for r in rows) else rows
        if ignore:
            ignored = LabelMap.from_spec([], ignore)
            ordered = [r for r in ordered if not (isinstance(r, dict) and r.get("values") and ignored.ignored(r["values"]).all())]
        spec = [{k: v for k, v in r.items() if k != "id"} if isinstance(r, dict) else r for r in ordered]
        return LabelMap.from_spec(spec, ignore or ())

    fix = "a class table must be a list of {id, name, values} as geoseg tile writes to classes.json"
    return checked_labels(build, f"--classes {p}", fix)


def _trained_classes(data: dict[str, Any], p: Path, class_names: list[str]) -> tuple[LabelMap, Background | None]:
    """The classes a run of a config without ``data.classes`` trained: those of its chip folder's classes.json, or one
    class per distinct label value named by that value (in sorted order, ``data.background`` last), so the class
    map's names are the label values (the background aside)."""
    chips = data.get("chips")
    if chips:
        table = Path(str(chips)) / "classes.json"
        table = table if table.is_absolute() else p.resolve().parent / table
        if not table.is_file():
            raise InputError(
                f"--classes {p}: its chip folder's class table {table} does not exist: give the run's config.yaml "
                "or the chip folder's classes.json"
            )
        try:
            rows = json.loads(table.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError(f"--classes {p}: its chip folder's class table {table} cannot be read: tile again") from None
        ignore = data.get("ignore_values")
        ignore = [] if ignore is None else (list(ignore) if isinstance(ignore, (list, tuple)) else [ignore])
        return _table_classes(rows if isinstance(rows, list) else [None], table, ignore), None
    spec = data.get("background")
    name = spec.get("name") if isinstance(spec, dict) else None
    values = class_names[:-1] if name is not None and class_names and class_names[-1] == str(name) else class_names
    log.info("--classes %s has no data.classes: label values are taken as the class map's class names", p)
    return config_labels({**data, "classes": list(values)}, p, f"--classes {p}")


def evaluate(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    label_field: str | None = None,
    classes: str | os.PathLike | LabelMap | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    report: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Per-class IoU, F1, precision, recall, the confusion matrix and their means; optionally a report folder.

    Without ``classes``, polygon labels are matched to the class map's class
    names and mask values are taken as class ids. A class without truth
    pixels has None for its scores (not 0); classes whose scores rest on
    fewer than :data:`~geoseg.core.metrics.MIN_SUPPORT` truth pixels are
    named in one warning (logged, and in the summary's ``warnings``).

    With ``report`` (a folder, built atomically; an existing report is
    replaced only with ``overwrite``) it writes ``metrics.json`` (the
    summary), ``per_class.csv``, ``confusion.png`` and ``errors.tif`` (with
    ``errors.qml``) on the class map's grid: 0 correct, 1 + k wrong where the
    truth is class k, 255 not scored (see :mod:`geoseg.report.errormap`).

    Example:
        >>> m = evaluate("out/classes.tif", "labels.gpkg", label_field="fclass", report="eval")  # doctest: +SKIP
        >>> m["mean_iou"], sorted(p.name for p in Path("eval").iterdir())  # doctest: +SKIP
        (0.71, ['confusion.png', 'errors.qml', 'errors.tif', 'metrics.json', 'per_class.csv'])
    """
    from geoseg.io.classmap import class_table_of
    from geoseg.io.label_files import SceneGrid, open_labels
    from geoseg.io.outputs import check_outdir
    from geoseg.io.raster import gdal_env, open_scene
    from geoseg.report.scores import REPORT_MARKS

    if report is not None:
        extra = [] if isinstance(classes, LabelMap) else [classes]
        check_outdir(Path(report), [pred, truth, *extra], overwrite, marks=REPORT_MARKS, create_parents=True)
    with gdal_env(), open_scene(pred) as ds:
        table = class_table_of(ds)
        if not table:
            raise InputError(f"{pred} carries no class table: give a class map written by geoseg")
        label_map, background = _label_map(table, truth, classes)
        labels = open_labels(truth, SceneGrid.of(ds), label_field, label_map, background=background)
        try:
            notes = _id_notes(table, labels) if classes is None else []
            if report is None:
                cm = _score(ds, labels, len(table), progress)
                return _summarize(cm, table, pred, truth, notes)
            return _write_report(ds, labels, table, Path(report), overwrite, progress, (pred, truth), notes)
        finally:
            labels.close()


def _label_map(
    table: list[ClassInfo], truth: str | os.PathLike, classes: str | os.PathLike | LabelMap | None
) -> tuple[LabelMap, Background | None]:
    """How truth values map to the class map's classes (see :func:`evaluate`), and a config's background."""
    from geoseg.io.label_files import is_vector

    names = [c.name for c in table]
    if isinstance(classes, LabelMap):
        return classes, None
    if classes is not None:
        return _read_classes(classes, names)
    if is_vector(truth):
        return LabelMap.from_spec(names), None
    return LabelMap.from_spec([{"name": c.name, "values": [c.id]} for c in table]), None


def _id_notes(table: list[ClassInfo], labels: Any) -> list[str]:
    """One warning when a truth mask's values are taken as the map's class ids without a class table saying so."""
    from geoseg.core.classes import CLASSES_TAG
    from geoseg.io.classmap import class_table_of

    ds = getattr(labels, "dataset", None)  # a mask raster's own file; polygons name their classes
    if ds is None:
        return []
    own = class_table_of(ds) if ds.tags().get(CLASSES_TAG) else []
    nodata, truth = ds.nodata, labels.path
    if own and {c.id: c.name for c in own}.items() <= {c.id: c.name for c in table}.items():
        return []
    scored = [c for c in table if c.id != nodata]  # the mask's nodata is not scored: not shown as a class
    shown = first_few([f"{c.id} {c.name}" for c in scored], 4)
    if len(scored) < len(table):
        shown += f"; {nodata:g} is its nodata, not scored"
    why = "names its classes differently" if own else "carries no class table"
    return [
        f"{truth} {why}: its values are taken as the map's class ids ({shown}); if they mean other classes, "
        "give --classes (a training config or a JSON of value: class name)"
    ]


def _score(
    ds: Any, labels: Any, num_classes: int, progress: Callable[[str, int, int], None] | None, errors: Any = None
) -> ConfusionMatrix:
    """Count the confusion matrix over blocks of rows; with ``errors`` (a ClassMapWriter) also stream the error map."""
    from rasterio.windows import Window

    from geoseg.report.errormap import error_codes

    cm = ConfusionMatrix(num_classes)
    steps = range(0, ds.height, _ROWS)
    for n, y in enumerate(steps):
        window = Window(0, y, ds.width, min(_ROWS, ds.height - y))
        truth, pred = labels.read(window), ds.read(1, window=window)
        cm.update(truth, pred)
        if errors is not None:
            errors.write_rows(0, y, {"classes": error_codes(truth, pred, num_classes)})
        if progress:
            progress("evaluate", n + 1, len(steps))
    return cm


def _summarize(
    cm: ConfusionMatrix, table: list[ClassInfo], pred: object, truth: object, notes: list[str] | None = None
) -> dict[str, Any]:
    """The summary with its inputs and warnings (``notes`` and the thin-support one), each logged once."""
    summary = cm.summary([c.name for c in table])
    warnings = [*(notes or []), thin_support(summary)]
    warnings = [w for w in warnings if w]
    for warning in warnings:
        log.warning(warning)
    summary.update({"prediction": str(pred), "truth": str(truth), "warnings": warnings})
    return summary


def _write_report(
    ds: Any,
    labels: Any,
    table: list[ClassInfo],
    out: Path,
    overwrite: bool,
    progress: Callable[[str, int, int], None] | None,
    inputs: tuple[object, object],
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Score while streaming ``errors.tif``, then write the rest of the report; the folder appears only when complete."""
    from geoseg.io.classmap import ClassMapWriter
    from geoseg.io.outputs import atomic_folder
    from geoseg.report.errormap import error_table
    from geoseg.report.scores import REPORT_MARKS, write_report_files

    errors = error_table(table)
    with atomic_folder(out, overwrite, marks=REPORT_MARKS, create_parents=True) as tmp:
        tags = {"GEOSEG_ERROR_MAP": "0 correct; 1+k wrong where the truth is class k; 255 not scored"}
        writer = ClassMapWriter({"classes": tmp / "errors.tif"}, ds.crs, ds.transform, ds.width, ds.height, errors, tags)
        try:
            cm = _score(ds, labels, len(table), progress, writer)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        summary = _summarize(cm, table, *inputs, notes)
        write_report_files(tmp, summary, table)
    return summary


def write_json(summary: dict[str, Any], path: Path) -> None:
    """Write metrics as JSON atomically; missing parent folders are created (as ``report``'s are).

    Example:
        >>> write_json(evaluate("classes.tif", "labels.gpkg", label_field="fclass"), Path("eval/metrics.json"))  # doctest: +SKIP
    """
    from geoseg.io.outputs import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(summary, indent=2))
