"""Where a torch model runs: ``auto``, ``cpu`` or ``cuda[:N]``, checked against what this machine has."""

from __future__ import annotations

from geoseg.core.errors import InputError, OptionError

__all__ = ["resolve_device"]


def resolve_device(device: str = "auto") -> str:
    """``auto`` becomes ``cuda`` when a GPU is usable, else ``cpu``; other values are checked.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA GPU is usable here; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise OptionError(f"--device {device!r} is not known: use auto, cpu or cuda")
    return device
