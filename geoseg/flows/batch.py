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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg.core.errors import GeosegError, InputError
from geoseg.core.options import Progress, RunOptions

__all__ = ["BatchResult", "expand_inputs", "is_batch", "run_batch", "scene_blocks"]

log = logging.getLogger("geoseg")
_GLOB = set("*?[")


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
    from geoseg.io.paths import check_outdir

    opts = RunOptions.from_mapping(option_values) if options is None else options
    scenes = expand_inputs(images)
    out = Path(outdir)
    check_outdir(out, scenes, overwrite=True)  # an existing OUTDIR is the batch being resumed
    distributed = workers is not None or scheduler is not None
    if distributed and not isinstance(model, (str, os.PathLike)):
        raise InputError("--workers and --scheduler need the model as a file path (or 'default'), not an object")
    net = model if distributed else open_model(model, opts.predict.backend, opts.predict.device)
    client = cluster = None
    if distributed:  # check the model file and reach the cluster before anything is written
        open_model(model, opts.predict.backend, "cpu")
        client, cluster = _client(workers, scheduler)
    try:
        result = _run_all(scenes, out, net, client, progress, overwrite, opts)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    finished = [out / s["folder"] for s in result.scenes if s["status"] != "failed"]
    _write_batch_outputs(out, finished, result, model)
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
    out.mkdir(exist_ok=True)
    result = BatchResult(out)
    todo = []
    for scene in scenes:
        target = out / _stem(scene)
        entry: dict[str, Any] = {"scene": scene, "folder": target.name}
        result.scenes.append(entry)
        if (target / "run.json").is_file() and not overwrite:
            entry.update(status="skipped", seconds=0.0)
        else:
            todo.append(entry)
    if client is not None:
        _run_on_dask(todo, out, str(net), client, progress, len(scenes) - len(todo), len(scenes), options)
    else:
        for n, entry in enumerate(todo):
            entry.update(_run_scene(entry["scene"], str(out / entry["folder"]), net, options, progress))
            if progress:
                progress("batch", len(scenes) - len(todo) + n + 1, len(scenes))
    return result


def _run_scene(
    scene: str,
    target: str,
    model: object,
    options: RunOptions,
    progress: Progress | None = None,
    blocks: list[tuple[int, Any]] | None = None,
) -> dict[str, Any]:
    """Run one scene (from its predicted ``blocks`` when given); a failure becomes a status with its reason."""
    from geoseg.flows.run import run

    started = time.perf_counter()
    try:
        run(scene, target, model, options, overwrite=True, progress=progress, blocks=blocks)
        status: dict[str, Any] = {"status": "done"}
    except (GeosegError, OSError, ValueError, RuntimeError) as exc:
        status = _failed(scene, exc)
    status["seconds"] = round(time.perf_counter() - started, 2)
    return status


def _failed(scene: str, exc: BaseException) -> dict[str, Any]:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    log.warning("%s failed: %s", scene, message)
    return {"status": "failed", "reason": message}


_WORKER_MODELS: dict[str, object] = {}


def _worker_model(model: str, options: RunOptions) -> object:
    """The model of this Dask worker process: loaded on first use and kept."""
    import sys

    from geoseg.inference.predict import open_model

    backend, device = options.predict.backend, options.predict.device
    key = f"{model}|{backend}|{device}"
    if key not in _WORKER_MODELS:
        _WORKER_MODELS[key] = open_model(model, backend, device)
    torch = sys.modules.get("torch")  # loaded with a .pt model; an .onnx model runs without importing it
    if torch is not None:
        try:
            from distributed import get_worker

            torch.set_num_threads(max(1, get_worker().state.nthreads))
        except (ImportError, ValueError):
            pass
    return _WORKER_MODELS[key]


def _dask_task(
    scene: str, target: str, model: str, options: RunOptions, *blocks: tuple[int, Any] | dict[str, Any]
) -> dict[str, Any]:
    """Runs on a Dask worker: one scene, or the rest of a split scene once its ``blocks`` are predicted."""
    failures = [b for b in blocks if isinstance(b, dict)]
    try:
        if failures:
            return failures[0] | {"seconds": 0.0}
        parts = [b for b in blocks if not isinstance(b, dict)]
        return _run_scene(scene, target, _worker_model(model, options), options, blocks=parts or None)
    finally:
        if blocks:
            import shutil

            shutil.rmtree(_blocks_dir(Path(target)), ignore_errors=True)


def _dask_block(
    scene: str, target: str, model: str, options: RunOptions, columns: tuple[int, int]
) -> tuple[int, Any] | dict[str, Any]:
    """Runs on a Dask worker: predict one vertical block of a split scene into the scene's blocks folder."""
    from geoseg.inference.predict import predict

    folder = _blocks_dir(Path(target))
    folder.mkdir(parents=True, exist_ok=True)
    x0 = columns[0]
    try:
        return x0, predict(
            scene,
            _worker_model(model, options),
            folder / f"classes_{x0}.tif",
            options.predict,
            confidence=folder / f"confidence_{x0}.tif",
            overwrite=True,
            columns=columns,
        )
    except (GeosegError, OSError, ValueError, RuntimeError) as exc:
        return _failed(scene, exc)


def _blocks_dir(target: Path) -> Path:
    return target.with_name(f".{target.name}.blocks")


def scene_blocks(scene: str, block_width: int) -> list[tuple[int, int]]:
    """The vertical blocks a scene is split into on Dask (one block when it is not wider than ``block_width``).

    Empty when the scene cannot be opened: it then runs as one task, which reports the reason.

    Example:
        >>> scene_blocks("data_samples/brandenburg_s2.tif", 512)
        [(0, 512), (512, 1024), (1024, 1536)]
    """
    from geoseg.core.grid import split_columns
    from geoseg.io.raster import gdal_env, open_scene

    try:
        with gdal_env(), open_scene(scene) as ds:
            width = ds.width
    except GeosegError:
        return []
    return split_columns(width, block_width)


def _client(workers: int | None, scheduler: str | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--workers and --scheduler need Dask: pip install 'geoseg[dask]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="5s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at {scheduler} ({str(exc).splitlines()[0][:120]}): "
                "check the address (tcp://host:8786) and that the scheduler runs"
            ) from None
    if workers is None or workers < 1:
        raise InputError(f"--workers {workers} must be at least 1")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def _run_on_dask(
    todo: list[dict[str, Any]],
    out: Path,
    model: str,
    client: Any,
    progress: Progress | None,
    done_before: int,
    total: int,
    options: RunOptions,
) -> None:
    from distributed import as_completed

    from geoseg.io.paths import is_remote

    def absolute(path: str) -> str:  # workers may run elsewhere: hand them absolute paths
        return path if path == "default" or is_remote(path) else str(Path(path).resolve())

    futures = {}
    for entry in todo:
        scene, target = absolute(entry["scene"]), str((out / entry["folder"]).resolve())
        blocks = scene_blocks(scene, options.predict.block_width)
        parts = (
            []
            if len(blocks) < 2
            else [client.submit(_dask_block, scene, target, absolute(model), options, columns, pure=False) for columns in blocks]
        )
        futures[client.submit(_dask_task, scene, target, absolute(model), options, *parts, pure=False)] = entry
    for n, future in enumerate(as_completed(futures)):
        futures[future].update(future.result())
        if progress:
            progress("batch", done_before + n + 1, total)


def _write_batch_outputs(out: Path, finished: list[Path], result: BatchResult, model: object) -> None:
    from geoseg.core.version import __version__
    from geoseg.io.mosaic import merge_polygons, mosaic_vrt
    from geoseg.io.paths import write_text_atomic
    from geoseg.report.styles import polygons_qml

    notes = []
    if finished:
        notes += mosaic_vrt([f / "classes.tif" for f in finished], out / "classes.vrt")
        notes += merge_polygons([f / "polygons.gpkg" for f in finished], out / "polygons.gpkg", style=polygons_qml)
    else:
        for name in ("classes.vrt", "polygons.gpkg"):
            if (out / name).exists():
                (out / name).unlink()
    record = {
        "geoseg_version": __version__,
        "model": str(model) if isinstance(model, (str, os.PathLike)) else getattr(getattr(model, "card", None), "name", None),
        "scenes": result.scenes,
        "counts": result.counts,
        "notes": notes,
    }
    write_text_atomic(out / "batch.json", json.dumps(record, indent=2))
