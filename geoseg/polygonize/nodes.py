"""Nodes of a class map's polygons: the pixel corners where boundaries meet, put into every edge through them.

GDAL traces a region's ring with a vertex only where the ring turns, so a
long straight edge of one polygon may face several corners of its
neighbours (T-junctions): the neighbours share the edge but not its
vertices. That is exact on the pixel grid, but once the coordinates are
reprojected and rounded (GeoJSON: EPSG:4326, 7 decimals) the edge and the
corners on it drift apart by centimetres, leaving slivers and overlaps. A
corner where some boundary turns or ends is a *node*; it is found from the
class raster alone (:func:`corner_nodes`: its 2×2 pixels are not one region
and not two regions split by a straight line), so a strip needs no
neighbouring polygon to know them. :func:`insert_nodes` gives every edge a
vertex at each node on it, after which neighbours share their vertices (a
noded coverage, as GEOS's coverage operations want); :func:`drop_collinear`
takes them out again. Everything works in pixel coordinates, where corners
are integers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from shapely import Polygon

__all__ = ["OUTSIDE", "corner_nodes", "drop_collinear", "insert_nodes", "kinds_of"]

OUTSIDE = -1
"""The kind of a pixel that is no polygon's (nodata, background, past the map's edge) in :func:`kinds_of`."""


def kinds_of(classes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What each pixel belongs to for :func:`corner_nodes`: its class id where valid, else :data:`OUTSIDE`.

    Example:
        >>> kinds_of(np.array([[3, 4]]), np.array([[True, False]])).tolist()
        [[3, -1]]
    """
    return np.where(valid, classes.astype(np.int64), OUTSIDE)


def corner_nodes(kinds: np.ndarray, above: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nodes on the corner rows above each row of ``kinds`` (rows, cols of the corners; row 0 is ``kinds``' top).

    ``above`` is the row of kinds over ``kinds`` (``None``: past the map's
    edge). A corner is a node where the boundaries between different kinds
    meeting there do not just pass straight through: a region turns or ends
    there. Regions of one class touching only diagonally make a node too.

    Example:
        >>> rows, cols = corner_nodes(np.array([[1, 1, 2], [1, 1, 1]]))
        >>> sorted(zip(rows.tolist(), cols.tolist()))
        [(0, 0), (0, 2), (0, 3), (1, 2), (1, 3)]
    """
    top = np.full((1, kinds.shape[1]), OUTSIDE, dtype=np.int64) if above is None else above.reshape(1, -1)
    grid = np.pad(np.vstack([top, kinds]), ((0, 0), (1, 1)), constant_values=OUTSIDE)
    upper_left, upper_right = grid[:-1, :-1], grid[:-1, 1:]
    lower_left, lower_right = grid[1:, :-1], grid[1:, 1:]
    up, down = upper_left != upper_right, lower_left != lower_right
    left, right = upper_left != lower_left, upper_right != lower_right
    straight = (up == down) & (left == right) & (up != left)  # a line passing through, or no boundary at all
    none = ~(up | down | left | right)
    rows, cols = np.nonzero(~(straight | none))
    return rows.astype(np.int64), cols.astype(np.int64)


def insert_nodes(polygons: np.ndarray | list[Polygon], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Polygons (pixel coordinates) with a vertex at every node (``rows``, ``cols``) inside one of their edges.

    The nodes are put in the order the edge runs; vertices already there
    stay, so :func:`drop_collinear` gives the polygons back. Only polygons
    that gain a vertex are made anew.

    Example:
        >>> import shapely
        >>> insert_nodes([shapely.box(0, 0, 3, 2)], np.array([0, 2, 1]), np.array([1, 2, 0]))[0].wkt
        'POLYGON ((3 0, 3 2, 2 2, 0 2, 0 1, 0 0, 1 0, 3 0))'
    """
    polys = np.asarray(polygons, dtype=object)
    if not len(rows) or not len(polys):
        return polys
    coords, index, owner = _rings(polys)
    xy = np.rint(coords).astype(np.int64)
    span = int(max(xy.max(), rows.max(), cols.max())) + 2
    by_row, by_col = np.sort(rows * span + cols), np.sort(cols * span + rows)  # each edge's nodes are a slice
    first, count, along_row, forward = _edge_nodes(xy, index, (by_row, by_col), span)
    changed = np.bincount(owner[index], weights=count, minlength=len(polys)) > 0
    if not changed.any():
        return polys
    mine = changed[owner[index]]
    coords, index, first, count, along_row, forward = (v[mine] for v in (coords, index, first, count, along_row, forward))
    start = np.repeat(np.arange(len(coords)), 1 + count)
    k = np.arange(len(start)) - np.repeat(np.cumsum(1 + count) - (1 + count), 1 + count)  # 0: the vertex itself
    e, j = start[k > 0], k[k > 0] - 1
    slot = first[e] + np.where(forward[e], j, count[e] - 1 - j)
    row_major = along_row[e]
    key = np.where(row_major, by_row[slot], by_col[slot])
    out = coords[start]
    out[k > 0] = np.column_stack([np.where(row_major, key % span, key // span), np.where(row_major, key // span, key % span)])
    return _replace(polys, changed, out, index[start], owner)


def _rings(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ring's coordinates (closing points too), the ring of each coordinate and the polygon of each ring."""
    import shapely

    rings = shapely.get_rings(polys)
    owner = np.repeat(np.arange(len(polys)), shapely.get_num_interior_rings(polys) + 1)
    coords, index = shapely.get_coordinates(rings, return_index=True)
    return coords, index, owner


def _edge_nodes(
    xy: np.ndarray, index: np.ndarray, keys: tuple[np.ndarray, np.ndarray], span: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per vertex, for the edge to the next vertex: first slot of its nodes in ``keys`` (along rows or along
    columns), how many nodes lie strictly inside it, whether it runs along a row, and whether forwards."""
    a, b = xy[:-1], xy[1:]
    along_row = a[:, 1] == b[:, 1]
    line = np.where(along_row, a[:, 1], a[:, 0])
    ends = np.where(along_row[:, None], np.column_stack([a[:, 0], b[:, 0]]), np.column_stack([a[:, 1], b[:, 1]]))
    low, high = line * span + ends.min(axis=1), line * span + ends.max(axis=1)
    first, stop = np.zeros(len(a), np.int64), np.zeros(len(a), np.int64)
    for which, sorted_keys in ((along_row, keys[0]), (~along_row, keys[1])):
        first[which] = np.searchsorted(sorted_keys, low[which], side="right")
        stop[which] = np.searchsorted(sorted_keys, high[which], side="left")
    count = np.where(index[:-1] == index[1:], np.maximum(stop - first, 0), 0)  # none from a ring's closing point
    return np.r_[first, 0], np.r_[count, 0], np.r_[along_row, False], np.r_[ends[:, 1] > ends[:, 0], False]


def _replace(polys: np.ndarray, changed: np.ndarray, coords: np.ndarray, ring: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """``polys`` with the ``changed`` ones made from ``coords`` (``ring``: the ring of each; rings closed here)."""
    import shapely

    rings, ring_number = np.unique(ring, return_inverse=True)
    made = shapely.linearrings(coords, indices=ring_number)
    out = polys.copy()
    out[changed] = shapely.polygons(made, indices=np.unique(owner[rings], return_inverse=True)[1])
    return out


def drop_collinear(
    polygons: np.ndarray | list[Polygon], droppable: Callable[[np.ndarray], np.ndarray] | None = None
) -> np.ndarray:
    """Polygons without the vertices in the middle of straight horizontal or vertical runs (pixel-aligned rings).

    ``droppable`` (vertices' integer ``x, y`` → bool) limits which straight
    vertices go. A ring starts at its first vertex that stays. Only polygons
    that lose a vertex are made anew.

    Example:
        >>> import shapely
        >>> drop_collinear([shapely.Polygon([(0, 0), (1, 0), (2, 0), (2, 1), (0, 1)])])[0].wkt
        'POLYGON ((0 0, 2 0, 2 1, 0 1, 0 0))'
    """
    polys = np.asarray(polygons, dtype=object)
    if not len(polys):
        return polys
    coords, index, owner = _rings(polys)
    open_ring = np.r_[index[1:] == index[:-1], False]  # without each ring's closing point
    coords, index = coords[open_ring], index[open_ring]
    first = np.r_[True, index[1:] != index[:-1]]
    last = np.r_[index[1:] != index[:-1], True]
    pos = np.arange(len(coords))
    starts = np.maximum.accumulate(np.where(first, pos, 0))
    ends = np.minimum.accumulate(np.where(last, pos, len(pos))[::-1])[::-1]
    prev, nxt = coords[np.where(first, ends, pos - 1)], coords[np.where(last, starts, pos + 1)]
    straight = ((prev[:, 0] == coords[:, 0]) & (coords[:, 0] == nxt[:, 0])) | (
        (prev[:, 1] == coords[:, 1]) & (coords[:, 1] == nxt[:, 1])
    )
    if droppable is not None and straight.any():
        straight[straight] = droppable(np.rint(coords[straight]).astype(np.int64))
    changed = np.bincount(owner[index[straight]], minlength=len(polys)) > 0
    if not changed.any():
        return polys
    mine = changed[owner[index]] & ~straight
    return _replace(polys, changed, coords[mine], index[mine], owner)
