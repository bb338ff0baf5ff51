"""``geoseg run``: thin wrapper over :func:`geoseg.run`."""

from __future__ import annotations

import logging

import click

from geoseg.cli.options import common_options, make_progress
from geoseg.cli.predict import inference_options, model_option
from geoseg.cli.vectorize import polygon_options

log = logging.getLogger("geoseg")


@click.command(short_help="Predict, vectorize and style a scene into an output folder.")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE")
@click.option("-o", "--output", "outdir", required=True, metavar="OUTDIR", help="Output folder to create.")
@model_option(required=False)
@inference_options
@polygon_options
@common_options
def run(images, outdir, model, bands, chip_size, overlap, batch_size, device, backend, tta, aoi, overwrite, min_area,
        simplify) -> None:
    """Run the whole pipeline on IMAGE and write OUTDIR with classes.tif, confidence.tif,
    polygons.gpkg, polygons.geojson, classes.qml, polygons.qml, areas.csv, preview.png
    and run.json (written last: its presence means the run is complete).

    OUTDIR is built beside its final place under a temporary name and renamed
    when complete; an existing OUTDIR is refused unless --overwrite, and is
    replaced only once the new one is complete. Without -m the bundled default
    model is used (8 land-use classes for 10-band Sentinel-2 L1C at 10 m; see
    `geoseg info default`). --min-area and --simplify apply to the polygons
    only; classes.tif is the model's own map.

    \b
    Example:
      geoseg run sentinel2.tif -o results/ --min-area 500 --simplify 5
      geoseg run scene.tif -o results/ -m model.pt
    """
    from geoseg.pipeline import run as run_pipeline

    if len(images) > 1:
        raise click.UsageError("several scenes in one run are not supported by this version yet: run them one by one")
    update, close = make_progress()
    try:
        result = run_pipeline(
            images[0], outdir, model or "default", min_area=min_area, simplify=simplify, overwrite=overwrite,
            progress=update, bands=bands, chip_size=chip_size, overlap=overlap, batch_size=batch_size, device=device,
            tta=tta, aoi=aoi, backend=backend)
    finally:
        close()
    counts = result.record["counts"]
    log.info("%s: %d chips, %d polygons, %.1f s", outdir, counts["chips_predicted"], counts["polygons"],
             result.record["timings_s"]["total"])
