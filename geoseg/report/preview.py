"""Quicklook: the scene in natural colour beside the class map, with a legend (``preview.png``).

The scene's bands are picked by name: ``red``/``green``/``blue`` descriptions,
Sentinel-2's ``B04``/``B03``/``B02`` (or ``B4``/``B3``/``B2``), Landsat's
numbering by sensor (Landsat 8/9 OLI ``B4``/``B3``/``B2`` or ``SR_B4``...;
Landsat 4-7 TM/ETM+ ``B3``/``B2``/``B1`` or ``SR_B3``...), then by colour
interpretation; otherwise the first three bands (one band: grey), and the log
says so. ``--preview-bands`` picks them by hand.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.bands import colour_name, parse_requested
from geoseg.core.classes import NODATA, ClassInfo
from geoseg.core.errors import OptionError

__all__ = ["PreviewBands", "choose_bands", "landsat_sensor", "rgb_bands", "save_figure", "scene_preview_bands", "write_preview"]

MAX_SIDE = 1024
log = logging.getLogger("geoseg")

_TM = "Landsat 4-7 TM/ETM+"
_OLI = "Landsat 8/9 OLI"
# (red, green, blue) spellings (lower case) of each naming; the first that a scene has all three of wins
_COMMON = (("red", "r"), ("green", "g"), ("blue", "b"))
_TM_NAMES = (("sr_b3", "b3"), ("sr_b2", "b2"), ("sr_b1", "b1"))
_B432 = (("b04", "b4", "sr_b4"), ("b03", "b3", "sr_b3"), ("b02", "b2", "sr_b2"))
_SENSOR_TAGS = ("spacecraft_id", "spacecraft", "satellite", "platform", "sensor_id", "sensor", "mission")
_TM_TEXT = re.compile(r"\bL[TE]0?[457](\b|_)|LANDSAT[_ -]?[457]\b|\bETM\+?(\b|$)|\bTM\b", re.IGNORECASE)
_OLI_TEXT = re.compile(r"\bL[CO]0?[89](\b|_)|LANDSAT[_ -]?[89]\b|\bOLI(_TIRS)?\b", re.IGNORECASE)
_BAND_NUMBER = re.compile(r"^(?:sr_)?b(\d{1,2})$")


@dataclass(frozen=True)
class PreviewBands:
    """The 1-based scene bands a quicklook shows as red, green and blue (the same band three times: grey).

    ``label`` names them for the picture's title; ``reason`` says how they were picked.
    """

    indexes: tuple[int, int, int]
    label: str
    reason: str

    @property
    def grey(self) -> bool:
        """One band shown in grey."""
        return len(set(self.indexes)) == 1


def landsat_sensor(names: Sequence[str], text: str = "") -> str | None:
    """``"Landsat 4-7 TM/ETM+"`` or ``"Landsat 8/9 OLI"`` when metadata ``text`` (sensor tags, the file name) or
    the band set says so, else ``None``. Only TM/ETM+ changes which bands are red, green and blue.

    The band set says TM/ETM+ when it has a band-6 thermal band (``ST_B6``,
    ``B6_VCID_1``) or the reflective bands 1-5 and 7 without 6 (band 6 is
    thermal there, a shortwave infrared band on OLI); OLI when it has
    ``SR_B6``, ``ST_B10``, ``B9``, ``B10`` or ``B11`` without Sentinel-2's ``B8A``/``B12``.

    Example:
        >>> landsat_sensor(["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"])
        'Landsat 4-7 TM/ETM+'
        >>> landsat_sensor(["B2", "B3", "B4"], "LC08_L2SP_193023_20200601_stack.tif"), landsat_sensor(["B2", "B3", "B4"])
        ('Landsat 8/9 OLI', None)
    """
    if _TM_TEXT.search(text):
        return _TM
    if _OLI_TEXT.search(text):
        return _OLI
    lower = {n.lower() for n in names}
    numbers = {int(m.group(1)) for m in map(_BAND_NUMBER.match, lower) if m}
    if lower & {"st_b6", "b6_vcid_1", "b6_vcid_2"} or ({1, 2, 3, 4, 5, 7} <= numbers and 6 not in numbers):
        return _TM
    if lower & {"sr_b6", "st_b10", "b9", "b10", "b11"} and not lower & {"b8a", "b12", "b08a"}:
        return _OLI
    return None


def _naming(lower: set[str], sensor: str | None) -> str:
    if sensor:
        return f"{sensor} band names"
    if lower & {"b02", "b03", "b04", "b8a", "b12"}:
        return "Sentinel-2 band names"
    if any(n.startswith("sr_") for n in lower):
        return f"{_OLI} band names (assumed: nothing tells the Landsat sensor)"
    return "Sentinel-2 / Landsat 8-9 band numbering"


def _rgb(indexes: Sequence[int]) -> tuple[int, int, int]:
    """Three bands: red, green, blue (one band: itself three times, grey)."""
    a, b, c = list(indexes) * 3 if len(indexes) == 1 else indexes
    return a, b, c


def _described(indexes: Sequence[int], descriptions: Sequence[str | None]) -> str:
    names = [str(descriptions[i - 1] or f"band {i}") if i <= len(descriptions) else f"band {i}" for i in indexes]
    return ", ".join(dict.fromkeys(names)) if len(set(indexes)) == 1 else ", ".join(names)


def _by_name(descriptions: Sequence[str | None], sensor: str | None) -> tuple[list[int], str] | None:
    lookup: dict[str, int] = {}
    for i, d in enumerate(descriptions):
        lookup.setdefault((d or "").strip().lower(), i + 1)
    lower = set(lookup) - {""}
    for spellings, why in (
        (_COMMON, "band names red, green, blue"),
        (_TM_NAMES if sensor == _TM else _B432, _naming(lower, sensor)),
    ):
        picked = [next((lookup[n] for n in names if n in lookup), None) for names in spellings]
        if all(picked):
            return [int(i) for i in picked if i], why
    return None


def choose_bands(
    descriptions: Sequence[str | None],
    colorinterp: Sequence[object] = (),
    requested: str | Sequence[str | int] | None = None,
    metadata: str = "",
) -> PreviewBands:
    """The bands of a natural-colour quicklook: ``requested`` (``--preview-bands``: 1 or 3 indexes or
    descriptions), else red/green/blue by band name (``metadata``: sensor tags and the file name, for
    Landsat's numbering), else by colour interpretation, else the first three bands (one band: grey).

    Example:
        >>> choose_bands(["B02", "B03", "B04", "B08"]).indexes
        (3, 2, 1)
        >>> choose_bands(["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"]).label
        'SR_B3, SR_B2, SR_B1'
        >>> choose_bands([None, None], ["gray", "undefined"]).reason
        'no red, green and blue bands found by band name or colour interpretation: band 1 in grey'
        >>> choose_bands(["B02", "B03", "B04", "B08"], requested="B08").indexes
        (4, 4, 4)
    """
    count = len(descriptions)
    if requested is not None and requested != "":
        indexes = parse_requested(requested, descriptions, count, option="--preview-bands")
        if len(indexes) not in (1, 3):
            raise OptionError(
                f"--preview-bands gives {len(indexes)} bands: give 1 (shown in grey) or 3 (red, green, blue), e.g. 4,3,2"
            )
        return PreviewBands(_rgb(indexes), _described(indexes, descriptions), "as --preview-bands asks")
    found = _by_name(descriptions, landsat_sensor([d for d in descriptions if d], metadata))
    if found:
        return PreviewBands(_rgb(found[0]), _described(found[0], descriptions), found[1])
    interp = {colour_name(c): i + 1 for i, c in reversed(list(enumerate(colorinterp)))}
    if all(c in interp for c in ("red", "green", "blue")):
        rgb = (interp["red"], interp["green"], interp["blue"])
        return PreviewBands(rgb, _described(rgb, descriptions), "colour interpretation red, green, blue")
    fallback = "no red, green and blue bands found by band name or colour interpretation"
    if count >= 3:
        return PreviewBands((1, 2, 3), _described((1, 2, 3), descriptions), f"{fallback}: the first three bands")
    return PreviewBands((1, 1, 1), _described((1,), descriptions), f"{fallback}: band 1 in grey")


def rgb_bands(descriptions: Sequence[str | None], count: int) -> list[int]:
    """1-based bands of a natural-colour quicklook by band name (see :func:`choose_bands`), else the first three.

    Example:
        >>> rgb_bands(("B02", "B03", "B04", "B08"), 4), rgb_bands((None,), 1)
        ([3, 2, 1], [1, 1, 1])
    """
    described = list(descriptions) + [None] * (count - len(descriptions))
    return list(choose_bands(described[:count]).indexes)


def _sensor_text(scene: str | os.PathLike, tags: Mapping[str, str]) -> str:
    """The dataset's sensor tags and the scene's file name: what tells Landsat 4-7 from Landsat 8/9."""
    values = [v for k, v in tags.items() if k.lower() in _SENSOR_TAGS]
    return " ".join([*values, Path(str(scene)).name])


def scene_preview_bands(scene: str | os.PathLike, requested: str | Sequence[str | int] | None = None) -> PreviewBands:
    """:func:`choose_bands` for the scene file ``scene`` (reads its header only); a bad ``requested`` is an
    :class:`~geoseg.core.errors.InputError` naming the value and the scene's bands.

    Example:
        >>> scene_preview_bands("data_samples/brandenburg_s2_512.tif").label
        'B04, B03, B02'
    """
    from geoseg.io.raster import gdal_env, open_scene

    with gdal_env(), open_scene(scene, require_georef=False) as ds:
        return choose_bands(ds.descriptions, ds.colorinterp, requested, _sensor_text(scene, ds.tags()))


def _stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(rgb.shape[1:] + (4,), dtype=np.float32)
    for i, band in enumerate(rgb):
        values = band[valid & np.isfinite(band)]
        lo, hi = np.percentile(values, (2, 98)) if values.size else (0.0, 1.0)
        out[..., i] = np.clip((band - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    out[..., 3] = valid
    return out


def write_preview(
    scene: str | os.PathLike,
    classes: str | os.PathLike,
    table: Sequence[ClassInfo],
    output: Path,
    title: str = "",
    bands: PreviewBands | None = None,
) -> Path:
    """Write a PNG with the scene (2–98% stretch) and the class map side by side, decimated to ~1024 px.

    ``bands`` (default: :func:`scene_preview_bands`) are the scene bands shown as red, green and blue; one
    log line (INFO) says which and why.

    Example:
        >>> write_preview("scene.tif", "out/classes.tif", card.classes, Path("out/preview.png"))  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from geoseg.core.grid import north_up_flips
    from geoseg.io.raster import gdal_env, open_scene

    bands = bands or scene_preview_bands(scene)
    log.info("preview.png shows %s as red, green, blue (%s)", bands.label, bands.reason)
    with gdal_env():
        with open_scene(scene) as ds:
            scale = max(ds.width, ds.height) / MAX_SIDE
            shape = (max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
            rgb = ds.read(list(bands.indexes), out_shape=(3, *shape), out_dtype="float32")
            valid = ds.dataset_mask(out_shape=shape) > 0
            flips = north_up_flips(ds.transform)  # shown north up
        with open_scene(classes) as ds:
            cls = ds.read(1, out_shape=shape)
        rgb, valid, cls = (np.flip(a, flips) for a in (rgb, valid, cls))
    colours = np.zeros((NODATA + 1, 4))
    for c in table:
        colours[c.id] = (*(v / 255 for v in c.rgb), 1.0)
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.2), dpi=100, constrained_layout=True)
    axes[0].imshow(_stretch(rgb, valid), interpolation="nearest")
    axes[0].set_title(f"scene ({bands.label}{', grey' if bands.grey else ''})")
    axes[1].imshow(cls, cmap=ListedColormap(colours), vmin=0, vmax=NODATA, interpolation="nearest")
    axes[1].set_title("classes")
    for ax in axes:
        ax.set_axis_off()
    present = set(np.unique(cls).tolist())
    handles = [Patch(color=colours[c.id][:3], label=c.name) for c in table if c.id in present]
    return save_figure(fig, output, handles, title, columns=6)


def save_figure(fig: Any, output: Path, handles: list[Any], title: str = "", columns: int = 6) -> Path:
    """Add the legend (``handles``, up to ``columns`` a row) and ``title`` to a quicklook figure, save it as PNG, close it.

    Example:
        >>> save_figure(fig, Path("preview.png"), handles, "scene.tif")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), columns), frameon=False)
    if title:
        fig.suptitle(title)
    fig.savefig(output)
    plt.close(fig)
    return output
