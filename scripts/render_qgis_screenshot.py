"""Render what the QGIS plugin's geoseg:run loads (the styled class map and polygons) to a PNG for the README.

Runs with the Python QGIS is built for (Debian: /usr/bin/python3), headless.
The plugin is loaded from qgis_plugin/, geoseg:run runs on the scene through
Processing exactly as from the toolbox, and QGIS's map renderer draws three
panels: the scene in true colour, the class map as loaded (paletted, with the
names of classes.qml) and the polygons as loaded (categorized, 60% opacity)
over the scene, with the legend below.

Example:
    /usr/bin/python3 scripts/render_qgis_screenshot.py
    /usr/bin/python3 scripts/render_qgis_screenshot.py --scene data_samples/brandenburg_s2.tif --out /tmp/whole.png
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, default=ROOT / "data_samples" / "brandenburg_s2_512.tif")
    parser.add_argument("--model", default="default", help="model file or default (the bundled model)")
    parser.add_argument("--geoseg", type=Path, default=ROOT / ".venv" / "bin" / "geoseg", help="the geoseg executable")
    parser.add_argument("--min-area", type=float, default=300.0, help="--min-area of geoseg run (m²)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "qgis_plugin.png")
    parser.add_argument("--panel", type=int, default=380, help="width of each of the three panels in pixels")
    return parser.parse_args(argv)


def start_qgis(profile: str):
    """A headless QGIS with Processing and the plugin's provider."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from osgeo import gdal
    from qgis.core import QgsApplication

    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")  # QGIS's histograms must not land in an .aux.xml beside the scene

    app = QgsApplication([], False, profile)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    sys.path.insert(0, str(ROOT / "qgis_plugin"))
    from geoseg_qgis.provider import GeosegProvider

    provider = GeosegProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider


def true_colour(scene: Path):
    """The scene as a raster layer drawn B04/B03/B02 (found by band description, else bands 3, 2, 1), stretched."""
    from qgis.core import QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsRasterLayer, QgsRasterMinMaxOrigin

    layer = QgsRasterLayer(str(scene), "scene")
    names = [layer.bandName(i).split(":")[-1].strip().upper() for i in range(1, layer.bandCount() + 1)]  # "Band 3: B04"
    red, green, blue = (names.index(n) + 1 if n in names else d for n, d in (("B04", 3), ("B03", 2), ("B02", 1)))
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue))
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    return layer


def render(layers: list, extent, crs, width: int):
    """``layers`` (top first) drawn by QGIS's parallel map renderer."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(crs)
    settings.setExtent(extent)
    settings.setOutputSize(QSize(width, max(1, round(width * extent.height() / extent.width()))))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def compose(panels: list, captions: list[str], legend: list[tuple[str, str]], out: Path) -> None:
    """Panels side by side with captions, the legend below; saved as an 8-bit PNG (small enough for the README)."""
    from qgis.PyQt.QtCore import QRect, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

    gap, caption = 12, 26
    width = sum(p.width() for p in panels) + gap * (len(panels) + 1)
    columns = max(1, min(len(legend), (width - 2 * gap) // 145))
    rows = -(-len(legend) // columns)
    height = caption + max(p.height() for p in panels) + gap + rows * 24 + gap
    image = QImage(width, height, QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    font = QFont("DejaVu Sans")
    font.setPixelSize(14)
    painter.setFont(font)
    x = gap
    for panel, text in zip(panels, captions):
        painter.setPen(QColor("#222222"))
        painter.drawText(QRect(x, 0, panel.width(), caption), int(Qt.AlignCenter), text)
        painter.drawImage(x, caption, panel)
        x += panel.width() + gap
    top = caption + max(p.height() for p in panels) + gap
    column = (width - 2 * gap) // columns
    for i, (name, colour) in enumerate(legend):
        left, y = gap + (i % columns) * column, top + (i // columns) * 24
        painter.setPen(QColor("#333333"))
        painter.setBrush(QColor(colour))
        painter.drawRect(left, y + 3, 28, 16)
        painter.drawText(QRect(left + 36, y, column - 40, 22), int(Qt.AlignVCenter | Qt.AlignLeft), name)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.convertToFormat(QImage.Format_Indexed8).save(str(out), "png"):
        raise SystemExit(f"render_qgis_screenshot: cannot write {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="geoseg_qgis_") as tmp:
        runtime = Path(tmp) / "runtime"
        runtime.mkdir(mode=0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
        app, _provider = start_qgis(str(Path(tmp) / "profile"))
        import processing
        from qgis.core import QgsProject

        params = {"INPUT": str(args.scene), "MODEL": args.model, "OUTDIR": str(Path(tmp) / "run")}
        params.update(MIN_AREA=args.min_area, EXECUTABLE=str(args.geoseg))
        results = processing.runAndLoadResults("geoseg:run", params)
        loaded = {Path(layer.source().split("|")[0]).name: layer for layer in QgsProject.instance().mapLayers().values()}
        classes, polygons = loaded["classes.tif"], loaded["polygons.gpkg"]
        for layer, kind in ((classes, "paletted"), (polygons, "categorizedSymbol")):
            if layer.renderer().type() != kind:
                raise SystemExit(f"render_qgis_screenshot: {layer.source()} came up {layer.renderer().type()}, not {kind}")
        scene = true_colour(args.scene)
        polygons.setOpacity(0.6)
        extent, crs = classes.extent(), classes.crs()
        panels = [render(layers, extent, crs, args.panel) for layers in ([scene], [classes], [polygons, scene])]
        captions = ["scene (Sentinel-2, true colour)", "classes.tif as loaded", "polygons.gpkg as loaded, over the scene"]
        legend = [(c.label(), c.symbol().color().name()) for c in polygons.renderer().categories()]
        compose(panels, captions, legend, args.out)
        print(f"{args.out} ({args.out.stat().st_size // 1024} KB) from {results['OUTDIR']}", flush=True)
    os._exit(0)  # QGIS 3.22 may crash in exitQgis() when headless; the picture is written


if __name__ == "__main__":
    sys.exit(main())
