"""geoseg:export: a model as one self-contained ONNX file."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ..base import GeosegAlgorithm, number

WRITE = {"write": (95.0, 5.0)}
STAGES = {
    "float": {"load": (0.0, 45.0), "export": (45.0, 50.0), **WRITE},
    "static": {"load": (0.0, 15.0), "calibrate": (15.0, 5.0), "export": (20.0, 10.0), "quantize": (30.0, 65.0), **WRITE},
    "dynamic": {"load": (0.0, 35.0), "export": (35.0, 30.0), "quantize": (65.0, 30.0), **WRITE},
}
"""Shares of the bar of geoseg export's steps (one progress step each), by kind of export: about their times with
the bundled model on a CPU (static int8 spends most of it quantizing)."""


class ExportAlgorithm(GeosegAlgorithm):
    command = "export"
    title = "Export model to ONNX"
    group_title = "Training"
    help_text = (
        "<p>Runs <code>geoseg export</code>: writes the model (a .pt checkpoint or <i>default</i>) as one "
        "self-contained ONNX file (weights and softmax inside, static square chips, dynamic batch axis) with the "
        "metadata the Deepness plugin and GeoDeep read, plus the geoseg model card, so geoseg runs it like the "
        "checkpoint.</p><p><b>INT8</b>: an 8-bit integer model, a quarter of the size and faster on many CPUs, "
        "calibrated on a scene like those the model will label (static quantization); its class maps match the "
        "float model's on about 99.2% of pixels on the bundled sample. Without a calibration scene the "
        "quantization is dynamic, which needs no data but ran slower than the float model.</p>"
        "<p><b>Output</b>: the .onnx file.</p>"
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
        self.addParameter(QgsProcessingParameterBoolean("QUANTIZE", "Quantize to INT8", defaultValue=False))
        self.addParameter(
            QgsProcessingParameterRasterLayer("CALIBRATION", "INT8 calibration scene (with the model's bands)", optional=True)
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
        kind = "float"
        if self.parameterAsBool(parameters, "QUANTIZE", context):
            args += ["--quantize", "int8"]
            kind = "dynamic"
            if self.parameterAsRasterLayer(parameters, "CALIBRATION", context) is not None:
                args += ["--calibration", self.raster_path(parameters, "CALIBRATION", context, feedback)]
                kind = "static"
        self.geoseg(args + self.overwrite_args(parameters, context), feedback, STAGES[kind])
        return {"OUTPUT": output}
