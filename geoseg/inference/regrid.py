"""Scenes at another pixel size than the model's: chips read at the model's pixel size, outputs on either grid.

When a scene's pixel size differs from the model card's by more than 25%
(:func:`geoseg.inference.checks.check_pixel_size`), :func:`geoseg.predict`
reads the scene through an in-memory VRT at the model's pixel size
(:func:`geoseg.io.resample.open_resampled`, same bounds) and runs the usual
chip loop on that grid. With ``output_grid="model"`` its outputs lie on that
grid. With ``output_grid="scene"`` (the default) the chip loop writes the
stitched probabilities to a temporary raster on the model's grid
(:data:`GRID_PROBABILITIES`, uint16), and :func:`to_scene_grid` reads them
back strip by strip through a bilinear warped view on the scene's grid,
takes the argmax there and writes the usual outputs: probabilities are
brought back before the argmax, the scene's own nodata stays nodata, and
memory holds one strip of one vertical block.

Example:
    >>> r = geoseg.predict("scene_20m.tif", model_10m, "classes.tif", output_grid="scene")  # doctest: +SKIP
    >>> r.grid["read_pixel_size_m"], r.grid["output_pixel_size_m"]  # doctest: +SKIP
    (10.0, 20.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.grid import split_columns
from geoseg.inference.loop import PredictResult as LoopResult
from geoseg.io.classmap import GRID_PROBABILITIES, NODATA16, RASTER_OUTPUTS, SCALE16, ClassMapWriter
from geoseg.io.pixels import pixel_size_m, pixel_sizes_m
from geoseg.io.raster import read_window, scene_has_mask
from geoseg.io.resample import warp_onto

__all__ = ["GRID_PROBABILITIES", "PredictResult", "STRIP_ROWS", "grid_record", "model_span", "to_scene_grid"]

STRIP_ROWS = 128
"""Rows of the scene's grid brought back from the model's grid at a time (per vertical block)."""


@dataclass
class PredictResult(LoopResult):
    """What :func:`geoseg.predict` wrote, how long each part took, and ``grid``: how the scene's pixel size was met
    (run.json's ``grid``: resampled or not, the scene's, the model's and the output's pixel sizes, the output grid)."""

    grid: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    """What ran, where options said ``auto`` or nothing: chip size, overlap in pixels, batch size, backend, device
    and the scene's bands read (run.json's ``effective``)."""
    clouds: dict[str, Any] | None = None
    """With ``mask_clouds``: the cloud mask's record (model, bands, scaling, cloud and shadow shares), run.json's ``clouds``."""


def grid_record(ds: Any, model_size: float | None, read: Any, output_grid: str) -> dict[str, Any]:
    """run.json's ``grid``: the scene ``ds``, the model's pixel size, the grid ``read`` (chips) and the output grid.

    Example:
        >>> grid_record(ds, 10.0, ds, "scene")["resampled"]  # doctest: +SKIP
        False
    """
    scene, chips = pixel_size_m(ds), pixel_size_m(read)
    return {
        "resampled": read is not ds,
        "scene_pixel_size_m": round(scene, 6),
        "scene_pixel_sizes_m": [round(size, 6) for size in pixel_sizes_m(ds)],  # width, height: each is checked
        "model_pixel_size_m": model_size,
        "read_pixel_size_m": round(chips, 6),
        "output_grid": output_grid if read is not ds else "scene",
        "output_pixel_size_m": round(chips if read is not ds and output_grid == "model" else scene, 6),
    }


def model_span(x0: int, x1: int, width: int, model_width: int) -> tuple[int, int]:
    """The model-grid columns that scene columns ``[x0, x1)`` need to be brought back bilinearly (with a margin of
    the kernel's reach), when both grids span the same bounds (``width`` and ``model_width`` columns).

    Example:
        >>> model_span(0, 100, 100, 50), model_span(40, 60, 100, 200)
        ((0, 50), (76, 124))
    """
    ratio = model_width / width
    margin = math.ceil(max(ratio, 1.0)) + 2
    return max(0, math.floor(x0 * ratio) - margin), min(model_width, math.ceil(x1 * ratio) + margin)


def to_scene_grid(
    probs_path: str | Path,
    ds: Any,
    indexes: list[int],
    writer: ClassMapWriter,
    span: tuple[int, int],
    polygons: list[Any] | None,
    block_width: int,
    exclude: Any = None,
) -> None:
    """Bring the model-grid probabilities in ``probs_path`` onto the scene ``ds``'s columns ``[x0, x1)`` (bilinear)
    and write the argmax, confidence (and probabilities) to ``writer``, strip by strip, block by block.

    Pixels are nodata where the scene is (its nodata, masks, non-finite values), outside ``polygons`` (the area of
    interest, in the scene's CRS), where ``exclude(window)`` is True (a cloud mask on the scene's grid) and where no
    chip was predicted.

    Example:
        >>> to_scene_grid("probs.tif", ds, [1, 2, 3], writer, (0, ds.width), None, 16384)  # doctest: +SKIP
    """
    import rasterio
    from rasterio.windows import Window

    x0, x1 = span
    masked = scene_has_mask(ds)
    check = masked or np.dtype(ds.dtypes[0]).kind == "f"
    with (
        rasterio.open(probs_path) as src,
        warp_onto(src, ds, "bilinear", True) as view,
        warp_onto(src, ds, fixed_scale=True) as nearest,
    ):
        for a, b in split_columns(x1 - x0, block_width):
            for y0 in range(0, ds.height, STRIP_ROWS):
                window = Window(x0 + a, y0, b - a, min(STRIP_ROWS, ds.height - y0))
                raw = view.read(window=window)
                valid = raw[0] != NODATA16
                if not valid.all():  # bilinear beside unpredicted or masked model pixels: the nearest value instead
                    near = nearest.read(window=window)
                    fill = ~valid & (near[0] != NODATA16)
                    raw[:, fill], valid = near[:, fill], valid | fill
                if check:
                    valid &= read_window(ds, window, indexes, masked=masked)[1]
                if polygons is not None:
                    valid &= _inside(polygons, window, ds.transform)
                if exclude is not None:
                    valid &= ~exclude(window)
                probs = raw.astype(np.float32) / SCALE16
                writer.write_rows(a, y0, {kind: RASTER_OUTPUTS[kind].compute(probs, valid) for kind in writer.ds})


def _inside(polygons: list[Any], window: Any, transform: Any) -> np.ndarray:
    from rasterio.features import geometry_mask
    from rasterio.windows import transform as window_transform

    shape = (int(window.height), int(window.width))
    return geometry_mask(polygons, shape, window_transform(window, transform), invert=True, all_touched=False)
