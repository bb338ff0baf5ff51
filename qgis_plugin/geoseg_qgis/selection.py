"""A parameter that takes a raster or a vector layer, the vector layer also as its selected features only.

QGIS offers "Selected features only" on feature-source parameters, which take
vector layers alone; a parameter that also takes rasters (evaluate's TRUTH,
tile's LABELS) is a map-layer parameter, which neither shows the check box
nor accepts the value that asks for it (a QgsProcessingFeatureSourceDefinition).
:class:`LayerParameter` accepts that value for vector layers, and its dialog
widget (:class:`widgets.LayerWidget`, named in its metadata so QGIS without a
GUI never imports it) is the feature-source widget that also lists rasters.
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterMapLayer,
    QgsProcessingUtils,
    QgsProperty,
    QgsVectorLayer,
)

WIDGET = f"{__package__}.widgets.LayerWidget"
"""The dialog widget of a :class:`LayerParameter`, as the Processing dialogs import it."""


def is_selection(value) -> bool:
    """Whether a parameter value names a vector layer's features with options (selected only, a feature limit)."""
    return isinstance(value, QgsProcessingFeatureSourceDefinition)


def selection_layer(value: QgsProcessingFeatureSourceDefinition, context: QgsProcessingContext | None):
    """The layer (or file) a feature-source value names: a vector layer, None where it names none or another kind."""
    source = value.source
    if source.propertyType() != QgsProperty.StaticProperty:  # an expression (models): known only when run
        return None
    reference = str(source.staticValue() or "")
    if not reference or context is None:
        return None
    layer = QgsProcessingUtils.mapLayerFromString(reference, context, True, QgsProcessingUtils.LayerHint.Vector)
    return layer if isinstance(layer, QgsVectorLayer) else None


class LayerParameter(QgsProcessingParameterMapLayer):
    """A raster or vector layer, as a map-layer parameter, whose vector layer may also be given as a
    QgsProcessingFeatureSourceDefinition: its selected features only (or a feature limit), as other vector inputs."""

    def __init__(self, name: str, description: str, types: list[int], optional: bool = False):
        super().__init__(name, description, None, optional, types)
        self.setMetadata({"widget_wrapper": {"class": WIDGET}})

    def clone(self):
        copy = LayerParameter(self.name(), self.description(), self.dataTypes())
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        copy.setMetadata(self.metadata())
        copy.setDefaultValue(self.defaultValue())
        return copy

    def checkValueIsAcceptable(self, value, context=None):  # noqa: N802 - QGIS API
        if is_selection(value):
            if value.source.propertyType() != QgsProperty.StaticProperty:
                return True
            if context is None:  # the dialog's check before the run: a layer or file is named
                return bool(str(value.source.staticValue() or ""))
            return selection_layer(value, context) is not None
        return super().checkValueIsAcceptable(value, context)

    def valueAsPythonString(self, value, context):  # noqa: N802 - QGIS API
        if is_selection(value):  # written as a feature source writes it, for the history and "Copy as Python Command"
            return QgsProcessingParameterFeatureSource(self.name(), self.description()).valueAsPythonString(value, context)
        return super().valueAsPythonString(value, context)
