"""Progress of long work (a bar, log lines or JSON lines on stderr) and a command's closing line."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator

import click

__all__ = ["INTERRUPTED", "LogProgress", "PROGRESS_LOGGER", "make_progress", "progress_shown", "summary"]

PROGRESS_LOGGER = "geoseg.progress"
"""Progress lines of ``--progress auto`` off a terminal: INFO, yet shown at the default verbosity (not with -q)."""
PROGRESS_STEP = 10
"""Percent of a stage between two progress lines."""
_UNITS = {"predict": "chips", "tile": "chips", "vectorize": "strips", "batch": "scenes", "index": "blocks"}
_UNITS |= {"compare": "rows", "transitions": "rows"}


class LogProgress:
    """Progress as log lines, one each time a stage passes another :data:`PROGRESS_STEP` percent: what
    ``--progress auto`` shows when stderr is not a terminal (a log file, CI, a pipe), so long runs are not silent.

    Lines go to ``emit`` (default: the ``geoseg.progress`` logger at INFO). A
    stage that starts again (its count goes back, as each scene of a batch
    predicts) is followed afresh; a stage of one step (one chip, one strip)
    has no progress to tell and logs nothing.

    Example:
        >>> show = LogProgress(emit=print)
        >>> for done in (0, 12, 13, 48, 100, 121):
        ...     show("predict", done, 121)
        predict: 10% (13/121 chips)
        predict: 39% (48/121 chips)
        predict: 82% (100/121 chips)
        predict: 100% (121/121 chips)
    """

    def __init__(self, step: int = PROGRESS_STEP, emit: Callable[[str], None] | None = None) -> None:
        self.step = step
        self.emit = emit or functools.partial(logging.getLogger(PROGRESS_LOGGER).info, "%s")
        self.shown: dict[str, tuple[int, int]] = {}  # stage: (percent shown last, rounded down to a step; count seen last)

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Take ``done`` of ``total`` steps of ``stage``; log a line when it passes the next step of percent."""
        shown, last = self.shown.get(stage, (0, -1))
        if done < last or done == 0:  # the stage starts (again)
            shown = 0
        percent = min(100, 100 * done // total) if total > 1 else 0
        if percent >= shown + self.step or (percent == 100 and shown < 100):
            shown = 100 if percent == 100 else percent // self.step * self.step
            self.emit(f"{stage}: {percent}% ({done}/{total} {_UNITS.get(stage, 'steps')})")
        self.shown[stage] = (shown, done)


INTERRUPTED = "geoseg.interrupted"
"""``ctx.meta`` key: what Ctrl-C leaves behind (text, or a function that says it then), for commands that keep finished
work (default: no output was changed)."""


def summary(text: str) -> None:
    """A command's closing line on stderr (what it wrote), not shown with ``-q`` (only errors).

    Example:
        >>> summary("chips: 16 chips written")  # doctest: +SKIP
    """
    if not click.get_current_context().meta.get("geoseg.quiet", 0):
        click.echo(text, err=True)


@contextlib.contextmanager
def progress_shown(unit: str = "chip") -> Iterator[Callable[[str, int, int], None]]:
    """The progress callback of the current command's ``--progress`` mode (:func:`make_progress`), its bars closed
    when the block ends, also on an error.

    Example:
        >>> with progress_shown() as update:  # doctest: +SKIP
        ...     geoseg.predict(scene, model, "classes.tif", progress=update)
    """
    update, close = make_progress(unit)
    try:
        yield update
    finally:
        close()


def make_progress(unit: str = "chip") -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """A progress callback for the current command's ``--progress`` mode, and a closer.

    ``auto`` is a bar on a terminal and :class:`LogProgress` lines elsewhere; ``-q`` silences both. ``unit``
    names what a bar counts.
    """
    ctx = click.get_current_context()
    mode = ctx.meta.get("geoseg.progress", "auto")
    if ctx.meta.get("geoseg.quiet", 0):
        mode = "json" if mode == "json" else "none"
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "log":
        return LogProgress(), (lambda: None)
    if mode == "none":
        return (lambda stage, done, total: None), (lambda: None)
    if mode == "json":

        def emit(stage: str, done: int, total: int) -> None:
            sys.stderr.write(json.dumps({"stage": stage, "done": done, "total": total}) + "\n")
            sys.stderr.flush()

        return emit, (lambda: None)

    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close
