"""``geoseg evaluate``: thin wrapper over :func:`geoseg.evaluate`."""

from __future__ import annotations

import click

from geoseg.cli.options import common_options, make_progress, overwrite_option


@click.command(short_help="Score a class map against truth labels (IoU, F1, confusion matrix).")
@click.argument("pred", metavar="PRED.tif")
@click.argument("truth", metavar="TRUTH")
@click.option("--label-field", default=None, metavar="F", help="Field of truth polygons that holds the labels.")
@click.option(
    "--classes",
    default=None,
    metavar="FILE",
    help="How truth values map to the map's classes: a training config, {classes: [...]} or "
    '{"value": "class name"} (YAML or JSON). Default: polygon labels are class names, mask '
    "values are class ids.",
)
@click.option("--json", "json_path", default=None, metavar="metrics.json", help="Also write the metrics as JSON.")
@overwrite_option
@common_options
def evaluate(pred: str, truth: str, label_field: str | None, classes: str | None, json_path: str | None, overwrite: bool) -> None:
    """Per-class IoU, F1, precision and recall, their means, pixel accuracy and the confusion
    matrix of PRED.tif (a geoseg class map) against TRUTH (a mask raster, or polygons in any
    format and CRS with --label-field). Unlabeled truth pixels and nodata are not scored.

    \b
    Example:
      geoseg evaluate out/classes.tif labels.gpkg --label-field fclass --json metrics.json
    """
    from geoseg.core.metrics import format_table
    from geoseg.io.paths import check_output
    from geoseg.training.evaluation import evaluate as run_evaluate
    from geoseg.training.evaluation import write_json

    out = None if json_path is None else check_output(json_path, [pred, truth], overwrite)
    update, close = make_progress()
    try:
        summary = run_evaluate(pred, truth, label_field=label_field, classes=classes, progress=update)
    finally:
        close()
    click.echo(format_table(summary))
    if out is not None:
        write_json(summary, out)
