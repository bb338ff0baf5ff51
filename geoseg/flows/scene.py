"""One scene of a batch: run it, and turn a failure into a status with its reason (a batch goes on)."""

from __future__ import annotations

import logging
import time
from typing import Any

from geoseg.core.errors import GeosegError, OutsideAreaError
from geoseg.core.options import Progress, RunOptions
from geoseg.flows.provenance import ModelRef

__all__ = ["failed", "outside", "run_scene"]

log = logging.getLogger("geoseg")


def run_scene(
    scene: str,
    target: str,
    model: object,
    options: RunOptions,
    progress: Progress | None = None,
    blocks: list[tuple[int, Any]] | None = None,
    model_ref: ModelRef | None = None,
) -> dict[str, Any]:
    """Run one scene (from its predicted ``blocks`` when given); a failure becomes a status with its reason.

    ``model_ref`` names the file the loaded ``model`` came from, for run.json (hashed once per batch).

    Example:
        >>> run_scene("missing.tif", "out/missing", "default", RunOptions())["status"]  # doctest: +SKIP
        'failed'
    """
    from geoseg.flows.run import run

    started = time.perf_counter()
    try:
        run(scene, target, model, options, overwrite=True, progress=progress, blocks=blocks, model_ref=model_ref)
        status: dict[str, Any] = {"status": "done"}
    except OutsideAreaError as exc:  # a tile of the batch away from the area of interest: left out, not failed
        status = outside(scene, exc)
    except (GeosegError, OSError, ValueError, RuntimeError) as exc:
        status = failed(scene, exc)
    status["seconds"] = round(time.perf_counter() - started, 2)
    return status


def outside(scene: str, exc: OutsideAreaError) -> dict[str, Any]:
    """The ``outside`` status of a batch scene the area of interest does not reach: left out, not a failure.

    Example:
        >>> outside("a.tif", OutsideAreaError("--aoi f.gpkg does not overlap the scene a.tif: check it"))["status"]
        'outside'
    """
    log.info("%s lies outside the area of interest: left out", scene)
    return {"status": "outside", "reason": str(exc).splitlines()[0]}


def failed(scene: str, exc: BaseException) -> dict[str, Any]:
    """The ``failed`` status of ``scene`` with the reason (also logged): the one line the CLI would show for ``exc``
    (:func:`~geoseg.flows.messages.error_message`: a damaged file, a full disk), else the first line of ``exc``.

    Example:
        >>> failed("a.tif", OSError(28, "No space left on device", "out/a/classes.tif"))["reason"]
        'no space left on the device writing out/a/classes.tif: free disk space or write to another folder'
    """
    from geoseg.flows.messages import error_message

    message = error_message(exc) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    log.warning("%s failed: %s", scene, message)
    return {"status": "failed", "reason": message}
