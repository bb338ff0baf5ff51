"""geoseg: land-cover segmentation of satellite GeoTIFFs, from scene to stitched class map.

Heavy libraries (torch, smp) load only when a model or prediction is used.

Example:
    >>> import geoseg
    >>> grid = geoseg.make_grid(1000, 800, chip_size=256, overlap=0.25)
    >>> len(grid)
    20
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "__version__": "geoseg.core.version",
    "create_model": "geoseg.model.factory",
    "load_model": "geoseg.model.factory",
    "Model": "geoseg.model.factory",
    "ModelCard": "geoseg.model.card",
    "ClassInfo": "geoseg.model.card",
    "predict": "geoseg.inference.predict",
    "vectorize": "geoseg.polygonize.api",
    "run": "geoseg.flows.run",
    "change": "geoseg.flows.change",
    "train": "geoseg.training.trainer",
    "evaluate": "geoseg.training.evaluation",
    "tile": "geoseg.training.chipset",
    "export_onnx": "geoseg.model.onnx",
    "make_grid": "geoseg.core.grid",
    "Grid": "geoseg.core.grid",
    "Chip": "geoseg.core.grid",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geoseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What ``dir(geoseg)`` lists: the public names loaded on first use (:data:`__all__`) with the module's own.

    Example:
        >>> import geoseg
        >>> {"predict", "run", "export_onnx"} <= set(dir(geoseg))
        True
    """
    return sorted({*globals(), *_LAZY})
