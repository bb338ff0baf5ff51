"""``geoseg run``: thin wrapper over :func:`geoseg.run`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from geoseg.cli.options import common_options, inference_options, model_option, polygon_options
from geoseg.cli.progress import INTERRUPTED, progress_shown, summary

if TYPE_CHECKING:
    from geoseg.core.options import RunOptions

log = logging.getLogger("geoseg")


@click.command(short_help="Predict, vectorize and style a scene into an output folder.")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-o", "--output", "outdir", required=True, metavar="OUTDIR", help="Output folder to create.")
@model_option(required=False)
@inference_options
@polygon_options
@click.option(
    "--preview-bands",
    default=None,
    metavar="LIST",
    help="Scene bands preview.png shows as red, green, blue: three 1-based indexes or band descriptions "
    "(e.g. 4,3,2 or B08,B04,B03 for false colour), or one shown in grey. Default: natural colour by band "
    "name (red/green/blue, Sentinel-2 B04/B03/B02, Landsat's numbering by sensor), else by colour "
    "interpretation, else the first three bands (-v says which were shown and why).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    metavar="N",
    help="Batches: run the scenes on a local Dask cluster of N single-thread worker processes.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Batches: run the scenes on an existing Dask cluster, e.g. tcp://10.0.0.5:8786.",
)
@common_options
def run(
    images: tuple[str, ...],
    outdir: str,
    model: str | None,
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    **option_values: Any,
) -> None:
    """Run the whole pipeline on IMAGE and write OUTDIR with classes.tif, confidence.tif,
    polygons.gpkg, polygons.geojson, classes.qml, polygons.qml, areas.csv, preview.png
    and run.json (written last: its presence means the run is complete).

    OUTDIR is built beside its final place under a temporary name and renamed
    when complete (missing parent folders are created). An existing OUTDIR
    that geoseg wrote is refused unless --overwrite, and is replaced only once
    the new one is complete; a folder holding other files is never replaced
    (an empty one is written into). Without -m the bundled default
    model is used (8 land-use classes for 10-band Sentinel-2 L1C at 10 m; see
    `geoseg info default`). --min-area and --simplify apply to the polygons
    only; classes.tif is the model's own map. A scene whose pixel size differs
    from the model's by more than 25% is read at the model's pixel size
    (--resample auto), its outputs written on its own grid (--output-grid
    scene) or the model's; run.json's grid says which.

    Several scenes (paths, a quoted glob such as 'tiles/*.tif', or @list.txt
    with one path per line) write OUTDIR/<scene name>/ per scene, batch.json
    (each scene done, skipped, outside --aoi, or failed with the reason),
    classes.vrt (a mosaic of the class maps) and polygons.gpkg (all polygons,
    field scene). Running the same batch into the same OUTDIR again skips
    scenes that are complete (--overwrite redoes all); when one was made from
    another file of its name or a file changed since, with another model or
    other options that change the outputs, the run is refused before any
    work, naming the scene. A failed scene does not stop the others, and the
    exit code is then 3. batch.json is updated as each scene finishes;
    classes.vrt is left out (a note says why) when the scenes differ in CRS,
    pixel size, orientation or class table. --workers N or --scheduler ADDRESS
    run the scenes as Dask tasks (each worker loads the model once and runs
    each task on one core: one thread for the model and, with the model on
    the CPU, one chip reader and one stitching thread; the outputs are the same as in one process up to the
    model's floating-point rounding) and always use the
    batch layout, also for one scene. A scene wider than --block-width is
    then split into vertical blocks predicted on different workers and
    joined into one seamless classes.tif (the same pixels and polygons as in one process).

    \b
    Example:
      geoseg run sentinel2.tif -o results/ --min-area 500 --simplify 5
      geoseg run scene.tif -o results/ -m model.pt
      geoseg run 'tiles/*.tif' -o mosaic/ -m model.pt
      geoseg run mosaic.vrt -o out/ -m model.pt --workers 2 --block-width 8192
    """
    from geoseg.core.options import RunOptions
    from geoseg.flows.batch import is_batch

    options = RunOptions.from_mapping(option_values)
    if is_batch(images) or workers is not None or scheduler is not None:
        _run_batch(images, outdir, model or "default", overwrite, workers, scheduler, options)
        return
    from geoseg.flows.run import run as run_pipeline

    with progress_shown() as update:
        result = run_pipeline(images[0], outdir, model or "default", options, overwrite=overwrite, progress=update)
    counts = result.record["counts"]
    log.info(
        "%s: %d chips, %d polygons, %.1f s",
        outdir,
        counts["chips_predicted"],
        counts["polygons"],
        result.record["timings_s"]["total"],
    )


def _run_batch(
    images: tuple[str, ...],
    outdir: str,
    model: str,
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    options: RunOptions,
) -> None:
    import sys

    from geoseg.flows.batch import run_batch

    click.get_current_context().meta[INTERRUPTED] = f"scenes finished are kept in {outdir}: run the same command to go on"
    with progress_shown() as update:
        result = run_batch(
            images, outdir, model, overwrite=overwrite, progress=update, workers=workers, scheduler=scheduler, options=options
        )
    counts = result.counts
    outside = f", {counts['outside']} outside --aoi" if counts["outside"] else ""
    summary(
        f"geoseg: {outdir}: {counts['done']} done, {counts['skipped']} skipped (already complete){outside}, "
        f"{counts['failed']} failed"
    )
    for note in result.notes:  # what the batch outputs left out (classes.vrt of scenes on other grids), as in batch.json
        summary(f"geoseg: note: {note}")
    for scene in result.failed:
        click.echo(f"geoseg: failed: {scene['scene']}: {scene['reason']}", err=True)
    if result.failed:
        sys.exit(3)
