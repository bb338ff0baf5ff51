"""geoseg:tile: cut a scene (and its labels) into training chips."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..base import GeosegAlgorithm, number
from ..selection import LayerParameter
from ..styles import load_on_completion


class TileAlgorithm(GeosegAlgorithm):
    command = "tile"
    title = "Cut training chips (tile)"
    group_title = "Training"
    stages = {"tile": (0.0, 100.0)}
    help_text = (
        "<p>Runs <code>geoseg tile</code>: cuts the scene into chips on one grid, and the labels (polygons in any "
        "CRS with the label field, all or the selected features only, or a mask raster) into matching masks. Each "
        "distinct label value becomes a class; unlabeled pixels are 255 in the masks. Lines and points become "
        "corridors and discs with a buffer in metres (each side); without one they are left out.</p>"
        "<p><b>Outputs</b> (in the chip folder): images/ and masks/ (GeoTIFF chips), index.gpkg (chip footprints, "
        "loaded), classes.json and tile.json. <code>geoseg train</code> reads it with "
        "<code>data: {chips: CHIP_DIR}</code>.</p>"
    )

    def define(self):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        self.addParameter(
            LayerParameter(
                "LABELS",
                "Labels: polygons, lines or points, or a mask raster",
                [QgsProcessing.TypeRaster, QgsProcessing.TypeVectorAnyGeometry],
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterString("LABEL_FIELD", "Label field of the features", optional=True))
        self.addParameter(number("BUFFER", "Buffer lines and points by (m, each side)", minValue=0))
        self.addParameter(
            QgsProcessingParameterNumber(
                "CHIP_SIZE", "Chip size in pixels", QgsProcessingParameterNumber.Integer, 256, minValue=1
            )
        )
        self.addParameter(
            QgsProcessingParameterString("OVERLAP", "Overlap: a fraction of the chip or pixels such as 64px", defaultValue="0")
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MIN_LABELED",
                "Skip chips with a smaller share of labeled pixels (0-1)",
                QgsProcessingParameterNumber.Double,
                0.0,
                minValue=0.0,
                maxValue=1.0,
            )
        )
        self.add_overwrite()
        self.addParameter(QgsProcessingParameterFolderDestination("OUTDIR", "Chip folder"))
        self.addOutput(QgsProcessingOutputVectorLayer("INDEX", "Chip footprints", QgsProcessing.TypeVectorPolygon))

    def process(self, parameters, context, feedback):
        scene = self.raster_path(parameters, "INPUT", context, feedback)
        outdir = self.parameterAsString(parameters, "OUTDIR", context)
        args = ["tile", scene, "-o", outdir]
        if self.is_given(parameters, "LABELS", context):
            args += ["--labels", self.layer_path(parameters, "LABELS", context, feedback)]
        args += self.options(parameters, context, LABEL_FIELD="--label-field", CHIP_SIZE="--chip-size", OVERLAP="--overlap")
        args += self.options(parameters, context, MIN_LABELED="--min-labeled", BUFFER="--buffer")
        self.geoseg(args + self.overwrite_args(parameters, context), feedback)
        index = str(Path(outdir) / "index.gpkg")
        load_on_completion(context, index, f"{Path(scene).stem} chips", "INDEX", False)
        return {"OUTDIR": outdir, "INDEX": index}
