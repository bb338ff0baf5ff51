"""geoseg:predict: a scene into a class map (and optionally confidence and probabilities)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingParameterFileDestination, QgsProcessingParameterRasterLayer

from ..base import GeosegAlgorithm, advanced
from ..styles import load_on_completion

GEOTIFF = "GeoTIFF (*.tif *.tiff)"


class PredictAlgorithm(GeosegAlgorithm):
    command = "predict"
    title = "Predict class map"
    stages = {"predict": (0.0, 100.0)}
    help_text = (
        "<p>Runs <code>geoseg predict</code>: the model labels every pixel of the scene; chips are stitched "
        "seamlessly on the scene's grid.</p>"
        "<p><b>Outputs</b>: the class map (GeoTIFF, uint8 class ids, nodata 255, colour table and class table; "
        "loaded as a paletted raster with class names), and when asked for, the confidence (winning probability "
        "in percent) and the probabilities (one band per class, percent).</p>"
    )

    def define(self):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        self.add_model()
        self.add_inference()
        self.add_overwrite()
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Class map", GEOTIFF))
        self.addParameter(
            QgsProcessingParameterFileDestination("CONFIDENCE", "Confidence", GEOTIFF, optional=True, createByDefault=False)
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterFileDestination(
                    "PROBABILITIES", "Probabilities", GEOTIFF, optional=True, createByDefault=False
                )
            )
        )

    def process(self, parameters, context, feedback):
        scene = self.raster_path(parameters, "INPUT", context, feedback)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        extra = {key: self.parameterAsFileOutput(parameters, key, context) for key in ("CONFIDENCE", "PROBABILITIES")}
        args = ["predict", scene, "-o", output, *self.model_args(parameters, context, required=True)]
        for key, path in extra.items():
            if path:
                args += [f"--{key.lower()}", path]
        for path in (output, *extra.values()):
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        args += self.inference_args(parameters, context, feedback) + self.overwrite_args(parameters, context)
        self.geoseg(args, feedback)
        stem = Path(scene).stem
        load_on_completion(context, output, f"{stem} classes", "OUTPUT", True, classes_from=output)
        if extra["CONFIDENCE"]:
            load_on_completion(context, extra["CONFIDENCE"], f"{stem} confidence", "CONFIDENCE", True)
        return {"OUTPUT": output, **extra}
