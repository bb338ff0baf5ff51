"""From→to transitions between two class maps: matching their class tables, and one value per pair that occurs.

Pure values and rules for ``geoseg change``: :func:`match_tables` maps the
AFTER map's class ids onto the BEFORE map's table by class name, and
:class:`Transitions` numbers the from→to pairs counted in both maps (the
values of ``transitions.tif``), names and colours them, and says which are
unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geoseg.core.classes import NODATA, ClassInfo, default_colors
from geoseg.core.errors import InputError

__all__ = ["PAIRS", "TRANSITIONS_TAG", "UNCHANGED_COLOR", "Transitions", "complete_table", "match_tables", "pair_index"]

PAIRS = (NODATA + 1) * (NODATA + 1)
"""Length of a from→to pair histogram: every (before id, after id) of uint8 class maps."""
TRANSITIONS_TAG = "GEOSEG_TRANSITIONS"
"""GeoTIFF tag of ``transitions.tif``: JSON rows of value, from/to class id and name."""
UNCHANGED_COLOR = "#d9d9d9"
"""Light grey for pixels whose class did not change."""
ARROW = " → "


def pair_index(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Index of each (before, after) pixel pair in a histogram of :data:`PAIRS` bins.

    Example:
        >>> pair_index(np.array([0, 2], np.uint8), np.array([1, 2], np.uint8)).tolist()
        [1, 514]
    """
    return before.astype(np.int32) * (NODATA + 1) + after.astype(np.int32)


def _key(name: str) -> str:
    return " ".join(name.lower().split())


def complete_table(table: Sequence[ClassInfo], present: Sequence[int]) -> list[ClassInfo]:
    """``table`` with a row (named by its id) for each id in ``present`` that it lacks.

    Example:
        >>> [c.name for c in complete_table([ClassInfo(0, "water", "#0000ff")], [0, 3])]
        ['water', '3']
    """
    known = {c.id for c in table}
    colors = default_colors(NODATA)
    extra = [ClassInfo(int(i), str(int(i)), colors[int(i) % len(colors)]) for i in present if int(i) not in known]
    return sorted([*table, *extra], key=lambda c: c.id)


def match_tables(before: Sequence[ClassInfo], after: Sequence[ClassInfo], names: tuple[str, str]) -> np.ndarray:
    """A lookup from the AFTER map's class ids to the BEFORE map's, matching classes by name.

    Tables that agree id by id map each id to itself. Otherwise every AFTER
    class must have a BEFORE class of the same name (case and spacing
    ignored); if one does not, the tables are refused with both lists of
    names. ``names`` are the two files, for the message. Ids outside the
    AFTER table map to themselves; nodata stays nodata.

    Example:
        >>> b = [ClassInfo(0, "water", "#0000ff"), ClassInfo(1, "forest", "#00ff00")]
        >>> a = [ClassInfo(0, "Forest", "#00ff00"), ClassInfo(1, "water", "#0000ff")]
        >>> match_tables(b, a, ("before.tif", "after.tif"))[:2].tolist()
        [1, 0]
    """
    lookup = np.arange(NODATA + 1, dtype=np.uint8)
    by_id = {c.id: _key(c.name) for c in before}
    if all(by_id.get(c.id) == _key(c.name) for c in after):
        return lookup
    by_name = {_key(c.name): c.id for c in before}
    missing = [c.name for c in after if _key(c.name) not in by_name]
    if missing or len(by_name) < len(before):
        raise InputError(
            f"the class tables of {names[0]} ({', '.join(c.name for c in before)}) and {names[1]} "
            f"({', '.join(c.name for c in after)}) do not match by name"
            + (f" ({', '.join(missing)} only in {names[1]})" if missing else " (a name appears twice)")
            + ": give one table for both with --classes, or maps of the same model"
        )
    for c in after:
        lookup[c.id] = by_name[_key(c.name)]
    return lookup


@dataclass(frozen=True)
class Transitions:
    """The from→to pairs that occur, numbered 0..N-1 in (from, to) order: the values of ``transitions.tif``.

    ``pairs`` holds (from id, to id); ``classes`` is the class table both
    maps share (after :func:`match_tables`).
    """

    pairs: tuple[tuple[int, int], ...]
    classes: tuple[ClassInfo, ...]

    @classmethod
    def from_counts(cls, counts: np.ndarray, classes: Sequence[ClassInfo]) -> Transitions:
        """The pairs with pixels in ``counts`` (a histogram of :data:`PAIRS` bins, see :func:`pair_index`).

        At most 255 pairs fit the uint8 ``transitions.tif`` (255 is nodata).

        Example:
            >>> counts = np.zeros(PAIRS, np.int64)
            >>> counts[pair_index(np.array([0, 1, 1]), np.array([0, 0, 1]))] = 5
            >>> t = Transitions.from_counts(counts, [ClassInfo(0, "a", "#ff0000"), ClassInfo(1, "b", "#00ff00")])
            >>> t.pairs, t.unchanged
            (((0, 0), (1, 0), (1, 1)), (0, 2))
        """
        found = np.flatnonzero(counts)
        if len(found) > NODATA:
            raise InputError(
                f"{len(found)} different from→to class pairs occur, more than the {NODATA} a transitions map holds: "
                "merge classes first (fewer classes in --classes or the model)"
            )
        pairs = tuple((int(i) // (NODATA + 1), int(i) % (NODATA + 1)) for i in found)
        return cls(pairs, tuple(classes))

    @property
    def unchanged(self) -> tuple[int, ...]:
        """Values of the pairs whose class stayed the same."""
        return tuple(v for v, (a, b) in enumerate(self.pairs) if a == b)

    def lookup(self) -> np.ndarray:
        """A :data:`PAIRS`-long uint8 array: the value of each pair index (nodata for pairs that do not occur)."""
        table = np.full(PAIRS, NODATA, dtype=np.uint8)
        for value, (a, b) in enumerate(self.pairs):
            table[a * (NODATA + 1) + b] = value
        return table

    def name(self, class_id: int) -> str:
        """The name of a class id (the id itself when the table lacks it)."""
        return next((c.name for c in self.classes if c.id == class_id), str(class_id))

    def as_classes(self) -> list[ClassInfo]:
        """A class table of the transitions: ``from → to`` names; unchanged light grey, changes in the AFTER class colour."""
        colors = {c.id: c.color for c in self.classes}
        return [
            ClassInfo(
                v,
                self.name(a) if a == b else f"{self.name(a)}{ARROW}{self.name(b)}",
                UNCHANGED_COLOR if a == b else colors.get(b, default_colors(b + 1)[b]),
            )
            for v, (a, b) in enumerate(self.pairs)
        ]

    def tag(self) -> str:
        """The :data:`TRANSITIONS_TAG` text: value, from/to class id and name of every pair."""
        rows = [
            {"value": v, "from_id": a, "from_class": self.name(a), "to_id": b, "to_class": self.name(b)}
            for v, (a, b) in enumerate(self.pairs)
        ]
        return json.dumps(rows)
