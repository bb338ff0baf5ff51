"""Two categorical rasters read together on the first one's grid, strip by strip (``geoseg change``).

:class:`AlignedPair` opens BEFORE and AFTER, finds where they overlap on
BEFORE's grid, and reads both in strips of rows there: AFTER directly when
it lies on the same grid, else through a GDAL warped VRT with nearest
resampling (no copy of either map is made). Memory holds one strip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from geoseg.core.classes import NODATA
from geoseg.core.errors import InputError, RasterError
from geoseg.io.raster import gdal_env, open_scene, pixel_size_m

__all__ = ["STRIP_PIXELS", "AlignedPair", "Strip"]

STRIP_PIXELS = 4_000_000
"""Pixels per strip of rows read at a time (about 4 MB per map)."""


@dataclass(frozen=True)
class Strip:
    """Rows ``y0..y0+len`` of the overlap: class ids of both dates and where both are valid."""

    y0: int
    before: np.ndarray
    after: np.ndarray
    valid: np.ndarray


def _categorical(ds: Any, name: str, has_table: bool) -> None:
    kind = np.dtype(ds.dtypes[0]).kind
    if kind == "f" and not has_table:
        raise InputError(
            f"{name} holds {ds.dtypes[0]} values, not class ids: give a class map (geoseg's classes.tif or an integer "
            "raster), or name its values with --classes"
        )
    if kind not in "iuf":
        raise RasterError(f"{name} holds {ds.dtypes[0]} values, not class ids: give an integer class map")


def _read_padded(ds: Any, win: Window) -> np.ma.MaskedArray:
    """Band 1 in ``win``, masked where nodata and where ``win`` reaches beyond the raster."""
    out = np.ma.masked_all((int(win.height), int(win.width)), dtype=ds.dtypes[0])
    try:
        inner = win.intersection(Window(0, 0, ds.width, ds.height))
    except Exception:  # noqa: BLE001 - rasterio's WindowError: nothing of win lies on the raster
        return out
    rows = slice(int(inner.row_off - win.row_off), int(inner.row_off - win.row_off + inner.height))
    cols = slice(int(inner.col_off - win.col_off), int(inner.col_off - win.col_off + inner.width))
    out[rows, cols] = ds.read(1, window=inner, masked=True)
    return out


class AlignedPair:
    """BEFORE and AFTER class maps, read together on BEFORE's grid where they overlap.

    ``tables`` says per map whether its values are named by a class table
    (float maps are refused without one). Use as a context manager.

    Example:
        >>> with AlignedPair("2019/classes.tif", "2024/classes.tif") as pair:  # doctest: +SKIP
        ...     for strip in pair.strips():
        ...         changed = (strip.before != strip.after) & strip.valid
    """

    def __init__(self, before: str | os.PathLike, after: str | os.PathLike, tables: tuple[bool, bool] = (True, True)) -> None:
        self.names = (str(before), str(after))
        self._env = gdal_env()
        self._env.__enter__()
        self.before: Any = None
        self.after: Any = None
        self._vrt: Any = None
        try:
            self.before = open_scene(before)
            self.after = open_scene(after)
            _categorical(self.before, self.names[0], tables[0])
            _categorical(self.after, self.names[1], tables[1])
            self.window = self._overlap()
            self.same_grid = self._same_grid()
            if not self.same_grid:
                self._vrt = WarpedVRT(
                    self.after,
                    crs=self.before.crs,
                    transform=self.before.transform,
                    width=self.before.width,
                    height=self.before.height,
                    resampling=Resampling.nearest,
                    nodata=self.after.nodata if self.after.nodata is not None else NODATA,
                )
        except BaseException:
            self.close()
            raise

    def _overlap(self) -> Window:
        """The window of BEFORE's grid that AFTER covers (whole pixels), or an error when they do not overlap."""
        b, a = self.before, self.after
        bounds = transform_bounds(a.crs, b.crs, *a.bounds, densify_pts=21) if a.crs != b.crs else tuple(a.bounds)
        full = Window(0, 0, b.width, b.height)
        try:
            win = from_bounds(*bounds, transform=b.transform).round_offsets(op="floor").round_lengths(op="ceil")
            win = win.intersection(full)
        except Exception:  # noqa: BLE001 - rasterio raises WindowError, or ValueError for non-finite bounds
            win = None
        if win is None or win.width < 1 or win.height < 1:
            raise InputError(
                f"{self.names[0]} and {self.names[1]} do not overlap: give two maps of the same area "
                f"(bounds {tuple(round(v, 6) for v in b.bounds)} in {b.crs} vs {tuple(round(v, 6) for v in a.bounds)} in {a.crs})"
            )
        return Window(int(win.col_off), int(win.row_off), int(win.width), int(win.height))

    def _same_grid(self) -> bool:
        b, a = self.before, self.after
        if b.crs != a.crs or not np.allclose(b.res, a.res, rtol=1e-9, atol=0):
            return False
        # AFTER's pixels line up with BEFORE's (an offset of whole pixels is the same grid)
        col, row = ~b.transform * (a.transform.c, a.transform.f)
        return bool(abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6)

    @property
    def transform(self) -> Affine:
        """The transform of the overlap window (on BEFORE's grid)."""
        return self.before.window_transform(self.window)

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width of the overlap window."""
        return int(self.window.height), int(self.window.width)

    def alignment(self) -> dict[str, Any]:
        """How AFTER was put on BEFORE's grid, for summary.json."""
        b, a = self.before, self.after
        return {
            "grid": "before",
            "crs": b.crs.to_string() if b.crs else None,
            "same_grid": self.same_grid,
            "resampling": None if self.same_grid else "nearest",
            "pixel_size_m": {"before": round(pixel_size_m(b), 4), "after": round(pixel_size_m(a), 4)},
            "after_crs": a.crs.to_string() if a.crs else None,
            "window": {k: int(getattr(self.window, k)) for k in ("col_off", "row_off", "width", "height")},
            "overlap_share_of_before": round(self.shape[0] * self.shape[1] / (b.width * b.height), 6),
        }

    def strips(self, rows: int | None = None) -> Iterator[Strip]:
        """Strips of the overlap window, top to bottom (``rows`` per strip, default about 4 Mpx)."""
        height, width = self.shape
        step = rows or max(1, STRIP_PIXELS // max(width, 1))
        for y0 in range(0, height, step):
            win = Window(self.window.col_off, self.window.row_off + y0, width, min(step, height - y0))
            before, b_valid = self._read(self.before, win, 0)
            after, a_valid = self._read(self._vrt if self._vrt is not None else self.after, win, 1)
            yield Strip(y0, before, after, b_valid & a_valid)

    def _read(self, ds: Any, win: Window, which: int) -> tuple[np.ndarray, np.ndarray]:
        """Class ids (uint8) and validity in ``win``; AFTER on its own grid is read at its offset, outside is nodata."""
        if ds is self.after:  # same grid: BEFORE's window shifted by whole pixels
            col, row = ~ds.transform * (self.before.transform * (win.col_off, win.row_off))
            win = Window(round(col), round(row), win.width, win.height)
            data = _read_padded(ds, win)
        else:
            data = ds.read(1, window=win, masked=True)
        values = np.ma.getdata(data)
        valid = ~np.ma.getmaskarray(data)
        if values.dtype.kind == "f":
            valid &= np.isfinite(values)
            whole = np.where(valid, values, 0)
            if not np.array_equal(whole, np.round(whole)):
                raise InputError(f"{self.names[which]} holds fractional values: give a class map of whole class ids")
        ids = np.where(valid, values, 0)
        if ids.size and (ids.min() < 0 or ids.max() >= NODATA):
            raise InputError(
                f"{self.names[which]} holds values outside 0..{NODATA - 1} ({int(ids.min())}..{int(ids.max())}): "
                "give a class map of class ids 0..254 (set its nodata value for others)"
            )
        ids = ids.astype(np.uint8)
        ids[~valid] = NODATA
        return ids, valid

    def close(self) -> None:
        """Close both maps (and the warped view)."""
        for ds in (self._vrt, self.after, self.before):
            if ds is not None:
                ds.close()
        self._env.__exit__(None, None, None)

    def __enter__(self) -> AlignedPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
