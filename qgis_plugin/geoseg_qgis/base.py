"""What every geoseg algorithm shares: the executable, parameters declared once, running geoseg, input paths."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsRasterLayer,
    QgsSettings,
)
from qgis.PyQt.QtCore import QVariant
from qgis.PyQt.QtGui import QIcon

from . import runner
from .layers import LAYER_NAME, assigned_crs, own_file, raster_as_seen, unnamed_layer_of_several
from .selection import is_selection, selection_layer

ICON = str(Path(__file__).with_name("icon.png"))
EXECUTABLE_HELP = (
    "<p><b>geoseg executable</b>: this tool runs the geoseg command in a separate process (QGIS's own Python "
    "needs neither geoseg nor torch). It uses, in this order, the advanced parameter <i>geoseg executable</i>, "
    "the setting in Settings › Options › Processing › Providers › geoseg, and <code>geoseg</code> on PATH. "
    "Either may be the geoseg command or a Python interpreter that has geoseg installed "
    f"(geoseg {'.'.join(map(str, runner.MIN_VERSION))} or newer). Cancel stops geoseg and everything it started; "
    "existing outputs are left as they were.</p>"
)
MODEL_FILTER = "geoseg models (*.pt *.onnx);;All files (*)"
DEVICES = ["auto", "cpu", "cuda"]
BACKENDS = ["auto", "torch", "onnx"]
RESAMPLE = ["auto", "off"]
CLOUD_SHARE = 15.0
"""Percent of the progress bar the cloud mask takes with --mask-clouds (it runs at 30 m: a fraction of predict)."""
OUTPUT_GRIDS = ["scene", "model"]
VECTOR_FORMATS = ["gpkg", "shp", "geojson", "json", "fgb"]


def unset(value) -> bool:
    """Whether a parameter value means "not set": None, QGIS's NULL (what the dialog passes) or blank text."""
    return value is None or (isinstance(value, QVariant) and value.isNull()) or (isinstance(value, str) and not value.strip())


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """``parameter`` shown under Advanced Parameters."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def number(name: str, description: str, integer: bool = False, **options) -> QgsProcessingParameterNumber:
    """An optional number parameter (unset: geoseg's default)."""
    kind = QgsProcessingParameterNumber.Integer if integer else QgsProcessingParameterNumber.Double
    return QgsProcessingParameterNumber(name, description, kind, optional=True, **options)


class GeosegAlgorithm(QgsProcessingAlgorithm):
    """One geoseg command as a Processing algorithm. Subclasses declare :meth:`define` and :meth:`process`."""

    command = ""  # the geoseg command, also the algorithm's name (geoseg:COMMAND)
    title = ""
    group_title = "Land cover"
    help_text = ""  # what it does and its outputs (HTML)
    stages: dict[str, tuple[float, float]] = {}  # progress share of each geoseg stage

    EXECUTABLE = "EXECUTABLE"
    OVERWRITE = "OVERWRITE"

    def name(self):
        return self.command

    def displayName(self):  # noqa: N802 - QGIS API
        return self.title

    def group(self):
        return self.group_title

    def groupId(self):  # noqa: N802 - QGIS API
        return self.group_title.lower().replace(" ", "_")

    def shortHelpString(self):  # noqa: N802 - QGIS API
        return self.help_text + EXECUTABLE_HELP

    def icon(self):
        return QIcon(ICON)

    def createInstance(self):  # noqa: N802 - QGIS API
        return type(self)()

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.define()
        self.addParameter(
            advanced(
                QgsProcessingParameterFile(
                    self.EXECUTABLE,
                    "geoseg executable, or a Python with geoseg (empty: the geoseg setting, then PATH)",
                    optional=True,
                    fileFilter="All files (*)",  # without a filter QGIS refuses names without an extension
                )
            )
        )

    def define(self) -> None:
        """Add the command's parameters and outputs."""
        raise NotImplementedError

    def process(self, parameters, context, feedback) -> dict:
        """Run geoseg with :meth:`geoseg` and return the outputs."""
        raise NotImplementedError

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        explicit = self.parameterAsString(parameters, self.EXECUTABLE, context)
        settings = QgsSettings()
        configured = str(settings.value(runner.SETTING_KEY, "") or settings.value(runner.LEGACY_SETTING_KEY, "") or "")
        try:
            self._prefix = runner.find_geoseg(explicit, configured)
            version = runner.check_version(self._prefix)
        except runner.GeosegError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"geoseg {version}: {' '.join(self._prefix)}")
        return self.process(parameters, context, feedback)

    def geoseg(self, args: list[str], feedback, stages: dict[str, tuple[float, float]] | None = None) -> list[str]:
        """Run ``geoseg ARGS`` with progress; its stdout lines, or QgsProcessingException with geoseg's error."""
        stages = dict(self.stages if stages is None else stages)
        if "--mask-clouds" in args and stages:  # the cloud mask comes first: the other stages share the rest of the bar
            stages = {"clouds": (0.0, CLOUD_SHARE)} | {
                name: (CLOUD_SHARE + start * (1 - CLOUD_SHARE / 100), span * (1 - CLOUD_SHARE / 100))
                for name, (start, span) in stages.items()
            }
        progress = runner.Progress(stages)
        try:
            return runner.run_geoseg(self._prefix, [str(a) for a in args], feedback, progress)
        except runner.GeosegError as exc:
            raise QgsProcessingException(str(exc)) from None

    # parameters declared once ------------------------------------------------------------------------------

    def add_model(self, default: str | None = "default", description: str = "") -> None:
        """MODEL: a .pt or .onnx file, or the word default (the bundled model)."""
        text = description or "Model: a .pt or .onnx file, or default for the bundled model"
        self.addParameter(
            QgsProcessingParameterFile("MODEL", text, QgsProcessingParameterFile.File, "", default, True, MODEL_FILTER)
        )

    def add_inference(self) -> None:
        """Bands, area of interest, TTA, clouds, and (advanced) chip size, overlap, batch size, device, backend, grids."""
        self.addParameter(
            QgsProcessingParameterString(
                "BANDS",
                "Bands for the model's inputs: 1-based indexes or band descriptions, comma separated "
                "(empty: by name, else in order)",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "AOI", "Area of interest (predict only inside these polygons)", [QgsProcessing.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(QgsProcessingParameterBoolean("TTA", "Test-time augmentation (4x slower)", defaultValue=False))
        self.addParameter(
            QgsProcessingParameterBoolean(
                "MASK_CLOUDS", "Mask clouds and cloud shadows (nodata; needs geoseg[clouds])", defaultValue=False
            )
        )
        self.addParameter(advanced(number("CHIP_SIZE", "Chip size in pixels (empty: the model's)", integer=True, minValue=1)))
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    "OVERLAP", "Overlap: a fraction of the chip or pixels such as 64px (empty: the model's)", optional=True
                )
            )
        )
        self.addParameter(advanced(number("BATCH_SIZE", "Chips per model call (empty: geoseg's default)", True, minValue=1)))
        self.addParameter(advanced(QgsProcessingParameterEnum("DEVICE", "Device", DEVICES, defaultValue=0)))
        self.addParameter(advanced(QgsProcessingParameterEnum("BACKEND", "Inference backend", BACKENDS, defaultValue=0)))
        self.addParameter(
            advanced(
                QgsProcessingParameterEnum(
                    "RESAMPLE", "Read at the model's pixel size when the scene's differs by > 25%", RESAMPLE, defaultValue=0
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterEnum("OUTPUT_GRID", "Grid of a resampled scene's outputs", OUTPUT_GRIDS, defaultValue=0)
            )
        )

    def add_polygons(self) -> None:
        """Smallest polygon and simplification."""
        self.addParameter(number("MIN_AREA", "Merge regions smaller than (m²)", minValue=0))
        self.addParameter(number("SIMPLIFY", "Simplify tolerance (m)", minValue=0))

    def add_overwrite(self) -> None:
        """OVERWRITE: --overwrite, on by default as elsewhere in Processing."""
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.OVERWRITE,
                "Replace existing geoseg outputs (files and folders geoseg did not write are never replaced)",
                defaultValue=True,
            )
        )

    # arguments ---------------------------------------------------------------------------------------------

    def model_args(self, parameters, context, required: bool = False) -> list[str]:
        """``-m MODEL`` (``default`` when required and empty), or nothing."""
        model = self.parameterAsString(parameters, "MODEL", context).strip()
        if not model and required:
            model = "default"
        return ["-m", model] if model else []

    def inference_args(self, parameters, context, feedback) -> list[str]:
        """The arguments of :meth:`add_inference`'s parameters that are set."""
        args = self.options(parameters, context, BANDS="--bands", OVERLAP="--overlap", CHIP_SIZE="--chip-size")
        args += self.options(parameters, context, BATCH_SIZE="--batch-size")
        enums = (
            ("DEVICE", "--device", DEVICES),
            ("BACKEND", "--backend", BACKENDS),
            ("RESAMPLE", "--resample", RESAMPLE),
            ("OUTPUT_GRID", "--output-grid", OUTPUT_GRIDS),
        )
        for key, option, choices in enums:
            choice = choices[self.parameterAsEnum(parameters, key, context)]
            if choice != choices[0]:  # the first choice is geoseg's default
                args += [option, choice]
        for key, flag in (("TTA", "--tta"), ("MASK_CLOUDS", "--mask-clouds")):
            if self.parameterAsBool(parameters, key, context):
                args.append(flag)
        aoi = self.vector_path(parameters, "AOI", context, feedback)
        return args + (["--aoi", aoi] if aoi else [])

    def options(self, parameters, context, **flags: str) -> list[str]:
        """``--flag value`` for each named parameter that is set or has a default (numbers without a trailing .0)."""
        args: list[str] = []
        for key, flag in flags.items():
            definition = self.parameterDefinition(key)
            value = parameters.get(key)
            if unset(value):
                value = definition.defaultValue()
            if unset(value):
                continue
            if isinstance(definition, QgsProcessingParameterNumber):
                number = self.parameterAsDouble({key: value}, key, context)
                text = str(int(number)) if number.is_integer() else repr(number)
            else:
                text = self.parameterAsString({key: value}, key, context).strip()
            args += [flag, text]
        return args

    def overwrite_args(self, parameters, context) -> list[str]:
        """``--overwrite`` when OVERWRITE is on."""
        return ["--overwrite"] if self.parameterAsBool(parameters, self.OVERWRITE, context) else []

    # inputs ------------------------------------------------------------------------------------------------

    def raster_path(self, parameters, name: str, context, feedback, layer: QgsRasterLayer | None = None) -> str:
        """The file behind a raster layer parameter (GDAL's name for it), or a VRT of it carrying the nodata values
        and CRS set on the layer in QGIS (:func:`layers.raster_as_seen`)."""
        layer = layer or self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(f"{name}: no raster layer given")
        if layer.providerType() != "gdal":
            raise QgsProcessingException(f"{name}: {layer.name()} is not a file GDAL reads; save it as a GeoTIFF first")
        return raster_as_seen(layer, name, feedback)

    def vector_path(self, parameters, name: str, context, feedback) -> str:
        """The source of a vector parameter as geoseg reads it: its file, or ``file|layername=x`` for a layer of a
        file of several; a temporary GeoPackage for selected features, filters, memory layers, layers QGIS names
        otherwise and layers whose CRS was assigned in QGIS. Empty when not set."""
        value = parameters.get(name)
        if unset(value):
            return ""
        source = self.parameterAsSource(parameters, name, context)
        if source is not None and source.featureCount() == 0:
            raise QgsProcessingException(
                f"{name}: {source.sourceName()} has no features (with 'selected features only': select some first)"
            )
        layer = selection_layer(value, context) if is_selection(value) else self.parameterAsVectorLayer(parameters, name, context)
        copy = layer is not None and (assigned_crs(layer) is not None or unnamed_layer_of_several(layer))
        path, layer_name = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, name, context, ["-"] if copy else VECTOR_FORMATS, "gpkg", feedback
        )
        if not path:
            raise QgsProcessingException(f"{name}: no vector layer given")
        if layer_name and layer is not None and path == own_file(layer):  # the layer's own file, not a copy of one layer
            return f"{path}{LAYER_NAME}{layer_name}"
        return path

    def is_given(self, parameters, name: str, context) -> bool:
        """Whether a layer parameter holds a layer (or a vector layer's selected features)."""
        value = parameters.get(name)
        return is_selection(value) or (not unset(value) and self.parameterAsLayer(parameters, name, context) is not None)

    def layer_path(self, parameters, name: str, context, feedback) -> str:
        """The file behind a raster or vector layer parameter (a vector layer's selected features written out)."""
        layer = None if is_selection(parameters.get(name)) else self.parameterAsLayer(parameters, name, context)
        if isinstance(layer, QgsRasterLayer):
            return self.raster_path(parameters, name, context, feedback, layer)
        return self.vector_path(parameters, name, context, feedback)
