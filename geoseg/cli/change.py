"""``geoseg change``: thin wrapper over :func:`geoseg.change`."""

from __future__ import annotations

import logging
from typing import Any

import click

from geoseg.cli.options import common_options, inference_options, model_option, polygon_options
from geoseg.cli.progress import progress_shown

log = logging.getLogger("geoseg")


@click.command(short_help="Land-cover change between two dates: transitions, change polygons, from-to areas.")
@click.argument("before", metavar="BEFORE")
@click.argument("after", metavar="AFTER")
@click.option("-o", "--output", "outdir", required=True, metavar="OUTDIR", help="Output folder to create.")
@model_option(required=False)
@click.option(
    "--classes",
    "classes_table",
    default=None,
    metavar="MODEL|classes.json",
    help="Class names and colours for both maps (replacing their own tables): a geoseg model (.pt, .onnx or "
    "'default'), or JSON "
    '([{"id": 0, "name": "water", "color": "#1f78b4"}, ...] or {"0": "water"}). Needed for maps of float '
    "values and for maps whose class tables do not match by name.",
)
@polygon_options
@inference_options
@common_options
def change(
    before: str,
    after: str,
    outdir: str,
    model: str | None,
    classes_table: str | None,
    overwrite: bool,
    **option_values: Any,
) -> None:
    """Compare the class maps BEFORE and AFTER and write OUTDIR with
    transitions.tif (+ transitions.qml), changes.gpkg, changes.geojson
    (+ changes.qml), matrix.csv, preview.png and summary.json (written
    last: its presence means the comparison is complete).

    BEFORE and AFTER are class maps: geoseg's classes.tif, or any
    single-band integer raster of up to 1024 class values (name them with
    --classes; codes such as CORINE's 311 work). With -m MODEL they are
    scenes instead, predicted first with the same options as `geoseg run`;
    the two class maps are kept as before_classes.tif and after_classes.tif.
    Prediction options without -m are refused.

    AFTER is compared on BEFORE's grid, cut to where the two overlap; when its CRS,
    pixel size or alignment differ it is resampled (nearest), and
    summary.json says so. Pixels that are nodata on either date are nodata
    in transitions.tif and left out of every count. Class tables that differ
    are matched by class name; tables that do not match are refused.

    \b
    transitions.tif  one value per from→to pair that occurs (uint8, uint16
                     beyond 255 pairs; the pairs are in the
                     GEOSEG_TRANSITIONS tag and the colour table); QGIS
                     shows unchanged pixels light grey, changes in the
                     colour of the class they became
    changes.gpkg     polygons of changed regions: from_class, to_class,
                     area_m2 (on the ellipsoid in geographic CRSs and Web
                     Mercator), perimeter_m, class_id (the transitions.tif
                     value), class_name; --min-area merges smaller changes
                     into their surroundings, --simplify smooths them;
                     changes.geojson holds the same in EPSG:4326
    matrix.csv       from_class,to_class,pixels,area_m2 for every pair,
                     then totals: to_class "total" rows are each class's
                     area BEFORE, from_class "total" rows its area AFTER
    summary.json     inputs, alignment, and per class the area before and
                     after, gain, loss and net (m² and pixels)
    preview.png      before, after and the changes side by side

    Maps of any size are read in strips of rows, so memory stays bounded.
    An existing OUTDIR that geoseg change wrote is replaced only with
    --overwrite, once the new one is complete.

    \b
    Example:
      geoseg change 2019/classes.tif 2024/classes.tif -o change/ --min-area 500
      geoseg change s2_2019.tif s2_2024.tif -o change/ -m default
      geoseg change lc_2015.tif lc_2020.tif -o change/ --classes legend.json
    """
    from geoseg.core.options import RunOptions
    from geoseg.flows.change import change as compare

    options = RunOptions.from_mapping(option_values)
    with progress_shown() as update:
        result = compare(before, after, outdir, model, options, classes_table=classes_table, overwrite=overwrite, progress=update)
    summary = result.summary
    log.info(
        "%s: %.2f%% of %d compared pixels changed, %d transitions, %d polygons",
        outdir,
        100 * summary["changed_share"],
        summary["pixels"]["compared"],
        summary["transitions"],
        summary["polygons"],
    )
