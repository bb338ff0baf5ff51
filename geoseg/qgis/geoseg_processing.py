"""geoseg for the QGIS Processing Toolbox: run ``geoseg run`` on a raster layer.

Install: in QGIS, Processing Toolbox > Scripts (python icon) > Add Script to
Toolbox..., and pick this file. The algorithm "geoseg > Segment land cover"
appears. It runs the geoseg executable (a setting of the algorithm,
remembered between runs) in a separate process, shows its progress, stops it
when you press Cancel, and loads the class map and the polygons with their
styles.

This file runs inside QGIS's own Python; it needs only the geoseg command
(e.g. ``pip install geoseg`` in any environment, then give the full path of
its ``geoseg`` executable).
"""

import json
import subprocess
import threading
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFolder,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsSettings,
)

SETTING = "geoseg/executable"
STAGE_WEIGHTS = {"predict": (0.0, 85.0), "vectorize": (85.0, 15.0)}


class _LoadStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies a QML style to a layer when Processing loads it."""

    instances = []  # keep Python references alive until QGIS calls them

    def __init__(self, qml):
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if layer is not None and Path(self.qml).exists():
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()


class GeosegRunAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    MODEL = "MODEL"
    OUTDIR = "OUTDIR"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"
    TTA = "TTA"
    EXECUTABLE = "EXECUTABLE"
    CLASSES = "CLASSES"
    POLYGONS = "POLYGONS"

    def name(self):
        return "segment_land_cover"

    def displayName(self):  # noqa: N802 - QGIS API
        return "Segment land cover"

    def group(self):
        return "geoseg"

    def groupId(self):  # noqa: N802 - QGIS API
        return "geoseg"

    def shortHelpString(self):  # noqa: N802 - QGIS API
        return (
            "Runs 'geoseg run' on a raster layer: a class map (classes.tif), confidence, styled polygons, "
            "areas.csv and a preview in the output folder. Leave the model empty for geoseg's default model."
        )

    def createInstance(self):  # noqa: N802 - QGIS API
        return GeosegRunAlgorithm()

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Scene"))
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL, "Model (.pt); empty for the default model", optional=True, fileFilter="geoseg models (*.pt *.onnx)"
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA, "Smallest polygon (m²)", QgsProcessingParameterNumber.Double, optional=True, minValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SIMPLIFY, "Simplify tolerance (m)", QgsProcessingParameterNumber.Double, optional=True, minValue=0
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.TTA, "Test-time augmentation (slower)", defaultValue=False))
        self.addParameter(
            QgsProcessingParameterString(
                self.EXECUTABLE, "geoseg executable", defaultValue=QgsSettings().value(SETTING, "geoseg")
            )
        )
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTDIR, "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.CLASSES, "Classes"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.POLYGONS, "Polygons", QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputFolder(self.OUTDIR, "Output folder"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("no scene layer given")
        executable = self.parameterAsString(parameters, self.EXECUTABLE, context) or "geoseg"
        QgsSettings().setValue(SETTING, executable)
        outdir = self.parameterAsString(parameters, self.OUTDIR, context)
        command = [executable, "run", layer.source(), "-o", outdir, "--overwrite", "--progress", "json"]
        model = self.parameterAsString(parameters, self.MODEL, context)
        if model:
            command += ["-m", model]
        for key, option in ((self.MIN_AREA, "--min-area"), (self.SIMPLIFY, "--simplify")):
            if parameters.get(key) not in (None, ""):
                command += [option, str(self.parameterAsDouble(parameters, key, context))]
        if self.parameterAsBool(parameters, self.TTA, context):
            command.append("--tta")
        feedback.pushCommandInfo(" ".join(command))
        self._run(command, feedback)
        classes, polygons = str(Path(outdir) / "classes.tif"), str(Path(outdir) / "polygons.gpkg")
        if context.willLoadLayerOnCompletion(classes) is False:
            details = QgsProcessingContext.LayerDetails("classes", context.project(), self.CLASSES)
            post = _LoadStyle(str(Path(outdir) / "classes.qml"))
            _LoadStyle.instances.append(post)
            details.setPostProcessor(post)
            context.addLayerToLoadOnCompletion(classes, details)
            context.addLayerToLoadOnCompletion(
                polygons + "|layername=polygons", QgsProcessingContext.LayerDetails("polygons", context.project(), self.POLYGONS)
            )
        return {self.CLASSES: classes, self.POLYGONS: polygons + "|layername=polygons", self.OUTDIR: outdir}

    def _run(self, command, feedback):
        try:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            raise QgsProcessingException(
                f"cannot start {command[0]} ({exc}): set the geoseg executable to its full path"
            ) from None
        errors = []

        def read_stderr():
            for line in proc.stderr:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        event = json.loads(line)
                        start, span = STAGE_WEIGHTS.get(event["stage"], (0.0, 100.0))
                        feedback.setProgress(start + span * event["done"] / max(event["total"], 1))
                        continue
                    except (ValueError, KeyError):
                        pass
                if line:
                    errors.append(line)
                    feedback.pushInfo(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        while proc.poll() is None:
            if feedback.isCanceled():
                proc.terminate()  # geoseg removes its temporary files on SIGTERM
                proc.wait(timeout=60)
                raise QgsProcessingException("cancelled: geoseg was stopped, no output was changed")
            reader.join(timeout=0.2)
        reader.join(timeout=5)
        if proc.returncode != 0:
            raise QgsProcessingException(errors[-1] if errors else f"geoseg failed with exit code {proc.returncode}")
