"""One scene of a batch: run it, and turn a failure into a status with its reason (a batch goes on)."""

from __future__ import annotations

import logging
import time
from typing import Any

from geoseg.core.errors import GeosegError
from geoseg.core.options import Progress, RunOptions

__all__ = ["failed", "run_scene"]

log = logging.getLogger("geoseg")


def run_scene(
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
        status = failed(scene, exc)
    status["seconds"] = round(time.perf_counter() - started, 2)
    return status


def failed(scene: str, exc: BaseException) -> dict[str, Any]:
    """The ``failed`` status of ``scene`` with the first line of ``exc`` as the reason (also logged)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    log.warning("%s failed: %s", scene, message)
    return {"status": "failed", "reason": message}
