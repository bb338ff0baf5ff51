"""Run by Debian's python3 with QGIS (not the venv): install the plugin zip into a fresh profile and drive it headless.

usage: python3 qgis_plugin.py ZIP PROFILE_DIR GEOSEG_EXECUTABLE SCENE TRUTH_GPKG WORK_DIR [--change]

Installs the zip as Plugins > Install from ZIP does (pyplugin_installer's unzip into the profile's
python/plugins), starts the plugin, lists the provider's algorithms, runs them through
processing.runAndLoadResults (what the algorithm dialog does), cancels a run, provokes the errors a user meets,
and prints one JSON report on the last line. Each step records its error instead of stopping the others.
"""

import json
import os
import sys
import time
import traceback
import zipfile

zip_path, profile, executable, scene, truth, work = sys.argv[1:7]
with_change = "--change" in sys.argv[7:]

from osgeo import gdal  # noqa: E402
from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)

app = QgsApplication([], True, profile)  # with widgets (offscreen): the algorithm dialogs are built too
app.initQgis()
gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")  # QGIS leaves no .aux.xml (its histograms) beside the bundled samples
sys.path.append("/usr/share/qgis/python/plugins")
sys.path.append("/usr/share/qgis/python")
from processing.core.Processing import Processing  # noqa: E402

Processing.initialize()
import processing  # noqa: E402
import qgis.utils  # noqa: E402
from processing.core.ProcessingConfig import ProcessingConfig  # noqa: E402

report = {"profile": QgsApplication.qgisSettingsDirPath()}


def step(name):
    """Run the decorated function now; record its result or its error under ``name``."""

    def wrap(func):
        started = time.monotonic()
        try:
            report[name] = func()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        if isinstance(report[name], dict):
            report[name]["seconds"] = round(time.monotonic() - started, 2)
        return func

    return wrap


class Feedback(QgsProcessingFeedback):
    """Records what an algorithm reports; cancels at the first progress line when asked to."""

    def __init__(self, cancel_at_progress=False):
        super().__init__()
        self.progress, self.texts, self.infos, self.warnings, self.commands = [], [], [], [], []
        self.cancel_at_progress, self.children = cancel_at_progress, []

    def setProgress(self, value):  # noqa: N802
        self.progress.append(value)
        if self.cancel_at_progress and not self.isCanceled():
            self.children = children(os.getpid())
            self.cancel()
        super().setProgress(value)

    def setProgressText(self, text):  # noqa: N802
        self.texts.append(text)
        super().setProgressText(text)

    def pushInfo(self, info):  # noqa: N802
        self.infos.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning):  # noqa: N802
        self.warnings.append(warning)
        super().pushWarning(warning)

    def pushCommandInfo(self, info):  # noqa: N802
        self.commands.append(info)
        super().pushCommandInfo(info)


def children(pid):
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def run_and_load(alg, params, feedback=None):
    """processing.runAndLoadResults; the results, the layers it added (name, renderer, categories) and feedback."""
    feedback = feedback or Feedback()
    before = set(QgsProject.instance().mapLayers())
    results = processing.runAndLoadResults(alg, params, feedback=feedback)
    layers = {}
    for layer_id, layer in QgsProject.instance().mapLayers().items():
        if layer_id in before:
            continue
        renderer = layer.renderer()
        entry = {"source": layer.source(), "valid": layer.isValid(), "renderer": renderer.type() if renderer else None}
        if isinstance(layer, QgsRasterLayer):
            if entry["renderer"] == "paletted":
                entry["classes"] = [[c.value, c.label, c.color.name()] for c in renderer.classes()]
        else:
            entry["count"] = layer.featureCount()
            if entry["renderer"] == "categorizedSymbol":
                entry["categories"] = [[c.value(), c.label(), c.symbol().color().name()] for c in renderer.categories()]
        layers[layer.name()] = entry
    clean = {k: v for k, v in results.items() if isinstance(v, (str, int, float, type(None)))}
    return {
        "results": clean,
        "layers": layers,
        "progress": feedback.progress,
        "texts": feedback.texts[:3],
        "warnings": feedback.warnings,
        "commands": feedback.commands,
    }


def failure(alg, params):
    """The QgsProcessingException message ``alg`` fails with (None if it does not fail)."""
    try:
        processing.run(alg, params, feedback=Feedback())
    except QgsProcessingException as exc:
        return str(exc)
    return None


def set_executable(value):
    ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", value)


plugins_dir = os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "plugins")


@step("install")
def _install():
    try:
        from pyplugin_installer.unzip import unzip  # what Install from ZIP uses
    except ImportError:
        unzip = lambda path, target: zipfile.ZipFile(path).extractall(target)  # noqa: E731
    unzip(zip_path, plugins_dir)
    qgis.utils.plugin_paths = [plugins_dir]
    qgis.utils.home_plugin_path = plugins_dir
    sys.path.insert(0, plugins_dir)
    qgis.utils.updateAvailablePlugins()
    meta = {key: qgis.utils.pluginMetadata("geoseg_qgis", key) for key in ("name", "version", "hasProcessingProvider")}
    loaded = qgis.utils.loadPlugin("geoseg_qgis") and qgis.utils.startPlugin("geoseg_qgis")
    return {"available": qgis.utils.available_plugins, "metadata": meta, "started": loaded}


@step("provider")
def _provider():
    provider = QgsApplication.processingRegistry().providerById("geoseg")
    algorithms = {}
    for alg in provider.algorithms():
        algorithms[alg.id()] = {
            "parameters": [p.name() for p in alg.parameterDefinitions()],
            "outputs": [o.name() for o in alg.outputDefinitions()],
            "help": alg.shortHelpString(),
        }
    return {"name": provider.name(), "algorithms": algorithms, "setting": "GEOSEG_EXECUTABLE" in ProcessingConfig.settings}


run_dir = os.path.join(work, "run")


@step("run")
def _run():
    params = {"INPUT": scene, "MODEL": "default", "OUTDIR": run_dir, "MIN_AREA": 300, "EXECUTABLE": executable}
    params["MASK_CLOUDS"] = True
    out = run_and_load("geoseg:run", params)
    out["files"] = sorted(os.listdir(run_dir))
    return out


@step("evaluate")
def _evaluate():
    set_executable(executable)  # this time from the provider's setting
    params = {"PRED": os.path.join(run_dir, "classes.tif"), "TRUTH": truth, "LABEL_FIELD": "fclass"}
    params["REPORT"] = os.path.join(work, "evaluation")
    return run_and_load("geoseg:evaluate", params)


@step("predict")
def _predict():
    params = {"INPUT": scene, "OUTPUT": os.path.join(work, "predict", "classes.tif"), "OVERLAP": "0", "BATCH_SIZE": 4}
    params["AOI"] = truth + "|layername=" + os.path.splitext(os.path.basename(truth))[0]  # a layer of a GeoPackage
    return run_and_load("geoseg:predict", params)


@step("tile")
def _tile():
    params = {"INPUT": scene, "LABELS": truth, "LABEL_FIELD": "fclass", "BUFFER": 5, "OUTDIR": os.path.join(work, "chips")}
    out = run_and_load("geoseg:tile", params)
    out["files"] = sorted(os.listdir(params["OUTDIR"]))
    return out


@step("arguments")
def _arguments():
    """train and export (too slow to run here) with a fake geoseg that records its arguments."""
    fake = os.path.join(work, "fake_geoseg")
    with open(fake, "w") as f:
        f.write('#!/bin/sh\n[ "$1" = --version ] && echo "geoseg, version 9.9.9" && exit 0\n')
        f.write(f'printf "%s\\n" "$@" > "{work}/args_$1.txt"\n')
    os.chmod(fake, 0o755)
    config = os.path.join(work, "train.yaml")
    with open(config, "w") as f:
        f.write("{}\n")
    runs = {
        "train": {"CONFIG": config, "OUTDIR": os.path.join(work, "train"), "RESUME": True},
        "export": {
            "MODEL": "default",
            "OUTPUT": os.path.join(work, "m.onnx"),
            "CHIP_SIZE": 128,
            "SMOOTH": 4,
            "QUANTIZE": True,
            "CALIBRATION": scene,
        },
    }
    seen = {}
    for name, params in runs.items():
        results = processing.run(f"geoseg:{name}", {**params, "EXECUTABLE": fake}, feedback=Feedback())
        with open(os.path.join(work, f"args_{name}.txt")) as f:
            seen[name] = {"args": f.read().splitlines(), "results": {k: str(v) for k, v in results.items()}}
    return seen


@step("vectorize")
def _vectorize():
    params = {"INPUT": os.path.join(work, "predict", "classes.tif"), "OUTPUT": os.path.join(work, "vectors", "p.shp")}
    params["MIN_AREA"] = 500
    return run_and_load("geoseg:vectorize", params)


@step("layers")
def _layers():
    """What the user set on layers in QGIS reaches geoseg: an added nodata value and a CRS assigned to a scene and
    to an AOI whose files lack one; polygons named like their class map load styled; an empty selection is named."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsFeature,
        QgsGeometry,
        QgsProcessingFeatureSourceDefinition,
        QgsRasterRange,
        QgsRectangle,
        QgsVectorLayer,
    )

    folder = os.path.join(work, "layers")
    os.makedirs(folder)
    source = gdal.Open(scene)
    data = source.ReadAsArray(0, 0, 160, 160)
    data[:, :, :40] = 0  # a filled border, no nodata in the file
    memory = gdal.GetDriverByName("MEM").Create("", 160, 160, source.RasterCount, gdal.GDT_UInt16)
    memory.SetGeoTransform(source.GetGeoTransform())  # and no CRS
    for band in range(1, source.RasterCount + 1):
        memory.GetRasterBand(band).WriteArray(data[band - 1])
        memory.GetRasterBand(band).SetDescription(source.GetRasterBand(band).GetDescription())
    border = os.path.join(folder, "border.tif")
    gdal.GetDriverByName("GTiff").CreateCopy(border, memory)
    memory = source = None
    layer = QgsRasterLayer(border, "border")
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32633"))  # Layer Properties > Source
    for band in range(1, layer.bandCount() + 1):  # Layer Properties > Transparency > Additional no data value
        layer.dataProvider().setUserNoDataValue(band, [QgsRasterRange(0, 0)])
    QgsProject.instance().addMapLayer(layer)
    x0, y1 = layer.extent().xMinimum(), layer.extent().yMaximum()
    aoi = QgsVectorLayer("Polygon?field=id:integer", "lower half", "memory")  # written without a CRS, assigned one
    feature = QgsFeature(aoi.fields())
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(x0, y1 - 1600, x0 + 1600, y1 - 800)))
    feature.setAttributes([1])
    aoi.dataProvider().addFeatures([feature])
    shapefile = os.path.join(folder, "aoi.shp")
    from qgis.core import QgsCoordinateTransformContext, QgsVectorFileWriter

    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "ESRI Shapefile"
    QgsVectorFileWriter.writeAsVectorFormatV2(aoi, shapefile, QgsCoordinateTransformContext(), options)
    aoi = QgsVectorLayer(shapefile, "lower half", "ogr")
    aoi.setCrs(QgsCoordinateReferenceSystem("EPSG:32633"))
    QgsProject.instance().addMapLayer(aoi)
    classes = os.path.join(folder, "border_classes.tif")
    predicted = run_and_load("geoseg:predict", {"INPUT": layer, "AOI": aoi, "OUTPUT": classes, "EXECUTABLE": executable})
    values = gdal.Open(classes).ReadAsArray()
    shares = {
        "border": float((values[80:160, :40] != 255).mean()),  # the added nodata value: no classes
        "aoi": float((values[80:160, 40:160] != 255).mean()),  # inside the AOI, right of the border
        "outside": float((values[:80] != 255).mean()),  # above the AOI
    }
    vectors = run_and_load(
        "geoseg:vectorize", {"INPUT": classes, "OUTPUT": os.path.join(folder, "border_classes.shp"), "EXECUTABLE": executable}
    )
    selection = QgsProcessingFeatureSourceDefinition(aoi.id(), True)  # nothing selected
    empty = failure("geoseg:predict", {"INPUT": scene, "AOI": selection, "OUTPUT": os.path.join(folder, "empty.tif")})
    return {
        "predict": predicted,
        "shares": shares,
        "srs": gdal.Open(classes).GetSpatialRef().GetAuthorityCode(None),
        "vectorize": vectors,
        "empty": empty,
    }


if with_change:

    @step("change")
    def _change():
        params = {"BEFORE": os.path.join(run_dir, "classes.tif"), "AFTER": os.path.join(work, "predict", "classes.tif")}
        params["OUTDIR"] = os.path.join(work, "change")
        out = run_and_load("geoseg:change", params)
        out["files"] = sorted(os.listdir(params["OUTDIR"]))
        return out


@step("dialog")
def _dialog():
    """Each algorithm's dialog builds its widgets; its parameters (NULL where a field is empty) run as they are."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from processing.gui.AlgorithmDialogBase import AlgorithmDialogBase

    built, values = {}, {}
    for alg in QgsApplication.processingRegistry().providerById("geoseg").algorithms():
        dialog = AlgorithmDialog(alg.create(), False, None)
        try:
            values[alg.id()] = dialog.createProcessingParameters()
            built[alg.id()] = "ok"
        except AlgorithmDialogBase.InvalidParameterValue as exc:
            built[alg.id()] = f"needs {exc.args[0].name()}"
    pred = os.path.join(run_dir, "classes.tif")
    runs = {
        "geoseg:vectorize": {"INPUT": pred, "OUTPUT": os.path.join(work, "dialog", "polygons.gpkg")},
        "geoseg:evaluate": {"PRED": pred, "TRUTH": truth, "LABEL_FIELD": "fclass"},
    }
    commands = {}
    for alg, overrides in runs.items():
        feedback = Feedback()
        processing.run(alg, {**values[alg], **overrides}, feedback=feedback)
        commands[alg] = feedback.commands[0]
    nulls = sorted(k for k, v in values["geoseg:vectorize"].items() if v is None or str(v) == "NULL")
    return {"built": built, "commands": commands, "vectorize_unset": nulls}


@step("cancel")
def _cancel():
    target = os.path.join(work, "cancel")
    os.makedirs(target)
    feedback = Feedback(cancel_at_progress=True)
    started = time.monotonic()
    try:
        processing.run("geoseg:run", {"INPUT": scene, "OUTDIR": os.path.join(target, "out")}, feedback=feedback)
        message = None
    except QgsProcessingException as exc:
        message = str(exc)
    return {
        "message": message,
        "children": feedback.children,
        "alive": [pid for pid in feedback.children if os.path.exists(f"/proc/{pid}")],
        "left": sorted(os.listdir(target)),
        "complete": os.path.exists(os.path.join(target, "out", "run.json")),
        "stop_seconds": round(time.monotonic() - started, 2),
    }


@step("errors")
def _errors():
    old = os.path.join(work, "old_geoseg")
    with open(old, "w") as f:
        f.write("#!/bin/sh\necho 'geoseg, version 0.1.0'\n")
    os.chmod(old, 0o755)
    pred = os.path.join(run_dir, "classes.tif")
    messages = {
        "missing": failure(
            "geoseg:run", {"INPUT": scene, "OUTDIR": os.path.join(work, "e1"), "EXECUTABLE": "/nonexistent/geoseg"}
        ),
        "old": failure("geoseg:run", {"INPUT": scene, "OUTDIR": os.path.join(work, "e2"), "EXECUTABLE": old}),
        "geoseg": failure("geoseg:evaluate", {"PRED": pred, "TRUTH": truth, "LABEL_FIELD": "no_such_field"}),
    }
    set_executable("")
    path = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        messages["not_on_path"] = failure("geoseg:vectorize", {"INPUT": pred, "OUTPUT": os.path.join(work, "e3.gpkg")})
    finally:
        os.environ["PATH"] = path
    return messages


@step("unload")
def _unload():
    unloaded = qgis.utils.unloadPlugin("geoseg_qgis")
    return {"unloaded": unloaded, "provider": QgsApplication.processingRegistry().providerById("geoseg") is not None}


print(json.dumps(report), flush=True)
os._exit(0)  # QGIS 3.22 may crash in exitQgis() when headless; the report is complete
