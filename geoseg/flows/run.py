"""``geoseg run``: predict, vectorize and style one scene into a complete output folder.

The folder is built beside OUTDIR under a temporary name and renamed into
place only when complete; ``run.json`` is written last, so its presence means
the run finished.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.core.options import PredictOptions, Progress, RunOptions
from geoseg.core.version import __version__
from geoseg.flows.provenance import ModelRef, aoi_fingerprint, scene_stamp
from geoseg.inference.loop import PredictResult
from geoseg.inference.predict import assemble_blocks, open_model, predict
from geoseg.io.features import PolygonSink
from geoseg.io.outputs import atomic_folder, check_outdir
from geoseg.io.raster import scene_path
from geoseg.io.scene_files import check_files_outside
from geoseg.io.sources import default_resolution
from geoseg.polygonize.api import polygon_batches, write_batches
from geoseg.report.areas import areas_table, write_areas_csv
from geoseg.report.preview import scene_preview_bands, write_preview
from geoseg.report.styles import classes_qml, polygons_qml

__all__ = ["RunResult", "run"]


@dataclass
class RunResult:
    """Where :func:`run` wrote and what run.json holds."""

    outdir: Path
    record: dict[str, Any]


def run(
    image: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    model: object = "default",
    options: RunOptions | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    blocks: list[tuple[int, PredictResult]] | None = None,
    model_ref: ModelRef | None = None,
    **option_values: Any,
) -> RunResult:
    """Run the whole pipeline on one scene and write the OUTDIR files (docs/ARCHITECTURE.md, CLI contract).

    ``options`` (a :class:`RunOptions`) or its fields as keywords: those of
    :func:`geoseg.predict` (:class:`PredictOptions`), of the polygons
    (min_area, simplify) and ``preview_bands`` (the scene bands preview.png
    shows: 1 or 3 1-based indexes or band descriptions, e.g.
    ``"B08,B04,B03"``; default: natural colour by band name). ``blocks``
    (``(x0, PredictResult)`` pairs from ``predict(columns=...)``, as Dask
    workers make them for a split scene) replace the prediction: they are
    joined into ``classes.tif`` and ``confidence.tif``. ``model_ref`` names
    the file a loaded ``model`` object came from (path as given and SHA-256,
    hashed once by a batch) for run.json; a path or ``default`` is hashed here.

    Example:
        >>> geoseg.run("scene.tif", "out", model="model.pt", min_area=500, preview_bands="B08,B04,B03")  # doctest: +SKIP
    """
    started = time.perf_counter()
    opts = (options or RunOptions()).replace(**option_values)
    out = Path(outdir)
    model_path = model if isinstance(model, (str, os.PathLike)) else None
    check_outdir(out, [image, model_path, opts.predict.aoi], overwrite, create_parents=True)
    check_files_outside(out, [str(image)])  # building the folder would replace a scene's file
    timings: dict[str, float] = {}
    t = time.perf_counter()
    net = open_model(model, opts.predict.backend, opts.predict.device)
    timings["load_model"] = time.perf_counter() - t
    scene = scene_path(image, opts.predict.resolution)  # what later stages open: a multi-file source on its grid
    preview_bands = scene_preview_bands(scene, opts.preview_bands)  # a --preview-bands the scene lacks: refused now
    with atomic_folder(out, overwrite, create_parents=True) as tmp:
        result = _predict(image, scene, net, opts.predict, tmp, blocks, progress, timings)
        table, polygons = _vectorize(tmp, opts, progress, timings)
        t = time.perf_counter()
        (tmp / "classes.qml").write_text(classes_qml(table), encoding="utf-8")
        (tmp / "polygons.qml").write_text(polygons_qml(table), encoding="utf-8")
        areas = areas_table(tmp / "classes.tif", table)
        write_areas_csv(areas + _masked_areas(tmp / "clouds.tif"), tmp / "areas.csv")
        title = f"{Path(str(image)).name} — {net.card.name}"
        write_preview(scene, tmp / "classes.tif", table, tmp / "preview.png", title=title, bands=preview_bands)
        timings["report"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - started
        record = _record(image, model_ref or ModelRef.of(model), net, opts, timings, result, polygons, blocks, areas)
        (tmp / "run.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return RunResult(out, record)


def _vectorize(tmp: Path, opts: RunOptions, progress: Progress | None, timings: dict[str, float]) -> tuple[Any, int]:
    """Write ``polygons.gpkg`` (QGIS style inside) and ``polygons.geojson`` from ``tmp``'s class map; the class table
    and the number of polygons."""
    t = time.perf_counter()
    table, batches = polygon_batches(  # noded: polygons.geojson's neighbours keep their shared borders
        tmp / "classes.tif", opts.vectorize, confidence=tmp / "confidence.tif", progress=progress, noded=True
    )
    sinks = [
        PolygonSink(tmp / "polygons.gpkg", "GPKG", table, style=polygons_qml(table)),
        PolygonSink(tmp / "polygons.geojson", "GeoJSON", table, opts.vectorize.precision),
    ]
    per_class = write_batches(batches, sinks)
    timings["vectorize"] = time.perf_counter() - t
    return table, sum(per_class.values())


def _predict(
    image: str | os.PathLike[str],
    scene: str,
    net: Any,
    opts: PredictOptions,
    tmp: Path,
    blocks: list[tuple[int, PredictResult]] | None,
    progress: Progress | None,
    timings: dict[str, float],
) -> PredictResult:
    """Predict ``classes.tif`` and ``confidence.tif`` into ``tmp``, or join the ``blocks`` predicted apart."""
    t = time.perf_counter()
    outputs = {"classes": tmp / "classes.tif", "confidence": tmp / "confidence.tif"}
    if blocks is None:
        clouds = tmp / "clouds.tif" if opts.mask_clouds else None
        whole = predict(image, net, outputs["classes"], opts, confidence=outputs["confidence"], progress=progress, clouds=clouds)
        timings["predict"] = time.perf_counter() - t
        return whole
    result = assemble_blocks(scene, blocks, outputs, net.card)  # worker seconds summed over the blocks, then the join
    timings["predict_blocks"] = result.seconds.get("total", 0.0)
    timings["assemble_blocks"] = time.perf_counter() - t
    return result


def _masked_areas(clouds: Path) -> list[dict[str, Any]]:
    """areas.csv's rows for what ``--mask-clouds`` made nodata: cloud and cloud shadow (no class id; share of the
    scene's valid pixels), none without a cloud mask."""
    if not clouds.exists():
        return []
    from geoseg.inference.clouds import CLOUD, CLOUD_CLASSES, SHADOW

    rows = areas_table(clouds, CLOUD_CLASSES)
    return [
        dict(row, class_id=None, class_name=f"masked: {row['class_name']}") for row in rows if row["class_id"] in (CLOUD, SHADOW)
    ]


def _resolution(opts: RunOptions) -> float | None:
    """The grid of a multi-file source: ``--resolution`` as carried in the options (or set for the process)."""
    return opts.predict.resolution if opts.predict.resolution is not None else default_resolution()


def _parts(result: PredictResult, blocks: list[tuple[int, PredictResult]] | None) -> list[PredictResult]:
    return [result] if blocks is None else [part for _, part in blocks]


def _grid(result: PredictResult, blocks: list[tuple[int, PredictResult]] | None) -> dict[str, Any]:
    """run.json's ``grid``: whether the scene was resampled to the model's pixel size, from which to which, and the
    grid of the outputs (blocks predicted apart all say the same)."""
    grids = [getattr(part, "grid", None) for part in _parts(result, blocks)]
    return dict(next((grid for grid in grids if grid), {}))


def _record(
    image: str | os.PathLike[str],
    model_ref: ModelRef,
    net: Any,
    opts: RunOptions,
    timings: dict[str, float],
    result: PredictResult,
    polygons: int,
    blocks: list[tuple[int, PredictResult]] | None,
    areas: list[dict[str, Any]],
) -> dict[str, Any]:
    """The contents of run.json."""
    return {
        "geoseg_version": __version__,
        "model": {
            "name": net.card.name,
            "path": model_ref.path,
            "sha256": model_ref.sha256,
            "arch": net.card.arch,
            "encoder": net.card.encoder,
            "quantization": net.card.quantization,
        },
        "inputs": {
            "image": str(image),
            "image_stamp": scene_stamp(image),
            "aoi": opts.predict.aoi,
            "aoi_sha256": aoi_fingerprint(opts.predict.aoi),
            "resolution": _resolution(opts),
        },
        "parameters": opts.record(),
        "effective": next(filter(None, (getattr(part, "settings", None) for part in _parts(result, blocks))), {}),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "counts": {
            "chips_total": result.chips_total,
            "chips_predicted": result.chips_predicted,
            "chips_skipped": result.chips_skipped,
            "polygons": polygons,
            "blocks": len(blocks) if blocks else 1,
        },
        "grid": _grid(result, blocks),
        "clouds": next(filter(None, (getattr(part, "clouds", None) for part in _parts(result, blocks))), None),
        "warnings": result.warnings,
        "areas": areas,
    }
