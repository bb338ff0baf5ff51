"""Two categorical rasters read together on the first one's grid, strip by strip (``geoseg change``).

:class:`AlignedPair` opens BEFORE and AFTER, finds where they overlap on
BEFORE's grid, and reads both in strips of rows there: AFTER directly when
it lies on the same grid, else through a GDAL warped VRT with nearest
resampling (no copy of either map is made). Memory holds one strip.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from geoseg.core.errors import InputError, RasterError
from geoseg.io.pixels import pixel_size_m
from geoseg.io.raster import gdal_env, open_scene, window_inside
from geoseg.io.resample import warp_onto

__all__ = ["STRIP_PIXELS", "AlignedPair", "Strip", "overlap_window", "same_grid"]

STRIP_PIXELS = 2_000_000
"""Pixels per strip of rows read at a time (2 MB per uint8 map)."""


@dataclass(frozen=True)
class Strip:
    """Rows ``y0..y0+len`` of the overlap: class values of both dates (0 where invalid) and where both are valid."""

    y0: int
    before: np.ndarray
    after: np.ndarray
    valid: np.ndarray


def _categorical(ds: Any, name: str, has_table: bool) -> None:
    if ds.count != 1:
        raise InputError(
            f"{name} has {ds.count} bands, not one band of class ids: give class maps, or scenes with -m MODEL to "
            "predict them first"
        )
    kind = np.dtype(ds.dtypes[0]).kind
    if kind == "f" and not has_table:
        raise InputError(
            f"{name} holds {ds.dtypes[0]} values, not class ids: give a class map (geoseg's classes.tif or an integer "
            "raster), or name its values with --classes"
        )
    if kind not in "iuf":
        raise RasterError(f"{name} holds {ds.dtypes[0]} values, not class ids: give an integer class map")


def _corners_window(bounds: tuple[float, float, float, float], transform: Affine) -> Window:
    """The whole-pixel window of ``transform``'s grid that holds ``bounds`` (any axis directions)."""
    left, bottom, right, top = bounds
    cols, rows = zip(*(~transform * (x, y) for x in (left, right) for y in (bottom, top)))
    col0, row0 = math.floor(min(cols) + 1e-9), math.floor(min(rows) + 1e-9)
    return Window(col0, row0, math.ceil(max(cols) - 1e-9) - col0, math.ceil(max(rows) - 1e-9) - row0)


def overlap_window(before: Any, after: Any, names: tuple[str, str]) -> Window:
    """The window of ``before``'s grid that ``after`` covers (whole pixels); one error naming both when they do not overlap.

    Example:
        >>> overlap_window(before_ds, after_ds, ("2019.tif", "2024.tif"))  # doctest: +SKIP
        Window(col_off=30, row_off=10, width=50, height=50)
    """
    b, a = before, after
    try:
        bounds = transform_bounds(a.crs, b.crs, *a.bounds, densify_pts=21) if a.crs != b.crs else tuple(a.bounds)
        win = _corners_window(bounds, b.transform)
        win = win.intersection(Window(0, 0, b.width, b.height))
    except Exception:  # noqa: BLE001 - rasterio raises WindowError for disjoint windows, ValueError for non-finite bounds
        win = None
    if win is None or win.width < 1 or win.height < 1:
        raise InputError(
            f"{names[0]} and {names[1]} do not overlap: give two maps of the same area "
            f"(bounds {tuple(round(v, 6) for v in b.bounds)} in {b.crs} vs {tuple(round(v, 6) for v in a.bounds)} in {a.crs})"
        )
    return Window(int(win.col_off), int(win.row_off), int(win.width), int(win.height))


def same_grid(before: Any, after: Any) -> bool:
    """True when ``after``'s pixels are ``before``'s, offset by whole pixels (same CRS, pixel size and axis directions).

    Example:
        >>> same_grid(before_ds, before_ds)  # doctest: +SKIP
        True
    """
    b, a = before.transform, after.transform
    if before.crs != after.crs or not np.allclose((b.a, b.b, b.d, b.e), (a.a, a.b, a.d, a.e), rtol=1e-9, atol=1e-12):
        return False
    col, row = ~b * (a.c, a.f)
    return bool(abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6)


def _read_padded(ds: Any, win: Window) -> np.ma.MaskedArray:
    """Band 1 in ``win``, masked where nodata and where ``win`` reaches beyond the raster."""
    out = np.ma.masked_all((int(win.height), int(win.width)), dtype=ds.dtypes[0])
    rows, cols = window_inside(win, ds.width, ds.height)
    if rows.stop > rows.start and cols.stop > cols.start:
        inner = Window(win.col_off + cols.start, win.row_off + rows.start, cols.stop - cols.start, rows.stop - rows.start)
        out[rows, cols] = ds.read(1, window=inner, masked=True)
    return out


class AlignedPair:
    """BEFORE and AFTER class maps, read together on BEFORE's grid where they overlap.

    ``tables`` says per map whether its values are named by a class table
    (float maps are refused without one); ``names`` are the files to name in
    messages (the user's inputs when the maps were predicted from them). Use
    as a context manager.

    Example:
        >>> with AlignedPair("2019/classes.tif", "2024/classes.tif") as pair:  # doctest: +SKIP
        ...     for strip in pair.strips():
        ...         changed = (strip.before != strip.after) & strip.valid
    """

    def __init__(
        self,
        before: str | os.PathLike,
        after: str | os.PathLike,
        tables: tuple[bool, bool] = (True, True),
        names: tuple[str, str] | None = None,
    ) -> None:
        self.names = names or (str(before), str(after))
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
            self.window = overlap_window(self.before, self.after, self.names)
            self.same_grid = same_grid(self.before, self.after)
            if not self.same_grid:
                nodata = {"nodata": self.after.nodata} if self.after.nodata is not None else {"add_alpha": True}
                self._vrt = warp_onto(self.after, self.before, **nodata)
        except BaseException:
            self.close()
            raise

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
        """Class values and validity in ``win``; AFTER on its own grid is read at its offset, outside is nodata."""
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
            values = np.where(valid, values, 0)
            if not np.array_equal(values, np.round(values)):
                raise InputError(f"{self.names[which]} holds fractional values: give a class map of whole class ids")
            return values.astype(np.int64), valid
        return np.where(valid, values, 0), valid

    @property
    def bytes(self) -> bool:
        """True when both maps hold uint8 values (every class value is 0..255)."""
        return self.before.dtypes[0] == "uint8" and self.after.dtypes[0] == "uint8"

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
