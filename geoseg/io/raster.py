"""Reading scenes: open with clear errors, windowed reads with a validity mask, padded or mirrored past the edge."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from geoseg.core.errors import RasterError
from geoseg.io.paths import check_input_file, is_remote, sidecar_options

__all__ = [
    "GDAL_CACHE_MB",
    "chip_cache_mb",
    "gdal_env",
    "gdal_path",
    "open_scene",
    "read_window",
    "reflect_index",
    "scene_has_mask",
    "scene_path",
    "window_inside",
]

GDAL_CACHE_MB = 256
"""GDAL's block cache is bounded to this many MB while geoseg reads and writes."""


def chip_cache_mb(ds: Any, width: int, chip_size: int, bands: int) -> int:
    """GDAL block cache (MB) for reading chips of ``bands`` bands over ``width`` columns of ``ds`` row by row: the
    tiles a row of chips decodes, (chip + one block) rows, half again as a margin, so those it shares with the next
    row are still there (every band of a pixel-interleaved file: its blocks hold them all); between 16 MB and
    :data:`GDAL_CACHE_MB` (memory stays bounded by the width).

    Example:
        >>> class Scene:
        ...     block_shapes, dtypes = [(256, 256)], ["uint16"]
        >>> chip_cache_mb(Scene(), 8192, 256, 10)
        120
    """
    block_rows = int(ds.block_shapes[0][0]) if ds.block_shapes else 256
    interleave = getattr(getattr(ds, "interleave", None), "name", "")
    cached = ds.count if interleave.lower() == "pixel" else bands  # a pixel-interleaved block holds every band
    need = (chip_size + block_rows) * width * cached * np.dtype(ds.dtypes[0]).itemsize * 3 // 2
    return int(min(GDAL_CACHE_MB, max(16, -(-need // (1 << 20)))))


def gdal_env(cache_mb: int = GDAL_CACHE_MB, **options: object) -> rasterio.Env:
    """A rasterio environment with GDAL's block cache bounded to ``cache_mb`` MB (reading does not grow with the
    scene, and a tile shared by neighbouring chips is decoded once).

    rasterio hands an integer ``GDAL_CACHEMAX`` to GDAL as bytes: ``GDAL_CACHEMAX=256`` would be a 256-byte cache,
    in which every chip decodes its tiles again (reading took 2.5x the CPU time), so the MB are converted here.

    Example:
        >>> from rasterio._env import get_gdal_config
        >>> with gdal_env(cache_mb=64):
        ...     get_gdal_config("GDAL_CACHEMAX") == 64 << 20
        True
    """
    return rasterio.Env(**{"GDAL_CACHEMAX": cache_mb << 20, "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", **options})


def open_scene(
    path: str | os.PathLike,
    require_georef: bool = True,
    *,
    resolution: float | None = None,
    bands: Sequence[str] | None = None,
    source_resolution: float | None = None,
) -> rasterio.io.DatasetReader:
    """Open a scene with one-line errors: a raster GDAL reads (GeoTIFF, VRT, JP2, ``/vsicurl/`` COGs...) or a
    multi-file source (a band folder, a band list, a STAC item, a Sentinel-2 SAFE, a Landsat MTL; see
    :mod:`geoseg.io.sources`) as one virtual scene.

    With ``require_georef`` a scene without CRS, without geotransform, or with a
    rotated geotransform is refused. ``resolution`` (metres) reads the scene
    on that grid; ``source_resolution`` (``--resolution``) reads a multi-file
    source on that grid and leaves a raster file on its own (multi-file
    sources default to ``GEOSEG_RESOLUTION``, else their finest grid);
    ``bands`` (a model's band names) keeps only the bands of a multi-file
    source that the model reads.

    Example:
        >>> with open_scene("data_samples/brandenburg_s2_512.tif") as ds:  # doctest: +SKIP
        ...     ds.count
        10
    """
    from geoseg.io.sources import open_virtual, virtual_scene

    name = str(path)
    scene = virtual_scene(name, resolution, bands, source_resolution=source_resolution)
    if scene is not None:
        ds = open_virtual(scene)
    else:
        ds = _open_raster(name)
    try:
        if np.dtype(ds.dtypes[0]).kind == "c":
            raise RasterError(
                f"scene {name} has complex pixels ({ds.dtypes[0]}): geoseg reads real bands; write the amplitude or the "
                "real part first (gdal_translate -ot Float32 keeps the real part)"
            )
        if require_georef:
            check_georeferencing(ds, name)
    except RasterError:
        ds.close()
        raise
    return ds


def _open_raster(name: str) -> rasterio.io.DatasetReader:
    if not is_remote(name):
        check_input_file(name, "scene", "give a raster file", RasterError)
    try:
        with warnings.catch_warnings(), rasterio.Env(**sidecar_options(name)):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # geoseg says what is wrong in one line of its own
            return rasterio.open(name)
    except RasterioIOError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "unrecognised format"
        raise RasterError(f"{name} is not a raster GDAL can read ({detail}): give a GeoTIFF or another GDAL raster") from None


def gdal_path(ds: rasterio.io.DatasetReader, image: str | os.PathLike) -> str:
    """The path GDAL opens ``ds`` by (opened by :func:`open_scene` from ``image``): a multi-file source's in-memory VRT,
    else ``image`` (made absolute when local), so another handle or a VRT over it reads the same grid.

    Example:
        >>> with open_scene("data_samples/brandenburg_s2_512.tif") as ds:  # doctest: +SKIP
        ...     gdal_path(ds, "data_samples/brandenburg_s2_512.tif").endswith("brandenburg_s2_512.tif")
        True
    """
    path = getattr(ds, "path", None)
    if path:
        return str(path)
    return str(image) if is_remote(image) else os.path.abspath(image)


def scene_path(image: str | os.PathLike, source_resolution: float | None = None) -> str:
    """What GDAL opens for the scene ``image`` with ``--resolution`` ``source_resolution``: a multi-file source's
    in-memory VRT on that grid (for stages that open the scene by path), else ``image`` as given.

    Example:
        >>> scene_path("data_samples/brandenburg_s2_512.tif")
        'data_samples/brandenburg_s2_512.tif'
    """
    with open_scene(image, source_resolution=source_resolution) as ds:
        return str(getattr(ds, "path", "") or image)


def check_georeferencing(ds: rasterio.io.DatasetReader, name: str) -> None:
    """Refuse scenes whose pixels cannot be placed on the map."""
    t = ds.transform
    if t.is_identity and ds.gcps[0]:
        raise RasterError(
            f"scene {name} is placed by ground control points only: warp it onto a grid first, "
            f"e.g. gdalwarp -tps {name} warped.tif"
        )
    if ds.crs is None and t.is_identity:
        raise RasterError(
            f"scene {name} is not georeferenced (no CRS, no geotransform): give it both, e.g. "
            f"gdal_translate -a_srs EPSG:32633 -a_ullr ULX ULY LRX LRY {name} placed.tif"
        )
    if ds.crs is None:
        raise RasterError(f"scene {name} has no CRS: assign one, e.g. gdal_edit.py -a_srs EPSG:32633 {name}")
    if t.is_identity:
        raise RasterError(f"scene {name} has no geotransform: georeference it (e.g. gdalwarp with its GCPs) first")
    if t.b != 0 or t.d != 0:
        raise RasterError(f"scene {name} has a rotated or sheared geotransform: warp it north-up with gdalwarp first")


def scene_has_mask(ds: rasterio.io.DatasetReader) -> bool:
    """False when GDAL reports every pixel of every band valid (no nodata, mask band or alpha)."""
    return not all(flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums)


def _nodata_beside_mask(ds: rasterio.io.DatasetReader, indexes: list[int]) -> list[tuple[int, float]] | None:
    """``(position, nodata)`` of the read bands when the scene has a mask band or alpha and nodata values too.

    GDAL's dataset mask then follows the mask alone; a pixel at the nodata
    value of every read band is invalid as well (as with nodata alone).
    """
    flags = ds.mask_flag_enums
    if all(MaskFlags.nodata in f or MaskFlags.all_valid in f for f in flags):
        return None
    pairs = [(i, ds.nodatavals[b - 1]) for i, b in enumerate(indexes) if ds.nodatavals[b - 1] is not None]
    return pairs if pairs and len(pairs) == len(indexes) else None


def _band_nodata_valid(ds: rasterio.io.DatasetReader, indexes: list[int], raw: np.ndarray) -> np.ndarray | None:
    """Where the read bands are valid when their masks come from nodata values (or there are none): a pixel at the
    nodata value of every read band is invalid, whatever the bands not read hold (GDAL's dataset mask would count
    those too). None when a read band has a mask band or alpha: the dataset mask decides.

    Example:
        >>> with open_scene("data_samples/brandenburg_s2_512.tif") as ds:
        ...     _band_nodata_valid(ds, [1, 2], ds.read([1, 2], window=Window(0, 0, 4, 4))).all()
        np.True_
    """
    flags = [ds.mask_flag_enums[band - 1] for band in indexes]
    if any(MaskFlags.nodata not in f and MaskFlags.all_valid not in f for f in flags):
        return None  # a mask band or alpha (checked first: an alpha band itself says all valid): the dataset mask
    if any(MaskFlags.all_valid in f for f in flags):
        return np.ones(raw.shape[1:], dtype=bool)  # a band without nodata is valid everywhere
    valid = np.zeros(raw.shape[1:], dtype=bool)
    for i, band in enumerate(indexes):
        value = ds.nodatavals[band - 1]
        if value is None:
            return None
        if raw.dtype.kind == "f" and np.isnan(value):
            valid |= ~np.isnan(raw[i])
            continue
        if raw.dtype.kind in "iu" and not (value == int(value) and np.iinfo(raw.dtype).min <= value <= np.iinfo(raw.dtype).max):
            return np.ones(raw.shape[1:], dtype=bool)  # a nodata value the band's type cannot hold: no pixel has it
        valid |= raw[i] != np.asarray(value).astype(raw.dtype)
    return valid


PADS = ("zero", "reflect")
"""How :func:`read_window` fills the part of a window outside the scene."""


def reflect_index(start: int, count: int, length: int) -> np.ndarray:
    """Scene indexes of ``count`` positions from ``start`` along an axis of ``length``, mirrored at its ends.

    The scene is reflected about its first and last pixel without repeating
    them (numpy's ``np.pad(mode="reflect")``), as often as a long window needs.

    Example:
        >>> reflect_index(-3, 8, 4).tolist()
        [3, 2, 1, 0, 1, 2, 3, 2]
        >>> reflect_index(0, 3, 1).tolist()
        [0, 0, 0]
    """
    index = np.arange(start, start + count)
    if length == 1:
        return np.zeros(count, dtype=np.int64)
    period = 2 * (length - 1)
    index = np.mod(index, period)
    return np.where(index < length, index, period - index).astype(np.int64)


def window_inside(window: Window, width: int, height: int) -> tuple[slice, slice]:
    """(rows, columns) of ``window``'s array that lie inside a ``width`` x ``height`` scene, as slices.

    Example:
        >>> window_inside(Window(-3, 5, 10, 10), 6, 12)
        (slice(0, 7, None), slice(3, 9, None))
    """
    x0, y0 = int(window.col_off), int(window.row_off)
    w, h = int(window.width), int(window.height)
    rows = slice(min(h, max(0, -y0)), max(0, min(h, height - y0)))
    cols = slice(min(w, max(0, -x0)), max(0, min(w, width - x0)))
    return rows, cols


def read_window(
    ds: rasterio.io.DatasetReader,
    window: Window,
    indexes: list[int],
    out: np.ndarray | None = None,
    masked: bool | None = None,
    pad: str = "zero",
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` of bands ``indexes`` as float32; the window may reach past the scene on any side.

    Returns ``(data, valid)``: data ``(C, h, w)`` and a boolean validity mask
    ``(h, w)``, False for nodata (GDAL's dataset mask) and non-finite values;
    invalid pixels are 0 in ``data``. Outside the scene ``pad="zero"`` gives
    0 and False; ``pad="reflect"`` mirrors the scene about its outer rows and
    columns (:func:`reflect_index`, numpy's ``mode="reflect"``), data and
    validity alike, so a pixel outside is valid where its mirror image is.
    Only the raster's outer edge is mirrored: nodata inside the scene (a
    collar) stays invalid. Reads at most the window's size from the file.

    Example:
        >>> with open_scene("data_samples/brandenburg_s2_512.tif") as ds:  # doctest: +SKIP
        ...     data, valid = read_window(ds, Window(-32, -32, 256, 256), [1, 2, 3], pad="reflect")
        >>> data.shape, bool(valid.all())  # doctest: +SKIP
        ((3, 256, 256), True)
    """
    if pad not in PADS:
        raise ValueError(f"pad {pad!r} must be one of {', '.join(PADS)}")
    h, w = int(window.height), int(window.width)
    x0, y0 = int(window.col_off), int(window.row_off)
    data = out if out is not None else np.empty((len(indexes), h, w), dtype=np.float32)
    if masked is None:
        masked = scene_has_mask(ds)
    inside = x0 >= 0 and y0 >= 0 and x0 + w <= ds.width and y0 + h <= ds.height
    if pad == "zero" or inside:
        return data, _read_padded(ds, window, indexes, masked, data)
    rows, cols = reflect_index(y0, h, ds.height) - y0, reflect_index(x0, w, ds.width) - x0
    rows_in, cols_in = window_inside(window, ds.width, ds.height)
    if _within(rows, rows_in) and _within(cols, cols_in):  # the mirror images lie in the window: copy them there
        valid = _read_padded(ds, window, indexes, masked, data)
        for axis, index in ((1, rows), (2, cols)):
            outer = np.flatnonzero(index != np.arange(len(index)))
            if outer.size:
                take = (slice(None),) * axis + (outer,)
                data[take] = np.take(data, index[outer], axis=axis)
                valid[take[1:]] = np.take(valid, index[outer], axis=axis - 1)
        return data, valid
    r0, c0 = int(rows.min()) + y0, int(cols.min()) + x0  # a window mostly outside a small scene: read the images
    source = Window(c0, r0, int(cols.max()) + x0 - c0 + 1, int(rows.max()) + y0 - r0 + 1)
    raw = np.empty((len(indexes), int(source.height), int(source.width)), dtype=np.float32)
    raw_valid = _read_into(ds, source, indexes, masked, raw)
    rows, cols = rows + y0 - r0, cols + x0 - c0
    np.take(np.take(raw, rows, axis=1), cols, axis=2, out=data)
    return data, np.take(np.take(raw_valid, rows, axis=0), cols, axis=1)


def _within(index: np.ndarray, part: slice) -> bool:
    return bool(part.stop > part.start and index.min() >= part.start and index.max() < part.stop)


def _read_padded(ds: rasterio.io.DatasetReader, window: Window, indexes: list[int], masked: bool, data: np.ndarray) -> np.ndarray:
    """Read the part of ``window`` inside the scene into ``data`` (0 elsewhere) and return the validity (False outside)."""
    h, w = int(window.height), int(window.width)
    valid = np.zeros((h, w), dtype=bool)
    rows, cols = window_inside(window, ds.width, ds.height)
    if rows.stop - rows.start < h or cols.stop - cols.start < w:
        data[...] = 0
    if rows.stop > rows.start and cols.stop > cols.start:
        x0, y0 = int(window.col_off) + cols.start, int(window.row_off) + rows.start
        part = Window(x0, y0, cols.stop - cols.start, rows.stop - rows.start)
        valid[rows, cols] = _read_into(ds, part, indexes, masked, data[:, rows, cols])
    return valid


def _read_into(ds: rasterio.io.DatasetReader, window: Window, indexes: list[int], masked: bool, out: np.ndarray) -> np.ndarray:
    """Read a window inside the scene into ``out`` (float32, invalid pixels 0) and return its validity."""
    raw = ds.read(indexes, window=window)
    with np.errstate(over="ignore"):  # float64 values beyond float32's range become inf
        out[...] = raw
    if masked:
        valid = _band_nodata_valid(ds, indexes, raw)
        if valid is None:  # a mask band or alpha: GDAL's dataset mask
            valid = ds.dataset_mask(window=window) > 0
            nodata = _nodata_beside_mask(ds, indexes)
            if nodata is not None:  # GDAL's mask band hides the nodata value: honour both
                valid &= ~np.all([raw[i] == v for i, v in nodata], axis=0)
    else:
        valid = np.ones(raw.shape[1:], dtype=bool)
    if raw.dtype.kind == "f":
        valid &= np.isfinite(raw).all(axis=0)
    if not valid.all():
        out[:, ~valid] = 0
    return valid
