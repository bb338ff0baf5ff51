"""Models: the model card (no torch needed), smp networks and checkpoints (torch, loaded lazily)."""

from __future__ import annotations

from typing import Any

from geoseg.core.classes import ClassInfo
from geoseg.model.card import ModelCard

__all__ = ["ClassInfo", "Model", "ModelCard", "create_model", "load_model"]


def __getattr__(name: str) -> Any:
    if name in {"Model", "create_model", "load_model"}:
        from geoseg.model import factory

        return getattr(factory, name)
    raise AttributeError(f"module 'geoseg.model' has no attribute {name!r}")
