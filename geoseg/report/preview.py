"""Quicklook: the scene as RGB beside the class map, with a legend (``preview.png``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geoseg.core.classes import NODATA, ClassInfo

__all__ = ["rgb_bands", "write_preview"]

MAX_SIDE = 1024


def rgb_bands(descriptions: Sequence[str | None], count: int) -> list[int]:
    """1-based bands for a true-colour quicklook: B04/B03/B02 or red/green/blue by name, else the first three.

    Example:
        >>> rgb_bands(("B02", "B03", "B04", "B08"), 4), rgb_bands((None,), 1)
        ([3, 2, 1], [1, 1, 1])
    """
    lookup = {(d or "").lower(): i + 1 for i, d in enumerate(descriptions)}
    for names in (("b04", "b03", "b02"), ("red", "green", "blue"), ("r", "g", "b")):
        if all(n in lookup for n in names):
            return [lookup[n] for n in names]
    return [1, 2, 3] if count >= 3 else [1, 1, 1]


def _stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(rgb.shape[1:] + (4,), dtype=np.float32)
    for i, band in enumerate(rgb):
        values = band[valid & np.isfinite(band)]
        lo, hi = np.percentile(values, (2, 98)) if values.size else (0.0, 1.0)
        out[..., i] = np.clip((band - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    out[..., 3] = valid
    return out


def write_preview(
    scene: str | os.PathLike, classes: str | os.PathLike, table: Sequence[ClassInfo], output: Path, title: str = ""
) -> Path:
    """Write a PNG with the scene (2–98% stretch) and the class map side by side, decimated to ~1024 px."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from geoseg.io.raster import gdal_env, open_scene

    with gdal_env():
        with open_scene(scene) as ds:
            scale = max(ds.width, ds.height) / MAX_SIDE
            shape = (max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
            bands = rgb_bands(ds.descriptions, ds.count)
            rgb = ds.read(bands, out_shape=(3, *shape), out_dtype="float32")
            valid = ds.dataset_mask(out_shape=shape) > 0
        with open_scene(classes) as ds:
            cls = ds.read(1, out_shape=shape)
    colours = np.zeros((NODATA + 1, 4))
    for c in table:
        colours[c.id] = (*(v / 255 for v in c.rgb), 1.0)
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.2), dpi=100, constrained_layout=True)
    axes[0].imshow(_stretch(rgb, valid), interpolation="nearest")
    axes[0].set_title("scene (bands " + ", ".join(map(str, bands)) + ")")
    axes[1].imshow(cls, cmap=ListedColormap(colours), vmin=0, vmax=NODATA, interpolation="nearest")
    axes[1].set_title("classes")
    for ax in axes:
        ax.set_axis_off()
    present = set(np.unique(cls).tolist())
    handles = [Patch(color=colours[c.id][:3], label=c.name) for c in table if c.id in present]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False)
    if title:
        fig.suptitle(title)
    fig.savefig(output)
    plt.close(fig)
    return output
