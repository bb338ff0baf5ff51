"""From a config to what the epoch loop needs: the scenes opened and indexed, the spatial split, class weights.

Example:
    >>> config = read_config("configs/example_polygons.yaml")  # doctest: +SKIP
    >>> scenes, bands, label_map, pixel = open_scenes(config, None, Path("/tmp"))  # doctest: +SKIP
    >>> split = split_scenes(config, scenes)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.errors import InputError
from geoseg.core.labels import LabelMap
from geoseg.core.options import Progress
from geoseg.training.cloud_labels import mask_cloudy_labels
from geoseg.training.config import ConfigError, SceneSource, TrainConfig, read_config
from geoseg.training.data import SceneData, Split, index_scene, make_split

__all__ = ["check_two_classes", "class_weights", "open_scenes", "scene_bands", "split_scenes"]

log = logging.getLogger("geoseg")


PIXEL_SIZE_TOLERANCE = 0.1
"""How far (a fraction, each axis) a scene's pixel size may lie from the first scene's: a model learns one pixel size."""


def _descriptions(ds: Any, names: Sequence[str] | None, image: str) -> list[str | None]:
    """A scene's band names: its ``band_names`` from the config (one per band), else its band descriptions."""
    if names is not None and len(names) != ds.count:
        raise InputError(
            f"scene {image} has {ds.count} bands but its band_names lists {len(names)} ({', '.join(names)}): "
            "give one name per band, in order"
        )
    return list(names) if names is not None else list(ds.descriptions)


def scene_bands(
    ds: Any, wanted: Sequence[str | int] | None, names: Sequence[str] | None = None, image: str = ""
) -> tuple[list[int], list[str]]:
    """1-based band indexes of an open scene (all, or those ``wanted`` by index or description) and their names.

    ``names`` (a scene's ``band_names`` in a config) name the bands of an
    image without descriptions, one per band. ``wanted`` is ``data.bands``:
    a band selected twice is refused.

    Example:
        >>> from types import SimpleNamespace
        >>> scene_bands(SimpleNamespace(descriptions=("B02", None), count=2), None)
        ([1, 2], ['B02', 'band_2'])
        >>> scene_bands(SimpleNamespace(descriptions=(None, None), count=2), ["red"], ["green", "red"])
        ([2], ['red'])
        >>> scene_bands(SimpleNamespace(descriptions=("B02", "B04"), count=2), ["B04", 2])
        Traceback (most recent call last):
        ...
        geoseg.training.schema.ConfigError: config key data.bands: B04 and 2 both select band 2 (B04): give each band once
    """
    from geoseg.core.bands import alpha_bands, band_names, parse_requested

    descriptions = _descriptions(ds, names, image)
    if wanted is None:  # every band but an alpha band (GDAL reads it as the scene's mask)
        alpha = alpha_bands(getattr(ds, "colorinterp", ()))
        indexes = [i for i in range(1, ds.count + 1) if i not in alpha] or list(range(1, ds.count + 1))
    else:
        descriptions = band_names(descriptions, getattr(ds, "colorinterp", ()))  # red, green, blue as predict names them
        try:
            indexes = parse_requested(wanted, descriptions, ds.count, option="data.bands")
        except InputError as exc:
            raise ConfigError(f"scene {image}: {exc}" if image else str(exc)) from None
        for i in dict.fromkeys(indexes):
            if indexes.count(i) > 1:
                items = [str(w) for w, j in zip(wanted, indexes) if j == i]
                name = f" ({descriptions[i - 1]})" if descriptions[i - 1] else ""
                raise ConfigError(f"config key data.bands: {' and '.join(items)} both select band {i}{name}: give each band once")
    return indexes, [descriptions[i - 1] or f"band_{i}" for i in indexes]


def _matched_bands(ds: Any, source: SceneSource, wanted: Sequence[str | int] | None, first: list[str], named: bool) -> list[int]:
    """Band indexes of a scene after the first: the first scene's bands (``first``, ``named`` when they have names)
    found by name (band descriptions or ``band_names``, then common names, as predict finds a model's bands); by
    ``data.bands`` in file order, with a warning, when either scene's bands have no names."""
    from geoseg.core.bands import band_names, select_bands
    from geoseg.core.errors import BandMismatchError

    image = str(source.image)
    descriptions = _descriptions(ds, source.band_names, image)
    if not named or not any(band_names(descriptions, ds.colorinterp)):  # no names to match: data.bands, in order
        indexes, names = scene_bands(ds, wanted, source.band_names, image)
        if len(names) != len(first):
            raise InputError(
                f"scene {image} gives {len(names)} bands but the first scene gives "
                f"{len(first)} ({', '.join(first)}): set data.bands to pick the same bands"
            )
        log.warning(
            "%s: its bands %s are taken as the first scene's %s (name them with band_names in the data.scenes items)",
            f"scene {image} has no band names" if named else f"the first scene's bands have no names, so scene {image}",
            ", ".join(map(str, indexes)),
            ", ".join(first),
        )
        return indexes
    try:
        indexes, note = select_bands(descriptions, first, colorinterp=ds.colorinterp)  # as predict matches them
    except BandMismatchError:
        found = ", ".join(d or "?" for d in descriptions)
        raise InputError(
            f"scene {image} has bands {found} but the first scene's bands are {', '.join(first)}: give scenes with "
            "the same bands, or name its bands with band_names in its data.scenes item"
        ) from None
    if note:
        log.warning("scene %s: %s", image, note.replace("model bands", "bands of the first scene"))
    return indexes


def _check_pixel_size(
    ds: Any, image: str, first: tuple[str, tuple[float, float], float] | None
) -> tuple[str, tuple[float, float], float]:
    """The first scene's name, pixel width and height and mean (m); another scene of other pixels is refused."""
    from geoseg.io.pixels import pixel_size_m, pixel_sizes_m, shown_sizes, sizes_within

    sizes = pixel_sizes_m(ds)
    if first is None:
        return image, sizes, pixel_size_m(ds)
    name, want, _ = first
    if sizes_within(sizes, want, PIXEL_SIZE_TOLERANCE):
        return first
    xres, yres = (abs(r) * w / s for r, w, s in zip(ds.res, want, sizes))
    method = "average" if xres > abs(ds.res[0]) else "bilinear"
    raise InputError(
        f"scene {image} has {shown_sizes(sizes)} pixels but the first scene {name} has {shown_sizes(want)}: a model "
        f"learns one pixel size; resample it to the first scene's (gdalwarp -tr {xres:.6g} {yres:.6g} -r {method} "
        "IN.tif OUT.tif) or train one model per pixel size"
    )


def _check_model_params(config: TrainConfig) -> None:
    """Refuse a key of ``model.params`` that the smp architecture does not take (a typo would be ignored)."""
    import difflib

    from geoseg.model.factory import unknown_params

    m = config.model
    unknown, valid = unknown_params(m.arch, m.encoder, m.params)
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"config key model.params.{unknown[0]} is not a parameter of smp's {m.arch}: {hint}valid ones are {', '.join(valid)}"
        )


def _sources(config: TrainConfig, work: Path) -> tuple[list[SceneSource], LabelMap | None]:
    """The scenes to read (a chip folder's chips mosaicked in ``work``) and the class table, when one is given."""
    data = config.data
    if not data.chips:
        classes = None if data.classes is None else list(data.classes)
        label_map = None if classes is None else LabelMap.from_spec(classes, data.ignore_values, data.background)
        return list(data.scenes), label_map
    from geoseg.training.chipset import chip_mosaics

    if data.classes is not None:
        raise ConfigError(
            "config key data.classes: chips carry their classes (CHIP_DIR/classes.json); remove data.classes or train from scenes"
        )
    entries, label_map = chip_mosaics(Path(data.chips), work, data.ignore_values)
    return [SceneSource(**entry) for entry in entries], label_map


def check_two_classes(label_map: LabelMap, chips: bool = False) -> None:
    """Refuse a class table of fewer than two classes: a model of one class learns nothing (loss 0, mIoU 1).

    Example:
        >>> check_two_classes(LabelMap.from_spec(["road"]))
        Traceback (most recent call last):
        ...
        geoseg.training.schema.ConfigError: the labels give only one class (road) and a model needs two or more: ...
    """
    if len(label_map.classes) >= 2:
        return
    names = ", ".join(label_map.names) or "none"
    fix = (
        "tile labels of two or more classes with geoseg tile"
        if chips
        else "add data.background: {name: background} (unlabeled pixels inside the labels' extent become that class) "
        "or label a second class"
    )
    count = "only one class" if label_map.classes else "no class"
    raise ConfigError(f"the labels give {count} ({names}) and a model needs two or more: {fix}")


def open_scenes(
    config: TrainConfig | Mapping[str, Any], progress: Progress | None, work: Path
) -> tuple[list[SceneData], list[str], LabelMap, float]:
    """Open and index every scene of ``config`` with its labels; returns the scenes, band names, classes and pixel size (m).

    ``model.params`` are checked against the smp architecture first. Every
    scene's bands and labels are opened and the class table checked (two or
    more classes, see :func:`check_two_classes`) before any scene is indexed;
    the scenes after the first have their bands found by name and the same
    pixel size. The caller closes the scenes. ``work`` is a folder for the mosaics of a chip folder.

    Example:
        >>> scenes, bands, label_map, pixel = open_scenes(read_config("configs/example_mask.yaml"), None, work)  # doctest: +SKIP
        >>> bands[:2], label_map.names[0], pixel  # doctest: +SKIP
        (['B02', 'B03'], 'forest', 10.0)
    """
    from geoseg.io.raster import gdal_env

    config = read_config(config)
    _check_model_params(config)
    data = config.data
    sources, label_map = _sources(config, work)
    stride = data.stride or max(8, config.model.chip_size // 4)
    opened: list[tuple[SceneSource, Any, list[int]]] = []
    scenes: list[SceneData] = []
    try:
        band_names, pixel, label_map = _open_labels(config, sources, label_map, opened, work)
        check_two_classes(label_map, chips=bool(data.chips))
        with gdal_env():
            for source, labels, indexes in opened:
                scenes.append(index_scene(source.image, labels, indexes, len(label_map.classes), stride, progress))
    except BaseException:
        for scene in scenes:  # closes its labels too
            scene.close()
        for _, labels, _ in opened[len(scenes) :]:
            labels.close()
        raise
    return scenes, band_names, label_map, pixel


def _open_labels(
    config: TrainConfig,
    sources: list[SceneSource],
    label_map: LabelMap | None,
    opened: list[tuple[SceneSource, Any, list[int]]],
    work: Path,
) -> tuple[list[str], float, LabelMap]:
    """Check every scene's bands and pixel size and open its labels (appended to ``opened``; with ``mask_clouds``
    unlabelled under clouds, their mask made in ``work``); the band names, pixel size, classes."""
    from geoseg.io.label_files import SceneGrid, open_labels
    from geoseg.io.raster import gdal_env, open_scene

    data = config.data
    band_names: list[str] = []
    named = False
    first: tuple[str, tuple[float, float], float] | None = None
    grids = []
    with gdal_env():
        for source in sources:
            with open_scene(source.image) as ds:
                if first is None:
                    indexes, band_names = scene_bands(ds, data.bands, source.band_names, str(source.image))
                    named = all(_descriptions(ds, source.band_names, "")[i - 1] for i in indexes)
                else:
                    indexes = _matched_bands(ds, source, data.bands, band_names, named)
                first = _check_pixel_size(ds, str(source.image), first)
                grids.append(SceneGrid.of(ds))
            labels: Any = open_labels(
                source.labels, grids[-1], source.label_field, label_map, data.ignore_values, background=data.background
            )
            opened.append((source, labels, indexes))
        label_map = _all_classes(config, label_map, opened, grids)
        for n, (source, labels, indexes) in enumerate(opened):
            if source.mask_clouds:
                with open_scene(source.image) as ds:
                    opened[n] = (source, mask_cloudy_labels(labels, source.image, ds, work / f"clouds_{n}.tif"), indexes)
    if label_map is None or first is None:  # no scene: the config schema and chip_mosaics refuse that before
        raise InputError("the config gives no scene to train on")
    return band_names, first[2], label_map


def _all_classes(
    config: TrainConfig, given: LabelMap | None, opened: list[tuple[SceneSource, Any, list[int]]], grids: list[Any]
) -> LabelMap | None:
    """The class table: ``given`` (data.classes), else one class per distinct value of all scenes' labels; labels
    opened with another table are opened again with it."""
    from geoseg.io.label_files import open_labels

    if given is not None or not opened:
        return given
    found: set[str] = set()
    for _, labels, _ in opened:
        found.update(labels.label_map.values)
    data = config.data
    label_map = LabelMap.from_values(found, data.ignore_values, data.background)
    for n, (source, labels, indexes) in enumerate(opened):
        if labels.label_map.values != label_map.values or labels.label_map.names != label_map.names:
            again = open_labels(
                source.labels, grids[n], source.label_field, label_map, data.ignore_values, background=data.background
            )
            labels.close()
            opened[n] = (source, again, indexes)
    return label_map


def split_scenes(config: TrainConfig | Mapping[str, Any], scenes: list[SceneData]) -> Split:
    """The spatial split of ``config.split`` over indexed scenes (see :func:`geoseg.training.data.make_split`).

    Example:
        >>> split = split_scenes(config, scenes)  # doctest: +SKIP
        >>> len(split.train) > 0  # doctest: +SKIP
        True
    """
    config = read_config(config)
    chip = config.model.chip_size
    stride = scenes[0].stride
    block = config.split.block_size or chip
    gap = stride if config.split.gap is None else config.split.gap
    for key, value in (("data.stride", chip), ("split.block_size", block)):
        if value % stride:
            raise ConfigError(f"config key {key}: {value} must be a multiple of data.stride ({stride})")
    min_labeled = config.data.min_labeled
    split = make_split(scenes, chip, block, gap, config.split.val_fraction, min_labeled, config.split.seed)
    if not split.train:
        raise InputError(
            f"no training chip of {chip} px has {min_labeled:.0%} labeled pixels outside the "
            "validation blocks: lower data.min_labeled, split.val_fraction or model.chip_size"
        )
    return split


def class_weights(config: TrainConfig, counts: np.ndarray, names: list[str]) -> list[float] | None:
    """Loss weights per class: as configured, ``auto`` (inverse square-root frequency of ``counts``) or none.

    Example:
        >>> from types import SimpleNamespace
        >>> config = SimpleNamespace(train=SimpleNamespace(class_weights="auto"))
        >>> [round(w, 3) for w in class_weights(config, np.array([900, 100]), ["forest", "water"])]
        [0.5, 1.5]
    """
    from geoseg.training.losses import auto_class_weights

    given = config.train.class_weights
    if isinstance(given, tuple):
        if len(given) != len(names):
            raise ConfigError(
                f"config key train.class_weights: {len(given)} weights for {len(names)} classes "
                f"({', '.join(names)}): give one per class"
            )
        return [float(w) for w in given]
    if given == "auto":
        return auto_class_weights(counts)
    return None
