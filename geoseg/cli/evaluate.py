"""``geoseg evaluate``: thin wrapper over :func:`geoseg.evaluate`."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli.options import common_options, overwrite_option
from geoseg.cli.progress import progress_shown


def _json_output(path: Path, inputs: list[str], overwrite: bool) -> Path:
    """``--json``'s path, checked before any work; missing parent folders are created when it is written, as
    --report's are (the nearest existing one must be a writable folder).

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "new" / "metrics.json"
        >>> _json_output(out, ["pred.tif", "truth.tif"], False) == out, out.parent.exists()
        (True, False)
    """
    from geoseg.io.paths import check_output, check_writable_folder

    if not str(path.parent) or path.parent.exists():
        return check_output(path, inputs, overwrite)
    check_writable_folder(next(p for p in path.parents if p.exists()))
    return path


@click.command(short_help="Score a class map against truth labels (IoU, F1, confusion matrix, error map).")
@click.argument("pred", metavar="PRED.tif")
@click.argument("truth", metavar="TRUTH")
@click.option("--label-field", default=None, metavar="F", help="Field of truth polygons that holds the labels.")
@click.option(
    "--classes",
    default=None,
    metavar="FILE",
    help="How truth values map to the map's classes: a training config (without data.classes: the label values "
    "are the map's class names, as training numbered them), a chip folder's classes.json, {classes: [...]} or "
    '{"value": "class name"} (YAML or JSON). Default: polygon labels are class names, mask '
    "values are class ids.",
)
@click.option(
    "--json",
    "json_path",
    default=None,
    metavar="metrics.json",
    help="Also write the metrics as JSON (missing parent folders are created, as --report's are).",
)
@click.option(
    "--report",
    "report",
    default=None,
    metavar="DIR",
    help="Also write a report folder: metrics.json, per_class.csv, confusion.png and errors.tif (+ errors.qml) on "
    "PRED's grid. An existing report is replaced only with --overwrite.",
)
@overwrite_option
@common_options
def evaluate(
    pred: str,
    truth: str,
    label_field: str | None,
    classes: str | None,
    json_path: str | None,
    report: str | None,
    overwrite: bool,
) -> None:
    """Per-class IoU, F1, precision and recall, their means, pixel accuracy and the confusion
    matrix of PRED.tif (a geoseg class map) against TRUTH (a mask raster, or polygons in any
    format and CRS with --label-field). Unlabeled truth pixels (also outside a truth mask's
    footprint) and nodata are not scored; a class without truth pixels shows "-" (null in
    JSON), not 0, and scores resting on fewer than 1000 truth pixels are named in a warning.

    \b
    --report DIR writes a folder (built under a temporary name, renamed when complete;
    an existing report is replaced only with --overwrite, other folders never):
      metrics.json    what --json writes (plus geoseg_version)
      per_class.csv   class_id, class_name, iou, precision, recall, f1, truth_pixels,
                      predicted_pixels (empty cells where a class has no truth)
      confusion.png   the confusion matrix, rows normalized, with class names and pixel counts
      errors.tif      on PRED's grid: 0 correct, 1+k wrong where the truth is class k
                      (coloured like class k), 255 not scored (no truth or no prediction);
                      errors.qml beside it styles it in QGIS

    \b
    Examples:
      geoseg evaluate out/classes.tif labels.gpkg --label-field fclass --json metrics.json
      geoseg evaluate out/classes.tif truth.tif --report out/evaluation
    """
    from geoseg.core.errors import OptionError
    from geoseg.core.metrics import format_table
    from geoseg.io.paths import canonical
    from geoseg.training.evaluation import evaluate as run_evaluate
    from geoseg.training.evaluation import write_json

    out = None if json_path is None else _json_output(Path(json_path), [pred, truth], overwrite)
    if out is not None and report is not None:
        folder = canonical(Path(report))
        if canonical(out) == folder or folder in canonical(out).parents:
            raise OptionError(f"--json {json_path} lies inside --report {report}: the report holds metrics.json already")
    with progress_shown() as update:
        summary = run_evaluate(
            pred, truth, label_field=label_field, classes=classes, progress=update, report=report, overwrite=overwrite
        )
    click.echo(format_table(summary))
    if out is not None:
        write_json(summary, out)
