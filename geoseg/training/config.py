"""Training configuration: a YAML file checked up front against one schema, then one typed, frozen object.

Every key has a type and a default (:data:`geoseg.training.schema.SCHEMA`); a
typo, a wrong type or a bad value is one :class:`ConfigError` that names the
key and the valid choices. Paths in the file are relative to the file's
folder. :class:`TrainConfig` is built once from the checked mapping and is
what training carries; :meth:`TrainConfig.to_dict` gives the mapping back (the
``config.yaml`` of a run).

Example:
    >>> config = TrainConfig.from_dict(parse_config(
    ...     {"data": {"scenes": [{"image": "s.tif", "labels": "l.gpkg", "label_field": "fclass"}],
    ...               "classes": ["forest", "water"]}}, base=Path(".")))
    >>> config.train.epochs, config.model.arch, config.data.scenes[0].label_field
    (30, 'unet', 'fclass')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from geoseg.core.labels import Background
from geoseg.io.paths import check_input_file
from geoseg.training.schema import SCHEMA, ConfigError, parse_config

__all__ = [
    "AugmentSection",
    "ConfigError",
    "DataSection",
    "MAX_YAML_NODES",
    "ModelSection",
    "SCHEMA",
    "SceneSource",
    "SplitSection",
    "TrainConfig",
    "TrainSection",
    "load_config",
    "parse_config",
    "read_config",
]

MAX_YAML_NODES = 1_000_000
"""Most values a config may expand to once YAML aliases are followed (guards against alias bombs)."""


@dataclass(frozen=True)
class SceneSource:
    """One scene to train on: the image, its labels (polygons or a mask raster), the polygons' label field, for an
    image without band names the names of its bands in order (``band_names``), and whether labels under its clouds
    and cloud shadows are ignored (``mask_clouds``)."""

    image: str
    labels: str
    label_field: str | None = None
    band_names: tuple[str, ...] | None = None
    mask_clouds: bool = False

    def __post_init__(self) -> None:
        if self.band_names is not None and not isinstance(self.band_names, tuple):
            object.__setattr__(self, "band_names", tuple(str(n).strip() for n in self.band_names))


@dataclass(frozen=True)
class ModelSection:
    """``model:``: the smp architecture and encoder, extra smp arguments, chip size and default overlap."""

    arch: str
    encoder: str
    encoder_weights: str | None
    params: dict[str, Any]
    chip_size: int
    overlap: str | float


@dataclass(frozen=True)
class DataSection:
    """``data:``: scenes with labels (or a chip folder), bands, classes and which chips qualify.

    ``classes`` entries may carry ``buffer`` (metres: their lines and points
    become corridors and discs); ``background`` is the class of unlabeled
    pixels inside an area, added after ``classes`` (the last class id).
    """

    scenes: tuple[SceneSource, ...]
    chips: str | None
    bands: tuple[str | int, ...] | None
    classes: tuple[Any, ...] | None
    ignore_values: tuple[Any, ...]
    min_labeled: float
    stride: int | None
    background: Background | None = None


@dataclass(frozen=True)
class SplitSection:
    """``split:``: the share of labeled pixels held out in whole blocks, the block size and the gap around them."""

    val_fraction: float
    block_size: int | None
    gap: int | None
    seed: int


@dataclass(frozen=True)
class AugmentSection:
    """``augment:``: random flips, 90° rotations, scale and brightness jitter, and radiometric jitter of the raw
    bands (see :mod:`geoseg.training.augment`): a gain for the whole chip and per band, an offset per band and
    Gaussian noise (offset and noise in units of each band's std)."""

    flips: bool
    rot90: bool
    scale: float
    brightness: float
    gain: float = 0.0
    band_gain: float = 0.0
    offset: float = 0.0
    noise: float = 0.0


@dataclass(frozen=True)
class TrainSection:
    """``train:``: optimisation (learning rate with ``warmup_epochs`` of linear warm-up, then cosine decay: see
    :mod:`geoseg.training.schedule`), loss weights (names of :data:`geoseg.training.losses.LOSSES`), device and
    stopping."""

    epochs: int
    batch_size: int
    lr: float
    warmup_epochs: int
    weight_decay: float
    loss: dict[str, float]
    class_weights: str | tuple[float, ...] | None
    focal_gamma: float
    patience: int | None
    seed: int
    device: str
    samples_per_epoch: int | None
    save_fp16: bool
    threads: int | None


@dataclass(frozen=True)
class TrainConfig:
    """A checked training config with every default filled in (see :func:`load_config` and :func:`read_config`)."""

    name: str
    description: str
    attribution: str
    licence: str
    model: ModelSection
    data: DataSection
    split: SplitSection
    augment: AugmentSection
    train: TrainSection

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> TrainConfig:
        """The typed view of a mapping that :func:`parse_config` returned.

        Example:
            >>> cfg = parse_config({"data": {"chips": "chips"}, "train": {"loss": {"ce": 1, "dice": 0.5}}}, Path("/d"))
            >>> config = TrainConfig.from_dict(cfg)
            >>> config.train.loss, config.data.chips, config.to_dict() == cfg
            ({'ce': 1.0, 'dice': 0.5}, '/d/chips', True)
        """
        data, train = dict(cfg["data"]), dict(cfg["train"])
        data["scenes"] = tuple(SceneSource(**scene) for scene in data["scenes"])
        for key in ("bands", "classes"):
            data[key] = None if data[key] is None else tuple(data[key])
        data["ignore_values"] = tuple(data["ignore_values"])
        data["background"] = None if data.get("background") is None else Background(**data["background"])
        if isinstance(train["class_weights"], list):
            train["class_weights"] = tuple(train["class_weights"])
        return cls(
            **{key: cfg[key] for key in SCHEMA[""]},
            model=ModelSection(**cfg["model"]),
            data=DataSection(**data),
            split=SplitSection(**cfg["split"]),
            augment=AugmentSection(**cfg["augment"]),
            train=TrainSection(**train),
        )

    def to_dict(self) -> dict[str, Any]:
        """The mapping this config was built from (lists where the config has tuples): what a run's config.yaml holds.

        Example:
            >>> cfg = parse_config({"data": {"chips": "c", "bands": [1, 2]}}, Path("/d"))
            >>> TrainConfig.from_dict(cfg).to_dict()["data"]["bands"]
            [1, 2]
        """
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    """``value`` with every tuple made a list (recursively), as YAML and JSON give them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _expanded_size(root: Any, limit: int) -> int:
    """How many YAML nodes ``root`` stands for with every alias expanded (counted without expanding).

    A node reached through several aliases is one object in PyYAML's graph; its
    expanded size is counted once per node (memoised), so this takes time in
    the size of the file, not of the expansion. Stops counting above ``limit``.
    """
    import yaml

    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if not done and id(node) in visiting:
            return limit + 1  # an alias inside its own anchor: endless
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if done:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            visiting.discard(id(node))
        else:
            visiting.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _duplicate_key(root: Any) -> tuple[str, int, int] | None:
    """The first key given twice in one mapping of the YAML node graph ``root``: its path and both lines, else None."""
    import yaml

    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else None
                if name is not None and name != "<<":
                    if name in lines:
                        return f"{path}{name}", lines[name], key.start_mark.line + 1
                    lines[name] = key.start_mark.line + 1
                stack.append((value, f"{path}{name}." if name is not None else path))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path[:-1]}[{i}].") for i, item in enumerate(node.value))
    return None


def _read_yaml(p: Path) -> Any:
    """The YAML document of ``p``, refused before it is built when aliases expand it past :data:`MAX_YAML_NODES`."""
    import yaml

    loader = yaml.SafeLoader(p.read_text(encoding="utf-8"))
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(
                f"config {p} expands to more than {MAX_YAML_NODES:,} values through YAML aliases (*name): "
                "write the values out or use fewer aliases"
            )
        twice = _duplicate_key(node)
        if twice is not None:
            raise ConfigError(
                f"config {p}: key {twice[0]} is given twice (lines {twice[1]} and {twice[2]}), and the second would "
                "replace the first: merge them into one"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a YAML training config: the checked mapping with defaults filled in.

    Example:
        >>> cfg = load_config("configs/brandenburg_default.yaml")  # doctest: +SKIP
        >>> cfg["train"]["loss"]  # doctest: +SKIP
        {'ce': 1.0, 'dice': 0.5}
    """
    import yaml

    p = Path(path)
    check_input_file(p, "config", "give a YAML file (examples in configs/)", ConfigError, empty_ok=True)
    try:
        raw = _read_yaml(p)
    except UnicodeDecodeError:
        raise ConfigError(f"config {p} is not a text file: give a YAML config (examples in configs/)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config {p} is not valid YAML{where}: fix the syntax") from None
    try:
        return parse_config(raw, p.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def read_config(config: TrainConfig | Mapping[str, Any] | str | os.PathLike) -> TrainConfig:
    """The typed config of a YAML path, of a mapping (paths relative to the current folder), or ``config`` itself.

    Example:
        >>> config = read_config("configs/brandenburg_default.yaml")  # doctest: +SKIP
        >>> config.train.loss  # doctest: +SKIP
        {'ce': 1.0, 'dice': 0.5}
    """
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return TrainConfig.from_dict(load_config(config))
    return TrainConfig.from_dict(parse_config(config, Path.cwd()))
