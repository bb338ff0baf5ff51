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
import shutil
import socket
import time
import uuid
from pathlib import Path

__all__ = ["HOST", "pid_alive", "remove_stale", "temp_name"]

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


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


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
    prefixes = {f".{_short(target.name)}.", f".{_short(target.stem)}."}
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        prefix = next((p for p in prefixes if entry.name.startswith(p)), None)
        if prefix is None or not (".partial" in entry.name or entry.name.endswith(".old")):
            continue
        pid = entry.name[len(prefix) :].split(".")[0]
        if not pid.isdigit():
            if _older_than(entry, 3600):  # named by an older geoseg, without a process id: reported, not removed
                log.warning("%s looks like a temporary file of an interrupted geoseg; remove it if no geoseg runs", entry)
        elif not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            log.info("removed %s, left by an interrupted geoseg process", entry)
            removed.append(entry)
    return removed
