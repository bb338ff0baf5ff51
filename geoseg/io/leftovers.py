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


def temp_name(name: str, kind: str = "partial", suffix: str = "", token: str | None = None) -> str:
    """The hidden name of geoseg's temporary sibling of ``name``: ``.NAME.PID.HEX.KIND[SUFFIX]``.

    The process id lets a later run tell a leftover of an interrupted process
    (removed by :func:`remove_stale`) from the work of one still running.
    ``token`` (8 hex digits) is the HEX of files moved aside together: one
    group, put back together (:func:`remove_stale`).

    Example:
        >>> temp_name("classes", "partial", ".tif").startswith(f".classes.{os.getpid()}.")
        True
    """
    return f".{_short(name)}.{os.getpid()}.{token or uuid.uuid4().hex[:8]}.{kind}{suffix}"


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs on this machine."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # pragma: no cover - Windows
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


PROCESS_QUERY_LIMITED_INFORMATION, ERROR_ACCESS_DENIED, STILL_ACTIVE = 0x1000, 5, 259


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows
    """True while process ``pid`` runs, on Windows.

    OpenProcess is refused (access denied) for another user's or an elevated
    process, which runs; it succeeds for one that exited while some handle to
    it is still open, which runs only while its exit code is STILL_ACTIVE.
    """
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = ctypes.c_void_p
    kernel32.OpenProcess.argtypes = (ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong)
    kernel32.GetExitCodeProcess.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong))
    kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
    handle = kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return bool(ctypes.get_last_error() == ERROR_ACCESS_DENIED)  # type: ignore[attr-defined]
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: its files are kept
        return code.value == STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def older_than(path: Path, seconds: float) -> bool:
    """True when ``path`` was last changed more than ``seconds`` ago (False when it cannot be read)."""
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


_TEMP = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d{1,9})\.(?P<hex>[0-9a-f]{8})\.(?P<kind>partial|old|cog\.partial)(?P<suffix>\.[^.]+)?$"
)
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
        if match["kind"] == "old":
            if match["name"] != _short(target.name) or match["suffix"]:  # another output's (``target`` by stem)
                continue
            group = _old_group(entries, parent, match["pid"], match["hex"])  # files moved aside together
            if any(not os.path.lexists(t) for _, t in group):  # killed while swapping: the whole group back
                for old, its_target in group:
                    _restore(old, its_target)
                continue
            removed += [old for old, _ in group if old != entry and _remove(old)]  # the new set was complete
        if _remove(entry):
            removed.append(entry)
    return removed


def _old_group(entries: list[Path], parent: Path, pid: str, token: str) -> list[tuple[Path, Path]]:
    """The outputs one process moved aside together (``.NAME.PID.TOKEN.old``), with the targets they came from."""
    group = []
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match and match["kind"] == "old" and not match["suffix"] and (match["pid"], match["hex"]) == (pid, token):
            group.append((entry, parent / match["name"]))
    return group


def _restore(entry: Path, target: Path) -> None:
    """Put ``target``, moved aside to ``entry`` by a process killed before it was replaced, back."""
    try:
        os.replace(entry, target)
    except OSError as exc:
        log.debug("%s not restored from %s (%s): left for a later run", target, entry.name, exc)
        return
    log.warning("%s restored from %s, left by an interrupted geoseg process", target, entry.name)


def _remove(entry: Path) -> bool:
    """Remove the leftover ``entry``; False when it stays (a file still open on Windows)."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)  # as much as can be: a file open on Windows stays
        if os.path.lexists(entry):
            log.debug("%s not removed (a file in it is open): left for a later run", entry)
            return False
    else:
        try:
            entry.unlink(missing_ok=True)
        except OSError as exc:  # open in another program (Windows)
            log.debug("%s not removed (%s): left for a later run", entry, exc)
            return False
    log.info("removed %s, left by an interrupted geoseg process", entry)
    return True
