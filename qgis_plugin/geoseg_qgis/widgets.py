"""Dialog widgets (imported by the Processing dialogs only, never by QGIS without a GUI)."""

from __future__ import annotations

import functools
import operator

from qgis.core import QgsMapLayerProxyModel, QgsProcessing, QgsProcessingParameterFeatureSource
from qgis.gui import (
    QgsAbstractProcessingParameterWidgetWrapper,
    QgsGui,
    QgsMapLayerComboBox,
    QgsProcessingGui,
    QgsProcessingMapLayerComboBox,
)
from qgis.PyQt import sip
from qgis.PyQt.QtWidgets import QComboBox

_FILTERS = {
    QgsProcessing.TypeRaster: QgsMapLayerProxyModel.RasterLayer,
    QgsProcessing.TypeVectorAnyGeometry: QgsMapLayerProxyModel.HasGeometry,
    QgsProcessing.TypeVectorPolygon: QgsMapLayerProxyModel.PolygonLayer,
    QgsProcessing.TypeVectorLine: QgsMapLayerProxyModel.LineLayer,
    QgsProcessing.TypeVectorPoint: QgsMapLayerProxyModel.PointLayer,
}
_VECTOR_TYPES = [t for t in _FILTERS if t != QgsProcessing.TypeRaster]


class LayerWidget:
    """What the Processing dialogs build for a :class:`selection.LayerParameter` (named in its metadata): in the
    algorithm dialog a :class:`SelectableLayerWrapper`; in batch and model dialogs QGIS's own map-layer widget."""

    def __new__(cls, parameter, dialog, row=0, col=0, **options):
        registry = QgsGui.processingGuiRegistry()
        kind = type(dialog).__name__
        if kind == "ModelerParametersDialog":
            wrapper = registry.createModelerParameterWidget(dialog.model, dialog.childId, parameter, dialog.context)
        elif kind == "BatchAlgorithmDialog":
            wrapper = registry.createParameterWidgetWrapper(parameter, QgsProcessingGui.Batch)
        else:
            wrapper = SelectableLayerWrapper(parameter, QgsProcessingGui.Standard)
        wrapper.setDialog(dialog)
        return wrapper


class SelectableLayerWrapper(QgsAbstractProcessingParameterWidgetWrapper):
    """QGIS's feature-source widget ("Selected features only", advanced options) listing the parameter's raster
    and vector layers: a raster gives its layer, a vector layer its layer or its selected features."""

    def __init__(self, parameter, dialog_type):
        super().__init__(parameter, dialog_type)
        self.widget_context = None

    def createWidget(self):  # noqa: N802 - QGIS API
        parameter = self.parameterDefinition()
        types = [t for t in parameter.dataTypes() if t in _VECTOR_TYPES] or [QgsProcessing.TypeVectorAnyGeometry]
        source = QgsProcessingParameterFeatureSource(parameter.name(), parameter.description(), types)
        source.setFlags(parameter.flags())
        combo = QgsProcessingMapLayerComboBox(source)  # a copy of source is kept
        layers = _layer_box(combo)
        filters = [_FILTERS[t] for t in parameter.dataTypes() if t in _FILTERS]
        if layers is not None and filters:  # the raster layers too
            layers.setFilters(functools.reduce(operator.or_, filters))
        if self.widget_context is not None:
            combo.setWidgetContext(self.widget_context)
        combo.valueChanged.connect(lambda: self.widgetValueHasChanged.emit(self))
        return combo  # QGIS owns it from here: found again with wrappedWidget()

    def _combo(self) -> QgsProcessingMapLayerComboBox | None:
        widget = self.wrappedWidget()
        return None if widget is None else sip.cast(widget, QgsProcessingMapLayerComboBox)

    def setWidgetContext(self, context):  # noqa: N802 - QGIS API
        self.widget_context = context
        combo = self._combo()
        if combo is not None:
            combo.setWidgetContext(context)
        super().setWidgetContext(context)

    def setWidgetValue(self, value, context):  # noqa: N802 - QGIS API
        combo = self._combo()
        if combo is not None:
            combo.setValue(value, context)

    def widgetValue(self):  # noqa: N802 - QGIS API
        combo = self._combo()
        return combo.value() if combo is not None else None


def _layer_box(combo) -> QgsMapLayerComboBox | None:
    """The layer list inside QGIS's layer widget (the bindings see it as a plain QComboBox)."""
    for child in combo.findChildren(QComboBox):
        if child.metaObject().className() == "QgsMapLayerComboBox":
            return sip.cast(child, QgsMapLayerComboBox)
    return None
