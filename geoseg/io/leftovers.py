"""Temporary names of geoseg's outputs and the leftovers of interrupted processes.

Every temporary file or folder is a hidden sibling of its output named
``.NAME.PID.HEX.KIND``: the process id tells a leftover of a killed process
(removed by the next run that writes there) from the work of one still
running.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

__all__ = ["HOST", "older_than", "pid_alive", "remove_stale", "temp_name"]

log = logging.getLogger("geoseg")

HOST = socket.gethostname()
"""This machine's name, written into claims so another machine's claim is never taken for stale."""


def _short(name: str) -> str:
    """``name``, shortened (with a hash) when a temporary name built from it would pass 255 bytes."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= 160:
        return name
    return raw[:120].decode("utf-8", "ignore") + "~" + hashlib.sha1(raw).hexdigest()[:10]


def temp_name(name: str, kind: str = "partial", suffix: str = "") -> str:
    """The hidden name of geoseg's temporary sibling of ``name``: ``.NAME.PID.HEX.KIND[SUFFIX]``.

    The process id lets a later run tell a leftover of an interrupted process
    (removed by :func:`remove_stale`) from the work of one still running.

    Example:
        >>> temp_name("classes", "partial", ".tif").startswith(f".classes.{os.getpid()}.")
        True
    """
    return f".{_short(name)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{kind}{suffix}"


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs on this machine."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # pragma: no cover - Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # type: ignore[attr-defined]
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)  # type: ignore[attr-defined]
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def older_than(path: Path, seconds: float) -> bool:
    """True when ``path`` was last changed more than ``seconds`` ago (False when it cannot be read)."""
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d{1,9})\.[0-9a-f]{8}\.(?P<kind>partial|old|cog\.partial)(\.[^.]+)?$")
"""A name made by :func:`temp_name`: ``.NAME.PID.HEX.KIND[SUFFIX]``."""
_OLD_STYLE = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.(partial|old)(\.[^.]+)?$")
"""A temporary name of geoseg versions before 0.2 (no process id)."""


def remove_stale(target: Path) -> list[Path]:
    """Remove geoseg's temporary siblings of ``target`` left by processes that no longer run.

    Names are those of :func:`temp_name` for ``target``'s name or stem; a
    temporary entry whose process still runs is left alone, one without a
    process id (older geoseg versions) is reported, not removed.

    Example:
        >>> remove_stale(Path("/tmp/doc_outdir"))
        []
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    names = {_short(target.name), _short(target.stem)}
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or match["name"] not in names:
            older = _OLD_STYLE.match(entry.name)
            if older and older["name"] in names and older_than(entry, 3600):  # no pid: reported, not removed
                log.warning("%s looks like a temporary file of an interrupted geoseg; remove it if no geoseg runs", entry)
            continue
        if pid_alive(int(match["pid"])):
            continue
        if match["kind"] == "old" and not target.exists():  # killed while swapping folders: put the old one back
            os.replace(entry, target)
            log.warning("%s restored from %s, left by an interrupted geoseg process", target, entry.name)
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() and not entry.is_symlink() else entry.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted geoseg process", entry)
        removed.append(entry)
    return removed
