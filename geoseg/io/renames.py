"""Renaming finished files into place: retried past a momentary lock, several files all or none.

On Windows a file another program holds open (QGIS showing a class map, a
virus scanner looking at a new file) cannot be replaced or renamed:
``os.replace`` raises PermissionError (WinError 5 or 32). A scanner lets go
within a moment, so a rename is retried for about a second; a program that
keeps the file open gets an :class:`~geoseg.core.errors.OutputError` naming
the file and the fix, and the temporary file is removed. Files written
together (a class map, its confidence, its probabilities) replace their
targets all or none: each existing target is first moved aside under a
temporary name (``.NAME.PID.HEX.old``, put back by
:func:`~geoseg.io.leftovers.remove_stale` should the process die), then the
new files are moved in; a failure puts the moved-aside targets back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from geoseg.core.errors import OutputError
from geoseg.io.leftovers import temp_name

__all__ = ["RETRY_SECONDS", "in_use", "rename", "replace_file", "replace_files"]

log = logging.getLogger("geoseg")

RETRY_SECONDS = 1.0
"""How long a rename refused with PermissionError (a file held open on Windows) is retried."""


def rename(src: Path, dst: Path) -> None:
    """``os.replace(src, dst)``, retried for about :data:`RETRY_SECONDS` while it raises PermissionError.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.txt").write_text("a")
        >>> rename(folder / "a.txt", folder / "b.txt"); sorted(p.name for p in folder.iterdir())
        ['b.txt']
    """
    deadline = time.monotonic() + RETRY_SECONDS
    delay = 0.02
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.25)


def in_use(target: Path, exc: OSError, what: str = "it") -> OutputError:
    """The error for ``target`` that cannot be replaced (on Windows: a program holds ``what`` open).

    Example:
        >>> str(in_use(Path("c.tif"), PermissionError(13, "Permission denied")))
        'cannot replace c.tif (Permission denied): close programs that hold it open (QGIS, a file browser) and run again'
    """
    return OutputError(
        f"cannot replace {target} ({exc.strerror or exc}): close programs that hold {what} open "
        "(QGIS, a file browser) and run again"
    )


def _refused(target: Path, exc: OSError) -> OutputError:
    """The error for a finished file that could not be renamed to ``target``."""
    if os.path.lexists(target):
        return in_use(target, exc)
    return OutputError(
        f"cannot write {target} ({exc.strerror or exc}): check the folder's permissions, close programs that may "
        "hold files in it open (a virus scanner, a sync tool) and run again"
    )


def replace_file(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` to ``target``; on failure ``tmp`` is removed and ``target`` left as it was.

    A rename refused with PermissionError (on Windows: ``target`` held open)
    is retried briefly, then raised as an :class:`OutputError` saying so.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".c.partial").write_text("new")
        >>> replace_file(folder / ".c.partial", folder / "c.txt"); (folder / "c.txt").read_text()
        'new'
    """
    try:
        rename(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, PermissionError):
            raise _refused(target, exc) from None
        raise


def replace_files(moves: Iterable[tuple[Path, Path]]) -> None:
    """Rename each finished ``(tmp, target)`` pair's file into place: all of them or, on failure, none.

    Existing targets are moved aside first (a target held open fails here,
    before anything changed), then the new files are moved in, then the
    moved-aside ones are deleted (one that cannot be, being open, is left for
    :func:`~geoseg.io.leftovers.remove_stale`). On failure the targets are put
    back, the temporary files removed, and the error raised as
    :func:`replace_file` does.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in (".a.partial", ".b.partial", "a.txt"):
        ...     _ = (folder / name).write_text(name)
        >>> replace_files([(folder / ".a.partial", folder / "a.txt"), (folder / ".b.partial", folder / "b.txt")])
        >>> sorted((p.name, p.read_text()) for p in folder.iterdir())
        [('a.txt', '.a.partial'), ('b.txt', '.b.partial')]
    """
    moves = [(Path(tmp), Path(target)) for tmp, target in moves]
    if len(moves) == 1:
        replace_file(*moves[0])
        return
    aside: dict[Path, Path] = {}  # target: where it was moved
    placed: list[Path] = []
    target = moves[0][1]
    token = uuid.uuid4().hex[:8]  # one group: a process killed in between has them all put back by the next run
    try:
        for _, target in moves:
            if os.path.lexists(target):
                old = target.with_name(temp_name(target.name, "old", token=token))
                rename(target, old)
                aside[target] = old
        for tmp, target in moves:
            rename(tmp, target)
            placed.append(target)
    except BaseException as exc:
        _undo(moves, aside, placed)
        if isinstance(exc, PermissionError):
            raise _refused(target, exc) from None
        raise
    for old in aside.values():
        try:
            os.unlink(old)
        except OSError as exc:  # open in another program (Windows): removed by a later run
            log.debug("%s not removed (%s): left for a later run", old, exc)


def _undo(moves: list[tuple[Path, Path]], aside: dict[Path, Path], placed: list[Path]) -> None:
    """Put the moved-aside targets back, remove new files where there was none, remove the temporary files."""
    for target in placed:
        if target not in aside:
            with contextlib.suppress(OSError):
                os.unlink(target)
    for target, old in aside.items():
        try:
            rename(old, target)
        except OSError as exc:
            log.warning("%s could not be put back from %s (%s): rename it back by hand", target, old.name, exc)
    for tmp, _ in moves:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
