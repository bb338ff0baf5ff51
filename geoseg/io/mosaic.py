"""Batch outputs: a VRT mosaic of class maps and one GeoPackage of everyone's polygons."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from geoseg.core.classes import CLASSES_TAG, NODATA, ClassInfo

__all__ = ["merge_polygons", "mosaic_vrt", "vrt_source"]


def vrt_source(
    filename: str,
    relative: bool,
    band: int,
    size: tuple[int, int],
    offset: tuple[float, float],
    nodata: int | None = None,
    lut: str | None = None,
) -> list[str]:
    """XML lines of one VRT source: band ``band`` of ``filename`` (all ``size`` pixels) placed at ``offset``.

    A ``nodata`` value or a ``lut`` make it a ComplexSource, else a SimpleSource.

    Example:
        >>> vrt_source("a.tif", True, 1, (2, 2), (4, 0))[1]
        '      <SourceFilename relativeToVRT="1">a.tif</SourceFilename>'
    """
    kind = "ComplexSource" if nodata is not None or lut else "SimpleSource"
    (w, h), (x, y) = size, offset
    lines = [
        f"    <{kind}>",
        f'      <SourceFilename relativeToVRT="{int(relative)}">{escape(filename)}</SourceFilename>',
        f"      <SourceBand>{band}</SourceBand>",
    ]
    if nodata is not None:
        lines.append(f"      <NODATA>{nodata}</NODATA>")
    lines += [
        f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>',
        f'      <DstRect xOff="{x!r}" yOff="{y!r}" xSize="{w}" ySize="{h}"/>',
    ]
    if lut:
        lines.append(f"      <LUT>{lut}</LUT>")
    return [*lines, f"    </{kind}>"]


def mosaic_vrt(paths: list[Path], out: Path) -> list[str]:
    """Write ``out``, a VRT mosaic of class maps (paths relative to it); returns notes on what was left out.

    All maps must share CRS, pixel size and orientation (geoseg writes each on
    its scene's grid: a south-up scene's map is south-up) and one class table
    (the mosaic has one colour table and one ``GEOSEG_CLASSES`` tag);
    otherwise no mosaic is written (a stale one is removed) and the note says
    why.

    Example:
        >>> mosaic_vrt([Path("a/classes.tif"), Path("b/classes.tif")], Path("classes.vrt"))  # doctest: +SKIP
        []
    """
    import rasterio

    from geoseg.io.outputs import write_text_atomic

    infos = []
    for path in paths:
        with rasterio.open(path) as ds:
            infos.append((path, ds.crs, ds.transform, ds.width, ds.height, ds.colormap(1), ds.tags().get(CLASSES_TAG)))
    note = _mosaic_refusal(infos, out)
    if note:
        if out.exists():
            out.unlink()
        return [note]
    _, crs, t0, *_ = infos[0]
    res_x, res_y = t0.a, t0.e  # one sign for all (else refused): a south-up mosaic of south-up maps
    left, width = _axis([i[2].c for i in infos], [i[3] for i in infos], res_x)
    top, height = _axis([i[2].f for i in infos], [i[4] for i in infos], res_y)
    cmap = infos[0][5]
    lines = [
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
        f"  <SRS>{escape(crs.to_wkt())}</SRS>",
        f"  <GeoTransform>{left!r}, {res_x!r}, 0.0, {top!r}, 0.0, {res_y!r}</GeoTransform>",
    ]
    if infos[0][6]:
        lines.append(f'  <Metadata><MDI key="{CLASSES_TAG}">{escape(infos[0][6])}</MDI></Metadata>')
    lines += [
        '  <VRTRasterBand dataType="Byte" band="1">',
        f"    <NoDataValue>{NODATA}</NoDataValue>",
        "    <ColorInterp>Palette</ColorInterp>",
        "    <ColorTable>",
    ]
    lines += [
        f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>' for r, g, b, a in (cmap.get(i, (0, 0, 0, 0)) for i in range(256))
    ]
    lines.append("    </ColorTable>")
    for path, _, t, w, h, _, _ in infos:
        x, y = (t.c - left) / res_x, (t.f - top) / res_y
        rel = Path(path).resolve().relative_to(out.resolve().parent).as_posix()
        lines += vrt_source(rel, True, 1, (w, h), (x, y), nodata=NODATA)
    lines += ["  </VRTRasterBand>", "</VRTDataset>"]
    write_text_atomic(out, "\n".join(lines))
    return []


def _axis(starts: list[float], sizes: list[int], step: float) -> tuple[float, int]:
    """The mosaic's origin and pixel count along one axis: from the first edge in the direction of ``step`` (the
    top of north-up maps, the bottom of south-up ones) to the last."""
    ends = [start + size * step for start, size in zip(starts, sizes)]
    origin, far = (min(starts), max(ends)) if step > 0 else (max(starts), min(ends))
    return origin, math.ceil((far - origin) / step - 1e-6)


def _orientation(transform: Any) -> str:
    """``north-up`` or ``south-up`` (and ``east-to-west`` when columns run west)."""
    rows = "north-up" if transform.e < 0 else "south-up"
    return f"{rows}, east-to-west" if transform.a < 0 else rows


def _mosaic_refusal(infos: list[tuple[Any, ...]], out: Path) -> str | None:
    """Why the class maps described by ``infos`` make no one mosaic (other CRS or pixel size, other orientation,
    other class table), or None when they do."""
    path0, crs, t0, *_ = infos[0]
    if any(i[1] != crs for i in infos) or any(
        abs(abs(i[2].a) - abs(t0.a)) > 1e-9 * abs(t0.a) or abs(abs(i[2].e) - abs(t0.e)) > 1e-9 * abs(t0.e) for i in infos
    ):
        return (
            f"{out.name} not written: the scenes differ in CRS or pixel size (a mosaic needs one grid); "
            "open the scenes' classes.tif side by side or warp them to one grid"
        )
    turned = next((i for i in infos if _orientation(i[2]) != _orientation(t0)), None)
    if turned is not None:
        return (
            f"{out.name} not written: {_shown(turned[0], out)} is {_orientation(turned[2])} and "
            f"{_shown(path0, out)} {_orientation(t0)} (same CRS and pixel size, other orientation), and a mosaic has "
            "one; open the scenes' classes.tif side by side, or warp the scenes that are not north-up first (gdalwarp "
            "IN.tif OUT.tif writes north-up)"
        )
    other = next((i[0] for i in infos if (i[5], i[6]) != (infos[0][5], infos[0][6])), None)
    if other is None:
        return None
    return (
        f"{out.name} not written: {_shown(other, out)} has another class table than {_shown(path0, out)} "
        "(made with another model), and a mosaic shows one; open the scenes' classes.tif side by side, "
        "or run the batch again with one model and --overwrite"
    )


def _shown(path: Path, out: Path) -> str:
    """``path`` relative to the folder of ``out`` where it lies inside it (``a/classes.tif``)."""
    try:
        return Path(path).resolve().relative_to(out.resolve().parent).as_posix()
    except ValueError:
        return str(path)


def merge_polygons(paths: list[Path], out: Path, style: Callable[[Sequence[ClassInfo]], str] | None = None) -> list[str]:
    """Concatenate scenes' ``polygons.gpkg`` into ``out`` (CRS of the first, field ``scene``, QGIS style).

    ``style`` makes the QGIS style (QML text) from the class table; scenes
    whose ``classes.tif`` differ in class table get no style (one note says so).
    Streams: one scene's polygons are in memory at a time.

    Example:
        >>> merge_polygons([Path("a/polygons.gpkg"), Path("b/polygons.gpkg")], Path("polygons.gpkg"))  # doctest: +SKIP
        []
    """
    import pyogrio
    import rasterio

    from geoseg.io.classmap import class_table_of
    from geoseg.io.features import LAYER, PolygonSink

    tables = []
    for path in paths:
        with rasterio.open(path.parent / "classes.tif") as ds:
            tables.append(class_table_of(ds))
    table, notes = tables[0], []
    if any(t != table for t in tables):  # a style shows one class table: it would name other scenes' classes wrongly
        style = None
        notes.append(
            f"{out.name}: the scenes have different class tables (other models); each polygon keeps its class_id "
            "and class_name, but no QGIS style is stored"
        )
    crs = None
    reprojected = False
    with PolygonSink(out, "GPKG", table, style=style(table) if style else None) as sink:
        for path in paths:
            frame = pyogrio.read_dataframe(path, layer=LAYER)
            frame.insert(0, "scene", path.parent.name)
            crs = frame.crs if crs is None else crs
            if frame.crs != crs:
                frame, reprojected = frame.to_crs(crs), True
            sink.write(frame)
    if reprojected:
        notes.append(f"{out.name}: scenes in other CRSs reprojected to the first scene's {crs}")
    return notes
