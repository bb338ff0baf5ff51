"""geoseg:train: train a model as a YAML config says."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
)

from ..base import GeosegAlgorithm


class TrainAlgorithm(GeosegAlgorithm):
    command = "train"
    title = "Train model"
    group_title = "Training"
    stages = {"index": (0.0, 5.0)}  # then "epoch E/N" stages fill the bar epoch by epoch
    help_text = (
        "<p>Runs <code>geoseg train</code>: trains a segmentation model on the scenes and labels (or chip folder) "
        "the YAML config names; the config is checked before any work (examples in geoseg's configs/). Whole "
        "blocks are held out for validation. The progress bar follows the epochs.</p>"
        "<p><b>Outputs</b> (in the run folder): model.pt (the best epoch by validation mean IoU, a geoseg model "
        "for Predict and Segment land cover), last.pt, history.csv, curves.png and metrics.json. "
        "<i>Resume</i> continues the run in the folder from its last epoch.</p>"
    )

    def define(self):
        self.addParameter(
            QgsProcessingParameterFile("CONFIG", "Training config", fileFilter="YAML (*.yaml *.yml);;All files (*)")
        )
        self.addParameter(QgsProcessingParameterBoolean("RESUME", "Resume the run in the folder", defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTDIR", "Run folder"))
        self.addOutput(QgsProcessingOutputFile("MODEL", "Model (model.pt)"))

    def process(self, parameters, context, feedback):
        config = self.parameterAsFile(parameters, "CONFIG", context)
        outdir = self.parameterAsString(parameters, "OUTDIR", context)
        args = ["train", config, "-o", outdir]
        if self.parameterAsBool(parameters, "RESUME", context):
            args.append("--resume")
        self.geoseg(args, feedback)
        return {"OUTDIR": outdir, "MODEL": str(Path(outdir) / "model.pt")}
