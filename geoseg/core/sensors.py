"""Band names across sensors: Sentinel-2 MSI, Landsat 4-9 and the common names that join them.

Each sensor's bands are one entry in :data:`SENSORS` (a band name and its
STAC ``eo`` common name: ``coastal``, ``blue``, ``green``, ``red``,
``rededge1``-``3``, ``nir``, ``nir08``, ``nir09``, ``cirrus``, ``swir16``,
``swir22``, ``pan``, ``lwir``, ``lwir11``, ``lwir12``). A band name alone is
not always enough: Landsat's ``B2`` is blue on OLI and green on TM, so the
sensor is guessed from the set of names and any text that names it
(:func:`guess_sensor`). Bands that geoseg assembles are described
``NAME (common)`` (``SR_B4 (red)``), which carries the common name with the
band wherever the description goes (model cards included).

Example:
    >>> common_name("B08"), common_name("SR_B5", "landsat_oli"), common_name("SR_B5 (nir08)")
    ('nir', 'nir08', 'nir08')
    >>> guess_sensor(["SR_B1", "SR_B2", "SR_B3"], "LT05_L2SP_193023_20100601_SR_B1.TIF")
    'landsat_tm'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "COMMON_NAMES",
    "SENSORS",
    "Sensor",
    "bare_name",
    "band_number",
    "canonical_name",
    "common_name",
    "common_names",
    "describe",
    "guess_date",
    "guess_sensor",
    "is_common_name",
    "near_common_names",
]

COMMON_NAMES = (
    "coastal",
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "nir08",
    "nir09",
    "cirrus",
    "swir16",
    "swir22",
    "pan",
    "lwir",
    "lwir11",
    "lwir12",
)
"""Common band names (STAC ``eo``), in order of wavelength; assembled bands without a band number sort by it."""

_ALIASES = {"rededge071": "rededge1", "rededge075": "rededge2", "rededge078": "rededge3", "panchromatic": "pan"}
"""Other spellings of common names (STAC ``eo`` 1.1's red-edge names)."""

_NEAR = {"nir": ("nir08",), "nir08": ("nir",), "lwir": ("lwir11",), "lwir11": ("lwir",)}
"""Common names close enough to stand in for each other across sensors (broad and narrow NIR, one thermal band)."""


@dataclass(frozen=True)
class Sensor:
    """One sensor's band naming: canonical band names to common names, and how to tell it apart."""

    key: str
    label: str
    bands: dict[str, str]
    padded: bool = False  # Sentinel-2 writes B02, Landsat B2


SENSORS: dict[str, Sensor] = {
    s.key: s
    for s in (
        Sensor(
            "sentinel2",
            "Sentinel-2 MSI",
            {
                "B01": "coastal",
                "B02": "blue",
                "B03": "green",
                "B04": "red",
                "B05": "rededge1",
                "B06": "rededge2",
                "B07": "rededge3",
                "B08": "nir",
                "B8A": "nir08",
                "B09": "nir09",
                "B10": "cirrus",
                "B11": "swir16",
                "B12": "swir22",
            },
            padded=True,
        ),
        Sensor(
            "landsat_oli",
            "Landsat 8/9 OLI/TIRS",
            {
                "B1": "coastal",
                "B2": "blue",
                "B3": "green",
                "B4": "red",
                "B5": "nir08",
                "B6": "swir16",
                "B7": "swir22",
                "B8": "pan",
                "B9": "cirrus",
                "B10": "lwir11",
                "B11": "lwir12",
            },
        ),
        Sensor(
            "landsat_tm",
            "Landsat 4-7 TM/ETM+",
            {"B1": "blue", "B2": "green", "B3": "red", "B4": "nir08", "B5": "swir16", "B6": "lwir", "B7": "swir22", "B8": "pan"},
        ),
    )
}
"""The sensors geoseg knows by band name; a new sensor is one entry (and, if needed, one pattern in ``_TEXT``)."""

_TEXT = (
    ("landsat_tm", re.compile(r"\bL[TE]0?[457](\b|_)|LANDSAT[_ -]?[457]\b|\bETM\+?(\b|$)|\bTM\b", re.IGNORECASE)),
    ("landsat_oli", re.compile(r"\bL[CO]0?[89](\b|_)|LANDSAT[_ -]?[89]\b|\bOLI(_TIRS)?\b", re.IGNORECASE)),
    ("sentinel2", re.compile(r"\bS2[ABC]?(\b|_)|SENTINEL[_ -]?2|\bMSIL[12][AC]\b|(^|_)T\d{2}[A-Z]{3}_", re.IGNORECASE)),
)
_BAND = re.compile(r"^(?:(?:SR|ST|OLI|TM|ETM)_)?B(\d{1,2})(A?)(?:_VCID_[12])?$", re.IGNORECASE)
_DESCRIBED = re.compile(r"^(.*?)\s*\(([A-Za-z0-9]+)\)\s*$")


def is_common_name(text: str) -> bool:
    """True for a common band name or one of its other spellings.

    Example:
        >>> is_common_name("NIR08"), is_common_name("rededge071"), is_common_name("B04")
        (True, True, False)
    """
    key = text.strip().lower()
    return key in COMMON_NAMES or key in _ALIASES


def _common(text: str) -> str | None:
    key = text.strip().lower()
    return key if key in COMMON_NAMES else _ALIASES.get(key)


def bare_name(description: str) -> str:
    """A band description without its ``(common)`` part, and without GDAL's ``, central wavelength ...``.

    Example:
        >>> bare_name("SR_B4 (red)"), bare_name("B4, central wavelength 665 nm"), bare_name("B02")
        ('SR_B4', 'B4', 'B02')
    """
    match = _DESCRIBED.match(description)
    text = match.group(1) if match and _common(match.group(2)) else description
    return text.split(",")[0].strip()


def band_number(name: str) -> tuple[int, int] | None:
    """``(number, 1 for an A suffix else 0)`` of a band name such as ``B04``, ``B8A``, ``SR_B5``, ``B6_VCID_1``.

    Example:
        >>> band_number("SR_B5"), band_number("B8A"), band_number("red")
        ((5, 0), (8, 1), None)
    """
    match = _BAND.match(bare_name(name))
    return (int(match.group(1)), int(bool(match.group(2)))) if match else None


def canonical_name(name: str, sensor: str | None) -> str | None:
    """The band's name in :data:`SENSORS` for ``sensor`` (``B4`` -> ``B04`` on Sentinel-2), else None.

    Example:
        >>> canonical_name("B4", "sentinel2"), canonical_name("SR_B04", "landsat_oli"), canonical_name("B8A", None)
        ('B04', 'B4', 'B8A')
    """
    number = band_number(name)
    if number is None:
        return None
    sensor = sensor or _sensor_of_name(bare_name(name))
    if sensor not in SENSORS:
        return None
    n, suffix = number
    key = f"B{n}A" if suffix else f"B{n:02d}" if SENSORS[sensor].padded else f"B{n}"
    return key if key in SENSORS[sensor].bands else None


def _sensor_of_name(name: str) -> str | None:
    """The sensor a band name alone gives away: Sentinel-2's zero-padded numbers, ``B8A`` and ``B12``."""
    return "sentinel2" if re.fullmatch(r"B(0\d|8A|12)", name, re.IGNORECASE) else None


def common_name(description: str | None, sensor: str | None = None) -> str | None:
    """The common name of a band: from a ``NAME (common)`` description, a description that is a common name,
    or the band table of ``sensor`` (without one, only names that give their sensor away: ``B02``, ``B8A``).

    Example:
        >>> common_name("B04 (red)"), common_name("NIR"), common_name("B2", "landsat_tm"), common_name("B2")
        ('red', 'nir', 'green', None)
    """
    if not description:
        return None
    match = _DESCRIBED.match(description)
    if match and _common(match.group(2)):
        return _common(match.group(2))
    bare = bare_name(description)
    if _common(bare):
        return _common(bare)
    sensor = sensor or _sensor_of_name(bare)
    key = canonical_name(bare, sensor)
    return SENSORS[sensor].bands[key] if key and sensor else None


def guess_sensor(names: Iterable[str | None], text: str = "") -> str | None:
    """The key in :data:`SENSORS` that band ``names`` and ``text`` (file names, a spacecraft tag) point to, or None.

    Text wins (``LC08_...``, ``LANDSAT_5``, ``S2B_MSIL1C``, ``T33UUU_...``); else the names: Sentinel-2's
    ``B02``/``B8A``/``B12``; TM/ETM+ when there is a thermal band 6 (``ST_B6``, ``B6_VCID_1``) or bands 1-5 and 7
    without 6; OLI when there is ``SR_B6``, ``ST_B10``, ``B9``, ``B10`` or ``B11``.

    Example:
        >>> guess_sensor(["B02", "B03", "B04"]), guess_sensor(["SR_B2", "ST_B10"]), guess_sensor(["B2", "B3"])
        ('sentinel2', 'landsat_oli', None)
        >>> guess_sensor(["B1", "B2"], "LANDSAT_7")
        'landsat_tm'
    """
    for key, pattern in _TEXT:
        if pattern.search(text):
            return key
    bare = [bare_name(n) for n in names if n]
    if any(_sensor_of_name(n) for n in bare):
        return "sentinel2"
    lower = {n.lower() for n in bare}
    numbers = {num[0] for num in map(band_number, bare) if num}
    if lower & {"st_b6", "b6_vcid_1", "b6_vcid_2"} or ({1, 2, 3, 4, 5, 7} <= numbers and 6 not in numbers):
        return "landsat_tm"
    if lower & {"sr_b6", "st_b10", "b9", "b10", "b11"}:
        return "landsat_oli"
    return None


def common_names(descriptions: Sequence[str | None], text: str = "") -> list[str | None]:
    """The common name of each band of a scene (``None`` where unknown), the sensor guessed from all of them.

    Example:
        >>> common_names(["SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7", "ST_B10"])
        ['blue', 'green', 'red', 'nir08', 'swir16', 'swir22', 'lwir11']
        >>> common_names(["B2", None])
        [None, None]
    """
    sensor = guess_sensor(descriptions, text)
    return [common_name(d, sensor) for d in descriptions]


def near_common_names(name: str) -> tuple[str, ...]:
    """Common names that may stand in for ``name`` when a sensor lacks it (``nir`` and ``nir08``).

    Example:
        >>> near_common_names("nir"), near_common_names("red")
        (('nir08',), ())
    """
    return _NEAR.get(name, ())


def describe(name: str, common: str | None) -> str:
    """The description geoseg gives an assembled band: ``NAME (common)``, or the name alone.

    Example:
        >>> describe("SR_B4", "red"), describe("B04", None), describe("red", "red")
        ('SR_B4 (red)', 'B04', 'red')
    """
    return f"{name} ({common})" if common and common != name.lower() else name


_LANDSAT_DATES = re.compile(r"_(\d{8})_\d{8}_\d{2}_(?:T1|T2|RT)")
"""Landsat's product names carry the acquisition date, then the processing date: the first is the scene's."""
_DATE_TOKEN = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


def guess_date(texts: Iterable[str]) -> str | None:
    """The acquisition date (``YYYY-MM-DD``) that every text naming one agrees on, or None.

    Each text gives its first date: a STAC item's ``datetime``, a Sentinel-2 band file's ``20170216T102101``,
    a Landsat product's first date (acquired; the second is when it was processed).

    Example:
        >>> guess_date(["T33UUU_20170216T102101_B02.jp2", "T33UUU_20170216T102101_B03.jp2", "notes"])
        '2017-02-16'
        >>> guess_date(["LC08_L2SP_193023_20200601_20200824_02_T1_SR_B2.TIF"]), guess_date(["a_20200101", "b_20210101"])
        ('2020-06-01', None)
    """
    found = set()
    for text in texts:
        landsat = _LANDSAT_DATES.search(text)
        tokens = [landsat.group(1)] if landsat else [m.group(0) for m in _DATE_TOKEN.finditer(text)]
        for token in tokens:
            digits = token.replace("-", "")
            year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
            if 1972 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31:
                found.add(f"{digits[:4]}-{digits[4:6]}-{digits[6:]}")
                break
    return found.pop() if len(found) == 1 else None
