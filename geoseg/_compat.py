"""One documented work-around for a broken torchvision install, applied only when needed.

Some machines pair a CPU build of torch with a CUDA build of torchvision. The
torchvision C extension then fails to load, and importing torchvision (and so
timm and segmentation-models-pytorch, which import it) stops with
``RuntimeError: operator torchvision::nms does not exist``. geoseg never calls
torchvision's detection operators, so defining the two operator schemas that
torchvision's Python code registers fake kernels for is enough to import it.

:func:`import_smp` tries the normal import first and touches nothing when it
works (every correctly installed machine, CUDA or not).
"""

from __future__ import annotations

import sys
from types import ModuleType

_LIBRARY = None  # keeps the schema registrations alive for the process


def _define_torchvision_schemas() -> None:
    global _LIBRARY
    import torch

    if _LIBRARY is not None:
        return
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY = lib


def import_smp() -> ModuleType:
    """Import ``segmentation_models_pytorch``, repairing the torchvision import if needed.

    Example:
        >>> smp = import_smp()
        >>> "unet" in smp.MODEL_ARCHITECTURES_MAPPING
        True
    """
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _define_torchvision_schemas()
        import torchvision  # noqa: F401
    import segmentation_models_pytorch as smp

    return smp
