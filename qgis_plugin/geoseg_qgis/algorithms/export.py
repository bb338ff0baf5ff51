"""geoseg:export: a model as one self-contained ONNX file."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingParameterFileDestination, QgsProcessingParameterNumber

from ..base import GeosegAlgorithm, number


class ExportAlgorithm(GeosegAlgorithm):
    command = "export"
    title = "Export model to ONNX"
    group_title = "Training"
    help_text = (
        "<p>Runs <code>geoseg export</code>: writes the model (a .pt checkpoint or <i>default</i>) as one "
        "self-contained ONNX file (weights and softmax inside, static square chips, dynamic batch axis) with the "
        "metadata the Deepness plugin and GeoDeep read, plus the geoseg model card, so geoseg runs it like the "
        "checkpoint.</p><p><b>Output</b>: the .onnx file.</p>"
    )

    def define(self):
        self.add_model()
        self.addParameter(number("CHIP_SIZE", "The file's chip size in pixels (empty: the model's)", True, minValue=1))
        self.addParameter(
            QgsProcessingParameterNumber(
                "SMOOTH",
                "Ask Deepness and GeoDeep to remove segments smaller than (pixels)",
                QgsProcessingParameterNumber.Integer,
                0,
                minValue=0,
            )
        )
        self.add_overwrite()
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "ONNX model", "ONNX (*.onnx)"))

    def process(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        model = self.parameterAsString(parameters, "MODEL", context).strip() or "default"
        args = ["export", model, "-o", output, *self.options(parameters, context, CHIP_SIZE="--chip-size")]
        smooth = self.parameterAsInt(parameters, "SMOOTH", context)
        args += ["--smooth", str(smooth)] if smooth else []
        self.geoseg(args + self.overwrite_args(parameters, context), feedback)
        return {"OUTPUT": output}
