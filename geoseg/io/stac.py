"""STAC Items as scenes: one band per single-band raster asset, named by its ``eo:bands`` entry.

An item is read from a local ``.json`` file or an ``http(s)``/``/vsicurl/``
URL (the one download geoseg makes itself, and only of the address the user
gave). Assets are read through GDAL where they lie (``/vsicurl/`` streams
COGs by window); nothing is copied.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from geoseg.core.errors import InputError, RasterError
from geoseg.core.sensors import SENSORS, guess_sensor, is_common_name
from geoseg.io.band_files import RASTER_SUFFIXES, band_sort_key
from geoseg.io.vrt import BandFile

__all__ = ["is_stac_item", "item_bands", "read_item"]

TIMEOUT_S = 30
"""Seconds to wait for a remote STAC item."""
_SKIP_ROLES = {"thumbnail", "overview", "visual", "metadata"}


def _url(source: str) -> str | None:
    """The http(s) address of a remote item (``/vsicurl/`` removed), None for a local file."""
    text = source[len("/vsicurl/") :] if source.startswith("/vsicurl/") else source
    return text if text.startswith(("http://", "https://")) else None


def is_stac_item(source: str) -> bool:
    """True for a ``.json`` path or URL, and for a STAC API item URL (``.../items/ID``, no raster file ending).

    Example:
        >>> is_stac_item("/vsicurl/https://example.com/items/S2B_33UUU.json"), is_stac_item("scene.tif")
        (True, False)
        >>> is_stac_item("https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2B_33UUU_20230823_0_L2A")
        True
    """
    path = source.lower().split("?")[0]
    if path.endswith(".json"):
        return True
    return _url(source) is not None and "/items/" in path and not path.endswith(RASTER_SUFFIXES)


def read_item(source: str) -> dict[str, Any]:
    """The STAC Item at ``source`` as a mapping; a collection, a non-item or unreadable JSON is a one-line error.

    Example:
        >>> read_item("item.json")["type"]  # doctest: +SKIP
        'Feature'
    """
    url = _url(source)
    try:
        if url is not None:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - the address the user gave
                text = response.read().decode("utf-8")
        else:
            text = Path(source).read_text(encoding="utf-8")
    except (OSError, urllib.error.URLError, UnicodeDecodeError) as exc:
        raise RasterError(f"STAC item {source} cannot be read ({exc}): check the path or URL") from None
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"STAC item {source} is not valid JSON ({exc}): give a STAC Item .json") from None
    kind = item.get("type") if isinstance(item, dict) else None
    if kind == "FeatureCollection":
        raise InputError(f"{source} is a collection of {len(item.get('features', []))} items: give one STAC Item")
    if kind != "Feature" or not isinstance(item.get("assets"), dict):
        raise InputError(f"{source} is not a STAC Item (a GeoJSON Feature with assets): give a STAC Item .json")
    return item


def _file_url_path(href: str) -> str:
    """The local path of a ``file://`` URL: percent-escapes decoded, ``file:///C:/d/B04.tif`` a Windows path, a host
    other than ``localhost`` a UNC share.

    Example:
        >>> _file_url_path("file:///data/my%20scene/B04.tif")
        '/data/my scene/B04.tif'
    """
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(href)
    if parsed.netloc not in ("", "localhost"):
        return url2pathname(f"//{parsed.netloc}{parsed.path}")
    return url2pathname(parsed.path)


def _href(href: str, source: str) -> str:
    """A GDAL path for an asset's ``href`` (relative ones against the item's own location)."""
    if href.startswith("/vsi"):
        return href
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    for scheme, vsi in (("s3://", "/vsis3/"), ("gs://", "/vsigs/"), ("az://", "/vsiaz/")):
        if href.startswith(scheme):
            return vsi + href[len(scheme) :]
    if href.startswith("file://"):
        return _file_url_path(href)
    url = _url(source)
    if url is not None:
        return f"/vsicurl/{urljoin(url, href)}"
    return href if os.path.isabs(href) else str((Path(source).parent / href).resolve())


def _band_entry(asset: dict[str, Any]) -> dict[str, Any] | None:
    """The one ``eo:bands`` (STAC 1.0) or ``bands`` (1.1) entry of a single-band raster asset, else None."""
    if _SKIP_ROLES & set(asset.get("roles") or []):
        return None
    kind = str(asset.get("type") or "image")
    if not kind.startswith("image") and "tiff" not in kind and "jp2" not in kind:
        return None
    entries = asset.get("eo:bands") or asset.get("bands")
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        return None
    return entries[0]


def _nodata(asset: dict[str, Any], entry: dict[str, Any]) -> float | None:
    """The band's nodata: its band entry's, ``raster:bands``' (STAC 1.0) or the asset's own (STAC 1.1 common metadata)."""
    raster = asset.get("raster:bands")
    raster_value = raster[0].get("nodata") if isinstance(raster, list) and raster and isinstance(raster[0], dict) else None
    for value in (entry.get("nodata"), raster_value, asset.get("nodata")):
        if isinstance(value, (int, float)):
            return float(value)
    return None


def _names(key: str, entry: dict[str, Any], sensor: str | None) -> tuple[str, str | None]:
    """The band's name and common name: ``eo:bands`` name (or the asset key), a sensor's band name for a common one."""
    common = entry.get("common_name") or entry.get("eo:common_name")
    common = str(common).lower() if common and is_common_name(str(common)) else None
    name = str(entry.get("name") or key)
    if is_common_name(name) and sensor:  # earth-search names Sentinel-2's B04 "red": use the sensor's band name
        common = common or name.lower()
        name = next((band for band, c in SENSORS[sensor].bands.items() if c == common), name)
    return name, common


def _one_per_band(files: list[BandFile]) -> list[BandFile]:
    """One asset per band name: items offer the same band twice (earth-search's ``red`` COG and ``red-jp2``); a
    GeoTIFF (a COG streams by window) is preferred, then the shorter asset key."""
    best: dict[str, BandFile] = {}
    for f in files:
        key = (f.name or f.label).lower()
        rank = (not f.path.lower().split("?")[0].endswith((".tif", ".tiff")), len(f.label))
        old = best.get(key)
        if old is None or rank < (not old.path.lower().split("?")[0].endswith((".tif", ".tiff")), len(old.label)):
            best[key] = f
    return [f for f in files if best.get((f.name or f.label).lower()) is f]


def item_bands(item: dict[str, Any], source: str) -> tuple[list[BandFile], str]:
    """The item's single-band raster assets as band files, sorted by band; its datetime, platform and id as text.

    Example:
        >>> files, text = item_bands(read_item("item.json"), "item.json")  # doctest: +SKIP
        >>> [(f.label, f.name, f.common) for f in files][:1]  # doctest: +SKIP
        [('blue', 'B02', 'blue')]
    """
    props = item.get("properties") or {}
    text = " ".join(
        str(v) for v in (props.get("datetime"), props.get("platform"), props.get("constellation"), item.get("id")) if v
    )
    entries = {key: _band_entry(a) for key, a in item["assets"].items() if isinstance(a, dict)}
    sensor = guess_sensor([str(e.get("name")) for e in entries.values() if e and e.get("name")], text)
    files = []
    for key, entry in entries.items():
        asset = item["assets"][key]
        if entry is None or not asset.get("href"):
            continue
        name, common = _names(key, entry, sensor)
        files.append(BandFile(_href(str(asset["href"]), source), 1, name, common, _nodata(asset, entry), label=key))
    files = _one_per_band(files)
    if not files:
        keys = ", ".join(item["assets"]) or "none"
        raise InputError(
            f"STAC item {source} has no single-band raster asset with eo:bands (assets: {keys}): give an item of band files"
        )
    files.sort(key=lambda f: band_sort_key(f.name or ""))
    return files, text
