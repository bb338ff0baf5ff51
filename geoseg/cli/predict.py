"""``geoseg predict``: thin wrapper over :func:`geoseg.predict`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from geoseg.cli.options import common_options, inference_options, model_option
from geoseg.cli.progress import progress_shown

log = logging.getLogger("geoseg")


@click.command(short_help="Predict a class map for one scene.")
@click.argument("image", metavar="IMAGE")
@model_option(required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="classes.tif",
    help="Class map to write (GeoTIFF, uint8, 255 = nodata; the name ends in .tif or .tiff). Its QGIS style "
    "(class names and colours) is written beside it with the same name and .qml.",
)
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
    image: str,
    model: str,
    output: str,
    confidence: str | None,
    probabilities: str | None,
    overwrite: bool,
    **option_values: Any,
) -> None:
    """Predict a class map for IMAGE with MODEL, stitched seamlessly on IMAGE's grid.

    IMAGE is any raster GDAL reads (GeoTIFF, VRT, JP2, /vsicurl/ COGs). The
    scene is read chip by chip on one grid; overlapping chips are blended, so
    memory does not depend on the scene's size. Outputs are written under
    temporary names and renamed when complete. A scene whose pixel size
    differs from the model's by more than 25% is read at the model's pixel
    size (--resample auto) and its outputs written on IMAGE's grid, or on the
    model's with --output-grid model.

    \b
    Example:
      geoseg predict scene.tif -m model.pt -o classes.tif --confidence confidence.tif
    """
    from geoseg.core.options import PredictOptions
    from geoseg.inference.checks import check_outputs
    from geoseg.inference.predict import predict as run_predict
    from geoseg.io.outputs import style_beside

    named = {"classes": output, "confidence": confidence, "probabilities": probabilities}
    # the maps before their style: a rerun is refused naming the map, a scene's own file as that (not "exists")
    check_outputs({k: Path(v) for k, v in named.items() if v}, [image], overwrite, scene=image)
    style = style_beside(Path(output), image, overwrite)  # not the scene's own (scene.tif into scene.tiff)
    with progress_shown() as update:
        result = run_predict(
            image,
            model,
            output,
            PredictOptions.from_mapping(option_values),
            confidence=confidence,
            probabilities=probabilities,
            overwrite=overwrite,
            progress=update,
        )
    if style is not None:
        _write_style(Path(output), style)
    log.info(
        "%s: %d chips predicted, %d skipped (nodata), %.1f s",
        output,
        result.chips_predicted,
        result.chips_skipped,
        result.seconds["total"],
    )


def _write_style(classes: Path, style: Path) -> None:
    """The QGIS style of the class map just written: its class names and colours instead of 256 numbered entries."""
    from geoseg.io.classmap import class_table_of
    from geoseg.io.outputs import write_text_atomic
    from geoseg.io.raster import gdal_env, open_scene
    from geoseg.report.styles import classes_qml

    with gdal_env(), open_scene(classes) as ds:
        table = class_table_of(ds)
    write_text_atomic(style, classes_qml(table))
