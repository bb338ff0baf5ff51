"""Matching a scene's bands to a model's input bands (docs/ARCHITECTURE.md, CLI contract: ``--bands``).

Bands match by name (a description, or its name without the ``(common)``
part geoseg adds to assembled bands), then across sensors by common name
(:mod:`geoseg.core.sensors`: a Sentinel-2 model's ``B08`` is a Landsat-8
scene's ``SR_B5``, ``nir08`` standing in for ``nir``), then in order when
the scene has no descriptions and the counts agree. A band without a
description is named by its colour interpretation (GDAL's ColorInterp) when
that is red, green or blue; an alpha band is the scene's mask, not a band
for the model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from geoseg.core.errors import BandMismatchError, InputError
from geoseg.core.sensors import bare_name, common_names, near_common_names

__all__ = [
    "COLOUR_BANDS",
    "alpha_bands",
    "band_lookup",
    "band_names",
    "colour_name",
    "crossed_bands",
    "match_by_common_name",
    "misnamed_indexes",
    "parse_requested",
    "select_bands",
]

COLOUR_BANDS = ("red", "green", "blue")
"""Colour interpretations (GDAL's ColorInterp) that name a band: each is also the band's common name."""


def colour_name(interp: object) -> str:
    """The lower-case name of a colour interpretation: rasterio's ``ColorInterp`` member or its name.

    Example:
        >>> from rasterio.enums import ColorInterp
        >>> colour_name(ColorInterp.red), colour_name("Alpha")
        ('red', 'alpha')
    """
    return str(getattr(interp, "name", interp)).lower()


def band_names(descriptions: Sequence[str | None], colorinterp: Sequence[object] = ()) -> list[str | None]:
    """Each band's name: its description, else its colour interpretation where that is red, green or blue
    (:data:`COLOUR_BANDS`), else None.

    Example:
        >>> band_names([None, "B08", None], ["blue", "undefined", "red"])
        ['blue', 'B08', 'red']
    """
    colours = [colour_name(c) for c in colorinterp]
    return [d or (colours[i] if i < len(colours) and colours[i] in COLOUR_BANDS else None) for i, d in enumerate(descriptions)]


def alpha_bands(colorinterp: Sequence[object]) -> list[int]:
    """1-based indexes of the alpha bands (GDAL reads them as the scene's mask).

    Example:
        >>> alpha_bands(["red", "green", "blue", "alpha"])
        [4]
    """
    return [i + 1 for i, c in enumerate(colorinterp) if colour_name(c) == "alpha"]


def _describe(descriptions: Sequence[str | None], count: int, alpha: Sequence[int] = ()) -> str:
    names = ["alpha" if i + 1 in alpha and not d else d or "?" for i, d in enumerate(descriptions)]
    return f"{count} band(s) [{', '.join(names)}]" if any(descriptions) else f"{count} band(s) without descriptions"


def parse_requested(
    requested: str | Sequence[str | int], descriptions: Sequence[str | None], count: int, option: str = "--bands"
) -> list[int]:
    """1-based band indexes for the items of ``option`` (``--bands``): indexes or band descriptions (case-insensitive).

    Example:
        >>> parse_requested("3,B02", ["B02", "B03", "B04"], 3)
        [3, 1]
        >>> parse_requested("4", ["B02", None], 2, option="--preview-bands")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: --preview-bands index 4 is out of range: the scene has bands 1..2
    """
    items = _items(requested)
    lookup = band_lookup(descriptions)
    indexes = []
    for item in items:
        text = str(item).strip()
        if not text:
            raise InputError(f"{option} {requested!r} has an empty item: write e.g. 1,2,3 or B04,B03,B02")
        if text.isdigit():
            index = int(text)
            if not 1 <= index <= count:
                raise InputError(f"{option} index {index} is out of range: the scene has bands 1..{count}")
        elif text.lower() in lookup:
            index = lookup[text.lower()]
        else:
            found = ", ".join(d for d in descriptions if d) or "no band descriptions"
            raise InputError(f"{option} name {text!r} is not a band description of the scene (found: {found}; bands 1..{count})")
        indexes.append(index)
    return indexes


def _items(requested: str | Sequence[str | int]) -> list[str | int]:
    """The items of a ``--bands`` value: a comma-separated text split, a sequence as it is."""
    return [s.strip() for s in requested.split(",")] if isinstance(requested, str) else list(requested)


def crossed_bands(requested: str | Sequence[str | int], model_bands: Sequence[str]) -> str | None:
    """A warning when an item of ``--bands`` is the name of another model band than the one it feeds, else None.

    Items given as indexes, and names that are no model band's, are taken as meant (a scene's own names).

    Example:
        >>> crossed_bands("B3,B2,B4", ["B2", "B3", "B4"])
        "--bands feeds scene band B3 to the model's B2 and B2 to its B3: check the order (the model's bands are B2, B3, B4)"
        >>> crossed_bands("3,2,1,4", ["B02", "B03", "B04", "B08"]) is None
        True
    """
    position: dict[str, int] = {}
    for j, band in enumerate(model_bands):
        position.setdefault(band.strip().lower(), j)
    for j, band in enumerate(model_bands):
        position.setdefault(bare_name(band).lower(), j)
    crossed = []
    for k, (item, band) in enumerate(zip(_items(requested), model_bands)):
        text = str(item).strip()
        named = position.get(text.lower())  # the model band this item names, if any
        if not text.isdigit() and named is not None and named != k:
            crossed.append((text, band))
    if not crossed:
        return None
    parts = [f"scene band {crossed[0][0]} to the model's {crossed[0][1]}"] + [f"{a} to its {b}" for a, b in crossed[1:]]
    fed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"--bands feeds {fed}: check the order (the model's bands are {', '.join(model_bands)})"


_GENERIC = re.compile(r"^(band|layer|channel)[\s_]*\d+$", re.IGNORECASE)


def misnamed_indexes(
    requested: str | Sequence[str | int], indexes: Sequence[int], names: Sequence[str | None], model_bands: Sequence[str]
) -> str | None:
    """A warning when ``--bands`` items given as indexes pick scene bands named otherwise than the model bands they
    feed, while the scene has a band named as each model band, else None. Indexes are taken as given: the warning
    names the first such band and the ``--bands`` by name that would match.

    Unnamed bands and generic names (``band 1``) contradict nothing.

    Example:
        >>> misnamed_indexes("1,2", [1, 2], ["B01", "B02", "B03"], ["B02", "B03"])[:62]
        "--bands 1,2 feeds scene band 1 (B01) to the model's B02 (and 1"
        >>> misnamed_indexes("2,3", [2, 3], ["B01", "B02", "B03"], ["B02", "B03"]) is None
        True
    """
    items = _items(requested)
    matched = _by_name(names, model_bands)
    if matched is None or list(indexes) == matched:
        return None
    off = []
    for k, (item, index, band) in enumerate(zip(items, indexes, model_bands)):
        name = bare_name(names[index - 1] or "")
        same = name.lower() in (band.strip().lower(), bare_name(band).lower())
        if str(item).strip().isdigit() and index != matched[k] and name and not same and not _GENERIC.match(name):
            off.append((index, name, band))
    if not off:
        return None
    index, name, band = off[0]
    more = f" (and {len(off) - 1} more band{'s' if len(off) > 2 else ''} of other names)" if len(off) > 1 else ""
    return (
        f"--bands {','.join(str(i).strip() for i in items)} feeds scene band {index} ({name}) to the model's {band}{more}: "
        f"indexes are taken as given; to feed the bands by name give --bands {_by_name_option(names, matched)}"
    )


def _by_name_option(names: Sequence[str | None], indexes: Sequence[int]) -> str:
    """A ``--bands`` value naming the scene bands ``indexes``: each band's name without its ``(common)`` part where
    that picks the band, else its whole name, else its index."""
    lookup = band_lookup(names)
    picked = []
    for index in indexes:
        name = names[index - 1] or ""
        short = bare_name(name)
        picked.append(next((n for n in (short, name) if n and lookup.get(n.lower()) == index), str(index)))
    return ",".join(picked)


def band_lookup(descriptions: Sequence[str | None]) -> dict[str, int]:
    """1-based band index by every name a band answers to (lower case): its description, its name without the
    ``(common)`` part, and its common name where no other band shares it.

    Example:
        >>> band_lookup(["SR_B4 (red)", "SR_B5 (nir08)"])["nir08"], band_lookup(["B02", "B03"])["green"]
        (2, 2)
    """
    lookup: dict[str, int] = {}
    for i, d in enumerate(descriptions):
        if d:
            lookup.setdefault(d.strip().lower(), i + 1)
    for i, d in enumerate(descriptions):
        if d:
            lookup.setdefault(bare_name(d).lower(), i + 1)
    commons = common_names(descriptions)
    counts = Counter(c for c in commons if c)
    for i, c in enumerate(commons):
        if c and counts[c] == 1:
            lookup.setdefault(c, i + 1)
    return lookup


def _by_name(descriptions: Sequence[str | None], model_bands: Sequence[str]) -> list[int] | None:
    """Scene bands named as the model's: the same description, or the same name with no conflicting common name."""
    full = {d.strip().lower(): i for i, d in reversed(list(enumerate(descriptions))) if d}
    bare = {bare_name(d).lower(): i for i, d in reversed(list(enumerate(descriptions))) if d}
    scene_common, model_common = common_names(descriptions), common_names(model_bands)
    picked = []
    for band, common in zip(model_bands, model_common):
        index = full.get(band.strip().lower())
        if index is None:
            index = bare.get(bare_name(band).lower())
            if index is not None and common and scene_common[index] and common != scene_common[index]:
                index = None  # Landsat 8's SR_B4 is red, Landsat 5's is near infrared: not the same band
        if index is None:
            return None
        picked.append(index + 1)
    return picked


def match_by_common_name(descriptions: Sequence[str | None], model_bands: Sequence[str]) -> tuple[list[int], str] | None:
    """Scene bands for the model's bands by common name (exact first, then ``nir08`` for ``nir`` and the like),
    and the mapping as text; None when a model band has no common name or no scene band to take it.

    Example:
        >>> match_by_common_name(["SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"], ["B02", "B04", "B08"])
        ([1, 3, 4], 'B02=SR_B2 (blue), B04=SR_B4 (red), B08=SR_B5 (nir08 for nir)')
    """
    model_common = common_names(model_bands)
    if not model_bands or not all(model_common):
        return None
    scene_common = common_names(descriptions)
    picked: list[int | None] = [None] * len(model_bands)
    used: set[int] = set()
    for near in (False, True):
        for k, wanted in enumerate(model_common):
            names = near_common_names(wanted or "") if near else (wanted,)
            free = [i for i, c in enumerate(scene_common) if c in names and i not in used]
            if picked[k] is None and free:
                picked[k] = free[0]
                used.add(free[0])
    if any(p is None for p in picked):
        return None
    parts = []
    for band, wanted, index in zip(model_bands, model_common, picked):
        assert index is not None
        found = scene_common[index]
        label = found if found == wanted else f"{found} for {wanted}"
        parts.append(f"{bare_name(band)}={bare_name(descriptions[index] or '')} ({label})")
    return [i + 1 for i in picked if i is not None], ", ".join(parts)


def select_bands(
    descriptions: Sequence[str | None],
    model_bands: Sequence[str],
    requested: str | Sequence[str | int] | None = None,
    bands_are_named: bool = True,
    colorinterp: Sequence[object] = (),
) -> tuple[list[int], str | None]:
    """1-based scene band indexes for the model's bands, and a warning when a mapping was assumed or ``requested``
    (``--bands``) looks wrong: one scene band fed to several model bands, or a model band's name fed to another
    (:func:`crossed_bands`).

    ``descriptions`` are the scene's band descriptions (``None`` where unset);
    ``colorinterp`` its bands' colour interpretations (rasterio's
    ``ds.colorinterp``): a band without a description is named red, green or
    blue by them (:func:`band_names`), and an alpha band is the mask, left
    out of the bands taken in order.

    Example:
        >>> select_bands(("B02", "B03", "B04", "B08"), ["B08", "B04"])
        ([4, 3], None)
        >>> select_bands((None, None), ["B04", "B08"])[1]
        'scene bands taken in order as B04=1, B08=2 (the scene has no band descriptions)'
        >>> indexes, note = select_bands(("SR_B2 (blue)", "SR_B4 (red)", "SR_B5 (nir08)"), ["B02", "B04", "B08"])
        >>> indexes, note
        ([1, 2, 3], 'model bands matched by common name: B02=SR_B2 (blue), B04=SR_B4 (red), B08=SR_B5 (nir08 for nir)')
        >>> select_bands((None,), ["R", "G", "B"], "1,1,1")[1]
        '--bands feeds one scene band to several model bands: band 1 as R, G, B'
        >>> select_bands(("B02", "B03"), ["B02", "B03"], "B03,B02")[1]
        "--bands feeds scene band B03 to the model's B02 and B02 to its B03: check the order (the model's bands are B02, B03)"
        >>> select_bands((None, None, None, None), ["red", "green", "blue"], colorinterp=["red", "green", "blue", "alpha"])
        ([1, 2, 3], None)
        >>> select_bands((None,) * 4, ["a", "r", "g"], "4,1,2", False, ["red", "green", "blue", "alpha"])[1]
        "--bands feeds band 4, the scene's alpha band (its mask), to the model"
    """
    count = len(descriptions)
    names, alpha = band_names(descriptions, colorinterp), alpha_bands(colorinterp)
    expected = f"{len(model_bands)} band(s) [{', '.join(model_bands)}]"
    if requested is not None and requested != "":
        return _requested(requested, names, model_bands, bands_are_named, alpha, descriptions)
    if bands_are_named:
        named = _by_name(names, model_bands)
        if named is not None:
            return named, _colour_note(descriptions, names, model_bands, named)
        common = match_by_common_name(names, model_bands)
        if common is not None:
            note = _colour_note(descriptions, names, model_bands, common[0])
            return common[0], note or f"model bands matched by common name: {common[1]}"
    # colour interpretations do not count as descriptions here: GDAL gives every 3-band byte GeoTIFF red, green, blue
    if not any(descriptions) or not bands_are_named:
        in_order = _in_order(count, model_bands, alpha, bands_are_named)
        if in_order is not None:
            return in_order
    fix = (
        "pick the bands with --bands (1-based indexes or descriptions)"
        if count >= len(model_bands)
        else "give a scene with all of the model's bands (or a model trained on these)"
    )
    found = _describe(names, count, alpha)
    raise BandMismatchError(f"the model expects {expected} but the scene has {found}: {fix}")


def _colour_note(
    descriptions: Sequence[str | None], names: Sequence[str | None], model_bands: Sequence[str], indexes: list[int]
) -> str | None:
    """The warning for bands matched by their colour interpretation out of file order (GDAL gives every 3-band byte
    GeoTIFF red, green, blue, so a blue-first stack written without it is read the wrong way round), else None."""
    if all(descriptions[i - 1] for i in indexes) or indexes == sorted(indexes):
        return None
    mapping = ", ".join(f"{b}=band {i} ({names[i - 1] or '?'})" for b, i in zip(model_bands, indexes))
    return f"model bands matched by the scene's colour interpretation (it has no band descriptions): {mapping}"


def _requested(
    requested: str | Sequence[str | int],
    names: Sequence[str | None],
    model_bands: Sequence[str],
    bands_are_named: bool,
    alpha: Sequence[int] = (),
    descriptions: Sequence[str | None] = (),
) -> tuple[list[int], str | None]:
    """The bands ``--bands`` picks for the model (see :func:`select_bands`), and a warning when it looks wrong: also
    when it picks an ``alpha`` band (the scene's mask, as GDAL reads it), or indexes pick bands whose
    ``descriptions`` name other model bands (:func:`misnamed_indexes`; colour interpretations do not count, GDAL
    gives every 3-band byte GeoTIFF red, green, blue)."""
    indexes = parse_requested(requested, names, len(names))
    if len(indexes) != len(model_bands):
        raise BandMismatchError(
            f"--bands selects {len(indexes)} band(s) but the model expects {len(model_bands)} band(s) "
            f"[{', '.join(model_bands)}]: give {len(model_bands)}"
        )
    notes = [crossed_bands(requested, model_bands) if bands_are_named else None]
    if bands_are_named and any(descriptions):
        described = [n if d else None for n, d in zip(names, descriptions)]
        notes.append(misnamed_indexes(requested, indexes, described, model_bands))
    repeated = sorted({i for i in indexes if indexes.count(i) > 1})
    if repeated:  # allowed (a grey scene into an RGB model), but rarely meant
        fed = "; ".join(f"band {i} as {', '.join(b for b, j in zip(model_bands, indexes) if j == i)}" for i in repeated)
        notes.insert(0, f"--bands feeds one scene band to several model bands: {fed}")
    fed_alpha = [i for i in dict.fromkeys(indexes) if i in alpha]
    if fed_alpha:
        notes.append(f"--bands feeds band {fed_alpha[0]}, the scene's alpha band (its mask), to the model")
    return indexes, "; ".join(n for n in notes if n) or None


def _in_order(
    count: int, model_bands: Sequence[str], alpha: Sequence[int], bands_are_named: bool
) -> tuple[list[int], str | None] | None:
    """The scene's bands in file order when their count is the model's (alpha bands left out, unless only with them
    the counts agree), and the warning naming the assumed mapping; None when the counts differ."""
    bands = [i for i in range(1, count + 1) if i not in alpha]
    if len(bands) != len(model_bands):
        bands = list(range(1, count + 1))
    if len(bands) != len(model_bands):
        return None
    if not bands_are_named:
        return bands, None
    mapping = ", ".join(f"{b}={i}" for b, i in zip(model_bands, bands))
    kept = [i for i in alpha if i in bands]
    if kept:
        why = f"band {kept[0]} is marked alpha, which GDAL also reads as the mask"
    elif alpha:
        why = f"band {', '.join(map(str, alpha))}, alpha, is the mask"
    else:
        return bands, f"scene bands taken in order as {mapping} (the scene has no band descriptions)"
    return bands, f"scene bands taken in order as {mapping} (the scene has no band descriptions; {why})"
