"""A scene seen on another grid: read at another pixel size through an in-memory VRT (:func:`open_resampled`), or
warped onto a grid (:func:`warp_onto`).
"""

from __future__ import annotations

import os
from typing import Any

import rasterio
from rasterio.enums import MaskFlags

from geoseg.io.pixels import pixel_sizes_m
from geoseg.io.raster import gdal_path

__all__ = ["open_resampled", "warp_onto"]


def open_resampled(
    ds: rasterio.io.DatasetReader, image: str | os.PathLike, size_m: float
) -> tuple[str, rasterio.io.DatasetReader]:
    """The scene ``ds`` (opened from ``image``) read at a pixel size of about ``size_m`` metres through an in-memory VRT
    over the same bounds (average to coarser pixels, bilinear to finer ones; nodata and masks kept): its GDAL path,
    for other handles, and an open dataset named as ``ds``.

    Example:
        >>> with open_scene("data_samples/brandenburg_s2_512.tif") as ds:  # doctest: +SKIP
        ...     path, coarse = open_resampled(ds, "data_samples/brandenburg_s2_512.tif", 20.0)
        ...     coarse.width, coarse.name == ds.name
        (256, True)
    """
    from affine import Affine

    from geoseg.io.sources import VirtualScene, open_virtual
    from geoseg.io.vrt import VirtualGrid, resampled_xml

    x, y = pixel_sizes_m(ds)  # each axis on its own: a geographic scene's pixels are narrower than tall
    width, height = max(1, round(ds.width * x / size_m)), max(1, round(ds.height * y / size_m))
    t = ds.transform
    grid = VirtualGrid(ds.crs, Affine(t.a * ds.width / width, 0, t.c, 0, t.e * ds.height / height, t.f), width, height)
    method = "average" if width < ds.width or height < ds.height else "bilinear"
    mask = not all(MaskFlags.nodata in f or MaskFlags.all_valid in f for f in ds.mask_flag_enums)
    xml = resampled_xml(gdal_path(ds, image), ds, grid, method, mask)
    out = open_virtual(VirtualScene(ds.name, "resampled", None, (), grid, xml))
    return str(out.path), out


def warp_onto(src: Any, target: Any, resampling: str = "nearest", fixed_scale: bool = False, **options: Any) -> Any:
    """``src`` (an open dataset) seen on ``target``'s grid (anything with ``crs``, ``transform``, ``width`` and
    ``height``: a dataset or a grid) through a WarpedVRT. ``fixed_scale`` fixes the kernel's scale to the ratio of the
    pixel sizes instead of GDAL's guess per chunk read, so a pixel's value does not depend on how it is read.
    ``add_alpha=True`` (an option of the WarpedVRT) gives it an alpha band, so ``read_masks`` says which pixels lie
    outside ``src``'s footprint (or are its nodata) also when ``src`` has no nodata value.

    Example:
        >>> with open_scene("labels.tif") as src, open_scene("scene.tif") as ds:  # doctest: +SKIP
        ...     view = warp_onto(src, ds)  # nearest, on the scene's grid
    """
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    if fixed_scale:
        options["XSCALE"] = repr(abs(src.transform.a / target.transform.a))
        options["YSCALE"] = repr(abs(src.transform.e / target.transform.e))
    return WarpedVRT(
        src,
        crs=target.crs,
        transform=target.transform,
        width=target.width,
        height=target.height,
        resampling=Resampling[resampling],
        **options,
    )
