"""RUN_DIR: checked before training, written after every epoch, read back by ``--resume``.

RUN_DIR holds ``config.yaml`` (the checked config, JSON, which YAML reads),
``model.pt`` (best validation mean IoU), ``last.pt``, ``resume.pt`` (weights,
optimizer and :class:`RunState` for ``--resume``, in one file written
atomically, so an interrupt between two files cannot pair one epoch's weights
with another's optimizer), ``history.csv``,
``curves.png``, ``metrics.json`` and ``confusion.png`` (the best epoch's
validation confusion matrix). Only the main process writes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg.core.errors import OutputError, first_few
from geoseg.io.outputs import atomic_output, write_text_atomic
from geoseg.io.ownership import is_clutter
from geoseg.report.scores import write_confusion_png
from geoseg.training.config import SCHEMA, ConfigError, TrainConfig
from geoseg.training.plots import plot_curves
from geoseg.training.schema import ADDED_KEYS

__all__ = [
    "BEST_KEYS",
    "RunState",
    "check_run_dir",
    "check_same_config",
    "comparable",
    "load_resume",
    "save_epoch",
    "write_config",
    "write_history",
]

log = logging.getLogger("geoseg")

BEST_KEYS = ("trained", "best_epoch", "validation_mean_iou", "validation_iou")
"""Card provenance keys that describe the best epoch (kept in resume.pt for ``--resume``)."""


@dataclass
class RunState:
    """Where a run stands: the epochs done, their history, the best score and epoch, epochs since it improved."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = -1.0
    best_epoch: int = 0
    bad: int = 0
    best_summary: dict[str, Any] = field(default_factory=dict)


STARTED = frozenset({"config.yaml"})
"""What a run folder holds before its first epoch is saved: a run stopped then starts again from epoch 1."""


def check_run_dir(run_dir: Path, resume: bool) -> bool:
    """Refuse a run folder that is not empty (unless resuming one) or cannot be created; True when there is a run to
    continue. A folder that holds only what a run writes before its first epoch (:data:`STARTED`) counts as empty,
    with or without ``resume``: a run stopped that early starts again.

    Example:
        >>> check_run_dir(Path("/nonexistent-parent/run"), resume=True)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OutputError: /nonexistent-parent/run holds no resume.pt: ...
    """
    started = run_dir.is_dir() and {p.name for p in run_dir.iterdir() if not is_clutter(p.name)} <= STARTED
    if resume:
        if (run_dir / "resume.pt").is_file():
            return True
        if not started:
            raise OutputError(f"{run_dir} holds no resume.pt: --resume continues a run started with geoseg train")
        log.info("%s: no epoch was completed: training starts from the first", run_dir)
    if run_dir.exists() and not started:  # a file, or a folder holding more than a run's start (a file manager's aside)
        raise OutputError(_taken(run_dir))
    parent = next((p for p in run_dir.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create run folder {run_dir}: {parent} is not a writable folder")
    return False


def _taken(run_dir: Path) -> str:
    """Why ``run_dir`` cannot take a new run: a file, a run (continue it with --resume), or a folder of other files."""
    if not run_dir.is_dir():
        return f"run folder {run_dir} is a file: choose another folder"
    if (run_dir / "resume.pt").is_file():
        return f"run folder {run_dir} already exists and is not empty: use --resume to continue it or choose another folder"
    names = sorted(p.name for p in run_dir.iterdir() if not is_clutter(p.name))
    shown = first_few(names)
    return (
        f"run folder {run_dir} already exists and is not empty ({shown}; no run geoseg train can continue): "
        "choose another folder or empty it"
    )


def comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config mapping without the keys a resumed run may change (more epochs, other patience or threads), with
    the keys added since geoseg 0.1 (:data:`~geoseg.training.schema.ADDED_KEYS`) at their defaults when missing.

    Example:
        >>> comparable({"train": {"epochs": 3, "lr": 0.1}})
        {'train': {'lr': 0.1, 'warmup_epochs': 0}}
    """
    cfg = json.loads(json.dumps(cfg))
    for section, keys in ADDED_KEYS.items():  # a run started before these keys existed ran with their defaults
        if isinstance(cfg.get(section), dict):
            for key in keys:
                cfg[section].setdefault(key, SCHEMA[section][key][1])
    for key in ("epochs", "patience", "threads"):
        cfg["train"].pop(key, None)
    return cfg


def check_same_config(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume ``run_dir`` with a config other than the one it was started with (epochs etc. aside).

    Example:
        >>> check_same_config(Path("runs/default"), read_config("configs/brandenburg_default.yaml"))  # doctest: +SKIP
    """
    saved = json.loads((run_dir / "config.yaml").read_text(encoding="utf-8"))
    if comparable(saved) != comparable(config.to_dict()):
        raise ConfigError(
            f"the config differs from the one {run_dir} was started with: resume with "
            f"{run_dir / 'config.yaml'} or start a new run folder"
        )


def write_config(run_dir: Path, config: TrainConfig) -> None:
    """Create ``run_dir`` and write the checked config to ``config.yaml`` (as JSON, which YAML reads).

    Example:
        >>> write_config(Path("runs/default"), read_config("configs/brandenburg_default.yaml"))  # doctest: +SKIP
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", json.dumps(config.to_dict(), indent=2))


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Write one CSV row per epoch (columns: every key any row has, in first-seen order) to ``history.csv``.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_history(folder, [{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.7, "val_miou": 0.5}])
        >>> print((folder / "history.csv").read_text())
        epoch,train_loss,val_miou
        1,0.9,
        2,0.7,0.5
        <BLANKLINE>
    """
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for row in history for k in row))
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(run_dir / "history.csv", buf.getvalue())


def load_resume(run_dir: Path, model: Any, opt: Any) -> RunState:
    """Put the last epoch's weights and optimizer state back; returns the run's state.

    The learning rate is not restored: the epoch loop computes each epoch's
    from the config (which may give more epochs than the run started with).
    A ``resume.pt`` written before it held the weights takes them from ``last.pt``.

    Example:
        >>> state = load_resume(Path("runs/default"), model, opt)  # doctest: +SKIP
        >>> state.epoch, state.best_epoch  # doctest: +SKIP
        (60, 52)
    """
    import torch

    from geoseg.model.checkpoint import read_checkpoint

    state = torch.load(run_dir / "resume.pt", map_location="cpu", weights_only=True)
    weights = state["model"] if "model" in state else read_checkpoint(run_dir / "last.pt")[1]
    model.net.load_state_dict(weights)
    opt.load_state_dict(state["optimizer"])
    run = RunState(state["epoch"], state["history"], state["best"], state["best_epoch"], state["bad"])
    if run.best_epoch:
        model.card.provenance.update(state.get("best_provenance", {}))
        domain = model.card.provenance.get("domain")
        if isinstance(domain, dict) and "best_confidence" in state:
            domain["validation_confidence"] = state["best_confidence"]
    if (run_dir / "metrics.json").is_file():
        run.best_summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("validation", {})
    return run


def _save_resume(run_dir: Path, opt: Any, run: RunState, model: Any) -> None:
    import torch

    domain = model.card.provenance.get("domain")
    state = {
        "model": model.net.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": run.epoch,
        "history": run.history,
        "best": run.best,
        "best_epoch": run.best_epoch,
        "bad": run.bad,
        "best_provenance": {k: model.card.provenance[k] for k in BEST_KEYS if k in model.card.provenance},
        "best_confidence": domain.get("validation_confidence") if isinstance(domain, dict) else None,
    }
    with atomic_output(run_dir / "resume.pt") as tmp:
        torch.save(state, tmp)


def save_epoch(run_dir: Path, model: Any, opt: Any, run: RunState, improved: bool, half: bool) -> None:
    """Write an epoch's files: model.pt and confusion.png (when ``improved``; model.pt in float16 when ``half``),
    last.pt, resume.pt, history.csv, curves.png and metrics.json.

    Example:
        >>> save_epoch(Path("runs/default"), model, opt, state, improved=True, half=False)  # doctest: +SKIP
    """
    if improved:
        model.save(run_dir / "model.pt", half=half)
    model.save(run_dir / "last.pt", half=False)
    _save_resume(run_dir, opt, run, model)
    write_history(run_dir, run.history)
    plot_curves(run_dir / "curves.png", run.history)
    if improved and run.best_summary.get("confusion_matrix"):
        with atomic_output(run_dir / "confusion.png") as tmp:
            write_confusion_png(run.best_summary, tmp, title=f"validation, best epoch ({run.best_epoch})")
    write_text_atomic(
        run_dir / "metrics.json", json.dumps({"best_epoch": run.best_epoch, "validation": run.best_summary}, indent=2)
    )
