"""Matching a scene's bands to a model's input bands (docs/ARCHITECTURE.md, CLI contract: ``--bands``)."""

from __future__ import annotations

from collections.abc import Sequence

from geoseg.core.errors import BandMismatchError, InputError

__all__ = ["select_bands", "parse_requested"]


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
    items = [s.strip() for s in requested.split(",")] if isinstance(requested, str) else list(requested)
    lookup = {d.lower(): i + 1 for i, d in enumerate(descriptions) if d}
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


def select_bands(
    descriptions: Sequence[str | None],
    model_bands: Sequence[str],
    requested: str | Sequence[str | int] | None = None,
    bands_are_named: bool = True,
) -> tuple[list[int], str | None]:
    """1-based scene band indexes for the model's bands, and a warning when a mapping was assumed.

    ``descriptions`` are the scene's band descriptions (``None`` where unset).

    Example:
        >>> select_bands(("B02", "B03", "B04", "B08"), ["B08", "B04"])
        ([4, 3], None)
        >>> select_bands((None, None), ["B04", "B08"])[1]
        'scene bands taken in order as B04=1, B08=2 (the scene has no band descriptions)'
    """
    count = len(descriptions)
    expected = f"{len(model_bands)} band(s) [{', '.join(model_bands)}]"
    if requested is not None and requested != "":
        indexes = parse_requested(requested, descriptions, count)
        if len(indexes) != len(model_bands):
            raise BandMismatchError(
                f"--bands selects {len(indexes)} band(s) but the model expects {expected}: give {len(model_bands)}"
            )
        return indexes, None
    lookup = {d.lower(): i + 1 for i, d in enumerate(descriptions) if d}
    if bands_are_named and all(b.lower() in lookup for b in model_bands):
        return [lookup[b.lower()] for b in model_bands], None
    described = any(descriptions)
    if count == len(model_bands) and (not described or not bands_are_named):
        if not bands_are_named:
            return list(range(1, count + 1)), None
        mapping = ", ".join(f"{b}={i + 1}" for i, b in enumerate(model_bands))
        return list(range(1, count + 1)), f"scene bands taken in order as {mapping} (the scene has no band descriptions)"
    raise BandMismatchError(
        f"the model expects {expected} but the scene has {_describe(descriptions, count)}: "
        f"pick the bands with --bands (1-based indexes or descriptions)"
    )
