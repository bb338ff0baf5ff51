"""Run by Debian's python3 with QGIS (not the venv): open layers as a QGIS user would, print JSON.

usage: python3 qgis_open.py RASTER_OR_VECTOR...
"""

import json
import os
import sys

from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer

app = QgsApplication([], False)
app.initQgis()
report = {}
for path in sys.argv[1:]:
    if path.endswith(".tif"):
        layer = QgsRasterLayer(path, "raster")
        renderer = layer.renderer()
        paletted = renderer is not None and renderer.type() == "paletted"
        report[path] = {
            "valid": layer.isValid(),
            "crs": layer.crs().authid(),
            "renderer": renderer.type() if renderer else None,
            "width": layer.width(),
            "height": layer.height(),
            "classes": [[c.value, c.label] for c in renderer.classes()] if paletted else [],
        }
    else:
        uri = f"{path}|layername=polygons" if path.endswith(".gpkg") else path
        layer = QgsVectorLayer(uri, "vector", "ogr")
        renderer = layer.renderer()
        categories = []
        if renderer is not None and renderer.type() == "categorizedSymbol":
            categories = [[c.value(), c.label(), c.symbol().color().name()] for c in renderer.categories()]
        report[path] = {
            "valid": layer.isValid(),
            "crs": layer.crs().authid(),
            "count": layer.featureCount(),
            "renderer": renderer.type() if renderer else None,
            "categories": categories,
            "fields": [f.name() for f in layer.fields()],
        }
print(json.dumps(report), flush=True)
os._exit(0)  # QGIS 3.22 may crash in exitQgis() when headless; the report is complete
