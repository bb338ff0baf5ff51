"""Strip-wise polygonizing: memory bounded by a strip of rows, regions cut at strip edges merged again.

A class map is read in horizontal strips. Each strip's regions are labelled
and traced by GDAL's polygonizer; regions that touch a strip's top or bottom
row stay pending, and pieces of one region in neighbouring strips (same class,
touching across the cut) are joined with a union-find. A region is finished
and its pieces are unioned as soon as no piece touches the latest strip's
bottom row, so the result equals polygonizing the whole raster at once.
:class:`StripReader` reads the strips of a class map (sieved when asked).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine

from geoseg.core.classes import NODATA
from geoseg.polygonize.regions import label_regions, polygonize, sieve_regions

if TYPE_CHECKING:
    from rasterio.io import DatasetReader
    from shapely import Polygon

__all__ = ["SIEVE_HALO", "SIEVE_IN_MEMORY", "STRIP_PIXELS", "Region", "StripPolygonizer", "StripReader", "strip_ranges"]

STRIP_PIXELS = 8192 * 512
"""Pixels per strip when polygonizing (512 rows of an 8192-wide map); regions cut at strip edges are merged
again, so memory is bounded by a strip, the regions crossing its last row and one batch of polygons."""

SIEVE_IN_MEMORY = 16384 * 16384
"""Class maps up to this many pixels are sieved whole; larger ones per strip with a halo (approximate at seams)."""

SIEVE_HALO = 256
"""Rows read above and below a strip when it is sieved on its own."""


def strip_ranges(height: int, width: int, rows: int | None = None) -> list[tuple[int, int]]:
    """Row ranges of equal-height strips of at most ``STRIP_PIXELS`` (or ``rows`` rows).

    Example:
        >>> strip_ranges(100, 10, rows=40)
        [(0, 40), (40, 80), (80, 100)]
    """
    if rows is None:
        count = max(1, math.ceil(height * width / STRIP_PIXELS))
        rows = max(64, math.ceil(height / count))
    return [(y, min(y + rows, height)) for y in range(0, height, rows)]


class StripReader:
    """Read a class map strip by strip: class ids, validity and confidence, sieved when ``min_pixels`` is set.

    Maps up to ``SIEVE_IN_MEMORY`` pixels are sieved whole when the reader is
    made; larger ones strip by strip with ``SIEVE_HALO`` rows around each
    (approximate where a region crosses a seam).

    Example:
        >>> reader = StripReader(ds, conf_ds, min_pixels=5, rows=512)  # doctest: +SKIP
        >>> classes, valid, confidence = reader.read(*reader.strips[0])  # doctest: +SKIP
    """

    def __init__(
        self, ds: DatasetReader, confidence: DatasetReader | None = None, min_pixels: int = 0, rows: int | None = None
    ) -> None:
        self.ds, self.confidence, self.min_pixels = ds, confidence, min_pixels
        self.strips = strip_ranges(ds.height, ds.width, rows)
        self.sieved: np.ndarray | None = None
        if min_pixels and ds.width * ds.height <= SIEVE_IN_MEMORY:
            self.sieved = sieve_regions(ds.read(1), ds.read_masks(1) > 0, min_pixels)

    def read(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Class ids, validity and confidence (``None`` without a confidence raster) of rows ``y0:y1``."""
        from rasterio.windows import Window

        window = Window(0, y0, self.ds.width, y1 - y0)
        valid = self.ds.read_masks(1, window=window) > 0
        if self.sieved is not None:
            data = self.sieved[y0:y1]
        elif self.min_pixels:
            data = self._sieve_with_halo(y0, y1)
        else:
            data = self.ds.read(1, window=window)
        conf = self.confidence.read(1, window=window) if self.confidence is not None else None
        return data, valid, conf

    def _sieve_with_halo(self, y0: int, y1: int) -> np.ndarray:
        from rasterio.windows import Window

        top, bottom = max(0, y0 - SIEVE_HALO), min(self.ds.height, y1 + SIEVE_HALO)
        window = Window(0, top, self.ds.width, bottom - top)
        block = sieve_regions(self.ds.read(1, window=window), self.ds.read_masks(1, window=window) > 0, self.min_pixels)
        return block[y0 - top : y1 - top]


@dataclass
class Region:
    """One finished region: polygon (pixel coordinates), class id, pixel count, confidence sum and count."""

    geometry: Polygon
    class_id: int
    pixels: int
    conf_sum: float = 0.0
    conf_count: int = 0


@dataclass
class _Pending:
    pieces: list[Polygon] = field(default_factory=list)
    class_id: int = 0
    pixels: int = 0
    conf_sum: float = 0.0
    conf_count: int = 0


def _merge(pieces: list[Polygon], cuts: np.ndarray) -> Polygon:
    """Union pieces of one region cut at strip edges (rows ``cuts``), exactly (pixel coordinates are integers).

    The pieces form a coverage: GEOS's coverage union joins their shells in
    linear time once both sides of every cut have a vertex at each pixel
    corner along it (:func:`pin_cuts`), and the pieces' own holes are added
    back; the general overlay (``union_all``) is the fallback. The vertices
    the cut lines leave are collinear and removed, so the ring is the one
    GDAL traces over the whole raster.
    """
    import shapely

    # A piece's holes never reach a cut (a hole is enclosed within its strip), so they stay holes of the
    # union: only the shells are joined, which spares GEOS from placing every hole again.
    shells = shapely.polygons(shapely.get_exterior_ring(np.asarray(pieces, dtype=object)))
    merged = shapely.coverage_union_all(pin_cuts(list(shells), cuts))
    if merged.geom_type != "Polygon":
        parts = [g for g in getattr(merged, "geoms", []) if g.area > 0]  # GEOS may leave a zero-area sliver
        if len(parts) != 1:
            return drop_collinear(shapely.union_all(pieces))
        merged = parts[0]
    holes = [ring for piece in pieces for ring in piece.interiors]
    return drop_collinear(shapely.Polygon(merged.exterior, [*merged.interiors, *holes]))


def pin_cuts(pieces: list[Polygon], cuts: np.ndarray) -> np.ndarray:
    """Polygons with a vertex at every integer x along their horizontal edges on the rows ``cuts``.

    Example:
        >>> import shapely
        >>> pin_cuts([shapely.box(0, 0, 3, 2)], np.array([2]))[0].wkt
        'POLYGON ((3 0, 3 2, 2 2, 1 2, 0 2, 0 0, 3 0))'
    """
    import shapely

    polys = np.asarray(pieces, dtype=object)
    rings = shapely.get_rings(polys)
    ring_owner = np.repeat(np.arange(len(polys)), shapely.get_num_interior_rings(polys) + 1)
    coords, index = shapely.get_coordinates(rings, return_index=True)
    last = np.r_[index[1:] != index[:-1], True]  # closing point of each ring
    a, b = coords[:-1], coords[1:]
    step = np.sign(b[:, 0] - a[:, 0])
    on_cut = (~last[:-1]) & (a[:, 1] == b[:, 1]) & np.isin(a[:, 1], cuts)
    extra = np.where(on_cut, np.abs(b[:, 0] - a[:, 0]).astype(np.int64) - 1, 0)
    extra = np.maximum(extra, 0)
    per_vertex = np.r_[1 + extra, 1]
    start = np.repeat(np.arange(len(coords)), per_vertex)
    k = np.arange(len(start)) - np.repeat(np.cumsum(per_vertex) - per_vertex, per_vertex)
    out = coords[start].copy()
    inner = k > 0
    out[inner, 0] += step[start[inner]] * k[inner]
    made = shapely.linearrings(out, indices=index[start])
    return shapely.polygons(made, indices=ring_owner)


def drop_collinear(polygon: Polygon) -> Polygon:
    """Remove vertices in the middle of straight horizontal or vertical runs (pixel-aligned rings).

    Example:
        >>> import shapely
        >>> drop_collinear(shapely.Polygon([(0, 0), (1, 0), (2, 0), (2, 1), (0, 1)])).wkt
        'POLYGON ((0 0, 2 0, 2 1, 0 1, 0 0))'
    """
    import shapely

    rings = [polygon.exterior, *polygon.interiors]
    coords, ring_index = shapely.get_coordinates(rings, return_index=True)
    keep = np.ones(len(coords), dtype=bool)
    starts = np.r_[0, np.flatnonzero(np.diff(ring_index)) + 1]
    ends = np.r_[starts[1:], len(coords)]
    for start, end in zip(starts.tolist(), ends.tolist()):
        ring = coords[start : end - 1]  # without the closing point
        prev, nxt = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0)
        straight = ((prev[:, 0] == ring[:, 0]) & (ring[:, 0] == nxt[:, 0])) | (
            (prev[:, 1] == ring[:, 1]) & (ring[:, 1] == nxt[:, 1])
        )
        if straight[0]:  # keep the start point a corner: rotate to the first corner
            corner = int(np.flatnonzero(~straight)[0])
            coords[start : end - 1] = np.roll(ring, -corner, axis=0)
            straight = np.roll(straight, -corner)
            coords[end - 1] = coords[start]
        keep[start : end - 1] = ~straight
    kept = coords[keep]
    new_rings = shapely.linearrings(kept, indices=ring_index[keep])
    return shapely.Polygon(new_rings[0], new_rings[1:])


class StripPolygonizer:
    """Feed strips top to bottom with :meth:`add`; read finished regions from :attr:`done`.

    Example:
        >>> sp = StripPolygonizer()
        >>> a = np.array([[1, 1, 2], [1, 2, 2], [1, 1, 1]], np.uint8)
        >>> for y in range(3):
        ...     sp.add(y, a[y : y + 1], np.ones((1, 3), bool))
        >>> sp.finish()
        >>> sorted((r.class_id, r.pixels, r.geometry.area) for r in sp.done)
        [(1, 6, 6.0), (2, 3, 3.0)]
    """

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.pending: dict[int, _Pending] = {}
        self.done: list[Region] = []
        self.next_id = 1
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.cuts: list[int] = []

    def _find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def add(self, y0: int, classes: np.ndarray, valid: np.ndarray, confidence: np.ndarray | None = None) -> None:
        """Add the strip of rows starting at ``y0`` (class ids, validity, optional confidence with NODATA = none)."""
        labels, region_class = label_regions(classes, valid)
        count = len(region_class) - 1
        offset = self.next_id - 1
        self.next_id += count
        glabels = np.where(labels > 0, labels + offset, 0)
        pixels = np.bincount(labels.ravel(), minlength=count + 1)
        csum: np.ndarray
        ccount: np.ndarray
        if confidence is not None:
            known = (confidence != NODATA) & (labels > 0)
            csum = np.bincount(labels[known], weights=confidence[known].astype(np.float64), minlength=count + 1)
            ccount = np.bincount(labels[known], minlength=count + 1)
        else:
            csum, ccount = np.zeros(count + 1), np.zeros(count + 1, np.int64)
        if self._prev is not None:
            self.cuts.append(y0)
            prev_ids, prev_classes = self._prev
            touching = (prev_ids > 0) & (glabels[0] > 0) & (prev_classes == classes[0])
            if touching.any():
                for a, b in set(zip(prev_ids[touching].tolist(), glabels[0][touching].tolist())):
                    self._union(a, b)
        edge = set(np.unique(labels[0]).tolist()) | set(np.unique(labels[-1]).tolist())
        geoms, ids = polygonize(labels, Affine.translation(0, y0))
        for geom, local in zip(geoms, ids.tolist()):
            args = (int(region_class[local]), int(pixels[local]), float(csum[local]), int(ccount[local]))
            if local in edge:
                self.pending[local + offset] = _Pending([geom], *args)
            else:
                self.done.append(Region(geom, *args))
        self._prev = (glabels[-1].copy(), classes[-1].copy())
        open_roots = {self._find(g) for g in np.unique(glabels[-1]).tolist() if g > 0}
        self._close(lambda root: root not in open_roots)

    def finish(self) -> None:
        """Finish every pending region (call after the last strip)."""
        self._close(lambda root: True)
        self._prev = None

    def take(self) -> list[Region]:
        """The regions finished since the last call, handed over (:attr:`done` is emptied)."""
        done, self.done = self.done, []
        return done

    def _close(self, closable: Callable[[int], bool]) -> None:
        groups: dict[int, list[int]] = {}
        for gid in self.pending:
            root = self._find(gid)
            if closable(root):
                groups.setdefault(root, []).append(gid)
        for members in groups.values():
            parts = [self.pending.pop(g) for g in members]
            pieces = [p for part in parts for p in part.pieces]
            geometry = pieces[0] if len(pieces) == 1 else _merge(pieces, np.asarray(self.cuts, dtype=np.float64))
            self.done.append(
                Region(
                    geometry,
                    parts[0].class_id,
                    sum(p.pixels for p in parts),
                    sum(p.conf_sum for p in parts),
                    sum(p.conf_count for p in parts),
                )
            )
            for g in members:
                self.parent.pop(g, None)
