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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg.errors import GeosegError, InputError

__all__ = ["BatchResult", "expand_inputs", "is_batch", "run_batch"]

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
            raise InputError(f"{seen[stem.lower()]} and {scene} would both write OUTDIR/{stem}: rename one or run "
                             "them in separate batches")
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
        return [s for s in self.scenes if s["status"] == "failed"]


def run_batch(
    images: Sequence[str],
    outdir: str | os.PathLike,
    model: object = "default",
    *,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    **options: Any,
) -> BatchResult:
    """Run :func:`geoseg.run` on every scene into ``OUTDIR/<scene>/``; resumable, failures recorded.

    The model is loaded once. Scenes whose ``run.json`` exists are skipped
    unless ``overwrite``. Returns every scene's status; ``batch.json``,
    ``classes.vrt`` and ``polygons.gpkg`` are (re)written at the end.

    Example:
        >>> result = run_batch(["a.tif", "b.tif"], "out", model="model.pt")  # doctest: +SKIP
        >>> [s["status"] for s in result.scenes]  # doctest: +SKIP
    """
    from geoseg.inference.api import open_model
    from geoseg.io.paths import check_writable_folder
    from geoseg.pipeline import run

    scenes = expand_inputs(images)
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} is a file, not a folder: give a folder path")
    check_writable_folder(out.resolve().parent)
    for scene in scenes:
        if not scene.startswith("/vsi") and out.resolve() in Path(scene).resolve().parents:
            raise InputError(f"input {scene} lies inside the output folder {out}: choose another output folder")
    net = open_model(model, options.get("backend", "auto"), options.get("device", "auto"))
    out.mkdir(exist_ok=True)
    result = BatchResult(out)
    for n, scene in enumerate(scenes):
        target = out / _stem(scene)
        entry: dict[str, Any] = {"scene": scene, "folder": target.name}
        started = time.perf_counter()
        if (target / "run.json").is_file() and not overwrite:
            entry["status"] = "skipped"
        else:
            try:
                run(scene, target, net, overwrite=True, progress=progress, **options)
                entry["status"] = "done"
            except (GeosegError, OSError, ValueError, RuntimeError) as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                entry.update(status="failed", reason=message)
                log.warning("%s failed: %s", scene, message)
        entry["seconds"] = round(time.perf_counter() - started, 2)
        result.scenes.append(entry)
        if progress:
            progress("batch", n + 1, len(scenes))
    finished = [out / s["folder"] for s in result.scenes if s["status"] != "failed"]
    _write_batch_outputs(out, finished, result, model)
    return result


def _write_batch_outputs(out: Path, finished: list[Path], result: BatchResult, model: object) -> None:
    from geoseg import __version__
    from geoseg.io.mosaic import merge_polygons, mosaic_vrt
    from geoseg.io.paths import atomic_output

    notes = []
    if finished:
        notes += mosaic_vrt([f / "classes.tif" for f in finished], out / "classes.vrt")
        notes += merge_polygons([f / "polygons.gpkg" for f in finished], out / "polygons.gpkg")
    else:
        for name in ("classes.vrt", "polygons.gpkg"):
            if (out / name).exists():
                (out / name).unlink()
    record = {"geoseg_version": __version__, "model": str(model) if isinstance(model, (str, os.PathLike)) else
              getattr(getattr(model, "card", None), "name", None), "scenes": result.scenes,
              "counts": {k: sum(s["status"] == k for s in result.scenes) for k in ("done", "skipped", "failed")},
              "notes": notes}
    with atomic_output(out / "batch.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
