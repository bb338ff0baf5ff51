"""Strip-wise polygonizing: memory bounded by a strip of rows, regions cut at strip edges merged again.

A class map is read in horizontal strips. Each strip's regions are labelled
and traced by GDAL's polygonizer; regions that touch a strip's top or bottom
row stay pending, and pieces of one region in neighbouring strips (same class,
touching across the cut) are joined with a union-find. A region is finished
and its pieces are unioned as soon as no piece touches the latest strip's
bottom row, so the result equals polygonizing the whole raster at once.
Noded, each polygon also has a vertex wherever another region's boundary
meets its edges (:mod:`geoseg.polygonize.nodes`), found from the strip's
pixels and the row above it, so no neighbouring polygon is needed.
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
from geoseg.polygonize.nodes import OUTSIDE, corner_nodes, drop_collinear, insert_nodes, kinds_of
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
    """One finished region: polygon (pixel coordinates; noded when traced so), class id, pixel count, confidence
    sum and count."""

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
    top: int = 0
    """The first row of the strip the piece was traced in."""


def _merge(pieces: list[Polygon], cut_nodes: dict[int, np.ndarray | None]) -> Polygon:
    """Union pieces of one region cut at strip edges (rows ``cut_nodes``), exactly (pixel coordinates are integers).

    The pieces form a coverage: GEOS's coverage union joins their shells in
    linear time once both sides of every cut have the same vertices on it,
    and the pieces' own holes are added back; the general overlay
    (``union_all``) is the fallback. Noded pieces (:mod:`geoseg.polygonize.nodes`;
    ``cut_nodes`` maps each cut to its nodes' columns) have them already:
    both have a vertex at each node and where either turns. Others (``None``
    for every cut) get a vertex at each pixel corner along the cuts first
    (:func:`pin_cuts`). The vertices the cut lines leave are collinear and
    removed, unless they are nodes, so the ring is the one GDAL traces over
    the whole raster (noded as the whole raster's polygon is).
    """
    import shapely

    noded = all(columns is not None for columns in cut_nodes.values())

    def droppable(xy: np.ndarray) -> np.ndarray:  # straight vertices on a cut that are not nodes there
        out = np.zeros(len(xy), dtype=bool)
        for row in np.unique(xy[:, 1]).tolist():
            columns = cut_nodes.get(row)
            if columns is not None:
                at = xy[:, 1] == row
                out[at] = ~np.isin(xy[at, 0], columns)
        return out

    keep = droppable if noded else None

    # A piece's holes never reach a cut (a hole is enclosed within its strip), so they stay holes of the
    # union: only the shells are joined, which spares GEOS from placing every hole again.
    shells = shapely.polygons(shapely.get_exterior_ring(np.asarray(pieces, dtype=object)))
    if not noded:
        shells = pin_cuts(list(shells), np.asarray(list(cut_nodes), dtype=np.float64))
    merged = shapely.coverage_union_all(shells)
    if merged.geom_type != "Polygon":
        parts = [g for g in getattr(merged, "geoms", []) if g.area > 0]  # GEOS may leave a zero-area sliver
        if len(parts) != 1:
            return drop_collinear([shapely.union_all(pieces)], keep)[0]
        merged = parts[0]
    holes = [ring for piece in pieces for ring in piece.interiors]
    return drop_collinear([shapely.Polygon(merged.exterior, [*merged.interiors, *holes])], keep)[0]


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


def _confidence_sums(labels: np.ndarray, confidence: np.ndarray | None, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per label: the sum and count of its pixels' known confidences (zeros without a confidence raster)."""
    if confidence is None:
        return np.zeros(count + 1), np.zeros(count + 1, np.int64)
    known = (confidence != NODATA) & (labels > 0)
    csum = np.bincount(labels[known], weights=confidence[known].astype(np.float64), minlength=count + 1)
    return csum, np.bincount(labels[known], minlength=count + 1)


class StripPolygonizer:
    """Feed strips top to bottom with :meth:`add`; read finished regions from :attr:`done`.

    With ``noded`` the regions' polygons are noded
    (:mod:`geoseg.polygonize.nodes`): each edge has a vertex wherever another
    region's boundary meets it, so neighbours share their vertices whichever
    strip or batch they finish in;
    :func:`~geoseg.polygonize.nodes.drop_collinear` gives the polygons GDAL
    traces, which are the regions' polygons without ``noded``.

    Example:
        >>> sp = StripPolygonizer()
        >>> a = np.array([[1, 1, 2], [1, 2, 2], [1, 1, 1]], np.uint8)
        >>> for y in range(3):
        ...     sp.add(y, a[y : y + 1], np.ones((1, 3), bool))
        >>> sp.finish()
        >>> sorted((r.class_id, r.pixels, r.geometry.area) for r in sp.done)
        [(1, 6, 6.0), (2, 3, 3.0)]
    """

    def __init__(self, noded: bool = False) -> None:
        self.noded = noded
        self.parent: dict[int, int] = {}
        self.pending: dict[int, _Pending] = {}
        self.done: list[Region] = []
        self.next_id = 1
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._kinds: np.ndarray | None = None
        """The latest strip's last row of :func:`~geoseg.polygonize.nodes.kinds_of` (noded only)."""
        self._bottom: list[int] = []
        """Pending pieces of the latest strip that reach its last row: their bottom edge's nodes come with the next."""
        self._end = 0
        self.cut_nodes: dict[int, np.ndarray | None] = {}
        """The columns of the nodes on each strip edge (row) that pending regions may still cross (None: not noded)."""

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
        csum, ccount = _confidence_sums(labels, confidence, count)
        nodes = self._strip_nodes(y0, classes, valid)
        if self._prev is not None:
            self.cut_nodes[y0] = None if nodes is None else nodes[1][nodes[0] == y0]
            prev_ids, prev_classes = self._prev
            touching = (prev_ids > 0) & (glabels[0] > 0) & (prev_classes == classes[0])
            if touching.any():
                for a, b in set(zip(prev_ids[touching].tolist(), glabels[0][touching].tolist())):
                    self._union(a, b)
        edge = set(np.unique(labels[0]).tolist()) | set(np.unique(labels[-1]).tolist())
        geoms, ids = polygonize(labels, Affine.translation(0, y0))
        if nodes is not None:
            geoms = self._noded(geoms, *nodes)
        for geom, local in zip(geoms, ids.tolist()):
            args = (int(region_class[local]), int(pixels[local]), float(csum[local]), int(ccount[local]))
            if local in edge:
                self.pending[local + offset] = _Pending([geom], *args, top=y0)
            else:
                self.done.append(Region(geom, *args))
        self._bottom = [g + offset for g in np.unique(labels[-1]).tolist() if g > 0]
        self._prev = (glabels[-1].copy(), classes[-1].copy())
        self._end = y0 + len(classes)
        open_roots = {self._find(g) for g in np.unique(glabels[-1]).tolist() if g > 0}
        self._close(lambda root: root not in open_roots)

    def _strip_nodes(self, y0: int, classes: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows and columns of the nodes on the corner rows from the strip's top edge to above its last row."""
        if not self.noded:
            return None
        kinds = kinds_of(classes, valid)
        rows, cols = corner_nodes(kinds, self._kinds)
        self._kinds = kinds[-1].copy()
        return rows + y0, cols

    def _noded(self, geoms: list[Polygon], rows: np.ndarray, cols: np.ndarray) -> list[Polygon]:
        """The strip's polygons and the latest strip's pieces along its edge, with the nodes found in this strip."""
        pieces = [self.pending[g].pieces[0] for g in self._bottom]
        noded = list(insert_nodes([*pieces, *geoms], rows, cols))
        for g, piece in zip(self._bottom, noded):
            self.pending[g].pieces[0] = piece
        return noded[len(pieces) :]

    def finish(self) -> None:
        """Finish every pending region (call after the last strip)."""
        if self._kinds is not None:  # the nodes on the map's bottom edge
            rows, cols = corner_nodes(np.full((1, len(self._kinds)), OUTSIDE, dtype=np.int64), self._kinds)
            self._noded([], rows + self._end, cols)
        self._close(lambda root: True)
        self._prev, self._kinds, self._bottom = None, None, []

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
            geometry = pieces[0] if len(pieces) == 1 else _merge(pieces, self.cut_nodes)
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
        top = min((p.top for p in self.pending.values()), default=self._end)
        for row in [r for r in self.cut_nodes if r < top]:  # no pending region reaches that cut any more
            del self.cut_nodes[row]
