"""Labels: map label values (a vector field's values or mask values) to class ids 0..K-1.

A :class:`LabelMap` is the class table of a training run: each class has a
name, a colour and the label values that mean it; ``ignore`` values (and
anything unlabeled or nodata) become :data:`IGNORE_INDEX` and are never
trained as a class. :func:`burn` rasterizes polygons for one chip window.

Overlapping polygons: the smaller polygon is on top (polygons are burned
from largest to smallest area), so a pond drawn inside a forest stays water.

Lines and points are labels too once a class has a ``buffer`` (metres: a
line becomes a corridor reaching that far on each side, a point a disc of
that radius). A :class:`Background` class, when given, is the last class of
the table: every unlabeled pixel inside its area (see
:func:`geoseg.io.label_files.open_labels`) becomes that class, and the
labels are burned on top of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from geoseg.core.classes import IGNORE_INDEX, ClassInfo, class_colors
from geoseg.core.errors import InputError

__all__ = [
    "BACKGROUND_WITHIN",
    "MAX_CLASSES",
    "Background",
    "LabelMap",
    "burn",
    "check_buffer",
    "checked_labels",
    "config_labels",
]

MAX_CLASSES = IGNORE_INDEX
"""Most classes a class table may have: ids 0..254 fit a uint8 mask or class map, 255 is unlabeled (nodata)."""

BACKGROUND_WITHIN = ("labels", "scene")
"""The named areas of :attr:`Background.within`; anything else is the path of a vector file of polygons."""


@dataclass(frozen=True)
class Background:
    """The class of unlabeled pixels inside an area: ``within`` is ``labels`` (the extent of the label
    features), ``scene`` (the whole scene) or the path of a vector file whose polygons are the area.

    Example:
        >>> Background("background").within
        'labels'
    """

    name: str
    within: str = "labels"
    color: str | None = None


def check_buffer(value: Any, what: str, error: type[InputError] = InputError) -> float:
    """A buffer distance in metres, refused (naming ``what`` and the value) unless it is a positive number.

    ``error`` is the class raised: :class:`~geoseg.core.errors.OptionError` for an option's value (a usage error).

    Example:
        >>> check_buffer(5, "--buffer")
        5.0
        >>> from geoseg.core.errors import OptionError
        >>> check_buffer(-5, "--buffer", OptionError)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: --buffer -5 is not a positive distance in metres: give e.g. 5 ...
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value <= 0:
        raise error(
            f"{what} {f'{value:g}' if ok else repr(value)} is not a positive distance in metres: give e.g. 5 "
            "(a line becomes a 10 m-wide corridor, a point a disc of radius 5 m)"
        )
    return float(value)


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
    buffers: dict[int, float] = field(default_factory=dict)
    """Buffer in metres of each class's lines and points (classes without one: none)."""
    background: int | None = None
    """Id of the background class (the last class), when the table has one."""

    @property
    def names(self) -> list[str]:
        """Class names in id order."""
        return [c.name for c in self.classes]

    def values_of(self, class_id: int) -> list[str]:
        """The label values (as text, sorted) that mean class ``class_id``."""
        return sorted(v for v, i in self.values.items() if i == class_id)

    @classmethod
    def from_spec(cls, spec: Sequence[Any], ignore: Iterable[Any] = (), background: Background | None = None) -> LabelMap:
        """Build from a list of class names or dicts ``{name, color?, values?, buffer?}``.

        A class without ``values`` is labeled by its name (the usual case for a
        vector field such as OpenStreetMap's ``fclass``). ``buffer`` (metres)
        makes the class's lines and points corridors and discs. A
        ``background`` class is appended last (labeled by its name too), so
        the classes of ``spec`` keep their ids.

        Example:
            >>> lm = LabelMap.from_spec([{"name": "road", "buffer": 4}], background=Background("other"))
            >>> lm.names, lm.buffers, lm.background
            (['road', 'other'], {0: 4.0}, 1)
        """
        items = [{"name": s} if not isinstance(s, Mapping) else dict(s) for s in spec]
        names = [str(item.get("name", "")) for item in items]
        if len(items) + (background is not None) > MAX_CLASSES:
            raise InputError(
                f"{len(items) + (background is not None)} classes are more than the {MAX_CLASSES} a class map holds "
                f"(ids 0..{MAX_CLASSES - 1}; {IGNORE_INDEX} is unlabeled): map the label values to fewer classes"
            )
        if background is not None:
            if background.name in names:
                raise InputError(
                    f"data.background {background.name!r} names a class of data.classes: give the background "
                    "another name (e.g. background) or remove that class"
                )
            items.append({"name": background.name, "color": background.color})
            names.append(background.name)
        colors = class_colors(names)
        classes: list[ClassInfo] = []
        values: dict[str, int] = {}
        buffers: dict[int, float] = {}
        for i, item in enumerate(items):
            name = str(item["name"])
            classes.append(ClassInfo(i, name, str(item.get("color") or colors[i])))
            if item.get("buffer") is not None:
                buffers[i] = check_buffer(item["buffer"], f"buffer of class {name!r}:")
            raw = item.get("values")
            raw = [name] if raw is None else (raw if isinstance(raw, (list, tuple)) else [raw])
            for v in raw:
                if _key(v) in values and values[_key(v)] != i:
                    raise InputError(
                        f"label value {v!r} is given for classes {classes[values[_key(v)]].name!r} "
                        f"and {name!r}: give each value to one class"
                    )
                values[_key(v)] = i
        bg = None if background is None else len(classes) - 1
        return cls(classes, values, {_key(v) for v in ignore}, buffers, bg)

    @classmethod
    def from_values(
        cls,
        found: Iterable[Any],
        ignore: Iterable[Any] = (),
        background: Background | None = None,
        buffer: float | None = None,
        source: str = "the labels",
    ) -> LabelMap:
        """One class per distinct label value, in sorted order (when no mapping is given).

        A ``background`` class comes last (a label value equal to its name is
        that class); ``buffer`` (metres) applies to every class's lines and points.
        More values than a class map holds (:data:`MAX_CLASSES`, with the
        background) are one error naming ``source`` (e.g. the labels' file and field).

        Example:
            >>> LabelMap.from_values(["water", "forest", "water"]).names
            ['forest', 'water']
            >>> LabelMap.from_values(["road", "other"], background=Background("other"), buffer=3).buffers
            {0: 3.0}
            >>> LabelMap.from_values(range(300), source="labels.gpkg field 'osm_id'")
            Traceback (most recent call last):
            ...
            geoseg.core.errors.InputError: 300 distinct label values in labels.gpkg field 'osm_id' (0, 1, 2, ...): ...
        """
        skip = {_key(v) for v in ignore} | ({_key(background.name)} if background is not None else set())
        keys = sorted(
            {_key(v) for v in found} - skip,
            key=lambda k: (not k.lstrip("-").isdigit(), int(k) if k.lstrip("-").isdigit() else 0, k),
        )
        if len(keys) + (background is not None) > MAX_CLASSES:
            room = MAX_CLASSES - (background is not None)
            raise InputError(
                f"{len(keys)} distinct label values in {source} ({', '.join(keys[:3])}, ...): each would be a class, "
                f"and a class map holds at most {room} classes{' besides the background' if background else ''}: "
                "check the label field (--label-field, label_field in a config) or map the values to fewer classes "
                "(data.classes in a training config)"
            )
        return cls.from_spec([{"name": k, "values": [k], "buffer": buffer} for k in keys], ignore, background)

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

    def ignored(self, labels: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Whether each label value is one of the ignored values (bool array of the same shape).

        Example:
            >>> LabelMap.from_spec(["forest"], ignore=[0]).ignored([0, "forest", 3]).tolist()
            [True, False, False]
        """
        arr = np.asarray(labels, dtype=object)
        return np.array([_key(v) in self.ignore for v in arr.ravel().tolist()], dtype=bool).reshape(arr.shape)

    def lookup(self, labels: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Class ids (uint8) of an array of label values; ignored and unknown values are IGNORE_INDEX.

        Ids always fit a uint8: a table holds at most :data:`MAX_CLASSES` classes (see :meth:`from_spec`).

        Example:
            >>> LabelMap.from_spec(["forest", "water"]).lookup(np.array([["water", "snow"]])).tolist()
            [[1, 255]]
        """
        arr = np.asarray(labels)
        uniq, inverse = np.unique(arr, return_inverse=True)
        ids = np.array([self.values.get(_key(u), IGNORE_INDEX) for u in uniq.tolist()], dtype=np.uint8)
        return ids[inverse].reshape(arr.shape)


def burn(geometries: Sequence[Any], class_ids: Sequence[int], shape: tuple[int, int], transform: Affine) -> np.ndarray:
    """Rasterize polygons into a ``uint8`` mask of ``shape`` (unlabeled pixels IGNORE_INDEX).

    Polygons are burned in the given order, later ones on top; pass them
    largest first so smaller polygons win (see the module docstring). A
    polygon burned with ``IGNORE_INDEX`` makes its pixels unlabeled again.

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


def config_labels(data: Mapping[str, Any], config: Path, what: str) -> tuple[LabelMap, Background | None]:
    """The label map and background of a training config's ``data`` section, read as plain YAML.

    For tools given a training config as a class table (``evaluate`` and
    ``vectorize --classes``): ``classes``, ``ignore_values`` and
    ``background`` (a ``within`` path is relative to the config's folder).
    Errors name ``what`` (e.g. ``--classes run.yaml``).

    Example:
        >>> data = {"classes": ["forest"], "ignore_values": 0, "background": {"name": "other", "within": "area.gpkg"}}
        >>> label_map, background = config_labels(data, Path("cfg.yaml"), "--classes cfg.yaml")
        >>> label_map.names, background.within == str(Path("area.gpkg"))
        (['forest', 'other'], True)
    """
    spec = data.get("background")
    background = None
    if isinstance(spec, Mapping) and spec.get("name") is not None:
        within, color = str(spec.get("within") or "labels"), spec.get("color")
        within = within if within in BACKGROUND_WITHIN else str(config.parent / within)
        background = Background(str(spec["name"]), within, None if color is None else str(color))
    ignore = data.get("ignore_values")
    ignore = [] if ignore is None else (ignore if isinstance(ignore, (list, tuple)) else [ignore])
    fix = "data.classes must be a list of class names or {name, color, values}: fix the config"
    return checked_labels(lambda: LabelMap.from_spec(data["classes"], ignore, background), what, fix), background


def checked_labels(build: Callable[[], LabelMap], what: str, fix: str) -> LabelMap:
    """``build()``'s class table; its refusals as one error naming ``what``, a malformed table's saying ``fix``.

    Example:
        >>> checked_labels(lambda: LabelMap.from_spec([{"values": [1]}]), "--classes t.json", "give {name, values}")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: --classes t.json: give {name, values}
    """
    try:
        return build()
    except InputError as exc:  # a ValueError too: said as it is, not as a malformed table
        raise InputError(f"{what}: {exc}") from None
    except (KeyError, TypeError, AttributeError, ValueError):
        raise InputError(f"{what}: {fix}") from None
