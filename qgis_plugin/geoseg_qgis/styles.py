"""Load geoseg's outputs into the project styled: class maps paletted with class names, polygons by class."""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

CLASSES_TAG = "GEOSEG_CLASSES"


def class_table(path: str) -> list[dict]:
    """The class table (id, name, colour) geoseg stores in a class map's ``GEOSEG_CLASSES`` tag; [] if none."""
    try:
        from osgeo import gdal
    except ImportError:
        return []
    dataset = gdal.OpenEx(path, gdal.OF_RASTER) if path and Path(path).exists() else None
    if dataset is None:
        return []
    text = dataset.GetMetadataItem(CLASSES_TAG)
    dataset = None
    try:
        table = json.loads(text) if text else []
        return [{"id": int(c["id"]), "name": str(c["name"]), "color": str(c["color"])} for c in table]
    except (ValueError, TypeError, KeyError):
        return []


def _paletted(layer: QgsRasterLayer, table: list[dict]) -> None:
    classes = [QgsPalettedRasterRenderer.Class(c["id"], QColor(c["color"]), c["name"]) for c in table]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))


def _categorized(layer: QgsVectorLayer, table: list[dict]) -> None:
    categories = []
    for c in table:
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor(c["color"]))
        categories.append(QgsRendererCategory(c["id"], symbol, c["name"]))
    layer.setRenderer(QgsCategorizedSymbolRenderer("class_id", categories))


class StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Styles a layer when Processing loads it: the QML beside it, else the style stored in a GeoPackage, else
    the class table of ``classes_from`` (a geoseg class map) as a paletted raster or polygons by ``class_id``."""

    alive: list[StyleOnLoad] = []  # QGIS holds only a C++ pointer: keep the Python objects until QGIS exits

    def __init__(self, qml: str | None = None, classes_from: str | None = None):
        super().__init__()
        self.qml, self.classes_from = qml, classes_from
        StyleOnLoad.alive.append(self)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if layer is None:
            return
        if self.qml and Path(self.qml).exists():
            message, ok = layer.loadNamedStyle(self.qml)
            if not ok:
                feedback.pushWarning(f"could not apply {self.qml}: {message}")
        elif isinstance(layer, QgsVectorLayer) and layer.loadDefaultStyle()[1] and self._styled(layer):
            pass  # a GeoPackage's own style, or the .qml geoseg wrote beside the file
        elif self.classes_from:
            table = class_table(self.classes_from)
            if table and isinstance(layer, QgsRasterLayer):
                _paletted(layer, table)
            elif table and isinstance(layer, QgsVectorLayer) and layer.fields().indexOf("class_id") >= 0:
                _categorized(layer, table)
        layer.triggerRepaint()

    def _styled(self, layer: QgsVectorLayer) -> bool:
        """Whether the default style just loaded is a style of the polygons: a ``.qml`` of the same name may be the
        class map's (``classes.tif`` vectorized to ``classes.shp``), which leaves the polygons unstyled."""
        return not self.classes_from or _categorized_by_class(layer)


def _categorized_by_class(layer: QgsVectorLayer) -> bool:
    renderer = layer.renderer()
    return isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "class_id"


def load_on_completion(
    context: QgsProcessingContext,
    path: str,
    name: str,
    output: str,
    raster: bool,
    qml: str | None = None,
    classes_from: str | None = None,
) -> None:
    """Load ``path`` into the project when the algorithm finishes, styled by :class:`StyleOnLoad`."""
    if context.willLoadLayerOnCompletion(path):
        details = context.layerToLoadOnCompletionDetails(path)
    else:
        details = QgsProcessingContext.LayerDetails(name, context.project(), output)
        details.layerTypeHint = QgsProcessingUtils.LayerHint.Raster if raster else QgsProcessingUtils.LayerHint.Vector
    details.setPostProcessor(StyleOnLoad(qml, classes_from))
    context.addLayerToLoadOnCompletion(path, details)
