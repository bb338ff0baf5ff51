"""Joining vertical blocks predicted apart (on different Dask workers) into one scene's outputs."""

from __future__ import annotations

import os
from pathlib import Path

from geoseg.inference.checks import warn_all_nodata
from geoseg.inference.loop import PredictResult
from geoseg.io.classmap import ClassMapWriter
from geoseg.io.raster import gdal_env, open_scene
from geoseg.model.card import ModelCard

__all__ = ["assemble_blocks"]


def assemble_blocks(
    image: str | os.PathLike,
    blocks: list[tuple[int, PredictResult]],
    outputs: dict[str, Path],
    card: ModelCard,
    rows: int = 1024,
) -> PredictResult:
    """Join blocks predicted apart with ``predict(columns=...)`` into the scene's outputs.

    ``blocks`` are ``(x0, result)`` pairs covering the scene's columns;
    ``outputs`` maps ``classes`` / ``confidence`` to the scene files, written
    with the same writer as :func:`predict` (same tiling, colours, tags, COG),
    so they hold the same pixels as one whole-scene prediction. Reads
    ``rows`` rows of a block at a time.

    Example:
        >>> blocks = [(0, predict("s.tif", m, "b0.tif", columns=(0, 512))),
        ...           (512, predict("s.tif", m, "b1.tif", columns=(512, 900)))]  # doctest: +SKIP
        >>> assemble_blocks("s.tif", blocks, {"classes": Path("classes.tif")}, m.card)  # doctest: +SKIP
    """
    from rasterio.windows import Window

    blocks = sorted(blocks, key=lambda b: b[0])
    result = PredictResult(dict(outputs), 0, 0, 0)
    for _, part in blocks:
        result.chips_total += part.chips_total
        result.chips_predicted += part.chips_predicted
        result.chips_skipped += part.chips_skipped
        for key, value in part.seconds.items():
            result.seconds[key] = result.seconds.get(key, 0.0) + value
        result.warnings.extend(w for w in part.warnings if w not in result.warnings)
    with gdal_env(), open_scene(image) as ds:
        if result.chips_predicted == 0:
            warn_all_nodata(ds.name, result.warnings)
        writer = ClassMapWriter(
            outputs, ds.crs, ds.transform, ds.width, ds.height, card.classes, tags={"GEOSEG_MODEL": card.name}
        )
        try:
            for x0, part in blocks:
                sources = {kind: open_scene(part.outputs[kind], require_georef=False) for kind in outputs}
                try:
                    width = next(iter(sources.values())).width
                    for y0 in range(0, ds.height, rows):
                        window = Window(0, y0, width, min(rows, ds.height - y0))
                        writer.write_rows(
                            x0,
                            y0,
                            {
                                kind: src.read(window=window)[0] if src.count == 1 else src.read(window=window)
                                for kind, src in sources.items()
                            },
                        )
                finally:
                    for src in sources.values():
                        src.close()
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    return result
