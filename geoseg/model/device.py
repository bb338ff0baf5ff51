"""Where a torch model runs: ``auto``, ``cpu`` or ``cuda[:N]``, checked against what this machine has."""

from __future__ import annotations

from geoseg.core.errors import InputError, OptionError
from geoseg.core.limits import usable_cores

__all__ = ["cpu_threads", "resolve_device"]


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


def cpu_threads() -> int:
    """torch's CPU threads capped at the usable cores (:func:`~geoseg.core.limits.usable_cores`), set and returned.

    torch starts a thread per core it may run on; in a container whose CPU quota allows fewer, those threads
    are throttled in turn. Never raises torch's count (a caller's ``torch.set_num_threads(1)`` stays).

    Example:
        >>> cpu_threads() >= 1
        True
    """
    import torch

    threads = max(1, min(torch.get_num_threads(), usable_cores()))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
