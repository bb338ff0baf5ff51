"""``geoseg predict``: thin wrapper over :func:`geoseg.predict`."""

from __future__ import annotations

import logging

import click

from geoseg.cli.options import chip_size_option, common_options, make_progress, overlap_option, overwrite_option

log = logging.getLogger("geoseg")


def model_option(required: bool) -> click.Option:
    return click.option(
        "-m",
        "--model",
        "model",
        required=required,
        metavar="MODEL",
        help="Model: a geoseg .pt checkpoint, an .onnx file (geoseg export or Deepness metadata), or 'default' for "
        "the bundled model (a file named default is ./default).",
    )


def inference_options(func):
    """Options shared by predict and run."""
    for option in reversed(
        [
            click.option(
                "--bands",
                default=None,
                metavar="LIST",
                help="Scene bands for the model's inputs, in the model's order: 1-based indexes or band "
                "descriptions (e.g. 4,3,2 or B04,B03,B02). Default: by name when the scene's band "
                "descriptions hold the model's band names, else in order when the counts agree.",
            ),
            chip_size_option,
            overlap_option,
            click.option(
                "--batch-size",
                default=None,
                type=int,
                metavar="N",
                help="Chips per model call. Default: 2 on the CPU (small batches run fastest there, BENCHMARKS.md), 8 on a GPU.",
            ),
            click.option(
                "--device",
                default="auto",
                show_default=True,
                type=click.Choice(["auto", "cpu", "cuda"]),
                help="Where the model runs; auto picks a GPU if there is one.",
            ),
            click.option(
                "--backend",
                default="auto",
                show_default=True,
                type=click.Choice(["auto", "torch", "onnx"]),
                help="Inference engine: torch, or onnx (onnxruntime; a .pt model is exported in memory first). "
                "auto runs .onnx files with onnxruntime, and .pt models too on CPU for scenes of 64 "
                "chips or more when onnxruntime is installed (measured 1.36x faster on 2 CPU cores, "
                "see BENCHMARKS.md).",
            ),
            click.option(
                "--tta", is_flag=True, help="Test-time augmentation: average the predictions of flipped chips (4x slower)."
            ),
            click.option(
                "--aoi",
                default=None,
                metavar="POLYGONS",
                help="Predict only where these polygons (any vector format and CRS) lie; elsewhere is nodata.",
            ),
            click.option(
                "--block-width",
                default=16384,
                show_default=True,
                type=int,
                metavar="PX",
                help="Scenes wider than this are stitched in vertical blocks (each with a halo of the chip "
                "overlap, same pixels), which bounds memory for any width; with --workers or --scheduler "
                "the blocks of one scene run as separate Dask tasks.",
            ),
            overwrite_option,
        ]
    ):
        func = option(func)
    return func


@click.command(short_help="Predict a class map for one scene.")
@click.argument("image", metavar="IMAGE")
@model_option(required=True)
@click.option("-o", "--output", required=True, metavar="classes.tif", help="Class map to write (GeoTIFF, uint8, 255 = nodata).")
@click.option(
    "--confidence",
    default=None,
    metavar="confidence.tif",
    help="Also write the winning class's probability in percent (uint8, 255 = nodata).",
)
@click.option(
    "--probabilities",
    default=None,
    metavar="probs.tif",
    help="Also write every class's probability in percent, one band per class.",
)
@inference_options
@common_options
def predict(
    image,
    model,
    output,
    confidence,
    probabilities,
    bands,
    chip_size,
    overlap,
    batch_size,
    device,
    backend,
    tta,
    aoi,
    block_width,
    overwrite,
) -> None:
    """Predict a class map for IMAGE with MODEL, stitched seamlessly on IMAGE's grid.

    IMAGE is any raster GDAL reads (GeoTIFF, VRT, JP2, /vsicurl/ COGs). The
    scene is read chip by chip on one grid; overlapping chips are blended, so
    memory does not depend on the scene's size. Outputs are written under
    temporary names and renamed when complete.

    \b
    Example:
      geoseg predict scene.tif -m model.pt -o classes.tif --confidence confidence.tif
    """
    from geoseg.inference.predict import predict as run_predict

    update, close = make_progress()
    try:
        result = run_predict(
            image,
            model,
            output,
            confidence=confidence,
            probabilities=probabilities,
            bands=bands,
            chip_size=chip_size,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            tta=tta,
            aoi=aoi,
            overwrite=overwrite,
            progress=update,
            backend=backend,
            block_width=block_width,
        )
    finally:
        close()
    log.info(
        "%s: %d chips predicted, %d skipped (nodata), %.1f s",
        output,
        result.chips_predicted,
        result.chips_skipped,
        result.seconds["total"],
    )
