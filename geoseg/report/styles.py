"""QGIS styles (QML) from a class table: a paletted raster style and a categorized polygon style."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from geoseg.core.classes import ClassInfo

__all__ = ["classes_qml", "polygons_qml"]

_HEADER = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def classes_qml(classes: Sequence[ClassInfo]) -> str:
    """A paletted raster renderer for ``classes.tif`` (class colours and names; 255 is nodata).

    Example:
        >>> 'label="water"' in classes_qml([ClassInfo(0, "water", "#1f78b4")])
        True
    """
    entries = "\n".join(
        f'        <paletteEntry value="{c.id}" color="{c.color}" alpha="255" label={quoteattr(c.name)}/>' for c in classes
    )
    return (
        f'{_HEADER}<qgis version="3.22.0" styleCategories="Symbology">\n  <pipe>\n'
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
        "      <rasterTransparency/>\n"
        f"      <colorPalette>\n{entries}\n      </colorPalette>\n"
        "    </rasterrenderer>\n"
        '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
        '    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0"/>\n'
        '    <rasterresampler maxOversampling="2"/>\n'
        "  </pipe>\n  <blendMode>0</blendMode>\n</qgis>\n"
    )


def _fill_symbol(name: str, c: ClassInfo) -> str:
    r, g, b = c.rgb
    props = {
        "color": f"{r},{g},{b},255",
        "outline_color": "35,35,35,255",
        "outline_style": "solid",
        "outline_width": "0.1",
        "outline_width_unit": "MM",
        "style": "solid",
        "joinstyle": "bevel",
    }
    lines = "\n".join(f'          <prop k="{k}" v="{v}"/>' for k, v in props.items())
    return (
        f'      <symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">\n'
        f'        <layer class="SimpleFill" enabled="1" locked="0" pass="0">\n{lines}\n        </layer>\n'
        "      </symbol>"
    )


def polygons_qml(classes: Sequence[ClassInfo]) -> str:
    """A categorized renderer on ``class_id`` with the class colours and names as labels.

    Example:
        >>> 'attr="class_id"' in polygons_qml([ClassInfo(0, "water", "#1f78b4")])
        True
    """
    categories = "\n".join(
        f'      <category value="{c.id}" symbol="{i}" label={quoteattr(c.name)} render="true"/>' for i, c in enumerate(classes)
    )
    symbols = "\n".join(_fill_symbol(str(i), c) for i, c in enumerate(classes))
    return (
        f'{_HEADER}<qgis version="3.22.0" styleCategories="Symbology">\n'
        '  <renderer-v2 type="categorizedSymbol" attr="class_id" symbollevels="0" enableorderby="0" forceraster="0">\n'
        f"    <categories>\n{categories}\n    </categories>\n"
        f"    <symbols>\n{symbols}\n    </symbols>\n"
        "  </renderer-v2>\n  <blendMode>0</blendMode>\n  <featureBlendMode>0</featureBlendMode>\n</qgis>\n"
    )
