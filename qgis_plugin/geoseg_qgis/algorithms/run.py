"""geoseg:run: a scene into an output folder with the class map, confidence and styled polygons."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
)

from ..base import GeosegAlgorithm
from ..styles import load_on_completion


class RunAlgorithm(GeosegAlgorithm):
    command = "run"
    title = "Segment land cover (run)"
    stages = {"predict": (0.0, 85.0), "vectorize": (85.0, 15.0)}
    help_text = (
        "<p>Runs <code>geoseg run</code>: predicts a land-cover class map for the scene with the model, "
        "vectorizes it and writes the output folder.</p>"
        "<p><b>Outputs</b> (in the output folder): <code>classes.tif</code> (class ids, nodata 255; loaded as a "
        "paletted raster with class names), <code>confidence.tif</code> (winning probability in percent), "
        "<code>polygons.gpkg</code> (loaded categorized by class; fields class_id, class_name, area_m2, "
        "perimeter_m, mean_confidence), <code>polygons.geojson</code>, <code>classes.qml</code>, "
        "<code>polygons.qml</code>, <code>areas.csv</code>, <code>preview.png</code> and <code>run.json</code>.</p>"
        "<p><b>Model</b>: a .pt checkpoint, an .onnx file or <i>default</i>, the bundled model (8 land-use "
        "classes for 10-band Sentinel-2 L1C at 10 m). Minimum area and simplification apply to the polygons only.</p>"
    )

    def define(self):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        self.add_model()
        self.add_inference()
        self.add_polygons()
        self.add_overwrite()
        self.addParameter(QgsProcessingParameterFolderDestination("OUTDIR", "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer("CLASSES", "Class map"))
        self.addOutput(QgsProcessingOutputRasterLayer("CONFIDENCE", "Confidence"))
        self.addOutput(QgsProcessingOutputVectorLayer("POLYGONS", "Polygons", QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputRasterLayer("CLOUDS", "Cloud mask (with Mask clouds)"))

    def process(self, parameters, context, feedback):
        scene = self.raster_path(parameters, "INPUT", context, feedback)
        outdir = self.parameterAsString(parameters, "OUTDIR", context)
        args = ["run", scene, "-o", outdir, *self.model_args(parameters, context)]
        args += self.inference_args(parameters, context, feedback)
        args += self.options(parameters, context, MIN_AREA="--min-area", SIMPLIFY="--simplify")
        self.geoseg(args + self.overwrite_args(parameters, context), feedback)
        folder = Path(outdir)
        classes, polygons = str(folder / "classes.tif"), str(folder / "polygons.gpkg")
        stem = Path(scene).stem
        load_on_completion(context, classes, f"{stem} classes", "CLASSES", True, qml=str(folder / "classes.qml"))
        load_on_completion(context, polygons, f"{stem} polygons", "POLYGONS", False, qml=str(folder / "polygons.qml"))
        if (folder / "clouds.tif").exists():  # --mask-clouds
            load_on_completion(
                context, str(folder / "clouds.tif"), f"{stem} clouds", "CLOUDS", True, qml=str(folder / "clouds.qml")
            )
        return {
            "CLASSES": classes,
            "CONFIDENCE": str(folder / "confidence.tif"),
            "POLYGONS": polygons,
            "CLOUDS": str(folder / "clouds.tif") if (folder / "clouds.tif").exists() else None,
            "OUTDIR": outdir,
        }
