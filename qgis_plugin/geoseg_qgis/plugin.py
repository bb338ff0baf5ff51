"""The plugin object: registers the geoseg Processing provider, also when QGIS runs without its GUI."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import GeosegProvider


class GeosegPlugin:
    """Adds the provider in :meth:`initProcessing` (called by QGIS, and by :meth:`initGui` for older QGIS)."""

    def __init__(self, iface):
        self.iface = iface
        self.provider: GeosegProvider | None = None

    def initProcessing(self):  # noqa: N802 - QGIS API
        if self.provider is None:
            self.provider = GeosegProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 - QGIS API
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
