"""Find the geoseg command and run it in a child process: progress, messages, errors and cancelling.

Plain Python (no QGIS import), so it also runs outside QGIS. QGIS's own Python
has no torch and never imports geoseg: every algorithm runs the ``geoseg``
command (or ``PYTHON -m geoseg``) with ``--progress json`` and reads its
stderr, one JSON object per progress line.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

MIN_VERSION = (0, 2, 0)
"""The oldest geoseg whose CLI (``--progress json``, the options the algorithms pass) this plugin drives."""

SETTING_NAME = "GEOSEG_EXECUTABLE"
"""Processing setting (Settings > Options > Processing > Providers > geoseg) holding the geoseg executable."""
SETTING_KEY = "Processing/Configuration/" + SETTING_NAME
"""Where QgsSettings stores :data:`SETTING_NAME`."""
LEGACY_SETTING_KEY = "geoseg/executable"
"""Where the former Processing script remembered the executable; read when the setting is empty."""

GRACE_S = 10.0
"""Seconds geoseg gets after a polite stop (it removes its temporary files) before its process group is killed."""
STOP_WITH_STDIN = "GEOSEG_STOP_WITH_STDIN"
"""Set for geoseg by the plugin: geoseg stops as on Ctrl-C when its stdin closes (how a cancel reaches it on Windows,
where QGIS has no console to send Ctrl+Break through; also when QGIS itself ends)."""

WHERE_TO_SET = (
    "set the full path of the geoseg executable (or of a Python interpreter that has geoseg installed) in "
    "Settings > Options > Processing > Providers > geoseg, or in the algorithm's 'geoseg executable' parameter"
)

# QGIS sets these for its own Python and GDAL; geoseg's environment brings its own
_FOREIGN_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "GDAL_DATA", "GDAL_DRIVER_PATH", "PROJ_LIB", "PROJ_DATA")
_PYTHON = re.compile(r"^pythonw?(\d+(\.\d+)*)?(\.exe)?$", re.IGNORECASE)
_EPOCH = re.compile(r"^epoch (\d+)/(\d+)$")
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_checked: dict[tuple[str, ...], tuple[float, str]] = {}


class GeosegError(Exception):
    """geoseg could not be found, is too old, failed (the message is its one-line error) or was cancelled."""


class Cancelled(GeosegError):
    """The user cancelled; geoseg and every process it started were stopped."""


def command_prefix(path: str) -> list[str]:
    """The command line that starts geoseg: ``[path]``, or ``[path, "-m", "geoseg"]`` for a Python interpreter.

    >>> command_prefix("/opt/venv/bin/python3.11")
    ['/opt/venv/bin/python3.11', '-m', 'geoseg']
    >>> command_prefix("/opt/venv/bin/geoseg")
    ['/opt/venv/bin/geoseg']
    """
    if Path(path).suffix.lower() in (".bat", ".cmd"):  # cmd.exe reads the arguments again: a|layername=x is a pipe
        raise GeosegError(
            f"the geoseg executable {path} is a batch file, which cannot pass layer names safely: give geoseg.exe "
            f"(in the Scripts folder of the Python environment that has geoseg) or its python.exe"
        )
    return [path, "-m", "geoseg"] if _PYTHON.match(Path(path).name) else [path]


def _existing(value: str) -> str | None:
    """``value`` as an executable file: a path, a command on PATH, or a folder (a venv, its bin or Scripts)."""
    path = Path(value).expanduser()
    if path.is_dir():
        for sub in ("", "bin", "Scripts"):
            for name in ("geoseg", "geoseg.exe"):
                if (path / sub / name).is_file():
                    return str(path / sub / name)
        return None
    if path.is_file():
        return str(path)
    return shutil.which(value)


def find_geoseg(parameter: str = "", setting: str = "") -> list[str]:
    """The geoseg command line: from the algorithm's parameter, else the plugin setting, else ``geoseg`` on PATH."""
    for value, where in ((parameter, "the 'geoseg executable' parameter"), (setting, "the geoseg Processing setting")):
        value = (value or "").strip().strip('"')
        if value:
            found = _existing(value)
            if found is None:
                raise GeosegError(f"the geoseg executable {value} given in {where} does not exist: {WHERE_TO_SET}")
            return command_prefix(found)
    found = shutil.which("geoseg")
    if found is None:
        raise GeosegError(f"geoseg was not found on PATH: install it (pip install geoseg) and {WHERE_TO_SET}")
    return command_prefix(found)


def child_env() -> dict[str, str]:
    """The environment geoseg runs in: QGIS's, without QGIS's Python and GDAL paths, UTF-8 output, unbuffered."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _FOREIGN_ENV}
    env.update(PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1", **{STOP_WITH_STDIN: "1"})
    return env


def check_version(prefix: list[str]) -> str:
    """Run ``geoseg --version`` (once per executable and modification time); the version, or GeosegError."""
    try:
        stamp = os.path.getmtime(prefix[0])
    except OSError:
        stamp = 0.0
    key = tuple(prefix)
    if key in _checked and _checked[key][0] == stamp:
        return _checked[key][1]
    what = " ".join(prefix)
    try:
        done = subprocess.run(
            [*prefix, "--version"],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env={k: v for k, v in child_env().items() if k != STOP_WITH_STDIN},  # its stdin is empty: not a stop
            stdin=subprocess.DEVNULL,
            timeout=120,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GeosegError(f"cannot start {what} ({exc}): {WHERE_TO_SET}") from None
    found = _VERSION.search(done.stdout) if done.returncode == 0 else None
    if found is None:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise GeosegError(f"{what} is not a working geoseg ({detail}): {WHERE_TO_SET}")
    version = tuple(int(part) for part in found.groups())
    if version < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        raise GeosegError(
            f"{what} is geoseg {found.group(0)}, older than this plugin needs ({need}): upgrade it "
            f"(pip install --upgrade geoseg) or {WHERE_TO_SET}"
        )
    _checked[key] = (stamp, found.group(0))
    return found.group(0)


class Progress:
    """Turns geoseg's progress lines into a percentage: each stage fills its share of the bar.

    ``stages`` maps a stage name to (start, span) in percent; other stages fill the whole bar, and
    ``epoch E/N`` stages of training fill the epochs in turn.

    >>> Progress({"predict": (0, 80), "vectorize": (80, 20)}).percent("vectorize", 1, 2)
    90.0
    >>> Progress().percent("epoch 2/4", 5, 10)
    37.5
    """

    def __init__(self, stages: dict[str, tuple[float, float]] | None = None):
        self.stages = stages or {}

    def percent(self, stage: str, done: int, total: int) -> float:
        """Percent of the whole command after ``done`` of ``total`` steps of ``stage``."""
        share = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
        epoch = _EPOCH.match(stage)
        if epoch and stage not in self.stages:
            number, count = int(epoch.group(1)), max(int(epoch.group(2)), 1)
            return 100.0 * min((number - 1 + share) / count, 1.0)
        start, span = self.stages.get(stage, (0.0, 100.0))
        return start + span * share


def _event(line: str) -> dict | None:
    """A progress event ``{"stage", "done", "total"}`` from a stderr line, or None."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if isinstance(event, dict) and {"stage", "done", "total"} <= event.keys():
        return event
    return None


def _read(stream, name: str, lines: queue.Queue) -> None:
    """Put each line of ``stream`` on ``lines`` as (name, line), then (name, None) at its end."""
    try:
        for line in stream:
            lines.put((name, line.rstrip("\r\n")))
    except (OSError, ValueError):  # the pipe was closed under us after a kill
        pass
    finally:
        lines.put((name, None))


def _popen_options() -> dict:
    """Start geoseg in its own process group, so cancelling stops it and everything it started."""
    if os.name == "nt":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        return {"creationflags": flags}
    return {"start_new_session": True}


def stop(proc: subprocess.Popen, grace: float | None = None) -> None:
    """Stop ``proc`` and its process group: politely (geoseg removes its temporary files), after ``grace``
    seconds (default :data:`GRACE_S`) by force."""
    posix = os.name != "nt"
    try:
        if proc.stdin is not None:  # geoseg stops as on Ctrl-C (STOP_WITH_STDIN): the way that works on Windows
            proc.stdin.close()
    except OSError:
        pass
    try:
        if posix:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM))
    except OSError:
        pass
    try:
        proc.wait(GRACE_S if grace is None else grace)
    except subprocess.TimeoutExpired:
        if not posix:
            flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window flashing up over QGIS
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, check=False, creationflags=flags)
        proc.kill()
        proc.wait()
    if posix:  # anything geoseg started that outlived it (Dask workers)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass


class _Messages:
    """Hands geoseg's output lines to a QGIS feedback object and keeps the error lines."""

    def __init__(self, feedback, progress: Progress):
        self.feedback, self.progress = feedback, progress
        self.errors: list[str] = []
        self.stdout: list[str] = []
        self.last = ""

    def line(self, name: str, line: str) -> None:
        """One line of stdout or stderr."""
        if name == "stdout":
            self.stdout.append(line)
            if line.strip():
                self.feedback.pushInfo(line)
            return
        event = _event(line)
        if event is not None:
            stage, done, total = str(event["stage"]), int(event["done"]), int(event["total"])
            self.feedback.setProgress(self.progress.percent(stage, done, total))
            if total == 1:  # a step (export's load, calibrate, quantize, ...): named in the log when it starts
                self.feedback.setProgressText(f"geoseg: {stage}")
                if done == 0:
                    self.feedback.pushInfo(f"geoseg: {stage}…")
            else:
                self.feedback.setProgressText(f"geoseg: {stage} {done}/{total}")
            return
        text = line.strip()
        if not text:
            return
        if text.startswith(("geoseg: error:", "Error:")):
            self.errors.append(text)
        elif text.startswith(("geoseg: warning:", "Warning")) or "Warning:" in text:  # geoseg's, GDAL's, Python's
            self.feedback.pushWarning(text)
            return  # a warning is not why geoseg failed: not kept as its last word
        else:
            self.feedback.pushInfo(text)
        self.last = text

    def failure(self, command: str, code: int) -> str:
        """The one-line message for a failed geoseg: its own error line when it printed one."""
        for text in reversed(self.errors):
            if text.startswith("geoseg: error:"):
                return text
        if self.errors:  # a usage error from click: "Error: No such option: --x"
            return f"geoseg {command}: {self.errors[-1]} (is this geoseg too old for the option? see geoseg {command} --help)"
        detail = f": {self.last}" if self.last else ""
        if code < 0:  # POSIX: ended by a signal
            name = _signal_name(-code)
            cause = " (out of memory? the system stops the largest process when memory runs out)" if name == "SIGKILL" else ""
            return f"geoseg {command} was stopped by signal {name}{cause}{detail}"
        crash = _WINDOWS_CRASHES.get(code & 0xFFFFFFFF)
        if crash is not None:  # Windows: an NTSTATUS code, not geoseg's own exit code
            return f"geoseg {command} crashed ({crash}, 0x{code & 0xFFFFFFFF:08X}){detail}"
        return f"geoseg {command} failed with exit code {code}{detail}"


_WINDOWS_CRASHES = {
    0xC0000005: "access violation",
    0xC0000017: "out of memory",
    0xC00000FD: "stack overflow",
    0xC0000409: "stack buffer overrun",
    0xC000001D: "illegal instruction: a library built for another processor",
    0xC0000135: "a DLL was not found",
    0xC0000139: "a DLL entry point was not found: mismatched library versions",
}
"""Windows' codes of a process that crashed (NTSTATUS), as the exit code Python sees, by what they mean."""


def _signal_name(number: int) -> str:
    """``SIGKILL`` for 9; the number where the platform has no such signal.

    >>> _signal_name(9)
    'SIGKILL'
    """
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def run_geoseg(prefix: list[str], args: list[str], feedback, progress: Progress | None = None) -> list[str]:
    """Run ``geoseg ARGS --progress json``, feeding ``feedback`` (a QgsProcessingFeedback); its stdout lines.

    Progress lines move the bar, warnings become warnings, other lines log
    messages. Cancelling stops the whole process tree and raises
    :class:`Cancelled`; a failure raises :class:`GeosegError` with geoseg's
    one-line error.
    """
    command = [*prefix, *args, "--progress", "json"]
    feedback.pushCommandInfo(" ".join(f'"{part}"' if " " in part else part for part in command))
    messages = _Messages(feedback, progress or Progress())
    lines: queue.Queue = queue.Queue()
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # never written: closed to stop geoseg (see stop)
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=child_env(),
            **_popen_options(),
        )
    except OSError as exc:
        raise GeosegError(f"cannot start {prefix[0]} ({exc}): {WHERE_TO_SET}") from None
    with proc:
        readers = [
            threading.Thread(target=_read, args=(stream, name, lines), daemon=True)
            for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
        ]
        for reader in readers:
            reader.start()
        cancelled = _pump(proc, lines, messages, feedback, len(readers))
        for reader in readers:
            reader.join(timeout=5)
    if cancelled:
        raise Cancelled("cancelled: geoseg was stopped; existing outputs were left as they were")
    if proc.returncode != 0:
        raise GeosegError(messages.failure(args[0], proc.returncode))
    return messages.stdout


def _pump(proc: subprocess.Popen, lines: queue.Queue, messages: _Messages, feedback, open_pipes: int) -> bool:
    """Hand lines on until the pipes end (or geoseg has exited a while ago); on cancel stop the tree, return True."""
    exited = None
    while open_pipes:
        if feedback.isCanceled():
            stop(proc)
            return True
        try:
            name, line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None:
                exited = exited or time.monotonic()
                if time.monotonic() - exited > 5:  # a process geoseg started still holds the pipes
                    stop(proc, grace=0)
                    break
            continue
        if line is None:
            open_pipes -= 1
        else:
            messages.line(name, line)
    proc.wait()
    return False
