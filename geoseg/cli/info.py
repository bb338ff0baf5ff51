"""``geoseg info``: describe a model or a scene."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from geoseg.cli.options import common_options, resolution_option
from geoseg.core.classes import CLASSES_TAG
from geoseg.core.errors import InputError
from geoseg.io.paths import is_remote, special_kind

if TYPE_CHECKING:
    from geoseg.model.card import ModelCard

SHOWN_PAIRS = 20
"""The from→to pairs of a transitions map that the text output lists (the rest are counted)."""


def _is_model(target: str) -> bool:
    if target == "default":
        return True
    path = Path(target)
    if path.suffix.lower() in {".pt", ".onnx", ".safetensors"}:
        return True
    if special_kind(path):
        return False  # refused, named, by the scene checks: never opened here
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return len(head) == 16 and head[8:10] == b'{"'


def _check_exists(target: str) -> None:
    """Refuse a local TARGET that does not exist, suggesting ``default`` for a name close to it.

    Example:
        >>> _check_exists("defualt")
        Traceback (most recent call last):
        ...
        geoseg.core.errors.InputError: defualt does not exist: did you mean default (the bundled model)?
    """
    path = Path(target)
    if is_remote(target) or special_kind(path) or path.exists():
        return  # remote scenes and special files are checked, and refused with their own reasons, where opened
    if not path.suffix and difflib.get_close_matches(target.lower(), ["default"], n=1, cutoff=0.7):
        raise InputError(f"{target} does not exist: did you mean default (the bundled model)?")
    raise InputError(
        f"{target} does not exist: give a model file (.pt, .onnx or default) or a scene (a raster file, a band folder "
        "or list, a STAC item, a .SAFE or an _MTL.txt)"
    )


def _safe(text: object) -> str:
    r"""Text as it may reach a terminal: control and other unprintable characters as repr-style escapes.

    Example:
        >>> _safe("forest"), _safe("\x1b]0;pwned\x07")
        ('forest', '\\x1b]0;pwned\\x07')
    """
    text = str(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _short(value: object) -> str:
    """Provenance values for reading: floats to 4 significant digits, mappings as key=value, text escaped."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{_safe(k)}={_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_short(v) for v in value)
    return _safe(value)


def _show_card(card: ModelCard) -> None:
    """The card as text; every name from the file is escaped (a class name may hold terminal escapes)."""
    click.echo(f"model      {_safe(card.name)} ({_safe(card.arch)} / {_safe(card.encoder)})")
    click.echo(f"bands      {', '.join(_safe(b) for b in card.bands)}")
    click.echo(f"chip       {card.chip_size} px, overlap {_safe(card.overlap)}")
    click.echo(f"pixel size {f'{card.pixel_size} m' if card.pixel_size else 'unknown'}")
    if card.mean is not None:
        click.echo(f"mean       {', '.join(f'{v:.4g}' for v in card.mean)}")
        click.echo(f"std        {', '.join(f'{v:.4g}' for v in card.std or [])}")
    click.echo("classes")
    for c in card.classes:
        click.echo(f"  {c.id:3d}  {c.color}  {_safe(c.name)}")
    for key, value in card.provenance.items():
        if key != "domain":
            click.echo(f"{_safe(key):10s} {_short(value)}")
    if card.domain is not None:
        _show_domain(card.domain, card.bands)


def _show_domain(domain: dict, bands: list[str]) -> None:
    """Where and on what the model was trained: footprint, dates, band percentiles, validation confidence."""
    click.echo("domain     trained on (predict warns when a scene is far outside it)")
    for scene in domain.get("scenes") or []:
        box = scene.get("bbox")
        where = (
            "footprint unknown"
            if box is None
            else f"lon {box[0]:.4f} to {box[2]:.4f}, lat {box[1]:.4f} to {box[3]:.4f} (EPSG:4326)"
        )
        click.echo(f"  scene    {_safe(scene.get('name'))}: {where}, date {_safe(scene.get('date') or 'unknown')}")
    percentiles = domain.get("percentiles") or {}
    if {"p1", "p50", "p99"} <= set(percentiles):
        click.echo("  bands    1st / 50th / 99th percentile of the training pixels")
        for b, lo, mid, hi in zip(bands, percentiles["p1"], percentiles["p50"], percentiles["p99"]):
            click.echo(f"    {_safe(b):8s} {lo:.4g} / {mid:.4g} / {hi:.4g}")
    conf = domain.get("validation_confidence")
    click.echo(f"  confidence on validation pixels {'unknown' if conf is None else f'{conf:.2f}'}")


@click.command(short_help="Describe a model or a scene.")
@click.argument("target", metavar="MODEL|IMAGE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@resolution_option
@common_options
def info(target: str, as_json: bool) -> None:
    """Show a model's card (bands, normalization, chip size, classes, provenance) or a scene's
    grid (size, CRS, pixel size (mean, and width and height), bounds, and whether predict accepts
    its georeferencing: "yes", or "no: " and why) and bands (name, common name, native resolution,
    data type, nodata and, for a multi-file scene, the file each band comes from).

    IMAGE is a raster file or a multi-file scene: a folder of single-band rasters, a band list
    (.txt), a STAC item (.json), a Sentinel-2 .SAFE or a Landsat *_MTL.txt.

    \b
    Examples:
      geoseg info model.pt
      geoseg info scene.tif --json
      geoseg info LC08_L2SP_193023_20200601_20200824_02_T1/ --resolution 60
    """
    if _is_model(target):
        from geoseg.model.bundled import default_model_path
        from geoseg.model.checkpoint import read_card

        if target.lower().endswith(".onnx"):  # its card comes from the file's metadata (geoseg's or Deepness')
            from geoseg.model.onnx import load_onnx

            card = load_onnx(target).card
        else:
            card = read_card(default_model_path() if target == "default" else target)
        data = json.loads(card.to_json())
        if as_json:
            click.echo(json.dumps(data, indent=2))
            return
        _show_card(card)
        return
    _check_exists(target)
    _show_scene(target, as_json)


def _show_scene(target: str, as_json: bool) -> None:
    """The scene's grid and bands, as text or JSON (``band_details``: one object per band)."""
    from geoseg.core.errors import RasterError
    from geoseg.io.pixels import pixel_size_m, pixel_sizes_m
    from geoseg.io.raster import check_georeferencing, gdal_env, open_scene
    from geoseg.io.sources import band_table

    with gdal_env(), open_scene(target, require_georef=False) as ds:
        pixel = round(pixel_size_m(ds), 6) if ds.crs else None
        sizes = [round(size, 6) for size in pixel_sizes_m(ds)] if ds.crs else None
        try:
            check_georeferencing(ds, target)
            placed = "yes"
        except RasterError as exc:  # what predict would refuse it with
            placed = f"no: {exc}"
        tags = ds.tags()
        data = {
            "path": target,
            "source": tags.pop("GEOSEG_SOURCE_KIND", "raster"),
            "driver": ds.driver,
            "width": ds.width,
            "height": ds.height,
            "count": ds.count,
            "dtype": ds.dtypes[0],
            "crs": ds.crs.to_string() if ds.crs else None,
            "georeferenced": placed,
            "pixel_size_m": pixel,
            "pixel_sizes_m": sizes,
            "bounds": list(ds.bounds),
            "nodata": ds.nodata,
            "bands": [d or f"band {i + 1}" for i, d in enumerate(ds.descriptions)],
            "band_details": band_table(ds, pixel),
            "tags": {k: v for k, v in tags.items() if k != "GEOSEG_SOURCE"},
        }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from geoseg.core.transitions import TRANSITIONS_TAG  # numpy: imported only here

    details = data.pop("band_details")
    tags = data["tags"]
    data["tags"] = {k: v for k, v in tags.items() if k not in (CLASSES_TAG, TRANSITIONS_TAG)}  # shown below, readable
    for key, value in data.items():
        if key != "bands":
            click.echo(f"{key:13s} {_safe(value)}")
    click.echo("bands         #  name        common    native    dtype     nodata    file")
    for i, band in enumerate(details):
        native = f"{band['resolution_m']:.4g} m" if band["resolution_m"] else "?"
        nodata = "-" if band["nodata"] is None else f"{band['nodata']:g}"
        click.echo(
            f"              {i + 1:<2d} {_safe(band['name'] or '-'):11s} {_safe(band['common_name'] or '-'):9s} "
            f"{native:9s} {band['dtype']:9s} {nodata:9s} {_safe(band['file'] or '')}".rstrip()
        )
    _show_classes(tags)


def _show_classes(tags: dict[str, Any]) -> None:
    """A class map's classes (id, colour, name), or a transitions map's from→to pairs (the first :data:`SHOWN_PAIRS`)."""
    from geoseg.core.classes import class_table_of_tag
    from geoseg.core.transitions import ARROW, TRANSITIONS_TAG

    try:
        classes = class_table_of_tag(tags[CLASSES_TAG])
    except (KeyError, ValueError, TypeError):
        classes = []  # no tag, or one geoseg cannot read: nothing to list
    try:
        pairs = [(int(r["value"]), str(r["from_class"]), str(r["to_class"])) for r in json.loads(tags[TRANSITIONS_TAG])]
    except (KeyError, ValueError, TypeError):
        pairs = []
    if pairs:
        colors = {c.id: c.color for c in classes}
        click.echo(f"transitions   {len(pairs)} from{ARROW}to pairs (value, colour, from{ARROW}to)")
        for value, a, b in pairs[:SHOWN_PAIRS]:
            shown = f"{_safe(a)} (unchanged)" if a == b else f"{_safe(a)}{ARROW}{_safe(b)}"
            click.echo(f"  {value:5d}  {_safe(colors.get(value, '-')):7s}  {shown}")
        if len(pairs) > SHOWN_PAIRS:
            click.echo(f"  ... {len(pairs) - SHOWN_PAIRS} more (all in --json, tag {TRANSITIONS_TAG})")
    elif classes:
        click.echo(f"classes       {len(classes)} (id, colour, name)")
        for c in classes:
            click.echo(f"  {c.id:5d}  {_safe(c.color):7s}  {_safe(c.name)}")
