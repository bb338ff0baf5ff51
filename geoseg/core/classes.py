"""The class table: one row per class (id, name, colour), and the one value that means "no class".

:data:`NODATA` (255) is the class map's nodata value and, in training labels,
the ignore index (unlabeled pixels, never trained or scored): one value,
defined here once. :data:`IGNORE_INDEX` is the same value under the name
training code uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CLASSES_TAG", "IGNORE_INDEX", "NODATA", "ClassInfo", "class_table_json", "colormap", "default_colors"]

NODATA = 255
"""Class-map nodata value (scene nodata, outside the area of interest) and label ignore index."""
IGNORE_INDEX = NODATA
"""Label value of unlabeled pixels: never trained as a class, never scored (the same value as :data:`NODATA`)."""
CLASSES_TAG = "GEOSEG_CLASSES"
"""GeoTIFF dataset tag holding a class map's class table as JSON."""

# A qualitative palette that stays readable on maps (Tableau 10, then Set3-like tones).
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#8dd3c7",
    "#ffffb3",
    "#bebada",
    "#fb8072",
    "#80b1d3",
    "#fdb462",
)


def default_colors(count: int) -> list[str]:
    """``count`` distinct ``#rrggbb`` colours.

    Example:
        >>> default_colors(2)
        ['#1f77b4', '#ff7f0e']
    """
    return [_PALETTE[i % len(_PALETTE)] for i in range(count)]


@dataclass(frozen=True)
class ClassInfo:
    """One row of the class table: id 0..K-1, name and ``#rrggbb`` colour."""

    id: int
    name: str
    color: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an (r, g, b) tuple of 0..255."""
        return tuple(int(self.color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def colormap(classes: Sequence[ClassInfo]) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table entries for a class table (nodata 255 transparent).

    Example:
        >>> colormap([ClassInfo(0, "water", "#0000ff")])[0]
        (0, 0, 255, 255)
    """
    table = {c.id: (*c.rgb, 255) for c in classes}
    table[NODATA] = (0, 0, 0, 0)
    return table


def class_table_json(classes: Sequence[ClassInfo]) -> str:
    """The class table as stored in the ``GEOSEG_CLASSES`` tag."""
    return json.dumps([{"id": c.id, "name": c.name, "color": c.color} for c in classes])
