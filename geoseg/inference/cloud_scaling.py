"""Reflectance for the cloud model: how a scene's values become top-of-atmosphere or surface reflectance.

:func:`guess_scaling` reads the sensor and processing level from band names,
file names and tags (:func:`geoseg.core.sensors.guess_sensor`); a
:class:`Scaling` can also be given.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoseg.core.errors import InputError, OptionError
from geoseg.core.sensors import guess_sensor

__all__ = ["Scaling", "guess_scaling"]


@dataclass(frozen=True)
class Scaling:
    """Reflectance = ``value * scale + offset``; ``level`` l1c (top of atmosphere) or l2a (surface) picks the model.

    Example:
        >>> Scaling(1e-4, level="l2a").offset
        0.0
    """

    scale: float
    offset: float = 0.0
    level: str = "l1c"
    reason: str = "given"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0 and math.isfinite(self.offset)):
            raise OptionError(f"cloud scaling {self.scale} x + {self.offset}: give a finite scale > 0 and a finite offset")
        if self.level not in ("l1c", "l2a"):
            raise OptionError(f"cloud model level {self.level!r} must be l1c or l2a")


def guess_scaling(ds: Any) -> Scaling:
    """The reflectance scaling of an open scene from its data type, band names, sensor and file names: float scenes
    as reflectance; Sentinel-2 DN / 10000 (- 0.1 from processing baseline 04.00 on, read from the product name's
    ``N0400`` token, else from a sensing date from 25 Jan 2022: :func:`_sentinel2`); Landsat
    C2 Level-2 (``SR_B*``) DN * 2.75e-5 - 0.2; Landsat 8/9 Level-1 DN * 2e-5 - 0.1 (no sun-elevation correction);
    other 16-bit scenes reflectance x 10000. 8-bit scenes and Landsat 4-7 Level-1 DN are refused.

    Example:
        >>> with open_scene("data_samples/brandenburg_s2_512.tif") as ds:  # doctest: +SKIP
        ...     guess_scaling(ds)
        Scaling(scale=0.0001, offset=0.0, level='l1c', reason='Sentinel-2 DN / 10000')
    """
    text = " ".join([str(ds.name), *ds.files[:40], *(f"{k}={v}" for k, v in ds.tags().items())])
    names = [d or "" for d in ds.descriptions]
    sensor = guess_sensor(names, text)
    surface = bool(re.search(r"L2A|L2SP|\bSR_", text, re.IGNORECASE)) or any(n.upper().startswith("SR_") for n in names)
    level = "l2a" if surface else "l1c"
    kind = np.dtype(ds.dtypes[0]).kind
    if kind == "f":
        return Scaling(1.0, 0.0, level, "float scene taken as reflectance 0-1")
    if sensor in ("landsat_oli", "landsat_tm") and surface:
        return Scaling(2.75e-5, -0.2, "l2a", "Landsat Collection 2 Level-2: DN * 2.75e-5 - 0.2")
    if sensor == "landsat_oli":
        return Scaling(2e-5, -0.1, "l1c", "Landsat 8/9 Collection 2 Level-1: DN * 2e-5 - 0.1 (no sun-elevation correction)")
    if sensor == "landsat_tm" or np.dtype(ds.dtypes[0]).itemsize < 2:
        what = "Landsat 4-7 Level-1 DN" if sensor == "landsat_tm" else f"{ds.dtypes[0]} values"
        fix = "give a reflectance scene (float 0-1, or Sentinel-2 / Landsat 8-9 DN with band or file names)"
        raise InputError(f"{ds.name}: the cloud mask cannot tell the reflectance of {what}: {fix}")
    if sensor == "sentinel2":
        return _sentinel2(text, level)
    return Scaling(1e-4, 0.0, level, "assumed reflectance x 10000 (sensor unknown)")


OFFSET_BASELINE = "0400"
"""Sentinel-2 processing baseline 04.00 and later add 1000 to every DN (``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET``)."""
OFFSET_DATE = "20220125"
"""The first sensing day processed at baseline 04.00: the guess for names without a baseline."""


def _sentinel2(text: str, level: str) -> Scaling:
    """Sentinel-2 DN / 10000, less 0.1 from processing baseline 04.00 on: read from the product name's ``N0400``
    token (or a ``PROCESSING_BASELINE=04.00`` tag), else guessed from the sensing date (reprocessed archive
    products carry a baseline of N0500 or later with an earlier date, and the offset).

    Example:
        >>> _sentinel2("S2A_MSIL1C_20170216T101031_N0500_R022_T33UUU_20230510T122214.tif", "l1c").offset
        -0.1
        >>> _sentinel2("S2A_MSIL1C_20170216T101031_N0204_R022_T33UUU_20170216T101031.tif", "l1c").offset
        0.0
    """
    tokens = re.findall(r"\d{8}T\d{6}_N(\d{4})(?!\d)", text) + [
        a + b for a, b in re.findall(r"PROCESSING_BASELINE=(\d{2})\.(\d{2})", text, re.IGNORECASE)
    ]
    if tokens:
        baseline = min(tokens)
        if baseline >= OFFSET_BASELINE:
            return Scaling(1e-4, -0.1, level, f"Sentinel-2 (DN - 1000) / 10000, processing baseline N{baseline}")
        return Scaling(1e-4, 0.0, level, f"Sentinel-2 DN / 10000, processing baseline N{baseline}")
    dates = re.findall(r"(20\d{6})T\d{6}", text)
    if dates and min(dates) >= OFFSET_DATE:
        return Scaling(1e-4, -0.1, level, "Sentinel-2 (DN - 1000) / 10000, processing baseline 04.00 (by sensing date)")
    return Scaling(1e-4, 0.0, level, "Sentinel-2 DN / 10000")
