"""``geoseg tile``: thin wrapper over :func:`geoseg.training.chipset.tile`."""

from __future__ import annotations

import click

from geoseg.cli.options import common_options, overwrite_option, resolution_option
from geoseg.cli.progress import progress_shown, summary


@click.command(short_help="Cut a scene (and its labels) into georeferenced GeoTIFF chips.")
@click.argument("image", metavar="IMAGE")
@click.option("-o", "--output", "chip_dir", required=True, metavar="CHIP_DIR", help="Chip folder to create.")
@click.option(
    "--labels",
    default=None,
    metavar="LABELS",
    help="Labels: polygons (lines and points with --buffer) in any format and CRS GDAL reads (with "
    "--label-field), or a mask raster (resampled nearest onto the scene's grid when its grid differs; pixels outside "
    "its footprint are unlabeled).",
)
@click.option("--label-field", default=None, metavar="F", help="Field of the label features that holds the labels.")
@click.option(
    "--buffer",
    type=float,
    default=None,
    metavar="METRES",
    help="Turn the labels' lines into corridors reaching METRES on each side and points into discs of radius "
    "METRES (every class; in metres also in a geographic CRS). Without it lines and points are left out "
    "(with a warning), or refused when the labels hold nothing else. Polygons and mask rasters are used as they are.",
)
@click.option("--chip-size", type=int, default=256, show_default=True, help="Chip size in pixels.")
@click.option(
    "--overlap",
    default="0",
    show_default=True,
    metavar="F|Npx",
    help="Overlap of neighbouring chips: a fraction in [0, 1) of the chip, or pixels such as 64px.",
)
@click.option(
    "--min-labeled",
    type=float,
    default=0.0,
    show_default=True,
    metavar="F",
    help="Skip chips whose share of labeled pixels is below F (0-1); with labels, chips without any "
    "labeled pixel are always skipped.",
)
@resolution_option
@overwrite_option
@common_options
def tile(
    image: str,
    chip_dir: str,
    labels: str | None,
    label_field: str | None,
    buffer: float | None,
    chip_size: int,
    overlap: str,
    min_labeled: float,
    overwrite: bool,
) -> None:
    """Write CHIP_DIR with images/ and masks/ (GeoTIFF chips with the scene's CRS and their own
    transform), index.gpkg (chip footprints, layer chips), classes.json and tile.json.

    Each distinct label value becomes a class (sorted); unlabeled pixels and
    nodata are 255 in the masks (a mask raster keeps its own unlabeled
    value). A scene smaller than a chip gets chips reaching past its edge:
    nodata there (the scene's nodata value, else the chip's mask), 255 in the
    masks, and the chip's whole extent in index.gpkg, as every chip.
    Overlapping polygons: the smaller one is on top. Lines and points
    become labels with --buffer: a road with --buffer 5 is a 10 m-wide
    corridor. geoseg train reads a chip folder with `data: {chips: CHIP_DIR}`;
    its classes are the labels' (a background class for unlabeled pixels is
    set in a training config on scenes: data.background).

    \b
    Example:
      geoseg tile scene.tif -o chips/ --labels landuse.gpkg --label-field fclass --min-labeled 0.1
      geoseg tile scene.tif -o road_chips/ --labels roads.gpkg --label-field highway --buffer 5
    """
    from geoseg.training.chipset import tile as run_tile

    with progress_shown() as update:
        result = run_tile(
            image,
            chip_dir,
            labels=labels,
            label_field=label_field,
            buffer=buffer,
            chip_size=chip_size,
            overlap=overlap,
            min_labeled=min_labeled,
            overwrite=overwrite,
            progress=update,
        )
    skipped = f", {result.skipped_unlabeled} skipped as unlabeled" if labels else ""
    summary(f"geoseg: {chip_dir}: {result.written} chips written{skipped}, {result.skipped_empty} skipped as nodata")
