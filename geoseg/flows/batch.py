"""Batch runs: several scenes into one OUTDIR, resumable, one failure does not stop the rest.

``OUTDIR/<scene name>/`` holds each scene's complete :func:`geoseg.run`
folder; ``batch.json`` says for each scene ``done``, ``skipped`` (its
``run.json`` existed: a resumed batch) or ``failed`` with the reason;
``classes.vrt`` mosaics every finished class map and ``polygons.gpkg``
merges their polygons with a ``scene`` field.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg.core.errors import InputError
from geoseg.core.options import Progress, RunOptions
from geoseg.flows.scene import run_scene
from geoseg.io.outputs import is_mark

__all__ = ["BATCH_FILES", "BATCH_MARKS", "BatchResult", "expand_inputs", "is_batch", "run_batch"]

log = logging.getLogger("geoseg")
_GLOB = set("*?[")
BATCH_MARKS = ("batch.json",)
"""The file that marks a folder as a geoseg batch OUTDIR (resumed when run again)."""
BATCH_FILES = ("batch.json", "classes.vrt", "polygons.gpkg")
"""What a batch writes at the top of OUTDIR: no scene folder may take these names."""


def is_batch(items: Sequence[str]) -> bool:
    """True when the inputs ask for the batch layout: several items, a glob or an ``@list.txt``.

    Example:
        >>> is_batch(["a.tif"]), is_batch(["a.tif", "b.tif"]), is_batch(["scenes/*.tif"]), is_batch(["@list.txt"])
        (False, True, True, True)
    """
    return len(items) > 1 or any(str(i).startswith("@") or _GLOB & set(str(i)) for i in items)


def expand_inputs(items: Sequence[str]) -> list[str]:
    """Scene paths from paths, globs and ``@list.txt`` files (one path per line, ``#`` comments).

    Example:
        >>> expand_inputs(["data_samples/brandenburg_s2_512.tif"])
        ['data_samples/brandenburg_s2_512.tif']
    """
    scenes: list[str] = []
    for item in items:
        text = str(item)
        if text.startswith("@"):
            listing = Path(text[1:])
            if not listing.is_file():
                raise InputError(f"list file {listing} does not exist: give @FILE with one scene path per line")
            for line in listing.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    p = Path(line)
                    scenes.append(line if p.is_absolute() or line.startswith("/vsi") else str(listing.parent / p))
        elif _GLOB & set(text) and not text.startswith("/vsi"):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"{text} matches no file: check the pattern (quote it so the shell leaves it to geoseg)")
            scenes.extend(matches)
        else:
            scenes.append(text)
    if not scenes:
        raise InputError("no scene given: name scene files, a glob, or @list.txt")
    seen: dict[str, str] = {}
    for scene in scenes:
        stem = _stem(scene)
        if stem.lower() in BATCH_FILES or stem.startswith("."):
            raise InputError(f"scene {scene} would write OUTDIR/{stem}, a name the batch keeps for itself: rename the file")
        if stem.lower() in seen and seen[stem.lower()] != scene:
            raise InputError(
                f"{seen[stem.lower()]} and {scene} would both write OUTDIR/{stem}: rename one or run them in separate batches"
            )
        seen[stem.lower()] = scene
    return list(dict.fromkeys(scenes))


def _stem(scene: str) -> str:
    return Path(scene.rstrip("/")).stem


@dataclass
class BatchResult:
    """Each scene's status (``done``, ``skipped``, ``failed``) and the batch outputs."""

    outdir: Path
    scenes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The scenes that failed, with their reasons."""
        return [s for s in self.scenes if s["status"] == "failed"]

    @property
    def counts(self) -> dict[str, int]:
        """Scenes per status."""
        return {k: sum(s["status"] == k for s in self.scenes) for k in ("done", "skipped", "failed")}


def run_batch(
    images: Sequence[str],
    outdir: str | os.PathLike,
    model: object = "default",
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    options: RunOptions | None = None,
    **option_values: Any,
) -> BatchResult:
    """Run :func:`geoseg.run` on every scene into ``OUTDIR/<scene>/``; resumable, failures recorded.

    The model is loaded once. Scenes whose ``run.json`` exists are skipped
    unless ``overwrite``. Returns every scene's status; ``batch.json``,
    ``classes.vrt`` and ``polygons.gpkg`` are (re)written at the end.

    ``workers`` runs the scenes on a Dask ``LocalCluster`` of that many
    single-thread worker processes, ``scheduler`` on an existing Dask cluster
    (``tcp://host:8786``); each scene is one task, each worker loads the
    model once, and the outputs are the same as in one process. A scene
    wider than ``block_width`` (option of :func:`geoseg.predict`) is split
    into vertical blocks predicted as separate tasks (on different workers),
    then joined and vectorized as one map by a last task. ``options`` (a
    :class:`~geoseg.core.options.RunOptions`) or its fields as keywords say
    how each scene runs.

    Example:
        >>> result = run_batch(["a.tif", "b.tif"], "out", model="model.pt")  # doctest: +SKIP
        >>> [s["status"] for s in result.scenes]  # doctest: +SKIP
    """
    from geoseg.inference.predict import open_model
    from geoseg.io.outputs import check_outdir, claimed_folder

    opts = (options or RunOptions()).replace(**option_values)
    scenes = expand_inputs(images)
    out = Path(outdir)
    check_outdir(out, scenes, overwrite=True, marks=BATCH_MARKS, create_parents=True)  # an existing batch resumes
    distributed = workers is not None or scheduler is not None
    if distributed and not isinstance(model, (str, os.PathLike)):
        raise InputError("--workers and --scheduler need the model as a file path (or 'default'), not an object")
    net = model if distributed else open_model(model, opts.predict.backend, opts.predict.device)
    client = cluster = None
    if distributed:  # check the model file and reach the cluster before anything is written
        open_model(model, opts.predict.backend, "cpu")
        from geoseg.flows.dask import make_client

        client, cluster = make_client(workers, scheduler)
    try:
        with claimed_folder(out, BATCH_MARKS, create_parents=True):  # a second batch into the same OUTDIR is refused meanwhile
            result = _run_all(scenes, out, net, client, progress, overwrite, opts)
            finished = [out / s["folder"] for s in result.scenes if s["status"] != "failed"]
            _write_batch_outputs(out, finished, result, model)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return result


def _run_all(
    scenes: list[str],
    out: Path,
    net: object,
    client: Any,
    progress: Progress | None,
    overwrite: bool,
    options: RunOptions,
) -> BatchResult:
    result = BatchResult(out)
    todo = []
    for scene in scenes:
        target = out / _stem(scene)
        entry: dict[str, Any] = {"scene": scene, "folder": target.name}
        result.scenes.append(entry)
        if is_mark(target / "run.json") and not overwrite:
            entry.update(status="skipped", seconds=0.0)
        else:
            entry.update(status="pending")
            todo.append(entry)
    _write_record(out, result, net, [])  # at once: an interrupted batch is still geoseg's, and resumes
    if client is not None:
        from geoseg.flows.dask import run_on_dask

        run_on_dask(todo, out, str(net), client, progress, len(scenes) - len(todo), len(scenes), options)
    else:
        for n, entry in enumerate(todo):
            entry.update(run_scene(entry["scene"], str(out / entry["folder"]), net, options, progress))
            if progress:
                progress("batch", len(scenes) - len(todo) + n + 1, len(scenes))
    return result


def _write_batch_outputs(out: Path, finished: list[Path], result: BatchResult, model: object) -> None:
    from geoseg.io.mosaic import merge_polygons, mosaic_vrt
    from geoseg.report.styles import polygons_qml

    notes = []
    if finished:
        notes += mosaic_vrt([f / "classes.tif" for f in finished], out / "classes.vrt")
        notes += merge_polygons([f / "polygons.gpkg" for f in finished], out / "polygons.gpkg", style=polygons_qml)
    else:
        for name in ("classes.vrt", "polygons.gpkg"):
            if (out / name).exists():
                (out / name).unlink()
    _write_record(out, result, model, notes)


def _write_record(out: Path, result: BatchResult, model: object, notes: list[str]) -> None:
    """Write batch.json: each scene's status (``pending`` until it ran), counts and notes."""
    from geoseg.core.version import __version__
    from geoseg.io.outputs import write_text_atomic

    record = {
        "geoseg_version": __version__,
        "model": str(model) if isinstance(model, (str, os.PathLike)) else getattr(getattr(model, "card", None), "name", None),
        "scenes": result.scenes,
        "counts": result.counts,
        "notes": notes,
    }
    write_text_atomic(out / "batch.json", json.dumps(record, indent=2))
