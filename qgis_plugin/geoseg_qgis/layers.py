"""Layers as the user set them up in QGIS: the nodata values and CRS given in Layer Properties reach geoseg.

geoseg reads files, so what QGIS keeps only in the project (an "additional no
data value", a source nodata value switched off, a CRS assigned to a file that
has none or a wrong one) would be lost by handing geoseg the layer's file. A
raster layer with such settings is handed over as a small VRT that carries
them; a vector layer whose CRS was assigned is written out with it (see
:meth:`GeosegAlgorithm.vector_path`). A layer of a file of several is named as
QGIS and geoseg name it, ``file.gpkg|layername=x``.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingException,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsWkbTypes,
)

LAYER_NAME = "|layername="
"""How QGIS and geoseg name a layer of a file of several: ``fields.gpkg|layername=fields``."""


def assigned_crs(layer) -> QgsCoordinateReferenceSystem | None:
    """The CRS set on ``layer`` in QGIS where it differs from its file's (None where the file's is used)."""
    crs, own = layer.crs(), layer.dataProvider().crs()
    return crs if crs.isValid() and crs != own else None


def own_file(layer) -> str:
    """The file of a vector layer as QGIS names it (empty where it has none)."""
    return str(QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source()).get("path") or "")


def unnamed_layer_of_several(layer) -> bool:
    """Whether ``layer`` is a layer of a file of several vector layers that its source does not name by name (QGIS
    leaves out ``|layerid=0`` and keeps ``|layerid=N``): geoseg would refuse the file, so a copy is handed over."""
    if layer.providerType() != "ogr":
        return False
    parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
    if parts.get("layerName") or not parts.get("path"):
        return False
    found = QgsProviderRegistry.instance().querySublayers(str(parts["path"]))
    return sum(d.providerKey() == "ogr" and d.wkbType() != QgsWkbTypes.NoGeometry for d in found) > 1


def _nodata(layer: QgsRasterLayer) -> tuple[dict[int, float | None], list[str]]:
    """Per band, the nodata value QGIS uses where it is not the file's (None: the file's is switched off); notes."""
    provider, changes, notes = layer.dataProvider(), {}, []
    for band in range(1, layer.bandCount() + 1):
        ranges = list(provider.userNoDataValues(band))
        values = [r.min() for r in ranges if r.min() == r.max()]
        source = provider.sourceHasNoDataValue(band) and provider.useSourceNoDataValue(band)
        if len(values) < len(ranges):
            notes.append(f"band {band}: nodata ranges are not used (geoseg takes one nodata value per band)")
        if source:
            if values:
                notes.append(f"band {band}: the additional nodata value {values[0]:g} is not used (the file's is)")
        elif values:
            changes[band] = values[0]
            if len(values) > 1:
                notes.append(f"band {band}: only the first of the additional nodata values ({values[0]:g}) is used")
        elif provider.sourceHasNoDataValue(band):
            changes[band] = None
    return changes, notes


def raster_as_seen(layer: QgsRasterLayer, name: str, feedback) -> str:
    """GDAL's name for ``layer``: its file, or a VRT of it with the nodata values and CRS set in QGIS.

    The VRT keeps the file's name (``scene.vrt`` in a temporary folder), so
    geoseg's messages and the layers it loads are named as the user knows them.
    """
    source = layer.source()
    changes, notes = _nodata(layer)
    crs = assigned_crs(layer)
    for note in notes:
        feedback.pushWarning(f"{name}: {layer.name()}: {note}")
    if not changes and crs is None:
        return source
    from osgeo import gdal

    path = QgsProcessingUtils.generateTempFilename(Path(source.split("|")[0]).stem + ".vrt")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    vrt = gdal.Translate(path, source, format="VRT")
    if vrt is None:
        raise QgsProcessingException(f"{name}: {layer.name()} could not be read by GDAL ({gdal.GetLastErrorMsg()})")
    for band, value in changes.items():
        if value is None:
            vrt.GetRasterBand(band).DeleteNoDataValue()
        else:
            vrt.GetRasterBand(band).SetNoDataValue(value)
    if crs is not None:
        vrt.SetProjection(crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL))
    vrt = None  # written when closed
    what = [f"nodata {_shown(changes)}"] if changes else []
    what += [f"CRS {crs.authid() or crs.description()}"] if crs is not None else []
    feedback.pushInfo(f"{name}: {layer.name()} is read with the {' and '.join(what)} set in QGIS (through {path})")
    return path


def _shown(changes: dict[int, float | None]) -> str:
    """``0 on bands 1-10`` or ``none on band 2, 5 on band 3``."""
    values, bands = set(changes.values()), sorted(changes)
    if len(values) == 1 and bands == list(range(bands[0], bands[-1] + 1)):
        span = f"bands {bands[0]}-{bands[-1]}" if len(bands) > 1 else f"band {bands[0]}"
        value = values.pop()
        return f"{'none' if value is None else format(value, 'g')} on {span}"
    return ", ".join(f"{'none' if v is None else format(v, 'g')} on band {b}" for b, v in sorted(changes.items()))
