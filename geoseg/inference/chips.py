"""Which chips of the grid a prediction runs: made lazily, row by row, so any scene size starts at once.

A 10^6 x 10^6 pixel scene has tens of millions of chips; :class:`ChipSelection`
never holds them all. It counts them arithmetically (or, with an area of
interest, row by row over the rows and columns the area's bounds reach) and
yields them block by block in row-major order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from geoseg.core.errors import OutsideAreaError
from geoseg.core.grid import Chip, Grid

__all__ = ["ChipSelection", "read_aoi"]


def read_aoi(aoi: str | os.PathLike[str], ds: Any, warnings: list[str]) -> tuple[list[Any], Any]:
    """The polygons of ``aoi`` in the scene's CRS (invalid ones repaired, said in ``warnings``) and their union.

    Example:
        >>> polygons, union = read_aoi("fields.gpkg", ds, [])  # doctest: +SKIP
    """
    import shapely

    from geoseg.io.vector import read_polygons, repair_polygons

    check = "check that the area of interest is the one you meant"
    polygons, invalid, message = repair_polygons(read_polygons(aoi, ds.crs, "--aoi"), f"--aoi {aoi}", check)
    if message:  # logged by repair_polygons; kept for run.json
        polygons[invalid] = [shapely.union_all(shapely.get_parts(g)) for g in polygons[invalid]]
        warnings.append(message)
    polygons = across_antimeridian(polygons, ds)
    union = shapely.union_all(polygons)
    if not union.intersects(shapely.box(*ds.bounds)):
        raise OutsideAreaError(f"--aoi {aoi} does not overlap the scene {ds.name}: check the file and its CRS")
    shapely.prepare(union)
    return list(polygons), union


def across_antimeridian(polygons: Any, ds: Any) -> Any:
    """``polygons`` (in ``ds``'s CRS) with their parts beyond the antimeridian moved to the scene's side, for a
    geographic scene reaching past ±180° (an area split at 180°, as RFC 7946 GeoJSON is, lies on both sides).

    Example:
        >>> import numpy as np, shapely
        >>> from types import SimpleNamespace
        >>> from rasterio.crs import CRS
        >>> scene = SimpleNamespace(crs=CRS.from_epsg(4326), bounds=(179.9, -16.1, 180.1, -16.0))
        >>> east = np.array([shapely.box(-180, -16.1, -179.95, -16)])  # the part east of 180°, written as -180...
        >>> across_antimeridian(east, scene)[0].bounds[2]
        180.05
    """
    import numpy as np
    import shapely

    if ds.crs is None or not ds.crs.is_geographic:
        return polygons
    west, east = sorted(ds.bounds[0::2])
    for shift, past in ((360.0, east > 180), (-360.0, west < -180)):
        if past:
            moved = shapely.transform(polygons, lambda xy, s=shift: xy + np.array([s, 0.0]))
            polygons = shapely.union(polygons, moved)
    return polygons


class ChipSelection:
    """The chips of ``grid`` reaching scene columns ``[x0, x1)``, optionally only those touching ``aoi`` (a geometry).

    Example:
        >>> from geoseg.core.grid import make_grid
        >>> sel = ChipSelection(make_grid(1000, 800, 256, 0.25), 0, 1000)
        >>> sel.count(), next(sel.chips(0, 1000)).col
        (20, 0)
    """

    def __init__(self, grid: Grid, x0: int, x1: int, aoi: Any = None) -> None:
        self.grid, self.x0, self.x1, self.aoi = grid, x0, x1, aoi
        self.rows = list(range(grid.rows)) if aoi is None else self._aoi_rows()

    def _aoi_span(self, axis: int) -> tuple[float, float]:
        """Pixel coordinates (columns: axis 0, rows: axis 1) the area of interest's bounds reach, 1 px wider."""
        left, bottom, right, top = self.aoi.bounds
        inv = ~self.grid.transform
        values = [(inv * (x, y))[axis] for x in (left, right) for y in (bottom, top)]
        return min(values) - 1, max(values) + 1

    def _aoi_rows(self) -> list[int]:
        """Chip rows whose extent meets the area of interest's bounds (a cheap first cut, refined per chip)."""
        lo, hi = self._aoi_span(1)
        size, height = self.grid.chip_size, self.grid.height
        return [r for r, y in enumerate(self.grid.ys) if y <= hi and min(y + size, height) >= lo]

    def _columns(self, x0: int, x1: int) -> list[int]:
        cols = self.grid.columns_in(x0, x1)
        if self.aoi is None:
            return cols
        lo, hi = self._aoi_span(0)
        size, width = self.grid.chip_size, self.grid.width
        return [c for c in cols if self.grid.xs[c] <= hi and min(self.grid.xs[c] + size, width) >= lo]

    def _row(self, row: int, cols: list[int]) -> list[Chip]:
        chips = [self.grid.chip(row, c) for c in cols]
        if self.aoi is None or not chips:
            return chips
        import shapely

        boxes = shapely.box(*np.array([c.bounds for c in chips]).T)
        keep = shapely.intersects(self.aoi, boxes)
        return [c for c, k in zip(chips, keep) if k]

    def columns(self, bx0: int, bx1: int) -> list[int]:
        """Grid columns of the chips :meth:`chips` may yield for block columns ``[bx0, bx1)`` (the area of interest's
        bounds narrow them)."""
        return self._columns(max(self.x0, bx0), min(self.x1, bx1))

    def chips(self, bx0: int, bx1: int) -> Iterator[Chip]:
        """The selected chips (row-major) that reach block columns ``[bx0, bx1)``, made one row at a time."""
        cols = self.columns(bx0, bx1)
        for row in self.rows:
            yield from self._row(row, cols)

    def work(self, blocks: list[tuple[int, int]]) -> int:
        """How many chips predicting ``blocks`` one after another takes: a chip reaching two blocks is predicted for
        each (the progress's total).

        Example:
            >>> from geoseg.core.grid import make_grid
            >>> sel = ChipSelection(make_grid(1000, 800, 256, 0.25), 0, 1000)
            >>> sel.count(), sel.work([(0, 500), (500, 1000)])
            (20, 24)
        """
        return sum(self._count(a, b) for a, b in blocks)

    def count(self) -> int:
        """How many chips are selected (arithmetic without an area of interest)."""
        return self._count(self.x0, self.x1)

    def _count(self, x0: int, x1: int) -> int:
        cols = self.columns(x0, x1)
        if self.aoi is None:
            return len(self.rows) * len(cols)
        return sum(len(self._row(row, cols)) for row in self.rows)
