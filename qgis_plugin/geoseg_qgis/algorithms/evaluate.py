"""geoseg:evaluate: score a class map against truth labels; the metrics as outputs, a report folder if asked."""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from ..base import GeosegAlgorithm, advanced
from ..selection import LayerParameter
from ..styles import load_on_completion


class EvaluateAlgorithm(GeosegAlgorithm):
    command = "evaluate"
    title = "Evaluate class map"
    group_title = "Training"
    stages = {"evaluate": (0.0, 100.0)}
    help_text = (
        "<p>Runs <code>geoseg evaluate</code>: per-class IoU, F1, precision and recall, their means, pixel "
        "accuracy and the confusion matrix of a geoseg class map against truth: a mask raster, or polygons with "
        "the label field (all, or the selected features only). Unlabeled truth pixels and nodata are not scored. "
        "The table is shown in the log.</p>"
        "<p><b>Outputs</b>: MEAN_IOU, MEAN_F1, ACCURACY and PIXELS (numbers), METRICS (the metrics as JSON text), "
        "the metrics JSON file if asked for, and the report folder if asked for (metrics.json, per_class.csv, "
        "confusion.png and errors.tif, an error map loaded with its style).</p>"
    )

    def define(self):
        self.addParameter(QgsProcessingParameterRasterLayer("PRED", "Class map (geoseg classes.tif)"))
        self.addParameter(
            LayerParameter("TRUTH", "Truth: mask raster or polygons", [QgsProcessing.TypeRaster, QgsProcessing.TypeVectorPolygon])
        )
        self.addParameter(QgsProcessingParameterString("LABEL_FIELD", "Label field of truth polygons", optional=True))
        self.addParameter(
            advanced(
                QgsProcessingParameterFile(
                    "CLASSES",
                    "How truth values map to the map's classes (training config, YAML or JSON)",
                    optional=True,
                    fileFilter="Class mappings (*.yaml *.yml *.json);;All files (*)",
                )
            )
        )
        self.add_overwrite()
        self.addParameter(
            QgsProcessingParameterFileDestination("JSON", "Metrics JSON", "JSON (*.json)", optional=True, createByDefault=False)
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination("REPORT", "Report folder", optional=True, createByDefault=False)
        )
        for key, text in (("MEAN_IOU", "Mean IoU"), ("MEAN_F1", "Mean F1"), ("ACCURACY", "Pixel accuracy")):
            self.addOutput(QgsProcessingOutputNumber(key, text))
        self.addOutput(QgsProcessingOutputNumber("PIXELS", "Scored pixels"))
        self.addOutput(QgsProcessingOutputString("METRICS", "Metrics (JSON)"))
        self.addOutput(QgsProcessingOutputRasterLayer("ERRORS", "Error map"))

    def process(self, parameters, context, feedback):
        pred = self.raster_path(parameters, "PRED", context, feedback)
        truth = self.layer_path(parameters, "TRUTH", context, feedback)
        json_path = self.parameterAsFileOutput(parameters, "JSON", context)
        report = self.parameterAsString(parameters, "REPORT", context)
        metrics = json_path or (str(Path(report) / "metrics.json") if report else "")
        args = ["evaluate", pred, truth]
        if not metrics:  # the metrics are read back from a temporary file
            metrics = json_path = QgsProcessingUtils.generateTempFilename("metrics.json")
        if json_path:
            Path(json_path).parent.mkdir(parents=True, exist_ok=True)
            args += ["--json", json_path]
        args += self.options(parameters, context, LABEL_FIELD="--label-field", CLASSES="--classes")
        args += ["--report", report] if report else []
        self.geoseg(args + self.overwrite_args(parameters, context), feedback)
        try:
            summary = json.loads(Path(metrics).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise QgsProcessingException(f"geoseg evaluate wrote no readable metrics ({exc})") from None
        results = {
            "MEAN_IOU": summary.get("mean_iou"),
            "MEAN_F1": summary.get("mean_f1"),
            "ACCURACY": summary.get("accuracy"),
            "PIXELS": summary.get("pixels"),
            "METRICS": json.dumps(summary),
            "JSON": self.parameterAsFileOutput(parameters, "JSON", context) or None,
            "REPORT": report or None,
        }
        errors = Path(report) / "errors.tif" if report else None
        if errors is not None and errors.exists():
            qml = str(errors.with_suffix(".qml"))
            load_on_completion(context, str(errors), f"{Path(pred).stem} errors", "ERRORS", True, qml, str(errors))
            results["ERRORS"] = str(errors)
        return results
