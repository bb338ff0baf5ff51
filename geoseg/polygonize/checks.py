"""Is a raster a class map? One band of integer class ids, few enough different values to be classes.

:func:`check_class_map` refuses what the header already shows (several
bands: a scene; floats: not ids) before any work starts. :class:`ValueCheck`
looks at the values as the strips are read: a map with more than
:data:`MAX_CLASS_VALUES` different values that its class table does not name
is refused (a scene band, a DEM, reflectance); fewer unnamed values beyond
0..255 (more than a uint8 class map holds) get one warning line; background
ids that are neither classes of the table nor values of the map are named in
a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from geoseg.core.classes import NODATA
from geoseg.core.errors import RasterError

__all__ = ["MAX_CLASS_VALUES", "ValueCheck", "check_class_map"]

log = logging.getLogger("geoseg")

MAX_CLASS_VALUES = NODATA
"""Most different values a class map may hold beyond those its class table names (255: ids 0..254 and nodata 255
of a geoseg map, any ids of any integer type elsewhere, such as 10..100 or CORINE's 111..523). A map with more is
not a class map; values the class table names (``geoseg change``'s transitions) are not counted."""

_PREDICT = "predict it first: geoseg predict {name} -m MODEL -o classes.tif (or geoseg run {name} -o OUTDIR)"


def check_class_map(ds: Any) -> None:
    """Refuse a raster that cannot be a class map by its header: several bands (a scene) or non-integer values.

    Example:
        >>> check_class_map(rasterio.open("scene.tif"))  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        geoseg.core.errors.RasterError: scene.tif has 10 bands: it looks like a scene, not a class map ...
    """
    if ds.count > 1:
        raise RasterError(
            f"{ds.name} has {ds.count} bands: it looks like a scene, not a class map (one band of class ids); "
            + _PREDICT.format(name=ds.name)
        )
    if np.dtype(ds.dtypes[0]).kind not in "iu":
        raise RasterError(f"{ds.name} holds {ds.dtypes[0]} values, not class ids: give an integer class map")


class ValueCheck:
    """Watch a class map's values strip by strip (:meth:`see`), then :meth:`finish` after the last strip.

    ``named`` are the ids of the class table; ``background`` the ids left
    out. :meth:`see` raises :class:`RasterError` as soon as more than
    :data:`MAX_CLASS_VALUES` different unnamed values were seen.

    Example:
        >>> check = ValueCheck("c.tif", named={0, 1}, background=[9])
        >>> check.see(np.array([[0, 1, 2]], np.uint16), np.ones((1, 3), bool))
        >>> check.missing_background()
        [9]
    """

    def __init__(self, name: str, named: Iterable[int] = (), background: Sequence[int] = ()) -> None:
        self.name = name
        self.named = {int(i) for i in named}
        self.background = [int(b) for b in background]
        self.unnamed: set[int] = set()
        self.seen_background: set[int] = set()
        self.warned = False

    def see(self, classes: np.ndarray, valid: np.ndarray) -> None:
        """Count the different valid values of one strip; refuse the map once it holds too many to be classes.

        Unnamed values beyond 0..255 (more than a uint8 class map holds) get
        one warning line, the first time they are seen.
        """
        found = set(distinct_values(classes[valid]).tolist())
        self.seen_background |= found & set(self.background)
        unnamed = found - self.named
        self.unnamed |= unnamed
        if len(self.unnamed) > MAX_CLASS_VALUES:
            shown = sorted(self.unnamed)
            raise RasterError(
                f"{self.name} holds more than {MAX_CLASS_VALUES} different values ({shown[0]}..{shown[-1]}) that "
                "its class table does not name: it looks like a scene band or a continuous raster, not a class map; "
                + _PREDICT.format(name=self.name)
            )
        beyond = sorted(v for v in unnamed if not 0 <= v <= NODATA)
        if beyond and not self.warned:
            self.warned = True
            log.warning(
                "%s holds values such as %s that are not ids of a geoseg class map (0..254, nodata 255) and that no "
                'class table names: if they are classes, name them with --classes (e.g. {"111": "urban"}); if it '
                "is a scene band, not a class map, %s",
                self.name,
                ", ".join(str(v) for v in beyond[:3]),
                _PREDICT.format(name=self.name),
            )

    def missing_background(self) -> list[int]:
        """Background ids that are neither classes of the table nor values seen in the map."""
        return [b for b in self.background if b not in self.named and b not in self.seen_background]

    def finish(self) -> None:
        """After the last strip: one warning line naming ids the class table lacks (their polygons are named by the
        id), and one naming background ids the map and its class table do not have."""
        unnamed = sorted(v for v in self.unnamed if 0 <= v < NODATA and v not in self.background)
        if self.named and unnamed:
            log.warning(
                "%s holds class ids %s that its class table (%s) does not name: their polygons are named by the id; "
                "if they are classes, give a table of every id (--classes: the model that made the map, or a JSON of "
                "id: name)",
                self.name,
                _id_range(set(unnamed)),
                _id_range(self.named),
            )
        missing = self.missing_background()
        if missing:
            ids = ", ".join(str(b) for b in missing)
            table = f"its classes are {_id_range(self.named)}" if self.named else "it has no class table"
            log.warning(
                "--background %s: not a class id of %s (%s, and no pixel holds %s); nothing was left out for it: check the id",
                ids,
                self.name,
                table,
                "it" if len(missing) == 1 else "them",
            )


def distinct_values(values: np.ndarray) -> np.ndarray:
    """The sorted different values of an integer array (by counting for 8- and 16-bit types, else by sorting).

    Example:
        >>> distinct_values(np.array([5, 1, 5, 300], np.uint16)).tolist()
        [1, 5, 300]
    """
    if values.dtype.itemsize <= 2:
        low = int(np.iinfo(values.dtype).min)
        counts = np.bincount((values.astype(np.int32) - low).ravel() if low else values.ravel())
        return np.flatnonzero(counts) + low
    return np.unique(values)


def _id_range(ids: set[int]) -> str:
    """Ids as ``0..7`` when consecutive, else listed (at most 8 shown)."""
    ordered = sorted(ids)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{ordered[0]}..{ordered[-1]}"
    shown = ", ".join(str(i) for i in ordered[:8])
    return shown + (", ..." if len(ordered) > 8 else "")
