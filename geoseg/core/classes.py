"""The class table: one row per class (id, name, colour), and the one value that means "no class".

:data:`NODATA` (255) is the class map's nodata value and, in training labels,
the ignore index (unlabeled pixels, never trained or scored): one value,
defined here once. :data:`IGNORE_INDEX` is the same value under the name
training code uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CLASSES_TAG",
    "IGNORE_INDEX",
    "NODATA",
    "ClassInfo",
    "class_colors",
    "class_table_json",
    "class_table_of_tag",
    "colormap",
    "default_colors",
    "semantic_color",
]

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
    "#cc66ff",
)


def default_colors(count: int) -> list[str]:
    """``count`` distinct ``#rrggbb`` colours.

    Example:
        >>> default_colors(2)
        ['#1f77b4', '#ff7f0e']
    """
    return [_PALETTE[i % len(_PALETTE)] for i in range(count)]


# Conventional land-cover colours, matched on words of a class name (the last matching word wins:
# "cloud shadow" is shadow, "sea ice" is ice, "forest road" is road).
_SEMANTIC: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("#1f78b4", ("water", "river", "lake", "sea", "ocean", "reservoir", "pond", "stream", "canal")),
    ("#1b7837", ("forest", "tree", "woodland", "wood", "woods")),
    ("#9ad06b", ("grass", "grassland", "meadow", "pasture", "lawn", "rangeland")),
    ("#e8c95c", ("crop", "cropland", "farm", "farmland", "agriculture", "agricultural", "arable", "field")),
    ("#d7301f", ("built", "builtup", "urban", "residential", "building", "settlement", "industrial", "commercial")),
    ("#7f7f7f", ("road", "street", "highway", "pavement", "paved", "railway")),
    ("#c9ae87", ("bare", "barren", "sand", "soil", "rock", "desert", "beach", "dune")),
    ("#e0f3f8", ("snow", "ice", "glacier")),
    ("#35978f", ("wetland", "marsh", "swamp", "bog", "fen", "mangrove")),
    ("#f0f0f0", ("cloud", "cloudy", "haze")),
    ("#404040", ("shadow",)),
    ("#bbbbbb", ("background", "other", "unlabeled", "unlabelled", "nodata")),
)
_WORDS = {word: color for color, words in _SEMANTIC for word in words}
# Distinct colours for other classes, away from the hues above (no blue, green, yellow, red, grey, brown, teal).
_OTHERS = (
    "#ff7f0e",
    "#9467bd",
    "#e377c2",
    "#6a3d9a",
    "#e7298a",
    "#cc66ff",
    "#ff00ff",
    "#8e0152",
    "#c51b7d",
    "#e6ab02",
    "#f781bf",
    "#54278f",
)


def _name_words(name: str) -> list[str]:
    """Lower-case words of a class name: split at non-letters and camelCase ("BuiltUp" -> built, up)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-z]+", spaced.lower()) if w]


def semantic_color(name: str) -> str | None:
    """The conventional colour of a land-cover class name, or None when no word of it is known.

    Words are matched case-insensitively (a plural ``s`` aside); the last
    known word wins, so "cloud shadow" is dark grey and "sea ice" light cyan.

    Example:
        >>> semantic_color("Water"), semantic_color("built-up"), semantic_color("cloud_shadow")
        ('#1f78b4', '#d7301f', '#404040')
        >>> semantic_color("class_3") is None
        True
    """
    found = None
    words = _name_words(name)
    for i, word in enumerate(words):
        joined = word + words[i + 1] if i + 1 < len(words) else ""
        for candidate in (word, word[:-1] if word.endswith("s") else "", joined):
            if candidate in _WORDS:
                found = _WORDS[candidate]
    return found


def class_colors(names: Sequence[str]) -> list[str]:
    """Default ``#rrggbb`` colours for classes by name: the one place geoseg picks colours for a class table.

    Common land-cover names get conventional colours (:func:`semantic_color`:
    water blue, forest dark green, grass light green, crop yellow, built-up
    red, road grey, bare soil beige, snow light cyan, wetland teal, cloud
    white-grey, shadow dark grey, background/other light grey); other names, and a second class that would
    repeat a colour, take the next colour of a palette that avoids those hues.

    Example:
        >>> class_colors(["water", "Forest", "crops", "road_type_x", "trees"])
        ['#1f78b4', '#1b7837', '#e8c95c', '#7f7f7f', '#ff7f0e']
    """
    colors: list[str] = []
    others = 0
    for name in names:
        color = semantic_color(str(name))
        if color is None or color in colors:
            color = _OTHERS[others % len(_OTHERS)]
            others += 1
        colors.append(color)
    return colors


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


def colormap(classes: Sequence[ClassInfo], nodata: int = NODATA) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table entries for a class table (``nodata``, 255 by default, transparent).

    Example:
        >>> colormap([ClassInfo(0, "water", "#0000ff")])[0]
        (0, 0, 255, 255)
    """
    table = {c.id: (*c.rgb, 255) for c in classes}
    table[nodata] = (0, 0, 0, 0)
    return table


def class_table_json(classes: Sequence[ClassInfo]) -> str:
    """The class table as stored in the ``GEOSEG_CLASSES`` tag."""
    return json.dumps([{"id": c.id, "name": c.name, "color": c.color} for c in classes])


def class_table_of_tag(text: str) -> list[ClassInfo]:
    """The class table that a ``GEOSEG_CLASSES`` tag holds (:func:`class_table_json`'s text); ``ValueError``,
    ``KeyError`` or ``TypeError`` when the text is not one.

    Example:
        >>> class_table_of_tag('[{"id": 0, "name": "water", "color": "#1f78b4"}]')
        [ClassInfo(id=0, name='water', color='#1f78b4')]
    """
    return [ClassInfo(int(c["id"]), str(c["name"]), str(c["color"])) for c in json.loads(text)]
