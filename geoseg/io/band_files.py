"""Band files of multi-file sources: a folder of single-band rasters, a band list, a Sentinel-2 SAFE, a Landsat MTL.

Each lister returns the :class:`~geoseg.io.vrt.BandFile`s in band order and
some text that tells the sensor (file names, the MTL's ``SPACECRAFT_ID``).
Band names come from file-name band tokens: ``B1``...``B12``, ``B01``,
``B8A``, ``SR_B4``, ``ST_B10``, ``B6_VCID_1``, or a common name (``red``).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import rasterio
from rasterio.errors import RasterioIOError

from geoseg.core.errors import InputError, RasterError, first_few
from geoseg.core.sensors import COMMON_NAMES, band_number, is_common_name
from geoseg.io.paths import sidecar_options
from geoseg.io.vrt import BandFile

__all__ = ["RASTER_SUFFIXES", "band_sort_key", "band_token", "folder_bands", "list_bands", "mtl_bands", "safe_bands"]

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
"""File endings a band folder's rasters have (other files in the folder are left alone)."""

_TOKEN = re.compile(r"(?<![A-Za-z0-9])((?:SR_|ST_)?B\d{1,2}A?(?:_VCID_[12])?)(?![A-Za-z0-9])", re.IGNORECASE)
_SAFE_RESOLUTION = re.compile(r"_(\d+)m$", re.IGNORECASE)
_SOURCES = "a raster file, a folder of single-band rasters named with band tokens, a band list (.txt), a STAC item (.json)"


def band_token(filename: str) -> str | None:
    """The band name in a file name: its last band token (upper case), else a common name (lower case), else None.

    Example:
        >>> band_token("LC08_L2SP_193023_20200601_20200824_02_T1_SR_B4.TIF"), band_token("T33UUU_20170216T102101_B8A.jp2")
        ('SR_B4', 'B8A')
        >>> band_token("scene_nir08.tif"), band_token("T33UUU_20170216T102101_TCI.jp2")
        ('nir08', None)
    """
    stem = Path(filename).name
    for suffix in RASTER_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = _SAFE_RESOLUTION.sub("", stem)
    tokens = _TOKEN.findall(stem)
    if tokens:
        return str(tokens[-1]).upper()
    words = [w for w in re.split(r"[_.\- ]+", stem) if is_common_name(w)]
    return words[-1].lower() if words else None


def band_sort_key(name: str) -> tuple[int, int, int, str]:
    """Band order: band numbers first (``B8`` < ``B8A`` < ``B9`` < ``B10``), then common names by wavelength.

    Example:
        >>> sorted(["B11", "B8A", "B02", "B08", "SR_B1", "red", "blue"], key=band_sort_key)
        ['SR_B1', 'B02', 'B08', 'B8A', 'B11', 'blue', 'red']
    """
    number = band_number(name)
    if number is not None:
        return 0, number[0], number[1], name.upper()
    lower = name.lower()
    return 1, COMMON_NAMES.index(lower) if lower in COMMON_NAMES else len(COMMON_NAMES), 0, lower


def _check_unique(named: Sequence[tuple[str, str]], where: str, fix: str) -> None:
    """Refuse two files of one band name (``named``: ``(name, file label)`` pairs)."""
    seen: dict[str, str] = {}
    for name, label in named:
        key = name.lower()
        if key in seen:
            raise InputError(f"{where} has two files for band {name} ({seen[key]} and {label}): {fix}")
        seen[key] = label


def folder_bands(folder: Path) -> tuple[list[BandFile], str]:
    """The single-band rasters of ``folder`` named with band tokens, sorted by band; the file names as sensor text.

    Example:
        >>> files, text = folder_bands(Path("landsat_scene"))  # doctest: +SKIP
        >>> [f.name for f in files]  # doctest: +SKIP
        ['SR_B1', 'SR_B2', 'SR_B3', 'SR_B4', 'SR_B5', 'SR_B6', 'SR_B7', 'ST_B10']
    """
    rasters = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(RASTER_SUFFIXES)
    )
    if not rasters:
        raise InputError(f"folder {folder} holds no raster files: give {_SOURCES}, a Sentinel-2 .SAFE or a Landsat *_MTL.txt")
    named = [(band_token(p.name), p) for p in rasters]
    bands = sorted(((t, p) for t, p in named if t), key=lambda item: band_sort_key(item[0]))
    if not bands:
        shown = first_few([p.name for p in rasters])
        raise InputError(
            f"folder {folder} holds {len(rasters)} raster file(s) ({shown}) but none is named with a band token such as "
            "B04, B8A, SR_B4 or red: rename them, or list them in order in a .txt file and give that"
        )
    _check_unique([(t, p.name) for t, p in bands], f"folder {folder}", "move one away, or list the files to use in a .txt file")
    files = [BandFile(str(p.resolve()), 1, t, label=p.name, single=True) for t, p in bands]
    return files, " ".join(p.name for _, p in bands)


def _listed_path(line: str, base: Path) -> str:
    if line.startswith("/vsi") or "://" in line:
        return line if line.startswith("/vsi") else f"/vsicurl/{line}"
    path = Path(line).expanduser()
    return str((path if path.is_absolute() else base / path).resolve())


def list_bands(listing: Path) -> tuple[list[BandFile], str]:
    """The band files a text file lists, one a line, in its order (relative to the list's folder; ``#`` comments).

    Example:
        >>> files, _ = list_bands(Path("bands.txt"))  # doctest: +SKIP
    """
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"band list {listing} cannot be read ({exc}): give a text file with one band file a line") from None
    entries = [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
    if not entries:
        raise InputError(f"band list {listing} names no file: write one band file a line, in the model's band order")
    files = []
    for line in entries:
        path = _listed_path(line, listing.parent)
        if not path.startswith("/vsi") and Path(path).is_dir():
            raise InputError(f"band list {listing} names {line}, a folder: {_scene_list_fix(listing)}")
        if not path.startswith("/vsi") and not Path(path).is_file():
            raise InputError(
                f"band list {listing} names {line}, which does not exist: fix the line (paths are relative to the list)"
            )
        files.append(BandFile(path, 1, band_token(line), label=line, single=True))
    _check_single(listing, files)
    _check_unique([(f.name, f.label) for f in files if f.name], f"band list {listing}", "list each band once")
    return files, " ".join(Path(line).name for line in entries)


def _scene_list_fix(listing: Path) -> str:
    return (
        f"if {listing.name} lists scenes, run them with geoseg run @{listing} -o OUTDIR (the @ reads it as a list of "
        "scenes); a band list names one single-band file a line (gdal_translate -b N writes one band)"
    )


def _check_single(listing: Path, files: Sequence[BandFile]) -> None:
    """Refuse a band list naming a raster of several bands: most likely a list of scenes given without its ``@``."""
    for item in files:
        if item.path.startswith("/vsi"):  # remote: its header is read with the others, by open_bands
            continue
        try:
            with rasterio.Env(**sidecar_options(item.path)), rasterio.open(item.path) as ds:
                count = ds.count
        except RasterioIOError:
            continue  # open_bands names the file that cannot be read
        if count > 1:
            raise InputError(f"band list {listing} names {item.label}, which holds {count} bands: {_scene_list_fix(listing)}")


def is_safe(path: Path) -> bool:
    """True for a Sentinel-2 SAFE product: a folder (``.SAFE`` or holding ``GRANULE``) or a zip of one.

    Example:
        >>> is_safe(Path("S2A_MSIL1C_20170216T102101_N0204_R065_T33UUU_20170216T102204.SAFE")), is_safe(Path("a.tif"))
        (True, False)
    """
    name = path.name.lower()
    if name.endswith(".safe") or name.endswith(".safe.zip"):
        return True
    if path.is_dir():
        return (path / "GRANULE").is_dir()
    return name.endswith(".zip") and bool(re.match(r"s2[abc]?_msil[12][ac]_", name))


def safe_bands(path: Path) -> tuple[list[BandFile], str]:
    """The band images of a SAFE folder or zip (``GRANULE/*/IMG_DATA``; Level-2A: each band at its finest resolution).

    Band values 0 are nodata (the product's documented special value).

    Example:
        >>> files, _ = safe_bands(Path("S2A_MSIL2A_20170216T102101.SAFE"))  # doctest: +SKIP
    """
    if path.is_dir():
        root = str(path.resolve())
        names = [p.relative_to(path).as_posix() for p in path.rglob("*.jp2")]
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise RasterError(f"SAFE zip {path} cannot be read ({exc}): download it again") from None
        root = f"/vsizip/{path.resolve()}"
    images = [n for n in names if "/IMG_DATA/" in f"/{n}" and n.lower().endswith(".jp2")]
    granules = {f"/{n}".split("/IMG_DATA/")[0] for n in images}
    if not images:
        raise InputError(f"SAFE {path} holds no band images under GRANULE/*/IMG_DATA: give a complete Sentinel-2 product")
    if len(granules) > 1:
        raise InputError(f"SAFE {path} holds {len(granules)} granules: give one granule's IMG_DATA folder as a band folder")
    best: dict[str, tuple[int, str]] = {}
    for name in images:
        token = band_token(Path(name).name)
        match = _SAFE_RESOLUTION.search(Path(name).stem)
        resolution = int(match.group(1)) if match else 0
        if token and (token not in best or resolution < best[token][0]):
            best[token] = (resolution, name)
    order = sorted(best, key=band_sort_key)
    files = [BandFile(f"{root}/{best[t][1]}", 1, t, nodata=0, label=Path(best[t][1]).name, single=True) for t in order]
    return files, f"SENTINEL-2 {path.name}"


def is_mtl(path: Path) -> bool:
    """True for a Landsat metadata file (``*_MTL.txt``).

    Example:
        >>> is_mtl(Path("LC08_L2SP_193023_20200601_20200824_02_T1_MTL.txt")), is_mtl(Path("bands.txt"))
        (True, False)
    """
    return path.name.lower().endswith("_mtl.txt")


def mtl_bands(path: Path) -> tuple[list[BandFile], str]:
    """The band files a Landsat ``*_MTL.txt`` names (``FILE_NAME_BAND_*``, beside it), and its ``SPACECRAFT_ID``.

    Example:
        >>> files, text = mtl_bands(Path("LC08_L2SP_193023_20200601_20200824_02_T1_MTL.txt"))  # doctest: +SKIP
        >>> text  # doctest: +SKIP
        'LANDSAT_8'
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"Landsat metadata {path} cannot be read ({exc}): check the file") from None
    entries = re.findall(r'^\s*FILE_NAME_BAND_(\w+)\s*=\s*"?([^"\s]+)"?', text, re.MULTILINE)
    if not entries:
        raise InputError(f"Landsat metadata {path} names no band file (FILE_NAME_BAND_n): give the product's *_MTL.txt")
    spacecraft = re.search(r'^\s*SPACECRAFT_ID\s*=\s*"?([\w-]+)"?', text, re.MULTILINE)
    files = []
    for key, filename in entries:
        band = path.parent / filename
        if not band.is_file():
            raise InputError(f"Landsat metadata {path} names {filename}, which is not beside it: download the band files too")
        name = band_token(filename) or f"B{key}"
        files.append(BandFile(str(band.resolve()), 1, name, label=filename, single=True))
    files.sort(key=lambda f: band_sort_key(f.name or ""))
    _check_unique([(f.name or "", f.label) for f in files], f"Landsat metadata {path}", "fix the MTL file")
    return files, " ".join([spacecraft.group(1) if spacecraft else "", *(f.label for f in files)])
