"""Checks before and during prediction: outputs, block columns, area of interest, pixel size, radiometry, domain.

Each warning is logged once and kept in the result's ``warnings`` (run.json).
"""

from __future__ import annotations

import logging
import math
import os
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.errors import InputError, OptionError, OutputError, first_few
from geoseg.io.paths import SIDECARS, canonical, check_output, is_pattern
from geoseg.io.pixels import pixel_sizes_m, shown_sizes, sizes_within
from geoseg.model.card import ModelCard

__all__ = [
    "MAX_UPSAMPLE",
    "PIXEL_SIZE_TOLERANCE",
    "DomainCheck",
    "Radiometry",
    "check_columns",
    "check_not_pattern",
    "check_outputs",
    "check_pixel_size",
    "check_scene_files",
    "warn",
    "warn_all_nodata",
]

log = logging.getLogger("geoseg")


def warn(warnings: list[str], message: str) -> None:
    """Log ``message`` as a warning and keep it in ``warnings``.

    Example:
        >>> kept = []
        >>> warn(kept, "scene.tif: pixel size differs")
        >>> kept
        ['scene.tif: pixel size differs']
    """
    log.warning(message)
    warnings.append(message)


RASTER_SUFFIXES = (".tif", ".tiff")
"""What predict's outputs may be called: they are cloud-optimized GeoTIFFs whatever the name says."""


def _option(kind: str) -> str:
    return "-o/--output" if kind == "classes" else f"--{kind}"


def check_outputs(outputs: dict[str, Path], inputs: list[Any], overwrite: bool, scene: Any = None) -> None:
    """Each output may be written (see :func:`geoseg.io.paths.check_output`; GDAL's sidecars of it only with
    ``overwrite``), ends in .tif, names a different file and none that ``scene`` is made of
    (:func:`check_scene_files`).

    Example:
        >>> check_outputs({"classes": Path("a.tif"), "confidence": Path("a.tif")}, [], True)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: -o/--output and --confidence name the same file a.tif: give different paths
        >>> check_outputs({"classes": Path("a.png")}, [], True)
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OptionError: -o/--output a.png: geoseg writes GeoTIFF files: give a name ending in .tif
    """
    if scene is not None:  # a VRT's sources, a band folder's files: never replaced, --overwrite or not
        check_scene_files(outputs, scene)
    seen: dict[str, str] = {}
    for kind, path in outputs.items():
        if Path(path).suffix.lower() not in RASTER_SUFFIXES:
            raise OptionError(f"{_option(kind)} {path}: geoseg writes GeoTIFF files: give a name ending in .tif")
        check_output(path, inputs, overwrite)
        for suffix in SIDECARS:  # GDAL and QGIS would read them with the new map: removed with it, checked like it
            check_output(f"{path}{suffix}", inputs, overwrite)
        key = unicodedata.normalize("NFC", str(canonical(path))).casefold()  # one file on macOS's and Windows' disks
        if key in seen:
            raise OptionError(f"{_option(seen[key])} and {_option(kind)} name the same file {path}: give different paths")
        seen[key] = kind


def check_scene_files(outputs: dict[str, Path], scene: str | os.PathLike[str]) -> None:
    """Refuse outputs that would replace a file ``scene`` is made of (:func:`geoseg.io.scene_files.scene_files`: a
    VRT's sources, a band folder's, band list's or STAC item's band files, and the ``.aux.xml`` and ``.msk`` beside
    them), ``overwrite`` or not, and a scene whose source file is missing (its pixels would not read).

    The scene itself is an input :func:`check_outputs` compares.

    Example:
        >>> check_scene_files({"classes": Path("tiles/a.tif")}, "mosaic.vrt")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OutputError: -o/--output tiles/a.tif would replace tiles/a.tif, a file of the scene mosaic.vrt: ...
    """
    from geoseg.io.scene_files import file_id, scene_files

    check_not_pattern(scene)
    files = scene_files(scene)
    ids = {file_id(f): f for f in [*files, *(f"{f}{suffix}" for f in files for suffix in SIDECARS)]}
    ids.pop(None, None)
    for kind, path in outputs.items():
        for target in (path, *(Path(f"{path}{suffix}") for suffix in SIDECARS)):
            hit = ids.get(file_id(target))
            if hit is not None:
                raise OutputError(
                    f"{_option(kind)} {path} would replace {hit}, a file of the scene {scene}: choose another output path"
                )
    missing = next((f for f in files if not os.path.lexists(f)), None)
    if missing is not None:
        raise InputError(
            f"a source file of {scene} is missing: {missing}; restore it, or build {Path(scene).name} again from files that exist"
        )


def check_not_pattern(scene: str | os.PathLike[str]) -> None:
    """Refuse a scene that does not exist but is a glob pattern matching files (``'in/*.tif'``, quoted so the shell
    left it): one scene is predicted at a time; ``geoseg run`` takes a pattern and predicts each file it matches.

    Example:
        >>> check_not_pattern("data_samples/brandenburg_s2*.tif")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: scene data_samples/brandenburg_s2*.tif does not exist: it is a pattern matching 2 ...
    """
    import glob
    import shlex

    text = os.fspath(scene)
    if not is_pattern(text):
        return
    matches = sorted(glob.glob(text, recursive=True))
    if matches:
        shown = first_few(matches, 2)
        raise InputError(
            f"scene {text} does not exist: it is a pattern matching {len(matches)} file(s) ({shown}); predict takes one "
            f"scene: give one of them, or predict each with geoseg run {shlex.quote(text)} -o OUTDIR -m MODEL "
            "(one folder per scene)"
        )


def check_columns(columns: tuple[int, int] | None, ds: Any) -> tuple[int, int]:
    """The scene columns ``[x0, x1)`` to predict: all of them, or ``columns`` when they lie inside the scene."""
    if columns is None:
        return 0, int(ds.width)
    x0, x1 = (int(v) for v in columns)
    if not 0 <= x0 < x1 <= ds.width:
        raise InputError(f"columns {x0}:{x1} are not inside {ds.name} (0:{ds.width}): give 0 <= x0 < x1 <= width")
    return x0, x1


def warn_all_nodata(name: str, warnings: list[str]) -> None:
    """Say (once) that a scene is nodata everywhere: not an error, its outputs are all nodata."""
    warn(
        warnings,
        f"{name}: every pixel is nodata (or outside the area of interest); the outputs are all nodata and the "
        "polygon layers empty",
    )


PIXEL_SIZE_TOLERANCE = 0.25
"""A scene whose pixel size differs from the model's by more than this share is resampled (``--resample auto``)."""
MAX_UPSAMPLE = 4.0
"""``--resample auto`` predicts a scene whose pixels are more than this many times the model's on its own pixels
(read at the model's size it would mean 16x the chips and more, for no new detail), with a warning."""


def check_pixel_size(
    ds: Any, model_size: float | None, warnings: list[str], resample: str = "off", output_grid: str = "scene"
) -> bool:
    """True when chips are to be read at the model's pixel size: the scene's differs from ``model_size`` by more than
    25% and ``resample`` is ``auto``. Either way such a scene gets one warning line (its map may be wrong).

    Example:
        >>> check_pixel_size(ds, 10.0, [], "auto")  # a 20 m scene  # doctest: +SKIP
        True
    """
    if not model_size:
        return False
    sizes = pixel_sizes_m(ds)  # once: a Mercator scene's are computed with pyproj
    if sizes_within(sizes, model_size, PIXEL_SIZE_TOLERANCE):
        return False
    differs = f"{ds.name}: pixel size {shown_sizes(sizes)} differs from the model's {model_size:.3g} m by more than 25%"
    if resample == "off":
        warn(warnings, f"{differs}; results may be poor (resample the scene to {model_size:.3g} m, or --resample auto)")
        return False
    coarser = max(sizes) / model_size
    if coarser > MAX_UPSAMPLE:  # each chip would see a fraction of a pixel: hours of work on no new detail
        warn(
            warnings,
            f"{differs}: it is {coarser:.0f}x coarser, and read at the model's size it would be predicted on about "
            f"{round(coarser**2)}x its pixels, so it was predicted on its own pixels; results may be poor "
            f"(give a scene nearer {model_size:.3g} m)",
        )
        return False
    where = "the scene's grid" if output_grid == "scene" else f"the model's {model_size:.3g} m grid"
    warn(
        warnings,
        f"{differs}: chips were read resampled to {model_size:.3g} m and the outputs written on {where}; "
        "check the map, detail finer than the coarser of the two pixel sizes is lost",
    )
    return True


class Radiometry:
    """Compares the first chips' band means with the model's normalization (warns once).

    Example:
        >>> from geoseg.core.classes import ClassInfo
        >>> card = ModelCard("unet", "resnet18", ["B1"], [ClassInfo(0, "a", "#000000")], mean=[10.0], std=[1.0])
        >>> kept = []
        >>> r = Radiometry(card, kept, "scene.tif")
        >>> r.observe(np.full((1, 4, 4), 50.0), np.ones((4, 4), bool))
        >>> r.check()
        >>> kept[0].startswith("scene.tif: band statistics far outside")
        True
    """

    def __init__(self, card: ModelCard, warnings: list[str], name: str) -> None:
        self.card, self.warnings, self.name = card, warnings, name
        self.sums: np.ndarray | None = None
        self.count = 0
        self.done = card.mean is None

    def observe(self, data: np.ndarray, valid: np.ndarray) -> None:
        """Add a chip's valid pixels ``(C, H, W)``; checks once four chips' worth are in."""
        if self.done or not valid.any():
            return
        sums = data[:, valid].sum(axis=1, dtype=np.float64)
        self.sums = sums if self.sums is None else self.sums + sums
        self.count += int(valid.sum())
        if self.count >= 4 * 256 * 256:
            self.check()

    def check(self) -> None:
        """Warn when a band's mean lies more than three standard deviations from the model's."""
        if self.done or not self.count or self.sums is None:
            return
        self.done = True
        means = self.sums / self.count
        mean, std = np.asarray(self.card.mean), np.asarray(self.card.std)
        far = np.abs(means - mean) > 3 * std
        if far.any():
            bad = ", ".join(
                f"{b} mean {m:.4g} (model {mu:.4g} ± {s:.3g})"
                for b, m, mu, s, f in zip(self.card.bands, means, mean, std, far)
                if f
            )
            warn(
                self.warnings,
                f"{self.name}: band statistics far outside the model's normalization: {bad}; "
                "check the bands' order, scaling and units",
            )


DOMAIN_BAND_SHARE = 0.25
"""Share of the bands (at least one) whose scene median must lie outside the training 1-99 percentile range before
the scene counts as out of domain: one odd band can be a calibration quirk; several point to another sensor,
processing level, season or unit."""
DOMAIN_CONFIDENCE_DROP = 0.15
"""How far (in probability) the scene's mean confidence may fall below the validation-time mean before a warning:
stitching blends overlapping chips (a few points lower than one chip) and scenes vary, but 0.15 lower means the
model is unsure on much of the scene."""
DOMAIN_STEP = 8
"""Every DOMAIN_STEP-th pixel across and down of each chip read (and of each stitched row) is sampled."""
DOMAIN_SAMPLE = 1 << 17
"""Most pixels kept for the scene's band medians; past it every other one is dropped and the step doubled."""
DOMAIN_MIN_PIXELS = 1000
"""Fewer sampled pixels than this are too few to judge a scene by."""


class DomainCheck:
    """Compares a scene with the model's training domain (``card.domain``): band medians and mean confidence.

    Example:
        >>> from geoseg.core.classes import ClassInfo
        >>> card = ModelCard("unet", "resnet18", ["B1", "B2"], [ClassInfo(0, "a", "#000000"), ClassInfo(1, "b", "#ffffff")])
        >>> card.provenance["domain"] = {"percentiles": {"p1": [0, 0], "p99": [10, 10]}, "validation_confidence": 0.9}
        >>> kept = []
        >>> check = DomainCheck(card, kept, "scene.tif")
        >>> check.observe(np.full((2, 512, 512), 30.0), np.ones((512, 512), bool))
        >>> check.rows(np.full((2, 512, 512), 0.5, np.float32), np.ones((512, 512), bool))
        >>> check.check()
        >>> kept[0].startswith("scene.tif: outside the model's training domain (band medians outside")
        True
        >>> check.figures["confidence"], check.figures["bands_outside"]
        (0.5, ['B1', 'B2'])
    """

    def __init__(self, card: ModelCard, warnings: list[str], name: str) -> None:
        domain = card.domain or {}
        percentiles = domain.get("percentiles") or {}
        self.low, self.high = percentiles.get("p1"), percentiles.get("p99")
        self.reference = domain.get("validation_confidence")
        self.bands, self.warnings, self.name = card.bands, warnings, name
        self.parts: list[np.ndarray] = []
        self.kept, self.step = 0, DOMAIN_STEP
        self.conf, self.count = 0.0, 0
        self.done = not domain
        self.figures: dict[str, Any] = {}

    def observe(self, data: np.ndarray, valid: np.ndarray) -> None:
        """Keep a sample of a chip's valid pixels ``(C, H, W)`` for the band medians."""
        if self.done or self.low is None or self.high is None:
            return
        part = data[:, :: self.step, :: self.step][:, valid[:: self.step, :: self.step]]
        self.parts.append(part.astype(np.float32))
        self.kept += part.shape[1]
        if self.kept > DOMAIN_SAMPLE:  # keep memory bounded on large scenes; the sample stays spread over the scene
            self.parts = [np.concatenate(self.parts, axis=1)[:, ::2]]
            self.kept, self.step = self.parts[0].shape[1], self.step * 2

    def rows(self, probs: np.ndarray, valid: np.ndarray, step: int = DOMAIN_STEP) -> None:
        """Add stitched rows' winning probabilities ``(K, h, w)`` on their valid pixels to the mean confidence.

        Every ``step``-th pixel counts (1: the rows are a sample already, as the GPU path hands over).
        """
        if self.done or self.reference is None:
            return
        s = step
        with np.errstate(invalid="ignore"):
            top = probs[:, ::s, ::s].max(axis=0)[valid[::s, ::s]]
        top = top[np.isfinite(top)]
        self.conf += float(top.sum(dtype=np.float64))
        self.count += int(top.size)

    def check(self) -> None:
        """Warn once, in one line, when the band medians or the mean confidence leave the training domain."""
        if self.done:
            return
        self.done = True
        reasons = []
        if self.kept >= DOMAIN_MIN_PIXELS and self.low is not None and self.high is not None:
            median = np.median(np.concatenate(self.parts, axis=1), axis=1)
            low, high = np.asarray(self.low), np.asarray(self.high)
            out = (median < low) | (median > high)
            self.figures["median"] = [round(float(v), 4) for v in median]
            self.figures["bands_outside"] = [b for b, o in zip(self.bands, out) if o]
            if out.sum() >= max(1, math.ceil(DOMAIN_BAND_SHARE * len(out))):
                parts = [
                    f"{b} {m:.4g} (training {lo:.4g}-{hi:.4g})"
                    for b, m, lo, hi, o in zip(self.bands, median, low, high, out)
                    if o
                ]
                shown = ", ".join(parts[:3]) + (f" and {len(parts) - 3} more" if len(parts) > 3 else "")
                reasons.append(
                    f"band medians outside the training 1-99 percentiles in {int(out.sum())} of {len(out)} bands: {shown}"
                )
        if self.count >= DOMAIN_MIN_PIXELS and self.reference is not None:
            mean = self.conf / self.count
            self.figures["confidence"] = round(mean, 4)
            if mean < self.reference - DOMAIN_CONFIDENCE_DROP:
                reasons.append(f"mean confidence {mean:.2f}, validation {self.reference:.2f}")
        self.parts = []
        if reasons:
            fix = "the map may be confidently wrong (see geoseg info MODEL for where the model was trained)"
            warn(self.warnings, f"{self.name}: outside the model's training domain ({'; '.join(reasons)}); {fix}")
