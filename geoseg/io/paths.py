"""Output paths: refuse to clobber data, write under a temporary name, rename on success."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from geoseg.core.errors import OutputError

__all__ = [
    "atomic_folder",
    "atomic_output",
    "check_outdir",
    "check_output",
    "check_writable_folder",
    "is_remote",
    "same_file",
    "write_text_atomic",
]


def is_remote(path: str | os.PathLike) -> bool:
    """True for GDAL virtual paths such as ``/vsicurl/...`` or URLs.

    Example:
        >>> is_remote("/vsicurl/https://example.com/a.tif"), is_remote("a.tif")
        (True, False)
    """
    text = str(path)
    return text.startswith("/vsi") or "://" in text


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when two paths name the same file (resolving links and case where the OS does)."""
    if is_remote(a) or is_remote(b):
        return str(a) == str(b)
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return pa.samefile(pb)
    except OSError:
        pass
    return os.path.normcase(pa.resolve()) == os.path.normcase(pb.resolve())


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), overwrite: bool = False) -> Path:
    """Check that ``path`` may be written, before any work starts.

    Refuses an output equal to an input (always), an existing output unless
    ``overwrite``, and a folder that does not exist or cannot be written.

    Example:
        >>> check_output("/tmp/new_classes.tif").name
        'new_classes.tif'
    """
    out = Path(path)
    for item in inputs:
        if same_file(out, item):
            raise OutputError(f"output {out} is the input file: choose another output path")
    if out.exists() and not overwrite:
        raise OutputError(f"output {out} already exists: use --overwrite to replace it")
    if out.is_dir():
        raise OutputError(f"output {out} is a folder: give a file path")
    check_writable_folder(out.parent if str(out.parent) else Path("."))
    return out


def check_outdir(outdir: Path, inputs: Iterable, overwrite: bool) -> None:
    """Check that output folder ``outdir`` may be (re)built: refused if it exists (unless ``overwrite``),
    is a file, or would contain one of ``inputs``.

    Example:
        >>> check_outdir(Path("/tmp/new_outdir"), ["scene.tif"], overwrite=False)
    """
    if outdir.exists() and not overwrite:
        raise OutputError(f"output folder {outdir} already exists: use --overwrite to replace it")
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"output {outdir} is a file, not a folder: give a folder path")
    resolved = outdir.resolve()
    for item in inputs:
        if item is None or is_remote(item) or str(item) == "default":
            continue
        path = Path(item).resolve()
        if path == resolved or resolved in path.parents:
            raise OutputError(f"input {item} lies inside the output folder {outdir}: choose another output folder")
    check_writable_folder(resolved.parent)


def check_writable_folder(folder: Path) -> None:
    """Refuse a folder to write into that does not exist or cannot be written.

    Example:
        >>> check_writable_folder(Path("/tmp"))
    """
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist: create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable: choose another output path")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it to ``path`` only if the block succeeds.

    The temporary file keeps the suffix so drivers that look at it still work.

    Example:
        >>> with atomic_output(Path("/tmp/out.txt")) as tmp:
        ...     _ = tmp.write_text("done")
        >>> Path("/tmp/out.txt").read_text()
        'done'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` under a temporary name, then rename.

    Example:
        >>> write_text_atomic(Path("/tmp/doc_note.txt"), "done").read_text()
        'done'
    """
    with atomic_output(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; it replaces ``out`` only if the block succeeds.

    An existing ``out`` is removed only after the new folder is in place.

    Example:
        >>> with atomic_folder(Path("/tmp/doc_outdir")) as tmp:
        ...     _ = (tmp / "a.txt").write_text("done")
        >>> sorted(p.name for p in Path("/tmp/doc_outdir").iterdir())
        ['a.txt']
    """
    out = Path(out)
    tmp = out.resolve().parent / f".{out.name}.{uuid.uuid4().hex[:8]}.partial"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            if old is not None:
                os.replace(old, out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
