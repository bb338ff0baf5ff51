"""geoseg:change: land-cover change between two dates, from two class maps or two scenes and a model."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
)

from ..base import GeosegAlgorithm
from ..styles import load_on_completion

STAGES_MAPS = {"compare": (0.0, 40.0), "transitions": (40.0, 40.0), "vectorize": (80.0, 20.0)}
STAGES = {"predict before": (0.0, 35.0), "predict after": (35.0, 35.0)}
STAGES.update({stage: (70.0 + 0.3 * start, 0.3 * span) for stage, (start, span) in STAGES_MAPS.items()})


class ChangeAlgorithm(GeosegAlgorithm):
    command = "change"
    title = "Land-cover change"
    help_text = (
        "<p>Runs <code>geoseg change</code>: compares the class maps BEFORE and AFTER (geoseg class maps, or any "
        "integer rasters named with a class table). With a model they are scenes instead, predicted first. AFTER "
        "is compared on BEFORE's grid; nodata on either date is left out.</p>"
        "<p><b>Outputs</b> (in the output folder): <code>transitions.tif</code> (one value per from→to pair; "
        "loaded with transitions.qml: unchanged light grey, changes in the colour of the class they became), "
        "<code>changes.gpkg</code> (changed regions with from_class, to_class, area_m2; loaded styled), "
        "changes.geojson, matrix.csv (from-to areas), summary.json and preview.png.</p>"
    )

    def define(self):
        self.addParameter(QgsProcessingParameterRasterLayer("BEFORE", "Before: class map (or scene with a model)"))
        self.addParameter(QgsProcessingParameterRasterLayer("AFTER", "After: class map (or scene with a model)"))
        self.add_model(None, "Model when BEFORE and AFTER are scenes: a .pt or .onnx file, or default (empty: class maps)")
        self.addParameter(
            QgsProcessingParameterFile(
                "CLASSES",
                "Class names and colours for both maps (geoseg model or classes.json)",
                optional=True,
                fileFilter="Class tables (*.json *.yaml *.yml *.pt *.onnx);;All files (*)",
            )
        )
        self.add_polygons()
        self.add_overwrite()
        self.addParameter(QgsProcessingParameterFolderDestination("OUTDIR", "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer("TRANSITIONS", "Transitions"))
        self.addOutput(QgsProcessingOutputVectorLayer("CHANGES", "Changes", QgsProcessing.TypeVectorPolygon))

    def process(self, parameters, context, feedback):
        before = self.raster_path(parameters, "BEFORE", context, feedback)
        after = self.raster_path(parameters, "AFTER", context, feedback)
        outdir = self.parameterAsString(parameters, "OUTDIR", context)
        model = self.model_args(parameters, context)  # with a model, BEFORE and AFTER are scenes, predicted first
        args = ["change", before, after, "-o", outdir, *model]
        args += self.options(parameters, context, CLASSES="--classes", MIN_AREA="--min-area", SIMPLIFY="--simplify")
        self.geoseg(args + self.overwrite_args(parameters, context), feedback, STAGES if model else STAGES_MAPS)
        folder = Path(outdir)
        transitions, changes = str(folder / "transitions.tif"), str(folder / "changes.gpkg")
        load_on_completion(context, transitions, "transitions", "TRANSITIONS", True, str(folder / "transitions.qml"))
        load_on_completion(context, changes, "changes", "CHANGES", False, str(folder / "changes.qml"))
        return {"TRANSITIONS": transitions, "CHANGES": changes, "OUTDIR": outdir}
