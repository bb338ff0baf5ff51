"""Paths: remote or local, the same file, inputs that may be opened, outputs that may be written."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from geoseg.core.errors import GeosegError, InputError, OutputError

__all__ = [
    "SIDECARS",
    "SQLITE_FILES",
    "canonical",
    "check_input_file",
    "check_output",
    "check_writable_folder",
    "drop_sidecars",
    "is_remote",
    "same_file",
    "sidecar_base",
    "sidecar_options",
    "special_kind",
]


LOCAL_READDIR = os.environ.get("GDAL_DISABLE_READDIR_ON_OPEN", "YES")
"""How a local scene is opened: GDAL does not list its folder but still looks for the files beside it that GDAL and
QGIS read (``.aux.xml`` nodata, band names and georeferencing, ``.msk`` masks, world files), so a scene reads here as
it does in QGIS. Remote files (``/vsicurl/``, ``http(s)://``, ...) and whatever GDAL opens on its own (a VRT's sources)
skip them (``EMPTY_DIR``, set by :func:`geoseg.io.raster.gdal_env`: no request for files that are rarely there). The environment
variable ``GDAL_DISABLE_READDIR_ON_OPEN``, when set, decides for local scenes too."""


def sidecar_options(name: str | os.PathLike) -> dict[str, str]:
    """GDAL's options to open ``name`` with: a local file with the files GDAL and QGIS read beside it
    (:data:`LOCAL_READDIR`), a remote one without.

    Example:
        >>> sidecar_options("/vsicurl/https://example.com/a.tif")
        {'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR'}
    """
    return {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR" if is_remote(name) else LOCAL_READDIR}


def is_remote(path: str | os.PathLike) -> bool:
    """True for names GDAL opens that are not local files: virtual paths such as ``/vsicurl/...``, URLs, and
    connection strings of a driver such as ``NETCDF:scene.nc:B04`` or ``GTIFF_DIR:2:scene.tif`` (a subdataset).

    Example:
        >>> is_remote("/vsicurl/https://example.com/a.tif"), is_remote("a.tif"), is_remote("NETCDF:s.nc:B04")
        (True, False, True)
        >>> is_remote("C:/data/a.tif")  # a Windows drive, not a driver
        False
    """
    text = str(path)
    return text.startswith("/vsi") or "://" in text or is_connection(text)


_CONNECTION = re.compile(r"^[A-Z][A-Z0-9_]+:")
"""A GDAL driver's connection string (``NETCDF:``, ``HDF5:``, ``GTIFF_DIR:``, ``SENTINEL2_L1C:``): two or more
capitals, digits or underscores before the colon, so a Windows drive letter (``C:``) is a path."""


GLOB_CHARS = frozenset("*?[")
"""The characters that make a name a glob pattern (``tiles/*.tif``, ``scene_?.tif``, ``[0-9]*.tif``)."""


def is_pattern(path: str | os.PathLike) -> bool:
    """True for a glob pattern: a name with ``*``, ``?`` or ``[`` that is no virtual path or URL and no existing
    file's (``scene[1].tif`` that exists is a name).

    Example:
        >>> is_pattern("tiles/*.tif"), is_pattern("/vsicurl/https://example.com/a.tif?sig=1"), is_pattern("a.tif")
        (True, False, False)
    """
    text = str(path)
    if not GLOB_CHARS & set(text) or text.startswith("/vsi") or "://" in text:
        return False
    try:
        return not os.path.lexists(text)
    except (OSError, ValueError):  # a NUL byte, a name too long: no file of that name
        return True


def is_connection(path: str | os.PathLike) -> bool:
    """True for a GDAL driver's connection string such as ``NETCDF:"scene.nc":B04`` (not an existing file's name).

    Example:
        >>> is_connection('NETCDF:"scene.nc":B04'), is_connection("GTIFF_DIR:2:a.tif"), is_connection("C:/a.tif")
        (True, True, False)
    """
    text = str(path)
    return bool(_CONNECTION.match(text)) and not os.path.exists(text)


def canonical(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with links resolved (as written when a link loops).

    Example:
        >>> canonical("/tmp/../tmp/a.tif")
        PosixPath('/tmp/a.tif')
    """
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


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
    return os.path.normcase(canonical(pa)) == os.path.normcase(canonical(pb))


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
    if out.is_dir():
        raise OutputError(f"output {out} is a folder: give a file path")
    kind = special_kind(out)
    if kind:
        raise OutputError(f"output {out} is {kind}, not a regular file: geoseg replaces only regular files; give a file path")
    if out.exists() and not overwrite:
        raise OutputError(f"output {out} already exists: use --overwrite to replace it")
    check_writable_folder(out.parent if str(out.parent) else Path("."))
    return out


def special_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a folder (a FIFO, a device...), else None.

    Checked before a file is opened, so a FIFO or a device never hangs a command.

    Example:
        >>> special_kind("/dev/null"), special_kind("/tmp")
        ('a character device', None)
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return "a symbolic link loop" if exc.errno == errno.ELOOP else None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_input_file(
    path: str | os.PathLike[str],
    what: str,
    fix: str,
    error: type[GeosegError] = InputError,
    *,
    folder_ok: bool = False,
    empty_ok: bool = False,
) -> Path:
    """Refuse an input that is missing, not a regular file (FIFO, device, socket, link loop), a folder or empty.

    Checked before the file is opened, so a FIFO or ``/dev/zero`` cannot hang
    or fill memory. ``what`` names the input (``scene``, ``model file``);
    ``fix`` says what to give instead; ``error`` is the error class raised;
    ``folder_ok`` lets folders through (GDAL reads some formats as folders)
    and ``empty_ok`` empty files (checked later by their reader).

    Example:
        >>> check_input_file("/dev/null", "model file", "give a .pt or .onnx file")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: model file /dev/null is a character device, not a regular file: give a .pt or .onnx file
    """
    p = Path(path)
    kind = special_kind(p)
    if kind:
        raise error(f"{what} {p} is {kind}, not a regular file: {fix}")
    if not p.exists():
        raise error(f"{what} {p} does not exist: {fix}")
    if p.is_dir():
        if folder_ok:
            return p
        raise error(f"{what} {p} is a folder: {fix}")
    if not empty_ok and p.stat().st_size == 0:
        raise error(f"{what} {p} is an empty file (0 bytes): copy or export it again")
    return p


def check_writable_folder(folder: Path) -> None:
    """Refuse a folder to write into that does not exist or cannot be written.

    Example:
        >>> check_writable_folder(Path("/tmp"))
    """
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder: outputs cannot be written under it; choose another path")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist: create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable: choose another output path")


SIDECARS = (".aux.xml", ".msk", ".ovr")
"""GDAL's files beside a raster that it reads with it: statistics, nodata and band names, a mask, overviews."""


SQLITE_FILES = ("-wal", "-shm", "-journal")
"""SQLite's files beside a GeoPackage while a program (QGIS) has it open: part of it, never a user's own data."""


def sidecar_base(name: str) -> str:
    """The file a GDAL sidecar or SQLite's transient file named ``name`` belongs to, else ``name``.

    QGIS writes ``classes.tif.aux.xml``, and holds ``polygons.gpkg-wal`` and
    ``-shm`` beside a GeoPackage it has open.

    Example:
        >>> sidecar_base("classes.tif.aux.xml"), sidecar_base("polygons.gpkg-wal"), sidecar_base("classes.tif")
        ('classes.tif', 'polygons.gpkg', 'classes.tif')
    """
    return next((name[: -len(suffix)] for suffix in (*SIDECARS, *SQLITE_FILES) if name.endswith(suffix)), name)


def drop_sidecars(path: Path) -> None:
    """Remove GDAL's sidecar files of ``path`` (just written or replaced): they described other pixels.

    QGIS writes statistics into ``classes.tif.aux.xml``; kept beside a new
    ``classes.tif``, GDAL and QGIS would read them (and a nodata, band names
    or a ``.msk`` mask) with the new pixels.

    Example:
        >>> _ = Path("/tmp/x.tif.aux.xml").write_text("<PAMDataset/>")
        >>> drop_sidecars(Path("/tmp/x.tif")); Path("/tmp/x.tif.aux.xml").exists()
        False
    """
    for suffix in SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
