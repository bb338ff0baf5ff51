"""Writing outputs: claiming a folder, temporary names, atomic files and folders, leftovers.

geoseg writes into a folder only when it is new, empty or geoseg's own
(:mod:`geoseg.io.ownership` has the rule), replaces its own outputs only
with ``--overwrite``, and builds every output under a temporary name
renamed into place when complete. A new output folder is claimed
atomically (created with a claim file), so two processes cannot both win.
Temporary names carry the process id, so the next run removes leftovers of
interrupted processes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from geoseg.core.errors import OutputError
from geoseg.io.leftovers import HOST, older_than, pid_alive, remove_stale, temp_name
from geoseg.io.ownership import (
    CHANGE_FILES,
    CHANGE_MARKS,
    MARK_CONTENTS,
    REPORT_FILES,
    REPORT_MARKS,
    RUN_FILES,
    RUN_MARKS,
    check_contents,
    is_mark,
)
from geoseg.io.paths import canonical, check_output, check_writable_folder, is_remote, same_file
from geoseg.io.renames import in_use, rename, replace_file

__all__ = [
    "LOCK",
    "MARK_CONTENTS",
    "RUN_FILES",
    "RUN_MARKS",
    "CHANGE_FILES",
    "CHANGE_MARKS",
    "REPORT_FILES",
    "REPORT_MARKS",
    "atomic_folder",
    "atomic_output",
    "claimed_folder",
    "check_outdir",
    "is_mark",
    "write_error",
    "style_beside",
    "write_text_atomic",
]

log = logging.getLogger("geoseg")

LOCK = ".geoseg.lock"
"""Claim file inside an output folder while a geoseg process builds it (holds the process id and host)."""


def _contents(folder: Path) -> list[str]:
    """The names in ``folder`` besides a claim file: a live claim of another process is refused, a stale one removed."""
    names = os.listdir(folder)
    if LOCK in names:
        if _claim_alive(folder / LOCK):
            raise _busy(folder)
        with contextlib.suppress(OSError):
            (folder / LOCK).unlink()
        names.remove(LOCK)
    return names


def _busy(folder: Path) -> OutputError:
    """The refusal of a folder another process claimed, naming the claim (a machine renamed since, as macOS renames
    itself on another network, keeps a dead process's claim alive: the user may remove it)."""
    try:
        pid, _, host = (folder / LOCK).read_text(encoding="utf-8").partition(" ")
        who = f" (process {pid.strip()} on {host.strip() or HOST})"
    except OSError:
        who = ""
    return OutputError(
        f"output folder {folder} is being written by another geoseg process{who}: wait for it or choose another "
        f"folder; if no geoseg runs there, delete {folder / LOCK}"
    )


def check_outdir(
    outdir: Path, inputs: Iterable[object], overwrite: bool, marks: Iterable[str] = RUN_MARKS, create_parents: bool = False
) -> None:
    """Check that output folder ``outdir`` may be (re)built, before any work starts.

    geoseg writes into a folder only when it is new, empty or geoseg's own
    (it holds one of ``marks``, such as ``run.json``), and replaces its own
    folder only with ``overwrite``. A folder holding other files, a folder
    another geoseg process is building, a file, or a folder that would
    contain one of ``inputs`` is refused. With ``create_parents`` missing
    parent folders are fine when the nearest existing one is writable.

    Example:
        >>> check_outdir(Path("/tmp/new_outdir"), ["scene.tif"], overwrite=False)
    """
    marks = tuple(marks)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"output {outdir} is a file, not a folder: give a folder path")
    resolved = canonical(outdir)
    for item in inputs:
        if item is None or is_remote(str(item)) or str(item) == "default":
            continue
        path = canonical(str(item))
        if path == resolved or resolved in path.parents:
            raise OutputError(f"input {item} lies inside the output folder {outdir}: choose another output folder")
    if outdir.is_dir():
        check_contents(outdir, _contents(outdir), overwrite, marks)
        _probe(outdir)  # before any work: the claim file and the finished folder go into it
    if create_parents and not resolved.parent.exists():  # made by atomic_folder(create_parents=True)
        existing = next(p for p in resolved.parents if p.exists())
        check_writable_folder(existing)
        return
    check_writable_folder(resolved.parent)


def _not_writable(folder: Path, exc: OSError) -> OutputError:
    return OutputError(f"output folder {folder} is not writable ({exc.strerror or exc}): choose another output path")


def _probe(folder: Path) -> None:
    """Refuse an existing output folder that cannot be written (permissions, a read-only or immutable folder)."""
    probe = folder / temp_name("probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as exc:
        raise _not_writable(folder, exc) from None


def _nearly_full(path: Path) -> bool:
    """True when the disk of ``path`` has less than 1 MiB free (GDAL reports a full disk only as a write error)."""
    try:
        return shutil.disk_usage(Path(path).parent).free < 1 << 20
    except OSError:
        return False


def write_error(path: Path, exc: BaseException) -> OutputError:
    """One clear error for a failed write of ``path``: a full disk is named as such (GDAL wraps it in its errors).

    Example:
        >>> str(write_error(Path("c.tif"), OSError(28, "No space left on device")))
        'no space left on the device writing c.tif: free disk space or write to another folder'
    """
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(getattr(c, "errno", None) == errno.ENOSPC or "No space left" in str(c) for c in chain) or _nearly_full(path):
        return OutputError(f"no space left on the device writing {path}: free disk space or write to another folder")
    detail = next((str(c).splitlines()[0] for c in reversed(chain) if str(c)), type(exc).__name__)
    return OutputError(f"cannot write {path} ({detail}): check the folder's permissions and free space")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _claim_alive(lock: Path) -> bool:
    """True while the process that wrote ``lock`` runs (or runs on another host, where it cannot be told)."""
    try:
        pid_text, _, host = lock.read_text(encoding="utf-8").partition(" ")
        pid = int(pid_text)
    except FileNotFoundError:  # released meanwhile
        return False
    except (OSError, ValueError):  # created but not yet written: another process is claiming right now
        return not older_than(lock, 60)
    return host.strip() != HOST or pid_alive(pid)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it to ``path`` only if the block succeeds.

    The temporary file keeps the suffix so drivers that look at it still work;
    leftovers of interrupted processes for the same path are removed first.

    Example:
        >>> with atomic_output(Path("/tmp/out.txt")) as tmp:
        ...     _ = tmp.write_text("done")
        >>> Path("/tmp/out.txt").read_text()
        'done'
    """
    path = Path(path)
    remove_stale(path)
    tmp = path.with_name(temp_name(path.stem, "partial", path.suffix))
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    replace_file(tmp, path)  # retried past a momentary lock; a file held open (Windows) is one clear error


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` under a temporary name, then rename.

    Example:
        >>> write_text_atomic(Path("/tmp/doc_note.txt"), "done").read_text()
        'done'
    """
    with atomic_output(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def style_beside(output: Path, source: str | os.PathLike, overwrite: bool, text: str | None = None) -> Path | None:
    """Where ``output``'s QGIS style goes (``NAME.qml``: QGIS loads it when it opens the file), checked as an output.

    None, with a warning, where that file is also ``source``'s style (QGIS
    loads ``lc.qml`` for ``lc.tif`` as for ``lc.shp``): it is not written. A
    file already holding ``text`` (the same style) is rewritten without
    ``overwrite``: that loses nothing.

    Example:
        >>> style_beside(Path("/tmp/new_polygons.shp"), "classes.tif", False)
        PosixPath('/tmp/new_polygons.qml')
    """
    style = Path(output).with_suffix(".qml")
    if not is_remote(source) and same_file(style, Path(source).with_suffix(".qml")):
        log.warning(
            "%s: its QGIS style was not written: %s would also style %s in QGIS; give %s another name to get it",
            output,
            style.name,
            Path(source).name,
            Path(output).name,
        )
        return None
    with contextlib.suppress(OSError, UnicodeDecodeError):
        same_text = text is not None and style.is_file() and style.read_text(encoding="utf-8") == text
        overwrite = overwrite or same_text
    return check_output(style, [source], overwrite)


def _claim(out: Path, overwrite: bool, marks: tuple[str, ...]) -> bool:
    """Claim ``out`` for this process (atomic: of two processes only one wins); True when it was created here.

    The folder's contents are checked again once the claim is held, so a run
    that finished meanwhile is not replaced without ``overwrite``.
    """
    created = False
    try:
        out.mkdir()
        created = True
    except FileExistsError:
        pass
    for _ in range(2):
        try:
            fd = os.open(out / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if _claim_alive(out / LOCK):
                raise _busy(out) from None
            with contextlib.suppress(OSError):
                (out / LOCK).unlink()
        except OSError as exc:
            _release(out, created)
            raise _not_writable(out, exc) from None
    else:
        raise OutputError(f"output folder {out} could not be claimed: check its permissions")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {HOST}")
    try:  # the rule again, now that the claim is held: a run that finished meanwhile is not replaced
        check_contents(out, [n for n in os.listdir(out) if n != LOCK], overwrite, marks)
    except OutputError:
        _release(out, created)
        raise
    return created


def _release(out: Path, created: bool) -> None:
    with contextlib.suppress(OSError):
        (out / LOCK).unlink()
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()  # only when still empty


def _install(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` in the place of the claimed ``out``."""
    if [n for n in os.listdir(out) if n != LOCK]:  # geoseg's own folder, replaced with --overwrite
        old = out.with_name(temp_name(out.name, "old"))  # a kill in between: the next run puts it back
        try:
            rename(out, old)
        except OSError as exc:
            raise in_use(out, exc, "its files") from None
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    (out / LOCK).unlink()
    try:
        os.replace(tmp, out)  # POSIX renames over an empty folder in one step
    except OSError:
        out.rmdir()
        os.replace(tmp, out)


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the folders created, outermost first."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()][::-1]
    for p in missing:
        p.mkdir()
    return missing


def _folder_path(out: Path) -> Path:
    """The output folder's absolute path: ``.`` is the current folder, a link to a folder is its target."""
    path = Path(os.path.abspath(out))
    if path.is_symlink():
        path = canonical(path)
    return path.parent.resolve() / path.name


@contextlib.contextmanager
def atomic_folder(
    out: Path, overwrite: bool = False, marks: Iterable[str] = RUN_MARKS, create_parents: bool = False
) -> Iterator[Path]:
    """Yield a temporary sibling folder; it replaces ``out`` only if the block succeeds.

    ``out`` is claimed first (created when missing, with a claim file), so two
    processes cannot both build it; leftovers of interrupted processes are
    removed. An existing ``out`` must be empty or geoseg's own (one of
    ``marks``) with ``overwrite``; it is replaced only after the new folder
    is complete. On failure nothing of ``out`` changes.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "result"
        >>> with atomic_folder(out) as tmp:
        ...     _ = (tmp / "a.txt").write_text("done")
        ...     _ = (tmp / "run.json").write_text("{}")
        >>> sorted(p.name for p in out.iterdir())
        ['a.txt', 'run.json']
    """
    made = _make_parents(Path(os.path.abspath(out)).parent) if create_parents else []
    out = _folder_path(out)
    parent = out.parent
    remove_stale(out)
    created = _claim(out, overwrite, tuple(marks))
    tmp = parent / temp_name(out.name, "partial")
    try:
        tmp.mkdir()
        yield tmp
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _release(out, created)
        for folder in reversed(made):  # parents made for this output, removed again when still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


@contextlib.contextmanager
def claimed_folder(out: Path, marks: Iterable[str], create_parents: bool = False) -> Iterator[Path]:
    """Hold folder ``out`` for this process while the block writes into it in place (a batch OUTDIR).

    ``out`` is created when missing; an existing one must be empty or
    geoseg's own (one of ``marks``: a batch being resumed). Another process
    asking for it meanwhile is refused. A folder created here and left empty
    is removed at the end.

    Example:
        >>> import tempfile
        >>> with claimed_folder(Path(tempfile.mkdtemp()) / "batch", ["batch.json"]) as folder:
        ...     _ = (folder / "batch.json").write_text("{}")
    """
    made = _make_parents(Path(os.path.abspath(out)).parent) if create_parents else []
    out = _folder_path(out)
    try:
        created = _claim(out, True, tuple(marks))
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    try:
        yield out
    finally:
        _release(out, created)
