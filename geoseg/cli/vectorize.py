"""``geoseg vectorize``: thin wrapper over :func:`geoseg.vectorize`."""

from __future__ import annotations

import logging

import click

from geoseg.cli.options import common_options, make_progress, overwrite_option

log = logging.getLogger("geoseg")


def polygon_options(func):
    """Options shared by vectorize and run."""
    for option in reversed(
        [
            click.option(
                "--min-area",
                type=float,
                default=None,
                metavar="M2",
                help="Merge regions smaller than this many square metres into the neighbour they share the "
                "longest border with (before polygonizing, so no holes appear).",
            ),
            click.option(
                "--simplify",
                type=float,
                default=None,
                metavar="M",
                help="Simplify polygons with this tolerance in metres, as a coverage: neighbours keep shared "
                "borders (no gaps, no overlaps).",
            ),
        ]
    ):
        func = option(func)
    return func


@click.command(short_help="Polygonize a class map into GeoPackage, Shapefile, GeoJSON or FlatGeobuf.")
@click.argument("classes", metavar="classes.tif")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="OUT.gpkg|.geojson|.shp|.fgb",
    help="Vector file to write; the extension picks the format. GeoJSON is written in EPSG:4326 "
    "(RFC 7946), the others in the class map's CRS.",
)
@polygon_options
@click.option(
    "--confidence",
    default=None,
    metavar="confidence.tif",
    help="Add each polygon's mean confidence (the confidence.tif written with the class map).",
)
@click.option(
    "--background", type=int, multiple=True, metavar="ID", help="Leave out polygons of this class id (repeat for several)."
)
@click.option(
    "--classes",
    "classes_table",
    default=None,
    metavar="MODEL|classes.json",
    help="Class names and colours for a class map without a class table: a geoseg model file, or JSON "
    '([{"id": 0, "name": "water", "color": "#1f78b4"}, ...] or {"0": "water"}).',
)
@click.option("--precision", type=int, default=None, metavar="N", help="GeoJSON only: decimal places of coordinates (default 7).")
@overwrite_option
@common_options
def vectorize(classes, output, min_area, simplify, confidence, background, classes_table, precision, overwrite) -> None:
    """Turn the class regions of classes.tif into polygons with class_id, class_name, area_m2,
    perimeter_m (and mean_confidence).

    Regions are traced by GDAL's polygonizer, so without --min-area the
    polygons rasterize back to the class map exactly. Nodata is never a
    polygon. A GeoPackage carries its QGIS style (class colours and names).
    Shapefile fields are class_id, class_name, area_m2, perim_m, mean_conf.

    The map is read in strips and each polygon is written as soon as its
    region is complete, so memory does not grow with the number of polygons
    (--simplify holds them all: a coverage is simplified as a whole).

    \b
    Example:
      geoseg vectorize classes.tif -o polygons.gpkg --min-area 500 --simplify 5 --confidence confidence.tif
    """
    from geoseg.polygonize.api import vectorize as run_vectorize

    update, close = make_progress()
    try:
        result = run_vectorize(
            classes,
            output,
            min_area=min_area,
            simplify=simplify,
            confidence=confidence,
            background=list(background),
            classes_table=classes_table,
            precision=precision,
            overwrite=overwrite,
            progress=update,
        )
    finally:
        close()
    counts = ", ".join(f"{name} {n}" for name, n in result.per_class.items())
    log.info("%s: %d polygons (%s) in %.1f s", output, result.polygons, counts or "none", result.seconds)
