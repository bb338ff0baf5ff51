"""``geoseg run``: predict, vectorize and style one scene into a complete output folder.

The folder is built beside OUTDIR under a temporary name and renamed into
place only when complete; ``run.json`` is written last, so its presence means
the run finished.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.version import __version__
from geoseg.io.paths import atomic_folder, check_outdir

__all__ = ["RunResult", "run"]

FILES = (
    "classes.tif",
    "confidence.tif",
    "polygons.gpkg",
    "polygons.geojson",
    "classes.qml",
    "polygons.qml",
    "areas.csv",
    "preview.png",
    "run.json",
)


@dataclass
class RunResult:
    """Where :func:`run` wrote and what run.json holds."""

    outdir: Path
    record: dict[str, Any]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def areas_table(classes: Path, table: list) -> list[dict[str, Any]]:
    """Pixels, area (m²) and share of the classified area for each class of a class map, read in blocks."""
    from geoseg.io.raster import gdal_env, open_scene, pixel_area_m2

    with gdal_env(), open_scene(classes) as ds:
        counts = np.zeros(256, dtype=np.int64)
        for _, window in ds.block_windows(1):
            counts += np.bincount(ds.read(1, window=window).ravel(), minlength=256)
        pixel_area = pixel_area_m2(ds)
    total = counts[:255].sum()
    return [
        {
            "class_id": c.id,
            "class_name": c.name,
            "pixels": int(counts[c.id]),
            "area_m2": round(float(counts[c.id] * pixel_area), 2),
            "share": round(float(counts[c.id] / total), 6) if total else 0.0,
        }
        for c in table
    ]


def run(
    image: str | os.PathLike,
    outdir: str | os.PathLike,
    model: object = "default",
    *,
    min_area: float | None = None,
    simplify: float | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    blocks: list[tuple[int, Any]] | None = None,
    **predict_options: Any,
) -> RunResult:
    """Run the whole pipeline on one scene and write the OUTDIR files of DESIGN.md.

    ``predict_options`` are those of :func:`geoseg.predict` (bands, chip_size,
    overlap, batch_size, device, tta, aoi, backend, block_width). ``blocks``
    (``(x0, PredictResult)`` pairs from ``predict(columns=...)``, as Dask
    workers make them for a split scene) replaces the prediction: they are
    joined into ``classes.tif`` and ``confidence.tif`` and the rest runs as usual.

    Example:
        >>> geoseg.run("scene.tif", "out", model="model.pt", min_area=500)  # doctest: +SKIP
    """
    from geoseg.inference.predict import assemble_blocks, open_model, predict
    from geoseg.io.features import PolygonSink
    from geoseg.model.bundled import default_model_path
    from geoseg.model.factory import Model
    from geoseg.model.onnx import OnnxModel
    from geoseg.polygonize.api import polygon_batches, write_batches
    from geoseg.report.preview import write_preview
    from geoseg.report.styles import classes_qml, polygons_qml

    started = time.perf_counter()
    out = Path(outdir)
    model_path = None if isinstance(model, (Model, OnnxModel)) else model
    model_file = None if model_path is None else default_model_path() if model_path == "default" else Path(model_path)
    check_outdir(out, [image, model_path, predict_options.get("aoi")], overwrite)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    net = open_model(model, predict_options.get("backend", "auto"), predict_options.get("device", "auto"))
    timings["load_model"] = time.perf_counter() - t
    with atomic_folder(out) as tmp:
        t = time.perf_counter()
        if blocks is None:
            result = predict(
                image, net, tmp / "classes.tif", confidence=tmp / "confidence.tif", progress=progress, **predict_options
            )
            timings["predict"] = time.perf_counter() - t
        else:  # worker seconds summed over the blocks, then joining them here
            result = assemble_blocks(
                image, blocks, {"classes": tmp / "classes.tif", "confidence": tmp / "confidence.tif"}, net.card
            )
            timings["predict_blocks"] = result.seconds.get("total", 0.0)
            timings["assemble_blocks"] = time.perf_counter() - t
        t = time.perf_counter()
        table, batches = polygon_batches(
            tmp / "classes.tif", min_area=min_area, simplify=simplify, confidence=tmp / "confidence.tif", progress=progress
        )
        per_class = write_batches(
            batches,
            [
                PolygonSink(tmp / "polygons.gpkg", "GPKG", table, style=polygons_qml(table)),
                PolygonSink(tmp / "polygons.geojson", "GeoJSON", table),
            ],
        )
        timings["vectorize"] = time.perf_counter() - t
        t = time.perf_counter()
        (tmp / "classes.qml").write_text(classes_qml(table), encoding="utf-8")
        (tmp / "polygons.qml").write_text(polygons_qml(table), encoding="utf-8")
        areas = areas_table(tmp / "classes.tif", table)
        with (tmp / "areas.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(areas[0]) if areas else ["class_id"])
            writer.writeheader()
            writer.writerows(areas)
        write_preview(image, tmp / "classes.tif", table, tmp / "preview.png", title=f"{Path(str(image)).name} — {net.card.name}")
        timings["report"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - started
        record = {
            "geoseg_version": __version__,
            "model": {
                "name": net.card.name,
                "path": str(model_path) if model_path else None,
                "sha256": _sha256(model_file) if model_file else None,
                "arch": net.card.arch,
                "encoder": net.card.encoder,
            },
            "inputs": {"image": str(image), "aoi": str(predict_options["aoi"]) if predict_options.get("aoi") else None},
            "parameters": {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in predict_options.items()}
            | {"min_area": min_area, "simplify": simplify},
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "counts": {
                "chips_total": result.chips_total,
                "chips_predicted": result.chips_predicted,
                "chips_skipped": result.chips_skipped,
                "polygons": sum(per_class.values()),
                "blocks": len(blocks) if blocks else 1,
            },
            "warnings": result.warnings,
            "areas": areas,
        }
        (tmp / "run.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return RunResult(out, record)
