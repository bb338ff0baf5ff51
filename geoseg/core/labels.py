"""Labels: map label values (a vector field's values or mask values) to class ids 0..K-1.

A :class:`LabelMap` is the class table of a training run: each class has a
name, a colour and the label values that mean it; ``ignore`` values (and
anything unlabeled or nodata) become :data:`IGNORE_INDEX` and are never
trained as a class. :func:`burn` rasterizes polygons for one chip window.

Overlapping polygons: the smaller polygon is on top (polygons are burned
from largest to smallest area), so a pond drawn inside a forest stays water.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from geoseg.core.classes import IGNORE_INDEX, ClassInfo, class_colors
from geoseg.core.errors import InputError

__all__ = ["LabelMap", "burn"]


def _key(value: Any) -> str:
    """Label values compare as text, so ``1``, ``1.0`` and ``"1"`` name the same value."""
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass
class LabelMap:
    """Class table plus the label values of each class.

    Example:
        >>> lm = LabelMap.from_spec([{"name": "forest", "values": [1]}, {"name": "water", "values": [7]}],
        ...                         ignore=[0])
        >>> lm.lookup([7, 1, 0]).tolist()
        [1, 0, 255]
    """

    classes: list[ClassInfo]
    values: dict[str, int]
    ignore: set[str] = field(default_factory=set)

    @property
    def names(self) -> list[str]:
        """Class names in id order."""
        return [c.name for c in self.classes]

    def values_of(self, class_id: int) -> list[str]:
        """The label values (as text, sorted) that mean class ``class_id``."""
        return sorted(v for v, i in self.values.items() if i == class_id)

    @classmethod
    def from_spec(cls, spec: Sequence[Any], ignore: Iterable[Any] = ()) -> LabelMap:
        """Build from a list of class names or dicts ``{name, color?, values?}``.

        A class without ``values`` is labeled by its name (the usual case for a
        vector field such as OpenStreetMap's ``fclass``).
        """
        colors = class_colors([str(s.get("name", "")) if isinstance(s, Mapping) else str(s) for s in spec])
        classes: list[ClassInfo] = []
        values: dict[str, int] = {}
        for i, item in enumerate(spec):
            item = {"name": item} if not isinstance(item, Mapping) else dict(item)
            name = str(item["name"])
            classes.append(ClassInfo(i, name, str(item.get("color") or colors[i])))
            raw = item.get("values")
            raw = [name] if raw is None else (raw if isinstance(raw, (list, tuple)) else [raw])
            for v in raw:
                if _key(v) in values and values[_key(v)] != i:
                    raise InputError(
                        f"label value {v!r} is given for classes {classes[values[_key(v)]].name!r} "
                        f"and {name!r}: give each value to one class"
                    )
                values[_key(v)] = i
        return cls(classes, values, {_key(v) for v in ignore})

    @classmethod
    def from_values(cls, found: Iterable[Any], ignore: Iterable[Any] = ()) -> LabelMap:
        """One class per distinct label value, in sorted order (when no mapping is given).

        Example:
            >>> LabelMap.from_values(["water", "forest", "water"]).names
            ['forest', 'water']
        """
        skip = {_key(v) for v in ignore}
        keys = sorted(
            {_key(v) for v in found} - skip,
            key=lambda k: (not k.lstrip("-").isdigit(), int(k) if k.lstrip("-").isdigit() else 0, k),
        )
        return cls.from_spec([{"name": k, "values": [k]} for k in keys], ignore)

    def check_values(self, found: Iterable[Any], source: str) -> None:
        """Raise one error listing label values that are neither a class's nor ignored."""
        unknown = sorted({_key(v) for v in found} - set(self.values) - self.ignore)
        if unknown:
            shown = ", ".join(unknown[:12]) + (" ..." if len(unknown) > 12 else "")
            raise InputError(
                f"label values {shown} in {source} are not in the class mapping (classes: "
                f"{', '.join(self.names)}): map them to a class or ignore them (data.classes and "
                "data.ignore_values in a training config, --classes for evaluate)"
            )

    def lookup(self, labels: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Class ids (uint8) of an array of label values; ignored and unknown values are IGNORE_INDEX."""
        arr = np.asarray(labels)
        uniq, inverse = np.unique(arr, return_inverse=True)
        ids = np.array([self.values.get(_key(u), IGNORE_INDEX) for u in uniq.tolist()], dtype=np.uint8)
        return ids[inverse].reshape(arr.shape)


def burn(geometries: Sequence[Any], class_ids: Sequence[int], shape: tuple[int, int], transform: Affine) -> np.ndarray:
    """Rasterize polygons into a ``uint8`` mask of ``shape`` (unlabeled pixels IGNORE_INDEX).

    Polygons are burned in the given order, later ones on top; pass them
    largest first so smaller polygons win (see the module docstring).

    Example:
        >>> import shapely
        >>> m = burn([shapely.box(0, 0, 2, 2)], [3], (4, 4), Affine(1, 0, 0, 0, -1, 4))
        >>> int((m == 3).sum()), int((m == 255).sum())
        (4, 12)
    """
    from rasterio.features import rasterize

    if len(geometries) == 0:
        return np.full(shape, IGNORE_INDEX, dtype=np.uint8)
    return rasterize(
        zip(geometries, (int(c) for c in class_ids)),
        out_shape=shape,
        transform=transform,
        fill=IGNORE_INDEX,
        dtype="uint8",
    )
