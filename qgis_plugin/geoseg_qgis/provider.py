"""The Processing provider ``geoseg``: its algorithms and its setting (the geoseg executable)."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from . import runner
from .algorithms import ALGORITHMS
from .base import ICON


def _config():
    """Processing's settings registry (Settings > Options > Processing), or None outside the QGIS desktop."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig, Setting
    except ImportError:
        return None, None
    return ProcessingConfig, Setting


class GeosegProvider(QgsProcessingProvider):
    """geoseg's algorithms; the executable is a setting under Settings > Options > Processing > Providers."""

    def id(self):
        return "geoseg"

    def name(self):
        return "geoseg"

    def longName(self):  # noqa: N802 - QGIS API
        return "geoseg land-cover segmentation"

    def icon(self):
        return QIcon(ICON)

    def load(self):
        config, setting = _config()
        if config is not None:
            config.settingIcons[self.name()] = self.icon()
            description = "geoseg executable, or a Python with geoseg installed (empty: geoseg on PATH)"
            config.addSetting(setting(self.name(), runner.SETTING_NAME, description, "", valuetype=setting.FILE))
            config.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        config, _ = _config()
        if config is not None and runner.SETTING_NAME in config.settings:
            config.removeSetting(runner.SETTING_NAME)

    def loadAlgorithms(self):  # noqa: N802 - QGIS API
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
