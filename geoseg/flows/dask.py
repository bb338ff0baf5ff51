"""Batches on Dask: each scene a task (a wide scene split into block tasks), the model loaded once per worker.

``--workers N`` starts a local cluster of single-thread worker processes
(capped by :func:`max_workers`); ``--scheduler ADDRESS`` joins an existing
one, checked within seconds so a wrong address never hangs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geoseg.core.errors import GeosegError, InputError, OptionError, OutsideAreaError
from geoseg.core.limits import usable_cores, usable_memory
from geoseg.core.options import Progress, RunOptions
from geoseg.core.threads import share_cores
from geoseg.flows.provenance import ModelRef
from geoseg.flows.scene import failed, outside, run_scene

__all__ = ["WORKER_MEMORY_GB", "clear_blocks", "make_client", "max_workers", "run_on_dask", "scene_blocks"]

log = logging.getLogger("geoseg")


_WORKER_MODELS: dict[str, object] = {}


_WORKER_LOCK = threading.Lock()


def _worker_model(model: str, options: RunOptions) -> object:
    """The model of this Dask worker process: loaded on first use and kept.

    A worker runs as many tasks at once as it has threads (``--workers``: one), so each task gets one core
    (:func:`~geoseg.core.threads.share_cores`): onnxruntime one call at a time on one thread, torch on one thread,
    and with the model on the CPU one chip reader and one stitching thread.
    """
    import sys

    from geoseg.inference.predict import open_model

    backend, device = options.predict.backend, options.predict.device
    key = f"{model}|{backend}|{device}"
    in_worker = _in_worker()
    with _WORKER_LOCK:  # tasks of a worker with several threads: one loads the model, the others wait for it
        if in_worker:
            share_cores(1)  # before any session opens (cloud masks' too) and any reader starts
        if key not in _WORKER_MODELS:
            _WORKER_MODELS[key] = open_model(model, backend, device)
    torch = sys.modules.get("torch")  # loaded with a .pt model; an .onnx model runs without importing it
    if torch is not None and in_worker:
        torch.set_num_threads(1)
    return _WORKER_MODELS[key]


def _in_worker() -> bool:
    """True in a Dask worker."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def _dask_task(
    scene: str, target: str, model: str, options: RunOptions, model_ref: ModelRef, *blocks: tuple[int, Any] | dict[str, Any]
) -> dict[str, Any]:
    """Runs on a Dask worker: one scene, or the rest of a split scene once its ``blocks`` are predicted; run.json names
    the model as ``model_ref`` (hashed once, by the batch)."""
    failures = [b for b in blocks if isinstance(b, dict)]
    try:
        if failures:
            return failures[0] | {"seconds": 0.0}
        parts = [b for b in blocks if not isinstance(b, dict)]
        return run_scene(scene, target, _worker_model(model, options), options, blocks=parts or None, model_ref=model_ref)
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
    except OutsideAreaError as exc:  # a wide scene's blocks away from the area of interest: the scene is left out
        return outside(scene, exc)
    except (GeosegError, OSError, ValueError, RuntimeError) as exc:
        return failed(scene, exc)


def _splittable(options: RunOptions) -> bool:
    """Whether a wide scene may be split into block tasks: blocks are columns of the scene's grid, so not when the
    outputs of a resampled scene lie on the model's grid, nor with a cloud mask (made once for the whole scene, and
    kept as the run's clouds.tif); such a scene runs as one task, in blocks within it."""
    predict = options.predict
    return not (predict.resample == "auto" and predict.output_grid == "model") and not predict.mask_clouds


def _blocks_dir(target: Path) -> Path:
    return target.with_name(f".{target.name}.blocks")


def clear_blocks(target: Path) -> bool:
    """Remove a split scene's blocks folder left by an interrupted batch; True when there was one.

    Called by the batch for each of its scenes before any task starts: the batch holds OUTDIR's claim, so no task
    of another batch writes there.

    Example:
        >>> clear_blocks(Path("/tmp/surely/not/there/scene"))
        False
    """
    import shutil

    folder = _blocks_dir(target)
    if not folder.is_dir() or folder.is_symlink():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    log.info("removed %s, left by an interrupted batch", folder)
    return True


def scene_blocks(scene: str, block_width: int, resolution: float | None = None) -> list[tuple[int, int]]:
    """The vertical blocks a scene is split into on Dask (one block when it is not wider than ``block_width``).

    ``resolution`` is the grid of a multi-file source (``--resolution``). Empty when the scene cannot be opened: it
    then runs as one task, which reports the reason.

    Example:
        >>> scene_blocks("data_samples/brandenburg_s2.tif", 512)
        [(0, 512), (512, 1024), (1024, 1536)]
    """
    from geoseg.core.grid import split_columns
    from geoseg.io.raster import gdal_env, open_scene

    try:
        with gdal_env(), open_scene(scene, source_resolution=resolution) as ds:
            width = ds.width
    except GeosegError:
        return []
    return split_columns(width, block_width)


WORKER_MEMORY_GB = 1.0
"""Peak memory of one Dask worker predicting a scene (about 1 GB measured, BENCHMARKS.md): caps --workers."""


def max_workers() -> int:
    """The most local Dask workers this machine can hold: one per usable CPU core, and about 1 GB of usable memory each.

    Usable cores and memory: :func:`~geoseg.core.limits.usable_cores` and ``usable_memory`` (a container's limits
    count).

    Example:
        >>> max_workers() >= 1
        True
    """
    cores, memory = usable_cores(), usable_memory()
    if memory is None:  # not known (Windows without psutil): cores alone
        return cores
    return max(1, min(cores, int(memory / 1e9 / WORKER_MEMORY_GB)))


def _check_scheduler(address: str, timeout: float = 5.0) -> None:
    """Refuse an address that is not a reachable Dask scheduler, within ``timeout`` seconds (nothing hangs)."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname or not parsed.port:
        raise OptionError(f"--scheduler {address}: give a Dask scheduler address such as tcp://10.0.0.5:8786")
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout):
            pass
    except OSError as exc:
        raise InputError(
            f"cannot reach the Dask scheduler at {address} ({exc.strerror or exc}): check the address "
            "(tcp://host:8786) and that the scheduler runs"
        ) from None


def _connect(address: str, timeout: float = 10.0) -> Any:
    """A Dask client of the scheduler at ``address``; anything else answering there is one clear error, in bounded time."""
    import concurrent.futures

    from distributed import Client

    _check_scheduler(address)
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="geoseg-dask-connect")
    future = pool.submit(Client, address, timeout=f"{int(timeout)}s")
    try:
        return future.result(timeout=timeout + 5)
    except Exception as exc:  # noqa: BLE001 - whatever a foreign server makes the handshake raise
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(
            f"{address} does not answer as a Dask scheduler ({detail}): check the address and that `dask scheduler` runs there"
        ) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def make_client(workers: int | None, scheduler: str | None) -> tuple[Any, Any]:
    """A Dask client and, for ``workers``, its local cluster (``None`` when joining ``scheduler``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--workers and --scheduler need Dask: pip install 'geoseg[dask]'") from None
    if scheduler and workers is not None:
        raise OptionError(
            "--workers and --scheduler are alternatives: give --workers N for workers on this machine, "
            "or --scheduler for a cluster that runs"
        )
    if scheduler:
        return _with_workers(_connect(scheduler), scheduler), None
    if workers is None or workers < 1:
        raise OptionError(f"--workers {workers} must be at least 1")
    if workers > max_workers():
        memory = usable_memory()
        held = f"{memory / 1e9:.1f} GB of usable memory, " if memory else ""
        raise InputError(
            f"--workers {workers}: this machine holds at most {max_workers()} geoseg workers ({usable_cores()} usable "
            f"CPU cores, {held}about {WORKER_MEMORY_GB:g} GB per worker); give --workers {max_workers()} or fewer, or "
            "--scheduler for a cluster"
        )
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    )  # Dask's own notes (a nanny waiting for a worker to stop, port 8787 taken) are not the user's business
    return Client(cluster), cluster


WORKER_WAIT_S = 120
"""How long a batch waits for a first worker of a scheduler that has none."""


def _with_workers(client: Any, address: str) -> Any:
    """``client`` once its scheduler has a worker; one clear error after :data:`WORKER_WAIT_S` seconds without."""
    if client.scheduler_info().get("workers"):
        return client
    log.info(
        "%s has no worker yet: waiting up to %d s for one (start them with: dask worker %s)", address, WORKER_WAIT_S, address
    )
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except Exception:  # noqa: BLE001 - distributed's TimeoutError, whatever its module
        client.close()
        raise InputError(
            f"no Dask worker joined the scheduler {address} in {WORKER_WAIT_S} s: start workers (dask worker {address}) "
            "or use --workers N for workers on this machine"
        ) from None
    return client


def _worker_logging(level: int) -> None:
    """On a worker: geoseg's lines as the CLI writes them (``geoseg: warning: ...``) at the CLI's level (-q, -v)."""
    logger = logging.getLogger("geoseg")
    handler = logging.StreamHandler()
    handler.setFormatter(_WorkerFormat())
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


class _WorkerFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"geoseg: {record.levelname.lower()}: {record.getMessage()}"


def run_on_dask(
    todo: list[dict[str, Any]],
    out: Path,
    model: str,
    client: Any,
    progress: Progress | None,
    done_before: int,
    total: int,
    options: RunOptions,
    model_ref: ModelRef | None = None,
    finished: Callable[[], None] | None = None,
) -> None:
    """Run the ``todo`` scenes of a batch as Dask tasks (wide scenes as block tasks and a join), updating their entries.

    ``model_ref`` (path as given and SHA-256) is what each scene's run.json
    records; ``finished`` is called after each scene's entry is updated (the
    batch writes batch.json then).

    Example:
        >>> run_on_dask(todo, Path("out"), "model.pt", client, None, 0, len(todo), RunOptions())  # doctest: +SKIP
    """
    from distributed import as_completed

    from geoseg.io.paths import is_remote

    def absolute(path: str) -> str:  # workers may run elsewhere: hand them absolute paths
        return path if path == "default" or is_remote(path) else str(Path(path).resolve())

    aoi = options.predict.aoi
    if aoi is not None and not is_remote(str(aoi)):  # the area of interest too, as the scenes and the model
        file, _, layer = str(aoi).partition("|")  # fields.gpkg|layername=x: the file's path, the layer as given
        options = options.replace(aoi=absolute(file) + (f"|{layer}" if layer else ""))
    ref = model_ref or ModelRef.of(model)  # hashed once here, not by every task
    client.run(_worker_logging, logging.getLogger("geoseg").getEffectiveLevel())
    futures = {}
    for entry in todo:
        scene, target = absolute(entry["scene"]), str((out / entry["folder"]).resolve())
        blocks = scene_blocks(scene, options.predict.block_width, options.predict.resolution) if _splittable(options) else []
        parts = (
            []
            if len(blocks) < 2
            else [client.submit(_dask_block, scene, target, absolute(model), options, columns, pure=False) for columns in blocks]
        )
        futures[client.submit(_dask_task, scene, target, absolute(model), options, ref, *parts, pure=False)] = entry
    for n, future in enumerate(as_completed(futures)):
        futures[future].update(_outcome(future, futures[future]["scene"]))
        if finished:
            finished()
        if progress:
            progress("batch", done_before + n + 1, total)


def _outcome(future: Any, scene: str) -> dict[str, Any]:
    """A scene task's entry update; a task that did not return (its worker died, killed for memory or by the user,
    more often than Dask retries) is the scene's failure, not the batch's: the other scenes go on."""
    try:
        return dict(future.result())
    except Exception as exc:  # noqa: BLE001 - whatever ended the task, it is this scene's reason
        if type(exc).__name__ == "KilledWorker":
            exc = RuntimeError("its Dask worker died while running it (out of memory? see the worker's log); run the batch again")
        return failed(scene, exc) | {"seconds": 0.0}
