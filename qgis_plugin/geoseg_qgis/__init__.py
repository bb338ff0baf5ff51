"""geoseg for QGIS: a Processing provider (id ``geoseg``) whose algorithms run the geoseg command.

QGIS's own Python never imports geoseg or torch: each algorithm starts the
``geoseg`` executable (found on PATH or set in the provider's settings) in a
separate process, shows its progress, stops it on Cancel and loads the
outputs styled.
"""


def classFactory(iface):  # noqa: N802 - QGIS API
    """The plugin object QGIS asks for when it loads the plugin."""
    from .plugin import GeosegPlugin

    return GeosegPlugin(iface)
