"""Typed options: built once from the CLI or the Python API, checked there, carried unchanged to the work.

:class:`PredictOptions` travels from ``geoseg predict``/``geoseg run``
through the batch and Dask paths to :func:`geoseg.predict`;
:class:`VectorizeOptions` to the polygonizer. Both are frozen: a value is
checked once, in ``__post_init__``, and every later stage reads the same
object (Dask pickles it to its workers as it is). Defaults live here and
nowhere else.

Example:
    >>> opts = PredictOptions(overlap="64px", batch_size=4)
    >>> opts.overlap.pixels(256), opts.batch_size
    (64, 4)
    >>> VectorizeOptions(min_area=500).min_area
    500.0
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from geoseg.core.errors import InputError, OptionError

__all__ = [
    "BLOCK_WIDTH",
    "DEVICES",
    "OUTPUT_GRIDS",
    "RESAMPLE",
    "Overlap",
    "PredictOptions",
    "Progress",
    "RunOptions",
    "VectorizeOptions",
    "check_positive_chip_size",
    "is_device",
    "parse_preview_bands",
]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as long work advances (chips, rows, scenes)."""

BLOCK_WIDTH = 16384
"""Scenes wider than this are stitched in vertical blocks (docs/ARCHITECTURE.md, 'Memory and blocks')."""

DEVICES = ("auto", "cpu", "cuda")
"""Device names the CLI offers (``cuda:N`` is accepted too)."""

RESAMPLE = ("auto", "off")
"""``--resample``: ``auto`` reads chips at the model's pixel size when the scene's differs by more than 25%."""

OUTPUT_GRIDS = ("scene", "model")
"""``--output-grid``: where the outputs of a resampled scene lie (the scene's grid, or the model's pixel size)."""

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
"""``--model-precision``: ``auto`` is float16 autocast on a GPU and float32 on the CPU."""


@dataclass(frozen=True)
class Overlap:
    """Overlap of neighbouring chips: a fraction in [0, 1) of the chip, or a number of pixels.

    Parsed once from ``0.25``, ``"0.25"``, ``"64px"`` or an ``int`` (pixels);
    :meth:`pixels` turns it into pixels for a chip size.

    Example:
        >>> Overlap.parse(0.25).pixels(256), Overlap.parse("64px").pixels(256), str(Overlap.parse("0.5"))
        (64, 64, '0.5')
    """

    fraction: float | None = None
    px: int | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.px is None):
            raise OptionError("an overlap is either a fraction of the chip or a number of pixels: give one, e.g. 0.25 or '64px'")
        if self.px is not None and self.px < 0:
            raise OptionError(f"overlap {self.px}px must be at least 0 pixels")
        if self.fraction is not None and (not 0.0 <= self.fraction < 1.0 or math.isnan(self.fraction)):
            raise OptionError(f"overlap {self.fraction} must be a fraction in [0, 1) of the chip, or pixels written like '64px'")

    @classmethod
    def parse(cls, value: str | float | Overlap) -> Overlap:
        """An :class:`Overlap` from a fraction, ``"<N>px"`` text or an ``int`` number of pixels."""
        if isinstance(value, Overlap):
            return value
        text = str(value).strip().lower()
        try:
            if isinstance(value, int) and not isinstance(value, bool) or text.endswith("px"):
                return cls(px=int(text[:-2] if text.endswith("px") else text))
            fraction = float(text)
        except ValueError as exc:
            if isinstance(exc, InputError):
                raise
            raise OptionError(
                f"overlap {value!r} is not a number: give a fraction such as 0.25 or pixels such as '64px'"
            ) from None
        if not 0.0 <= fraction < 1.0 or math.isnan(fraction):
            raise OptionError(f"overlap {value} must be a fraction in [0, 1) of the chip, or pixels written like '64px'")
        return cls(fraction=fraction)  # the text is kept exactly as a float, never rounded

    def pixels(self, chip_size: int, error: type[InputError] = InputError) -> int:
        """The overlap in pixels for chips of ``chip_size``; it must be smaller than the chip.

        ``error`` is raised when it is not: :class:`OptionError` where the chip
        size is an option too (a usage error), an :class:`InputError` where it
        is the model's.
        """
        if chip_size <= 0:
            raise OptionError(f"chip size {chip_size} must be a positive number of pixels, e.g. 256")
        pixels = self.px if self.px is not None else int((self.fraction or 0.0) * chip_size)
        if not 0 <= pixels < chip_size:
            raise error(
                f"overlap {self} must be at least 0 and smaller than the chip size ({chip_size} px): "
                f"use at most '{chip_size - 1}px'"
            )
        return pixels

    def __str__(self) -> str:
        return f"{self.px}px" if self.px is not None else repr(self.fraction)


def _path_or_none(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else os.fspath(value)


def _check_choice(option: str, value: object, choices: tuple[str, ...]) -> None:
    """Refuse ``value`` unless it is one of ``choices`` (one line naming them)."""
    if value not in choices:
        raise OptionError(f"{option} {value!r} is not known: use {' or '.join(choices)}")


def is_device(name: str) -> bool:
    """A device name geoseg knows: one of :data:`DEVICES`, or ``cuda:N`` for the N-th GPU.

    Example:
        >>> is_device("cuda:1"), is_device("cpu:1"), is_device("tpu")
        (True, False, False)
    """
    kind, _, number = name.partition(":")
    return name in DEVICES or (kind == "cuda" and number.isdigit())


def check_positive_chip_size(value: object, option: str = "--chip-size") -> None:
    """Refuse a chip size that is not a positive number of pixels (a usage error; the model's stride is checked
    where the model is known).

    Example:
        >>> check_positive_chip_size(256)
        >>> check_positive_chip_size(0)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: --chip-size 0 must be a positive number of pixels, e.g. 256
    """
    if isinstance(value, bool) or int(value) <= 0:  # type: ignore[call-overload]
        raise OptionError(f"{option} {value} must be a positive number of pixels, e.g. 256")


def _metres(option: str, value: object) -> float:
    """``value`` as a positive, finite number of metres, else a one-line error."""
    try:
        number = float(str(value)) if not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise OptionError(f"{option} {value} must be a positive number of metres, e.g. 20")
    return number


@dataclass(frozen=True)
class PredictOptions:
    """How a scene is predicted: bands, chips, batching, device, backend, TTA, area of interest, blocks, grids.

    ``None`` means "the model's" for ``chip_size`` and ``overlap`` and
    "automatic" for ``batch_size`` (2 chips on the CPU; on a GPU what half its free memory holds).
    ``backend`` is a name of :data:`geoseg.inference.backends.BACKENDS`
    (checked where the backend is chosen). ``resample`` (:data:`RESAMPLE`)
    says whether chips are read at the model's pixel size when the scene's
    differs from it by more than 25%; ``output_grid`` (:data:`OUTPUT_GRIDS`)
    whether such a scene's outputs lie on its own grid or the model's.
    ``resolution`` (metres) is the grid of a multi-file source
    (``--resolution``; None: its finest grid). ``model_precision``
    (:data:`PRECISIONS`) and ``compile`` (``torch.compile``) tune a torch
    model; ``mask_clouds`` makes clouds and their shadows nodata in every
    output (:mod:`geoseg.inference.clouds`, extra ``geoseg[clouds]``).

    Example:
        >>> PredictOptions(bands="B04,B03,B02").bands
        ('B04', 'B03', 'B02')
        >>> PredictOptions(batch_size=0)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: --batch-size 0 must be at least 1
    """

    bands: tuple[str, ...] | None = None
    chip_size: int | None = None
    overlap: Overlap | None = None
    batch_size: int | None = None
    device: str = "auto"
    backend: str = "auto"
    tta: bool = False
    aoi: str | None = None
    block_width: int = BLOCK_WIDTH
    resample: str = "auto"
    output_grid: str = "scene"
    resolution: float | None = None
    model_precision: str = "auto"
    compile: bool = False
    mask_clouds: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalize once, here
        if self.bands is not None and not isinstance(self.bands, tuple):
            raw = self.bands.split(",") if isinstance(self.bands, str) else list(self.bands)
            set_(self, "bands", tuple(str(b).strip() for b in raw))
        if self.bands is not None and not all(self.bands):
            raise OptionError(f"--bands {','.join(self.bands)!r} has an empty item: write e.g. 1,2,3 or B04,B03,B02")
        if self.overlap is not None and not isinstance(self.overlap, Overlap):
            set_(self, "overlap", Overlap.parse(self.overlap))
        set_(self, "aoi", _path_or_none(self.aoi))
        if self.chip_size is not None:
            check_positive_chip_size(self.chip_size)
        if self.chip_size is not None and self.overlap is not None:  # both options: they must fit each other
            self.overlap.pixels(int(self.chip_size), OptionError)
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionError(f"--batch-size {self.batch_size} must be at least 1")
        if self.block_width < 256:
            raise OptionError(f"--block-width {self.block_width} must be at least 256 pixels (one tile)")
        device = str(self.device)
        if not is_device(device):
            raise OptionError(f"--device {device!r} is not known: use auto, cpu or cuda")
        _check_choice("--resample", self.resample, RESAMPLE)
        _check_choice("--output-grid", self.output_grid, OUTPUT_GRIDS)
        _check_choice("--model-precision", self.model_precision, PRECISIONS)
        if self.resolution is not None:
            set_(self, "resolution", _metres("--resolution", self.resolution))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PredictOptions:
        """Options from keyword values (unknown keys are an error naming the valid ones)."""
        return _from_mapping(cls, values)

    def replace(self, **changes: Any) -> PredictOptions:
        """A copy with ``changes`` (checked again; unknown keys are an error naming the valid ones)."""
        _check_keys(type(self), changes)
        return replace(self, **changes)

    def record(self) -> dict[str, Any]:
        """Plain JSON values for run.json (``resolution`` is recorded with the inputs)."""
        values = asdict(self)
        values.pop("resolution")
        values["overlap"] = None if self.overlap is None else str(self.overlap)
        values["bands"] = None if self.bands is None else ",".join(self.bands)
        return values


@dataclass(frozen=True)
class VectorizeOptions:
    """How a class map becomes polygons: sieve (m²), coverage simplification (m), background ids, precision.

    Example:
        >>> VectorizeOptions(simplify=5, background=[0]).background
        (0,)
    """

    min_area: float | None = None
    simplify: float | None = None
    background: tuple[int, ...] = field(default_factory=tuple)
    precision: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name, unit in (("min_area", "square metres"), ("simplify", "metres")):
            value = getattr(self, name)
            if value is not None:
                number = float(value)
                if not math.isfinite(number) or number < 0:
                    raise OptionError(f"--{name.replace('_', '-')} {value} must be zero or more {unit}")
                set_(self, name, number)
        background = self.background
        if background is None:
            background = ()
        elif isinstance(background, (int, str)):
            background = (background,)
        try:
            set_(self, "background", tuple(int(b) for b in background))
        except (TypeError, ValueError):
            raise OptionError(f"--background {self.background!r}: give class ids, whole numbers such as 0") from None
        if self.precision is not None and not 0 <= int(self.precision) <= 15:
            raise OptionError(f"precision {self.precision} must be between 0 and 15 decimal places")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> VectorizeOptions:
        """Options from keyword values (unknown keys are an error naming the valid ones)."""
        return _from_mapping(cls, values)

    def record(self) -> dict[str, Any]:
        """Plain JSON values for run.json."""
        return {
            "min_area": self.min_area,
            "simplify": self.simplify,
            "background": list(self.background),
            "precision": self.precision,
        }


def _check_keys(cls: Any, values: Mapping[str, Any], *more: Any, extra: tuple[str, ...] = ()) -> None:
    known = {f.name for c in (cls, *more) for f in fields(c)} | set(extra)
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r}: use one of {', '.join(sorted(known))}")


def _from_mapping(cls: Any, values: Mapping[str, Any]) -> Any:
    _check_keys(cls, values)
    return cls(**values)


def parse_preview_bands(value: str | int | Sequence[str | int] | None) -> tuple[str, ...] | None:
    """``--preview-bands`` as items (1-based indexes or band descriptions), checked for what needs no scene: one
    item (grey) or three (red, green, blue), none empty, indexes from 1. Names and ranges are checked per scene.

    Example:
        >>> parse_preview_bands("4, 3,2"), parse_preview_bands(["B08"]), parse_preview_bands(None)
        (('4', '3', '2'), ('B08',), None)
        >>> parse_preview_bands("4,3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: --preview-bands '4,3' names 2 bands: give 1 (shown in grey) or 3 (red, green, blue), ...
    """
    if value is None:
        return None
    raw = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else list(value)
    items = tuple(str(b).strip() for b in raw)
    shown = value if isinstance(value, str) else ",".join(items)
    if len(items) not in (1, 3):
        raise OptionError(
            f"--preview-bands {shown!r} names {len(items)} bands: give 1 (shown in grey) or 3 (red, green, blue), "
            "e.g. 4,3,2 or B04,B03,B02"
        )
    for item in items:
        if not item or item.isdigit() and int(item) < 1:
            raise OptionError(
                f"--preview-bands {shown!r} has the item {item!r}: give 1-based band indexes or band descriptions, "
                "e.g. 4,3,2 or B04,B03,B02"
            )
    return items


@dataclass(frozen=True)
class RunOptions:
    """Everything ``geoseg run`` needs besides paths: how to predict, how to vectorize, the preview's bands.

    ``preview_bands`` (``None``: natural colour picked by band name) are the
    scene bands ``preview.png`` shows, see :func:`parse_preview_bands`.

    Example:
        >>> opts = RunOptions.from_mapping({"chip_size": 256, "min_area": 500, "preview_bands": "B08,B04,B03"})
        >>> opts.predict.chip_size, opts.vectorize.min_area, opts.preview_bands
        (256, 500.0, ('B08', 'B04', 'B03'))
    """

    predict: PredictOptions = field(default_factory=PredictOptions)
    vectorize: VectorizeOptions = field(default_factory=VectorizeOptions)
    preview_bands: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "preview_bands", parse_preview_bands(self.preview_bands))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunOptions:
        """Options from the keyword values of :class:`PredictOptions`, :class:`VectorizeOptions` and ``preview_bands``."""
        return cls().replace(**values)

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` to any part (checked again; unknown keys name the valid ones).

        Example:
            >>> RunOptions().replace(min_area=100, tta=True).predict.tta
            True
        """
        own = {"preview_bands"}
        _check_keys(PredictOptions, changes, VectorizeOptions, extra=tuple(own))
        polygon_keys = {f.name for f in fields(VectorizeOptions)}
        return RunOptions(
            replace(self.predict, **{k: v for k, v in changes.items() if k not in polygon_keys | own}),
            replace(self.vectorize, **{k: v for k, v in changes.items() if k in polygon_keys}),
            changes.get("preview_bands", self.preview_bands),
        )

    def record(self) -> dict[str, Any]:
        """Plain JSON values for run.json (predict options, those of the polygons, the preview's bands)."""
        preview = None if self.preview_bands is None else ",".join(self.preview_bands)
        return self.predict.record() | self.vectorize.record() | {"preview_bands": preview}
