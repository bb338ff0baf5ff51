"""``geoseg train``: thin wrapper over :func:`geoseg.train`."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import click

from geoseg.cli.options import common_options
from geoseg.cli.progress import INTERRUPTED, progress_shown, summary


def _interrupted(run_dir: Path) -> str:
    """What Ctrl-C left: the epochs saved (continue with --resume), or none (the same command starts over)."""
    if (run_dir / "resume.pt").is_file():
        return f"the epochs completed are kept in {run_dir}: continue with --resume"
    return "no epoch was completed: run the same command again to start over"


def _main_process() -> bool:
    """Whether this process prints the epoch lines and the closing line: the only one, or rank 0 under torchrun
    (``WORLD_SIZE`` > 1, ``RANK`` 0), as :func:`geoseg.training.distributed.distributed` ranks them.

    Example:
        >>> _main_process()  # not under torchrun
        True
    """
    try:
        return int(os.environ.get("WORLD_SIZE") or 1) <= 1 or int(os.environ.get("RANK") or 0) == 0
    except ValueError:  # not torchrun's numbers: one process as far as geoseg can tell
        return True


def _epoch_line(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}"]
    if row.get("val_miou") is not None:
        parts += [f"val loss {row['val_loss']:.4f}", f"val mIoU {row['val_miou']:.3f}", f"val accuracy {row['val_accuracy']:.3f}"]
    parts.append(f"{row['seconds']:.1f} s")
    return "geoseg: " + ", ".join(parts)


@click.command(short_help="Train a model from a YAML config.")
@click.argument("config", metavar="CONFIG.yaml")
@click.option(
    "-o",
    "--output",
    "run_dir",
    required=True,
    metavar="RUN_DIR",
    help="Folder for the run (model.pt, last.pt, resume.pt, config.yaml, history.csv, curves.png, metrics.json, confusion.png).",
)
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR from its last epoch.")
@common_options
def train(config: str, run_dir: str, resume: bool) -> None:
    """Train a segmentation model on scenes and labels (or a chip folder) as CONFIG.yaml says.

    The config is checked before any work (examples in configs/). Labels are
    polygons, or lines and points given a `buffer: METRES` on their class in
    data.classes (corridors and discs), or a mask raster. `data.background:
    {name: NAME, within: labels|scene|PATH}` makes the unlabeled pixels of
    vector labels inside that area (default: the labels' extent) a class,
    the last one; a mask raster keeps its own unlabeled value. A config left
    with one class is refused. Windows are read straight from the scenes;
    whole blocks are held out for validation with a gap around them. RUN_DIR/model.pt is the best epoch by validation
    mean IoU (a geoseg model with bands, normalization and classes), last.pt
    the latest, resume.pt what --resume continues from, config.yaml the
    config as run; history.csv, curves.png, metrics.json and confusion.png (the
    best epoch's validation confusion matrix) record the run. Classes with
    fewer than 1000 validation pixels are named in a warning.

    \b
    Example:
      geoseg train configs/brandenburg_default.yaml -o runs/default
      geoseg predict scene.tif -m runs/default/model.pt -o classes.tif
    """
    from geoseg.training.trainer import train as run_train

    ctx = click.get_current_context()
    shown = _main_process() and not ctx.meta.get("geoseg.quiet", 0)  # torchrun: every process trains, rank 0 tells
    ctx.meta[INTERRUPTED] = functools.partial(_interrupted, Path(run_dir))
    with progress_shown() as update:
        result = run_train(
            config,
            run_dir,
            resume=resume,
            progress=update,
            on_epoch=(lambda row: click.echo(_epoch_line(row), err=True)) if shown else None,
        )
    if not shown:
        return
    best = "n/a" if result.best_miou is None else f"{result.best_miou:.3f}"
    summary(f"geoseg: best epoch {result.best_epoch} (validation mean IoU {best}): {result.model_path}")
