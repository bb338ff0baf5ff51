"""Run by Debian's python3 with QGIS: the geoseg Processing script through processing.run, headless.

usage: python3 qgis_processing.py SCRIPT GEOSEG_EXECUTABLE SCENE MODEL OUTDIR RENDER_PNG
Prints a JSON report; renders the loaded, styled outputs to RENDER_PNG with QGIS's map renderer.
"""

import importlib.util
import json
import os
import sys

from qgis.core import (
    QgsApplication,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize

script, executable, scene, model, outdir, render = sys.argv[1:7]
QgsApplication.setPrefixPath("/usr", True)
app = QgsApplication([], False)
app.initQgis()
sys.path.append("/usr/share/qgis/python/plugins")
from processing.core.Processing import Processing  # noqa: E402

Processing.initialize()
import processing  # noqa: E402

spec = importlib.util.spec_from_file_location("geoseg_processing", script)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)


class Feedback(QgsProcessingFeedback):
    progress_values = []

    def setProgress(self, value):  # noqa: N802
        self.progress_values.append(value)
        super().setProgress(value)


feedback = Feedback()
context = QgsProcessingContext()
context.setProject(QgsProject.instance())
result = processing.run(
    module.GeosegRunAlgorithm(),
    {
        "INPUT": scene,
        "MODEL": model,
        "OUTDIR": outdir,
        "MIN_AREA": 300,
        "EXECUTABLE": executable,
    },
    feedback=feedback,
    context=context,
)
classes = QgsRasterLayer(result["CLASSES"], "classes")
classes.loadNamedStyle(os.path.join(outdir, "classes.qml"))
polygons = QgsVectorLayer(result["POLYGONS"], "polygons", "ogr")
report = {
    "outputs": sorted(os.listdir(outdir)),
    "classes_valid": classes.isValid(),
    "classes_renderer": classes.renderer().type(),
    "polygons_valid": polygons.isValid(),
    "polygons_renderer": polygons.renderer().type(),
    "polygons_count": polygons.featureCount(),
    "progress_max": max(feedback.progress_values or [0]),
    "progress_steps": len(feedback.progress_values),
}
settings = QgsMapSettings()
polygons.setOpacity(0.6)
settings.setLayers([polygons, classes])
settings.setExtent(classes.extent())
extent = classes.extent()
settings.setOutputSize(QSize(1000, max(1, round(1000 * extent.height() / extent.width()))))
settings.setDestinationCrs(classes.crs())
job = QgsMapRendererSequentialJob(settings)
job.start()
job.waitForFinished()
job.renderedImage().save(render, "png")
report["rendered"] = os.path.exists(render)
print(json.dumps(report), flush=True)
os._exit(0)
