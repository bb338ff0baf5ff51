"""``geoseg change``: land-cover change between two dates, from two class maps (or two scenes and a model).

AFTER is read on BEFORE's grid (nearest resampling when the grids differ)
where the two overlap, in strips of rows. A first pass counts every from→to
pair (pixels and m², geodesic in geographic CRSs); the pairs that occur are
numbered, and a second pass writes them as ``transitions.tif``. Changed
regions are then polygonized from it in strips like ``geoseg vectorize``.
OUTDIR is built beside its final place and renamed when complete;
``summary.json`` is written last.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseg.core.classes import CLASSES_TAG, ClassInfo
from geoseg.core.errors import OptionError
from geoseg.core.options import PredictOptions, Progress, RunOptions, VectorizeOptions
from geoseg.core.transitions import MAX_CLASSES, TRANSITIONS_TAG, Codes, Remap, Transitions, complete_table, match_tables
from geoseg.core.version import __version__
from geoseg.inference.predict import open_model, predict
from geoseg.io.align import AlignedPair, Strip, overlap_window
from geoseg.io.classmap import ClassMapWriter, class_table_of
from geoseg.io.features import PolygonSink
from geoseg.io.outputs import CHANGE_MARKS, atomic_folder, check_outdir
from geoseg.io.raster import gdal_env, open_scene
from geoseg.io.scene_files import check_files_outside
from geoseg.polygonize.api import polygon_batches, read_class_table, write_batches
from geoseg.polygonize.tables import WIDE_MAX_ID
from geoseg.report.areas import row_areas_m2
from geoseg.report.change import (
    ChangeCounts,
    class_balance,
    distinct_names,
    matrix_rows,
    write_change_preview,
    write_matrix_csv,
)
from geoseg.report.styles import classes_qml, polygons_qml

if TYPE_CHECKING:
    from geopandas import GeoDataFrame

__all__ = ["ChangeResult", "change"]

log = logging.getLogger("geoseg")


@dataclass
class ChangeResult:
    """Where :func:`change` wrote and what summary.json holds."""

    outdir: Path
    summary: dict[str, Any]


def change(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    model: object = None,
    options: RunOptions | None = None,
    *,
    classes_table: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    **option_values: Any,
) -> ChangeResult:
    """Compare two dates and write OUTDIR: transitions.tif (+ .qml), changes.gpkg, changes.geojson (+ changes.qml),
    matrix.csv, preview.png and summary.json (written last; with ``mask_clouds``, ``clouds`` has each date's shares).

    ``before`` and ``after`` are class maps (geoseg's ``classes.tif``, or any integer raster whose values
    ``classes_table``, a JSON class table or a model, names), or scenes when ``model`` is given: each is then
    predicted first (``before_classes.tif`` and ``after_classes.tif`` are kept in OUTDIR). ``options`` (a
    :class:`RunOptions`) or its fields as keywords: ``min_area`` and ``simplify`` for the change polygons, and with
    a model the prediction options of :func:`geoseg.run`. AFTER is compared on BEFORE's grid where the two overlap;
    class tables that differ are matched by class name.

    Example:
        >>> geoseg.change("2019/classes.tif", "2024/classes.tif", "change", min_area=500)  # doctest: +SKIP
        >>> geoseg.change("s2_2019.tif", "s2_2024.tif", "change", model="default")  # doctest: +SKIP
    """
    started = time.perf_counter()
    opts = (options or RunOptions()).replace(**option_values)
    out, names = Path(outdir), (str(before), str(after))
    model_path = model if isinstance(model, (str, os.PathLike)) else None
    check_outdir(out, [before, after, model_path, classes_table, opts.predict.aoi], overwrite, CHANGE_MARKS, True)
    check_files_outside(out, [str(before), str(after)])  # building the folder would replace a scene's file
    if model is None:
        _refuse_prediction_options(opts.predict)
    table = read_class_table(classes_table, max_id=WIDE_MAX_ID) if classes_table else None
    if model is not None:
        _check_scenes_overlap(names)  # before minutes of prediction
    net = open_model(model, opts.predict.backend, opts.predict.device) if model is not None else None
    warnings: list[str] = []
    clouds: dict[str, Any] = {}  # with --mask-clouds: each date's cloud mask record (shares masked)
    with atomic_folder(out, overwrite, CHANGE_MARKS, create_parents=True) as tmp:
        maps = _class_maps((before, after), net, opts, tmp, warnings, progress, clouds)
        tables = [table or _table_of(m) for m in maps]
        with AlignedPair(*maps, tables=(table is not None, table is not None), names=names) as pair:
            remap = match_tables(tables[0], tables[1], names)
            _warn_one_table(tables, names, warnings)
            codes = _codes(pair, remap, progress)
            counts = _count(pair, remap, codes, progress)
            present = [int(v) for i, v in enumerate(codes.values) if counts.pixels[i].any() or counts.pixels[:, i].any()]
            transitions = Transitions.from_pixels(counts.pixels, codes, complete_table(tables[0] or tables[1], present))
            _write_transitions(pair, remap, codes, transitions, tmp / "transitions.tif", progress)
            alignment = pair.alignment() | ({"after_values_to_before": remap.record()} if remap else {})
        polygons = _write_changes(tmp, transitions, opts.vectorize, progress)
        summary = _summary(names, model_path, classes_table, opts, alignment, counts, transitions, polygons, warnings)
        summary["clouds"] = clouds or None
        _write_reports(tmp, counts, transitions, " → ".join(distinct_names(*names)))
        summary["timings_s"] = {"total": round(time.perf_counter() - started, 3)}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return ChangeResult(out, summary)


def _refuse_prediction_options(given: PredictOptions) -> None:
    """Prediction options without a model would be ignored: refused, naming them."""
    default = PredictOptions()
    changed = [f.name for f in fields(PredictOptions) if getattr(given, f.name) != getattr(default, f.name)]
    if changed:
        shown = ", ".join("--" + name.replace("_", "-") for name in changed)
        raise OptionError(
            f"{shown} {'applies' if len(changed) == 1 else 'apply'} to predicting scenes: give -m MODEL to compare "
            "two scenes, or leave them out to compare "
            "two class maps"
        )


def _check_scenes_overlap(names: tuple[str, str]) -> None:
    """Two scenes that do not overlap are refused before they are predicted."""
    with gdal_env(), open_scene(names[0]) as b, open_scene(names[1]) as a:
        overlap_window(b, a, names)


def _class_maps(
    inputs: tuple[str | os.PathLike[str], str | os.PathLike[str]],
    net: Any,
    opts: RunOptions,
    tmp: Path,
    warnings: list[str],
    progress: Progress | None,
    clouds: dict[str, Any],
) -> tuple[Path | str | os.PathLike[str], Path | str | os.PathLike[str]]:
    """The two class maps: the inputs themselves, or the scenes predicted into ``tmp`` by ``net`` (with
    ``mask_clouds``, each date's cloud mask record goes into ``clouds`` under ``before`` and ``after``)."""
    if net is None:
        return inputs
    maps = []
    for label, scene in zip(("before", "after"), inputs):
        path = tmp / f"{label}_classes.tif"
        stage = _stage(progress, f"predict {label}")
        result = predict(scene, net, path, opts.predict, progress=stage)
        warnings.extend(result.warnings)
        if result.clouds is not None:
            clouds[label] = result.clouds
        maps.append(path)
    return maps[0], maps[1]


def _stage(progress: Progress | None, name: str) -> Progress | None:
    """``progress`` reporting under another stage name."""
    if progress is None:
        return None
    return lambda stage, done, total: progress(name, done, total)


def _table_of(path: str | os.PathLike[str]) -> list[ClassInfo]:
    """A class map's own class table: its GEOSEG_CLASSES tag, or (uint8 maps) its colour table; else none."""
    with gdal_env(), open_scene(path) as ds:
        return class_table_of(ds) if ds.dtypes[0] == "uint8" or CLASSES_TAG in ds.tags() else []


def _warn_one_table(tables: list[list[ClassInfo]], names: tuple[str, str], warnings: list[str]) -> None:
    """One map without a class table is read with the other's names: said once."""
    if bool(tables[0]) != bool(tables[1]):
        plain, named = (names[0], names[1]) if not tables[0] else (names[1], names[0])
        warnings.append(f"{plain} has no class table: its values are read as the classes of {named}")
        log.warning(warnings[-1])


def _after_values(strip: Strip, remap: Remap | None) -> np.ndarray:
    return remap(strip.after, strip.valid) if remap is not None else strip.after


def _codes(pair: AlignedPair, remap: Remap | None, progress: Progress | None) -> Codes:
    """The class values of both maps, numbered: every byte for uint8 maps, else those found (a first pass)."""
    if pair.bytes:
        return Codes.bytes()
    found: set[int] = set()
    for strip in _strips(pair, progress, "classes"):
        found.update(np.unique(strip.before[strip.valid]).tolist())
        found.update(np.unique(_after_values(strip, remap)[strip.valid]).tolist())
        if len(found) > MAX_CLASSES:
            break  # not a class map: Codes.found refuses it without reading the rest
    return Codes.found(found, pair.names)


def _count(pair: AlignedPair, remap: Remap | None, codes: Codes, progress: Progress | None) -> ChangeCounts:
    """Pixels and m² of every from→to pair in the overlap."""
    row_off, height = int(pair.window.row_off), pair.shape[0]
    rows = row_areas_m2(pair.before)[row_off : row_off + height]
    counts = ChangeCounts.empty(codes)
    for strip in _strips(pair, progress, "compare"):
        n = strip.before.shape[0]
        counts.add(
            codes.index(strip.before), codes.index(_after_values(strip, remap)), strip.valid, rows[strip.y0 : strip.y0 + n]
        )
    return counts


def _strips(pair: AlignedPair, progress: Progress | None, stage: str) -> Iterator[Strip]:
    height = pair.shape[0]
    for strip in pair.strips():
        yield strip
        if progress:
            progress(stage, min(height, strip.y0 + strip.before.shape[0]), height)


def _write_transitions(
    pair: AlignedPair, remap: Remap | None, codes: Codes, transitions: Transitions, path: Path, progress: Progress | None
) -> None:
    """Write ``transitions.tif`` on the overlap of BEFORE's grid, streamed by rows."""
    lookup, k = transitions.lookup(codes), len(codes)
    height, width = pair.shape
    writer = ClassMapWriter(
        {"classes": path},
        pair.before.crs,
        pair.transform,
        width,
        height,
        transitions.as_classes(),
        tags={TRANSITIONS_TAG: transitions.tag()},
        dtype=transitions.dtype,
    )
    try:
        for strip in _strips(pair, progress, "transitions"):
            values = lookup[codes.index(strip.before) * k + codes.index(_after_values(strip, remap))]
            values[~strip.valid] = transitions.nodata
            writer.write_rows(0, strip.y0, {"classes": values})
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    (path.with_suffix(".qml")).write_text(classes_qml(transitions.as_classes()), encoding="utf-8")


def _write_changes(tmp: Path, transitions: Transitions, options: VectorizeOptions, progress: Progress | None) -> int:
    """Polygons of the changed regions into changes.gpkg and changes.geojson (unchanged pixels are background)."""
    vector = VectorizeOptions(min_area=options.min_area, simplify=options.simplify, background=transitions.unchanged)
    table, batches = polygon_batches(tmp / "transitions.tif", vector, progress=progress, noded=True)  # for changes.geojson
    changed = [c for c in table if c.id not in transitions.unchanged]
    style = polygons_qml(changed)
    sinks = [
        PolygonSink(tmp / "changes.gpkg", "GPKG", changed, style=style),
        PolygonSink(tmp / "changes.geojson", "GeoJSON", changed, options.precision),
    ]
    per_class = write_batches(_with_classes(batches, transitions), sinks)
    (tmp / "changes.qml").write_text(style, encoding="utf-8")
    return sum(per_class.values())


def _with_classes(batches: Iterator[GeoDataFrame], transitions: Transitions) -> Iterator[GeoDataFrame]:
    """The batches with ``from_class`` and ``to_class`` first; ``class_id`` is the transitions.tif value."""
    for frame in batches:
        pairs = [transitions.pairs[int(v)] for v in frame["class_id"]]
        frame.insert(0, "from_class", [transitions.name(a) for a, _ in pairs])
        frame.insert(1, "to_class", [transitions.name(b) for _, b in pairs])
        yield frame


def _write_reports(tmp: Path, counts: ChangeCounts, transitions: Transitions, title: str) -> None:
    write_matrix_csv(matrix_rows(counts, transitions), tmp / "matrix.csv")
    write_change_preview(tmp / "transitions.tif", transitions, tmp / "preview.png", title=title)


def _summary(
    names: tuple[str, str],
    model_path: str | os.PathLike[str] | None,
    classes_table: str | os.PathLike[str] | None,
    opts: RunOptions,
    alignment: dict[str, Any],
    counts: ChangeCounts,
    transitions: Transitions,
    polygons: int,
    warnings: list[str],
) -> dict[str, Any]:
    """The contents of summary.json (and the warnings about empty results, logged)."""
    same = np.eye(len(counts.codes), dtype=bool)
    compared, changed = int(counts.pixels.sum()), int(counts.pixels[~same].sum())
    if not compared:
        warnings.append(f"{names[0]} and {names[1]}: no pixel is valid on both dates; the outputs are empty")
    elif not changed:
        warnings.append(f"{names[0]} and {names[1]}: no compared pixel changed class; the change layer is empty")
    if not compared or not changed:
        log.warning(warnings[-1])
    return {
        "geoseg_version": __version__,
        "inputs": {
            "before": names[0],
            "after": names[1],
            "model": str(model_path) if model_path else None,
            "classes": str(classes_table) if classes_table else None,
        },
        "alignment": alignment,
        "parameters": opts.record() if model_path else {"min_area": opts.vectorize.min_area, "simplify": opts.vectorize.simplify},
        "pixels": {"compared": compared, "changed": changed},
        "area_m2": {"compared": round(float(counts.area_m2.sum()), 2), "changed": round(float(counts.area_m2[~same].sum()), 2)},
        "changed_share": round(changed / compared, 6) if compared else 0.0,
        "transitions": len(transitions.pairs),
        "polygons": polygons,
        "classes": class_balance(counts, transitions),
        "warnings": warnings,
    }
