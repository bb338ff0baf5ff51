"""From→to transitions between two class maps: matching their class tables, and one value per pair that occurs.

Pure values and rules for ``geoseg change``: :func:`match_tables` maps the
AFTER map's class values onto the BEFORE map's table by class name,
:class:`Codes` numbers the class values found in both maps compactly (any
integer legend, such as CORINE's three-digit codes), and
:class:`Transitions` numbers the from→to pairs that occur (the values of
``transitions.tif``), names and colours them, and says which are unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from geoseg.core.classes import NODATA, ClassInfo, default_colors
from geoseg.core.errors import InputError

__all__ = [
    "MAX_CLASSES",
    "TRANSITIONS_TAG",
    "UNCHANGED_COLOR",
    "Codes",
    "Remap",
    "Transitions",
    "complete_table",
    "match_tables",
]

MAX_CLASSES = 1024
"""Distinct class values two maps may hold together (more is not a categorical map)."""
TRANSITIONS_TAG = "GEOSEG_TRANSITIONS"
"""GeoTIFF tag of ``transitions.tif``: JSON rows of value, from/to class id and name."""
UNCHANGED_COLOR = "#d9d9d9"
"""Light grey for pixels whose class did not change."""
ARROW = " → "


def _key(name: str) -> str:
    return " ".join(name.lower().split())


def complete_table(table: Sequence[ClassInfo], present: Iterable[int]) -> list[ClassInfo]:
    """``table`` with a row (named by its value) for each class value in ``present`` that it lacks.

    Example:
        >>> [c.name for c in complete_table([ClassInfo(0, "water", "#0000ff")], [0, 311])]
        ['water', '311']
    """
    known = {c.id for c in table}
    colors = default_colors(NODATA)
    extra = [ClassInfo(int(i), str(int(i)), colors[int(i) % len(colors)]) for i in present if int(i) not in known]
    return sorted([*table, *extra], key=lambda c: c.id)


@dataclass(frozen=True)
class Remap:
    """AFTER's class values turned into BEFORE's (classes matched by name); a value outside AFTER's table is refused."""

    keys: np.ndarray
    targets: np.ndarray
    source: str

    def __call__(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``values`` with every valid one replaced by BEFORE's value of the same class.

        Example:
            >>> r = Remap(np.array([0, 1]), np.array([1, 0]), "after.tif")
            >>> r(np.array([0, 1, 1]), np.ones(3, bool)).tolist()
            [1, 0, 0]
        """
        idx = np.clip(np.searchsorted(self.keys, values), 0, len(self.keys) - 1)
        hit = self.keys[idx] == values
        unknown = valid & ~hit
        if unknown.any():
            raise InputError(
                f"{self.source} holds the value {int(values[unknown].flat[0])}, which its class table does not name: "
                "give one table for both maps with --classes"
            )
        return np.where(hit, self.targets[idx], values)

    def record(self) -> dict[str, int]:
        """AFTER value → BEFORE value, for summary.json."""
        return {str(int(k)): int(t) for k, t in zip(self.keys, self.targets)}


def match_tables(before: Sequence[ClassInfo], after: Sequence[ClassInfo], names: tuple[str, str]) -> Remap | None:
    """How the AFTER map's class values become the BEFORE map's: None when they agree value by value.

    Tables that agree id by id (or where one map has no table, so the
    other's names both) need nothing. Otherwise every AFTER class must have
    a BEFORE class of the same name (case and spacing ignored), or the
    tables are refused with both lists of names. ``names`` are the two
    files, for messages.

    Example:
        >>> b = [ClassInfo(0, "water", "#0000ff"), ClassInfo(1, "forest", "#00ff00")]
        >>> a = [ClassInfo(0, "Forest", "#00ff00"), ClassInfo(1, "water", "#0000ff")]
        >>> match_tables(b, a, ("before.tif", "after.tif")).record()
        {'0': 1, '1': 0}
    """
    by_id = {c.id: _key(c.name) for c in before}
    if not before or not after or all(by_id.get(c.id) == _key(c.name) for c in after):
        return None
    listed = (
        f"the class tables of {names[0]} ({', '.join(c.name for c in before)}) and {names[1]} "
        f"({', '.join(c.name for c in after)}) do not match by name"
    )
    fix = ": give one table for both with --classes, or maps of the same model"
    for table, source in ((before, names[0]), (after, names[1])):
        seen: dict[str, str] = {}
        for c in table:
            if _key(c.name) in seen:
                raise InputError(f"{listed} ({source} names {seen[_key(c.name)]!r} and {c.name!r} alike){fix}")
            seen[_key(c.name)] = c.name
    by_name = {_key(c.name): c.id for c in before}
    missing = [c.name for c in after if _key(c.name) not in by_name]
    if missing:
        raise InputError(f"{listed} ({', '.join(missing)} only in {names[1]}){fix}")
    keys = np.array(sorted(c.id for c in after), dtype=np.int64)
    targets = np.array([by_name[_key(c.name)] for c in sorted(after, key=lambda c: c.id)], dtype=np.int64)
    return Remap(keys, targets, names[1])


@dataclass(frozen=True)
class Codes:
    """Class values of both maps numbered 0..K-1 (sorted), so pairs index a K x K matrix."""

    values: np.ndarray

    @classmethod
    def bytes(cls) -> Codes:
        """The codes of uint8 maps: every value 0..255 is its own code (no pass over the maps needed)."""
        return cls(np.arange(NODATA + 1, dtype=np.int64))

    @classmethod
    def found(cls, values: Iterable[int], names: tuple[str, str]) -> Codes:
        """The codes of the class values found in the maps (refused when there are too many to be classes).

        Example:
            >>> Codes.found([311, 112, 311], ("a.tif", "b.tif")).index(np.array([112, 311])).tolist()
            [0, 1]
        """
        unique = np.unique(np.fromiter((int(v) for v in values), dtype=np.int64))
        if len(unique) > MAX_CLASSES:
            raise InputError(
                f"{names[0]} and {names[1]} hold {len(unique)} different values, more than the {MAX_CLASSES} classes a "
                "class map has: give class maps (geoseg's classes.tif or categorical rasters), not continuous values"
            )
        return cls(unique)

    def __len__(self) -> int:
        return len(self.values)

    def index(self, values: np.ndarray) -> np.ndarray:
        """The code of each class value (values must be among :attr:`values`; invalid pixels may hold anything)."""
        if len(self.values) == NODATA + 1 and self.values[-1] == NODATA:
            return values.astype(np.int64)
        return np.clip(np.searchsorted(self.values, values), 0, len(self.values) - 1)


@dataclass(frozen=True)
class Transitions:
    """The from→to pairs that occur, numbered 0..N-1 in (from, to) order: the values of ``transitions.tif``.

    ``pairs`` holds (from value, to value); ``classes`` is the class table
    both maps share (after :func:`match_tables`).
    """

    pairs: tuple[tuple[int, int], ...]
    classes: tuple[ClassInfo, ...]

    @classmethod
    def from_pixels(cls, pixels: np.ndarray, codes: Codes, classes: Sequence[ClassInfo]) -> Transitions:
        """The pairs with pixels in a K x K matrix of ``codes`` (rows: BEFORE, columns: AFTER).

        Example:
            >>> pixels = np.array([[5, 0], [3, 9]])
            >>> t = Transitions.from_pixels(pixels, Codes(np.array([10, 20])), [])
            >>> t.pairs, t.unchanged, t.dtype
            (((10, 10), (20, 10), (20, 20)), (0, 2), 'uint8')
        """
        rows, cols = np.nonzero(pixels)
        if len(rows) >= np.iinfo(np.uint16).max:
            raise InputError(f"{len(rows)} different from→to class pairs occur: compare maps with fewer classes")
        pairs = tuple((int(codes.values[a]), int(codes.values[b])) for a, b in zip(rows, cols))
        return cls(pairs, tuple(classes))

    @property
    def dtype(self) -> str:
        """uint8 for up to 255 pairs (255 is nodata), else uint16 (65535 is nodata)."""
        return "uint8" if len(self.pairs) < NODATA else "uint16"

    @property
    def nodata(self) -> int:
        """The nodata value of ``transitions.tif``."""
        return NODATA if self.dtype == "uint8" else int(np.iinfo(np.uint16).max)

    @property
    def unchanged(self) -> tuple[int, ...]:
        """Values of the pairs whose class stayed the same."""
        return tuple(v for v, (a, b) in enumerate(self.pairs) if a == b)

    def lookup(self, codes: Codes) -> np.ndarray:
        """A K*K array: the transitions value of each pair of codes (``b * K + a``), nodata where none occurs."""
        k = len(codes)
        table = np.full(k * k, self.nodata, dtype=self.dtype)
        for value, (a, b) in enumerate(self.pairs):
            table[int(codes.index(np.array([a]))[0]) * k + int(codes.index(np.array([b]))[0])] = value
        return table

    def name(self, class_id: int) -> str:
        """The name of a class value (the value itself when the table lacks it)."""
        return next((c.name for c in self.classes if c.id == class_id), str(class_id))

    def as_classes(self) -> list[ClassInfo]:
        """A class table of the transitions: ``from → to`` names; unchanged light grey, changes in the AFTER class colour."""
        colors = {c.id: c.color for c in self.classes}
        palette = default_colors(NODATA)
        return [
            ClassInfo(
                v,
                self.name(a) if a == b else f"{self.name(a)}{ARROW}{self.name(b)}",
                UNCHANGED_COLOR if a == b else colors.get(b, palette[b % len(palette)]),
            )
            for v, (a, b) in enumerate(self.pairs)
        ]

    def tag(self) -> str:
        """The :data:`TRANSITIONS_TAG` text: value, from/to class value and name of every pair."""
        rows = [
            {"value": v, "from_id": a, "from_class": self.name(a), "to_id": b, "to_class": self.name(b)}
            for v, (a, b) in enumerate(self.pairs)
        ]
        return json.dumps(rows)
