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
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from geoseg.core.errors import InputError
from geoseg.core.options import Progress, RunOptions
from geoseg.flows.provenance import ModelRef, check_resumable, output_parameters
from geoseg.flows.scene import run_scene
from geoseg.io.outputs import is_mark
from geoseg.io.paths import GLOB_CHARS, is_pattern, same_file

__all__ = ["BATCH_FILES", "BATCH_MARKS", "BatchResult", "expand_inputs", "is_batch", "run_batch"]

log = logging.getLogger("geoseg")
BATCH_MARKS = ("batch.json",)
"""The file that marks a folder as a geoseg batch OUTDIR (resumed when run again)."""
BATCH_FILES = ("batch.json", "classes.vrt", "polygons.gpkg")
"""What a batch writes at the top of OUTDIR: no scene folder may take these names."""


def _kind(item: str) -> str:
    """How an input item is read: ``path`` (a path that exists is taken as it is written, even with ``[`` or a leading
    ``@``), ``list`` (``@list.txt``) or ``glob``."""
    if item.startswith("@") and not _exists(item):
        return "list"
    return "glob" if is_pattern(item) else "path"


def _exists(path: str) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):  # a NUL byte, a name too long
        return False


def is_batch(items: Sequence[str]) -> bool:
    """True when the inputs ask for the batch layout: several items, a glob or an ``@list.txt`` (an existing file
    named like one is one scene).

    Example:
        >>> is_batch(["a.tif"]), is_batch(["a.tif", "b.tif"]), is_batch(["scenes/*.tif"]), is_batch(["@list.txt"])
        (False, True, True, True)
    """
    return len(items) > 1 or any(_kind(str(i)) != "path" for i in items)


def expand_inputs(items: Sequence[str], outdir: str | os.PathLike[str] | None = None) -> list[str]:
    """Scene paths from paths, globs and ``@list.txt`` files (one path per line, ``#`` comments). A path that exists
    is taken as it is written (``scene[1].tif``, ``@scene.tif``); a glob's folders that exist are taken as written too
    (``/data/[2023]/*.tif``); a glob's match that is ``outdir`` (``data/*`` into ``data/results``) is left out.

    Example:
        >>> expand_inputs(["data_samples/brandenburg_s2_512.tif"])
        ['data_samples/brandenburg_s2_512.tif']
    """
    scenes: list[str] = []
    for item in items:
        text = str(item)
        kind = _kind(text)
        if kind == "list":
            scenes.extend(_read_list(Path(text[1:])))
        elif kind == "glob":
            matches = sorted(glob.glob(_literal_folders(text), recursive=True))
            if outdir is not None and os.path.isdir(outdir):  # the batch's own OUTDIR, made by the first run
                matches = [m for m in matches if not same_file(m, outdir)]
            if not matches:
                raise InputError(f"{text} matches no file: check the pattern (quote it so the shell leaves it to geoseg)")
            scenes.extend(matches)
        else:
            scenes.append(text)
    if not scenes:
        raise InputError("no scene given: name scene files, a glob, or @list.txt")
    return _unique(scenes)


def _literal_folders(pattern: str) -> str:
    """``pattern`` with its longest leading folder that exists as written escaped: ``/data/[2023]/*.tif`` globs inside
    the folder ``[2023]`` when there is one."""
    separators = "/\\" if os.name == "nt" else "/"  # Windows takes both C:/data and C:\\data
    for cut in (i for i in range(len(pattern) - 1, 0, -1) if pattern[i] in separators):
        folder = pattern[:cut]
        if GLOB_CHARS & set(folder) and os.path.isdir(folder):
            return glob.escape(folder) + pattern[cut:]
    return pattern


def _read_list(listing: Path) -> list[str]:
    """The scene paths of an ``@list.txt`` (relative ones to its folder); a byte-order mark (Notepad's UTF-8) is dropped."""
    if not listing.is_file():
        raise InputError(f"list file {listing} does not exist: give @FILE with one scene path per line")
    scenes = []
    for line in listing.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line)
            scenes.append(line if p.is_absolute() or line.startswith("/vsi") else str(listing.parent / p))
    return scenes


def _unique(scenes: list[str]) -> list[str]:
    """Each scene once (the first spelling of a file named twice), refusing two files that would write one folder."""
    seen: dict[str, str] = {}
    unique = []
    for scene in scenes:
        stem = _stem(scene)
        key = unicodedata.normalize("NFC", stem).casefold()  # one folder on macOS's and Windows' disks
        if key in BATCH_FILES or stem.startswith("."):
            raise InputError(f"scene {scene} would write OUTDIR/{stem}, a name the batch keeps for itself: rename the file")
        first = seen.get(key)
        if first is None:
            seen[key] = scene
            unique.append(scene)
        elif not same_file(first, scene):
            raise InputError(f"{first} and {scene} would both write OUTDIR/{stem}: rename one or run them in separate batches")
    return unique


def _stem(scene: str) -> str:
    return Path(scene.rstrip("/")).stem


@dataclass
class BatchResult:
    """Each scene's status (``done``, ``skipped``, ``failed``; ``pending`` while it waits), the model and the notes.

    ``model`` is the model as given (a path or ``default``; a model object's
    name), ``model_sha256`` its file's SHA-256; ``notes`` say what the batch
    outputs left out (a mosaic of scenes on different grids or class tables).
    """

    outdir: Path
    scenes: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    model_sha256: str | None = None
    notes: list[str] = field(default_factory=list)
    merged: bool | None = None
    """Whether classes.vrt and polygons.gpkg hold the finished scenes (False while they are written; None before)."""

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The scenes that failed, with their reasons."""
        return [s for s in self.scenes if s["status"] == "failed"]

    @property
    def counts(self) -> dict[str, int]:
        """Scenes per status."""
        return {k: sum(s["status"] == k for s in self.scenes) for k in ("done", "skipped", "outside", "failed")}


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

    The model is loaded and hashed once. Scenes whose ``run.json`` exists are
    skipped unless ``overwrite`` (refused before any work when one was made
    with another model or other parameters that change outputs). Returns every
    scene's status; ``batch.json`` is rewritten as each scene finishes,
    ``classes.vrt`` and ``polygons.gpkg`` at the end.

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
    from geoseg.io.outputs import claimed_folder

    opts = (options or RunOptions()).replace(**option_values)
    out = Path(outdir)
    scenes = expand_inputs(images, out)
    _check_outdir(out, scenes, opts.predict.aoi)
    distributed = workers is not None or scheduler is not None
    if distributed and not isinstance(model, (str, os.PathLike)):
        raise InputError("--workers and --scheduler need the model as a file path (or 'default'), not an object")
    net, card, ref = _open_model(model, opts, distributed)
    result = _plan(scenes, out, overwrite, card, ref, opts)  # refused here when a skipped scene differs: before any work
    client = cluster = None
    if distributed:
        from geoseg.flows.dask import make_client

        client, cluster = make_client(workers, scheduler)
    try:
        with claimed_folder(out, BATCH_MARKS, create_parents=True):  # a second batch into the same OUTDIR is refused meanwhile
            _run_all(result, net, ref, client, progress, opts)
            _write_batch_outputs(result)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return result


def _check_outdir(out: Path, scenes: list[str], aoi: str | None = None) -> None:
    """OUTDIR may take the batch (an existing batch resumes), and holds no file a scene is made of; the --aoi file
    exists (one refusal before any work, not every scene's failure)."""
    from geoseg.io.outputs import check_outdir
    from geoseg.io.scene_files import check_files_outside
    from geoseg.io.vector import check_vector_source

    check_outdir(out, scenes, overwrite=True, marks=BATCH_MARKS, create_parents=True)
    check_files_outside(out, scenes)  # building the folder would replace a scene's file
    if aoi is not None:
        check_vector_source(aoi, "--aoi")


def _open_model(model: object, opts: RunOptions, distributed: bool) -> tuple[object, Any, ModelRef]:
    """What the scenes run with (the loaded model, or its path for Dask workers), its card, and its file hashed once."""
    from geoseg.inference.predict import open_model

    # on Dask each worker loads the model; here it is only checked (on the CPU), before anything is written
    loaded = open_model(model, opts.predict.backend, "cpu" if distributed else opts.predict.device)
    return (model if distributed else loaded), loaded.card, ModelRef.of(model)


MERGED = ("classes.tif", "polygons.gpkg")
"""A finished scene's files the batch mosaics and merges: a scene folder missing one runs again."""


def _plan(scenes: list[str], out: Path, overwrite: bool, card: Any, ref: ModelRef, opts: RunOptions) -> BatchResult:
    """Each scene's entry: ``skipped`` when its ``run.json`` and the files the batch merges exist (unless
    ``overwrite``), else ``pending``; refused when a scene to skip was made from another file, with another model or
    other parameters that change outputs."""
    result = BatchResult(out, model=ref.path or getattr(card, "name", None), model_sha256=ref.sha256)
    for scene in scenes:
        target = out / _stem(scene)
        entry: dict[str, Any] = {"scene": scene, "folder": target.name}
        if is_mark(target / "run.json") and not overwrite and all((target / name).is_file() for name in MERGED):
            entry.update(status="skipped", seconds=0.0)
        else:
            entry.update(status="pending")
        result.scenes.append(entry)
    skipped = [(s["scene"], out / s["folder"] / "run.json") for s in result.scenes if s["status"] == "skipped"]
    check_resumable(skipped, ref, card, output_parameters(opts), out)
    return result


def _run_all(
    result: BatchResult, net: object, ref: ModelRef, client: Any, progress: Progress | None, options: RunOptions
) -> None:
    """Run the pending scenes, here or on Dask, rewriting batch.json as each one finishes."""
    from geoseg.flows.dask import clear_blocks

    out, total = result.outdir, len(result.scenes)
    todo = [entry for entry in result.scenes if entry["status"] == "pending"]
    _write_record(result)  # at once: an interrupted batch is still geoseg's, and resumes
    for entry in result.scenes:  # a split scene's blocks left by an interrupted Dask batch, done or not
        clear_blocks(out / entry["folder"])
    if client is not None:
        from geoseg.flows.dask import run_on_dask

        finished = partial(_write_record, result)
        run_on_dask(todo, out, str(net), client, progress, total - len(todo), total, options, ref, finished)
        return
    for n, entry in enumerate(todo):
        entry.update(run_scene(entry["scene"], str(out / entry["folder"]), net, options, progress, model_ref=ref))
        _write_record(result)  # a finished scene is never shown pending, even if the batch is stopped now
        if progress:
            progress("batch", total - len(todo) + n + 1, total)


def _write_batch_outputs(result: BatchResult) -> None:
    """Write classes.vrt and polygons.gpkg of the finished scenes (or remove stale ones), then batch.json with notes."""
    from geoseg.io.mosaic import merge_polygons, mosaic_vrt
    from geoseg.report.styles import polygons_qml

    out = result.outdir
    finished = [out / s["folder"] for s in result.scenes if s["status"] in ("done", "skipped")]
    result.merged = False
    _write_record(result)  # until classes.vrt and polygons.gpkg are written, batch.json says they are not
    if finished:
        result.notes += mosaic_vrt([f / "classes.tif" for f in finished], out / "classes.vrt")
        result.notes += merge_polygons([f / "polygons.gpkg" for f in finished], out / "polygons.gpkg", style=polygons_qml)
    else:
        for name in ("classes.vrt", "polygons.gpkg"):
            if (out / name).exists():
                (out / name).unlink()
    result.merged = True
    _write_record(result)


def _write_record(result: BatchResult) -> None:
    """Write batch.json atomically: the model (as given, and its SHA-256), each scene's status (``pending`` until it
    ran), counts and notes."""
    from geoseg.core.version import __version__
    from geoseg.io.outputs import write_text_atomic

    record = {
        "geoseg_version": __version__,
        "model": result.model,
        "model_sha256": result.model_sha256,
        "scenes": result.scenes,
        "counts": result.counts,
        "merged": result.merged,
        "notes": result.notes,
    }
    write_text_atomic(result.outdir / "batch.json", json.dumps(record, indent=2))
