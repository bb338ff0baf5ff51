"""geoseg:vectorize: a class map into polygons."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..base import GeosegAlgorithm, advanced, number
from ..styles import load_on_completion

FORMATS = "GeoPackage (*.gpkg);;GeoJSON (*.geojson);;GeoJSON Lines (*.geojsonl);;ESRI Shapefile (*.shp);;FlatGeobuf (*.fgb)"


class VectorizeAlgorithm(GeosegAlgorithm):
    command = "vectorize"
    title = "Vectorize class map"
    stages = {"vectorize": (0.0, 100.0)}
    help_text = (
        "<p>Runs <code>geoseg vectorize</code>: turns the class regions of a geoseg class map into polygons "
        "(GDAL's polygonizer; without a minimum area they rasterize back to the map exactly). Nodata is never a "
        "polygon.</p>"
        "<p><b>Output</b>: a GeoPackage (scene CRS, its style stored inside), GeoJSON or GeoJSON Lines "
        "(EPSG:4326), Shapefile or FlatGeobuf with fields class_id, class_name, area_m2, perimeter_m (and "
        "mean_confidence with a confidence map); loaded categorized by class.</p>"
    )

    def define(self):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class map (geoseg classes.tif)"))
        self.add_polygons()
        self.addParameter(QgsProcessingParameterRasterLayer("CONFIDENCE", "Confidence map, for mean_confidence", optional=True))
        self.addParameter(
            QgsProcessingParameterString("BACKGROUND", "Leave out these class ids (comma separated)", optional=True)
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterFile(
                    "CLASSES",
                    "Class names and colours for a map without a class table (geoseg model or classes.json)",
                    optional=True,
                    fileFilter="Class tables (*.json *.yaml *.yml *.pt *.onnx);;All files (*)",
                )
            )
        )
        self.addParameter(advanced(number("PRECISION", "GeoJSON: decimal places of coordinates", True, minValue=0)))
        self.add_overwrite()
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Polygons", FORMATS))

    def process(self, parameters, context, feedback):
        classes = self.raster_path(parameters, "INPUT", context, feedback)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        args = ["vectorize", classes, "-o", output]
        args += self.options(parameters, context, MIN_AREA="--min-area", SIMPLIFY="--simplify", PRECISION="--precision")
        if self.parameterAsRasterLayer(parameters, "CONFIDENCE", context) is not None:
            args += ["--confidence", self.raster_path(parameters, "CONFIDENCE", context, feedback)]
        for value in self.parameterAsString(parameters, "BACKGROUND", context).replace(" ", "").split(","):
            if value:
                args += ["--background", value]
        table = self.parameterAsString(parameters, "CLASSES", context)
        args += ["--classes", table] if table else []
        self.geoseg(args + self.overwrite_args(parameters, context), feedback)
        load_on_completion(context, output, f"{Path(output).stem} polygons", "OUTPUT", False, classes_from=classes)
        return {"OUTPUT": output}
