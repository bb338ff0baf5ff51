"""``geoseg vectorize``: thin wrapper over :func:`geoseg.polygonize.api.write_polygons` (formats from the registry)."""

from __future__ import annotations

import logging

import click

from geoseg.cli.options import common_options, overwrite_option, polygon_options
from geoseg.cli.progress import progress_shown
from geoseg.io.features import FORMATS

log = logging.getLogger("geoseg")

_EXTENSIONS = "|".join(fmt.extensions[0] for fmt in FORMATS)
_NAMES = ", ".join(fmt.name for fmt in FORMATS[:-1]) + f" or {FORMATS[-1].name}"
_WGS84 = " and ".join(fmt.name for fmt in FORMATS if fmt.wgs84)
_PRECISION = {fmt.name: fmt.precision[1] for fmt in FORMATS if fmt.precision}


@click.command(short_help=f"Polygonize a class map into {_NAMES}.")
@click.argument("classes", metavar="classes.tif")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar=f"OUT{_EXTENSIONS}",
    help=f"Vector file to write; the extension picks the format. {_WGS84} are written in EPSG:4326 "
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
    "--background",
    type=int,
    multiple=True,
    metavar="ID",
    help="Leave out polygons of this class id (repeat for several); an id the map does not have is warned about.",
)
@click.option(
    "--classes",
    "classes_table",
    default=None,
    metavar="MODEL|CONFIG.yaml|classes.json",
    help="Class names and colours for a class map without a class table: a geoseg model file, the training "
    "config the model was trained with (its data.classes, then data.background), or a JSON/YAML class table "
    '([{"id": 0, "name": "water", "color": "#1f78b4"}, ...] or {"0": "water"}; ids up to 254 for an 8-bit map, '
    "beyond for a 16 or 32-bit one such as CORINE's 111..523).",
)
@click.option(
    "--precision",
    type=int,
    default=None,
    metavar="N",
    help=f"{' and '.join(_PRECISION)} only: decimal places of coordinates "
    f"(default {', '.join(sorted({str(d) for d in _PRECISION.values()}))}).",
)
@overwrite_option
@common_options
def vectorize(
    classes: str,
    output: str,
    min_area: float | None,
    simplify: float | None,
    confidence: str | None,
    background: tuple[int, ...],
    classes_table: str | None,
    precision: int | None,
    overwrite: bool,
) -> None:
    """Turn the class regions of classes.tif into polygons with class_id, class_name, area_m2,
    perimeter_m (and mean_confidence).

    classes.tif is a class map: one band of integer class ids (a scene is
    refused: predict it first). A map with more than 255 different values
    that its class table does not name is refused too, and a --background
    id that is neither a class of the table nor a value of the map is
    named in a warning.

    Regions are traced by GDAL's polygonizer, so without --min-area the
    polygons rasterize back to the class map exactly. Nodata is never a
    polygon. A GeoPackage carries its QGIS style (class colours and names);
    other formats get it beside them as NAME.qml (not where that would be
    the class map's own style). Shapefile fields are class_id, class_name,
    area_m2, perim_m, mean_conf. GeoJSON and GeoJSON Lines are EPSG:4326
    (RFC 7946: split at the antimeridian), and neighbouring polygons there
    share a vertex wherever one's boundary meets the other's edge, so they
    stay edge-matched after reprojection and rounding.

    The map is read in strips and each polygon is written as soon as its
    region is complete, so memory does not grow with the number of polygons
    (--simplify holds them all: a coverage is simplified as a whole).

    \b
    Example:
      geoseg vectorize classes.tif -o polygons.gpkg --min-area 500 --simplify 5 --confidence confidence.tif
    """
    from geoseg.core.options import VectorizeOptions
    from geoseg.polygonize.api import write_polygons

    options = VectorizeOptions(min_area=min_area, simplify=simplify, background=background, precision=precision)
    with progress_shown() as update:
        result = write_polygons(
            classes,
            output,
            options,
            confidence=confidence,
            classes_table=classes_table,
            overwrite=overwrite,
            progress=update,
        )
    counts = ", ".join(f"{name} {n}" for name, n in result.per_class.items())
    log.info("%s: %d polygons (%s) in %.1f s", output, result.polygons, counts or "none", result.seconds)
