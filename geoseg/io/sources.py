"""Scene sources: what a user hands geoseg as a scene, resolved to one virtual scene GDAL reads.

:func:`geoseg.io.raster.open_scene` opens every scene through
:func:`virtual_scene` here. A raster file GDAL reads is opened as it is;
these sources become a VRT (XML in GDAL's ``/vsimem/``, never a copy of the
pixels) with band names, common names and per-band nodata, on the finest
grid the bands share (mixed resolutions resampled on read):

| source | bands |
|---|---|
| a folder of single-band rasters | file-name band tokens (``B04``, ``B8A``, ``SR_B4``, ``red``), sorted by band |
| a text file listing band files | one file a line, in that order |
| a STAC Item ``.json`` (local or ``/vsicurl/``) | its single-band assets' ``eo:bands`` |
| a Sentinel-2 ``.SAFE`` folder or zip | ``GRANULE/*/IMG_DATA`` (each band at its finest resolution) |
| a Landsat ``*_MTL.txt`` | its ``FILE_NAME_BAND_*`` files |

``--resolution METRES`` chooses another grid for these sources: predict and
run carry it in their options (``open_scene(source_resolution=...)``, any
Dask worker gets it); :func:`source_options` also sets ``GEOSEG_RESOLUTION``
for a command. A raster file keeps its own grid. ``bands``
(a model's band names) keeps only the bands the model needs, so a STAC
item's other assets are never opened.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import rasterio
from rasterio.io import DatasetReader, MemoryFile

from geoseg.core.bands import band_names, select_bands
from geoseg.core.errors import BandMismatchError, InputError, OptionError
from geoseg.core.sensors import SENSORS, bare_name, common_name, common_names, describe, guess_date, guess_sensor
from geoseg.io.band_files import RASTER_SUFFIXES, folder_bands, is_mtl, is_safe, list_bands, mtl_bands, safe_bands
from geoseg.io.paths import check_input_file, is_remote, sidecar_options, special_kind
from geoseg.io.stac import is_stac_item, item_bands, read_item
from geoseg.io.vrt import BandFile, OpenedBand, VirtualGrid, common_grid, cut_note, open_bands, vrt_xml

__all__ = [
    "CUT_TAG",
    "RESOLUTION_ENV",
    "SOURCE_KINDS",
    "SourceBand",
    "SourceKind",
    "SourceReader",
    "VirtualScene",
    "band_table",
    "check_resolution",
    "default_resolution",
    "open_virtual",
    "source_kind",
    "source_options",
    "virtual_scene",
]

log = logging.getLogger("geoseg")

RESOLUTION_ENV = "GEOSEG_RESOLUTION"
"""Environment variable with the grid (metres) of multi-file sources; ``--resolution`` sets it for one command."""
CUT_TAG = "GEOSEG_CUT"
"""Tag of a virtual scene whose bands cover different areas: the line that says how it was cut (run.json keeps it)."""
_LIST_SUFFIXES = (".txt", ".lst")
_FIX = "give a raster file, a band folder, a band list (.txt), a STAC item (.json), a Sentinel-2 .SAFE or a Landsat *_MTL.txt"


@dataclass(frozen=True)
class SourceBand:
    """One band of a virtual scene as ``geoseg info`` shows it."""

    name: str | None
    common: str | None
    file: str
    resolution_m: float
    dtype: str
    nodata: float | None


@dataclass(frozen=True)
class VirtualScene:
    """A source resolved: its kind, sensor, bands, grid and the VRT that reads them (XML text)."""

    source: str
    kind: str
    sensor: str | None
    bands: tuple[SourceBand, ...]
    grid: VirtualGrid
    vrt: str


class SourceReader(DatasetReader):
    """The rasterio dataset of a virtual scene; ``name`` is the source the user gave, so messages name it."""

    source = ""
    path = ""

    @property
    def name(self) -> str:
        """The source as the user gave it (the VRT itself lives in ``/vsimem/``)."""
        return self.source


def check_resolution(value: object, option: str = "--resolution") -> float | None:
    """``value`` as a positive number of metres (None stays None); anything else is a one-line error.

    Example:
        >>> check_resolution("20"), check_resolution(None)
        (20.0, None)
        >>> check_resolution(0)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: --resolution 0 must be a positive number of metres, e.g. 20
    """
    if value is None:
        return None
    try:
        number = float(str(value))
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise OptionError(f"{option} {value} must be a positive number of metres, e.g. 20")
    return number


def default_resolution() -> float | None:
    """The grid of multi-file sources from ``GEOSEG_RESOLUTION`` (None: the finest grid of their bands)."""
    return check_resolution(os.environ.get(RESOLUTION_ENV) or None, RESOLUTION_ENV)


@contextmanager
def source_options(resolution: float | None = None) -> Iterator[None]:
    """Read multi-file sources on a grid of ``resolution`` metres within this block (all threads; local Dask workers
    started inside inherit it).

    Example:
        >>> with source_options(resolution=20):
        ...     default_resolution()
        20.0
    """
    value = check_resolution(resolution)
    old = os.environ.get(RESOLUTION_ENV)
    if value is None:
        os.environ.pop(RESOLUTION_ENV, None)
    else:
        os.environ[RESOLUTION_ENV] = repr(value)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RESOLUTION_ENV, None)
        else:
            os.environ[RESOLUTION_ENV] = old


def _text_kind(path: Path) -> str | None:
    """``Landsat MTL`` or ``band list`` for a text file by its first lines (a text raster such as an ASCII grid: None)."""
    if path.suffix.lower() not in _LIST_SUFFIXES or not path.is_file():
        return None
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return None
    if head.lstrip().startswith(("GROUP = L1_METADATA_FILE", "GROUP = LANDSAT_METADATA_FILE")):
        return "Landsat MTL"
    lines = [s.strip() for s in head.splitlines() if s.strip() and not s.strip().startswith("#")]
    if lines and (lines[0].lower().endswith(RASTER_SUFFIXES) or lines[0].startswith("/vsi") or "://" in lines[0]):
        return "band list"
    return None


def _local(lister: Callable[[Path], tuple[list[BandFile], str]], what: str) -> Callable[[str], tuple[list[BandFile], str]]:
    """A lister of local paths, after the input checks (a FIFO or a missing file is named, never opened)."""

    def bands(source: str) -> tuple[list[BandFile], str]:
        path = Path(source)
        if not path.is_dir():
            check_input_file(path, what, _FIX)
        return lister(path)

    return bands


def _stac(source: str) -> tuple[list[BandFile], str]:
    if not is_remote(source):
        check_input_file(source, "STAC item", "give a STAC Item .json")
    return item_bands(read_item(source), source)


@dataclass(frozen=True)
class SourceKind:
    """A kind of multi-file source: its name, how it is recognised, and the lister of its band files."""

    name: str
    detect: Callable[[str], bool]
    bands: Callable[[str], tuple[list[BandFile], str]]


def _is_local(test: Callable[[Path], bool]) -> Callable[[str], bool]:
    return lambda source: not is_remote(source) and not special_kind(source) and test(Path(source))


SOURCE_KINDS: tuple[SourceKind, ...] = (
    SourceKind("STAC item", is_stac_item, _stac),
    SourceKind("Sentinel-2 SAFE", _is_local(is_safe), _local(safe_bands, "Sentinel-2 SAFE")),
    SourceKind("Landsat MTL", _is_local(lambda p: is_mtl(p) or _text_kind(p) == "Landsat MTL"), _local(mtl_bands, "Landsat MTL")),
    SourceKind("band folder", _is_local(Path.is_dir), _local(folder_bands, "band folder")),
    SourceKind("band list", _is_local(lambda p: _text_kind(p) == "band list"), _local(list_bands, "band list")),
)
"""The multi-file sources, tried in this order (a SAFE folder before any folder); a new kind is one entry."""


def source_kind(source: str | os.PathLike[str]) -> str | None:
    """What kind of multi-file source ``source`` is (a name in :data:`SOURCE_KINDS`), or None for a raster GDAL
    opens by itself.

    Example:
        >>> source_kind("data_samples/brandenburg_s2_512.tif"), source_kind("data_samples"), source_kind("item.json")
        (None, 'band folder', 'STAC item')
    """
    text = os.fspath(source)
    return next((kind.name for kind in SOURCE_KINDS if kind.detect(text)), None)


def _list(source: str, kind: str) -> tuple[list[BandFile], str]:
    return next(k for k in SOURCE_KINDS if k.name == kind).bands(source)


def _raster_files(source: str) -> tuple[list[BandFile], str]:
    """Every band of one raster file (for ``resolution`` on a raster GDAL opens by itself)."""
    from rasterio.errors import RasterioIOError

    if not is_remote(source):
        check_input_file(source, "scene", "give a raster file", folder_ok=False)
    try:
        with rasterio.Env(**sidecar_options(source)), rasterio.open(source) as ds:
            count, descriptions = ds.count, ds.descriptions
    except RasterioIOError as exc:
        raise InputError(f"{source} is not a raster GDAL can read ({str(exc).splitlines()[0]}): {_FIX}") from None
    return [BandFile(source, b, descriptions[b - 1], label=f"band {b}") for b in range(1, count + 1)], Path(source).name


def _named(files: list[BandFile], text: str) -> tuple[list[BandFile], str | None]:
    """Band files with their common names, from the sensor guessed from every name and ``text``."""
    sensor = guess_sensor([f.name for f in files], text)
    out = [f if f.common or not f.name else replace(f, common=common_name(f.name, sensor)) for f in files]
    return out, sensor


def _needed(files: list[BandFile], bands: Sequence[str], source: str, kind: str) -> list[BandFile]:
    """The band files a model with ``bands`` reads (by name, then common name), in the model's order."""
    if not all(f.name for f in files):
        return files  # unnamed bands are matched later, in order
    try:
        indexes, _ = select_bands([describe(f.name or "", f.common) for f in files], list(bands))
    except BandMismatchError:
        what = "assets" if kind == "STAC item" else "bands"
        found = ", ".join(f"{f.label} ({describe(f.name or '', f.common)})" for f in files)
        raise BandMismatchError(
            f"{kind} {source} has no bands for the model's {', '.join(bands)} ({what}: {found}): give a source with them, "
            "or pick the bands with --bands"
        ) from None
    return [files[i - 1] for i in indexes]


def _check_names(bands: Sequence[OpenedBand], names: Sequence[str | None], source: str, kind: str) -> None:
    seen: dict[str, str] = {}
    for band, name in zip(bands, names):
        if name and name.lower() in seen:
            raise InputError(
                f"{kind} {source} has two bands named {name} ({seen[name.lower()]} and {band.file.label}): give each band once"
            )
        if name:
            seen[name.lower()] = band.file.label


def _stamp(source: str) -> int:
    """The source's modification time (folders and lists change when their files do), 0 for remote sources."""
    try:
        return 0 if is_remote(source) else os.stat(source).st_mtime_ns
    except OSError:
        return 0


def virtual_scene(
    source: str | os.PathLike[str],
    resolution: float | None = None,
    bands: Sequence[str] | None = None,
    *,
    source_resolution: float | None = None,
) -> VirtualScene | None:
    """``source`` resolved to a virtual scene, or None for a raster file GDAL opens by itself (and no ``resolution``).

    ``resolution`` (metres) sets the grid of any scene; ``source_resolution``
    (``--resolution``, carried in the options; default ``GEOSEG_RESOLUTION``)
    that of a multi-file source only; ``bands`` (a model's band names) keeps
    only the bands it needs. Results are cached per process (every stage of a
    command opens the scene again).

    Example:
        >>> scene = virtual_scene("landsat_folder/")  # doctest: +SKIP
        >>> [b.name for b in scene.bands], scene.grid.resolution_m  # doctest: +SKIP
        (['SR_B1', 'SR_B2', 'SR_B3', 'SR_B4', 'SR_B5', 'SR_B6', 'SR_B7'], 30.0)
    """
    text = os.fspath(source)
    kind = source_kind(text)
    if kind is not None and resolution is None:
        resolution = source_resolution if source_resolution is not None else default_resolution()
    if kind is None and resolution is None:
        return None
    return _resolve(text, kind or "raster", check_resolution(resolution), tuple(bands) if bands else None, _stamp(text))


@functools.lru_cache(maxsize=32)
def _resolve(source: str, kind: str, resolution: float | None, bands: tuple[str, ...] | None, stamp: int) -> VirtualScene:
    files, text = _raster_files(source) if kind == "raster" else _list(source, kind)
    files, sensor = _named(files, text)
    if bands:
        files = _needed(files, bands, source, kind)
    opened = open_bands(files, f"{kind} {source}")
    names = [b.file.name or (bare_name(b.description) if b.description else None) for b in opened]
    _check_names(opened, names, source, kind)
    if kind == "raster":
        descriptions = [b.description or "" for b in opened]
    else:
        descriptions = [describe(n, b.file.common) if n else "" for n, b in zip(names, opened)]
    grid = common_grid(opened, f"{kind} {source}", resolution)
    cut, date = cut_note(opened, grid, f"{kind} {source}"), guess_date([text, *(Path(f.path).name for f in files)])
    extra = {"SENSOR": SENSORS[sensor].label if sensor else None, CUT_TAG: cut, "ACQUISITION_DATE": date}
    tags = {"GEOSEG_SOURCE": source, "GEOSEG_SOURCE_KIND": kind, **{k: v for k, v in extra.items() if v}}
    if cut:  # once per process (resolved scenes are cached); predict keeps it in run.json from the tag
        log.warning(cut)
    grid = VirtualGrid(grid.crs, grid.transform, grid.width, grid.height, tags)
    info = tuple(SourceBand(n, b.file.common, b.file.label, b.resolution_m, b.dtype, b.nodata) for n, b in zip(names, opened))
    return VirtualScene(source, kind, sensor, info, grid, vrt_xml(opened, grid, descriptions))


_MEMORY: dict[str, Any] = {}
_LOCK = threading.Lock()


def open_virtual(scene: VirtualScene) -> SourceReader:
    """Open a virtual scene's VRT (kept in GDAL's ``/vsimem/`` for the process) as a :class:`SourceReader`.

    Example:
        >>> with open_virtual(virtual_scene("landsat_folder/")) as ds:  # doctest: +SKIP
        ...     ds.name, ds.descriptions[:2]
        ('landsat_folder/', ('SR_B1 (coastal)', 'SR_B2 (blue)'))
    """
    digest = hashlib.sha256(scene.vrt.encode()).hexdigest()[:20]
    with _LOCK:
        memory = _MEMORY.get(digest)
        if memory is None:
            memory = _MEMORY[digest] = MemoryFile(scene.vrt.encode(), dirname="geoseg_sources", filename=f"{digest}.vrt")
    ds = rasterio.open(memory.name)
    ds.__class__ = SourceReader
    ds.source = scene.source
    ds.path = memory.name  # what GDAL opens: another handle, or a VRT over this one, reads the same grid
    return ds


def band_table(ds: Any, resolution_m: float | None = None) -> list[dict[str, Any]]:
    """Each band of an open scene as ``geoseg info`` shows it: name, common name (a band without a name: by its colour
    interpretation, as predict matches it), native resolution (m), data type, nodata and file (a virtual scene's band
    tags; a raster's own values, ``resolution_m`` its pixel size).

    Example:
        >>> with rasterio.open("data_samples/brandenburg_s2_512.tif") as ds:
        ...     band_table(ds, 10.0)[0]
        {'name': 'B02', 'common_name': 'blue', 'resolution_m': 10.0, 'dtype': 'uint16', 'nodata': None, 'file': None}
    """
    tags = ds.tags()
    text = " ".join([*(v for k, v in tags.items() if k.lower() in ("sensor", "spacecraft_id", "platform")), Path(ds.name).name])
    commons = common_names(band_names(ds.descriptions, ds.colorinterp), text)  # unnamed: by colour interpretation
    rows = []
    for i, description in enumerate(ds.descriptions):
        band = ds.tags(i + 1)
        native = band.get("NATIVE_RESOLUTION_M")
        rows.append(
            {
                "name": bare_name(description) if description else None,
                "common_name": band.get("COMMON_NAME") or commons[i],
                "resolution_m": float(native) if native else resolution_m,
                "dtype": band.get("NATIVE_DTYPE") or ds.dtypes[i],
                "nodata": ds.nodatavals[i],
                "file": band.get("SOURCE_FILE"),
            }
        )
    return rows
