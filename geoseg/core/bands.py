"""Matching a scene's bands to a model's input bands (docs/ARCHITECTURE.md, CLI contract: ``--bands``).

Bands match by name (a description, or its name without the ``(common)``
part geoseg adds to assembled bands), then across sensors by common name
(:mod:`geoseg.core.sensors`: a Sentinel-2 model's ``B08`` is a Landsat-8
scene's ``SR_B5``, ``nir08`` standing in for ``nir``), then in order when
the scene has no descriptions and the counts agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from geoseg.core.errors import BandMismatchError, InputError
from geoseg.core.sensors import bare_name, common_names, near_common_names

__all__ = ["band_lookup", "crossed_bands", "match_by_common_name", "select_bands", "parse_requested"]


def _describe(descriptions: Sequence[str | None], count: int) -> str:
    names = [d or "?" for d in descriptions]
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
) -> tuple[list[int], str | None]:
    """1-based scene band indexes for the model's bands, and a warning when a mapping was assumed or ``requested``
    (``--bands``) looks wrong: one scene band fed to several model bands, or a model band's name fed to another
    (:func:`crossed_bands`).

    ``descriptions`` are the scene's band descriptions (``None`` where unset).

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
    """
    count = len(descriptions)
    expected = f"{len(model_bands)} band(s) [{', '.join(model_bands)}]"
    if requested is not None and requested != "":
        indexes = parse_requested(requested, descriptions, count)
        if len(indexes) != len(model_bands):
            raise BandMismatchError(
                f"--bands selects {len(indexes)} band(s) but the model expects {expected}: give {len(model_bands)}"
            )
        notes = [crossed_bands(requested, model_bands) if bands_are_named else None]
        repeated = sorted({i for i in indexes if indexes.count(i) > 1})
        if repeated:  # allowed (a grey scene into an RGB model), but rarely meant
            fed = "; ".join(f"band {i} as {', '.join(b for b, j in zip(model_bands, indexes) if j == i)}" for i in repeated)
            notes.insert(0, f"--bands feeds one scene band to several model bands: {fed}")
        return indexes, "; ".join(n for n in notes if n) or None
    if bands_are_named:
        named = _by_name(descriptions, model_bands)
        if named is not None:
            return named, None
        common = match_by_common_name(descriptions, model_bands)
        if common is not None:
            return common[0], f"model bands matched by common name: {common[1]}"
    described = any(descriptions)
    if count == len(model_bands) and (not described or not bands_are_named):
        if not bands_are_named:
            return list(range(1, count + 1)), None
        mapping = ", ".join(f"{b}={i + 1}" for i, b in enumerate(model_bands))
        return list(range(1, count + 1)), f"scene bands taken in order as {mapping} (the scene has no band descriptions)"
    fix = (
        "pick the bands with --bands (1-based indexes or descriptions)"
        if count >= len(model_bands)
        else "give a scene with all of the model's bands (or a model trained on these)"
    )
    raise BandMismatchError(f"the model expects {expected} but the scene has {_describe(descriptions, count)}: {fix}")
