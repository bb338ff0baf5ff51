"""``geoseg.train``: train an smp model from a config, with a spatial split and a self-describing checkpoint.

The stages, one module each: :mod:`~geoseg.training.config` (the typed
config), :mod:`~geoseg.training.prepare` (scenes, split, class weights),
:mod:`~geoseg.training.distributed` (torchrun), :mod:`~geoseg.training.loop`
(the epochs) and :mod:`~geoseg.training.rundir` (RUN_DIR). RUN_DIR receives
``model.pt`` (best validation mean IoU), ``last.pt``, ``resume.pt`` (weights
and optimizer state for ``--resume``), ``history.csv``, ``curves.png``, ``metrics.json``,
``confusion.png`` (the best epoch's validation confusion matrix) and a copy of
the config.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.core.labels import LabelMap
from geoseg.core.options import Progress
from geoseg.model.card import DOMAIN_PERCENTILES
from geoseg.model.device import cpu_threads
from geoseg.training.config import TrainConfig, read_config
from geoseg.training.data import SceneData, Split, band_percentiles, band_stats, class_counts
from geoseg.training.distributed import Dist, distributed, process_device, process_threads
from geoseg.training.loop import EpochLoop
from geoseg.training.prepare import class_weights, open_scenes, split_scenes
from geoseg.training.rundir import RunState, check_run_dir, check_same_config, write_config

__all__ = ["DATE_TAGS", "TrainResult", "scene_record", "train", "training_domain"]

log = logging.getLogger("geoseg")

DATE_TAGS = (
    "ACQUISITION_DATE",
    "DATATAKE_1_DATATAKE_SENSING_START",
    "SENSING_TIME",
    "DATE_ACQUIRED",
    "PRODUCT_START_TIME",
    "TIFFTAG_DATETIME",
)
"""GDAL metadata tags read, in this order, for a scene's acquisition date (TIFFTAG_DATETIME, last, is often
the file's writing time: used only when nothing better is there)."""
_DATE = re.compile(r"(\d{4})[-:/](\d{2})[-:/](\d{2})")


@dataclass
class TrainResult:
    """Where the run went and how it ended."""

    run_dir: Path
    model_path: Path
    best_epoch: int
    best_miou: float | None
    history: list[dict[str, Any]]
    metrics: dict[str, Any]


@contextlib.contextmanager
def _deterministic(device: str, threads: int | None) -> Iterator[None]:
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    elif device == "cpu":
        cpu_threads()  # no more threads than a container's CPU quota allows
    if device == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.set_num_threads(old_threads)


def train(
    config: TrainConfig | Mapping[str, Any] | str | os.PathLike,
    run_dir: str | os.PathLike,
    resume: bool = False,
    progress: Progress | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a model as ``config`` describes and write the run to ``run_dir``.

    ``config`` is a YAML path, a mapping (paths relative to the current
    folder) or a :class:`~geoseg.training.config.TrainConfig`. Returns the best
    checkpoint's path and the history.

    Example:
        >>> result = train("configs/brandenburg_default.yaml", "runs/default")  # doctest: +SKIP
        >>> result.best_miou  # doctest: +SKIP
    """
    from geoseg.model.device import resolve_device

    config = read_config(config)
    run_dir = Path(run_dir)
    device = resolve_device(config.train.device)
    with distributed(device) as dist:
        resume = check_run_dir(run_dir, resume)
        if resume:
            check_same_config(run_dir, config)
        dist.barrier()  # every process has checked RUN_DIR before rank 0 writes to it
        device = process_device(device, dist)
        threads = process_threads(config.train.threads, dist, device)
        shown = progress if dist.main else None
        with tempfile.TemporaryDirectory(prefix="geoseg-train-", ignore_cleanup_errors=True) as work:
            opened = open_scenes(config, shown, Path(work))
            try:
                with _deterministic(device, threads):
                    return _train(config, run_dir, resume, opened, device, shown, on_epoch, dist)
            finally:
                for scene in opened[0]:
                    scene.close()


def scene_record(ds: Any, name: str) -> dict[str, Any]:
    """A training scene in the model card's domain: its name, footprint in EPSG:4326 and acquisition date (or null).

    Example:
        >>> import rasterio
        >>> with rasterio.open("data_samples/brandenburg_s2_512.tif") as ds:
        ...     scene_record(ds, "brandenburg_s2_512.tif")["bbox"]
        [12.5326, 52.4652, 12.6105, 52.5128]
    """
    from rasterio.warp import transform_bounds

    bbox = None
    if ds.crs is not None:
        bbox = [round(float(v), 4) for v in transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)]
    tags = {**ds.tags(), **{k: v for d in ds.tag_namespaces() if d != "IMAGE_STRUCTURE" for k, v in ds.tags(ns=d).items()}}
    date = None
    for key in DATE_TAGS:
        found = _DATE.search(str(tags.get(key, "")))
        if found:
            date = "-".join(found.groups())
            break
    return {"name": name, "bbox": bbox, "date": date}


def training_domain(scenes: list[SceneData], split: Split) -> dict[str, Any]:
    """The card's ``provenance["domain"]``: footprints, dates and band percentiles of the training chips
    (``validation_confidence`` is filled in at the best epoch).

    Example:
        >>> training_domain(scenes, split)["percentiles"]["p99"]  # doctest: +SKIP
        [2410.0, 2633.5, 3902.0]
    """
    records = [scene_record(s.ds, Path(s.image).name) for s in scenes]
    boxes = [r["bbox"] for r in records if r["bbox"] is not None]
    bbox = None
    if boxes:
        bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    percentiles, pixels = band_percentiles(scenes, split.train, DOMAIN_PERCENTILES)
    return {"scenes": records, "bbox": bbox, "percentiles": percentiles, "pixels": pixels, "validation_confidence": None}


def _build(
    config: TrainConfig,
    band_names: list[str],
    label_map: LabelMap,
    pixel: float,
    stats: tuple[list[float], list[float]],
    scenes: list[SceneData],
    split: Split,
) -> Any:
    """A new model for the config, with the training data's description in its card."""
    from geoseg.model.factory import create_model

    m = config.model
    model = create_model(
        m.arch,
        m.encoder,
        bands=band_names,
        classes=label_map.classes,  # type: ignore[arg-type]  # create_model takes ClassInfo too
        chip_size=m.chip_size,
        overlap=m.overlap,
        mean=stats[0],
        std=stats[1],
        pixel_size=round(pixel, 3),
        encoder_weights=m.encoder_weights,
        name=config.name,
        **m.params,
    )
    model.card.provenance.update(
        {
            "description": config.description,
            **{key: getattr(config, key) for key in ("attribution", "licence") if getattr(config, key)},
            "training_scenes": [Path(s.image).name for s in scenes],
            "training_chips": len(split.train),
            "validation_chips": len(split.val),
            "label_values": {c.name: label_map.values_of(c.id) for c in label_map.classes},
            "domain": training_domain(scenes, split),
        }
    )
    return model


def _train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    opened: tuple[list[SceneData], list[str], LabelMap, float],
    device: str,
    progress: Progress | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
    dist: Dist,
) -> TrainResult:
    import torch

    scenes, band_names, label_map, pixel = opened
    split = split_scenes(config, scenes)
    stats = band_stats(scenes, split.train_cells)
    counts = class_counts(scenes, split.train_cells)
    names = label_map.names
    for name, count in zip(names, counts):
        if count == 0:
            log.warning("class %s has no labeled pixel in the training area: it cannot be learned", name)
    weights = class_weights(config, counts, names)
    torch.manual_seed(config.train.seed)
    model = _build(config, band_names, label_map, pixel, stats, scenes, split)
    model.card.provenance["class_weights"] = None if weights is None else [round(w, 4) for w in weights]
    model.card.provenance["training_pixels"] = {n: int(c) for n, c in zip(names, counts)}
    model.card.provenance["processes"] = dist.world
    loop = EpochLoop(config, model, scenes, split, weights, device, dist)
    if resume:
        state = loop.resume(run_dir)
    else:
        state = RunState()
        if dist.main:
            write_config(run_dir, config)
    state = loop.run(state, run_dir, progress, on_epoch)
    best = state.best if state.best >= 0 and split.val else None
    return TrainResult(run_dir, run_dir / "model.pt", state.best_epoch, best, state.history, state.best_summary)
