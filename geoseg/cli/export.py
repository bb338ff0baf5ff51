"""``geoseg export``: thin wrapper over :func:`geoseg.export_onnx`."""

from __future__ import annotations

import click

from geoseg.cli.options import common_options, overwrite_option


@click.command(short_help="Export a model to ONNX for QGIS (Deepness, GeoDeep) and onnxruntime.")
@click.argument("model", metavar="MODEL")
@click.option("-o", "--output", required=True, metavar="model.onnx", help="ONNX file to write.")
@click.option("--chip-size", type=int, default=None, help="The file's static chip size in pixels (default: the model's).")
@click.option(
    "--smooth",
    type=int,
    default=0,
    show_default=True,
    metavar="N",
    help="Ask Deepness and GeoDeep to remove segments smaller than N pixels (seg_small_segment; 0: none).",
)
@overwrite_option
@common_options
def export(model: str, output: str, chip_size: int | None, smooth: int, overwrite: bool) -> None:
    """Write MODEL (a .pt checkpoint or `default`) as one self-contained ONNX file: weights
    inside, softmax inside, static square chips, dynamic batch axis, opset 17.

    The graph takes raw band values divided by 255 (what Deepness and GeoDeep
    feed) and applies the model's per-band normalization itself, so the
    Deepness standardization keys are identity (0 and 1). Metadata as Deepness
    reads it (model_type, class_names, resolution, tiles_size, tile_size,
    tiles_overlap, standardization_mean/std, seg_thresh 0 for softmax
    heads so peers take the plain argmax, seg_small_segment from --smooth)
    plus the geoseg model card, so geoseg runs the file like the checkpoint.
    The output is static but for the batch: (batch, classes, chip, chip).

    \b
    Example:
      geoseg export default -o landcover.onnx
      geoseg predict scene.tif -m landcover.onnx -o classes.tif
    """
    from geoseg.model.onnx import export_onnx

    path = export_onnx(model, output, chip_size=chip_size, overwrite=overwrite, smooth=smooth)
    click.echo(f"geoseg: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", err=True)
