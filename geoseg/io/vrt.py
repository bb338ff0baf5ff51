"""Virtual scenes: band files read once for their headers, laid on one grid, written as a GDAL VRT (never pixels).

A source (a band folder, a band list, a STAC item, a SAFE, a Landsat MTL)
lists :class:`BandFile`s; :func:`open_bands` reads their headers,
:func:`common_grid` finds the finest grid they share (or one of
``resolution`` metres) and :func:`vrt_xml` writes the VRT that reads each
band onto it: bilinear where a band is coarser than the grid, average where
it is finer, a plain copy where it already lies on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError

from geoseg.core.errors import RasterError
from geoseg.io.paths import sidecar_options

__all__ = ["BandFile", "OpenedBand", "VirtualGrid", "common_grid", "open_bands", "resampled_xml", "vrt_xml"]

_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
}
_EPS = 1e-6  # of a pixel: grid positions closer than this are the same
_METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class BandFile:
    """One band of one file as a source lists it: the GDAL path, the band in it, its name and common name.

    ``nodata`` is the source's own statement (a STAC item's ``raster:bands``,
    a SAFE's documented 0), used where the file sets none; ``label`` is how
    the user knows the band's file (a file name, a STAC asset key);
    ``single`` files must hold one band (a band folder's, a band list's).
    """

    path: str
    band: int = 1
    name: str | None = None
    common: str | None = None
    nodata: float | None = None
    label: str = ""
    continuous: bool = True
    single: bool = False


@dataclass(frozen=True)
class OpenedBand:
    """A :class:`BandFile` with what its header says: size, placement, CRS, data type, nodata, block size."""

    file: BandFile
    width: int
    height: int
    transform: Affine
    crs: Any
    dtype: str
    nodata: float | None
    block: tuple[int, int] = (256, 256)
    description: str | None = None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the band's CRS."""
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f

    @property
    def resolution_m(self) -> float:
        """Pixel size in metres (mean of both axes; degrees at the band's centre)."""
        return _metres(self.crs, (abs(self.transform.a) + abs(self.transform.e)) / 2, self.bounds)


@dataclass(frozen=True)
class VirtualGrid:
    """The grid every band is read onto: CRS, north-up transform, width and height."""

    crs: Any
    transform: Affine
    width: int
    height: int
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the grid's CRS."""
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f

    @property
    def resolution_m(self) -> float:
        """Pixel size in metres."""
        return _metres(self.crs, abs(self.transform.a), self.bounds)


def _metres(crs: Any, size: float, bounds: tuple[float, float, float, float]) -> float:
    if crs is not None and crs.is_geographic:
        return size * _METRES_PER_DEGREE * math.cos(math.radians((bounds[1] + bounds[3]) / 2))
    factor = crs.linear_units_factor[1] if crs is not None and crs.is_projected and crs.linear_units_factor else 1.0
    return float(size * factor)


def open_bands(files: Sequence[BandFile], where: str) -> list[OpenedBand]:
    """Read the header of every band file (no pixels); an unreadable file is a one-line error naming it.

    Example:
        >>> [b.width for b in open_bands([BandFile("data_samples/brandenburg_s2_512.tif", 1)], "x")]  # doctest: +SKIP
        [512]
    """
    opened = []
    for item in files:
        label = item.label or item.path
        try:
            with rasterio.Env(**sidecar_options(item.path)), rasterio.open(item.path) as ds:
                if not 1 <= item.band <= ds.count:
                    raise RasterError(f"{where}: {label} has {ds.count} band(s), not band {item.band}: check the source")
                if item.single and ds.count != 1:
                    raise RasterError(
                        f"{where}: {label} holds {ds.count} bands, not one: give single-band files (gdal_translate -b N "
                        "writes one band), or give the multi-band file itself"
                    )
                t = ds.transform
                if t.b or t.d or t.e >= 0:
                    raise RasterError(f"{where}: {label} is not a north-up raster: warp it north-up with gdalwarp first")
                opened.append(
                    OpenedBand(
                        item,
                        ds.width,
                        ds.height,
                        t,
                        ds.crs,
                        ds.dtypes[item.band - 1],
                        ds.nodatavals[item.band - 1] if ds.nodatavals[item.band - 1] is not None else item.nodata,
                        tuple(ds.block_shapes[item.band - 1][::-1]),
                        ds.descriptions[item.band - 1],
                    )
                )
        except RasterioIOError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else "unreadable"
            if "://" in item.path:
                url = item.path.split("/vsicurl/", 1)[-1]
                raise RasterError(
                    f"{where}: asset {label} at {url} cannot be read ({detail}): check the URL and the network"
                ) from None
            raise RasterError(f"{where}: band file {label} cannot be read ({detail}): check the file") from None
    return opened


def _intersection(bands: Sequence[OpenedBand], where: str) -> tuple[float, float, float, float]:
    lefts, bottoms, rights, tops = zip(*(b.bounds for b in bands))
    box = max(lefts), max(bottoms), min(rights), min(tops)
    if box[0] >= box[2] or box[1] >= box[3]:
        a = min(bands, key=lambda b: b.bounds[2])  # the band that ends first and one that starts after it
        b = max(bands, key=lambda b: b.bounds[0]) if box[0] >= box[2] else max(bands, key=lambda b: b.bounds[1])
        raise RasterError(
            f"{where}: band files {a.file.label or a.file.path} and {b.file.label or b.file.path} do not overlap: "
            "give the bands of one scene"
        )
    return box


def cut_note(bands: Sequence[OpenedBand], grid: VirtualGrid, where: str) -> str | None:
    """One line when the grid leaves out more than a pixel of some band (the bands cover different areas), else None.

    The scene is the area every band covers: what lies outside it is never
    read, so the line names the band that loses most and how much.

    Example:
        >>> a = OpenedBand(BandFile("a.tif"), 10, 10, Affine(10, 0, 0, 0, -10, 100), None, "uint16", None)
        >>> b = OpenedBand(BandFile("b.tif"), 10, 10, Affine(10, 0, 50, 0, -10, 100), None, "uint16", None)
        >>> cut_note([a, b], common_grid([a, b], "folder x"), "folder x").split("(")[1].split(")")[0]
        'a.tif loses 50% of its area, b.tif 50%'
    """
    gl, gb, gr, gt = grid.bounds
    lost = []
    for band in bands:
        left, bottom, right, top = band.bounds
        px = max(abs(band.transform.a), abs(grid.transform.a))
        py = max(abs(band.transform.e), abs(grid.transform.e))
        if max(gl - left - px, right - gr - px, gb - bottom - py, top - gt - py) <= _EPS * max(px, py):
            continue  # the grid covers the band to within one pixel (the band's or the grid's, the larger)
        inside = max(0.0, min(right, gr) - max(left, gl)) * max(0.0, min(top, gt) - max(bottom, gb))
        lost.append((1 - inside / ((right - left) * (top - bottom)), band.file.label or Path(band.file.path).name))
    if not lost:
        return None
    lost.sort(key=lambda item: -item[0])
    shown = ", ".join(
        f"{name} {share:.0%}" if i else f"{name} loses {share:.0%} of its area" for i, (share, name) in enumerate(lost[:3])
    )
    return (
        f"{where}: the band files cover different areas; the scene is cut to the {grid.width} x {grid.height} px all "
        f"of them cover ({shown}{', ...' if len(lost) > 3 else ''}): give bands of one extent to keep all of it"
    )


def _check_crs(bands: Sequence[OpenedBand], where: str) -> None:
    first = bands[0]
    for band in bands[1:]:
        if band.crs != first.crs:
            names = [f"{b.file.label or b.file.path} ({b.crs.to_string() if b.crs else 'no CRS'})" for b in (first, band)]
            target = first.crs.to_string() if first.crs else "EPSG:XXXX"
            raise RasterError(
                f"{where}: band files are in different CRSs, {names[0]} and {names[1]}: reproject them to one CRS "
                f"first, e.g. gdalwarp -t_srs {target}"
            )


def common_grid(bands: Sequence[OpenedBand], where: str, resolution: float | None = None) -> VirtualGrid:
    """The finest grid the bands share (their overlap, on the finest non-panchromatic band's pixels), or the grid of
    ``resolution`` metres aligned to that band's.

    Example:
        >>> b = OpenedBand(BandFile("a.tif"), 10, 10, Affine(20, 0, 0, 0, -20, 200), None, "uint16", None)
        >>> c = OpenedBand(BandFile("b.tif"), 20, 20, Affine(10, 0, 0, 0, -10, 200), None, "uint16", None)
        >>> g = common_grid([b, c], "x"); g.width, g.transform.a
        (20, 10.0)
        >>> common_grid([b, c], "x", resolution=40).width
        5
    """
    _check_crs(bands, where)
    left, bottom, right, top = _intersection(bands, where)
    multispectral = [b for b in bands if b.file.common != "pan"] or list(bands)
    finest = min(multispectral, key=lambda b: (abs(b.transform.a), abs(b.transform.e)))
    xres, yres = abs(finest.transform.a), abs(finest.transform.e)
    if resolution is not None:
        xres = resolution / _metres(finest.crs, 1.0, (left, bottom, right, top))
        yres = xres if finest.crs is None or not finest.crs.is_geographic else resolution / _METRES_PER_DEGREE
    ax, ay = finest.transform.c, finest.transform.f
    x0 = ax + math.ceil((left - ax) / xres - _EPS) * xres
    y0 = ay - math.ceil((ay - top) / yres - _EPS) * yres
    width = int(math.floor((right - x0) / xres + _EPS))
    height = int(math.floor((y0 - bottom) / yres + _EPS))
    if width < 1 or height < 1:
        raise RasterError(f"{where}: the band files overlap by less than one pixel of {xres:g}: give the bands of one scene")
    return VirtualGrid(finest.crs, Affine(xres, 0, x0, 0, -yres, y0), width, height)


def _resampling(band: OpenedBand, grid: VirtualGrid) -> str | None:
    """None where the band's pixels are the grid's (a plain copy), else how to resample it onto the grid."""
    t, g = band.transform, grid.transform
    same_size = abs(abs(t.a) - g.a) <= _EPS * g.a and abs(abs(t.e) - abs(g.e)) <= _EPS * abs(g.e)
    dx, dy = (t.c - g.c) / g.a, (g.f - t.f) / abs(g.e)
    if same_size and abs(dx - round(dx)) < 1e-3 and abs(dy - round(dy)) < 1e-3:
        return None
    coarser = abs(t.a) > g.a * (1 + _EPS)
    if not band.file.continuous:
        return "nearest" if coarser else "mode"
    return "bilinear" if coarser else "average"


def _band_xml(index: int, band: OpenedBand, grid: VirtualGrid, dtype: str, description: str) -> str:
    item, t, g = band.file, band.transform, grid.transform
    dst = ((t.c - g.c) / g.a, (g.f - t.f) / abs(g.e), band.width * abs(t.a) / g.a, band.height * abs(t.e) / abs(g.e))
    method = _resampling(band, grid)
    resampling = f" resampling={quoteattr(method)}" if method else ""
    colour = {"red": "Red", "green": "Green", "blue": "Blue"}.get(item.common or "", "Undefined")
    metadata = {
        "COMMON_NAME": item.common or "",
        "NATIVE_RESOLUTION_M": f"{band.resolution_m:.6g}",
        "NATIVE_DTYPE": band.dtype,
        "SOURCE_FILE": item.label,
    }
    lines = [
        f'  <VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{index}">',
        f"    <Description>{escape(description)}</Description>",
        f"    <ColorInterp>{colour}</ColorInterp>",
        "    <Metadata>"
        + "".join(f"<MDI key={quoteattr(k)}>{escape(v)}</MDI>" for k, v in metadata.items() if v)
        + "</Metadata>",
    ]
    if band.nodata is not None:
        lines.append(f"    <NoDataValue>{_number(band.nodata)}</NoDataValue>")
    lines += [
        f"    <SimpleSource{resampling}>",
        f'      <SourceFilename relativeToVRT="0">{escape(item.path)}</SourceFilename>',
        f"      <SourceBand>{item.band}</SourceBand>",
        f'      <SourceProperties RasterXSize="{band.width}" RasterYSize="{band.height}" '
        f'DataType="{_GDAL_TYPES[band.dtype]}" BlockXSize="{band.block[0]}" BlockYSize="{band.block[1]}"/>',
        f'      <SrcRect xOff="0" yOff="0" xSize="{band.width}" ySize="{band.height}"/>',
        '      <DstRect xOff="{:.10g}" yOff="{:.10g}" xSize="{:.10g}" ySize="{:.10g}"/>'.format(*dst),
        "    </SimpleSource>",
        "  </VRTRasterBand>",
    ]
    return "\n".join(lines)


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value)) if not float(value).is_integer() else str(int(value))


def vrt_xml(bands: Sequence[OpenedBand], grid: VirtualGrid, descriptions: Sequence[str]) -> str:
    """The VRT (XML text) that reads ``bands`` onto ``grid``, described by ``descriptions``, with per-band nodata.

    Bands of different data types are read as the smallest type that holds them all (rasterio reads one type).

    Example:
        >>> b = OpenedBand(BandFile("/data/B04.tif", common="red"), 10, 10, Affine(20, 0, 0, 0, -20, 200), None, "uint16", 0)
        >>> print(vrt_xml([b], common_grid([b], "x", resolution=10), ["B04 (red)"]).splitlines()[3])
            <Description>B04 (red)</Description>
    """
    dtype = np.result_type(*[np.dtype(b.dtype) for b in bands]).name
    g = grid.transform
    head = [f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">']
    if grid.crs is not None:
        head.append(f"  <SRS>{escape(grid.crs.to_wkt())}</SRS>")
    head.append(f"  <GeoTransform>{g.c!r}, {g.a!r}, 0, {g.f!r}, 0, {g.e!r}</GeoTransform>")
    if grid.tags:
        items = "".join(f"<MDI key={quoteattr(k)}>{escape(v)}</MDI>" for k, v in grid.tags.items())
        head.append(f"  <Metadata>{items}</Metadata>")
    body = [_band_xml(i + 1, b, grid, dtype, d) for i, (b, d) in enumerate(zip(bands, descriptions))]
    return "\n".join([*head, *body, "</VRTDataset>"]) + "\n"


def resampled_xml(source: str, ds: Any, grid: VirtualGrid, resampling: str, mask: bool = False) -> str:
    """The VRT (XML text) that reads every band of the open raster ``ds`` (GDAL path ``source``) onto ``grid``, a grid
    over the same bounds at another pixel size, with ``resampling`` (``average`` to coarser pixels, ``bilinear`` to
    finer ones). Band descriptions and nodata are kept; ``mask`` carries the raster's dataset mask (nearest).

    Example:
        >>> with rasterio.open("data_samples/brandenburg_s2_512.tif") as ds:  # doctest: +SKIP
        ...     g = VirtualGrid(ds.crs, ds.transform * Affine.scale(2), 256, 256)
        ...     "average" in resampled_xml(ds.name, ds, g, "average")
        True
    """
    g = grid.transform
    rects = (
        f'      <SrcRect xOff="0" yOff="0" xSize="{ds.width}" ySize="{ds.height}"/>\n'
        f'      <DstRect xOff="0" yOff="0" xSize="{grid.width}" ySize="{grid.height}"/>'
    )
    path = f'      <SourceFilename relativeToVRT="0">{escape(source)}</SourceFilename>'
    lines = [f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">']
    if grid.crs is not None:
        lines.append(f"  <SRS>{escape(grid.crs.to_wkt())}</SRS>")
    lines.append(f"  <GeoTransform>{g.c!r}, {g.a!r}, 0, {g.f!r}, 0, {g.e!r}</GeoTransform>")
    for i in range(1, ds.count + 1):
        lines.append(f'  <VRTRasterBand dataType="{_GDAL_TYPES[ds.dtypes[i - 1]]}" band="{i}">')
        lines.append(f"    <Description>{escape(ds.descriptions[i - 1] or '')}</Description>")
        if ds.nodatavals[i - 1] is not None:
            lines.append(f"    <NoDataValue>{_number(ds.nodatavals[i - 1])}</NoDataValue>")
        lines += [f"    <SimpleSource resampling={quoteattr(resampling)}>", path, f"      <SourceBand>{i}</SourceBand>"]
        lines += [rects, "    </SimpleSource>", "  </VRTRasterBand>"]
    if mask:
        lines += ["  <MaskBand>", '    <VRTRasterBand dataType="Byte">', '    <SimpleSource resampling="nearest">', path]
        lines += ["      <SourceBand>mask,1</SourceBand>", rects, "    </SimpleSource>", "    </VRTRasterBand>", "  </MaskBand>"]
    return "\n".join([*lines, "</VRTDataset>"]) + "\n"
