"""Region maths on class arrays: label, sieve, trace as polygons, simplify as a coverage.

Regions are 4-connected groups of pixels of one class, exactly as GDAL's
polygonizer (``rasterio.features.shapes``) traces them, so the polygons
rasterize back to the class map pixel for pixel. Everything here works on
arrays and pixel coordinates; :mod:`geoseg.polygonize.measure` maps to the
CRS and :mod:`geoseg.polygonize.api` reads and writes files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from geoseg.core.classes import NODATA

if TYPE_CHECKING:
    from shapely import Polygon

__all__ = ["label_regions", "polygonize", "sieve_regions", "simplify_coverage"]


def label_regions(classes: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label 4-connected regions of equal class; returns (labels, class of each label).

    Label 0 is nodata; ``region_class[label]`` is the class of a region.

    Example:
        >>> labels, region_class = label_regions(np.array([[0, 0, 1], [2, 0, 1]]), np.ones((2, 3), bool))
        >>> labels.tolist(), region_class.tolist()
        ([[1, 1, 2], [3, 1, 2]], [255, 0, 1, 2])
    """
    from scipy import ndimage

    labels = np.zeros(classes.shape, dtype=np.int32)
    region_class = [NODATA]
    for value in np.unique(classes[valid]):
        lab, count = ndimage.label((classes == value) & valid)
        inside = lab > 0
        labels[inside] = lab[inside] + (len(region_class) - 1)
        region_class.extend([int(value)] * count)
    return labels, np.asarray(region_class, dtype=np.int64)


def sieve_regions(classes: np.ndarray, valid: np.ndarray, min_pixels: int, max_passes: int = 50) -> np.ndarray:
    """Merge regions smaller than ``min_pixels`` into the neighbour they share the longest border with.

    Ties go to the larger neighbour. Nodata pixels never change, and a small
    region with no valid neighbour stays. Returns a new class array.

    Example:
        >>> a = np.array([[0, 0, 0, 0], [0, 1, 2, 2], [0, 0, 2, 2]])
        >>> sieve_regions(a, np.ones(a.shape, bool), 2).tolist()
        [[0, 0, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]
    """
    out = classes.copy()
    for _ in range(max_passes):
        labels, region_class = label_regions(out, valid)
        sizes = np.bincount(labels.ravel(), minlength=len(region_class))
        small = sizes < min_pixels
        small[0] = False
        if not small.any():
            break
        src, dst = _merge_targets(labels, sizes, small)
        # merge only into a neighbour that is larger (size, then label): no two regions swap classes
        ok = (sizes[dst] > sizes[src]) | ((sizes[dst] == sizes[src]) & (dst > src))
        if not ok.any():
            break
        new_class = region_class.copy()
        new_class[src[ok]] = region_class[dst[ok]]
        inside = labels > 0
        out[inside] = new_class[labels[inside]]
    return out


def _merge_targets(labels: np.ndarray, sizes: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each small region that touches another: (region, the neighbour with the longest shared border).

    Ties in border length go to the larger neighbour, then to the higher label.
    """
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        touching = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([a[touching], b[touching]]))
    edges = np.concatenate(pairs, axis=1)
    edges = np.concatenate([edges, edges[::-1]], axis=1)
    edges = edges[:, small[edges[0]]]
    if not edges.size:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    n = len(sizes)
    keys, counts = np.unique(edges[0].astype(np.int64) * n + edges[1], return_counts=True)
    src, dst = keys // n, keys % n
    order = np.lexsort((dst, sizes[dst], counts, src))
    src, dst = src[order], dst[order]
    last = np.r_[src[1:] != src[:-1], True]
    return src[last], dst[last]


def polygonize(labels: np.ndarray, transform: Affine, batch: int = 2000) -> tuple[list[Polygon], np.ndarray]:
    """Polygons of labelled regions (GDAL's polygonizer, 4-connected); returns (geometries, label of each).

    The rings GDAL traces become shapely polygons in vectorized calls, ``batch`` polygons at a time.

    Example:
        >>> geoms, ids = polygonize(np.array([[1, 1], [0, 2]], dtype=np.int32), Affine.identity())
        >>> [g.area for g in geoms], ids.tolist()
        ([2.0, 1.0], [1, 2])
    """
    from rasterio.features import shapes

    polygons: list[Polygon] = []
    ids: list[int] = []
    rings: list[Any] = []
    for geom, value in shapes(labels, mask=labels > 0, connectivity=4, transform=transform):
        ids.append(int(value))
        rings.append(geom["coordinates"])
        if len(rings) == batch:
            polygons.extend(build_polygons(rings))
            rings = []
    if rings:
        polygons.extend(build_polygons(rings))
    return polygons, np.asarray(ids, dtype=np.int64)


def build_polygons(polygon_rings: list[Any]) -> list[Polygon]:
    """Shapely polygons from GeoJSON-like ring lists (shell first, then holes), in vectorized calls.

    Example:
        >>> [p.wkt for p in build_polygons([[[(0, 0), (1, 0), (1, 1), (0, 0)]]])]
        ['POLYGON ((0 0, 1 0, 1 1, 0 0))']
    """
    import shapely

    sizes = [len(ring) for rings in polygon_rings for ring in rings]
    owner = [i for i, rings in enumerate(polygon_rings) for _ in rings]
    coords = np.fromiter(
        (v for rings in polygon_rings for ring in rings for xy in ring for v in xy), dtype=np.float64, count=2 * sum(sizes)
    ).reshape(-1, 2)
    made = shapely.linearrings(coords, indices=np.repeat(np.arange(len(sizes)), sizes))
    return list(shapely.polygons(made, indices=np.asarray(owner)))


def simplify_coverage(geoms: list[Polygon], tolerance_px: float) -> list[Polygon]:
    """Coverage simplification of noded polygons in pixel coordinates: neighbours keep their shared borders.

    GEOS needs a noded coverage: the polygons must have a vertex wherever a
    neighbour's boundary meets their edges (:mod:`geoseg.polygonize.nodes`;
    :class:`~geoseg.polygonize.strips.StripPolygonizer` traces them so). Only
    the edges between polygons are simplified: the coverage's boundary (the
    map's edge, nodata) stays as traced, so no polygon reaches over a pixel
    that is none's. A polygon that would vanish is kept as it was.

    Example:
        >>> import shapely
        >>> step = shapely.Polygon([(0, 0), (3, 0), (3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)])
        >>> rest = shapely.Polygon([(3, 0), (4, 0), (4, 3), (1, 3), (1, 2), (2, 2), (2, 1), (3, 1)])
        >>> [g.wkt for g in simplify_coverage([step, rest], 2.0)]
        ['POLYGON ((3 0, 1 3, 0 3, 0 0, 3 0))', 'POLYGON ((3 0, 4 0, 4 3, 1 3, 3 0))']
    """
    import shapely

    simplified = shapely.coverage_simplify(np.asarray(geoms, dtype=object), tolerance_px, simplify_boundary=False)
    return [g if not g.is_empty else o for g, o in zip(simplified, geoms)]
